"""AMASS takes -> per-split VPoser training tensors.

``prepare_vposer_datasets(amass_splits, amass_dir, vposer_datadir)`` reads every take (``.npz`` with
``poses``) of the dataset folders listed per split, keeps the frames of the middle 80% of each take,
optionally thins near-duplicate frames and adds left/right mirrored copies, and writes per split:

    <vposer_datadir>/<split>/pose.pt         (N, 63) float32 body pose, axis-angle (21 joints)
    <vposer_datadir>/<split>/root_orient.pt  (N, 3)
    <vposer_datadir>/<split>/trans.pt        (N, 3) metres
    <vposer_datadir>/<split>/take_index.pt   (N,) int64 row of takes.json each frame came from
    <vposer_datadir>/<split>/takes.json      the takes of this split, in take_index order

Splits are by take (a take is never cut between splits); the same take listed in two splits is an
error.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from human_body_prior.files.atomic_io import atomic_write_bytes
from human_body_prior.model_types.joints import (
    BODY_JOINT_NAMES,
    NUM_POSE_BODY_JOINTS,
    mirror_permutation,
    pose_slices,
)
from human_body_prior.model_types.spec import spec_for_joint_count

SPLITS = ("train", "vald", "test")
_POSE = pose_slices("smplx")  # root and body come first in SMPL, SMPL-H and SMPL-X poses alike
_BODY_MIRROR = mirror_permutation(BODY_JOINT_NAMES[1:])  # of the pose_body joints (pelvis excluded)


# --------------------------------------------------------------------------------------- AMASS reader

_TAKE_KEYS = frozenset({"poses", "trans", "betas", "gender", "mocap_framerate", "mocap_frame_rate",
                        "surface_model_type"})


def read_amass_take(path) -> dict:
    """One AMASS ``.npz`` take -> dict with 'poses' (N, 3J) float64, 'pose_body' (N, 63),
    'root_orient' (N, 3), 'trans' (N, 3), 'betas', 'gender', 'fps', 'model_type'.

    Works for SMPL-H (156 pose values) and SMPL-X (165) takes. Raises ValueError naming the file.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:  # only the keys read here (MoSh++ files hold object arrays)
            d = {k: data[k] for k in data.files if k in _TAKE_KEYS}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    if "poses" not in d:
        raise ValueError(f"{path}: no 'poses' array (an AMASS shape file or not an AMASS take); keys: {sorted(d)}")
    poses = np.asarray(d["poses"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] < _POSE["pose_body"].stop or poses.shape[1] % 3:
        raise ValueError(f"{path}: 'poses' must be (N, 3J) with J >= {_POSE['pose_body'].stop // 3}, got {poses.shape}")
    N = poses.shape[0]
    trans = np.asarray(d.get("trans", np.zeros((N, 3))), dtype=np.float64)
    if trans.shape != (N, 3):
        raise ValueError(f"{path}: 'trans' must be ({N}, 3), got {trans.shape}")
    fps = None
    for key in ("mocap_framerate", "mocap_frame_rate"):
        if key in d:
            fps = float(d[key])
            break
    spec = spec_for_joint_count(poses.shape[1] // 3)  # 3 pose values per joint
    model_type = spec.name if spec is not None else f"{poses.shape[1] // 3} joints"
    if "surface_model_type" in d:
        model_type = str(d["surface_model_type"])
    return {"poses": poses, "pose_body": poses[:, _POSE["pose_body"]], "root_orient": poses[:, _POSE["root_orient"]],
            "trans": trans,
            "betas": np.asarray(d.get("betas", np.zeros(16)), dtype=np.float64), "gender": str(d.get("gender", "neutral")),
            "fps": fps, "model_type": model_type}


def list_takes(amass_dir, dataset: str) -> list[Path]:
    """Sorted take files (.npz with 'poses') under ``amass_dir/dataset`` (recursively)."""
    folder = Path(amass_dir) / dataset
    if not folder.is_dir():
        raise FileNotFoundError(f"AMASS dataset folder {folder} does not exist")
    out = []
    for p in sorted(folder.rglob("*.npz")):
        if p.name == "shape.npz" or p.name.startswith(".tmp_"):
            continue
        out.append(p)
    return out


# --------------------------------------------------------------------------------------- frame selection

def middle_frames(n: int, keep: float = 0.8) -> np.ndarray:
    """Indices of the middle ``keep`` share of n frames (the first and last (1-keep)/2 dropped)."""
    cut = int(np.floor(n * (1 - keep) / 2 + 1e-9))  # 1 - 0.8 is 0.19999...
    return np.arange(cut, n - cut)


def thin_near_duplicates(pose_body: np.ndarray, min_change_deg: float) -> np.ndarray:
    """Greedy thinning: indices of frames whose body pose differs from the last kept frame by more
    than ``min_change_deg`` at some joint (geodesic angle). pose_body: (N, 63) axis-angle."""
    if min_change_deg <= 0 or len(pose_body) == 0:
        return np.arange(len(pose_body))
    from human_body_prior.geometry.rotations import axis_angle_to_matrix, geodesic_cos

    R = axis_angle_to_matrix(torch.from_numpy(pose_body.reshape(-1, NUM_POSE_BODY_JOINTS, 3)))
    cos_min = float(np.cos(np.deg2rad(min_change_deg)))
    keep = [0]
    i, block = 1, 4
    while i < len(R):  # the next frame that moved: look ahead in blocks that grow while nothing moves
        moved = (geodesic_cos(R[keep[-1]], R[i:i + block]) < cos_min).any(-1).nonzero()
        if len(moved):
            keep.append(i + int(moved[0]))
            i, block = keep[-1] + 1, 4
        else:
            i, block = i + block, min(2 * block, 1024)
    return np.asarray(keep, dtype=np.int64)


def mirror_body_pose(pose_body: np.ndarray) -> np.ndarray:
    """Left/right mirror across the sagittal (x = 0) plane: swap sides, negate y and z of each
    axis-angle. (N, 63) -> (N, 63)."""
    p = pose_body.reshape(-1, NUM_POSE_BODY_JOINTS, 3)[:, _BODY_MIRROR].copy()
    p[..., 1:] *= -1
    return p.reshape(-1, NUM_POSE_BODY_JOINTS * 3)


def mirror_root(root_orient: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror of the root across the world x = 0 plane. (N, 3), (N, 3)."""
    r = root_orient.copy()
    r[:, 1:] *= -1
    t = trans.copy()
    t[:, 0] *= -1
    return r, t


# --------------------------------------------------------------------------------------- datasets

def _save_tensor(path: Path, t: torch.Tensor) -> None:
    buf = io.BytesIO()
    torch.save(t, buf)
    atomic_write_bytes(str(path), buf.getvalue())


def prepare_split(takes: list, out_dir, keep_middle: float = 0.8, min_change_deg: float = 0.0,
                  frame_step: int = 1, mirror: bool = False, progress: bool = True, desc: str = "") -> dict:
    """Frames of ``takes`` (paths of AMASS takes) -> tensors in ``out_dir``. Returns counts."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    poses, roots, transs, take_idx = [], [], [], []
    names = []
    for k, path in enumerate(tqdm(takes, desc=desc or str(out_dir.name), disable=not progress)):
        t = read_amass_take(path)
        idx = middle_frames(len(t["pose_body"]), keep_middle)[:: max(int(frame_step), 1)]
        pb = t["pose_body"][idx]
        sel = thin_near_duplicates(pb, min_change_deg)
        idx = idx[sel]
        names.append(str(path))
        pb, ro, tr = t["pose_body"][idx], t["root_orient"][idx], t["trans"][idx]
        poses.append(pb)
        roots.append(ro)
        transs.append(tr)
        take_idx.append(np.full(len(idx), k))
        if mirror:
            mr, mt = mirror_root(ro, tr)
            poses.append(mirror_body_pose(pb))
            roots.append(mr)
            transs.append(mt)
            take_idx.append(np.full(len(idx), k))
    cat = lambda xs, w: np.concatenate(xs) if xs else np.zeros((0, w))
    pose = torch.from_numpy(cat(poses, 3 * NUM_POSE_BODY_JOINTS).astype(np.float32))
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_tensor(out_dir / "pose.pt", pose)
    _save_tensor(out_dir / "root_orient.pt", torch.from_numpy(cat(roots, 3).astype(np.float32)))
    _save_tensor(out_dir / "trans.pt", torch.from_numpy(cat(transs, 3).astype(np.float32)))
    ti = np.concatenate(take_idx) if take_idx else np.zeros(0)
    _save_tensor(out_dir / "take_index.pt", torch.from_numpy(ti.astype(np.int64)))
    atomic_write_bytes(str(out_dir / "takes.json"), json.dumps(names, indent=1).encode())
    return {"takes": len(takes), "frames": int(pose.shape[0])}


def check_disjoint(split_takes: dict) -> None:
    """ValueError if any take (resolved path) appears in two splits."""
    seen = {}
    for split, takes in split_takes.items():
        for t in takes:
            key = os.path.realpath(t)
            if key in seen and seen[key] != split:
                raise ValueError(f"take {t} is in both split {seen[key]!r} and split {split!r}")
            seen[key] = split


def prepare_vposer_takes(split_takes: dict, vposer_datadir, logger=None, keep_middle: float = 0.8,
                         min_change_deg: float = 0.0, frame_step: int = 1, mirror_splits=(),
                         progress: bool = True) -> dict:
    """Like prepare_vposer_datasets, from explicit take lists: split -> list of take paths."""
    log = logger or logging.getLogger(__name__).info
    log = log.info if isinstance(log, logging.Logger) else log
    unknown = [s for s in split_takes if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split names {unknown}; expected a subset of {SPLITS}")
    check_disjoint(split_takes)
    stats = {}
    for split, takes in split_takes.items():
        stats[split] = prepare_split(takes, Path(vposer_datadir) / split, keep_middle, min_change_deg, frame_step,
                                     mirror=split in mirror_splits, progress=progress, desc=f"vposer {split}")
        log(f"{split}: {stats[split]['frames']} frames from {stats[split]['takes']} takes")
    atomic_write_bytes(str(Path(vposer_datadir) / "prepare_stats.json"), json.dumps(
        {"stats": stats, "keep_middle": keep_middle, "min_change_deg": min_change_deg, "frame_step": frame_step,
         "mirror_splits": list(mirror_splits)}, indent=1).encode())
    return stats


def prepare_vposer_datasets(amass_splits: dict, amass_dir, vposer_datadir, logger=None, keep_middle: float = 0.8,
                            min_change_deg: float = 0.0, frame_step: int = 1, mirror: bool = False,
                            progress: bool = True) -> dict:
    """2019 API. amass_splits: {'train': [dataset folders], 'vald': [...], 'test': [...]} under
    ``amass_dir``; writes ``<vposer_datadir>/<split>/pose.pt`` etc. (see the module doc).

    keep_middle: share of each take kept (middle frames); min_change_deg: drop frames whose body pose
    moved less than this from the last kept one (0 keeps all); frame_step: keep every k-th frame;
    mirror: add left/right mirrored copies to the training split. logger: a callable or Logger.
    Returns {split: {'takes': n, 'frames': n}}.
    """
    split_takes = {}
    for split, datasets in amass_splits.items():
        if isinstance(datasets, str):
            datasets = [datasets]
        split_takes[split] = [p for ds in datasets for p in list_takes(amass_dir, ds)]
    return prepare_vposer_takes(split_takes, vposer_datadir, logger, keep_middle, min_change_deg, frame_step,
                                mirror_splits=("train",) if mirror else (), progress=progress)
