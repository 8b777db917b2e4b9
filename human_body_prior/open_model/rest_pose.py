"""Pose the MakeHuman mesh (an A-pose) into the SMPL family's rest T-pose with its own skinning.

A pose vector means something only relative to the zero pose, so the open model's limbs point
where SMPL's do at rest (directions in :data:`SMPL_TPOSE_BONES`): arms out and slightly down
and back, forearms level, legs a little apart with the shank a few degrees back, feet turned out.
The shoulder girdle is raised as a T-pose raises it: the line from the sternal notch to the top of
the acromion rises :data:`GIRDLE_ELEVATION_DEG`. Hands are flat, palm down, thumb side forward.
The trunk, neck and head keep MakeHuman's upright posture. The rotations are found per body shape
from its joints (and skin landmarks for the girdle), then applied with linear blend skinning
over the SMPL-X joint tree. Axes: metres later, +X the body's left, +Y up, +Z forward.
"""

from __future__ import annotations

import numpy as np
import torch

from human_body_prior.body_model.lbs import skin_vertices
from human_body_prior.geometry import rotations as rotation_tools
from human_body_prior.geometry.kinematics import KinematicTree, forward_kinematics
from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
_TREE = KinematicTree(SMPLX_PARENTS)
_X, _Y, _Z = np.eye(3)

# SMPL's neutral template: rest offsets child - parent (metres, +X the body's left, +Y up, +Z forward) of
# the limb joints, as public SMPL-to-BVH tables print the template's 24 offsets (e.g. smpl2bvh's
# SMPL_OFFSETS). Keyed by the child joint.
SMPL_REST_OFFSETS = {
    "left_knee": (0.04345142, -0.38646945, 0.008037), "right_knee": (-0.04325663, -0.38368791, -0.00484304),
    "left_ankle": (-0.01479032, -0.42687458, -0.037428), "right_ankle": (0.01905555, -0.4200455, -0.03456167),
    "left_foot": (0.04105436, -0.06028581, 0.12204243), "right_foot": (-0.03483987, -0.06210566, 0.13032329),
    "left_elbow": (0.2553319, -0.01564902, -0.02294649), "right_elbow": (-0.26012748, -0.01436928, -0.03126873),
    "left_wrist": (0.26570925, 0.01269811, -0.00737473), "right_wrist": (-0.26910836, 0.00679372, -0.00602676),
}
_MIRROR = np.array([-1.0, 1.0, 1.0])


def smpl_direction(part: str) -> np.ndarray:
    """(3,) left-side unit direction of SMPL's rest bone ending at joint ``part`` ('knee', 'ankle',
    'foot', 'elbow', 'wrist'), the right side mirrored onto the left and the two averaged."""
    left = np.asarray(SMPL_REST_OFFSETS[f"left_{part}"])
    right = np.asarray(SMPL_REST_OFFSETS[f"right_{part}"]) * _MIRROR
    d = left / np.linalg.norm(left) + right / np.linalg.norm(right)
    return d / np.linalg.norm(d)


def _leg_direction(part: str) -> np.ndarray:
    """A leg segment's rest direction: front to back SMPL's own, sideways SMPL's hip -> ankle line.
    SMPL's hip joints sit 59 mm from its pelvis joint against MakeHuman's 105 mm; SMPL's thigh line
    (6.4 deg out) would splay the open model's knees 45 mm wider than SMPL's."""
    left = np.add(SMPL_REST_OFFSETS["left_knee"], SMPL_REST_OFFSETS["left_ankle"])
    right = np.add(SMPL_REST_OFFSETS["right_knee"], SMPL_REST_OFFSETS["right_ankle"]) * _MIRROR
    sideways = 0.5 * (left[0] / -left[1] + right[0] / -right[1])  # tan of the hip -> ankle line's lean
    own = smpl_direction(part)
    d = np.array([sideways, -1.0, own[2] / -own[1]])
    return d / np.linalg.norm(d)


