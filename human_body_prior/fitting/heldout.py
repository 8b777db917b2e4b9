"""Held-out real poses as fitting targets: loading and corrupting them (noise, missing joints).

Shared by benchmarks/bench_fitting.py and fitting/examples/fit_heldout_take.py.
"""

from pathlib import Path

import numpy as np
import torch

from human_body_prior.model_types.joints import pose_slices

_POSE = pose_slices("smplx")  # root and body come first in SMPL, SMPL-H and SMPL-X poses alike


def load_poses(source) -> dict:
    """Real poses -> {'root_orient': (N, 3), 'pose_body': (N, 63)} float64 arrays (axis-angle, rad).

    source: a VPoser data split folder (pose.pt (N, 63) and optional root_orient.pt (N, 3), read with
    weights_only=True), one AMASS-style .npz take (``poses`` (N, >= 66): root then body), or a folder
    of such takes (all of them, sorted by name).
    """
    source = Path(source)
    if source.is_dir() and (source / "pose.pt").is_file():
        pose = torch.load(source / "pose.pt", map_location="cpu", weights_only=True)
        pose = np.asarray(pose, dtype=np.float64).reshape(len(pose), -1)
        if pose.shape[1] != _POSE["pose_body"].stop - _POSE["pose_body"].start:
            raise ValueError(f"{source / 'pose.pt'}: expected (N, 63) body poses, got {pose.shape}")
        ro_path = source / "root_orient.pt"
        root = (np.asarray(torch.load(ro_path, map_location="cpu", weights_only=True), dtype=np.float64)
                if ro_path.is_file() else np.zeros((len(pose), 3)))
        if root.shape != (len(pose), 3):
            raise ValueError(f"{ro_path}: expected ({len(pose)}, 3), got {root.shape}")
        return {"root_orient": root, "pose_body": pose}
    files = sorted(source.glob("*.npz")) if source.is_dir() else [source]
    if not files:
        raise FileNotFoundError(f"no pose.pt nor *.npz takes in {source}")
    roots, bodies = [], []
    for f in files:
        with np.load(f, allow_pickle=False) as d:
            if "poses" not in d:
                raise ValueError(f"{f}: no 'poses' array (N, 3 J); it has {sorted(d.files)}")
            poses = np.asarray(d["poses"], dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] < _POSE["pose_body"].stop:
            raise ValueError(f"{f}: 'poses' must have shape (N, >= {_POSE['pose_body'].stop}), got {poses.shape}")
        roots.append(poses[:, _POSE["root_orient"]])
        bodies.append(poses[:, _POSE["pose_body"]])
    return {"root_orient": np.concatenate(roots), "pose_body": np.concatenate(bodies)}


def pick_frames(num_available: int, num: int, seed: int = 0) -> np.ndarray:
    """num distinct frame indices (sorted) drawn with a fixed seed; all frames when num >= available."""
    if num >= num_available:
        return np.arange(num_available)
    return np.sort(np.random.default_rng(seed).choice(num_available, size=num, replace=False))


def corrupt_joints(joints: np.ndarray, noise_sigma: float = 0.02, missing: float = 0.3, seed: int = 0):
    """joints (N, J, 3) metres -> (targets (N, J, 3) with isotropic Gaussian noise of noise_sigma
    metres per axis and NaN at missing joints, conf (N, J) with 0 at missing joints).

    Each joint of each frame is missing with probability `missing`; every frame keeps at least 3.
    """
    rng = np.random.default_rng(seed)
    N, J = joints.shape[:2]
    targets = joints + rng.normal(scale=noise_sigma, size=joints.shape)
    gone = rng.random((N, J)) < missing
    for i in np.flatnonzero((~gone).sum(1) < 3):  # keep at least 3 joints per frame
        gone[i, rng.choice(J, size=3, replace=False)] = False
    targets[gone] = np.nan
    return targets, (~gone).astype(np.float64)
