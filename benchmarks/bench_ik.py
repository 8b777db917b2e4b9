"""IK_Engine on held-out real poses, the way the upstream joints tutorial uses it.

Targets: the 22 body joints of held-out frames (the mocap pipeline's test split, root orientation
included, no translation) posed on the shipped open SMPL-X neutral model; noise-free, every joint seen.
The source module returns the first 22 joints of the body (--source joints: without the mesh;
--source mesh: the tutorial's full BodyModel, same joints, far slower); IK_Engine runs the tutorial's
settings (MSE data term summed, weights data 10 / poZ_body 0.01 / betas 0.5, L-BFGS with max_iter 300
and history 200; --settings readme: the README example's max_iter 50) with the shipped open VPoser. Reported: mean joint error (mm) over all frames fitted at
batch 256, and frames per second at batch 256 and at batch 1 (--timing-frames frames one by one).

    python benchmarks/bench_ik.py --test DIR [--frames 1000] [--batch 256] [--timing-frames 20]
        [--source joints|mesh] [--expr-dir D] [--settings tutorial|readme] [--threads N] [--device cpu|cuda]
        [--out docs/ik_benchmark.json]
"""

import argparse
import json
import os
import platform
import time

import torch
import torch.nn as nn
from _provenance import command_line, portable_path

import human_body_prior as hbp
from human_body_prior import cli
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.files.atomic_io import atomic_write_bytes
from human_body_prior.fitting.heldout import load_poses, pick_frames
from human_body_prior.fitting.ik_engine import IK_Engine
from human_body_prior.fitting.joints_model import PosedJoints

NUM_BODY_JOINTS = 22
STEPWISE_WEIGHTS = [{"data": 10.0, "poZ_body": 0.01, "betas": 0.5}]
OPTIMIZER_ARGS = {  # the upstream joints tutorial's settings, and those of this project's README example
    "tutorial": {"type": "LBFGS", "max_iter": 300, "lr": 1, "tolerance_change": 1e-4, "history_size": 200},
    "readme": {"type": "LBFGS", "max_iter": 50},
}


class SourceKeyPoints(nn.Module):
    """Body joints of a BodyModel posed by the body parameters (the tutorial's source module: it poses
    and skins the whole mesh at every evaluation)."""

    def __init__(self, bm, n_joints=NUM_BODY_JOINTS):
        super().__init__()
        self.bm, self.n_joints = bm, n_joints

    def forward(self, body_parms):
        return {"source_kpts": self.bm(**body_parms).Jtr[:, :self.n_joints]}


class SourceJoints(nn.Module):
    """The same joints without the mesh (fitting/joints_model.PosedJoints: shape-regressed rest joints and
    forward kinematics; equal to BodyModel's Jtr, tested in tests/test_fitting.py)."""

    def __init__(self, bm, n_joints=NUM_BODY_JOINTS):
        super().__init__()
        self.bm, self.n_joints, self.joints = bm, n_joints, PosedJoints(bm)

    def forward(self, body_parms):
        p = body_parms
        return {"source_kpts": self.joints(p["root_orient"], p["pose_body"], p["trans"], p["betas"], self.n_joints)}


def fit(ik, source, targets, batch):
    """IK over targets (n, 22, 3) in batches -> (fitted joints (n, 22, 3), wall seconds, CPU seconds).

    CPU seconds (this process's, all threads) are reported beside wall time because the machines this
    runs on are shared: with one thread on a busy machine they are what an idle core would take."""
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, len(targets), batch):
        res = ik(source, targets[s:s + batch])
        with torch.no_grad():
            out.append(source({k: res[k] for k in ("root_orient", "pose_body", "trans", "betas")})["source_kpts"])
    if targets.is_cuda:
        torch.cuda.synchronize(targets.device)
    return torch.cat(out), time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test", required=True, help="VPoser data split folder (pose.pt, root_orient.pt) or AMASS takes")
    ap.add_argument("--expr-dir", default=None, help="VPoser folder (default: the shipped open one)")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--timing-frames", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", choices=("joints", "mesh"), default="joints",
                    help="source module: joints only (default) or the tutorial's full BodyModel (mesh; far slower)")
    ap.add_argument("--settings", choices=sorted(OPTIMIZER_ARGS), default="tutorial",
                    help="optimizer settings: the upstream tutorial's (default) or the README example's")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", type=cli.device, default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    bm = BodyModel(bm_fname=hbp.default_body_model_path("smplx", "neutral"), num_betas=10).to(device)
    source = SourceJoints(bm) if args.source == "joints" else SourceKeyPoints(bm)
    poses = load_poses(args.test)
    idx = pick_frames(len(poses["pose_body"]), args.frames, args.seed)
    with torch.no_grad():  # targets: BodyModel's own joints (the mesh path), whichever source is fitted
        targets = bm(root_orient=torch.as_tensor(poses["root_orient"][idx], dtype=torch.float32, device=device),
                     pose_body=torch.as_tensor(poses["pose_body"][idx], dtype=torch.float32, device=device)
                     ).Jtr[:, :NUM_BODY_JOINTS]
    optimizer_args = OPTIMIZER_ARGS[args.settings]
    ik = IK_Engine(args.expr_dir, data_loss=nn.MSELoss(reduction="sum"), optimizer_args=optimizer_args,
                   stepwise_weights=STEPWISE_WEIGHTS, verbosity=0)

    fitted, seconds, cpu = fit(ik, source, targets, args.batch)
    err = (fitted - targets).norm(dim=-1) * 1000
    n1 = min(args.timing_frames, len(targets))
    fitted1, seconds1, cpu1 = fit(ik, source, targets[:n1], 1)
    err1 = (fitted1 - targets[:n1]).norm(dim=-1) * 1000
    res = {"frames": int(len(idx)), "batch": args.batch, "source": args.source, "mean_joint_error_mm": float(err.mean()),
           "median_joint_error_mm": float(err.median()), "p95_frame_error_mm": float(err.mean(1).quantile(0.95)),
           "frames_per_second_batch": len(idx) / seconds, "frames_per_cpu_second_batch": len(idx) / cpu,
           "timing_frames_batch1": n1, "frames_per_second_batch1": n1 / seconds1,
           "frames_per_cpu_second_batch1": n1 / cpu1, "load_average_1min_at_end": os.getloadavg()[0],
           "mean_joint_error_mm_batch1_frames": float(err1.mean()),
           "same_frames_at_batch_size": float(err[:n1].mean()),
           "stepwise_weights": STEPWISE_WEIGHTS, "optimizer_args": optimizer_args,
           "expr_dir": portable_path(args.expr_dir or hbp.default_vposer_dir()), "test": portable_path(args.test),
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "command": command_line()}
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        atomic_write_bytes(args.out, (text + "\n").encode())


if __name__ == "__main__":
    main()