# Rest directions of the limb segments, left side, keyed by the joint the segment starts at (the right
# side uses the mirror image).
SMPL_TPOSE_BONES = {
    "hip": _leg_direction("knee"),       # thigh: 1.9 deg out, 0.2 deg forward
    "knee": _leg_direction("ankle"),     # shank: 1.9 deg out, 4.9 deg back (the knee 5 deg flexed)
    "ankle": smpl_direction("foot"),     # ankle -> toe joint: 24.9 deg down, 16.8 deg out
    "shoulder": smpl_direction("elbow"),  # upper arm: 3.3 deg down, 6.0 deg back
    "elbow": smpl_direction("wrist"),    # forearm: 2.1 deg up, 1.4 deg back
}
# The line from the sternal notch to the top of the acromion rises this much above the horizontal.
# A clavicle rises laterally at rest and elevates further as the arm is abducted to 90 degrees; on
# the official SMPL-X zero pose the skin line rises 14-20 deg (the marker measurement, used
# as a yardstick only). MakeHuman's A-pose leaves it at 5.6 deg.
GIRDLE_ELEVATION_DEG = 16.0

_SEGMENT_CHILD = {}
for _n in SMPLX_JOINT_NAMES:
    _s = _n.split("_")[0]
    _SEGMENT_CHILD.update({f"{_s}_hip": f"{_s}_knee", f"{_s}_knee": f"{_s}_ankle",
                           f"{_s}_ankle": f"{_s}_foot", f"{_s}_shoulder": f"{_s}_elbow",
                           f"{_s}_elbow": f"{_s}_wrist"})


def girdle_line_deg(verts: np.ndarray, joints: np.ndarray) -> dict:
    """{'left': deg, 'right': deg}: elevation of the line from the sternal notch to the top of each
    acromion on a T-posed body (verts (V, 3), joints (55, 3), any unit, +Y up, +Z forward).

    The notch is the front midline vertex nearest the collar (sternoclavicular) joints' height; the top
    of the acromion the highest vertex within a tenth of the collar -> shoulder length sideways and a
    fifth of it front to back of the shoulder joint. Measured on the skin, as markers see it.
    """
    out = {}
    collar = 0.5 * (joints[_IDX["left_collar"]] + joints[_IDX["right_collar"]])
    span = np.linalg.norm(joints[_IDX["left_shoulder"]] - joints[_IDX["left_collar"]])
    front = np.flatnonzero((np.abs(verts[:, 0] - collar[0]) < 0.02 * span) & (verts[:, 2] > collar[2]))
    notch = verts[front[np.argmin(np.abs(verts[front, 1] - collar[1]))]]
    for side in ("left", "right"):
        s = joints[_IDX[f"{side}_shoulder"]]
        near = np.flatnonzero((np.abs(verts[:, 0] - s[0]) < 0.1 * span) & (np.abs(verts[:, 2] - s[2]) < 0.2 * span))
        out[side] = line_elevation_deg(notch, verts[near[np.argmax(verts[near, 1])]])
    return out


