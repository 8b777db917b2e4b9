"""VPoser v2 (``V02_05``, 2021): the variational auto-encoder over SMPL-family body poses.

The module layout reproduces the official V02_05 state dict key for key, so an official checkpoint's
``state_dict`` loads with ``strict=True`` once its ``vp_model.`` prefix is removed (the Lightning
checkpoint also holds ``bm_train.*`` body-model buffers, which are not part of this network).
N is the batch size, H ``num_neurons`` (512) and D ``latentD`` (32); poses are the 21 body joints.

encoder_net: 0 BatchFlatten, 1 BatchNorm1d(63), 2 Linear(63, H), 3 LeakyReLU, 4 BatchNorm1d(H),
5 Dropout(0.1), 6 Linear(H, H), 7 Linear(H, H), 8 NormalDistDecoder(H, D).
decoder_net: 0 Linear(D, H), 1 LeakyReLU, 2 Dropout(0.1), 3 Linear(H, H), 4 LeakyReLU,
5 Linear(H, 21 * 6), 6 ContinousRotReprDecoder. LeakyReLU has torch's default slope (0.01).

Unlike v1 (:mod:`human_body_prior.priors.vposer`), ``decode`` returns a dict and ``pose_body`` is
(N, 21, 3). Rotation conversions are the library's own (:mod:`human_body_prior.geometry.rotations`).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from human_body_prior.geometry.rotations import cont6d_to_matrix, matrix_to_axis_angle
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.interface import LatentPosePrior
from human_body_prior.priors.sampling import sample_from_prior

__all__ = ["VPoser", "ContinousRotReprDecoder", "NormalDistDecoder", "BatchFlatten"]


class BatchFlatten(nn.Module):
    """(N, ...) -> (N, prod(...)): flattens everything but the batch dimension. No parameters."""

    def __init__(self):
        super().__init__()
        self._name = "batch_flatten"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class ContinousRotReprDecoder(nn.Module):
    """6-D continuous rotation representation -> rotation matrices (upstream spelling of the name).

    (N, J * 6) (any shape whose size is a multiple of 6) -> (N * J, 3, 3). Each 6 numbers are read as
    a row-major (3, 2) matrix whose columns are orthonormalised by Gram-Schmidt (see
    :func:`~human_body_prior.geometry.rotations.cont6d_to_matrix`).
    """

    def forward(self, module_input: torch.Tensor) -> torch.Tensor:
        return cont6d_to_matrix(module_input.reshape(-1, 6))


class NormalDistDecoder(nn.Module):
    """(N, num_feat_in) -> Normal(loc=mu(x), scale=softplus(logvar(x))) over (N, latentD).

    The second head is named ``logvar`` as upstream, but its output goes through softplus and is the scale.
    """

    def __init__(self, num_feat_in: int, latentD: int):
        super().__init__()
        self.mu = nn.Linear(num_feat_in, latentD)
        self.logvar = nn.Linear(num_feat_in, latentD)

    def forward(self, Xout: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mu(Xout), F.softplus(self.logvar(Xout)))


def _model_param(model_ps, name):
    """model_ps.model_params.<name> by attribute (SimpleNamespace, loaded config), or by key for plain dicts."""
    params = getattr(model_ps, "model_params", None)
    if params is None and isinstance(model_ps, dict):
        params = model_ps.get("model_params")
    if params is None:
        raise ValueError("VPoser v2 needs model_ps.model_params with num_neurons and latentD")
    value = getattr(params, name, None)
    if value is None and isinstance(params, dict):
        value = params.get(name)
    if value is None:
        raise ValueError(f"VPoser v2 needs model_ps.model_params.{name}")
    if isinstance(value, bool) or int(value) != value or int(value) <= 0:
        raise ValueError(f"model_params.{name} must be a positive integer, got {value!r}")
    return int(value)


class VPoser(nn.Module, LatentPosePrior):
    """VPoser v2, a :class:`~human_body_prior.priors.PosePrior` (``decode_pose``, ``energy``, ...).

    ``model_ps.model_params.num_neurons`` (H) and ``model_ps.model_params.latentD`` (D) are read by
    attribute from a config (``types.SimpleNamespace``, the config ``load_model`` returns, ...)."""

    def __init__(self, model_ps):
        super().__init__()
        num_neurons = _model_param(model_ps, "num_neurons")
        self.latentD = _model_param(model_ps, "latentD")
        self.num_neurons = num_neurons
        self.num_joints = NUM_POSE_BODY_JOINTS
        n_features = self.num_joints * 3

        self.encoder_net = nn.Sequential(
            BatchFlatten(),
            nn.BatchNorm1d(n_features),
            nn.Linear(n_features, num_neurons),
            nn.LeakyReLU(),
            nn.BatchNorm1d(num_neurons),
            nn.Dropout(0.1),
            nn.Linear(num_neurons, num_neurons),
            nn.Linear(num_neurons, num_neurons),
            NormalDistDecoder(num_neurons, self.latentD),
        )
        self.decoder_net = nn.Sequential(
            nn.Linear(self.latentD, num_neurons),
            nn.LeakyReLU(),
            nn.Dropout(0.1),
            nn.Linear(num_neurons, num_neurons),
            nn.LeakyReLU(),
            nn.Linear(num_neurons, self.num_joints * 6),
            ContinousRotReprDecoder(),
        )

    def encode(self, pose_body: torch.Tensor) -> torch.distributions.Normal:
        """Axis-angle body poses (N, 63) or (N, 21, 3), radians -> posterior Normal over (N, latentD)."""
        if pose_body.dim() < 2 or pose_body[0].numel() != self.num_joints * 3:
            raise ValueError(f"VPoser.encode expects (N, 63) or (N, 21, 3) axis-angle poses, got {tuple(pose_body.shape)}")
        return self.encoder_net(pose_body)

    def decode(self, Zin: torch.Tensor) -> dict:
        """Latent codes (N, latentD) -> {'pose_body': (N, 21, 3) axis-angle, 'pose_body_matrot': (N, 21, 9)}."""
        if Zin.dim() != 2 or Zin.shape[1] != self.latentD:
            raise ValueError(f"VPoser.decode expects (N, {self.latentD}) latent codes, got {tuple(Zin.shape)}")
        bs = Zin.shape[0]
        prec = self.decoder_net(Zin)  # (N * 21, 3, 3)
        return {"pose_body": matrix_to_axis_angle(prec).reshape(bs, -1, 3),
                "pose_body_matrot": prec.reshape(bs, -1, 9)}

    def forward(self, pose_body: torch.Tensor) -> dict:
        """Encode, draw one reparameterised code, decode. (N, 63) or (N, 21, 3) -> the decode dict plus
        'poZ_body_mean' and 'poZ_body_std' (N, latentD) and 'q_z' (the posterior Normal)."""
        q_z = self.encode(pose_body)
        out = self.decode(q_z.rsample())
        out.update({"poZ_body_mean": q_z.mean, "poZ_body_std": q_z.scale, "q_z": q_z})
        return out

    def sample_poses(self, num_poses: int, seed=None) -> dict:
        """The decode dict of num_poses codes z ~ N(0, I), decoded in eval mode without gradients.

        The codes come from a private torch.Generator seeded with ``seed`` (fresh entropy when None):
        the same seed gives the same poses on a device; numpy's and torch's global random states are
        neither reseeded nor advanced. The train/eval mode is restored afterwards.
        """
        return sample_from_prior(self, self.decode, num_poses, self.latentD, seed, like=self.decoder_net[0].weight)

    # ------------------------------------------------------------------ the PosePrior interface
    def decode_rotations(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, D) -> local joint rotations (N, 21, 3, 3)."""
        return self.decode(z)["pose_body_matrot"].reshape(z.shape[0], self.num_joints, 3, 3)

    def decode_pose(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, D) -> axis-angle poses (N, 63)."""
        return self.decode(z)["pose_body"].reshape(z.shape[0], 3 * self.num_joints)

    def _sampling_weight(self) -> torch.Tensor:
        return self.decoder_net[0].weight
