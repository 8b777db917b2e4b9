"""Pose the MakeHuman mesh (an A-pose) into SMPL's rest T-pose with its own skinning.

Arms straight and horizontal (shoulder -> elbow -> wrist along +-X), hands flat with the
palm down and the thumb side forward, legs straight down (-Y), feet pointing to +Z.
The rotations are found per body shape from the joint positions, then applied with
linear blend skinning over the SMPL-X joint tree.
"""

from __future__ import annotations

import numpy as np
import torch

from human_body_prior.body_model.kinematics import KinematicTree, forward_kinematics
from human_body_prior.body_model.lbs import skin_vertices
from human_body_prior.body_model.skeleton import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from human_body_prior.tools import rotation_tools

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
_TREE = KinematicTree(SMPLX_PARENTS)
_X, _Y, _Z = np.eye(3)


def _t(x) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``a`` onto direction ``b`` (numpy front of
    :func:`human_body_prior.tools.rotation_tools.rotation_between`)."""
    return rotation_tools.rotation_between(_t(a), _t(b)).numpy()


def frame_alignment(d: np.ndarray, lateral: np.ndarray, d_to: np.ndarray, lat_to: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking direction ``d`` to ``d_to`` and ``lateral`` (made orthogonal to ``d``) to
    ``lat_to`` (numpy front of :func:`human_body_prior.tools.rotation_tools.align_frames`)."""
    return rotation_tools.align_frames(_t(d), _t(lateral), _t(d_to), _t(lat_to)).numpy()


def _tpose_rule(name: str):
    """(kind, target...) for the joints that are re-posed; None for the others."""
    side = 1.0 if name.startswith("left") else -1.0
    if name.endswith("_hip") or name.endswith("_knee"):
        return ("segment", -_Y)
    if name.endswith("_shoulder") or name.endswith("_elbow"):
        return ("segment", side * _X)
    if name.endswith("_ankle"):
        return ("yaw", _Z)
    if name.endswith("_wrist"):
        return ("hand", side * _X, _Z)
    return None


_SEGMENT_CHILD = {}
for _n in SMPLX_JOINT_NAMES:
    _s = _n.split("_")[0]
    _SEGMENT_CHILD.update({f"{_s}_hip": f"{_s}_knee", f"{_s}_knee": f"{_s}_ankle",
                           f"{_s}_ankle": f"{_s}_foot", f"{_s}_shoulder": f"{_s}_elbow",
                           f"{_s}_elbow": f"{_s}_wrist"})


def tpose_rotations(joints: np.ndarray) -> np.ndarray:
    """Local rotations (55, 3, 3) that bring the A-posed joints (55, 3) into the T-pose."""
    n = len(SMPLX_JOINT_NAMES)
    local = np.tile(np.eye(3), (n, 1, 1))
    world = np.tile(np.eye(3), (n, 1, 1))
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        parent_world = world[SMPLX_PARENTS[j]] if SMPLX_PARENTS[j] >= 0 else np.eye(3)
        rule = _tpose_rule(name)
        q = np.eye(3)
        if rule is not None:
            if rule[0] == "segment":
                d = parent_world @ (joints[_IDX[_SEGMENT_CHILD[name]]] - joints[j])
                q = rotation_between(d, rule[1])
            elif rule[0] == "yaw":
                d = parent_world @ (joints[_IDX[_SEGMENT_CHILD[name]]] - joints[j])
                d = d - np.dot(d, _Y) * _Y
                q = rotation_between(d, rule[1])
            else:
                side = name.split("_")[0]
                d = parent_world @ (joints[_IDX[f"{side}_middle1"]] - joints[j])
                lat = parent_world @ (joints[_IDX[f"{side}_index1"]] - joints[_IDX[f"{side}_pinky1"]])
                q = frame_alignment(d, lat, rule[1], rule[2])
        world[j] = q @ parent_world
        local[j] = parent_world.T @ world[j]
    return local


def skin(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, local: np.ndarray):
    """Linear blend skinning with the package's one forward kinematics and skinning
    (:mod:`human_body_prior.body_model.kinematics`, :func:`human_body_prior.body_model.lbs.skin_vertices`).
    verts (V, 3), weights (V, J), rest joints (J, 3), local rotations (J, 3, 3) -> posed verts (V, 3),
    posed joints (J, 3)."""
    posed, transforms = forward_kinematics(_t(local)[None], _t(joints)[None], _TREE)
    return skin_vertices(_t(verts)[None], _t(weights), transforms)[0].numpy(), posed[0].numpy()


def to_rest_pose(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray):
    """A-posed verts (V, 3) and joints (55, 3) -> T-posed verts and joints."""
    return skin(verts, weights, joints, tpose_rotations(joints))
