"""The prior benchmark: published pose-prior protocols on open held-out mocap, every prior alike.

    python -m human_body_prior.evaluation.prior_benchmark [--data DIR] [--quick] [--out DIR]
        [--priors none,l2,gmm,vposer_v1] [--vposer-v1 DIR] [--vposer-v2 DIR] [--gmm FILE]
        [--threads 1] [--no-pictures]

--data: a prepared data folder with train/, vald/ and test/ splits (pose.pt, root_orient.pt), as
``python -m human_body_prior.data.prepare_open_mocap`` writes it. Without it the small subset shipped
in support_data/prior_benchmark/ is used (CI's smoke test; numbers from it are not the benchmark's).
--quick: small sizes (< 3 minutes on 2 CPU cores) and the default prior weights, no tuning.
Writes OUT/results.json, OUT/tables.md and, unless --no-pictures, OUT/samples_<prior>.png (the same
seeds for every prior) and OUT/completion_<prior>.png.

Protocols (prior_protocols.py): generation (APD, FID on axis-angle and on 22 joint positions, PRDC
precision/recall with k = 3 on joint positions, dNN), completion (6 occlusion sets, 10 hypotheses,
min/mean MPVPE over the occluded vertices and APD), denoising (40 and 100 mm joint noise) and partial
fitting (20 mm noise, 30% missing joints). See docs/PRIORS.md.

    python -m human_body_prior.evaluation.prior_benchmark --data D --write-subset FILE
writes the small pose subset (train 3000, test 1000 frames with root orientations, seed 0).

    python -m human_body_prior.evaluation.prior_benchmark --real-poses DIR [--stride 10 | --sample-fps F]
        [--quick] [--out OUT] [--priors none,gmm,vposer_v1,vposer_v2]
the real-pose protocol on a folder of AMASS-layout takes (``*_poses.npz`` SMPL-H, poses (T, 156) and
mocap_framerate, or ``*_stageii.npz`` SMPL-X, poses (T, 165) and mocap_frame_rate; searched
recursively), every stride-th frame: encode -> decode per-joint error (median over takes of the per-take
mean, mean over frames, share of frames within 25 mm), noise-free IK onto the joints of 20 frames,
and generation metrics with those poses as the reference. Writes OUT/real_poses.json and
OUT/real_poses.md. Every take is read and checked before anything runs.

    python -m human_body_prior.evaluation.prior_benchmark --tables-from A/results.json B/results.json --out DIR
writes DIR/tables.md with the priors of several runs (same data and sizes: the frames, seeds and
noise draws are fixed, so a prior added later is measured on the same cases).
"""

import errno
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from human_body_prior import cli
from human_body_prior.evaluation.compared_priors import (
    L2Prior,
    NoPrior,
    compared_prior,
)
from human_body_prior.evaluation.prior_protocols import (
    LATENT_COMPLETION_WEIGHT,
    OCCLUSIONS,
    BenchData,
    complete,
    completion,
    fitting_protocol,
    generation,
    generation_real,
    joint_ids,
    part_vertices,
    reconstruction,
    tune_weight,
)
from human_body_prior.files.atomic_io import atomic_write_bytes, save_npz_atomic
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS

PRIOR_NAMES = ("none", "l2", "gmm", "vposer_v1", "vposer_v2")
# Prior weights (units of the data term, m^2 per frame) of the fitting protocols when not tuned
# (--quick): the full run's choices on the vald split (docs/PRIORS.md).
# The priors shipped 2026-12-07 (trained with pose jitter) were tuned again on the same vald frames.
DEFAULT_WEIGHTS = {
    "denoise_40": {"l2": 1e-3, "gmm": 1e-3, "vposer_v1": 1e-3, "vposer_v2": 1e-2},
    "denoise_100": {"l2": 1e-2, "gmm": 1e-2, "vposer_v1": 1e-1, "vposer_v2": 1e-1},
    "partial": {"l2": 1e-5, "gmm": 1e-3, "vposer_v1": 1e-5, "vposer_v2": 1e-3},
    "completion": {"vposer_v1": 1e-1, "vposer_v2": 1e-1},  # latent priors' |z|^2 weight
}
WEIGHT_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# latent priors' completion: weight of |z|^2 against the rotation misfit of the observed joints
LATENT_COMPLETION_GRID = (1e-3, 1e-2, 1e-1)
FIT_PROTOCOLS = {"denoise_40": (40.0, 0.0), "denoise_100": (100.0, 0.0), "partial": (20.0, 0.3)}

SIZES = {
    "full": dict(seeds=(0, 1, 2), samples=500, completion_frames=60, hypotheses=10, fit_frames=384,
                 tune_frames=64, tune_completion_frames=16, iterations=80),
    "quick": dict(seeds=(0, 1), samples=100, completion_frames=3, hypotheses=10, fit_frames=24,
                  tune_frames=0, tune_completion_frames=0, iterations=80),
}


