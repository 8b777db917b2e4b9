"""Paired-take fidelity: our BVH import of a take against an independent SMPL fit of the same take.

The CMU takes exist both as BVH conversions (``../shared/mocap``) and as AMASS MoSh++ fits
(SMPL-X ``*_stageii.npz``, fitted to the original optical markers). Importing the BVH with the project's
retargeting (:func:`human_body_prior.data.bvh2amass.convert_take`, the code path of ``bvh2amass``) and
comparing frame by frame with the fit measures how far our pose space is from SMPL's as AMASS encodes it.

Method, per take:

1. Our import is resampled (slerp) to the fit's frame rate.
2. Frames are aligned by the time lag that maximises the agreement (mean Pearson correlation over the
   four knee/elbow flexion signals) within +-``max_lag_s``; the lag is reported.
3. Every (fit rate / ``eval_fps``)-th aligned frame is posed on one body model (the shipped open
   SMPL-X neutral by default) with zero betas and zero translation.
4. Measured with the root orientation zeroed (so the body frame is the world frame): per-joint position error of the 21 body joints relative
   to the pelvis (mm); geodesic angle of the 21 local body rotations (deg); the angle between the
   directions of each bone (parent -> child, body frame, deg; the 18 bones not leaving the pelvis);
   the flexion of knees and elbows (the angle between the bone directions upper -> joint and
   joint -> lower; bias = ours - fit, deg); the collar elevation (collar -> shoulder above the body's
   horizontal plane, deg). With the root kept: the pelvis orientation difference after one constant
   heading turn about the world up axis, and the joint error in that world frame (``world_joint_mm``).
   To tell the pelvis's share from the limbs': ``aligned_joint_mm``, the joint error after the best
   rotation about the pelvis per frame (what no choice of root orientation can remove).

Shapes: T frames; joints (T, 22, 3) metres; rotations (T, 21, 3, 3) local, (T, 3, 3) root.
Only summary numbers leave this module (never the fit's arrays).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from human_body_prior.geometry.rigid import rigid_registration
from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    rotation_between,
)
from human_body_prior.model_types.joints import (
    BODY_JOINT_NAMES,
    BODY_PARENTS,
    HINGES,
    NUM_BODY_JOINTS,
    pose_slices,
)

M_TO_MM = 1000.0
_SLICES = pose_slices("smplx")  # root and body lead the pose vector in SMPL-H and SMPL-X alike
_BODY_WIDTH = _SLICES["pose_body"].stop  # root 3 + body 63 values
_COLLARS = tuple((side, BODY_JOINT_NAMES.index(f"{side}_collar"), BODY_JOINT_NAMES.index(f"{side}_shoulder"))
                 for side in ("left", "right"))
MODEL_UP = (0.0, 1.0, 0.0)  # the body model's up axis (Y up, facing +Z) with the root at identity
MODEL_FORWARD = (0.0, 0.0, 1.0)
AMASS_UP = (0.0, 0.0, 1.0)  # world up of AMASS files and of bvh2amass's default output
# The archives of ../shared/mocap that hold CMU takes with (subject, trial) file names.
PAIRED_ARCHIVES = ("cmu_iclone", "cmu_daz_atelier")
_TAKE_ID = re.compile(r"^(?:cmu_)?0*(\d+)_0*(\d+)")


# ---------------------------------------------------------------------------------------- angles

def direction_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (deg) between directions a and b (..., 3), any non-zero length -> (...)."""
    return torch.rad2deg(geodesic_angle(rotation_between(a, b)))


def hinge_flexion_deg(joints: torch.Tensor) -> torch.Tensor:
    """Flexion (deg) of each hinge of skeleton.HINGES: the angle between upper -> joint and joint ->
    child. joints (T, 22, 3) -> (T, 4) in HINGES order (0 = straight)."""
    return torch.stack([direction_angle_deg(joints[:, h.joint] - joints[:, h.upper], joints[:, h.child] - joints[:, h.joint])
                        for h in HINGES], dim=-1)


def collar_elevation_deg(joints: torch.Tensor, up=MODEL_UP) -> torch.Tensor:
    """Elevation (deg, positive raised) of each clavicle bone (collar -> shoulder) above the plane
    normal to ``up``. joints (T, 22, 3) with the root at identity -> (T, 2) (left, right)."""
    u = joints.new_tensor(up).expand(len(joints), 3)
    return torch.stack([90.0 - direction_angle_deg(joints[:, s] - joints[:, c], u) for _, c, s in _COLLARS], -1)


