"""torch.distributed set-up for the trainer: one process per device, launched with ``torchrun``.

``torchrun --nproc_per_node=G -m human_body_prior.train.vposer_smpl --config_path X.ini`` sets
RANK, LOCAL_RANK and WORLD_SIZE (and MASTER_ADDR/PORT); without them the trainer runs as a single
process. The backend is NCCL on CUDA and gloo on CPU.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available, else cpu; 'cuda' -> cuda:<local_rank>."""
    spec = str(spec or "auto").lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(spec)


def setup(device_spec="auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op when WORLD_SIZE is unset or 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    info = DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=device)
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            info.initialised_here = True
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise RuntimeError("the process group disagrees with RANK/WORLD_SIZE in the environment")
    return info


def teardown(info: DistInfo, wait_for_peers: bool = True) -> None:
    """Leave the process group this process joined in ``setup``.

    On a normal exit every rank first waits at a barrier, so that no peer is still inside a collective
    when the group's connections close; after an error (``wait_for_peers=False``) it leaves at once, as
    a peer may never reach the barrier. Callers drop their DistributedDataParallel wrappers before this: the wrapper's
    reducer holds the group, and a group destroyed only at interpreter exit can abort the process
    ("terminate called without an active exception" from gloo's worker threads)."""
    if info.initialised_here and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(values: dict, info: DistInfo) -> dict:
    """Average a dict of float sums/means over ranks (each rank contributes equally)."""
    if not info.is_distributed:
        return dict(values)
    keys = list(values)  # same insertion order on every rank
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= info.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def barrier(info: DistInfo) -> None:
    if info.is_distributed:
        dist.barrier()


@torch.no_grad()
def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating buffers (batch-norm running statistics) over ranks so that every rank holds the
    same model. (DDP broadcasts rank 0's buffers before each forward, so after the last step of an
    epoch each rank still carries statistics of its own shard.)"""
    if not info.is_distributed:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf /= info.world_size