def subset_path() -> Path:
    from human_body_prior.support_paths import support_data_dir

    return support_data_dir() / "prior_benchmark" / "pose_subset.npz"


# ---------------------------------------------------------------------- data
def _load_split(folder: Path, name: str) -> tuple:
    from human_body_prior.fitting.heldout import load_poses

    d = load_poses(folder / name)
    return torch.as_tensor(d["pose_body"], dtype=torch.float32), torch.as_tensor(d["root_orient"], dtype=torch.float32)


def load_data(bm, data_dir=None) -> tuple:
    """BenchData from a prepared data folder, or from the shipped subset when data_dir is None.
    Returns (BenchData, description)."""
    if data_dir is None:
        path = subset_path()
        if not path.is_file():
            raise FileNotFoundError(f"no --data given and the shipped pose subset {path} is missing")
        with np.load(path, allow_pickle=False) as f:
            need = ("train_pose", "test_pose", "test_root_orient")
            missing = [k for k in need if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}")
            arr = {k: torch.as_tensor(f[k], dtype=torch.float32) for k in f.files}
        data = BenchData(bm, arr["train_pose"], arr["test_pose"], arr["test_root_orient"],
                         arr.get("vald_pose"), arr.get("vald_root_orient"))
        return data, f"shipped subset {path.name}"
    folder = Path(data_dir)
    train, _ = _load_split(folder, "train")
    test, test_root = _load_split(folder, "test")
    vald, vald_root = _load_split(folder, "vald") if (folder / "vald").is_dir() else (None, None)
    return BenchData(bm, train, test, test_root, vald, vald_root), f"data folder {folder.name}"


def load_clips(amass_dir, takes, num_clips: int, frames: int, seed: int = 0) -> list:
    """Clips of real motion for the clip protocol: one clip of ``frames`` consecutive frames from each of
    ``num_clips`` takes drawn (seeded) from ``takes`` (names as in a prepared folder's splits.json,
    ``source/.../take.bvh``), read from the AMASS-style files prepare_open_mocap writes under
    ``amass_dir`` (``source/.../take.npz``); the clip starts uniformly within the take's middle 80%.
    Takes shorter than that are passed over. Returns [(pose_body (T, 63), root_orient (T, 3))] float32."""
    rng = np.random.default_rng(seed)
    clips = []
    for take in rng.permutation(sorted(takes)):
        path = Path(amass_dir) / Path(take).with_suffix(".npz")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no AMASS-style file for the take {take} (prepare_open_mocap --work-dir "
                                    "W writes them under W/amass)")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("pose_body", "root_orient") if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}; an AMASS-style take holds pose_body (F, 63) "
                                 "and root_orient (F, 3)")
            pose, root = f["pose_body"], f["root_orient"]
        width = 3 * NUM_POSE_BODY_JOINTS
        if pose.ndim != 2 or pose.shape[1] != width or root.shape != (len(pose), 3):
            raise ValueError(f"{path}: pose_body must be (F, {width}) and root_orient (F, 3), got {pose.shape} "
                             f"and {root.shape}")
        lo, hi = int(0.1 * len(pose)), int(0.9 * len(pose)) - frames
        if hi < lo:
            continue
        start = int(rng.integers(lo, hi + 1))
        clips.append((torch.as_tensor(pose[start:start + frames], dtype=torch.float32),
                      torch.as_tensor(root[start:start + frames], dtype=torch.float32)))
        if len(clips) == num_clips:
            break
    return clips


# AMASS layouts: values per frame of 'poses' -> model type (poses[:, 3:66] is pose_body in both)
AMASS_POSE_WIDTHS = {156: "smplh", 165: "smplx"}
_FPS_KEYS = "'mocap_framerate' (SMPL-H) or 'mocap_frame_rate' (SMPL-X)"


def _read_real_take(path: Path, min_frames: int) -> tuple:
    """One AMASS-layout take -> (pose_body (F, 63), root_orient (F, 3), fps); ValueError naming the file
    and the key for anything else (data.prepare_data.read_amass_take reads it)."""
    from human_body_prior.data.prepare_data import read_amass_take

    t = read_amass_take(path)
    poses = t["poses"]
    if poses.shape[1] not in AMASS_POSE_WIDTHS:
        raise ValueError(f"{path}: key 'poses' has {poses.shape[1]} values per frame; AMASS layout is 156 "
                         f"(SMPL-H) or 165 (SMPL-X)")
    fps = t["fps"]
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: no valid frame rate (key {_FPS_KEYS}), got {fps}")
    bad = ~np.isfinite(poses[:, :3 * (NUM_POSE_BODY_JOINTS + 1)]).all(1)
    if bad.any():
        raise ValueError(f"{path}: key 'poses' holds NaN or infinite values (first at frame {int(np.argmax(bad))})")
    if len(poses) < min_frames:
        raise ValueError(f"{path}: key 'poses' has {len(poses)} frames; the protocol needs at least {min_frames}")
    return t["pose_body"], t["root_orient"], float(fps)


