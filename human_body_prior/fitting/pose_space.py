"""Pose spaces: the free variable a fit optimises in place of pose_body, how it decodes, and its prior.

- VPoserLatent: the latent code poZ_body (B, latentD) of a latent PosePrior (VPoser v1, v2, ...; 21
  joints), decoded by the prior; the prior term is |poZ_body|^2 per frame (the seed's "L2 norm on poZ_body").
- AxisAnglePose: pose_body (B, 63) axis-angle itself, with |pose_body|^2 ('l2') or no prior ('none').
- PriorEnergyPose: pose_body (B, 63) axis-angle, with a PosePrior's energy as the prior (the GMM, ...).
"""

import torch

from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import (
    NUM_POSE_BODY_JOINTS as NUM_POSE_JOINTS,  # the joints of pose_body
)
from human_body_prior.priors import PosePrior
from human_body_prior.priors.interface import frozen


class PoseSpace:
    """Interface. name: 'vposer' | 'l2' | 'none'; init_key: the name of the variable in FitResult and in
    BodyFitter.fit(init=...); width: its size per frame."""

    name = ""
    init_key = "pose_body"
    width = 3 * NUM_POSE_JOINTS

    def decode_rotations(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) -> local body joint rotations (B, 21, 3, 3)."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) -> pose_body (B, 63) axis-angle (rad)."""
        raise NotImplementedError

    def prior(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width) -> per-frame prior term (B,), before weighting."""
        raise NotImplementedError

    def encode(self, pose_body: torch.Tensor) -> torch.Tensor:
        """pose_body (B, 63) -> the variable (B, width) that stands for it (VPoser: the posterior mean)."""
        raise NotImplementedError


class AxisAnglePose(PoseSpace):
    """pose_body itself; prior |pose_body|^2 when l2 (name 'l2'), none otherwise (name 'none')."""

    def __init__(self, l2: bool):
        self.l2 = bool(l2)
        self.name = "l2" if self.l2 else "none"

    def decode_rotations(self, x):
        return axis_angle_to_matrix(x.reshape(x.shape[0], NUM_POSE_JOINTS, 3))

    def decode(self, x):
        return x

    def prior(self, x):
        return (x * x).sum(-1) if self.l2 else x.new_zeros(x.shape[0])

    def encode(self, pose_body):
        return pose_body.reshape(pose_body.shape[0], 3 * NUM_POSE_JOINTS)


class VPoserLatent(PoseSpace):
    """The latent space of a latent PosePrior (VPoser v1, v2, ...: frozen, eval mode, moved to the fit's
    device and dtype), through the interface only (decode_rotations, decode_pose, encode_pose)."""

    name = "vposer"
    init_key = "poZ_body"

    def __init__(self, vposer, device, dtype):
        if not isinstance(vposer, PosePrior):
            raise TypeError(f"pose_prior='vposer' needs a PosePrior (human_body_prior.priors.PosePrior), "
                            f"got {type(vposer).__name__}")
        if vposer.latentD is None:
            raise ValueError(f"the prior {type(vposer).__name__} has no latent space; pose_prior='vposer' needs one")
        if vposer.num_joints != NUM_POSE_JOINTS:
            raise ValueError(f"the VPoser outputs {vposer.num_joints} joints; body fitting needs a "
                             f"{NUM_POSE_JOINTS}-joint (pose_body) VPoser")
        self.vposer = frozen(vposer, device=device, dtype=dtype)
        self.width = int(vposer.latentD)

    def decode_rotations(self, z):
        return self.vposer.decode_rotations(z)

    def decode(self, z):
        return self.vposer.decode_pose(z)

    def prior(self, z):
        return (z * z).sum(-1)

    def encode(self, pose_body):
        return self.vposer.encode_pose(pose_body.reshape(pose_body.shape[0], 3 * NUM_POSE_JOINTS))


class PriorEnergyPose(AxisAnglePose):
    """pose_body itself, with a PosePrior's energy (B,) as the prior term (a prior without a latent space,
    e.g. the GMM; moved to the fit's device, its own dtype kept)."""

    def __init__(self, prior, device):
        super().__init__(l2=False)
        self.name = "energy"  # the default weight table has none: a weight must be given
        self.pose_prior = frozen(prior, device=device)

    def prior(self, x):
        return self.pose_prior.energy(x)


def make_pose_space(pose_prior, vposer, device, dtype) -> PoseSpace:
    """'vposer' (needs vposer: a latent PosePrior) | 'l2' | 'none' | a PosePrior object -> the PoseSpace.
    A PosePrior with a latent space is fitted in it (VPoserLatent); one without, by its energy on pose_body."""
    if isinstance(pose_prior, PosePrior):
        if pose_prior.latentD is not None:
            return VPoserLatent(pose_prior, device, dtype)
        return PriorEnergyPose(pose_prior, device)
    if pose_prior == "vposer":
        if vposer is None:
            raise ValueError("pose_prior='vposer' needs a VPoser: pass vposer=... or a BodyModelWithPoser")
        return VPoserLatent(vposer, device, dtype)
    return AxisAnglePose(l2=pose_prior == "l2")
