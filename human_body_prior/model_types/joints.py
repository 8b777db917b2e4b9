"""The joint tables of the SMPL family as lists and dicts by model type (derived from the ModelSpecs of
:mod:`human_body_prior.model_types.spec`), the layout of the pose vector, the knee/elbow hinges, the
left/right mirror permutation and the joint names as the official files spell them (``joint2num``).

SMPL, SMPL-H and SMPL-X share their first 22 joints (the body: pelvis, then the 21 joints of
``pose_body``), so body indices below hold for all three.
"""

from typing import NamedTuple

import numpy as np

from human_body_prior.model_types.spec import NUM_POSE_BODY_JOINTS, SPECS, model_spec
from human_body_prior.model_types.spec import BODY_JOINT_NAMES as _BODY_NAMES
from human_body_prior.model_types.spec import BODY_PARENTS as _BODY_PARENTS

# ---------------------------------------------------------------------------- joints and parents
# Indices follow the official model files: PARENTS[t][j] is the parent of joint j (-1 for the root).

BODY_JOINT_NAMES = list(_BODY_NAMES)
BODY_PARENTS = list(_BODY_PARENTS)

JOINT_NAMES = {name: list(spec.joint_names) for name, spec in SPECS.items()}
PARENTS = {name: list(spec.parents) for name, spec in SPECS.items()}
NUM_JOINTS = {name: spec.num_joints for name, spec in SPECS.items()}

SMPL_JOINT_NAMES, SMPLH_JOINT_NAMES, SMPLX_JOINT_NAMES, MANO_JOINT_NAMES = (
    JOINT_NAMES[t] for t in ("smpl", "smplh", "smplx", "mano"))
SMPL_PARENTS, SMPLH_PARENTS, SMPLX_PARENTS, MANO_PARENTS = (PARENTS[t] for t in ("smpl", "smplh", "smplx", "mano"))

# ---------------------------------------------------------------------------- counts and pose layout

NUM_BODY_JOINTS = NUM_POSE_BODY_JOINTS + 1  # with the root (pelvis), joints 0..21

# Widths (axis-angle values) of the pose parts per model type; full_pose is their concatenation in
# this order.
POSE_PARTS = {name: spec.pose_parts for name, spec in SPECS.items()}


def pose_slices(model_type: str) -> dict:
    """{pose part: slice of the full axis-angle pose vector}, e.g. pose_slices('smplx')['pose_body'] is
    slice(3, 66): ``poses[:, pose_slices('smplx')['pose_jaw']]`` reads the jaw of AMASS-style poses."""
    if model_type not in SPECS:
        raise ValueError(f"model_type must be one of {sorted(SPECS)}, got {model_type!r}")
    return model_spec(model_type).pose_slices()


class Hinge(NamedTuple):
    """A knee or elbow, with indices into the body joints.

    upper -> joint is the upper bone (thigh, upper arm), joint -> child the lower one (shin, forearm);
    flexion is the direction the lower bone moves to when the joint flexes, in the model's rest frame
    (facing +Z): backwards (-Z) for knees, forwards (+Z) for elbows.
    """

    name: str
    upper: int
    joint: int
    child: int
    flexion: tuple


def _hinge(name, upper, child, flexion):
    i = BODY_JOINT_NAMES.index
    return Hinge(name, i(upper), i(name), i(child), flexion)


HINGES = (_hinge("left_knee", "left_hip", "left_ankle", (0.0, 0.0, -1.0)),
          _hinge("right_knee", "right_hip", "right_ankle", (0.0, 0.0, -1.0)),
          _hinge("left_elbow", "left_shoulder", "left_wrist", (0.0, 0.0, 1.0)),
          _hinge("right_elbow", "right_shoulder", "right_wrist", (0.0, 0.0, 1.0)))


def mirror_permutation(names) -> list:
    """Index of each joint's left/right mirror joint in ``names`` (itself on the midline): the joint
    that lands on it when a body is mirrored across its sagittal plane."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for n in names:
        if n.startswith("left"):
            out.append(index["right" + n[4:]])
        elif n.startswith("right"):
            out.append(index["left" + n[5:]])
        else:
            out.append(index[n])
    return out


def official_joint_names(model_type: str) -> list[str]:
    """Joint names in the style of the official files' ``joint2num`` (``Pelvis``, ``L_Hip``, ``Jaw``,
    ``L_Eye``, ``L_Index1``, ...), in joint order."""
    names = {"smplx": SMPLX_JOINT_NAMES, "smplh": SMPLH_JOINT_NAMES, "smpl": SMPL_JOINT_NAMES}[model_type]
    out = []
    for name in names:
        name = name.replace("_eye_smplhf", "_eye")
        side, _, rest = name.partition("_")
        if side in ("left", "right") and rest:
            out.append(f"{side[0].upper()}_{rest[0].upper()}{rest[1:]}")
        else:
            out.append(name[0].upper() + name[1:])
    return out


def official_name_table(model_type: str) -> np.ndarray:
    """``official_joint_names`` as the official SMPL-X files store ``joint2num``: a dict {name: index} in a
    0-d object array."""
    table = np.empty((), dtype=object)
    table[()] = {name: i for i, name in enumerate(official_joint_names(model_type))}
    return table