def real_take_files(folder) -> list:
    """The AMASS take files under ``folder`` (recursively; shape files shape.npz / *_stagei.npz left out)."""
    from human_body_prior.data.prepare_data import list_takes

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "folder of AMASS-layout takes not found", str(folder))
    files = [p for p in list_takes(folder, "") if not p.name.endswith("_stagei.npz")]
    if not files:
        raise ValueError(f"{folder}: no .npz takes in it (AMASS layout: 'poses' (T, 156) or (T, 165) and a frame rate)")
    return files


def load_real_poses(folder, stride: int = 10, sample_fps: float = None, min_frames: int = 10) -> dict:
    """Every ``stride``-th frame of each AMASS-layout take under ``folder`` (or, with ``sample_fps``, every
    round(fps / sample_fps)-th frame, so takes of different rates are sampled alike).

    Returns {'pose_body' (N, 63) float32, 'root_orient' (N, 3) float32, 'take_index' (N,) int,
    'takes': [names relative to folder], 'fps': [per take], 'frames': [per take, before sampling]}.
    ValueError (one line naming file and key) for a file that is not an AMASS take, a wrong width,
    NaN, fewer than min_frames frames, or (without sample_fps) frame rates that disagree.
    """
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    files = real_take_files(folder)
    takes = [(p, *_read_real_take(p, min_frames)) for p in files]
    rates = {fps: p for p, _, _, fps in takes}
    if sample_fps is None and len(rates) > 1:
        (fa, pa), (fb, pb) = sorted(rates.items())[:2]
        raise ValueError(f"frame rates disagree: {pa} has {fa:g} fps and {pb} {fb:g} fps (key {_FPS_KEYS}); "
                         "sample them alike with a rate (--sample-fps)")
    pose, root, index = [], [], []
    for k, (p, body, ro, fps) in enumerate(takes):
        step = int(stride) if sample_fps is None else max(1, int(round(fps / sample_fps)))
        pick = np.arange(0, len(body), step)
        pose.append(body[pick])
        root.append(ro[pick])
        index.append(np.full(len(pick), k))
    return {"pose_body": torch.as_tensor(np.concatenate(pose), dtype=torch.float32),
            "root_orient": torch.as_tensor(np.concatenate(root), dtype=torch.float32),
            "take_index": np.concatenate(index), "takes": [p.relative_to(Path(folder)).as_posix() for p, *_ in takes],
            "fps": [t[-1] for t in takes], "frames": [len(t[1]) for t in takes]}


def write_subset(data_dir, out, train_frames=3000, test_frames=1000, seed=0) -> str:
    """The small pose subset for --quick and CI (float32, compressed)."""
    folder = Path(data_dir)
    train, _ = _load_split(folder, "train")
    test, test_root = _load_split(folder, "test")
    rng = np.random.default_rng(seed)
    ti = np.sort(rng.choice(len(train), size=min(train_frames, len(train)), replace=False))
    si = np.sort(rng.choice(len(test), size=min(test_frames, len(test)), replace=False))
    return save_npz_atomic(str(out), {"train_pose": train[ti].numpy(), "test_pose": test[si].numpy(),
                                      "test_root_orient": test_root[si].numpy(),
                                      "train_index": ti.astype(np.int32), "test_index": si.astype(np.int32)})


# ---------------------------------------------------------------------- priors
def build_priors(names, data: BenchData, vposer_v1_dir=None, vposer_v2_dir=None, gmm_path=None) -> list:
    """Compared priors by name; the PosePriors (gmm, vposer_v1, vposer_v2) through load_prior, in data.dtype."""
    from human_body_prior.priors import load_prior

    sources = {"gmm": gmm_path or "gmm", "vposer_v1": vposer_v1_dir or "vposer_v1", "vposer_v2": vposer_v2_dir}
    priors = []
    for name in names:
        if name == "none":
            priors.append(NoPrior())
        elif name == "l2":
            priors.append(L2Prior.from_training(data.train))
        elif name in sources:
            if sources[name] is None:
                raise ValueError("the prior 'vposer_v2' needs --vposer-v2 DIR (a 2021 experiment folder)")
            priors.append(compared_prior(load_prior(sources[name]).to(dtype=data.dtype), name))
        else:
            raise ValueError(f"unknown prior {name!r}; choose from {PRIOR_NAMES}")
    return priors


