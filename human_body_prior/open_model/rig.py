"""The MakeHuman rig mapped onto SMPL-X joints: the joints located on the MakeHuman mesh, and
MakeHuman bones assigned to them (skinning weights).

Joint positions are centroids of the hm08 ``joint-*`` helper cubes (the same cubes the
MakeHuman rigs are built from). Skinning weights come from MakeHuman's ``default`` rig
(body, fingers, jaw, eyes); each of its bones is assigned to one SMPL-X joint, and a bone
without a counterpart (twist bones, metacarpals, toes, face muscles...) goes to its
nearest mapped ancestor.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES

_FINGER_NUM = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def _side_letter(name: str) -> str:
    return "l" if name.startswith("left") else "r"


def joint_cube_names() -> list[str]:
    """Cube group of each SMPL-X joint, in SMPL-X order (55 entries)."""
    body = {
        "pelvis": "joint-pelvis", "spine1": "joint-spine-4", "spine2": "joint-spine-3",
        "spine3": "joint-spine-2", "neck": "joint-neck", "head": "joint-head", "jaw": "joint-mouth",
    }
    sided = {"hip": "upper-leg", "knee": "knee", "ankle": "ankle", "foot": "foot-1",
             "collar": "clavicle", "shoulder": "shoulder", "elbow": "elbow", "wrist": "hand"}
    out = []
    for name in SMPLX_JOINT_NAMES:
        if name in body:
            out.append(body[name])
        elif name.endswith("_eye_smplhf"):
            out.append(f"joint-{_side_letter(name)}-eye")
        else:
            side, part = name.split("_", 1)
            s = _side_letter(side)
            if part in sided:
                out.append(f"joint-{s}-{sided[part]}")
            else:
                finger, k = part[:-1], part[-1]
                out.append(f"joint-{s}-finger-{_FINGER_NUM[finger]}-{k}")
    return out


def _direct_bone_map() -> dict[str, str]:
    """Default-rig bone -> SMPL-X joint name, for bones with a counterpart."""
    m = {"root": "pelvis", "spine05": "pelvis", "spine04": "spine1", "spine03": "spine2",
         "spine02": "spine3", "neck01": "neck", "neck02": "neck", "neck03": "neck",
         "head": "head", "jaw": "jaw", "eye.L": "left_eye_smplhf", "eye.R": "right_eye_smplhf"}
    for suffix, side in ((".L", "left"), (".R", "right")):
        m.update({
            f"pelvis{suffix}": "pelvis",
            f"upperleg01{suffix}": f"{side}_hip", f"upperleg02{suffix}": f"{side}_hip",
            f"lowerleg01{suffix}": f"{side}_knee", f"lowerleg02{suffix}": f"{side}_knee",
            f"foot{suffix}": f"{side}_ankle",
            f"clavicle{suffix}": f"{side}_collar",
            f"upperarm01{suffix}": f"{side}_shoulder", f"upperarm02{suffix}": f"{side}_shoulder",
            f"lowerarm01{suffix}": f"{side}_elbow", f"lowerarm02{suffix}": f"{side}_elbow",
            f"wrist{suffix}": f"{side}_wrist",
        })
        for t in range(1, 6):
            for k in range(1, 4):
                m[f"toe{t}-{k}{suffix}"] = f"{side}_foot"
        for finger, num in _FINGER_NUM.items():
            for k in range(1, 4):
                m[f"finger{num}-{k}{suffix}"] = f"{side}_{finger}{k}"
    return m


def bone_to_joint(rig: dict) -> dict[str, int]:
    """Every bone of a MakeHuman rig -> SMPL-X joint index (nearest mapped ancestor)."""
    direct = _direct_bone_map()
    index = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    out = {}
    for bone in rig:
        b = bone
        while b not in direct:
            parent = rig[b].get("parent", "")
            if not parent:
                raise ValueError(f"rig bone {bone!r} has no ancestor with an SMPL-X counterpart")
            b = parent
        out[bone] = index[direct[b]]
    return out


def skinning_weights(rig: dict, rig_weights: dict[str, list], num_verts: int) -> np.ndarray:
    """(num_verts, 55) SMPL-X skinning weights from a MakeHuman rig's vertex weights.

    Rows are normalised to sum to 1; vertices without any weight get the pelvis.
    """
    mapping = bone_to_joint(rig)
    w = np.zeros((num_verts, len(SMPLX_JOINT_NAMES)), dtype=np.float64)
    for bone, pairs in rig_weights.items():
        if bone not in mapping:
            raise ValueError(f"weights name bone {bone!r} that the rig does not have")
        if not pairs:
            continue
        arr = np.asarray(pairs, dtype=np.float64)
        idx = arr[:, 0].astype(np.int64)
        keep = idx < num_verts
        np.add.at(w[:, mapping[bone]], idx[keep], np.clip(arr[keep, 1], 0.0, None))
    total = w.sum(1)
    w[total <= 0, 0] = 1.0
    return w / w.sum(1, keepdims=True)