def _girdle_candidates(verts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Indices of the vertices girdle_line_deg can pick on the T-posed body: those around the shoulders
    and the front of the neck in the A-pose."""
    span = np.linalg.norm(joints[_IDX["left_shoulder"]] - joints[_IDX["left_collar"]])
    keep = np.zeros(len(verts), dtype=bool)
    for name in ("left_shoulder", "right_shoulder", "left_collar", "right_collar"):
        keep |= np.linalg.norm(verts - joints[_IDX[name]], axis=1) < 0.8 * span
    return np.flatnonzero(keep)


def _t(x) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking direction ``a`` onto direction ``b`` (numpy front of
    :func:`human_body_prior.geometry.rotations.rotation_between`)."""
    return rotation_tools.rotation_between(_t(a), _t(b)).numpy()


def frame_alignment(d: np.ndarray, lateral: np.ndarray, d_to: np.ndarray, lat_to: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking direction ``d`` to ``d_to`` and ``lateral`` (made orthogonal to ``d``) to
    ``lat_to`` (numpy front of :func:`human_body_prior.geometry.rotations.align_frames`)."""
    return rotation_tools.align_frames(_t(d), _t(lateral), _t(d_to), _t(lat_to)).numpy()


def _rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    return rotation_tools.axis_angle_to_matrix(_t(np.asarray(axis) * angle_rad)).numpy()


def _mirrored(v, side: float) -> np.ndarray:
    return np.array([side * v[0], v[1], v[2]], dtype=np.float64)


def _world_target(name: str, joints: np.ndarray, parent_world: np.ndarray, collar_deg: dict) -> np.ndarray:
    """World rotation (3, 3) that the rule of joint ``name`` applies before its parent's world frame."""
    side_name, _, part = name.partition("_")
    side = 1.0 if side_name == "left" else -1.0
    if part in SMPL_TPOSE_BONES:
        d = parent_world @ (joints[_IDX[_SEGMENT_CHILD[name]]] - joints[_IDX[name]])
        return rotation_between(d, _mirrored(SMPL_TPOSE_BONES[part], side))
    if part == "collar":  # raise the girdle about the forward axis
        return _rotation_about(_Z, side * np.radians(collar_deg.get(side_name, 0.0)))
    if part == "wrist":
        d = parent_world @ (joints[_IDX[f"{side_name}_middle1"]] - joints[_IDX[name]])
        lat = parent_world @ (joints[_IDX[f"{side_name}_index1"]] - joints[_IDX[f"{side_name}_pinky1"]])
        return frame_alignment(d, lat, side * _X, _Z)
    return np.eye(3)


def tpose_rotations(joints: np.ndarray, collar_deg: dict | None = None) -> np.ndarray:
    """Local rotations (55, 3, 3) that bring the A-posed joints (55, 3) into the T-pose.

    collar_deg: {'left': deg, 'right': deg} elevation of each collar about the forward axis (0 when
    omitted); every joint below a collar is then aimed in the raised frame.
    """
    collar_deg = collar_deg or {}
    n = len(SMPLX_JOINT_NAMES)
    local = np.tile(np.eye(3), (n, 1, 1))
    world = np.tile(np.eye(3), (n, 1, 1))
    for j, name in enumerate(SMPLX_JOINT_NAMES):
        parent_world = world[SMPLX_PARENTS[j]] if SMPLX_PARENTS[j] >= 0 else np.eye(3)
        world[j] = _world_target(name, joints, parent_world, collar_deg) @ parent_world
        local[j] = parent_world.T @ world[j]
    return local


def skin(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, local: np.ndarray):
    """Linear blend skinning with the package's one forward kinematics and skinning
    (:mod:`human_body_prior.geometry.kinematics`, :func:`human_body_prior.body_model.lbs.skin_vertices`).
    verts (V, 3), weights (V, J), rest joints (J, 3), local rotations (J, 3, 3) -> posed verts (V, 3),
    posed joints (J, 3)."""
    posed, transforms = forward_kinematics(_t(local)[None], _t(joints)[None], _TREE)
    return skin_vertices(_t(verts)[None], _t(weights), transforms)[0].numpy(), posed[0].numpy()


def line_elevation_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees) of the line a -> b above the horizontal (XZ) plane; a, b (3,)."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    return float(np.degrees(np.arctan2(d[1], np.hypot(d[0], d[2]))))


def _solve_collars(verts, weights, joints, iterations: int = 8) -> dict:
    """Collar elevations (deg) that put both girdle lines at GIRDLE_ELEVATION_DEG (secant steps on the
    skinned candidate vertices)."""
    ids = _girdle_candidates(verts, joints)

    def measured(deg):
        v, j = skin(verts[ids], weights[ids], joints, tpose_rotations(joints, deg))
        return girdle_line_deg(v, j)

    x0 = {"left": 0.0, "right": 0.0}
    f0 = measured(x0)
    x1 = {s: GIRDLE_ELEVATION_DEG - f0[s] for s in x0}
    for _ in range(iterations):
        f1 = measured(x1)
        step = {}
        for s in x0:
            slope = (f1[s] - f0[s]) / (x1[s] - x0[s]) if abs(x1[s] - x0[s]) > 1e-9 else 1.0
            step[s] = x1[s] + (GIRDLE_ELEVATION_DEG - f1[s]) / (slope if abs(slope) > 0.1 else 1.0)
        x0, f0, x1 = x1, f1, step
    return x1


def to_rest_pose(verts: np.ndarray, weights: np.ndarray, joints: np.ndarray, raise_girdle: bool = True):
    """A-posed verts (V, 3) and joints (55, 3) -> T-posed verts and joints; with raise_girdle the collars
    are raised until the girdle lines (:func:`girdle_line_deg`) rise GIRDLE_ELEVATION_DEG."""
    collar = _solve_collars(verts, weights, joints) if raise_girdle else None
    return skin(verts, weights, joints, tpose_rotations(joints, collar))