# ---------------------------------------------------------------------- run
def run(data: BenchData, priors: list, sizes: dict, tune: bool, progress=True) -> dict:
    """All protocols for all priors -> results dict (see docs/PRIORS.md for the fields)."""
    res = {"generation": {}, "completion": {}, "fitting": {k: {} for k in FIT_PROTOCOLS}, "weights": {},
           "tuning": {}}
    rng = np.random.default_rng(0)
    comp_frames = np.sort(rng.choice(len(data.test), size=min(sizes["completion_frames"], len(data.test)),
                                     replace=False))
    fit_frames = np.sort(np.random.default_rng(1).choice(len(data.test), size=min(sizes["fit_frames"], len(data.test)),
                                                         replace=False))
    tasks = [("generation", "real", None)]
    for p in priors:
        tasks += [("generation", p.name, p)]
        if tune and p.name != "none":
            tasks += [("tune", p.name, p)]
        tasks += [("completion", p.name, p), ("fitting", p.name, p)]
    bar = tqdm(tasks, desc="prior benchmark", disable=not progress, dynamic_ncols=True)
    for kind, name, p in bar:
        bar.set_postfix_str(f"{kind} {name}")
        if kind == "generation" and p is None:
            res["generation"]["real"] = generation_real(data, sizes["seeds"], sizes["samples"])
        elif kind == "generation":
            res["generation"][name] = generation(data, p, sizes["seeds"], sizes["samples"])
        elif kind == "completion":
            lw = res["weights"].get("completion", {}).get(name, DEFAULT_WEIGHTS["completion"].get(
                name, LATENT_COMPLETION_WEIGHT))
            res["completion"][name] = completion(data, p, comp_frames, hypotheses=sizes["hypotheses"],
                                                 iterations=sizes["iterations"], latent_weight=lw)
        elif kind == "tune":
            tf = np.sort(np.random.default_rng(2).choice(len(data.vald), size=min(sizes["tune_frames"], len(data.vald)),
                                                         replace=False))
            res["tuning"][name] = {}
            if p.kind == "latent":
                cf = tf[:sizes["tune_completion_frames"]]
                scores = {w: completion(data, p, cf, hypotheses=sizes["hypotheses"], iterations=sizes["iterations"],
                                        latent_weight=w, split="vald")["mean"]["mpvpe_min_mm"]
                          for w in LATENT_COMPLETION_GRID}
                res["weights"].setdefault("completion", {})[name] = min(scores, key=scores.get)
                res["tuning"][name]["completion"] = {f"{k:g}": v for k, v in scores.items()}
            for proto, (noise, missing) in FIT_PROTOCOLS.items():
                w, scores = tune_weight(data, p, WEIGHT_GRID, tf, noise, missing)
                res["weights"].setdefault(proto, {})[name] = w
                res["tuning"][name][proto] = {f"{k:g}": v for k, v in scores.items()}
        else:
            for proto, (noise, missing) in FIT_PROTOCOLS.items():
                w = 0.0 if name == "none" else res["weights"].get(proto, {}).get(name, DEFAULT_WEIGHTS[proto][name])
                res["weights"].setdefault(proto, {})[name] = w
                res["fitting"][proto][name] = fitting_protocol(data, p, w, fit_frames, noise, missing, seed=0,
                                                               vertices=(proto == "partial"))
    res["completion_frames"] = comp_frames.tolist()
    res["fit_frames"] = int(len(fit_frames))
    return res


# ---------------------------------------------------------------------- real poses
REAL_SIZES = {"full": dict(seeds=(0, 1, 2), samples=500, ik_frames=20, fit_frames=128),
              "quick": dict(seeds=(0, 1), samples=100, ik_frames=8, fit_frames=8)}
# fitting real joints: (noise per axis mm, share of joints missing), each prior at its protocol weight
REAL_FITS = {"denoise_40": (40.0, 0.0), "partial": (20.0, 0.3)}
REAL_PRIORS = "none,gmm,vposer_v1,vposer_v2"
# Noise-free IK onto real joints: each prior at its weight for the least noisy fitting protocol
IK_WEIGHTS = DEFAULT_WEIGHTS["partial"]


def real_pose_data(bm, real: dict, train: torch.Tensor) -> BenchData:
    """BenchData whose held-out set is the real poses of load_real_poses (their root orientations kept);
    train: the prior's training poses (dNN and the real row of generation are scored against them)."""
    return BenchData(bm, train, real["pose_body"], real["root_orient"])


