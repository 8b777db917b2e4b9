"""The one skeleton table of the SMPL family: joint names and parents, counts, the layout of the pose
vector, the knee/elbow hinges and the left/right mirror permutation.

SMPL, SMPL-H and SMPL-X share their first 22 joints (the body: pelvis, then the 21 joints of
``pose_body``), so body indices below hold for all three.
"""

from typing import NamedTuple

from human_body_prior.body_model.joint_names import (  # noqa: F401  (re-exported: names live here too)
    BODY_JOINT_NAMES, BODY_PARENTS, JOINT_NAMES, MANO_JOINT_NAMES, MANO_PARENTS, NUM_JOINTS, PARENTS,
    SMPL_JOINT_NAMES, SMPL_PARENTS, SMPLH_JOINT_NAMES, SMPLH_PARENTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS)

NUM_POSE_BODY_JOINTS = 21  # the joints of pose_body (and of VPoser v1/v2): the body without the root
NUM_BODY_JOINTS = NUM_POSE_BODY_JOINTS + 1  # with the root (pelvis), joints 0..21

# Widths (axis-angle values) of the pose parts per model type; full_pose is their concatenation in
# this order.
POSE_PARTS = {
    "smpl": (("root_orient", 3), ("pose_body", 3 * NUM_POSE_BODY_JOINTS), ("pose_hand", 6)),
    "smplh": (("root_orient", 3), ("pose_body", 3 * NUM_POSE_BODY_JOINTS), ("pose_hand", 90)),
    "smplx": (("root_orient", 3), ("pose_body", 3 * NUM_POSE_BODY_JOINTS), ("pose_jaw", 3), ("pose_eye", 6),
              ("pose_hand", 90)),
    "mano": (("root_orient", 3), ("pose_hand", 45)),
}


def pose_slices(model_type: str) -> dict:
    """{pose part: slice of the full axis-angle pose vector}, e.g. pose_slices('smplx')['pose_body'] is
    slice(3, 66): ``poses[:, pose_slices('smplx')['pose_jaw']]`` reads the jaw of AMASS-style poses."""
    if model_type not in POSE_PARTS:
        raise ValueError(f"model_type must be one of {sorted(POSE_PARTS)}, got {model_type!r}")
    out, start = {}, 0
    for name, width in POSE_PARTS[model_type]:
        out[name] = slice(start, start + width)
        start += width
    return out


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