def heading_alignment(root_ours: torch.Tensor, root_ref: torch.Tensor, up=AMASS_UP,
                      forward=MODEL_FORWARD) -> torch.Tensor:
    """The one rotation about the world ``up`` axis that best turns our body headings onto the
    reference's (weighted Kabsch on the horizontal forward directions, with ``up`` pinned).
    root_ours, root_ref (T, 3, 3) world root orientations -> (3, 3)."""
    u = root_ours.new_tensor(up)
    f = root_ours.new_tensor(forward)

    def horizontal(R):
        d = R @ f
        return d - (d @ u)[:, None] * u

    src = torch.cat([horizontal(root_ours), u[None]])
    dst = torch.cat([horizontal(root_ref), u[None]])
    w = torch.cat([torch.ones(len(root_ours), dtype=src.dtype), src.new_tensor([float(len(root_ours))])])
    R, _ = rigid_registration(src, dst, w, translation=False)
    return R


# ---------------------------------------------------------------------------------------- alignment

def find_lag(a: np.ndarray, b: np.ndarray, max_lag: int, min_overlap: int = 10) -> tuple[int, float]:
    """The lag L in [-max_lag, max_lag] at which b[t + L] agrees best with a[t].

    a (Ta, C), b (Tb, C) signals at one frame rate. Agreement: the mean over channels of the Pearson
    correlation on the overlapping frames (channels constant there are left out; where all are, minus
    the mean absolute difference). Lags leaving fewer than ``min_overlap`` frames are not tried.
    Returns (lag, agreement). ValueError when no lag leaves min_overlap frames.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    best = None
    for lag in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -lag), min(len(a), len(b) - lag)
        if hi - lo < min_overlap:
            continue
        score = _agreement(a[lo:hi], b[lo + lag:hi + lag])
        if best is None or score > best[1] + 1e-12:
            best = (lag, score)
    if best is None:
        raise ValueError(f"signals of {len(a)} and {len(b)} frames overlap by fewer than {min_overlap} frames "
                         f"at every lag within +-{max_lag}")
    return best


def _agreement(x: np.ndarray, y: np.ndarray) -> float:
    """Mean Pearson correlation of the columns of x and y (T, C) with some variance in both."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sx, sy = np.sqrt((xc ** 2).sum(0)), np.sqrt((yc ** 2).sum(0))
    ok = (sx > 1e-9 * (1 + np.abs(x).max())) & (sy > 1e-9 * (1 + np.abs(y).max()))
    if not ok.any():
        return -float(np.abs(x - y).mean())
    return float(((xc[:, ok] * yc[:, ok]).sum(0) / (sx[ok] * sy[ok])).mean())


# ---------------------------------------------------------------------------------------- posed sequences

@dataclass
class Posed:
    """One pose sequence posed on the body model. root (T, 3, 3) world root orientations; body (T, 21,
    3, 3) local rotations; joints (T, 22, 3) metres with the root at identity, pelvis at the origin."""
    root: torch.Tensor
    body: torch.Tensor
    joints: torch.Tensor


def pose_sequence(joints_model, root_orient: np.ndarray, pose_body: np.ndarray) -> Posed:
    """Pose (T, 3) root and (T, 63) body axis-angle on a PosedJoints at zero shape, root zeroed."""
    dtype = joints_model.dtype
    root = axis_angle_to_matrix(torch.as_tensor(np.asarray(root_orient), dtype=torch.float64))
    body = axis_angle_to_matrix(torch.as_tensor(np.asarray(pose_body), dtype=torch.float64).reshape(len(root), -1, 3))
    T = len(root)
    with torch.no_grad():
        j = joints_model.from_rotations(torch.eye(3, dtype=dtype).expand(T, 3, 3), body.to(dtype),
                                        torch.zeros(T, 3, dtype=dtype), torch.zeros(1, joints_model.num_betas, dtype=dtype),
                                        NUM_BODY_JOINTS).to(torch.float64)
    return Posed(root, body, j - j[:, :1])