def run_real(data: BenchData, priors: list, take_index: np.ndarray, sizes: dict, progress=True) -> dict:
    """The real-pose protocol: encode -> decode per-joint error (latent priors), noise-free IK onto the
    joints of sizes['ik_frames'] real frames, fitting noisy (REAL_FITS: 40 mm; 20 mm with 30% of the
    joints missing) joints of sizes['fit_frames'] real frames (every prior through the fitting engine,
    at its protocol weight), and generation metrics with the real poses as the reference."""
    res = {"reconstruction": {}, "ik": {}, "fit": {k: {} for k in REAL_FITS}, "generation": {}}
    rng = np.random.default_rng(0)
    pick = lambda n: np.sort(rng.choice(len(data.test), size=min(n, len(data.test)), replace=False))  # noqa: E731
    ik_frames, fit_frames = pick(sizes["ik_frames"]), pick(sizes.get("fit_frames", 0))
    kinds = ("reconstruction", "ik", "fit", "generation")
    tasks = [("generation", None)] + [(kind, p) for p in priors for kind in kinds]
    bar = tqdm(tasks, desc="real poses", disable=not progress, dynamic_ncols=True)
    for kind, p in bar:
        bar.set_postfix_str(f"{kind} {'real' if p is None else p.name}")
        if p is None:
            res["generation"]["real"] = generation_real(data, sizes["seeds"], sizes["samples"])
        elif kind == "reconstruction" and hasattr(p, "reconstruct"):
            res["reconstruction"][p.name] = reconstruction(data, p, take_index)
        elif kind == "ik":
            w = 0.0 if p.name == "none" else IK_WEIGHTS[p.name]
            res["ik"][p.name] = fitting_protocol(data, p, w, ik_frames, 0.0, 0.0, seed=0)
        elif kind == "fit" and len(fit_frames):
            for name, (noise, missing) in REAL_FITS.items():
                w = 0.0 if p.name == "none" else DEFAULT_WEIGHTS[name][p.name]
                res["fit"][name][p.name] = fitting_protocol(data, p, w, fit_frames, noise, missing, seed=0)
        elif kind == "generation":
            res["generation"][p.name] = generation(data, p, sizes["seeds"], sizes["samples"])
    res["ik_frames"], res["fit_frames"] = int(len(ik_frames)), int(len(fit_frames))
    return res


