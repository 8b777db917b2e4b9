"""Convert BVH motion capture into AMASS-style SMPL-X ``.npz`` takes.

    python -m human_body_prior.data.bvh2amass IN.bvh OUT.npz [--fps F] [--target-fps 30]
        [--skeleton auto|cmu_daz|cmu_motionbuilder|iclone_cc|reactidle] [--joint-map MAP.json]
        [--bm-path MODEL.npz] [--up z|y] [--no-calibration]
    python -m human_body_prior.data.bvh2amass IN_DIR OUT_DIR ...   (mirrors the folder tree)

``--fps`` overrides the frame rate in the file header (some headers are wrong); ``--target-fps``
resamples (slerp for rotations, linear for translation). ``--joint-map`` is a JSON object
SMPL-X joint name -> BVH joint name. Output keys: ``poses`` (N, 165) axis-angle in SMPL-X order
(root 3, body 63, jaw 3, eyes 6, hands 90), ``trans`` (N, 3) metres, ``betas`` (16,), ``gender``,
``mocap_framerate`` (also as ``mocap_frame_rate``), ``surface_model_type``, ``source_file``,
``skeleton``, the split-out ``root_orient``/``pose_body``/``pose_hand``/``pose_jaw``/``pose_eye``,
and ``up_axis`` ('z' like AMASS by default). Files are written atomically; nothing is written when a
take fails, and an output that is the input (also through links) is refused. In directory mode a take
that fails is reported and the others are converted (exit code 1 if any failed); ``--skip-existing``
keeps only outputs that load. Poses are corrected for two quirks of marker-solved skeletons
(:mod:`human_body_prior.data.anatomy`): the collars follow the arm (shoulder rhythm), and each performer's
knees are re-zeroed to its most extended frames and its feet pitched to stand flat as the model's do
(the takes of one folder are one performer's and are calibrated together, also when one file of the
folder is converted; ``--no-calibration`` keeps the skeleton's knees, feet and pelvis).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from human_body_prior import cli
from human_body_prior.data.bvh import BVHError, check_fps, read_bvh
from human_body_prior.data.performer import calibrate_performers
from human_body_prior.data.retarget import Retargeter
from human_body_prior.files.atomic_io import save_npz_atomic
from human_body_prior.geometry.rotations import (
    axis_angle_to_quaternion,
    quaternion_slerp,
    quaternion_to_axis_angle,
)
from human_body_prior.model_types.joints import NUM_JOINTS, pose_slices

NUM_BETAS = 16


def resample(pose: np.ndarray, trans: np.ndarray, src_fps: float, dst_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a take: pose (F, J, 3) axis-angle by quaternion slerp, trans (F, 3) linearly ->
    (N, J, 3), (N, 3) at ``dst_fps``, covering the same time span (N = floor((F-1) dst/src) + 1)."""
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {src_fps} and {dst_fps}")
    F = pose.shape[0]
    if F < 2 or src_fps == dst_fps:
        return pose.copy(), trans.copy()
    n_out = int(np.floor((F - 1) * dst_fps / src_fps + 1e-9)) + 1
    t = np.arange(n_out) * (src_fps / dst_fps)
    i0 = np.minimum(np.floor(t).astype(np.int64), F - 2)
    w = t - i0
    q = axis_angle_to_quaternion(torch.from_numpy(np.asarray(pose, dtype=np.float64)))  # (F, J, 4)
    qi = quaternion_slerp(q[i0], q[i0 + 1], torch.from_numpy(w)[:, None, None])
    pose_out = quaternion_to_axis_angle(qi).numpy()
    trans_out = (1 - w)[:, None] * trans[i0] + w[:, None] * trans[i0 + 1]
    return pose_out, trans_out


