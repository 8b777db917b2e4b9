"""Measure retargeting quality per mocap set and draw source-vs-body pictures.

    python -m human_body_prior.evaluation.mocap_report --raw-dir RAW --out-json Q.json [--png-dir docs]
        [--bm-path SMPLX.npz] [--max-frames 300] [--takes-per-set 0]

For every take (or the first ``--takes-per-set`` of each set), ``--max-frames`` evenly spaced frames
are retargeted and posed with ``BodyModel`` (the body model's own forward kinematics); the posed
joints are compared with the length-normalised BVH joints (retarget_quality). One picture per set
shows the BVH skeleton next to the posed body at three moments of one take.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import numpy as np
import torch

from human_body_prior import cli
from human_body_prior.data.bvh import BVH, bvh_forward_kinematics, read_bvh
from human_body_prior.data.prepare_open_mocap import list_source_takes
from human_body_prior.data.retarget import Retargeter
from human_body_prior.evaluation.hinges import anatomical_share
from human_body_prior.evaluation.retarget_quality import (
    bend_direction_share,
    joint_errors_mm,
    strict_joint_errors_mm,
)
from human_body_prior.files.atomic_io import atomic_write, atomic_write_bytes
from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import NUM_BODY_JOINTS, pose_slices

PICTURE_TAKES = {"cmu_daz": "cmu_daz/martial/05.bvh", "cmu_daz_atelier": "cmu_daz_atelier/subjects/13/13_30.bvh",
                 "cmu_iclone": "cmu_iclone/subjects/005/005_05.bvh", "reactidle": "reactidle/acted/004_acted.bvh"}


def subsample_bvh(bvh: BVH, max_frames: int) -> BVH:
    if max_frames <= 0 or bvh.num_frames <= max_frames:
        return bvh
    idx = np.unique(np.linspace(0, bvh.num_frames - 1, max_frames).round().astype(int))
    return BVH(bvh.names, bvh.parents, bvh.offsets, bvh.channels, bvh.end_sites, bvh.motion[idx],
               bvh.frame_time, bvh.source)


def pose_body_model(bm, pose: np.ndarray, trans: np.ndarray, chunk: int = 256):
    """Posed joints (F, 55, 3) and vertices of the last chunk from BodyModel. pose (F, 55, 3)."""
    joints, verts = [], None
    p = torch.as_tensor(pose.reshape(len(pose), -1), dtype=torch.float32)
    t = torch.as_tensor(trans, dtype=torch.float32)
    with torch.no_grad():
        for s in range(0, len(p), chunk):
            q = p[s:s + chunk]
            out = bm(**{part: q[:, sl] for part, sl in pose_slices("smplx").items()}, trans=t[s:s + chunk],
                     betas=torch.zeros(len(q), bm.num_betas if hasattr(bm, "num_betas") else 10))
            joints.append(out.Jtr[:, :55].numpy().astype(np.float64))
            verts = out.v
    return np.concatenate(joints), verts


def evaluate_take(path, rt: Retargeter, bm, rest_joints, max_frames=300):
    bvh = subsample_bvh(read_bvh(path), max_frames)
    res = rt.retarget(bvh, world_up="z")
    joints, _ = pose_body_model(bm, res.pose, res.trans)
    errs = joint_errors_mm(res, joints, rest_joints)
    strict = strict_joint_errors_mm(res, joints, rest_joints)
    bend = bend_direction_share(res.pose, rest_joints)
    return res, joints, errs, strict, bend


def draw_take(path, rt: Retargeter, bm, out_png, n_shots=3):
    """Source skeleton (top) vs posed body (bottom) at n_shots moments; PNG at out_png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bvh = read_bvh(path)
    idx = np.linspace(0.15, 0.85, n_shots) * (bvh.num_frames - 1)
    sub = BVH(bvh.names, bvh.parents, bvh.offsets, bvh.channels, bvh.end_sites, bvh.motion[idx.round().astype(int)],
              bvh.frame_time, bvh.source)
    res = rt.retarget(sub, world_up="z")
    diag = res.diagnostics
    joints, _ = pose_body_model(bm, res.pose, res.trans)
    verts = None
    with torch.no_grad():
        p = torch.as_tensor(res.pose.reshape(len(sub.motion), -1), dtype=torch.float32)
        out = bm(**{part: p[:, sl] for part, sl in pose_slices("smplx").items()},
                 trans=torch.as_tensor(res.trans, dtype=torch.float32))
        verts = out.v.numpy()
    M = diag.world_rotation @ diag.C
    _, _, ends = bvh_forward_kinematics(sub, end_sites=True)
    src = diag.source_positions @ M.T * res.scale
    ends = ends @ M.T * res.scale
    end_par = [p for p, _ in sub.end_sites]
    pelvis_src = diag.source_index[diag.groups[0][1]]
    fig = plt.figure(figsize=(3.6 * n_shots, 7.2), dpi=80)
    parents_m = rt.parents
    for k in range(n_shots):
        ax = fig.add_subplot(2, n_shots, k + 1, projection="3d")
        centre = src[k, pelvis_src]
        segs = [src[k, [p, j]] for j, p in enumerate(sub.parents) if p >= 0]
        segs += [np.stack([src[k, p], ends[k, e]]) for e, p in enumerate(end_par)]
        for seg in segs:
            seg = seg - centre
            ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color="tab:blue", lw=1.5)
        _style(ax, f"BVH frame {int(idx[k])}")
        ax = fig.add_subplot(2, n_shots, n_shots + k + 1, projection="3d")
        centre = joints[k, 0]
        v = verts[k][:: max(1, verts.shape[1] // 2500)] - centre
        ax.scatter(v[:, 0], v[:, 1], v[:, 2], s=0.3, color="0.7", alpha=0.5)
        for j in range(1, NUM_BODY_JOINTS):
            seg = joints[k, [parents_m[j], j]] - centre
            ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color="tab:red", lw=2)
        _style(ax, "body model")
    fig.suptitle(Path(path).as_posix().split("raw/")[-1], fontsize=10)
    fig.tight_layout()
    try:
        atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def _style(ax, title):
    ax.set_xlim(-0.9, 0.9)
    ax.set_ylim(-0.9, 0.9)
    ax.set_zlim(-1.0, 0.8)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=10, azim=-60)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    ax.set_title(title, fontsize=9)


