"""The one skeleton table of the SMPL family: joint names and parents (as in the official model files),
counts, the layout of the pose vector, the knee/elbow hinges and the left/right mirror permutation.

SMPL, SMPL-H and SMPL-X share their first 22 joints (the body: pelvis, then the 21 joints of
``pose_body``), so body indices below hold for all three.
"""

from typing import NamedTuple

# ---------------------------------------------------------------------------- joints and parents
# Indices follow the official model files: PARENTS[t][j] is the parent of joint j (-1 for the root).
# Fingers come in the order index, middle, pinky, ring, thumb.

BODY_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
]
BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]

_FINGERS = ["index", "middle", "pinky", "ring", "thumb"]


def _hand_names(side: str) -> list[str]:
    return [f"{side}_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3)]


def _hand_parents(wrist: int, first: int) -> list[int]:
    """Parents of 15 finger joints numbered from ``first`` whose wrist joint is ``wrist``."""
    parents = []
    for f in range(5):
        base = first + 3 * f
        parents += [wrist, base, base + 1]
    return parents


SMPL_JOINT_NAMES = BODY_JOINT_NAMES + ["left_hand", "right_hand"]
SMPL_PARENTS = BODY_PARENTS + [20, 21]

SMPLH_JOINT_NAMES = BODY_JOINT_NAMES + _hand_names("left") + _hand_names("right")
SMPLH_PARENTS = BODY_PARENTS + _hand_parents(20, 22) + _hand_parents(21, 37)

SMPLX_JOINT_NAMES = (BODY_JOINT_NAMES + ["jaw", "left_eye_smplhf", "right_eye_smplhf"]
                     + _hand_names("left") + _hand_names("right"))
SMPLX_PARENTS = BODY_PARENTS + [15, 15, 15] + _hand_parents(20, 25) + _hand_parents(21, 40)

MANO_JOINT_NAMES = ["wrist"] + [f"{finger}{k}" for finger in _FINGERS for k in (1, 2, 3)]
MANO_PARENTS = [-1] + _hand_parents(0, 1)

JOINT_NAMES = {"smpl": SMPL_JOINT_NAMES, "smplh": SMPLH_JOINT_NAMES,
               "smplx": SMPLX_JOINT_NAMES, "mano": MANO_JOINT_NAMES}
PARENTS = {"smpl": SMPL_PARENTS, "smplh": SMPLH_PARENTS, "smplx": SMPLX_PARENTS, "mano": MANO_PARENTS}
NUM_JOINTS = {name: len(p) for name, p in PARENTS.items()}

# ---------------------------------------------------------------------------- counts and pose layout

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
