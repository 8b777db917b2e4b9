"""Measure what the VPoser prior buys when fitting bodies to noisy, incomplete 3D joints.

Held-out real poses (the mocap pipeline's test split) are posed on the open neutral SMPL-X model;
the targets are their 22 body joints with Gaussian noise (sigma 20 mm per axis) and 30% of the joints
missing at random (fixed seed). Each method fits the targets; the error is the mean distance in mm
between fitted and true joints over all 22 joints, the missing ones included.

    python benchmarks/bench_fitting.py --test DIR [--tune DIR] [--bm-path P] [--expr-dir D]
        [--frames 1024] [--out docs/fitting_benchmark.json]

--test / --tune: a VPoser data split folder (pose.pt, root_orient.pt) or AMASS-style takes.
--tune: a separate split (e.g. vald) on which the prior weights of 'vposer' and 'l2' are chosen
from a grid before the test run; without it the defaults (or --weights) are used.
Timing: seconds per frame of the VPoser fit on CPU at batch 1 (--timing-frames frames, one by one)
and at batch 256.
"""

import argparse
import json
import platform
import time

import numpy as np
import torch
from _provenance import command_line, portable_path

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.files.atomic_io import atomic_write_bytes
from human_body_prior.fitting import BodyFitter, JointTargets3D
from human_body_prior.fitting.engine import DEFAULT_PRIOR_WEIGHT
from human_body_prior.fitting.heldout import corrupt_joints, load_poses, pick_frames
from human_body_prior.model_types.joints import NUM_BODY_JOINTS
from human_body_prior.priors.experiment import load_vposer

WEIGHT_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def true_joints(bm, poses, idx):
    """Body joints (n, 22, 3) of the chosen frames posed on bm (betas 0, no translation)."""
    with torch.no_grad():
        out = bm(root_orient=torch.as_tensor(poses["root_orient"][idx], dtype=torch.float32),
                 pose_body=torch.as_tensor(poses["pose_body"][idx], dtype=torch.float32))
    return out.Jtr[:, :NUM_BODY_JOINTS].numpy().astype(np.float64)


def run_method(bm, vposer, method, weight, targets, conf, batch=256, params=False):
    """Fit in batches -> joints (n, 22, 3) (and the fitted parameters when params=True)."""
    fitter = BodyFitter(bm, pose_prior=method, vposer=vposer, prior_weight=weight)
    out, prm = [], []
    for s in range(0, len(targets), batch):
        r = fitter.fit(JointTargets3D(targets[s:s + batch], conf[s:s + batch]), write_back=False)
        out.append(r.joints[:, :NUM_BODY_JOINTS].numpy())
        prm.append({k: getattr(r, k) for k in ("root_orient", "pose_body", "trans")})
    joints = np.concatenate(out)
    if not params:
        return joints
    return joints, {k: torch.cat([p[k] for p in prm]) for k in prm[0]}