def amass_arrays(pose: np.ndarray, trans: np.ndarray, fps: float, source_file: str, skeleton: str,
                 up_axis: str, gender: str = "neutral") -> dict:
    """AMASS-style arrays of one take. pose (N, 55, 3), trans (N, 3)."""
    N = pose.shape[0]
    poses = pose.reshape(N, 3 * NUM_JOINTS["smplx"]).astype(np.float32)
    return {
        "poses": poses,
        "trans": trans.astype(np.float32),
        "betas": np.zeros(NUM_BETAS, dtype=np.float32),
        "gender": np.array(gender),
        "mocap_framerate": np.array(float(fps)),
        "mocap_frame_rate": np.array(float(fps)),
        "surface_model_type": np.array("smplx"),
        "source_file": np.array(source_file),
        "skeleton": np.array(skeleton),
        "up_axis": np.array(up_axis),
        **{part: poses[:, s] for part, s in pose_slices("smplx").items()},
    }


def convert_take(bvh_path: str, retargeter: Retargeter, fps: float | None = None, target_fps: float | None = None,
                 skeleton="auto", world_up: str = "z", source_name: str | None = None,
                 calibration=None) -> tuple[dict, dict]:
    """Retarget one BVH file; returns (AMASS arrays, the retargeting result).

    ``fps`` replaces the header's frame rate; ``target_fps`` resamples. Both must be plausible frame
    rates (bvh.MIN_FPS..MAX_FPS) when given; 0, negative, nan or inf raise ValueError.
    """
    fps = None if fps is None else check_fps(fps, "--fps")
    target_fps = None if target_fps is None else check_fps(target_fps, "--target-fps")
    bvh = read_bvh(bvh_path, frame_time=None if fps is None else 1.0 / fps)
    if bvh.num_frames == 0:
        raise BVHError(f"{bvh_path}: the file has no frames")
    src_fps = fps if fps is not None else bvh.fps  # the given rate exactly, not 1 / (1 / fps)
    res = retargeter.retarget(bvh, skeleton=skeleton, world_up=world_up, calibration=calibration)
    pose, trans = res.pose, res.trans
    out_fps = src_fps
    if target_fps is not None and abs(target_fps - src_fps) > 1e-9:
        pose, trans = resample(pose, trans, src_fps, target_fps)
        out_fps = target_fps
    arrays = amass_arrays(pose, trans, out_fps, source_name or os.path.basename(bvh_path), res.skeleton, world_up)
    return arrays, res