def resample_poses(poses: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """(F, >= 66) AMASS-layout poses -> (N, 66) root + body resampled by slerp (bvh2amass.resample)."""
    from human_body_prior.data.bvh2amass import resample

    body = np.asarray(poses[:, :_BODY_WIDTH], dtype=np.float64).reshape(len(poses), -1, 3)
    out, _ = resample(body, np.zeros((len(poses), 3)), src_fps, dst_fps)
    return out.reshape(len(out), _BODY_WIDTH)


# ---------------------------------------------------------------------------------------- metrics

# The bones compared by direction: every body bone but the three leaving the pelvis (fixed to the root,
# which is zeroed, so they never differ).
BONE_CHILDREN = tuple(j for j in range(1, NUM_BODY_JOINTS) if BODY_PARENTS[j] != 0)


def bone_names() -> list[str]:
    """'parent->child' of the compared bones (BONE_CHILDREN, 18 of them)."""
    return [f"{BODY_JOINT_NAMES[BODY_PARENTS[j]]}->{BODY_JOINT_NAMES[j]}" for j in BONE_CHILDREN]


def compare_posed(ours: Posed, ref: Posed) -> dict:
    """Per-joint, per-bone and per-hinge differences of two posed sequences of the same T frames.

    Returns lists in body-joint order (joints 1..21) and summary means: joint_mm, angle_deg, bone_deg,
    flexion (per hinge: ours, ref, bias = ours - ref; deg), collar elevation (per side; deg) and
    pelvis_deg (root orientation difference after the heading turn of :func:`heading_alignment`).
    """
    if ours.joints.shape != ref.joints.shape:
        raise ValueError(f"the sequences to compare differ in shape: {tuple(ours.joints.shape)} and "
                         f"{tuple(ref.joints.shape)}")
    jo, jr = ours.joints, ref.joints
    joint_mm = (jo[:, 1:] - jr[:, 1:]).norm(dim=-1).mean(0) * M_TO_MM
    angle = torch.rad2deg(geodesic_angle(ours.body, ref.body)).mean(0)
    child = list(BONE_CHILDREN)
    parent = [BODY_PARENTS[j] for j in child]
    bone = direction_angle_deg(jo[:, child] - jo[:, parent], jr[:, child] - jr[:, parent]).mean(0)
    fo, fr = hinge_flexion_deg(jo), hinge_flexion_deg(jr)
    co, cr = collar_elevation_deg(jo), collar_elevation_deg(jr)
    H = heading_alignment(ours.root, ref.root)
    pelvis = torch.rad2deg(geodesic_angle(H @ ours.root, ref.root))
    world_mm = ((H @ ours.root) @ jo[:, 1:].transpose(1, 2) - ref.root @ jr[:, 1:].transpose(1, 2)).norm(dim=1)
    R_best, _ = rigid_registration(jo[:, 1:], jr[:, 1:], translation=False)
    aligned_mm = (jo[:, 1:] @ R_best.transpose(1, 2) - jr[:, 1:]).norm(dim=-1)
    return {
        "joint_mm": joint_mm.tolist(), "angle_deg": angle.tolist(), "bone_deg": bone.tolist(),
        "mean_joint_mm": float(joint_mm.mean()), "mean_angle_deg": float(angle.mean()),
        "mean_bone_deg": float(bone.mean()),
        "world_joint_mm": float(world_mm.mean() * M_TO_MM), "aligned_joint_mm": float(aligned_mm.mean() * M_TO_MM),
        "flexion": {h.name: {"ours_deg": float(fo[:, k].mean()), "ref_deg": float(fr[:, k].mean()),
                             "bias_deg": float((fo[:, k] - fr[:, k]).mean())} for k, h in enumerate(HINGES)},
        "collar": {side: {"ours_deg": float(co[:, k].mean()), "ref_deg": float(cr[:, k].mean()),
                          "bias_deg": float((co[:, k] - cr[:, k]).mean())} for k, (side, _, _) in enumerate(_COLLARS)},
        "pelvis_deg": float(pelvis.mean()),
        "heading_turn_deg": float(torch.rad2deg(geodesic_angle(H))),
        "frames": int(len(jo)),
    }


def _hinge_mean(res: dict, kind: str) -> float:
    return float(np.mean([v["bias_deg"] for k, v in res["flexion"].items() if k.endswith(kind)]))


def summary_row(res: dict) -> dict:
    """The headline numbers of a compare_posed result (plus its take fields when present)."""
    row = {k: res[k] for k in ("take", "source", "skeleton", "lag_frames", "lag_ms", "lag_agreement", "frames")
           if k in res}
    row.update({"joint_mm": res["mean_joint_mm"], "angle_deg": res["mean_angle_deg"], "bone_deg": res["mean_bone_deg"],
                "knee_bias_deg": _hinge_mean(res, "knee"), "elbow_bias_deg": _hinge_mean(res, "elbow"),
                "collar_bias_deg": float(np.mean([v["bias_deg"] for v in res["collar"].values()])),
                "pelvis_deg": res["pelvis_deg"], "world_joint_mm": res["world_joint_mm"],
                "aligned_joint_mm": res["aligned_joint_mm"]})
    return row


# ---------------------------------------------------------------------------------------- takes

@dataclass(frozen=True)
class PairedTake:
    """A take as a fit (AMASS-layout .npz) and as a BVH file; source: the BVH's set (archive folder)."""
    take: str
    fit_path: Path
    bvh_path: Path
    source: str


def take_id(name: str):
    """(subject, trial) ints of a CMU take file name ('cmu_02_02_stageii.npz', '002_02.bvh', '10_05.bvh'),
    or None."""
    m = _TAKE_ID.match(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)))