def _argument_parser() -> cli.ArgumentParser:
    ap = cli.ArgumentParser(prog="python -m human_body_prior.evaluation.mocap_report",
                            description="Retarget BVH takes onto a body model and report the retargeting "
                                        "quality per take and per set (JSON, optional pictures).")
    ap.add_argument("--raw-dir", required=True,
                    help="folder with the extracted archives (one subfolder per set, *.bvh or *.bvh.gz takes)")
    ap.add_argument("--out-json", required=True, help="the report to write (JSON, per set and per take)")
    ap.add_argument("--png-dir", default=None, help="also draw one picture per set into this folder")
    ap.add_argument("--bm-path", default=None,
                    help="body model file .npz/.pkl (default: the shipped open SMPL-X neutral model)")
    ap.add_argument("--max-frames", type=cli.positive_int, default=300, help="frames evaluated per take (evenly spaced)")
    ap.add_argument("--takes-per-set", type=cli.nonnegative_int, default=0, help="0: every take")
    return ap


def _source_takes(raw_dir: str) -> list[str]:
    """The takes under ``raw_dir`` (paths relative to it, 'set/...'); FileNotFoundError if none."""
    if not Path(raw_dir).is_dir():
        raise FileNotFoundError(errno.ENOENT, "--raw-dir is not a folder", raw_dir)
    takes = list_source_takes(raw_dir)
    if not takes:
        raise FileNotFoundError(errno.ENOENT, "no BVH takes (*.bvh, *.bvh.gz) under --raw-dir", raw_dir)
    return takes


def _load_models(bm_path):
    """(Retargeter, BodyModel) of ``bm_path``, default the shipped open SMPL-X neutral model."""
    from human_body_prior.body_model.body_model import BodyModel

    if bm_path is None:
        from human_body_prior.support_paths import default_body_model_path
        bm_path = default_body_model_path("smplx", "neutral")
    return Retargeter.from_model_file(bm_path), BodyModel(bm_path, num_betas=10)


def _new_tally(skeleton: str) -> dict:
    """Running sums of one set's measures (filled by _add_take, read by _set_report)."""
    return {"takes": [], "err_sum": 0.0, "err_n": 0, "per_joint": {}, "knee_good": 0, "knee_bent": 0,
            "elbow_good": 0, "elbow_bent": 0, "swing_sum": 0.0, "swing_n": 0, "strict_sum": 0.0, "strict_n": 0,
            "skeleton": skeleton, "turns": {}, "plane_sum": 0.0, "plane_n": 0}


