"""Pose the MakeHuman mesh (an A-pose) into SMPL's rest T-pose with its own skinning.

Arms straight and horizontal (shoulder -> elbow -> wrist along +-X), hands flat with the
palm down and the thumb side forward, legs straight down (-Y), feet pointing to +Z.
The rotations are found per body shape from the joint positions, then applied with
linear blend skinning over the SMPL-X joint tree.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.body_model.joint_names import SMPLX_JOINT_NAMES
from human_body_prior.open_model.skeleton import PARENTS

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
_X, _Y, _Z = np.eye(3)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``a`` onto direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        raise ValueError("cannot align opposite directions")
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def frame_alignment(d: np.ndarray, lateral: np.ndarray, d_to: np.ndarray, lat_to: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking direction ``d`` to ``d_to`` and ``lateral`` (made orthogonal
    to ``d``) to ``lat_to``."""
    def frame(u, v):
        u = u / np.linalg.norm(u)
        v = v - np.dot(v, u) * u
        v = v / np.linalg.norm(v)
        return np.stack([u, v, np.cross(u, v)], axis=1)
    return frame(d_to, lat_to) @ frame(d, lateral).T


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
        parent_world = world[PARENTS[j]] if PARENTS[j] >= 0 else np.eye(3)
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


def forward_kinematics(joints: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (J, 3, 3) and posed joint positions (J, 3). Kept in numpy (not
    body_model/kinematics.py) so that the shipped open models rebuild bit for bit."""
    n = len(joints)
    world = np.empty((n, 3, 3))
    posed = np.empty((n, 3))
    for j in range(n):
        p = PARENTS[j]
        if p < 0:
            world[j] = local[j]
            posed[j] = joints[j]
        else:
            world[j] = world[p] @ local[j]
            posed[j] = posed[p] + world[p] @ (joints[j] - joints[p])
    return world, posed


def skin(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, local: np.ndarray):
    """Linear blend skinning. verts (V, 3), weights (V, J) -> posed verts (V, 3), joints (J, 3)."""
    world, posed = forward_kinematics(joints, local)
    # per-joint affine map x -> R (x - J_rest) + J_posed
    offset = posed - np.einsum("jab,jb->ja", world, joints)
    blended_r = np.einsum("vj,jab->vab", weights, world)
    blended_t = weights @ offset
    return np.einsum("vab,vb->va", blended_r, verts) + blended_t, posed


def to_rest_pose(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray):
    """A-posed verts (V, 3) and joints (55, 3) -> T-posed verts and joints."""
    return skin(verts, weights, joints, tpose_rotations(joints))