def find_paired_takes(fit_dir, raw_dir, sources=PAIRED_ARCHIVES) -> list[PairedTake]:
    """Every fit ``*.npz`` of ``fit_dir`` paired with each BVH of the same CMU take under
    ``raw_dir/<source>`` (one pair per BVH conversion found). Fits without a BVH are left out."""
    index = {}
    for source in sources:
        folder = Path(raw_dir) / source
        for p in sorted(folder.rglob("*.bvh")) if folder.is_dir() else ():
            key = take_id(p.name)
            if key is not None and re.fullmatch(r"\d+_\d+", p.stem):
                index.setdefault(key, []).append((source, p))
    pairs = []
    for fit in sorted(Path(fit_dir).glob("*.npz")):
        key = take_id(fit.name)
        for source, bvh in index.get(key, []) if key else []:
            pairs.append(PairedTake(f"{key[0]:02d}_{key[1]:02d}", fit, bvh, source))
    return pairs


def read_fit(path) -> tuple[np.ndarray, float]:
    """An AMASS-layout take -> (poses (F, >= 66), frame rate); ValueError naming the file otherwise."""
    from human_body_prior.data.prepare_data import read_amass_take

    t = read_amass_take(path)
    if t["fps"] is None or not np.isfinite(t["fps"]) or t["fps"] <= 0:
        raise ValueError(f"{path}: no valid frame rate (key 'mocap_frame_rate' or 'mocap_framerate'), got {t['fps']}")
    if not np.isfinite(t["poses"][:, :_BODY_WIDTH]).all():
        raise ValueError(f"{path}: 'poses' holds NaN or infinite values")
    return t["poses"], float(t["fps"])


def import_bvh(bvh_path, retargeter, skeleton="auto", fps=None, calibrate=True) -> tuple[np.ndarray, float, str]:
    """Our import of a BVH take, as ``bvh2amass`` makes it in directory mode (Z up; the performer
    calibrated over every BVH take in the file's folder) -> (poses (F, 165), fps, skeleton)."""
    from human_body_prior.data.bvh2amass import (
        calibrations_by_folder,
        convert_take,
        is_bvh,
    )

    bvh_path = Path(bvh_path)
    folder = sorted(p for p in bvh_path.parent.iterdir() if p.is_file() and is_bvh(p)) if calibrate else [bvh_path]
    calibration = calibrations_by_folder(folder, skeleton, calibrate)[bvh_path]
    arrays, res = convert_take(str(bvh_path), retargeter, fps=fps, skeleton=skeleton, world_up="z", calibration=calibration)
    return arrays["poses"], float(arrays["mocap_framerate"]), res.skeleton


def _subset(p: Posed, idx) -> Posed:
    return Posed(p.root[idx], p.body[idx], p.joints[idx])


def measure_take(pair: PairedTake, retargeter, joints_model, eval_fps: float = 30.0, max_lag_s: float = 0.5,
                 skeleton="auto", bvh_fps=None) -> dict:
    """Import, resample to the fit's rate, align, and compare every (fit rate / eval_fps)-th frame."""
    ref_poses, fps = read_fit(pair.fit_path)
    our_poses, our_fps, skel = import_bvh(pair.bvh_path, retargeter, skeleton, bvh_fps)
    ours = resample_poses(our_poses, our_fps, fps)
    p_ours = pose_sequence(joints_model, ours[:, :3], ours[:, 3:_BODY_WIDTH])
    p_ref = pose_sequence(joints_model, ref_poses[:, :3], ref_poses[:, 3:_BODY_WIDTH])
    lag, agreement = find_lag(hinge_flexion_deg(p_ref.joints).numpy(), hinge_flexion_deg(p_ours.joints).numpy(),
                              int(round(max_lag_s * fps)))
    lo, hi = max(0, -lag), min(len(ref_poses), len(ours) - lag)
    t = np.arange(lo, hi, max(1, int(round(fps / eval_fps))))
    res = compare_posed(_subset(p_ours, t + lag), _subset(p_ref, t))
    res.update({"take": pair.take, "source": pair.source, "skeleton": skel, "lag_frames": int(lag),
                "lag_ms": 1000.0 * lag / fps, "lag_agreement": agreement, "fit_fps": fps, "bvh_fps": our_fps,
                "bvh_file": f"{pair.source}/{pair.bvh_path.name}", "fit_file": pair.fit_path.name})
    return res