def real_tables(res: dict) -> str:
    """Markdown table of a run_real result (one row per prior; '-' where a protocol does not apply). The
    fitting columns give the joint error (mm) and, for a prior, its gain over fitting without one."""
    n_ik, n_fit = res.get("ik_frames"), res.get("fit_frames", 0)
    fits = [k for k in res.get("fit", {}) if res["fit"][k]]
    heads = [f"fit, {REAL_FITS[k][0]:g} mm noise{f', {REAL_FITS[k][1]:.0%} missing' if REAL_FITS[k][1] else ''}, "
             f"{n_fit} frames (mm, gain)" for k in fits]
    out = ["| prior | median take (mm) | mean frame (mm) | frames within 25 mm | "
           f"IK, {n_ik} frames (mm) | " + "".join(h + " | " for h in heads) +
           "APD (cm) | FID joints | precision | recall | dNN (rad) |", "|---" * (10 + len(fits)) + "|"]
    for name in res["generation"]:
        r, ik, g = res["reconstruction"].get(name), res["ik"].get(name), res["generation"][name]["mean"]
        rec = (f"{r['median_take_mm']:.1f} | {r['mean_frame_mm']:.1f} | {100 * r['share_within']:.1f}%" if r
               else "- | - | -")
        ik_cell = f"{ik['mpjpe_mm']:.1f} ± {ik['mpjpe_sem_mm']:.1f}" if ik else "-"
        fit_cells = ""
        for k in fits:
            f, base = res["fit"][k].get(name), res["fit"][k].get("none")
            gain = f" ({100 * (1 - f['mpjpe_mm'] / base['mpjpe_mm']):+.0f}%)" if f and base and name != "none" else ""
            fit_cells += (f"{f['mpjpe_mm']:.1f}{gain}" if f else "-") + " | "
        out.append(f"| {name} | {rec} | {ik_cell} | {fit_cells}{g['apd_cm']:.2f} | {g['fid_joints']:.4f} | "
                   f"{g['precision']:.3f} | {g['recall']:.3f} | {g['dnn_rad']:.3f} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- tables
def _pm(m, s, fmt):
    return f"{fmt.format(m)} ± {fmt.format(s)}"


def tables(res: dict) -> str:
    """Markdown tables of a results dict."""
    out = []
    g = res["generation"]
    out += ["### Generation", "",
            f"{next(iter(g.values()))['num_samples']} samples per seed, seeds {next(iter(g.values()))['seeds']}: "
            "mean ± std over seeds. APD in cm (22 joints); FID on axis-angle (63-D) and joint positions "
            "(66-D, m^2); precision/recall: PRDC k = 3 on joint positions; dNN: summed per-joint angle to "
            "the nearest training pose (rad). Reference: held-out poses; the real row scores held-out poses "
            "against the training poses.", "",
            "| prior | APD (cm) | FID aa | FID joints | precision | recall | dNN (rad) | ms/sample |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in g.items():
        m, s = r["mean"], r["std"]
        ms = f"{1000 * r['seconds_per_sample']:.3f}" if "seconds_per_sample" in r else "-"
        out.append(f"| {name} | {_pm(m['apd_cm'], s['apd_cm'], '{:.2f}')} | {_pm(m['fid_aa'], s['fid_aa'], '{:.3f}')} | "
                   f"{_pm(m['fid_joints'], s['fid_joints'], '{:.4f}')} | {_pm(m['precision'], s['precision'], '{:.3f}')} | "
                   f"{_pm(m['recall'], s['recall'], '{:.3f}')} | {_pm(m['dnn_rad'], s['dnn_rad'], '{:.3f}')} | {ms} |")
    c = res["completion"]
    if c:
        first = next(iter(c.values()))
        parts = list(first["parts"])
        out += ["", "### Completion", "",
                f"{first['frames']} held-out frames, {first['hypotheses']} hypotheses each; per occlusion set "
                "min (± standard error over frames) / mean over the hypotheses of the MPVPE (mm) over the "
                "occluded part's vertices; seconds per frame and occlusion set (all hypotheses).", "",
                "| prior | " + " | ".join(parts) + " | mean | s/frame |", "|---" * (len(parts) + 3) + "|"]
        for name, r in c.items():
            cells = [f"{r['parts'][p]['mpvpe_min_mm']:.1f} ± {r['parts'][p]['mpvpe_min_sem_mm']:.1f} / "
                     f"{r['parts'][p]['mpvpe_mean_mm']:.1f}" for p in parts]
            sec = np.mean([r['parts'][p]['seconds_per_frame'] for p in parts])
            out.append(f"| {name} | " + " | ".join(cells) +
                       f" | {r['mean']['mpvpe_min_mm']:.1f} / {r['mean']['mpvpe_mean_mm']:.1f} | {sec:.3f} |")
        out += ["", "APD (cm, 22 joints) across each frame's hypotheses:", "",
                "| prior | " + " | ".join(parts) + " | mean |", "|---" * (len(parts) + 2) + "|"]
        for name, r in c.items():
            out.append(f"| {name} | " + " | ".join(f"{r['parts'][p]['apd_cm']:.2f}" for p in parts) +
                       f" | {r['mean']['apd_cm']:.2f} |")
    f = res["fitting"]
    if any(f.values()):
        n = res.get("fit_frames")
        out += ["", "### Denoising", "", f"{n} held-out frames; Gaussian noise per axis on the 22 joints; "
                "MPJPE (mm, ± standard error over frames) of the fit against the clean joints; prior weight; "
                "seconds per frame.", "",
                "| prior | 40 mm: MPJPE | weight | s/frame | 100 mm: MPJPE | weight | s/frame |", "|---|---|---|---|---|---|---|"]
        for name in f["denoise_40"]:
            a, b = f["denoise_40"][name], f["denoise_100"][name]
            out.append(f"| {name} | {a['mpjpe_mm']:.1f} ± {a['mpjpe_sem_mm']:.1f} | {a['weight']:g} | "
                       f"{a['seconds_per_frame']:.4f} | {b['mpjpe_mm']:.1f} ± {b['mpjpe_sem_mm']:.1f} | {b['weight']:g} | "
                       f"{b['seconds_per_frame']:.4f} |")
        out += ["", "### Partial fitting", "", f"{n} held-out frames; 20 mm noise per axis, each joint missing "
                "with probability 0.3; joint errors (mm) over all 22 joints, the visible and the missing ones; "
                "mean vertex distance to the true mesh (mm).", "",
                "| prior | all joints | visible | missing | vertices | weight | s/frame |", "|---|---|---|---|---|---|---|"]
        for name, r in f["partial"].items():
            out.append(f"| {name} | {r['mpjpe_mm']:.1f} ± {r['mpjpe_sem_mm']:.1f} | {r['visible_mm']:.1f} | {r['missing_mm']:.1f} | "
                       f"{r['vertex_mm']:.1f} | {r['weight']:g} | {r['seconds_per_frame']:.4f} |")
    return "\n".join(out) + "\n"


def merge_results(results: list) -> dict:
    """Combine results of runs over different priors (same data, sizes and seeds) into one dict for
    tables(): each prior's rows from the run that has them, the real-data row from the first."""
    out = {"generation": {}, "completion": {}, "fitting": {k: {} for k in FIT_PROTOCOLS}}
    for r in results:
        for name, row in r["generation"].items():
            out["generation"].setdefault(name, row)
        for name, row in r["completion"].items():
            out["completion"].setdefault(name, row)
        for proto in FIT_PROTOCOLS:
            for name, row in r["fitting"].get(proto, {}).items():
                out["fitting"][proto].setdefault(name, row)
        out.setdefault("fit_frames", r.get("fit_frames"))
    return out


# ---------------------------------------------------------------------- pictures
HYPOTHESIS_COLORS = np.array([[0.90, 0.35, 0.20], [0.20, 0.55, 0.90], [0.25, 0.70, 0.35], [0.85, 0.65, 0.10],
                              [0.60, 0.30, 0.75], [0.10, 0.70, 0.70], [0.85, 0.30, 0.55], [0.45, 0.45, 0.45],
                              [0.55, 0.35, 0.15], [0.30, 0.30, 0.80]])


def render_pictures(data: BenchData, priors: list, out_dir: str, num_samples: int = 6, seed: int = 0,
                    part: str = "left_arm", frame: int = 0, hypotheses: int = 10, latent_weights=None) -> list:
    """samples_<prior>.png: num_samples samples (same seed for every prior), front and side views.
    completion_<prior>.png: columns: the held-out frame (occluded part in black), all hypotheses
    overlaid (occluded part in one colour per hypothesis), then the first three alone."""
    from human_body_prior.mesh.rendering import (
        BODY_COLOR,
        imagearray2file,
        render_vertices,
    )

    written = []
    faces = data.bm.f.cpu().numpy() if torch.is_tensor(data.bm.f) else np.asarray(data.bm.f)
    views, size = (0.0, 90.0), dict(width=180, height=240)
    for p in priors:
        v = data.vertices(p.sample(num_samples, seed=seed))
        img = render_vertices(v, faces, view_angles=views, **size)
        written.append(imagearray2file(img[:, :, None], os.path.join(out_dir, f"samples_{p.name}.png")))
    gt = data.test[[frame]]
    occ = joint_ids(OCCLUSIONS[part])
    verts = part_vertices(data.bm, OCCLUSIONS[part])
    V = data.bm.weights.shape[0]
    gt_v = data.vertices(gt)[0]
    for p in priors:
        lw = (latent_weights or {}).get(p.name, DEFAULT_WEIGHTS["completion"].get(p.name, LATENT_COMPLETION_WEIGHT))
        hyp_v = data.vertices(complete(data, p, gt, occ, hypotheses, seed=seed, latent_weight=lw)[0])  # (S, V, 3)
        S = hyp_v.shape[0]
        colors = np.tile(np.asarray(BODY_COLOR), (S, V, 1))
        colors[:, verts] = HYPOTHESIS_COLORS[np.arange(S) % len(HYPOTHESIS_COLORS)][:, None]
        gt_col = np.tile(np.asarray(BODY_COLOR), (V, 1))
        gt_col[verts] = 0.15
        # all hypotheses in one mesh: faces offset per copy
        all_f = np.concatenate([faces + s * V for s in range(S)])
        centre = 0.5 * (gt_v.min(0).values + gt_v.max(0).values).numpy()[None]
        tiles = [render_vertices(gt_v[None], faces, view_angles=views, color=gt_col, centers=centre, **size),
                 render_vertices(hyp_v.reshape(1, -1, 3), all_f, view_angles=views, color=colors.reshape(-1, 3),
                                 centers=centre, **size)]
        tiles += [render_vertices(hyp_v[s:s + 1], faces, view_angles=views, color=colors[s], centers=centre, **size)
                  for s in range(min(3, S))]
        written.append(imagearray2file(np.concatenate(tiles, 1)[:, :, None],
                                       os.path.join(out_dir, f"completion_{p.name}.png")))
    return written


def _command_line(argv) -> str:
    """The command as run, with folder arguments reduced to their last component (no machine paths)."""
    out, prev = [], None
    for a in argv:
        folder = prev in ("--data", "--vposer-v1", "--vposer-v2", "--gmm", "--bm-path", "--real-poses") or (
            prev == "--out" and Path(a).is_absolute())
        out.append(Path(a).name if folder else a)
        prev = a
    return " ".join(["python -m human_body_prior.evaluation.prior_benchmark"] + out)


def build_parser():
    ap = cli.ArgumentParser(prog="python -m human_body_prior.evaluation.prior_benchmark",
                                 description="Pose-prior benchmark (generation, completion, denoising, partial fitting).")
    ap.add_argument("--data", default=None, help="prepared data folder with train/ vald/ test/ (default: shipped subset)")
    ap.add_argument("--quick", action="store_true", help="small sizes, default weights (CI smoke test)")
    ap.add_argument("--out", default="prior_benchmark_out", help="output folder")
    ap.add_argument("--priors", default=None, help=f"comma-separated, from {PRIOR_NAMES} (default none,l2,gmm,"
                    f"vposer_v1; with --real-poses {REAL_PRIORS})")
    ap.add_argument("--vposer-v1", default=None, help="VPoser v1 experiment folder (default: the shipped open one)")
    ap.add_argument("--vposer-v2", default=None, help="VPoser v2 experiment folder (for the prior 'vposer_v2')")
    ap.add_argument("--gmm", default=None, help="GMM prior .npz (default: the shipped one)")
    ap.add_argument("--bm-path", default=None, help="body model (default: the shipped open SMPL-X neutral)")
    ap.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--no-pictures", action="store_true")
    ap.add_argument("--write-subset", default=None, help="write the small pose subset from --data here and stop")
    ap.add_argument("--tables-from", nargs="+", default=None, metavar="RESULTS_JSON",
                    help="only write OUT/tables.md combining the priors of these results.json files")
    ap.add_argument("--real-poses", default=None, metavar="DIR",
                    help="only the real-pose protocol on the AMASS-layout takes (*.npz) under DIR: writes "
                         "OUT/real_poses.json and OUT/real_poses.md")
    ap.add_argument("--stride", type=cli.positive_int, default=10, help="--real-poses: every n-th frame of each take")
    ap.add_argument("--sample-fps", type=cli.positive_float, default=None,
                    help="--real-poses: sample each take at this rate instead (takes of different frame rates)")
    return ap


def _parse_priors(text: str) -> list:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in PRIOR_NAMES]
    if bad:
        raise ValueError(f"unknown prior(s) {bad}; choose from {PRIOR_NAMES}")
    return names


def main_real(args, argv) -> int:
    """--real-poses: load and check every take first, then run the protocol; outputs written atomically."""
    import human_body_prior as hbp
    from human_body_prior.body_model.body_model import BodyModel

    t_start = time.perf_counter()
    names = _parse_priors(args.priors or REAL_PRIORS)
    real = load_real_poses(args.real_poses, args.stride, args.sample_fps)
    bm = BodyModel(args.bm_path or hbp.default_body_model_path())
    train_data, source = load_data(bm, args.data)
    data = real_pose_data(bm, real, train_data.train)
    v2_dir = args.vposer_v2 or (hbp.default_vposer_dir(version=2) if "vposer_v2" in names else None)
    priors = build_priors(names, data, args.vposer_v1, v2_dir, args.gmm)
    mode = "quick" if args.quick else "full"
    res = run_real(data, priors, real["take_index"], REAL_SIZES[mode])
    res.update({"mode": mode, "train": source, "takes": real["takes"], "fps": sorted(set(real["fps"])),
                "stride": args.stride, "sample_fps": args.sample_fps, "poses": len(data.test),
                "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                "command": _command_line(argv if argv is not None else sys.argv[1:]),
                "wall_seconds": time.perf_counter() - t_start})
    md = (real_tables(res) + f"\n{len(real['takes'])} takes, {len(data.test)} frames; wall time "
          f"{res['wall_seconds']:.0f} s ({mode}, {res['torch_threads']} thread(s)).\n")
    os.makedirs(args.out, exist_ok=True)
    atomic_write_bytes(os.path.join(args.out, "real_poses.json"), (json.dumps(res, indent=1) + "\n").encode())
    atomic_write_bytes(os.path.join(args.out, "real_poses.md"), md.encode())
    print(md)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.write_subset:
        if not args.data:
            raise ValueError("--write-subset needs --data")
        print(write_subset(args.data, args.write_subset))
        return 0
    if args.real_poses:
        return main_real(args, argv)
    if args.tables_from:
        runs = []
        for f in args.tables_from:
            with open(f) as fh:
                runs.append(json.load(fh))
        md = tables(merge_results(runs))
        os.makedirs(args.out, exist_ok=True)
        atomic_write_bytes(os.path.join(args.out, "tables.md"), md.encode())
        print(md)
        return 0
    import human_body_prior as hbp
    from human_body_prior.body_model.body_model import BodyModel

    names = _parse_priors(args.priors or "none,l2,gmm,vposer_v1")
    t_start = time.perf_counter()
    bm = BodyModel(args.bm_path or hbp.default_body_model_path())
    data, source = load_data(bm, args.data)
    priors = build_priors(names, data, args.vposer_v1, args.vposer_v2, args.gmm)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    tune = mode == "full" and data.vald is not None
    res = run(data, priors, sizes, tune)
    os.makedirs(args.out, exist_ok=True)
    pictures = [] if args.no_pictures else render_pictures(data, priors, args.out,
                                                            latent_weights=res["weights"].get("completion"))
    res.update({"mode": mode, "data": source, "sizes": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in sizes.items()},
                "train_poses": len(data.train), "test_poses": len(data.test), "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                "command": _command_line(argv if argv is not None else sys.argv[1:]),
                "wall_seconds": time.perf_counter() - t_start, "pictures": [os.path.basename(p) for p in pictures]})
    atomic_write_bytes(os.path.join(args.out, "results.json"), (json.dumps(res, indent=1) + "\n").encode())
    md = tables(res) + f"\nWall time: {res['wall_seconds']:.0f} s ({mode}, {source}, {res['torch_threads']} thread(s)).\n"
    atomic_write_bytes(os.path.join(args.out, "tables.md"), md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