def vertex_error_mm(bm, fitted: dict, poses, idx, batch=256):
    """Mean vertex distance (mm) between the fitted and the true meshes; unlike joint errors it sees
    rotations about the bones (twists) that joints cannot show."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            sl = slice(s, s + batch)
            true_v = bm(root_orient=torch.as_tensor(poses["root_orient"][idx[sl]], dtype=torch.float32),
                        pose_body=torch.as_tensor(poses["pose_body"][idx[sl]], dtype=torch.float32)).v
            fit_v = bm(**{k: v[sl] for k, v in fitted.items()}).v
            total += float((fit_v - true_v).norm(dim=-1).mean(-1).sum())
            count += true_v.shape[0]
    return total / count * 1000


def errors_mm(fit, truth, conf):
    d = np.linalg.norm(fit - truth, axis=-1) * 1000
    return {"all": float(d.mean()), "visible": float(d[conf > 0].mean()), "missing": float(d[conf == 0].mean()),
            "median": float(np.median(d))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test", required=True)
    ap.add_argument("--tune", default=None)
    ap.add_argument("--bm-path", default=None)
    ap.add_argument("--expr-dir", default=None)
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--tune-frames", type=int, default=256)
    ap.add_argument("--timing-frames", type=int, default=8)
    ap.add_argument("--noise-mm", type=float, default=20.0)
    ap.add_argument("--missing", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None, help="fixed weights 'vposer=W,l2=W' (skips tuning)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    bm_path = args.bm_path or hbp.default_body_model_path()
    expr_dir = args.expr_dir or hbp.default_vposer_dir()
    bm = BodyModel(bm_path)
    vposer, _ = load_vposer(expr_dir, verbose=False)
    sigma = args.noise_mm / 1000.0
    res = {"bm_path": portable_path(bm_path), "expr_dir": portable_path(expr_dir),
           "test": portable_path(args.test), "tune": portable_path(args.tune),
           "noise_mm": args.noise_mm, "missing": args.missing, "seed": args.seed,
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "command": command_line()}

    weights = {"vposer": DEFAULT_PRIOR_WEIGHT["vposer"], "l2": DEFAULT_PRIOR_WEIGHT["l2"], "none": 0.0}
    if args.weights:
        for part in args.weights.split(","):
            k, v = part.split("=")
            weights[k.strip()] = float(v)
    elif args.tune:
        tune = load_poses(args.tune)
        idx = pick_frames(len(tune["pose_body"]), args.tune_frames, args.seed + 1)
        truth = true_joints(bm, tune, idx)
        targets, conf = corrupt_joints(truth, sigma, args.missing, args.seed + 1)
        res["tuning"] = {}
        for method in ("vposer", "l2"):
            scores = {}
            for w in WEIGHT_GRID:
                scores[w] = errors_mm(run_method(bm, vposer, method, w, targets, conf), truth, conf)["all"]
                print(f"tune {method} w={w:g}: {scores[w]:.1f} mm", flush=True)
            weights[method] = min(scores, key=scores.get)
            res["tuning"][method] = {f"{k:g}": v for k, v in scores.items()}
    res["weights"] = weights

    test = load_poses(args.test)
    idx = pick_frames(len(test["pose_body"]), args.frames, args.seed)
    truth = true_joints(bm, test, idx)
    targets, conf = corrupt_joints(truth, sigma, args.missing, args.seed)
    res["frames"] = int(len(idx))
    res["missing_fraction"] = float((conf == 0).mean())
    res["errors_mm"] = {}
    for method in ("vposer", "none", "l2"):
        t0 = time.perf_counter()
        fit, fitted = run_method(bm, vposer, method, weights[method], targets, conf, params=True)
        res["errors_mm"][method] = errors_mm(fit, truth, conf)
        res["errors_mm"][method]["seconds"] = time.perf_counter() - t0
        res["errors_mm"][method]["vertices"] = vertex_error_mm(bm, fitted, test, idx)
        print(method, res["errors_mm"][method], flush=True)
    noisy = np.where(conf[..., None] > 0, targets, np.nan)
    res["target_noise_mm"] = float(np.nanmean(np.linalg.norm(noisy - truth, axis=-1)) * 1000)
    e = res["errors_mm"]
    res["prior_vs_none_reduction"] = 1.0 - e["vposer"]["all"] / e["none"]["all"]

    # timing of the VPoser fit on CPU
    fitter = BodyFitter(bm, pose_prior="vposer", vposer=vposer, prior_weight=weights["vposer"])
    nb = min(256, len(targets))
    fitter.fit(JointTargets3D(targets[:2], conf[:2]), write_back=False)  # warm-up
    t0 = time.perf_counter()
    fitter.fit(JointTargets3D(targets[:nb], conf[:nb]), write_back=False)
    res["sec_per_frame_batch256"] = (time.perf_counter() - t0) / nb
    res["timing_batch_frames"] = nb
    t0 = time.perf_counter()
    for i in range(args.timing_frames):
        fitter.fit(JointTargets3D(targets[i:i + 1], conf[i:i + 1]), write_back=False)
    res["sec_per_frame_batch1"] = (time.perf_counter() - t0) / args.timing_frames
    print(json.dumps(res, indent=1))
    if args.out:
        atomic_write_bytes(args.out, (json.dumps(res, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
