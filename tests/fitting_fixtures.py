"""Test helper shared by the fitting tests: a small VPoser v1 whose decoder gives moderate poses."""

import torch

from human_body_prior.priors.vposer import VPoser


def tame_vposer(latentD: int, num_neurons: int = 64, seed: int = 0) -> VPoser:
    """Random weights scaled by 1/sqrt(fan-in), the decoder's output bias at the identity rotation: mean
    joint angle ~0.2 rad, up to ~1.8 (float32, train mode as constructed)."""
    gen = torch.Generator().manual_seed(seed)
    vp = VPoser(num_neurons=num_neurons, latentD=latentD, data_shape=[1, 21, 3])
    with torch.no_grad():
        for p in vp.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p.shape[-1]) ** 0.5))
        vp.bodyprior_dec_out.weight.mul_(0.25)
        vp.bodyprior_dec_out.bias.copy_(torch.tensor([1.0, 0, 0, 1, 0, 0]).repeat(21))
    return vp