def same_file(a, b) -> bool:
    """True if the paths name one file (through symbolic or hard links, or a linked folder)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_input_as_output(inp, out) -> None:
    """ValueError if writing ``out`` would overwrite the input ``inp``."""
    if same_file(inp, out):
        raise ValueError(f"output {out} is the input {inp}; refusing to overwrite the source")


def is_complete_take(path) -> bool:
    """True if ``path`` is a readable AMASS-style .npz with its ``poses`` (for --skip-existing)."""
    try:
        with np.load(path) as d:
            return "poses" in d.files and d["poses"].ndim == 2
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def is_bvh(path: Path) -> bool:
    n = path.name.lower()
    return n.endswith(".bvh") or n.endswith(".bvh.gz")


def output_name(rel: Path) -> Path:
    n = rel.name
    stem = n[: -len(".bvh.gz")] if n.lower().endswith(".bvh.gz") else n[: -len(".bvh")]
    return rel.with_name(stem + ".npz")


def calibrations_by_folder(files, skeleton="auto", calibrate=True) -> dict:
    """{file: its performer's Calibration, or None}: the takes of one folder are taken as one performer's
    and calibrated together (:mod:`human_body_prior.data.performer`); calibrate=False: None for all."""
    if not calibrate:
        return {p: None for p in files}
    folders = {}
    for p in files:
        folders.setdefault(str(Path(p).parent), []).append(p)
    per_folder = calibrate_performers(folders, skeleton)
    return {p: per_folder[str(Path(p).parent)] for p in files}


def convert_tree(in_dir: str, out_dir: str, retargeter: Retargeter, fps=None, target_fps=None, skeleton="auto",
                 world_up="z", skip_existing=False, progress=True,
                 calibrate=True) -> tuple[list[str], list[tuple[str, str]]]:
    """Convert every .bvh/.bvh.gz under ``in_dir`` into ``out_dir``, mirroring the tree; calibrate: see
    :func:`calibrations_by_folder`.

    Returns (written output paths, [(input path, error message)] for the takes that failed).
    """
    from tqdm import tqdm

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = sorted(p for p in in_dir.rglob("*") if p.is_file() and is_bvh(p))
    calibrations = calibrations_by_folder(files, skeleton, calibrate)
    written, failed = [], []
    for p in tqdm(files, desc=f"bvh2amass {in_dir.name}", disable=not progress):
        rel = p.relative_to(in_dir)
        out = out_dir / output_name(rel)
        if skip_existing and is_complete_take(out):
            written.append(str(out))
            continue
        try:
            refuse_input_as_output(p, out)
            arrays, _ = convert_take(str(p), retargeter, fps, target_fps, skeleton, world_up, source_name=str(rel),
                                     calibration=calibrations[p])
        except (ValueError, KeyError, OSError) as e:  # this take's own problem; the others go on
            failed.append((str(p), str(e)))
            continue
        save_npz_atomic(str(out), arrays)
        written.append(str(out))
    return written, failed


def _load_joint_map(path: str) -> dict:
    try:
        with open(path) as fh:
            m = json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"--joint-map {path}: cannot read a JSON object ({e})") from None
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise ValueError(f"--joint-map {path}: expected a JSON object SMPL-X joint name -> BVH joint name")
    return m


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m human_body_prior.data.bvh2amass", description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="a .bvh / .bvh.gz file or a folder of them")
    ap.add_argument("output", help="output .npz (or folder in directory mode)")
    ap.add_argument("--fps", type=cli.positive_float, default=None, help="true frame rate of the input (overrides the header)")
    ap.add_argument("--target-fps", type=cli.positive_float, default=None, help="resample to this frame rate")
    ap.add_argument("--skeleton", default="auto", help="auto | cmu_daz | cmu_motionbuilder | iclone_cc | reactidle")
    ap.add_argument("--joint-map", default=None, help="JSON file: SMPL-X joint name -> BVH joint name")
    ap.add_argument("--bm-path", default=None, help="SMPL-X model file (default: the shipped open neutral model)")
    ap.add_argument("--up", default="z", choices=("z", "y"), help="world up axis of the output (AMASS: z)")
    ap.add_argument("--skip-existing", action="store_true", help="directory mode: keep outputs that exist")
    ap.add_argument("--no-calibration", action="store_true",
                    help="keep the skeleton's knees, feet and pelvis as they are (default: calibrate each "
                         "performer's, the BVH takes of one folder being one performer's)")
    args = ap.parse_args(argv)

    skeleton = _load_joint_map(args.joint_map) if args.joint_map else args.skeleton
    if args.bm_path is None:
        from human_body_prior.support_paths import default_body_model_path
        args.bm_path = default_body_model_path("smplx", "neutral")
    rt = Retargeter.from_model_file(args.bm_path)
    if os.path.isdir(args.input):
        written, failed = convert_tree(args.input, args.output, rt, args.fps, args.target_fps, skeleton,
                                       args.up, args.skip_existing, calibrate=not args.no_calibration)
        print(f"wrote {len(written)} takes under {args.output}")
        for path, msg in failed:
            print(f"FAILED {path}: {msg}", file=sys.stderr)
        return 1 if failed else 0
    if not os.path.isfile(args.input):
        raise FileNotFoundError(errno.ENOENT, "input BVH does not exist", args.input)
    if same_file(args.input, args.output):
        raise cli.UsageError(f"output {args.output} is the input {args.input}; refusing to overwrite the source")
    inp = Path(args.input)  # calibrated with the other takes of its folder (one performer's, as in CMU subject folders)
    folder = sorted(p for p in inp.parent.iterdir() if p.is_file() and is_bvh(p)) if not args.no_calibration else [inp]
    calibration = calibrations_by_folder(folder if inp in folder else [inp], skeleton, not args.no_calibration)[inp]
    arrays, res = convert_take(args.input, rt, args.fps, args.target_fps, skeleton, args.up, calibration=calibration)
    save_npz_atomic(args.output, arrays)
    print(f"wrote {args.output}: {arrays['poses'].shape[0]} frames at {float(arrays['mocap_framerate']):g} fps, "
          f"skeleton {res.skeleton}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
