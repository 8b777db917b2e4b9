"""One call for either VPoser generation: loading an experiment folder, decoding and sampling.

v1 (:class:`human_body_prior.priors.vposer.VPoser`, 2019) and v2
(:class:`human_body_prior.priors.vposer_v2.VPoser`, V02) keep their own upstream APIs; code that
works with both (the trainer, the evaluation, the sampling tutorial) goes through these helpers.
"""

from pathlib import Path

import torch
import torch.nn as nn

from human_body_prior.priors.vposer import VPoser as VPoserV1


def model_version(vposer: nn.Module) -> int:
    return 1 if isinstance(vposer, VPoserV1) else 2


def load_any_vposer(expr_dir, verbose: bool = False):
    """Experiment folder of either layout -> (model in eval mode on the CPU, settings).

    A folder with a .yaml or snapshots/*.ckpt is V02 (``load_model``), otherwise 2019 (``load_vposer``).
    """
    from human_body_prior.priors.experiment import load_vposer
    from human_body_prior.priors.vposer_v2_io import is_v2_folder, load_model

    if not Path(expr_dir).is_dir():
        raise FileNotFoundError(f"experiment folder {expr_dir} not found")
    if is_v2_folder(expr_dir):
        return load_model(expr_dir, comp_device="cpu", verbose=verbose)
    return load_vposer(expr_dir, verbose=verbose)


def decode_matrot(vposer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Latent codes (N, D) -> rotation matrices (N, 21, 3, 3)."""
    if isinstance(vposer, VPoserV1):
        out = vposer.decode(z, output_type="matrot")
    else:
        out = vposer.decode(z)["pose_body_matrot"]
    return out.reshape(z.shape[0], -1, 3, 3)


def decode_aa(vposer: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Latent codes (N, D) -> axis-angle body poses (N, 21, 3)."""
    if isinstance(vposer, VPoserV1):
        out = vposer.decode(z, output_type="aa")
    else:
        out = vposer.decode(z)["pose_body"]
    return out.reshape(z.shape[0], -1, 3)


def sample_matrot(vposer: nn.Module, num: int, seed=None) -> torch.Tensor:
    """The model's own ``sample_poses`` (eval mode, private generator) as (num, 21, 3, 3) matrices."""
    if isinstance(vposer, VPoserV1):
        out = vposer.sample_poses(num, output_type="matrot", seed=seed)
    else:
        out = vposer.sample_poses(num, seed=seed)["pose_body_matrot"]
    return out.reshape(num, -1, 3, 3)


def sample_aa(vposer: nn.Module, num: int, seed=None) -> torch.Tensor:
    """The model's own ``sample_poses`` as (num, 21, 3) axis-angle poses."""
    if isinstance(vposer, VPoserV1):
        out = vposer.sample_poses(num, output_type="aa", seed=seed)
    else:
        out = vposer.sample_poses(num, seed=seed)["pose_body"]
    return out.reshape(num, -1, 3)
