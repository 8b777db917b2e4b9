"""Denoising clips of held-out real motion with each pose prior, frame by frame and with the fitting
engine's smoothness term (the prior benchmark's denoising protocol on 60-frame clips).

Clips: one clip of --frames consecutive frames (30 fps) from each of --clips held-out takes, read from the
AMASS-style files that ``prepare_open_mocap --work-dir W`` writes under W/amass; the takes of each split
come from the prepared folder's splits.json (``--data D``). Targets: the 22 body joints posed on the
shipped open SMPL-X neutral (real root orientations, no translation) plus Gaussian noise per axis.
Each prior fits at its per-frame weight of the prior benchmark (prior_benchmark.DEFAULT_WEIGHTS, tuned
there on vald); the smoothness weight is chosen per prior and noise level on vald clips from
--smooth-grid (0, frame by frame, is always run). Reported: MPJPE (mm), acceleration error (mm per
frame^2) and seconds per frame, per prior and noise level, frame by frame and smoothed.

    python benchmarks/bench_clip_denoising.py --data D --amass W/amass [--clips 8] [--frames 60]
        [--priors none,l2,gmm,vposer_v1,vposer_v2] [--vposer-v2 DIR] [--out docs/clip_denoising.json]
"""

import argparse
import json
import os
import platform
import time

import torch
from _provenance import command_line, portable_path

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.evaluation.prior_benchmark import (
    DEFAULT_WEIGHTS,
    build_priors,
    load_clips,
    load_data,
)
from human_body_prior.evaluation.prior_protocols import clip_denoising
from human_body_prior.files.atomic_io import atomic_write_bytes

NOISE_MM = (40.0, 100.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="prepared data folder (train/, vald/, test/, splits.json)")
    ap.add_argument("--amass", required=True, help="the AMASS-style takes of prepare_open_mocap (W/amass)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--priors", default="none,l2,gmm,vposer_v1,vposer_v2")
    ap.add_argument("--vposer-v2", default=None, help="default: the shipped open v2 prior")
    ap.add_argument("--smooth-grid", default="1,10,100", help="smoothness weights tried on vald clips")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    bm = BodyModel(hbp.default_body_model_path())
    data, _ = load_data(bm, args.data)
    with open(os.path.join(args.data, "splits.json")) as fh:
        splits = json.load(fh)["splits"]
    clips = {split: load_clips(args.amass, splits[split], args.clips, args.frames, seed=i)
             for i, split in enumerate(("vald", "test"))}
    names = [n.strip() for n in args.priors.split(",") if n.strip()]
    v2_dir = args.vposer_v2 or (hbp.default_vposer_dir(version=2) if "vposer_v2" in names else None)
    priors = build_priors(names, data, vposer_v2_dir=v2_dir)
    grid = [float(w) for w in args.smooth_grid.split(",")]

    res = {"results": {}, "tuning": {}}
    for prior in priors:
        for noise in NOISE_MM:
            key = f"denoise_{noise:g}"
            weight = 0.0 if prior.name == "none" else DEFAULT_WEIGHTS[key][prior.name]
            scores = {w: clip_denoising(data, prior, weight, clips["vald"], noise, w, seed=100)["mpjpe_mm"]
                      for w in grid}
            best = min(scores, key=scores.get)
            res["tuning"].setdefault(prior.name, {})[key] = {f"{w:g}": v for w, v in scores.items()}
            res["results"].setdefault(prior.name, {})[key] = {
                "per_frame": clip_denoising(data, prior, weight, clips["test"], noise, 0.0),
                "smoothed": clip_denoising(data, prior, weight, clips["test"], noise, best)}
            r = res["results"][prior.name][key]
            print(f"{prior.name:10s} {key}: per frame {r['per_frame']['mpjpe_mm']:.1f} mm "
                  f"(accel {r['per_frame']['accel_error_mm']:.1f}), smoothed (w {best:g}) "
                  f"{r['smoothed']['mpjpe_mm']:.1f} mm (accel {r['smoothed']['accel_error_mm']:.1f})", flush=True)
    res.update({"clips": {s: len(c) for s, c in clips.items()}, "frames": args.frames, "noise_mm": list(NOISE_MM),
                "data": portable_path(args.data), "amass": portable_path(args.amass),
                "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__, "wall_seconds": time.perf_counter() - t_start, "command": command_line()})
    text = json.dumps(res, indent=1)
    if args.out:
        atomic_write_bytes(args.out, (text + "\n").encode())
    return res


if __name__ == "__main__":
    main()
