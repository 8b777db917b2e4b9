"""Pose splits for the trainer, held in memory, and their batches over one or many processes.

A split folder is what ``prepare_vposer_datasets`` writes (read through ``VPoserDS``): items
with ``pose_aa`` (1, 21, 3) axis-angle in radians. A folder holding a single ``pose_body.pt``
tensor (N, 63) is read directly (handy for tests and for data from elsewhere). Poses are loaded once into a single (N, 21, 3)
tensor; batches are drawn by index through a ``DistributedSampler`` (deterministic for a seed and
epoch, disjoint shards per rank; with one process it is a plain seeded shuffle).
"""

from pathlib import Path

import torch
from torch.utils.data import DistributedSampler

from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS


def load_pose_split(split_dir, dtype=torch.float32) -> torch.Tensor:
    """Split folder -> (N, 21, 3) axis-angle body poses."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"dataset split folder {split_dir} not found")
    if (split_dir / "pose_body.pt").is_file():  # a bare (N, 63) tensor file
        ds = _TensorFolder(split_dir)
    else:
        from human_body_prior.data.dataloader import VPoserDS
        ds = VPoserDS(str(split_dir))
    n = len(ds)
    if n == 0:
        raise ValueError(f"dataset split {split_dir} holds no poses")
    poses = _bulk_pose_aa(ds)
    if poses is None:
        poses = torch.stack([torch.as_tensor(ds[i]["pose_aa"]) for i in range(n)])
    poses = poses.reshape(n, -1)
    if poses.shape[1] != NUM_POSE_BODY_JOINTS * 3:
        raise ValueError(f"{split_dir}: pose_aa must hold {NUM_POSE_BODY_JOINTS} joints (1, {NUM_POSE_BODY_JOINTS}, 3), "
                         f"got {poses.shape[1]} numbers per item")
    poses = poses.reshape(n, NUM_POSE_BODY_JOINTS, 3).to(dtype)
    if not torch.isfinite(poses).all():
        raise ValueError(f"{split_dir}: poses contain NaN or inf")
    return poses


class _TensorFolder:
    """Minimal reader of a split folder holding pose_body.pt: (N, 63) axis-angle body poses."""

    def __init__(self, split_dir):
        f = Path(split_dir) / "pose_body.pt"
        t = torch.load(str(f), map_location="cpu", weights_only=True)
        if not torch.is_tensor(t) or t.dim() < 2:
            raise ValueError(f"{f} must hold a (N, 63) tensor")
        self.pose = t.reshape(len(t), -1)

    def __len__(self):
        return len(self.pose)

    def __getitem__(self, idx):
        return {"pose_aa": self.pose[idx].reshape(*self.pose[idx].shape[:-1], 1, NUM_POSE_BODY_JOINTS, 3)}


def _bulk_pose_aa(ds):
    """All poses at once: VPoserDS's (N, 63) 'pose' tensor, or tensor indexing when supported."""
    stored = getattr(ds, "ds", None)
    if isinstance(stored, dict) and torch.is_tensor(stored.get("pose")) and stored["pose"].shape[0] == len(ds):
        return stored["pose"]
    try:
        item = ds[torch.arange(len(ds))]
        pose = torch.as_tensor(item["pose_aa"])
    except Exception:  # per-item datasets: fall back to a loop
        return None
    return pose if pose.shape[0] == len(ds) else None


class PoseBatches:
    """Shuffled, rank-sharded batches of a pose tensor.

    poses: (N, 21, 3). batch_size: per process. Every rank sees the same number of batches; the
    last incomplete one is dropped when training (drop_last) so that batch-norm never sees one pose.
    """

    def __init__(self, poses: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = True):
        if len(poses) < world_size:
            raise ValueError(f"{len(poses)} poses cannot be shared by {world_size} processes")
        self.poses = poses
        self.drop_last = drop_last
        self.sampler = DistributedSampler(range(len(poses)), num_replicas=world_size, rank=rank,
                                          shuffle=shuffle, seed=int(seed), drop_last=drop_last)
        self.batch_size = max(1, min(int(batch_size), len(self.sampler)))  # tiny splits: one batch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        idx = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        for b in range(len(self)):
            yield self.poses[idx[b * self.batch_size:(b + 1) * self.batch_size]]
