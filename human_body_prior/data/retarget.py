"""Retargeting BVH motion onto the SMPL-X joint tree of a body model.

Method (batched over frames):

1. Reference pose of the source: the hierarchy's zero pose, or the skeleton's tabulated T-pose.
   The world axes are read off it: up = pelvis -> neck, left = right hip -> left hip (snapped to
   the file's coordinate axes), giving the rotation ``C`` into the model frame (Y up, +Z forward,
   +X left).
2. Each mapped SMPL-X joint (or chain of joints sharing one source joint) gets a constant alignment
   ``A`` taking the model's rest bone onto the source's reference bone. The trunk (pelvis, spine,
   neck, head) only gets the reference's heading: both rest poses are upright and their spinal
   curves differ by rig, so the trunk's rotations carry over unchanged. A limb bone gets the
   parent's alignment followed by the smallest swing onto its child direction (twist is inherited
   down the chain, never invented); a limb joint with several mapped children a least-squares
   rotation (left/right pairs enter as the line between them).
3. Per frame, the source bone's rotation away from its reference, ``D = C G_t G_ref^T C^T``, gives
   the model bone's world orientation ``D A``; for limb bones a small swing then points the bone
   exactly at the source child (intermediate source joints such as twist bones move children a
   little). Twist about the bone comes from the source orientation.
4. Local rotations ``R_parent^T R``; a chain of k SMPL-X joints sharing one source joint gets
   the k-th root of the chain's rotation at each joint. Unmapped joints keep the identity.
5. Hinge calibration: per take, each upper arm and thigh is turned about its own axis so that its
   elbow or knee flexes straight forwards / backwards in the model's rest frame (rigs roll these
   bones differently at rest; see ``_calibrate_hinge_twist``). Joint positions do not change.
6. Anatomical corrections (:mod:`human_body_prior.data.anatomy`; ``anatomical=False`` skips them): the
   collars follow the arms (shoulder rhythm), the elbows keep only their swing, and with a performer's
   calibration (:mod:`human_body_prior.data.performer`) the pelvis tilt, knees and feet are brought to
   where a body-surface fit of SMPL puts them.
7. Translation: the source hip centre scaled by model leg length / source leg length.

All lengths of the output are metres in the model's frame; ``world_up='z'`` turns the world to the
AMASS convention (Z up) by rotating the root.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from human_body_prior.data.anatomy import (
    apply_girdle_rhythm,
    pitch_feet,
    straighten_knees,
    tilt_pelvis,
    untwist_elbows,
)
from human_body_prior.data.bvh import (
    BVH,
    bvh_forward_kinematics,
    joint_world_frames,
    rest_pose,
)
from human_body_prior.data.hinge_bend import STRAIGHT_TOL_DEG, bend_deg
from human_body_prior.data.skeleton_maps import (
    REQUIRED_JOINTS,
    Skeleton,
    resolve_skeleton,
)
from human_body_prior.geometry.rigid import rigid_registration
from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    quaternion_to_matrix,
    rotation_between,
)
from human_body_prior.model_types.joints import (
    HINGES,
    NUM_JOINTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)
from human_body_prior.model_types.spec import SMPLX

_JOINT = {name: k for k, name in enumerate(SMPLX_JOINT_NAMES)}
_PELVIS, _HIPS = _JOINT["pelvis"], (_JOINT["left_hip"], _JOINT["right_hip"])
_LEGS = tuple((_JOINT[f"{side}_hip"], _JOINT[f"{side}_knee"], _JOINT[f"{side}_ankle"]) for side in ("left", "right"))

NUM_SMPLX_JOINTS = NUM_JOINTS["smplx"]
# Joints whose bones run along the trunk (the SMPL-X spec's midline chain and face joints). Rigs place their
# spine joints differently (spinal curve, pelvis joint above or between the hips), so these are not aligned
# bone by bone: an upright source T-pose maps to the model's upright rest trunk, and the source's trunk
# rotations carry over as they are.
TORSO_JOINTS = frozenset(SMPLX.trunk_joints)
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rotation +90 deg about X: y -> z


# --------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class RetargetDiagnostics:
    """What a retargeting run read off its source, for quality reporting
    (:mod:`human_body_prior.evaluation.retarget_quality`) and pictures.

    groups: [(model joint indices root-first, source joint name)], the chains of model joints that share
    one source joint, root first; group_parents: per group the index of the group holding the nearest
    mapped ancestor of its first joint (-1 for the root's group); source_index: source joint name ->
    index in the BVH; source_positions (F, S, 3) and source_rotations (F, S, 3, 3): the source's world joints, file units
    and axes; reference_rotations (S, 3, 3): its T-pose orientations; alignments: per group the (3, 3)
    rest alignment A; C (3, 3): file axes -> model axes; world_rotation (3, 3): model frame -> output
    world (W); swing_deg (F, 55): size of the per-frame swing corrections; hinge_twist_deg: {upper
    joint: turn (deg)} of the hinge calibration.
    """

    groups: list
    group_parents: list
    source_index: dict
    source_positions: np.ndarray
    source_rotations: np.ndarray
    reference_rotations: np.ndarray
    alignments: list
    C: np.ndarray
    world_rotation: np.ndarray
    swing_deg: np.ndarray
    hinge_twist_deg: dict


@dataclass(frozen=True)
class RetargetResult:
    """A retargeted take: pose (F, 55, 3) axis-angle local rotations in SMPL-X order, trans (F, 3)
    metres, global_rot (F, 55, 3, 3) model-frame world orientations (before the world-up rotation),
    skeleton (the name of the source skeleton map), scale (model / source length), diagnostics."""

    pose: np.ndarray
    trans: np.ndarray
    global_rot: np.ndarray
    skeleton: str
    scale: float
    diagnostics: RetargetDiagnostics


# --------------------------------------------------------------------------------------- model skeleton

def model_rest_skeleton(bm_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Rest joints (55, 3) in metres (mean shape) and parents (55,) of an SMPL-X model file."""
    from human_body_prior.body_model.model_io import load_model_file

    data = load_model_file(bm_path)
    J = np.asarray(data["J_regressor"], dtype=np.float64) @ np.asarray(data["v_template"], dtype=np.float64)
    if J.shape != (NUM_SMPLX_JOINTS, 3):
        raise ValueError(f"{bm_path}: retargeting needs an SMPL-X model (55 joints), got J_regressor giving {J.shape}")
    return J, np.array(SMPLX_PARENTS)


# --------------------------------------------------------------------------------------- small rotation helpers (numpy, (..., 3))

def _unit(v, eps=1e-12):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def swing_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking directions a (..., 3) onto b (..., 3) -> (..., 3, 3); a half turn for
    opposite ones (numpy front of :func:`human_body_prior.geometry.rotations.rotation_between`)."""
    return rotation_between(torch.from_numpy(np.asarray(a, dtype=np.float64)),
                            torch.from_numpy(np.asarray(b, dtype=np.float64))).numpy()


def vector_alignment(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R (3, 3) minimising sum |R src_i - dst_i|^2 for vectors (n, 3) (Kabsch about the origin,
    :func:`human_body_prior.geometry.rigid.rigid_registration`)."""
    R, _ = rigid_registration(torch.from_numpy(np.asarray(src, dtype=np.float64)),
                              torch.from_numpy(np.asarray(dst, dtype=np.float64)), translation=False, min_points=1)
    return R.numpy()


def _quat_to_matrix_np(q) -> np.ndarray:
    return quaternion_to_matrix(torch.as_tensor(np.asarray(q, dtype=np.float64))).numpy()


# --------------------------------------------------------------------------------------- reference pose

def reference_pose(bvh: BVH, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Source T-pose: world positions (J, 3) and orientations (J, 3, 3)."""
    if not skeleton.reference_pose:
        return rest_pose(bvh)
    J = len(bvh.names)
    local = np.broadcast_to(np.eye(3), (J, 3, 3)).copy()
    anchor = None
    for name, q in skeleton.reference_pose.items():
        if name in bvh.names:
            local[bvh.index(name)] = _quat_to_matrix_np(q)
            if anchor is None:
                anchor = bvh.index(name)
    pos, rot = joint_world_frames(local[None], bvh.offsets[None], bvh.parents)
    pos, rot = pos[0], rot[0]
    if anchor is not None:
        # the first tabulated joint's quaternion is its world orientation: re-anchor the pose there
        fix = local[anchor] @ rot[anchor].T
        pos = (pos - pos[anchor]) @ fix.T + pos[anchor]
        rot = fix @ rot
    return pos, rot


def world_axes(ref_pos: np.ndarray, idx: dict[str, int]) -> np.ndarray:
    """Rotation C (3, 3) from the file's world axes into the model's (X left, Y up, Z forward),
    read off the reference pose and snapped to the coordinate axes."""
    up = ref_pos[idx["neck"]] - ref_pos[idx["pelvis"]]
    left = (ref_pos[idx["left_hip"]] - ref_pos[idx["right_hip"]]
            + ref_pos[idx["left_shoulder"]] - ref_pos[idx["right_shoulder"]])
    ua = int(np.argmax(np.abs(up)))
    up_axis = np.zeros(3)
    up_axis[ua] = np.sign(up[ua])
    left = left.copy()
    left[ua] = 0.0
    la = int(np.argmax(np.abs(left)))
    left_axis = np.zeros(3)
    left_axis[la] = np.sign(left[la])
    fwd_axis = np.cross(left_axis, up_axis)
    return np.stack([left_axis, up_axis, fwd_axis])  # rows: file vector -> model coordinates


# --------------------------------------------------------------------------------------- retargeting steps

@dataclass(frozen=True)
class _JointMap:
    """A skeleton map on the model tree: groups [(model joint indices root-first, source joint name)],
    sorted root-first; src_idx: source name -> BVH joint index; head_of: model joint -> its group;
    first: model name of each group's first joint -> BVH joint index; above: per group the nearest mapped
    model joint above its head (-1: none); group_parent: that joint's group (-1: none); group_children:
    per group the groups directly below it."""

    groups: list
    src_idx: dict
    head_of: dict
    first: dict
    above: list
    group_parent: list
    group_children: list


@dataclass(frozen=True)
class _SourceGeometry:
    """Step 1, the source take's geometry in file units and axes: world joint positions P (F, S, 3) and
    orientations G (F, S, 3, 3); the reference pose's P_ref (S, 3) and G_ref (S, 3, 3); C (3, 3) file
    axes -> model axes; leg_length: mean hip-knee-ankle length of the reference pose."""

    P: np.ndarray
    G: np.ndarray
    P_ref: np.ndarray
    G_ref: np.ndarray
    C: np.ndarray
    leg_length: float


def _source_geometry(bvh: BVH, sk: Skeleton, first: dict) -> _SourceGeometry:
    """Step 1: forward kinematics of the take and of its reference pose, and the world axes C.
    first: mapped model joint name -> BVH joint index. ValueError for legs of zero length."""
    P, G = bvh_forward_kinematics(bvh)
    P_ref, G_ref = reference_pose(bvh, sk)
    leg = 0.5 * sum(np.linalg.norm(P_ref[first[f"{s}_{b}"]] - P_ref[first[f"{s}_{a}"]])
                    for s in ("left", "right") for a, b in (("hip", "knee"), ("knee", "ankle")))
    if not leg > 1e-9 * max(1.0, float(np.abs(P_ref).max())):
        raise ValueError(f"{bvh.source}: the legs (hip, knee, ankle) have zero length in the reference pose "
                         "(all OFFSETs 0?); the skeleton cannot be scaled to the body model")
    return _SourceGeometry(P, G, P_ref, G_ref, world_axes(P_ref, first), leg)


# --------------------------------------------------------------------------------------- retargeting

class Retargeter:
    """Retargets BVH takes of one skeleton onto one SMPL-X rest skeleton.

    rest_joints: (55, 3) model rest joints in metres (T-pose, Y up, facing +Z, left at +X);
    parents: (55,).
    """

    def __init__(self, rest_joints: np.ndarray, parents=None):
        self.J = np.asarray(rest_joints, dtype=np.float64)
        self.parents = np.array(SMPLX_PARENTS if parents is None else parents)
        if self.J.shape != (NUM_SMPLX_JOINTS, 3) or self.parents.shape != (NUM_SMPLX_JOINTS,):
            raise ValueError(f"rest_joints must be (55, 3) and parents (55,), got {self.J.shape} and {self.parents.shape}")
        self.names = list(SMPLX_JOINT_NAMES)

    @classmethod
    def from_model_file(cls, bm_path: str) -> "Retargeter":
        J, parents = model_rest_skeleton(bm_path)
        return cls(J, parents)

    # ---- structure of a map on the model tree
    def _groups(self, joint_map: dict[str, str]):
        """Chains of model joints sharing a source joint -> list of (joint indices root-first, source name)."""
        name_to_idx = {n: i for i, n in enumerate(self.names)}
        unknown = [k for k in joint_map if k not in name_to_idx]
        if unknown:
            raise ValueError(f"joint map names unknown SMPL-X joints {unknown}; valid names: {', '.join(self.names)}")
        groups = {}
        for name, src in joint_map.items():
            groups.setdefault(src, []).append(name_to_idx[name])
        out = []
        for src, idx in groups.items():
            idx = sorted(idx)
            for a, b in zip(idx[:-1], idx[1:]):
                if self.parents[b] != a:
                    raise ValueError(f"SMPL-X joints {[self.names[i] for i in idx]} share source joint {src!r} "
                                     "but do not form a parent-child chain")
            out.append((idx, src))
        out.sort(key=lambda g: g[0][0])
        return out

    def retarget(self, bvh: BVH, skeleton="auto", world_up: str = "z", calibration=None,
                 anatomical: bool = True) -> RetargetResult:
        """Retarget a parsed BVH take; see :class:`RetargetResult` (and its diagnostics).

        anatomical: apply :mod:`human_body_prior.data.anatomy`'s corrections (collars from the arms,
        elbows without twist, and with a ``calibration``, the performer's
        :class:`human_body_prior.data.performer.Calibration`: pelvis tilt, knees, feet); False gives the
        source skeleton's geometry exactly.
        The steps are those of the module docstring, one method each.
        """
        if world_up not in ("y", "z"):
            raise ValueError(f"world_up must be 'y' or 'z', got {world_up!r}")
        sk = resolve_skeleton(skeleton, bvh.names, bvh.source)
        m = self._map_joints(bvh, sk)
        src = _source_geometry(bvh, sk, m.first)
        A = self._alignments(m, src)
        R_group, swing_deg = self._group_orientations(m, src, A)
        local = self._chain_local_rotations(m.groups, R_group, m.above)
        twist_turns = self._calibrate_hinge_twist(local, m.head_of)
        if anatomical:
            self._anatomical_corrections(local, calibration)
        _, glob = joint_world_frames(local, np.zeros(local.shape[:-1]), self.parents)
        W = Y_UP_TO_Z_UP if world_up == "z" else np.eye(3)
        trans, scale = self._root_motion(local, glob, src, m.first, W)
        pose = matrix_to_axis_angle(torch.from_numpy(local)).numpy()
        if not (np.isfinite(pose).all() and np.isfinite(trans).all()):
            raise ValueError(f"{bvh.source}: retargeting gave non-finite poses or translations "
                             "(a degenerate skeleton: coincident joints?)")
        diagnostics = RetargetDiagnostics(
            groups=m.groups, group_parents=m.group_parent, source_index=m.src_idx, source_positions=src.P,
            source_rotations=src.G, reference_rotations=src.G_ref, alignments=A, C=src.C, world_rotation=W,
            swing_deg=swing_deg, hinge_twist_deg=twist_turns)
        return RetargetResult(pose=pose, trans=trans, global_rot=glob, skeleton=sk.name, scale=float(scale),
                              diagnostics=diagnostics)

    def _map_joints(self, bvh: BVH, sk: Skeleton) -> _JointMap:
        """The skeleton map ``sk`` on this model tree and on ``bvh``'s joints (step 2's structure)."""
        jm = sk.joint_map
        missing = [j for j in REQUIRED_JOINTS if j not in jm]
        if missing:
            raise ValueError(f"{bvh.source}: joint map of skeleton {sk.name!r} lacks required SMPL-X joints {missing}")
        groups = self._groups(jm)
        src_idx = {src: bvh.index(src) for _, src in groups}
        head_of = {i: g for g, (idx, _) in enumerate(groups) for i in idx}  # model joint -> its group
        first = {self.names[idx[0]]: src_idx[src] for idx, src in groups}
        # model children of each group: first joints of groups whose head's parent is in this group
        above = [self._mapped_ancestor(idx[0], head_of) for idx, _ in groups]
        group_parent = [head_of[p] if p >= 0 else -1 for p in above]
        group_children = [[] for _ in groups]
        for g, p in enumerate(group_parent):
            if p >= 0:
                group_children[p].append(g)
        return _JointMap(groups, src_idx, head_of, first, above, group_parent, group_children)

    def _alignments(self, m: _JointMap, src: _SourceGeometry) -> list:
        """Step 2: per group the constant (3, 3) alignment A, model rest -> source reference in the model
        frame: the root's heading, the trunk's parent's A, a limb bone's swing or least-squares fit."""
        A = [None] * len(m.groups)
        for g, (idx, s) in enumerate(m.groups):  # groups are sorted root-first
            parent = m.group_parent[g]
            A_par = A[parent] if parent >= 0 else np.eye(3)
            if parent < 0:
                A[g] = self._heading_alignment(src.P_ref, m.first, src.C)
            elif self.names[idx[0]] in TORSO_JOINTS:
                A[g] = A_par
            else:
                vm, vs = self._alignment_vectors(idx[0], s, m.groups, m.group_children[g], src.P_ref, m.src_idx, src.C)
                if len(vm) >= 2 and np.linalg.matrix_rank(_unit(vm), tol=1e-3) >= 2:
                    A[g] = vector_alignment(_unit(vm), _unit(vs))
                elif len(vm) >= 1:
                    A[g] = swing_rotation(A_par @ vm[0], vs[0]) @ A_par
                else:
                    A[g] = A_par
        return A

    def _group_orientations(self, m: _JointMap, src: _SourceGeometry, A: list) -> tuple[np.ndarray, np.ndarray]:
        """Step 3: world orientation (G, F, 3, 3) of each group's last joint, ``D A`` with D the source
        bone's turn from its reference; a limb bone with one mapped child is then swung onto it.
        Returns it and swing_deg (F, 55), the size of those swings in degrees."""
        F = src.P.shape[0]
        R_group = np.empty((len(m.groups), F, 3, 3))
        swing_deg = np.zeros((F, NUM_SMPLX_JOINTS))
        C = src.C
        for g, (idx, s_name) in enumerate(m.groups):
            s = m.src_idx[s_name]
            D = C @ src.G[:, s] @ src.G_ref[s].T @ C.T
            R = D @ A[g]
            if len(m.group_children[g]) == 1 and self.names[idx[0]] not in TORSO_JOINTS:
                c = m.group_children[g][0]
                vm = self.J[m.groups[c][0][0]] - self.J[idx[0]]
                target = (src.P[:, m.src_idx[m.groups[c][1]]] - src.P[:, s]) @ C.T
                S = swing_rotation(R @ vm, target)
                swing_deg[:, idx[-1]] = np.degrees(np.arccos(np.clip((np.trace(S, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
                R = S @ R
            R_group[g] = R
        return R_group, swing_deg

    def _root_motion(self, local, glob, src: _SourceGeometry, first: dict, W: np.ndarray) -> tuple[np.ndarray, float]:
        """Step 7: the root's rotation turned to the output world W (3, 3), in place on local[:, 0], and
        the translation (F, 3) in metres: the source hip centre scaled by model / source leg length.
        glob (F, 55, 3, 3): model-frame world orientations. Returns (trans, scale)."""
        Jm = self.J
        root_global = glob[:, 0]
        scale = self._leg_length(Jm) / src.leg_length
        hip_c_src = 0.5 * (src.P[:, first["left_hip"]] + src.P[:, first["right_hip"]]) @ src.C.T * scale
        hip_c_model = 0.5 * (Jm[_HIPS[0]] + Jm[_HIPS[1]])
        # posed pelvis = J0 + trans; posed hip centre = J0 + trans + R_root (hip_c_model - J0)
        pelvis_world = hip_c_src - np.einsum("fab,b->fa", root_global, hip_c_model - Jm[_PELVIS])
        local[:, 0] = W @ root_global
        return pelvis_world @ W.T - Jm[_PELVIS], scale

    def _anatomical_corrections(self, local, calibration) -> None:
        """The corrections of :mod:`human_body_prior.data.anatomy`, in place on local (F, 55, 3, 3)."""
        apply_girdle_rhythm(local, self.J, self.parents)
        untwist_elbows(local, self.J)
        if calibration is None:
            return
        tilt_pelvis(local, self.parents, calibration.pelvis_turn_deg)
        straighten_knees(local, self.J, self.parents, calibration.knee_offset_deg)
        if calibration.flat_foot_pitch_deg is not None:
            pitch_feet(local, calibration.flat_foot_pitch_deg - self.rest_foot_pitch_deg())

    def rest_foot_pitch_deg(self) -> float:
        """Elevation (deg) of the model's rest ankle -> toe line, both feet averaged."""
        d = [self.J[self.names.index(f"{s}_foot")] - self.J[self.names.index(f"{s}_ankle")] for s in ("left", "right")]
        return float(np.mean([np.degrees(np.arctan2(v[1], np.hypot(v[0], v[2]))) for v in d]))

    def _mapped_ancestor(self, j: int, mapped) -> int:
        """The nearest proper ancestor of model joint j in ``mapped`` (-1 if none)."""
        p = self.parents[j]
        while p >= 0 and p not in mapped:
            p = self.parents[p]
        return int(p)

    def _chain_local_rotations(self, groups, R_group, above) -> np.ndarray:
        """Local rotations (F, 55, 3, 3) that give each group's last joint the world orientation
        R_group[g] (F, 3, 3); above[g] is the mapped joint above the group's head (-1: none); unmapped
        joints keep the identity.

        A chain of k model joints sharing one source joint gets the k-th root of its rotation relative
        to the joint above it at each of its joints (the share of each joint along the axis-angle).
        Groups are root-first, so the joint above a group's head has its world orientation already.
        """
        F = R_group.shape[1]
        local = np.broadcast_to(np.eye(3), (F, NUM_SMPLX_JOINTS, 3, 3)).copy()
        world = {}  # mapped joint -> its world orientation (F, 3, 3)
        for g, (idx, _) in enumerate(groups):
            W = world[above[g]] if above[g] >= 0 else np.eye(3)  # unmapped joints in between turn nothing
            L = np.swapaxes(W, -1, -2) @ R_group[g]
            if len(idx) == 1:
                local[:, idx[0]] = L
                world[idx[0]] = R_group[g]
                continue
            aa = matrix_to_axis_angle(torch.from_numpy(L))
            local[:, idx] = axis_angle_to_matrix(aa / len(idx)).numpy()[:, None]
            for i, j in enumerate(idx):
                world[j] = W @ axis_angle_to_matrix(aa * ((i + 1) / len(idx))).numpy()
        return local

    def _calibrate_hinge_twist(self, local, mapped, min_bend_deg=STRAIGHT_TOL_DEG, min_frames=10,
                               min_concentration=0.5) -> dict[str, float]:
        """Turn each upper arm and thigh about its own axis so that its elbow or knee flexes straight
        forwards (elbows) or backwards (knees) in the model's rest frame.

        An elbow or knee bends in one plane fixed to its upper bone, but rigs roll that bone
        differently in their rest poses: the CMU conversions here bend the elbow 24-33 degrees above
        straight forwards, the ReActIdle rig 17-60 degrees below, and a few CMU DAZ takes turn the
        upper arm half a turn and bend the elbow backwards (the same positions). Copied as they are,
        one movement would reach the prior with several upper-arm twists. Per take, the bending plane
        is fitted to the lower bone's directions over frames bent more than ``min_bend_deg`` from the
        upper bone's line (:meth:`_hinge_turn`); the upper bone is turned about its own axis until
        that plane's axis is the model's, for the whole take and the hinge's rotation compensates, so every joint keeps its position and
        everything below the hinge its orientation. Takes with fewer bent frames, or no consistent
        plane (mean resultant length below ``min_concentration``), are left as they are.
        Edits local (F, 55, 3, 3) in place; returns {upper joint: turn in degrees}.
        """
        turns = {}
        for hinge in HINGES:
            upper, a, h, c = self.names[hinge.upper], hinge.upper, hinge.joint, hinge.child
            if a not in mapped or h not in mapped:
                continue
            u = _unit(self.J[h] - self.J[a])
            v = _unit(self.J[c] - self.J[h])
            d = local[:, h] @ v  # lower bone direction in the upper bone's frame
            # bent: away from the upper bone's line (the rest lower bone may itself be a little bent, as
            # the knee of SMPL's zero pose is; a straight or overstretched leg is not bending)
            bent = bend_deg(d, u) > min_bend_deg
            if bent.sum() < min_frames:
                continue
            f = np.array(hinge.flexion)  # the model bends its rest lower bone v towards f (evaluation/hinges)
            f = _unit(f - (f @ v) * v)
            s = np.cross(v, f)
            w = d[bent] - v
            z = np.mean(np.exp(1j * np.arctan2(w @ s, w @ f)))
            if abs(z) < min_concentration:
                continue
            theta = self._hinge_turn(u, v, f, d[bent], float(np.angle(z)))
            T = axis_angle_to_matrix(torch.from_numpy(u * theta)).numpy()  # turn about the upper bone
            local[:, a] = local[:, a] @ T
            local[:, h] = T.T @ local[:, h]
            turns[upper] = round(float(np.degrees(theta)), 2)
        return turns

    @staticmethod
    def _hinge_turn(u, v, f, bent_dirs, mean_angle, min_spread=0.1) -> float:
        """Turn (rad) about the upper bone u that takes the model's hinge axis (v x f) onto the source's.

        The source's axis is the normal of the plane (through the origin) of its bent lower-bone
        directions bent_dirs (N, 3), upper bone frame, oriented like v x their mean; measured about u,
        the axis the turn is made about, so it is exact for a hinge whose rest bones are not in line
        (the zero pose's forearm rests 5.4 degrees off the upper arm's line). When the directions span
        too little of the plane to fix it (second singular value below min_spread of the first), the
        circular mean bending angle mean_angle (rad, about v) is used instead.
        """
        _, sv, vt = np.linalg.svd(bent_dirs)
        if len(sv) < 2 or sv[1] < min_spread * sv[0]:
            return mean_angle
        source = vt[-1] if vt[-1] @ np.cross(v, bent_dirs.mean(0)) >= 0 else -vt[-1]
        model = np.cross(v, f)
        a, b = model - (model @ u) * u, source - (source @ u) * u
        return float(np.arctan2(u @ np.cross(a, b), a @ b))

    def _heading_alignment(self, P_ref, first, C):
        """Rotation about the vertical taking the model's hip line onto the source reference's."""
        a = self.J[self.names.index("left_hip")] - self.J[self.names.index("right_hip")]
        b = C @ (P_ref[first["left_hip"]] - P_ref[first["right_hip"]])
        a[1] = b[1] = 0.0
        if np.linalg.norm(b) < 1e-9 or np.linalg.norm(a) < 1e-9:
            return np.eye(3)
        return swing_rotation(a, b)

    def _alignment_vectors(self, h, src, groups, children, P_ref, src_idx, C):
        """Matching model-rest and source-reference vectors (n, 3) that fix a bone's orientation.

        A left/right pair of children (hips, collars) contributes the vector between the two (the
        hip or shoulder line) instead of the two vectors from the parent: where a skeleton puts its
        pelvis or chest joint relative to the limbs differs between rigs, their side-to-side line
        does not. Vectors of zero length in the source are dropped.
        """
        first = {groups[c][0][0]: groups[c][1] for c in children}
        vm, vs = [], []
        used = set()
        for j, s_name in first.items():
            name = self.names[j]
            if name.startswith("left_"):
                other = self.names.index("right_" + name[5:])
                if other in first:
                    used |= {j, other}
                    vm.append(self.J[j] - self.J[other])
                    vs.append(C @ (P_ref[src_idx[s_name]] - P_ref[src_idx[first[other]]]))
        for j, s_name in first.items():
            if j not in used:
                vm.append(self.J[j] - self.J[h])
                vs.append(C @ (P_ref[src_idx[s_name]] - P_ref[src_idx[src]]))
        keep = [k for k in range(len(vs)) if np.linalg.norm(vs[k]) > 1e-6 and np.linalg.norm(vm[k]) > 1e-9]
        return np.array([vm[k] for k in keep]).reshape(-1, 3), np.array([vs[k] for k in keep]).reshape(-1, 3)

    @staticmethod
    def _leg_length(J):
        """Mean over both legs of hip-knee + knee-ankle length of the model's rest joints J (J, 3)."""
        (lh, lk, la), (rh, rk, ra) = _LEGS
        return 0.5 * (np.linalg.norm(J[lk] - J[lh]) + np.linalg.norm(J[la] - J[lk])
                      + np.linalg.norm(J[rk] - J[rh]) + np.linalg.norm(J[ra] - J[rk]))
