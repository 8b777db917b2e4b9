"""The one pose-prior interface: what fitting, IK, the benchmark and BodyModelWithPoser may ask of a prior.

``PosePrior`` is a runtime-checkable :class:`typing.Protocol`, not an ABC, because the priors it
describes cannot share a base class without changing them: VPoser v1 and v2 are ``nn.Module``s whose
class layout and ``state_dict`` must stay those of the upstream releases, the GMM is a plain object,
and a caller's own prior (or a wrapper around one) should satisfy the interface by having the members,
without importing this package. ``isinstance(x, PosePrior)`` checks that the members exist.

Shapes: B frames, J = ``num_joints`` (21 for pose_body), D = ``latentD``.
``LatentPosePrior`` implements the latent-only members once for the VAE priors (v1, v2).
"""

from typing import Optional, Protocol, runtime_checkable

import torch

from human_body_prior.priors.sampling import sample_from_prior


@runtime_checkable
class PosePrior(Protocol):
    """A density over body poses, optionally with a latent space (VPoser: yes; GMM: ``latentD`` None).

    num_joints: J, joints per pose. latentD: D, or None for a prior without a latent space (then
    encode_pose, decode_pose and decode_rotations raise TypeError).
    """

    num_joints: int
    latentD: Optional[int]

    def energy(self, pose_body: torch.Tensor) -> torch.Tensor:
        """Axis-angle poses (B, J*3), radians -> (B,) energy (lower is more likely; differentiable)."""

    def sample(self, n: int, seed=None) -> torch.Tensor:
        """n poses (n, J*3) axis-angle from a private generator seeded with ``seed``; global RNGs untouched."""

    def encode_pose(self, pose_body: torch.Tensor) -> torch.Tensor:
        """Axis-angle poses (B, J*3) -> latent codes (B, D) (the posterior mean)."""

    def decode_pose(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, D) -> axis-angle poses (B, J*3)."""

    def decode_rotations(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, D) -> local joint rotations (B, J, 3, 3)."""

    def to(self, device=None, dtype=None):
        """The prior on ``device`` in ``dtype`` (a module moves itself; other priors may return a copy)."""


def no_latent(prior, what: str):
    """The TypeError a prior without a latent space raises from encode/decode."""
    return TypeError(f"{type(prior).__name__} has no latent space (latentD is None); {what} needs a latent prior "
                     "such as VPoser")


def frozen(prior, device=None, dtype=None):
    """The prior moved to device/dtype; a module is also put in eval mode with its gradients off."""
    prior = prior.to(device=device, dtype=dtype)
    if isinstance(prior, torch.nn.Module):
        prior.eval()
        prior.requires_grad_(False)
    return prior


class LatentPosePrior:
    """PosePrior members shared by the VAE priors with a N(0, I) latent (VPoser v1 and v2).

    A subclass (an nn.Module) provides ``latentD``, ``num_joints``, ``encode(pose) -> Normal``,
    ``decode_rotations(z)``, ``decode_pose(z)`` and ``_sampling_weight()`` (a decoder weight: the
    device and dtype codes are drawn on).
    """

    def encode_pose(self, pose_body: torch.Tensor) -> torch.Tensor:
        """(B, J*3) axis-angle -> (B, D) posterior mean."""
        return self.encode(pose_body.reshape(pose_body.shape[0], -1)).mean

    def energy(self, pose_body: torch.Tensor) -> torch.Tensor:
        """(B, J*3) -> (B,) |encode_pose(pose)|^2: the latent L2 a fit pays for the code standing for the pose."""
        z = self.encode_pose(pose_body)
        return (z * z).sum(-1)

    def sample(self, n: int, seed=None) -> torch.Tensor:
        """(n, J*3) axis-angle: decode_pose of n codes z ~ N(0, I) (see :func:`sample_from_prior`)."""
        return sample_from_prior(self, self.decode_pose, n, self.latentD, seed, like=self._sampling_weight())

    def sample_rotations(self, n: int, seed=None) -> torch.Tensor:
        """(n, J, 3, 3): decode_rotations of the same codes ``sample(n, seed)`` decodes."""
        return sample_from_prior(self, self.decode_rotations, n, self.latentD, seed, like=self._sampling_weight())
