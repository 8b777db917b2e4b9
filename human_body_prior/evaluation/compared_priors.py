"""The priors the benchmark compares, behind one small interface (adding a prior is one class).

A compared prior has a ``name`` and a ``kind``:

- ``kind == 'pose'``: a density over ``pose_body`` (B, 63) axis-angle (rad): ``energy(pose) -> (B,)``
  (a negative log-density up to a constant, differentiable) and ``sample(n, seed) -> (n, 63)``.
- ``kind == 'latent'``: a decoder from a latent code with a N(0, I) prior: ``latentD``,
  ``decode_rotations(z) -> (B, 21, 3, 3)`` local body joint rotations, ``sample(n, seed)``,
  ``reconstruct(pose) -> (B, 21, 3, 3)`` (encode -> decode with the posterior mean), and
  ``fitting_decoder()``: a module with the v1 VPoser decoding API (``decode(z, output_type)``,
  ``latentD``, ``num_joints``) that the fitting engine optimises through.

``sample`` never touches numpy's or torch's global random state.
"""

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
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


class GMMPrior:
    """The SMPLify-style Gaussian mixture (priors/gmm.py) with its max-mixture energy."""
    kind = "pose"

    def __init__(self, gmm, name: str = "gmm"):
        self.gmm, self.name = gmm, name

    def energy(self, pose: torch.Tensor) -> torch.Tensor:
        return self.gmm.energy(pose)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.gmm.sample(int(n), seed).float().cpu()


class _RotationDecoder(nn.Module):
    """Wraps decode_rotations(z) -> (B, 21, 3, 3) in the v1 VPoser decoding API the fitting engine uses."""

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
    """A latent decoder with a standard normal prior over its codes (VPoser v1, v2, ...).

    model: the nn.Module (put in eval mode, no gradients); decode_rotations(z (B, latentD)) ->
    (B, 21, 3, 3). Use :meth:`from_vposer_v1` for the 2019 API.
    """
    kind = "latent"

    def __init__(self, name: str, model: nn.Module, decode_rotations, latentD: int):
        self.name, self.model, self.latentD = name, model.eval(), int(latentD)
        self.model.requires_grad_(False)
        self._decode_rotations = decode_rotations

    @classmethod
    def from_vposer_v1(cls, vposer, name: str = "vposer_v1") -> "LatentPrior":
        def decode_rotations(z):
            return vposer.decode(z, output_type="matrot").reshape(z.shape[0], vposer.num_joints, 3, 3)
        return cls(name, vposer, decode_rotations, vposer.latentD)

    @classmethod
    def from_vposer_v2(cls, vposer, name: str = "vposer_v2") -> "LatentPrior":
        """A 2021 VPoser (``decode(z)`` returning a dict with 'pose_body_matrot' or 'pose_body')."""
        def decode_rotations(z):
            out = vposer.decode(z)
            if "pose_body_matrot" in out:
                return out["pose_body_matrot"].reshape(z.shape[0], NUM_POSE_BODY_JOINTS, 3, 3)
            return axis_angle_to_matrix(out["pose_body"].reshape(z.shape[0], NUM_POSE_BODY_JOINTS, 3))
        return cls(name, vposer, decode_rotations, vposer.latentD)

    @property
    def _param(self):
        return next(self.model.parameters())

    @property
    def dtype(self) -> torch.dtype:
        return self._param.dtype

    def decode_rotations(self, z: torch.Tensor) -> torch.Tensor:
        return self._decode_rotations(z)

    def reconstruct(self, pose: torch.Tensor) -> torch.Tensor:
        """Encode -> decode with the posterior mean: pose (B, 63) axis-angle -> (B, 21, 3, 3) rotations.
        Needs a model with ``encode(pose (B, 21, 3))`` returning a Normal (VPoser v1 and v2 do)."""
        if not hasattr(self.model, "encode"):
            raise ValueError(f"the prior {self.name!r} has no encoder, so it cannot reconstruct poses")
        with torch.no_grad():
            x = torch.as_tensor(pose).to(self._param).reshape(len(pose), NUM_POSE_BODY_JOINTS, 3)
            return self.decode_rotations(self.model.encode(x).loc)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        z = np.random.default_rng(seed).standard_normal((int(n), self.latentD))
        with torch.no_grad():
            R = self.decode_rotations(torch.as_tensor(z, dtype=self._param.dtype, device=self._param.device))
        return matrix_to_axis_angle(R).reshape(int(n), NUM_BODY_POSE).float().cpu()

    def fitting_decoder(self) -> nn.Module:
        """A module the fitting engine takes as ``vposer=``."""
        return _RotationDecoder(self.model, self._decode_rotations, self.latentD)
