"""VPoser v1: a variational auto-encoder over SMPL body poses (Pavlakos et al., CVPR 2019).

The layer names, sizes and order are those of the 2019 release, so a v1 snapshot ``state_dict``
loads with ``strict=True``. Shapes below use N for the batch size, J for the number of joints
(``data_shape[1]``, 21 for the SMPL body without the root) and D for ``latentD``.

Encoder: flatten (N, J*3) axis-angle -> BatchNorm1d -> Linear(J*3, H) -> LeakyReLU(0.2) ->
BatchNorm1d -> Dropout(0.1) -> Linear(H, H) -> LeakyReLU(0.2) -> two heads Linear(H, D):
the mean and the pre-softplus scale of the Gaussian posterior ``Normal(mu, softplus(head))``.
(The second head is called ``logvar`` in v1, but its output goes through softplus to give the std.)

Decoder: Linear(D, H) -> LeakyReLU(0.2) -> Dropout(0.1) -> Linear(H, H) -> LeakyReLU(0.2) ->
Linear(H, J*6) -> per joint the 6-D continuous representation -> rotation matrices (N, 1, J, 9).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from human_body_prior.geometry import rotations as rotation_tools
from human_body_prior.priors.interface import LatentPosePrior
from human_body_prior.priors.sampling import sample_from_prior

_OUTPUT_TYPES = ("matrot", "aa")
_INPUT_TYPES = ("aa", "matrot")


class VPoser(nn.Module, LatentPosePrior):
    """VPoser v1, a :class:`~human_body_prior.priors.PosePrior` (``decode_pose``, ``energy``, ...).

    num_neurons: hidden width H (512 in v1). latentD: latent size D (32 in v1).
    data_shape: shape of one input pose, [1, J, 3] axis-angle ([1, 21, 3] in v1).
    use_cont_repr: decode through the 6-D rotation representation (True in v1). When False the
    decoder emits prod(data_shape) numbers read as axis-angle (data_shape[-1] == 3) or as
    flattened 3x3 matrices (data_shape[-1] == 9), as the 2019 layer shapes imply.
    """

    def __init__(self, num_neurons, latentD, data_shape, use_cont_repr=True):
        super().__init__()
        data_shape = [int(s) for s in data_shape]
        if len(data_shape) != 3 or data_shape[-1] not in (3, 9):
            raise ValueError(f"VPoser data_shape must look like [1, J, 3] (or [1, J, 9]), got {data_shape}")
        self.latentD = int(latentD)
        self.num_neurons = int(num_neurons)
        self.data_shape = data_shape
        self.use_cont_repr = bool(use_cont_repr)
        self.num_joints = data_shape[1]
        n_features = int(np.prod(data_shape))

        self.bodyprior_enc_bn1 = nn.BatchNorm1d(n_features)
        self.bodyprior_enc_fc1 = nn.Linear(n_features, self.num_neurons)
        self.bodyprior_enc_bn2 = nn.BatchNorm1d(self.num_neurons)
        self.bodyprior_enc_fc2 = nn.Linear(self.num_neurons, self.num_neurons)
        self.bodyprior_enc_mu = nn.Linear(self.num_neurons, self.latentD)
        self.bodyprior_enc_logvar = nn.Linear(self.num_neurons, self.latentD)
        self.dropout = nn.Dropout(p=0.1)

        self.bodyprior_dec_fc1 = nn.Linear(self.latentD, self.num_neurons)
        self.bodyprior_dec_fc2 = nn.Linear(self.num_neurons, self.num_neurons)
        out_features = self.num_joints * 6 if self.use_cont_repr else n_features
        self.bodyprior_dec_out = nn.Linear(self.num_neurons, out_features)

    # ------------------------------------------------------------------ encoder / decoder
    def encode(self, Pin: torch.Tensor) -> torch.distributions.Normal:
        """Axis-angle poses (N, 1, J, 3), (N, J, 3) or (N, J*3) -> posterior Normal with (N, D) loc and scale."""
        n_features = int(np.prod(self.data_shape))
        if Pin.dim() < 2 or Pin[0].numel() != n_features:
            raise ValueError(f"VPoser.encode expects (N, {n_features}) or (N, {', '.join(map(str, self.data_shape))}) "
                             f"inputs, got {tuple(Pin.shape)}")
        x = Pin.reshape(Pin.shape[0], n_features)
        x = self.bodyprior_enc_bn1(x)
        x = F.leaky_relu(self.bodyprior_enc_fc1(x), negative_slope=0.2)
        x = self.bodyprior_enc_bn2(x)
        x = self.dropout(x)
        x = F.leaky_relu(self.bodyprior_enc_fc2(x), negative_slope=0.2)
        return torch.distributions.Normal(self.bodyprior_enc_mu(x), F.softplus(self.bodyprior_enc_logvar(x)))

    def decode(self, Zin: torch.Tensor, output_type: str = "matrot") -> torch.Tensor:
        """Latent codes (N, D) -> poses (N, 1, J, 9) flattened rotation matrices ('matrot') or (N, 1, J, 3) axis-angle ('aa')."""
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {_OUTPUT_TYPES}, got {output_type!r}")
        if Zin.shape[-1] != self.latentD:
            raise ValueError(f"VPoser.decode expects (N, {self.latentD}) latent codes, got {tuple(Zin.shape)}")
        Zin = Zin.reshape(-1, self.latentD)
        x = F.leaky_relu(self.bodyprior_dec_fc1(Zin), negative_slope=0.2)
        x = self.dropout(x)
        x = F.leaky_relu(self.bodyprior_dec_fc2(x), negative_slope=0.2)
        x = self.bodyprior_dec_out(x)
        n = x.shape[0]
        if self.use_cont_repr:
            matrot = rotation_tools.cont6d_to_matrix(x.reshape(n, self.num_joints, 6))
        elif self.data_shape[-1] == 3:
            matrot = rotation_tools.axis_angle_to_matrix(x.reshape(n, self.num_joints, 3))
        else:
            matrot = x.reshape(n, self.num_joints, 3, 3)
        matrot = matrot.reshape(n, 1, self.num_joints, 9)
        if output_type == "aa":
            return VPoser.matrot2aa(matrot)
        return matrot

    def forward(self, Pin: torch.Tensor, input_type: str = "aa", output_type: str = "matrot") -> dict:
        """Encode, draw one reparameterised sample, decode.

        Pin: (N, 1, J, 3) axis-angle ('aa') or (N, 1, J, 9) flattened matrices ('matrot', converted to
        axis-angle first, as the encoder reads axis-angle). Returns a dict with 'mean' and 'std' (N, D) of
        the posterior and 'pose_matrot' (N, 1, J, 9) or 'pose_aa' (N, 1, J, 3).
        """
        if input_type not in _INPUT_TYPES:
            raise ValueError(f"input_type must be one of {_INPUT_TYPES}, got {input_type!r}")
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {_OUTPUT_TYPES}, got {output_type!r}")
        if input_type == "matrot" and self.data_shape[-1] == 3:
            Pin = VPoser.matrot2aa(Pin.reshape(Pin.shape[0], 1, -1, 9))
        q_z = self.encode(Pin)
        prec = self.decode(q_z.rsample(), output_type=output_type)
        key = "pose_aa" if output_type == "aa" else "pose_matrot"
        return {"mean": q_z.mean, "std": q_z.scale, key: prec}

    # ------------------------------------------------------------------ sampling
    def sample_poses(self, num_poses: int, output_type: str = "aa", seed=None) -> torch.Tensor:
        """Decode num_poses codes drawn from N(0, I) in eval mode -> (num_poses, 1, J, 3) ('aa') or (.., 9).

        The codes come from a private torch.Generator on the model's device, seeded with ``seed``
        (fresh entropy when None): the same seed gives the same poses on a device, and numpy's and
        torch's global random states are neither reseeded nor advanced. The module's train/eval
        mode is restored afterwards. No gradients are tracked.
        """
        return sample_from_prior(self, lambda z: self.decode(z, output_type=output_type), num_poses, self.latentD,
                                 seed, like=self.bodyprior_dec_fc1.weight)

    # ------------------------------------------------------------------ the PosePrior interface
    def decode_rotations(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, D) -> local joint rotations (N, J, 3, 3)."""
        return self.decode(z, output_type="matrot").reshape(z.shape[0], self.num_joints, 3, 3)

    def decode_pose(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (N, D) -> axis-angle poses (N, J*3)."""
        return self.decode(z, output_type="aa").reshape(z.shape[0], 3 * self.num_joints)

    def _sampling_weight(self) -> torch.Tensor:
        return self.bodyprior_dec_fc1.weight

    # ------------------------------------------------------------------ 2019 static helpers
    @staticmethod
    def matrot2aa(pose_matrot: torch.Tensor) -> torch.Tensor:
        """Flattened rotation matrices (N, 1, J, 9) (any (..., 9) or (..., 3, 3)) -> axis-angle (N, 1, J, 3)."""
        if pose_matrot.shape[-1] == 9:
            pose_matrot = pose_matrot.reshape(pose_matrot.shape[:-1] + (3, 3))
        return rotation_tools.matrix_to_axis_angle(pose_matrot)

    @staticmethod
    def aa2matrot(pose: torch.Tensor) -> torch.Tensor:
        """Axis-angle (N, 1, J, 3) (any (..., 3)) -> flattened rotation matrices (N, 1, J, 9)."""
        return rotation_tools.axis_angle_to_matrix(pose).reshape(pose.shape[:-1] + (9,))
