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

This file is self-contained (torch and numpy only), so loaders that run an experiment folder's model
file work where human_body_prior is not installed. Its rotation helpers below compute what
``human_body_prior.tools.rotation_tools`` does (a test checks the two agree).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

_SMALL_ANGLE_SQ = 1e-6  # rad^2; below it the small-angle series replace the closed forms


def _axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3), with series near angle 0 (finite gradients)."""
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)
    small = theta2 < _SMALL_ANGLE_SQ
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / (theta * theta))
    x, y, z = aa.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(aa.shape + (3,))
    return torch.eye(3, dtype=aa.dtype, device=aa.device) + a * K + b * (K @ K)


def _matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3), angle in [0, pi]: through the quaternion by Shepperd's method, accurate near pi."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = R.reshape(R.shape[:-2] + (9,)).unbind(-1)
    pivots = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    candidates = torch.stack([
        torch.stack([pivots[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, pivots[..., 1], m01 + m10, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m01 + m10, pivots[..., 2], m12 + m21], dim=-1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, pivots[..., 3]], dim=-1),
    ], dim=-2)
    candidates = candidates / (2 * torch.sqrt(pivots.clamp(min=0.1))).unsqueeze(-1)
    best = pivots.argmax(dim=-1, keepdim=True)
    q = torch.gather(candidates, -2, best.unsqueeze(-1).expand(best.shape + (4,))).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)
    q = q / q.norm(dim=-1, keepdim=True)
    w, v = q[..., :1], q[..., 1:]
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < 1e-12
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    w_near_one = torch.where(small, w, torch.ones_like(w))
    scale = torch.where(small, 2 / w_near_one - 2 * n2 / (3 * w_near_one ** 3), 2 * torch.atan2(n, w) / n)
    return v * scale


def _cont6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6-D representation (..., 6), read as (..., 3, 2) columns a1, a2 -> Gram-Schmidt -> R (..., 3, 3)."""
    a = x.reshape(x.shape[:-1] + (3, 2))
    a1, a2 = a[..., 0], a[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2, dim=-1)], dim=-1)


_OUTPUT_TYPES = ("matrot", "aa")
_INPUT_TYPES = ("aa", "matrot")


def sample_from_prior(model, decode, num_poses, latentD, seed=None, *, like):
    """decode(z) of num_poses codes z ~ N(0, I) (num_poses, latentD) from a private generator on
    like's device and dtype, in eval mode without gradients; model's train/eval mode is restored."""
    gen = torch.Generator(device=like.device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = torch.randn(int(num_poses), latentD, generator=gen, dtype=like.dtype, device=like.device)
            return decode(z)
    finally:
        model.train(was_training)


class LatentPosePrior:
    """The members of human_body_prior's PosePrior interface (priors/interface.py) that VPoser v1 and v2
    share: posterior-mean codes, the latent L2 energy of a pose, seeded sampling."""

    def encode_pose(self, pose_body: torch.Tensor) -> torch.Tensor:
        """(B, J*3) axis-angle -> (B, D) posterior mean."""
        return self.encode(pose_body.reshape(pose_body.shape[0], -1)).mean

    def energy(self, pose_body: torch.Tensor) -> torch.Tensor:
        """(B, J*3) -> (B,) |encode_pose(pose)|^2."""
        z = self.encode_pose(pose_body)
        return (z * z).sum(-1)

    def sample(self, n: int, seed=None) -> torch.Tensor:
        """(n, J*3) axis-angle: decode_pose of n codes z ~ N(0, I)."""
        return sample_from_prior(self, self.decode_pose, n, self.latentD, seed, like=self._sampling_weight())

    def sample_rotations(self, n: int, seed=None) -> torch.Tensor:
        """(n, J, 3, 3): decode_rotations of the same codes."""
        return sample_from_prior(self, self.decode_rotations, n, self.latentD, seed, like=self._sampling_weight())


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
            matrot = _cont6d_to_matrix(x.reshape(n, self.num_joints, 6))
        elif self.data_shape[-1] == 3:
            matrot = _axis_angle_to_matrix(x.reshape(n, self.num_joints, 3))
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
        return _matrix_to_axis_angle(pose_matrot)

    @staticmethod
    def aa2matrot(pose: torch.Tensor) -> torch.Tensor:
        """Axis-angle (N, 1, J, 3) (any (..., 3)) -> flattened rotation matrices (N, 1, J, 9)."""
        return _axis_angle_to_matrix(pose).reshape(pose.shape[:-1] + (9,))
