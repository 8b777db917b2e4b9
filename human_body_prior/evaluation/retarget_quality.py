"""How faithfully a retargeted take reproduces its BVH source.

- Joint error: the body model's posed joints against the BVH joint positions with every bone's
  length replaced by the model's (limbs: source bone directions with model bone lengths; trunk:
  the model's rest bones turned by the source's trunk rotations, see normalised_source_joints), on
  the mapped body joints, in millimetres.
- Bend direction: share of frames in which a bent knee moves the shin backwards and a bent elbow
  moves the forearm forwards in the parent bone's frame (the anatomical directions; both the hinge
  and the twist of the upper bone must be right for this to hold).
"""

from __future__ import annotations

import numpy as np
import torch

from human_body_prior.data.hinge_bend import STRAIGHT_TOL_DEG, bend_deg
from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import (
    BODY_JOINT_NAMES,
    HINGES,
    NUM_BODY_JOINTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)

# hips and collars: chained from the model's own joint
_LIMB_ROOTS = tuple(BODY_JOINT_NAMES.index(n) for n in ("left_hip", "right_hip", "left_collar", "right_collar"))


def _with_parent_group(diagnostics):
    """(first model joint, source joint, parent group index) of each group but the root's."""
    for (idx, src), parent in zip(diagnostics.groups, diagnostics.group_parents):
        if parent >= 0:
            yield idx[0], src, parent


def normalised_source_joints(result, model_joints: np.ndarray, rest_joints: np.ndarray) -> dict[int, np.ndarray]:
    """Mapped model joint index -> (F, 3) length-normalised source position, in the output world.

    Limbs: each source bone keeps its direction and takes the model's bone length, chained from the
    model's hip or collar. Trunk (spine, neck, head): rigs curve their spines differently, so a trunk
    joint is placed by turning the model's rest bone with the source bone's rotation away from its
    T-pose (``C G_t G_ref^T C^T`` after the heading alignment), chained from the model's pelvis. The
    left hip is placed from the right hip along the source's hip line, which checks the pelvis.
    result: a :class:`~human_body_prior.data.retarget.RetargetResult` (its diagnostics are read);
    model_joints: (F, 55, 3) posed model joints in metres.
    """
    from human_body_prior.data.retarget import TORSO_JOINTS

    d = result.diagnostics
    groups, src_idx = d.groups, d.source_index
    P, G, G_ref, A = d.source_positions, d.source_rotations, d.reference_rotations, d.alignments
    C, W = d.C, d.world_rotation
    M = W @ C
    names = SMPLX_JOINT_NAMES
    head_of = {i: g for g, (idx, _) in enumerate(groups) for i in idx}

    def direction(a, b):
        d = (P[:, src_idx[b]] - P[:, src_idx[a]]) @ M.T
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)

    root = groups[0][0][0]
    anchors = {root: model_joints[:, root]}
    measured = {}
    for c, src, pg in _with_parent_group(d):
        pidx, psrc = groups[pg]
        ph = pidx[0]
        if c in _LIMB_ROOTS:
            anchors[c] = model_joints[:, c]
            continue
        if names[c] in TORSO_JOINTS:
            s = src_idx[psrc]
            turn = W @ C @ G[:, s] @ G_ref[s].T @ C.T @ A[pg]
            anchors[c] = anchors[ph] + turn @ (rest_joints[c] - rest_joints[ph])
        else:
            anchors[c] = anchors[ph] + np.linalg.norm(rest_joints[c] - rest_joints[ph]) * direction(psrc, src)
        measured[c] = anchors[c]
    lh, rh = names.index("left_hip"), names.index("right_hip")
    if lh in head_of and rh in head_of:
        d = direction(groups[head_of[rh]][1], groups[head_of[lh]][1])
        measured[lh] = model_joints[:, rh] + np.linalg.norm(rest_joints[lh] - rest_joints[rh]) * d
    return measured


def joint_errors_mm(result, model_joints: np.ndarray, rest_joints: np.ndarray) -> dict[int, np.ndarray]:
    """Per mapped body joint (not the pelvis) the (F,) distance in mm between the model's posed joint
    (model_joints (F, 55, 3), metres) and the length-normalised source joint."""
    ref = normalised_source_joints(result, model_joints, rest_joints)
    return {j: 1000 * np.linalg.norm(model_joints[:, j] - q, axis=-1)
            for j, q in ref.items() if 0 < j < NUM_BODY_JOINTS}


def strict_joint_errors_mm(result, model_joints: np.ndarray, rest_joints: np.ndarray) -> dict[int, np.ndarray]:
    """The literal measure, for contrast: every source bone (trunk and torso-to-limb bones too) keeps
    its direction with the model's length, chained from the model's pelvis. Differences between the
    rigs' rest skeletons (spinal curve, where the pelvis and collar joints sit) count as error here.
    Source bones of zero length (a joint on top of its parent) are skipped: the child is anchored at
    the model's joint. Returns per mapped body joint the (F,) error in mm."""
    d = result.diagnostics
    groups, src_idx = d.groups, d.source_index
    P = d.source_positions
    M = d.world_rotation @ d.C
    root = groups[0][0][0]
    q = {root: model_joints[:, root]}
    out = {}
    for c, src, pg in _with_parent_group(d):
        pidx, psrc = groups[pg]
        bone = (P[:, src_idx[src]] - P[:, src_idx[psrc]]) @ M.T
        n = np.linalg.norm(bone, axis=-1, keepdims=True)
        if float(n.min()) < 1e-9:
            q[c] = model_joints[:, c]
            continue
        q[c] = q[pidx[0]] + np.linalg.norm(rest_joints[c] - rest_joints[pidx[0]]) * bone / n
        if c < NUM_BODY_JOINTS:
            out[c] = 1000 * np.linalg.norm(model_joints[:, c] - q[c], axis=-1)
    return out


def bend_direction_share(pose: np.ndarray, rest_joints: np.ndarray,
                         min_bend_deg: float = STRAIGHT_TOL_DEG) -> dict[str, float]:
    """Share of bent frames (bend > min_bend_deg, the package's one threshold,
    :data:`human_body_prior.data.hinge_bend.STRAIGHT_TOL_DEG`) bending the anatomical way, for knees and elbows.

    In the upper bone's frame the upper bone points along its rest direction u; the lower bone points
    along d = R_local @ (its rest direction). The bend is the angle between u and d
    (:func:`~human_body_prior.data.hinge_bend.bend_deg`); a knee bends the anatomical way when d - u
    points backwards (-Z), an elbow when it points forwards (+Z).
    pose: (F, 55, 3) local axis-angle rotations. Returns {'knee': share, 'elbow': share,
    'knee_bent_frames': n, 'elbow_bent_frames': n} (share is nan when nothing bends).
    """
    out = {}
    parents = SMPLX_PARENTS
    for name in ("knee", "elbow"):
        good = bent = 0
        for j, c, sign in ((h.joint, h.child, h.flexion[2]) for h in HINGES if h.name.endswith(name)):
            u = rest_joints[j] - rest_joints[parents[j]]
            u = u / np.linalg.norm(u)
            v = rest_joints[c] - rest_joints[j]
            v = v / np.linalg.norm(v)
            d = axis_angle_to_matrix(torch.from_numpy(np.asarray(pose[:, j], dtype=np.float64))).numpy() @ v
            is_bent = bend_deg(d, u) > min_bend_deg
            bent += int(is_bent.sum())
            good += int((is_bent & (sign * (d[:, 2] - u[2]) > 0)).sum())
        out[name] = good / bent if bent else float("nan")
        out[f"{name}_bent_frames"] = bent
    return out
