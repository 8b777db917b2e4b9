"""Joint-name maps from BVH skeletons onto the SMPL-X joint tree, and skeleton auto-detection.

A map sends SMPL-X joint names to source joint names. Several consecutive SMPL-X joints of one chain
may name the same source joint: the source joint's rotation is then shared evenly among them (e.g. a
two-joint spine driving SMPL-X's three spine joints). SMPL-X joints left out keep the identity local
rotation.

A skeleton may also carry a reference T-pose, for rigs whose zero pose is not one: joint name ->
local rotation quaternion (w, x, y, z) in that T-pose; the first entry is the WORLD orientation of that
joint (Y up) rather than a local one. Without it, the hierarchy's zero pose is the T-pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# SMPL-X body joints that every map must provide (wrists, feet and collars are optional).
REQUIRED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                   "right_ankle", "neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")


@dataclass
class Skeleton:
    """A known source skeleton: ``joint_map`` SMPL-X name -> source joint name."""

    name: str
    description: str
    joint_map: dict[str, str]
    reference_pose: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def _sided(left: dict[str, str], right_from_left) -> dict[str, str]:
    out = {}
    for k, v in left.items():
        out[f"left_{k}"] = v
        out[f"right_{k}"] = right_from_left(v)
    return out


# CMU "DAZ-friendly" conversion (cmu_daz, cmu_daz_atelier): 43 joints, zero pose is a T-pose.
_DAZ = {"pelvis": "hip", "spine2": "abdomen", "spine3": "chest", "neck": "neck", "head": "head"}
_DAZ.update(_sided({"hip": "lThigh", "knee": "lShin", "ankle": "lFoot", "collar": "lCollar",
                    "shoulder": "lShldr", "elbow": "lForeArm", "wrist": "lHand"},
                   lambda v: "r" + v[1:]))
CMU_DAZ = Skeleton("cmu_daz", "CMU DAZ-friendly 43-joint skeleton (hip, abdomen, chest, lShldr, ...)", _DAZ)

# CMU MotionBuilder naming of the full CMU BVH release (Hips, LowerBack, Spine, Spine1, Neck, Neck1, ...).
_MB = {"pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck",
       "head": "Head"}
_MB.update(_sided({"hip": "LeftUpLeg", "knee": "LeftLeg", "ankle": "LeftFoot", "foot": "LeftToeBase",
                   "collar": "LeftShoulder", "shoulder": "LeftArm", "elbow": "LeftForeArm",
                   "wrist": "LeftHand"},
                  lambda v: v.replace("Left", "Right")))
CMU_MOTIONBUILDER = Skeleton("cmu_motionbuilder",
                             "CMU BVH release, MotionBuilder naming (Hips, LHipJoint, LeftUpLeg, ...)", _MB)

# iClone Character Creator rig (cmu_iclone). Its zero pose is not a T-pose: every bone points along
# its local Y axis. The reference T-pose below is the rig's bind pose as the converter writes it in the
# first frame of the subject-07 takes (local quaternions, rounded to 1e-6); the other takes do not
# start in it. The neck follows NeckTwist02, the bone that points at the head (NeckTwist01 below it
# is off the neck-to-head line by 6-14 degrees on average in these takes).
_CC = {"pelvis": "CC_Base_Hip", "spine1": "CC_Base_Waist", "spine2": "CC_Base_Spine01",
       "spine3": "CC_Base_Spine02", "neck": "CC_Base_NeckTwist02", "head": "CC_Base_Head"}
_CC.update(_sided({"hip": "CC_Base_L_Thigh", "knee": "CC_Base_L_Calf", "ankle": "CC_Base_L_Foot",
                   "foot": "CC_Base_L_ToeBase", "collar": "CC_Base_L_Clavicle",
                   "shoulder": "CC_Base_L_Upperarm", "elbow": "CC_Base_L_Forearm", "wrist": "CC_Base_L_Hand"},
                  lambda v: v.replace("_L_", "_R_")))
_CC_TPOSE = {
    "CC_Base_Hip": (0.999999, -0.000001, 0.000004, -0.001684),
    "CC_Base_Pelvis": (0.994729, 0.102535, -0.000000, 0.000001),
    "CC_Base_L_Thigh": (0.000757, -0.000431, 0.144376, 0.989522),
    "CC_Base_L_Calf": (0.996594, -0.082460, -0.000839, -0.000622),
    "CC_Base_L_Foot": (0.755111, 0.653388, -0.044098, 0.030757),
    "CC_Base_L_ToeBase": (0.986336, 0.161652, 0.024753, -0.019915),
    "CC_Base_R_Thigh": (0.004513, 0.000855, -0.139565, -0.990202),
    "CC_Base_R_Calf": (0.997332, -0.073002, 0.000702, 0.000296),
    "CC_Base_R_Foot": (0.758045, 0.649974, 0.044112, -0.030897),
    "CC_Base_R_ToeBase": (0.986332, 0.161689, -0.024752, 0.019816),
    "CC_Base_Waist": (0.989979, 0.141204, 0.000237, 0.001668),
    "CC_Base_Spine01": (0.982855, -0.184379, 0.000001, -0.000000),
    "CC_Base_Spine02": (0.998926, -0.046337, -0.000017, 0.000011),
    "CC_Base_NeckTwist01": (0.982359, 0.187006, -0.000025, -0.000009),
    "CC_Base_NeckTwist02": (0.999903, -0.013897, -0.000009, -0.000006),
    "CC_Base_Head": (0.996457, -0.084106, 0.000037, 0.000005),
    "CC_Base_L_Clavicle": (0.716164, -0.025688, 0.155985, -0.679792),
    "CC_Base_L_Upperarm": (0.990249, 0.134726, 0.000083, -0.035447),
    "CC_Base_L_Forearm": (0.999939, 0.001351, 0.000078, 0.010947),
    "CC_Base_L_Hand": (0.998873, -0.026655, -0.001408, -0.039237),
    "CC_Base_R_Clavicle": (0.716166, -0.025638, -0.155948, 0.679801),
    "CC_Base_R_Upperarm": (0.990087, 0.135964, -0.002058, 0.035180),
    "CC_Base_R_Forearm": (0.999939, 0.001213, -0.000070, -0.010977),
    "CC_Base_R_Hand": (0.998829, -0.028047, 0.001423, 0.039383),
}
ICLONE_CC = Skeleton("iclone_cc", "iClone Character Creator rig (CC_Base_Hip, CC_Base_L_Thigh, ...)", _CC, _CC_TPOSE)

# ReActIdle (Blender export): 19 joints, no hands or toes; zero pose is a T-pose.
_REACT = {"pelvis": "pelvis", "spine1": "spine", "spine2": "spine", "spine3": "spine.001", "neck": "neck",
          "head": "face"}
_REACT.update(_sided({"hip": "thigh.L", "knee": "shin.L", "ankle": "foot.L", "collar": "shoulder.L",
                      "shoulder": "upper_arm.L", "elbow": "forearm.L"},
                     lambda v: v.replace(".L", ".R")))
REACTIDLE = Skeleton("reactidle", "ReActIdle 19-joint skeleton (pelvis, spine.001, upper_arm.L, ...)", _REACT)

SKELETONS = {s.name: s for s in (CMU_DAZ, CMU_MOTIONBUILDER, ICLONE_CC, REACTIDLE)}


def detect_skeleton(joint_names, source: str = "") -> Skeleton:
    """The known skeleton whose map fits ``joint_names`` (all its source joints present, case-sensitive).

    Raises ValueError listing, for the closest skeleton, the SMPL-X joints it could not map.
    """
    present = set(joint_names)
    best, best_missing = None, None
    for sk in SKELETONS.values():
        missing = {k: v for k, v in sk.joint_map.items() if v not in present}
        if not missing:
            return sk
        if best_missing is None or len(missing) < len(best_missing):
            best, best_missing = sk, missing
    raise ValueError(unmapped_message(source, best, best_missing, joint_names))


def unmapped_message(source, skeleton, missing, joint_names) -> str:
    lines = ", ".join(f"{k} (expected {v!r})" for k, v in missing.items())
    return (f"{source or 'BVH'}: unknown skeleton. Closest known skeleton {skeleton.name!r} could not map "
            f"these SMPL-X joints: {lines}. The file's joints are: {', '.join(joint_names)}. Pass a joint "
            f"map (SMPL-X name -> BVH joint name) or one of --skeleton {', '.join(SKELETONS)}.")


def resolve_skeleton(skeleton, joint_names, source: str = "") -> Skeleton:
    """Skeleton from 'auto', a known name, a Skeleton, or a user dict SMPL-X name -> source name."""
    if isinstance(skeleton, Skeleton):
        sk = skeleton
    elif isinstance(skeleton, dict):
        sk = Skeleton("user", "user-supplied joint map", dict(skeleton))
    elif skeleton in (None, "auto"):
        return detect_skeleton(joint_names, source)
    elif skeleton in SKELETONS:
        sk = SKELETONS[skeleton]
    else:
        raise ValueError(f"unknown skeleton {skeleton!r}; expected 'auto', one of {', '.join(SKELETONS)}, "
                         "or a dict SMPL-X joint name -> BVH joint name")
    present = set(joint_names)
    missing = {k: v for k, v in sk.joint_map.items() if v not in present}
    if missing:
        raise ValueError(unmapped_message(source, sk, missing, joint_names))
    return sk
