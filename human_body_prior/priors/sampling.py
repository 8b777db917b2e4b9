"""The standard-normal latent of VPoser v1 and v2: the one seeded sampler (poses and BodyModelWithPoser's
random codes are drawn through it), and the KL to it."""

from typing import Callable, TypeVar

import torch
import torch.nn as nn

T = TypeVar("T")


def seeded_generator(seed=None, device="cpu") -> torch.Generator:
    """A private torch.Generator on ``device`` seeded with ``seed`` (fresh entropy when None); drawing
    from it neither reseeds nor advances numpy's or torch's global random state."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def sample_from_prior(model: nn.Module, decode: Callable[[torch.Tensor], T], num_poses: int, latentD: int,
                      seed=None, *, like: torch.Tensor) -> T:
    """``decode(z)`` of num_poses codes z ~ N(0, I) of shape (num_poses, latentD), in eval mode, no grad.

    The codes come from a private torch.Generator on ``like``'s device and dtype (a weight of the
    decoder), seeded with ``seed`` (fresh entropy when None): the same seed gives the same poses on
    a device, and numpy's and torch's global random states are neither reseeded nor advanced.
    ``model``'s train/eval mode is restored afterwards.
    """
    gen = seeded_generator(seed, like.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = torch.randn(int(num_poses), latentD, generator=gen, dtype=like.dtype, device=like.device)
            return decode(z)
    finally:
        model.train(was_training)


def kl_to_standard_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) summed over the last dim. (N, D) -> (N,)."""
    var = std.pow(2)
    return 0.5 * (var + mean.pow(2) - 1.0 - torch.log(var.clamp_min(1e-20))).sum(-1)
