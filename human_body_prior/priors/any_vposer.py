"""Either VPoser generation through the PosePrior interface, in the shapes the trainer and evaluation use.

v1 (:class:`human_body_prior.priors.vposer.VPoser`, 2019) and v2 (:class:`human_body_prior.priors.vposer_v2.VPoser`,
V02) keep their own upstream APIs; these helpers only reshape the interface's outputs. Loading:
:func:`human_body_prior.priors.load_prior` (``load_any_vposer`` is its (model, settings) form for folders).
"""

import torch

from human_body_prior.priors.loading import load_any_vposer  # noqa: F401 (public name, docs/API.md)


def model_version(vposer) -> int:
    """1 for a 2019 VPoser (a folder written as TRxx_Eyyy.pt snapshots), 2 otherwise."""
    from human_body_prior.priors.vposer import VPoser as VPoserV1

    return 1 if isinstance(vposer, VPoserV1) else 2


def decode_matrot(vposer, z: torch.Tensor) -> torch.Tensor:
    """Latent codes (N, D) -> rotation matrices (N, J, 3, 3)."""
    return vposer.decode_rotations(z)


def decode_aa(vposer, z: torch.Tensor) -> torch.Tensor:
    """Latent codes (N, D) -> axis-angle body poses (N, J, 3)."""
    return vposer.decode_pose(z).reshape(z.shape[0], -1, 3)


def sample_matrot(vposer, num: int, seed=None) -> torch.Tensor:
    """num codes z ~ N(0, I) (eval mode, private generator) decoded to (num, J, 3, 3) matrices."""
    return vposer.sample_rotations(num, seed=seed)


def sample_aa(vposer, num: int, seed=None) -> torch.Tensor:
    """The same codes as :func:`sample_matrot`, as (num, J, 3) axis-angle poses."""
    return vposer.sample(num, seed=seed).reshape(num, -1, 3)
