"""Paired-take fidelity yardstick: our BVH import of CMU takes against AMASS's MoSh++ fits of the same takes.

For every fit in --fits (AMASS-layout .npz, e.g. ``cmu_02_02_stageii.npz``) and every BVH conversion of
the same CMU take in the mocap archives (iClone ``subjects/002/002_02.bvh``, DAZ ``subjects/10/10_05.bvh``),
the take is imported as ``python -m human_body_prior.data.bvh2amass`` does, aligned in time and compared
on one body model (human_body_prior/evaluation/retarget_fidelity.py describes the measures). Prints a
table; --out writes the summary numbers (no arrays of the fits) as JSON.

    python benchmarks/bench_retarget_fidelity.py [--fits ../shared/amass_dev/paired_cmu]
        [--mocap-dir ../shared/mocap] [--raw-dir DIR] [--body-model SMPLX.npz] [--skeleton auto]
        [--joint-map MAP.json] [--bvh-fps F] [--eval-fps 30] [--max-lag-s 0.5] [--takes 02_02,10_05]
        [--out docs/retarget_fidelity.json]

The archives are extracted once into --raw-dir (default: a folder in the system's temporary
directory, outside the repository); a --raw-dir that prepare_open_mocap extracted (W/raw) works as is.
"""

import json
import os
import platform
import sys
import tempfile
import time

import torch
from _provenance import REPO, command_line, portable_path

from human_body_prior import cli
from human_body_prior.data.bvh2amass import _load_joint_map
from human_body_prior.data.prepare_open_mocap import extract_archives
from human_body_prior.evaluation.retarget_fidelity import (
    PAIRED_ARCHIVES,
    format_tables,
    run_fidelity,
)
from human_body_prior.files.atomic_io import atomic_write_bytes

SHARED = REPO.parent / "shared"


def _rounded(x, digits=3):
    """Floats of a JSON-able structure rounded to ``digits`` decimals."""
    if isinstance(x, float):
        return round(x, digits)
    if isinstance(x, dict):
        return {k: _rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rounded(v, digits) for v in x]
    return x


def build_parser():
    ap = cli.ArgumentParser(prog="bench_retarget_fidelity.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fits", default=str(SHARED / "amass_dev" / "paired_cmu"), help="folder of AMASS-layout fits")
    ap.add_argument("--mocap-dir", default=str(SHARED / "mocap"), help="folder of the mocap .tar.xz archives")
    ap.add_argument("--raw-dir", default=os.path.join(tempfile.gettempdir(), "hbp_paired_mocap"),
                    help="where the archives are (or get) extracted")
    ap.add_argument("--body-model", default=None, help="SMPL-X model file (default: the shipped open neutral)")
    ap.add_argument("--skeleton", default="auto", help="bvh2amass --skeleton")
    ap.add_argument("--joint-map", default=None, help="bvh2amass --joint-map (JSON: SMPL-X joint -> BVH joint)")
    ap.add_argument("--bvh-fps", type=cli.positive_float, default=None, help="bvh2amass --fps (header override)")
    ap.add_argument("--eval-fps", type=cli.positive_float, default=30.0, help="rate of the compared frames")
    ap.add_argument("--max-lag-s", type=cli.positive_float, default=0.5, help="time lags searched (+- seconds)")
    ap.add_argument("--takes", default=None, help="comma-separated take ids (e.g. 02_02,10_05); default all")
    ap.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="write the summary numbers to this JSON file")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if not os.path.isdir(args.fits):
        raise FileNotFoundError(2, "folder of paired fits not found (see ../shared/amass_dev/README.md)", args.fits)
    extract_archives(args.mocap_dir, args.raw_dir, PAIRED_ARCHIVES)
    skeleton = _load_joint_map(args.joint_map) if args.joint_map else args.skeleton
    takes = [t.strip() for t in args.takes.split(",") if t.strip()] if args.takes else None
    res = run_fidelity(args.fits, args.raw_dir, args.body_model, skeleton, args.bvh_fps, args.eval_fps,
                       args.max_lag_s, takes)
    print(format_tables(res))
    wall = time.perf_counter() - t0
    print(f"{len(res['rows'])} paired takes in {wall:.1f} s")
    if args.out:
        out = {"command": command_line(argv if argv is not None else sys.argv),
               "body_model": portable_path(args.body_model) if args.body_model else "shipped open SMPL-X neutral",
               "skeleton": args.skeleton if not args.joint_map else portable_path(args.joint_map),
               "eval_fps": args.eval_fps, "max_lag_s": args.max_lag_s, "summary": res["summary"], "rows": res["rows"],
               "joints": res["joints"], "bones": res["bones"], "takes": res["takes"], "wall_seconds": wall,
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
        atomic_write_bytes(args.out, (json.dumps(_rounded(out), indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="bench_retarget_fidelity.py"))
