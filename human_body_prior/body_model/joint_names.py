"""Joint names and parent tables of the official SMPL-family kinematic trees.

Indices follow the official model files: ``parents[j]`` is the parent of joint ``j``
(-1 for the root). Fingers come in the order index, middle, pinky, ring, thumb.
"""

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
