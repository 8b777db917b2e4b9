"""Torch dataset over the tensors written by prepare_data (one split folder)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS


class VPoserDS(Dataset):
    """Body poses of one split folder (``<vposer_datadir>/<split>``).

    Every ``*.pt`` tensor in the folder with one row per frame is loaded (``weights_only=True``);
    ``pose.pt`` (N, 63) is required. Items are dicts with ``pose_aa`` (1, 21, 3) axis-angle,
    ``pose_matrot`` (1, 21, 9) flattened rotation matrices, and the row of every other per-frame
    tensor (e.g. ``root_orient`` (3,), ``trans`` (3,)).
    """

    def __init__(self, dataset_dir, dtype=torch.float32):
        folder = Path(dataset_dir)
        pose_file = folder / "pose.pt"
        if not pose_file.is_file():
            raise FileNotFoundError(f"VPoserDS: {pose_file} not found (run prepare_vposer_datasets first)")
        self.ds = {}
        for f in sorted(folder.glob("*.pt")):
            t = torch.load(f, map_location="cpu", weights_only=True)
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"VPoserDS: {f} does not hold a tensor")
            self.ds[f.stem] = t
        pose = self.ds["pose"]
        if pose.ndim != 2 or pose.shape[1] != 3 * NUM_POSE_BODY_JOINTS:
            raise ValueError(f"VPoserDS: {pose_file} must be (N, 63) body axis-angle, got {tuple(pose.shape)}")
        n = pose.shape[0]
        self.ds = {k: v for k, v in self.ds.items() if v.ndim >= 1 and v.shape[0] == n}
        self.ds["pose"] = pose.to(dtype)
        self.dtype = dtype

    def __len__(self) -> int:
        return self.ds["pose"].shape[0]

    def __getitem__(self, idx) -> dict:
        item = {k: v[idx] for k, v in self.ds.items() if k != "pose"}
        pose_aa = self.ds["pose"][idx].view(1, NUM_POSE_BODY_JOINTS, 3)
        item["pose_aa"] = pose_aa
        item["pose_matrot"] = axis_angle_to_matrix(pose_aa).reshape(1, NUM_POSE_BODY_JOINTS, 9)
        return item
