"""Rotation conversions between axis-angle, rotation matrices, quaternions and the 6-D representation.

Every function accepts any leading batch shape, works in float32 and float64 on any device, and has
finite values and gradients everywhere, including angle 0 and angle pi. Quaternions are (w, x, y, z).
Angles are in radians.
"""

import torch
import torch.nn.functional as F

# Below this squared angle (rad^2) the small-angle series replace the closed forms; the series are
# exact to float64 precision there and keep gradients finite at zero.
_SMALL_ANGLE_SQ = 1e-6


def _safe_sqrt(x: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """sqrt(x) where ``small`` is False, 1 where it is True (so no inf gradient leaks through where)."""
    return torch.sqrt(torch.where(small, torch.ones_like(x), x))


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices [v]x. (..., 3) -> (..., 3, 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape + (3,))


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. aa (..., 3), direction = axis, norm = angle -> R (..., 3, 3)."""
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    small = theta2 < _SMALL_ANGLE_SQ
    theta = _safe_sqrt(theta2, small)
    # a = sin(t)/t and b = (1 - cos(t))/t^2, with their Taylor series near zero
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / (theta * theta))
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    return eye + a * K + b * (K @ K)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """aa (..., 3) -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0 for angles <= pi."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    small = theta2 < _SMALL_ANGLE_SQ
    theta = _safe_sqrt(theta2, small)
    half_sinc = torch.where(small, 0.5 - theta2 / 48 + theta2 * theta2 / 3840, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1 - theta2 / 8 + theta2 * theta2 / 384, torch.cos(theta / 2))
    return torch.cat([w, aa * half_sinc], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (..., 4) (w, x, y, z), any norm > 0 -> aa (..., 3) with angle in [0, pi]."""
    q = q / q.norm(dim=-1, keepdim=True)
    # q and -q are the same rotation; w >= 0 gives the angle in [0, pi]
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < 1e-12
    n = _safe_sqrt(n2, small)
    # angle / |v| with angle = 2 atan2(|v|, w); series 2/w - 2|v|^2 / (3 w^3) near |v| = 0 (w ~ 1 there)
    w_near_one = torch.where(small, w, torch.ones_like(w))  # keeps the unused series finite near pi
    series = 2 / w_near_one - 2 * n2 / (3 * w_near_one ** 3)
    scale = torch.where(small, series, 2 * torch.atan2(n, w) / n)
    return v * scale


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (..., 4) (w, x, y, z), any norm > 0 -> R (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    R = torch.stack([
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ], dim=-1)
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> unit quaternion (..., 4) (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the one
    with the largest (best conditioned) pivot, which keeps accuracy near angle pi.
    """
    r = R.reshape(R.shape[:-2] + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = r.unbind(-1)
    pivots = torch.stack([
        1 + m00 + m11 + m22,  # 4 w^2
        1 + m00 - m11 - m22,  # 4 x^2
        1 - m00 + m11 - m22,  # 4 y^2
        1 - m00 - m11 + m22,  # 4 z^2
    ], dim=-1)
    candidates = torch.stack([
        torch.stack([pivots[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, pivots[..., 1], m01 + m10, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m01 + m10, pivots[..., 2], m12 + m21], dim=-1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, pivots[..., 3]], dim=-1),
    ], dim=-2)  # (..., 4 candidates, 4)
    # The chosen pivot is >= 1 for a rotation; clamping the others keeps their (unused) gradients finite.
    candidates = candidates / (2 * torch.sqrt(pivots.clamp(min=0.1))).unsqueeze(-1)
    best = pivots.argmax(dim=-1, keepdim=True)
    q = torch.gather(candidates, -2, best.unsqueeze(-1).expand(best.shape + (4,))).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)
    return q / q.norm(dim=-1, keepdim=True)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> aa (..., 3), angle in [0, pi]; accurate near pi."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def cont6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6-D continuous representation (Zhou et al. 2019) -> R (..., 3, 3).

    x (..., 6) is read as a (..., 3, 2) matrix whose two columns a1, a2 are orthonormalised by
    Gram-Schmidt: b1 = a1/|a1|, b2 = normalised(a2 - (b1.a2) b1), b3 = b1 x b2; R = [b1 b2 b3] (columns).
    This is the layout VPoser v1's decoder output uses.
    """
    a = x.reshape(x.shape[:-1] + (3, 2))
    a1, a2 = a[..., 0], a[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_cont6d(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> 6-D representation (..., 6), the first two columns in cont6d_to_matrix's layout."""
    return R[..., :2].reshape(R.shape[:-2] + (6,))


def aa2matrot(pose: torch.Tensor) -> torch.Tensor:
    """2019 API. Axis-angle (..., 3), e.g. (N, 1, J, 3) -> flattened matrices (..., 9), e.g. (N, 1, J, 9)."""
    return axis_angle_to_matrix(pose).reshape(pose.shape[:-1] + (9,))


def matrot2aa(pose_matrot: torch.Tensor) -> torch.Tensor:
    """2019 API. Flattened matrices (..., 9), e.g. (N, 1, J, 9), or (..., 3, 3) -> axis-angle (..., 3)."""
    if pose_matrot.shape[-1] == 9:
        pose_matrot = pose_matrot.reshape(pose_matrot.shape[:-1] + (3, 3))
    elif pose_matrot.shape[-2:] != (3, 3):
        raise ValueError(f"matrot2aa expects (..., 9) or (..., 3, 3), got {tuple(pose_matrot.shape)}")
    return matrix_to_axis_angle(pose_matrot)