def _add_take(d: dict, rel: str, rt: Retargeter, res, errs: dict, strict: dict, bend: dict) -> None:
    """Add one take's measures (evaluate_take's; errors in mm per joint) to its set's tally ``d``."""
    rest = rt.J
    d["takes"].append(rel)
    for j, e in errs.items():
        d["err_sum"] += float(e.sum())
        d["err_n"] += e.size
        pj = d["per_joint"].setdefault(rt.names[j], [0.0, 0])
        pj[0] += float(e.sum())
        pj[1] += e.size
    for j, t in res.diagnostics.hinge_twist_deg.items():
        d["turns"].setdefault(j, []).append(t)
    share = anatomical_share(axis_angle_to_matrix(torch.from_numpy(res.pose[:, 1:NUM_BODY_JOINTS])),
                             torch.from_numpy(rest[:NUM_BODY_JOINTS]))
    d["plane_sum"] += share["joint_share"] * len(res.pose)
    d["plane_n"] += len(res.pose)
    for e in strict.values():
        d["strict_sum"] += float(e.sum())
        d["strict_n"] += e.size
    for k in ("knee", "elbow"):
        n = bend[f"{k}_bent_frames"]
        d[f"{k}_bent"] += n
        if n:
            d[f"{k}_good"] += int(round(bend[k] * n))
    sw = res.diagnostics.swing_deg[:, :NUM_BODY_JOINTS]
    used = sw.any(axis=0)
    d["swing_sum"] += float(sw[:, used].sum())
    d["swing_n"] += int(sw[:, used].size)


def _set_report(d: dict, max_frames: int) -> dict:
    """One set's entry of the JSON report from its tally: means in mm and degrees, shares 0..1."""
    return {
        "skeleton": d["skeleton"], "takes": len(d["takes"]), "frames_per_take_max": max_frames,
        "mean_joint_error_mm": d["err_sum"] / max(d["err_n"], 1),
        "per_joint_error_mm": {k: v[0] / v[1] for k, v in d["per_joint"].items()},
        "strict_mean_joint_error_mm": d["strict_sum"] / max(d["strict_n"], 1),
        "knee_anatomical_share": d["knee_good"] / d["knee_bent"] if d["knee_bent"] else None,
        "knee_bent_frames": d["knee_bent"],
        "elbow_anatomical_share": d["elbow_good"] / d["elbow_bent"] if d["elbow_bent"] else None,
        "elbow_bent_frames": d["elbow_bent"],
        "mean_swing_correction_deg": d["swing_sum"] / max(d["swing_n"], 1),
        "hinge_plane_share": d["plane_sum"] / max(d["plane_n"], 1),
        "hinge_twist_turns_deg": {j: {"median_abs": float(np.median(np.abs(t))), "max_abs": float(np.max(np.abs(t))),
                                      "takes": len(t), "over_90": int(np.sum(np.abs(t) > 90))}
                                  for j, t in d["turns"].items()},
    }


def main(argv=None) -> int:
    args = _argument_parser().parse_args(argv)
    takes = _source_takes(args.raw_dir)
    rt, bm = _load_models(args.bm_path)
    per_set = {}
    for rel in takes:
        s = rel.split("/")[0]
        if args.takes_per_set and len(per_set.get(s, {}).get("takes", [])) >= args.takes_per_set:
            continue
        res, _, errs, strict, bend = evaluate_take(Path(args.raw_dir) / rel, rt, bm, rt.J, args.max_frames)
        _add_take(per_set.setdefault(s, _new_tally(res.skeleton)), rel, rt, res, errs, strict, bend)
        print(f"{rel}: mean joint error {np.mean([e.mean() for e in errs.values()]):.1f} mm, "
              f"knee {bend['knee']:.3f} elbow {bend['elbow']:.3f}", flush=True)
    report = {s: _set_report(d, args.max_frames) for s, d in per_set.items()}
    atomic_write_bytes(args.out_json, json.dumps(report, indent=1).encode())
    print(json.dumps({s: {k: v for k, v in r.items() if k != "per_joint_error_mm"} for s, r in report.items()}, indent=1))
    if args.png_dir:
        for s, rel in PICTURE_TAKES.items():
            if (Path(args.raw_dir) / rel).is_file():
                draw_take(Path(args.raw_dir) / rel, rt, bm, Path(args.png_dir) / f"mocap_{s}.png")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