def aggregate(rows: list[dict]) -> dict:
    """Mean of each summary_row number over the given takes, per source and over all: {group: {...}}."""
    keys = ("joint_mm", "angle_deg", "bone_deg", "knee_bias_deg", "elbow_bias_deg", "collar_bias_deg", "pelvis_deg",
            "world_joint_mm", "aligned_joint_mm")
    groups = {"all": rows}
    for r in rows:
        groups.setdefault(r["source"], []).append(r)
    return {g: {"takes": len(rs), **{k: float(np.mean([r[k] for r in rs])) for k in keys}}
            for g, rs in groups.items()}


def run_fidelity(fit_dir, raw_dir, body_model=None, skeleton="auto", bvh_fps=None, eval_fps: float = 30.0,
                 max_lag_s: float = 0.5, takes=None, sources=PAIRED_ARCHIVES) -> dict:
    """measure_take on every paired take (or those named in ``takes``, e.g. ['02_02']).

    body_model: SMPL-X model file for the retargeting and the posing (default: the shipped open
    neutral). Returns {'takes': [measure_take results], 'rows': [summary_row], 'summary': aggregate,
    'bones': bone_names()}. ValueError when nothing pairs up.
    """
    from human_body_prior.body_model.body_model import BodyModel
    from human_body_prior.data.retarget import Retargeter
    from human_body_prior.fitting.joints_model import PosedJoints
    from human_body_prior.support_paths import default_body_model_path

    pairs = [p for p in find_paired_takes(fit_dir, raw_dir, sources) if not takes or p.take in takes]
    if not pairs:
        raise ValueError(f"no fit in {fit_dir} has a BVH take of the same CMU subject and trial under "
                         f"{raw_dir}/{{{','.join(sources)}}}" + (f" among the takes {sorted(takes)}" if takes else ""))
    body_model = body_model or default_body_model_path("smplx", "neutral")
    retargeter = Retargeter.from_model_file(body_model)
    joints_model = PosedJoints(BodyModel(body_model, dtype=torch.float64))
    results = [measure_take(p, retargeter, joints_model, eval_fps, max_lag_s, skeleton, bvh_fps) for p in pairs]
    rows = [summary_row(r) for r in results]
    return {"takes": results, "rows": rows, "summary": aggregate(rows), "bones": bone_names(),
            "joints": BODY_JOINT_NAMES[1:NUM_BODY_JOINTS]}


def format_tables(res: dict) -> str:
    """Markdown: one row per take, the means per BVH set and over all, and the bone directions per take."""
    out = ["| take | BVH set (skeleton) | frames | lag (ms) | joint (mm) | angle (deg) | bone dir (deg) | "
           "knee bias (deg) | elbow bias (deg) | collar bias (deg) | pelvis (deg) | joint, world (mm) | "
           "joint, best turn (mm) |", "|---" * 13 + "|"]
    for r in res["rows"]:
        out.append(f"| {r['take']} | {r['source']} ({r['skeleton']}) | {r['frames']} | {r['lag_ms']:+.0f} | "
                   f"{r['joint_mm']:.1f} | {r['angle_deg']:.1f} | {r['bone_deg']:.1f} | {r['knee_bias_deg']:+.1f} | "
                   f"{r['elbow_bias_deg']:+.1f} | {r['collar_bias_deg']:+.1f} | {r['pelvis_deg']:.1f} | "
                   f"{r['world_joint_mm']:.1f} | {r['aligned_joint_mm']:.1f} |")
    for g, s in res["summary"].items():
        out.append(f"| **mean {g}** | {s['takes']} takes | | | {s['joint_mm']:.1f} | {s['angle_deg']:.1f} | "
                   f"{s['bone_deg']:.1f} | {s['knee_bias_deg']:+.1f} | {s['elbow_bias_deg']:+.1f} | "
                   f"{s['collar_bias_deg']:+.1f} | {s['pelvis_deg']:.1f} | {s['world_joint_mm']:.1f} | "
                   f"{s['aligned_joint_mm']:.1f} |")
    takes = res["takes"]
    out += ["", "| bone (deg apart, body frame) | " + " | ".join(t["take"] for t in takes) + " | mean |",
            "|---" * (len(takes) + 2) + "|"]
    for b, name in enumerate(res["bones"]):
        vals = [t["bone_deg"][b] for t in takes]
        out.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {np.mean(vals):.1f} |")
    return "\n".join(out) + "\n"
