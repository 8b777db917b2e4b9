"""The priors the benchmark compares, behind one small interface (adding a prior is one class).

A compared prior has a ``name`` and a ``kind``:

- ``kind == 'pose'``: a density over ``pose_body`` (B, 63) axis-angle (rad): ``energy(pose) -> (B,)``
  (a negative log-density up to a constant, differentiable) and ``sample(n, seed) -> (n, 63)``.
- ``kind == 'latent'``: a decoder from a latent code with a N(0, I) prior: ``latentD``,
  ``decode_rotations(z) -> (B, 21, 3, 3)`` local body joint rotations, ``sample(n, seed)``,
  ``reconstruct(pose) -> (B, 21, 3, 3)`` (encode -> decode with the posterior mean), and ``model``: the
  latent PosePrior (priors/interface.py) the fitting engine optimises through.

A prior of priors/ (any PosePrior) becomes a compared prior by :func:`compared_prior`; only the
baselines without a density file (no prior, L2) are written here.

``sample`` never touches numpy's or torch's global random state.
"""

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.geometry.rotations import (
    matrix_to_axis_angle,
    quaternion_to_axis_angle,
)
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS

NUM_BODY_POSE = 3 * NUM_POSE_BODY_JOINTS  # pose_body values


class NoPrior:
    """No prior: zero energy; its 'samples' are uniformly random rotations of every body joint."""
    name, kind = "none", "pose"

    def energy(self, pose: torch.Tensor) -> torch.Tensor:
        return (0.0 * pose).sum(-1)  # zero, but part of the graph so optimisers can take its gradient

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        q = np.random.default_rng(seed).standard_normal((int(n), NUM_BODY_POSE // 3, 4))
        q /= np.linalg.norm(q, axis=-1, keepdims=True)  # uniform on SO(3)
        return quaternion_to_axis_angle(torch.as_tensor(q)).reshape(int(n), NUM_BODY_POSE).float()


class L2Prior:
    """L2 on the axis-angle pose, |pose|^2: the density it stands for is N(0, sigma^2 I); sigma is the
    maximum-likelihood one on training poses (root mean square of their numbers)."""
    name, kind = "l2", "pose"

    def __init__(self, sigma: float):
        self.sigma = float(sigma)

    @classmethod
    def from_training(cls, poses) -> "L2Prior":
        p = torch.as_tensor(poses, dtype=torch.float64)
        return cls(float(p.pow(2).mean().sqrt()))

    def energy(self, pose: torch.Tensor) -> torch.Tensor:
        return (pose * pose).sum(-1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        x = np.random.default_rng(seed).standard_normal((int(n), NUM_BODY_POSE)) * self.sigma
        return torch.as_tensor(x, dtype=torch.float32)


class EnergyPrior:
    """A PosePrior without a latent space (the SMPLify-style GMM of priors/gmm.py, ...): its energy and samples."""
    kind = "pose"

    def __init__(self, prior, name: str = "gmm"):
        self.prior, self.name = prior, name

    @property
    def gmm(self):  # the name of the prior before the PosePrior interface
        return self.prior

    def energy(self, pose: torch.Tensor) -> torch.Tensor:
        return self.prior.energy(pose)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.prior.sample(int(n), seed).float().cpu()


GMMPrior = EnergyPrior  # the benchmark's name for it (tests, docs/PRIORS.md)


class _RotationDecoder(nn.Module):
    """Wraps decode_rotations(z) -> (B, 21, 3, 3) in the v1 VPoser decoding API (``decode(z, output_type)``),
    for callers written against 2019's VPoser."""

    def __init__(self, decoder: nn.Module, decode_rotations, latentD: int):
        super().__init__()
        self.decoder = decoder  # registered so .to() and requires_grad_() reach its parameters
        self._decode_rotations = decode_rotations
        self.latentD, self.num_joints = int(latentD), NUM_POSE_BODY_JOINTS

    def decode(self, z: torch.Tensor, output_type: str = "matrot") -> torch.Tensor:
        R = self._decode_rotations(z)
        if output_type == "aa":
            return matrix_to_axis_angle(R).reshape(z.shape[0], 1, NUM_POSE_BODY_JOINTS, 3)
        return R.reshape(z.shape[0], 1, NUM_POSE_BODY_JOINTS, 9)


class LatentPrior:
    """A latent PosePrior with a standard normal prior over its codes (VPoser v1, v2, ...).

    model: the PosePrior (put in eval mode, no gradients), decoding codes z (B, latentD) to
    (B, 21, 3, 3) rotations with ``decode_rotations``.
    """
    kind = "latent"

    def __init__(self, model, name: str = "vposer"):
        self.name, self.model, self.latentD = name, model.eval(), int(model.latentD)
        self.model.requires_grad_(False)

    @classmethod
    def from_vposer_v1(cls, vposer, name: str = "vposer_v1") -> "LatentPrior":
        return cls(vposer, name)

    @classmethod
    def from_vposer_v2(cls, vposer, name: str = "vposer_v2") -> "LatentPrior":
        return cls(vposer, name)

    @property
    def _param(self):
        return next(self.model.parameters())

    @property
    def dtype(self) -> torch.dtype:
        return self._param.dtype

    def decode_rotations(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode_rotations(z)

    def reconstruct(self, pose: torch.Tensor) -> torch.Tensor:
        """Encode -> decode with the posterior mean: pose (B, 63) axis-angle -> (B, 21, 3, 3) rotations."""
        with torch.no_grad():
            x = torch.as_tensor(pose).to(self._param).reshape(len(pose), NUM_POSE_BODY_JOINTS, 3)
            return self.decode_rotations(self.model.encode_pose(x))

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, 63): codes drawn with numpy's generator seeded by ``seed`` (as for every compared prior;
        not the model's own ``sample``, whose torch generator draws other codes)."""
        z = np.random.default_rng(seed).standard_normal((int(n), self.latentD))
        with torch.no_grad():
            R = self.decode_rotations(torch.as_tensor(z, dtype=self._param.dtype, device=self._param.device))
        return matrix_to_axis_angle(R).reshape(int(n), NUM_BODY_POSE).float().cpu()

    def fitting_decoder(self) -> nn.Module:
        """The model in the v1 VPoser decoding API (``decode(z, output_type)``), for 2019-style callers;
        the fitting engine takes ``self.model`` (a PosePrior) itself."""
        return _RotationDecoder(self.model, self.model.decode_rotations, self.latentD)


def compared_prior(prior, name: str):
    """A PosePrior as the benchmark compares it: LatentPrior when it has a latent space, else EnergyPrior."""
    return EnergyPrior(prior, name) if prior.latentD is None else LatentPrior(prior, name)
