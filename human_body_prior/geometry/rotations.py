"""Rotation math, the one home of it: conversions between axis-angle, rotation matrices, quaternions,
Euler angles and the 6-D representation; the rotation between two directions, geodesic angles, slerp.

Every function accepts any leading batch shape, works in float32 and float64 on any device, and has
finite values and gradients everywhere, including angle 0 and angle pi. Quaternions are (w, x, y, z).
Angles are in radians.

Contract on bad input: a conversion returns a rotation or raises ValueError naming the function and
the batch index; it never returns a non-rotation or a wrong angle without an error.

* Functions that take rotation matrices (``matrix_to_quaternion``, ``matrix_to_axis_angle``,
  ``geodesic_angle``) refuse a matrix that is not a rotation to within ``ROTATION_TOL``
  (max |R^T R - I| <= 1e-3, det > 0): a scaled, sheared or reflected matrix, zeros, NaN. Round-off
  of float32 or of 4-decimal text passes. Nothing is projected silently: project with an SVD
  yourself if you mean the nearest rotation.
* Parameterisations are normalised, and refused only where they name no rotation: quaternions of
  any norm > 0 (norm 0 or non-finite: ValueError); 6-D input whose two columns are not collinear
  (collinear within rounding, a zero column or non-finite: ValueError).
* Axis-angle: every finite vector is a rotation, at any magnitude (1e20 rad in float32 gives the
  rotation by that float's angle, not NaN). Axis-angle input is not checked for NaN: it runs in
  every forward pass of the body model, and NaN in gives NaN out.

The checks cost one device synchronisation per call.
"""

import torch
import torch.nn.functional as F

# Below this squared angle (rad^2) the small-angle series replace the closed forms; the series are
# exact to float64 precision there and keep gradients finite at zero.
_SMALL_ANGLE_SQ = 1e-6
ROTATION_TOL = 1e-3  # max |R^T R - I| accepted as a rotation (see the module docstring)


def _first_bad(bad: torch.Tensor) -> str:
    idx = tuple(int(i) for i in bad.nonzero()[0]) if bad.dim() else ()
    return f"{idx}" if idx else "(the only one)"


def _check_rotation(R: torch.Tensor, fn: str) -> None:
    """ValueError unless every R (..., 3, 3) is a rotation to ROTATION_TOL (module docstring)."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"{fn}: expected rotation matrices (..., 3, 3), got shape {tuple(R.shape)}")
    with torch.no_grad():
        M = R.detach()
        if M.numel() == 0:
            return
        err = (M.transpose(-1, -2) @ M - torch.eye(3, dtype=M.dtype, device=M.device)).abs().amax((-2, -1))
        det = (torch.linalg.cross(M[..., 0], M[..., 1], dim=-1) * M[..., 2]).sum(-1)
        bad = ~((err <= ROTATION_TOL) & (det > 0))  # NaN fails both
        if bad.any():
            i = bad.nonzero()[0] if bad.dim() else ()
            e, d = float(err[tuple(i)]), float(det[tuple(i)])
            raise ValueError(f"{fn}: matrix {_first_bad(bad)} is not a rotation (max |R^T R - I| = {e:.3g}, "
                             f"det = {d:.3g}; a rotation is orthonormal to {ROTATION_TOL:g} with det +1)")


def _check_quaternion(q: torch.Tensor, fn: str) -> None:
    """ValueError where a quaternion (..., 4) has norm 0 or is not finite."""
    if q.shape[-1:] != (4,):
        raise ValueError(f"{fn}: expected quaternions (..., 4), got shape {tuple(q.shape)}")
    with torch.no_grad():
        n2 = (q.detach() ** 2).sum(-1)
        bad = ~(torch.isfinite(n2) & (n2 > 0))
        if bad.any():
            raise ValueError(f"{fn}: quaternion {_first_bad(bad)} has norm 0 or is not finite; it names no rotation")


_HUGE_ANGLE_SQ = 1e30  # (1e15 rad)^2: beyond, the squared angle can overflow float32
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)  # torch >= 2.3


def _reduce_huge_angles(aa: torch.Tensor) -> torch.Tensor:
    """aa (..., 3) with every vector longer than 1e15 rad replaced by the same rotation with its angle
    in [-pi, pi] (its length computed without overflow, the angle reduced exactly by sin/cos); all
    other vectors pass through unchanged, so ordinary input gives bit-identical results."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    huge = ~(theta2 < _HUGE_ANGLE_SQ)  # also inf and nan (nan stays nan)
    if aa.device.type == "cpu" and not _is_compiling() and not bool(huge.any()):
        return aa  # the common case; asking costs a device sync elsewhere, so CUDA takes the branchless path
    m = torch.where(huge, aa.abs().amax(-1, keepdim=True), torch.ones_like(theta2))
    s = torch.where(huge, aa / m, torch.ones_like(aa))  # placeholders keep the unused branch's gradient finite
    theta = m * torch.sqrt((s * s).sum(-1, keepdim=True))
    reduced = torch.atan2(torch.sin(theta), torch.cos(theta))
    return torch.where(huge, aa / theta * reduced, aa)


def _safe_sqrt(x: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """sqrt(x) where ``small`` is False, 1 where it is True (so no inf gradient leaks through where)."""
    return torch.sqrt(torch.where(small, torch.ones_like(x), x))


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices [v]x. (..., 3) -> (..., 3, 3)."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape + (3,))


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. aa (..., 3), direction = axis, norm = angle (any finite size) -> R (..., 3, 3)."""
    aa = _reduce_huge_angles(aa)
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
    """aa (..., 3), any finite size -> unit quaternion (..., 4) as (w, x, y, z) with w >= 0 for angles <= pi."""
    aa = _reduce_huge_angles(aa)
    theta2 = (aa * aa).sum(-1, keepdim=True)
    small = theta2 < _SMALL_ANGLE_SQ
    theta = _safe_sqrt(theta2, small)
    half_sinc = torch.where(small, 0.5 - theta2 / 48 + theta2 * theta2 / 3840, torch.sin(theta / 2) / theta)
    w = torch.where(small, 1 - theta2 / 8 + theta2 * theta2 / 384, torch.cos(theta / 2))
    return torch.cat([w, aa * half_sinc], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Quaternion (..., 4) (w, x, y, z), any norm > 0 -> aa (..., 3) with angle in [0, pi]."""
    _check_quaternion(q, "quaternion_to_axis_angle")
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
    _check_quaternion(q, "quaternion_to_matrix")
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
    """R (..., 3, 3) rotation -> unit quaternion (..., 4) (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the one
    with the largest (best conditioned) pivot, which keeps accuracy near angle pi. A matrix that is
    not a rotation raises ValueError (module docstring).
    """
    _check_rotation(R, "matrix_to_quaternion")
    return _matrix_to_quaternion(R)


def _matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
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
    """R (..., 3, 3) rotation -> aa (..., 3), angle in [0, pi]; accurate near pi. A matrix that is not a
    rotation raises ValueError (module docstring)."""
    _check_rotation(R, "matrix_to_axis_angle")
    return quaternion_to_axis_angle(_matrix_to_quaternion(R))


def cont6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6-D continuous representation (Zhou et al. 2019) -> R (..., 3, 3).

    x (..., 6) is read as a (..., 3, 2) matrix whose two columns a1, a2 are orthonormalised by
    Gram-Schmidt: b1 = a1/|a1|, b2 = normalised(a2 - (b1.a2) b1), b3 = b1 x b2; R = [b1 b2 b3] (columns).
    This is the layout VPoser v1's decoder output uses. Collinear columns (to within 10 machine epsilon
    of |a2|), a zero column or non-finite values name no rotation and raise ValueError.
    """
    if x.shape[-1:] != (6,):
        raise ValueError(f"cont6d_to_matrix: expected (..., 6), got shape {tuple(x.shape)}")
    # the columns as contiguous rows: a norm over a stride-2 last axis is about 15 times slower on the CPU
    a = x.reshape(x.shape[:-1] + (3, 2)).transpose(-1, -2).contiguous()
    a1, a2 = a[..., 0, :], a[..., 1, :]
    # F.normalize's arithmetic (x / max(|x|, 1e-12)), with the norms kept for the check below
    n1 = a1.norm(dim=-1, keepdim=True)
    b1 = a1 / n1.clamp_min(1e-12)
    u = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    perp = u.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 1e-7
        n2 = a2.norm(dim=-1, keepdim=True)
        bad = ~((n1 > 0) & (perp > 10 * eps * n2) & torch.isfinite(perp) & torch.isfinite(n1)).squeeze(-1)
        if bad.any():
            raise ValueError(f"cont6d_to_matrix: 6-D input {_first_bad(bad)} has collinear or zero columns (or NaN) "
                             "and names no rotation")
        # nearly collinear columns: one pass leaves b1.b2 up to eps / sin(angle) > sqrt(eps) there
        near = perp < eps ** 0.5 * n2
    b2 = u / perp.clamp_min(1e-12)
    if near.any():  # a second Gram-Schmidt pass; other inputs keep the one-pass result
        twice = F.normalize(b2 - (b1 * b2).sum(-1, keepdim=True) * b1, dim=-1)
        b2 = torch.where(near, twice, b2)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_cont6d(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> 6-D representation (..., 6), the first two columns in cont6d_to_matrix's layout."""
    return R[..., :2].reshape(R.shape[:-2] + (6,))



def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking the direction of a onto the direction of b. a, b (..., 3), any
    non-zero length -> R (..., 3, 3) with R a/|a| = b/|b|.

    R = I + K + K^2 / (1 + c) with K = [a x b]x and c = a.b for the unit vectors. Opposite directions
    (c < -1 + 1e-9) have no smallest rotation: they get the half turn about a unit axis orthogonal to
    a (a x e_x, or a x e_y when a is along x), R = 2 n n^T - I.
    """
    a = a / a.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    a, b = torch.broadcast_tensors(a, b)
    c = (a * b).sum(-1)
    K = skew(torch.linalg.cross(a, b, dim=-1))
    opposite = c < -1 + 1e-9
    coef = 1.0 / torch.where(opposite, torch.ones_like(c), 1.0 + c)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    R = eye + K + (K @ K) * coef[..., None, None]
    if bool(opposite.any()):
        ex = torch.tensor([1.0, 0.0, 0.0], dtype=a.dtype, device=a.device)
        ey = torch.tensor([0.0, 1.0, 0.0], dtype=a.dtype, device=a.device)
        n = torch.linalg.cross(a, ex.expand_as(a), dim=-1)
        n = torch.where(n.norm(dim=-1, keepdim=True) < 1e-6, torch.linalg.cross(a, ey.expand_as(a), dim=-1), n)
        n = n / n.norm(dim=-1, keepdim=True)
        half_turn = 2 * n[..., :, None] * n[..., None, :] - eye
        R = torch.where(opposite[..., None, None], half_turn, R)
    return R


def _orthonormal_frame(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Columns u/|u|, the part of v orthogonal to u (normalised), and their cross product: (..., 3, 3)."""
    u = u / u.norm(dim=-1, keepdim=True)
    v = v - (v * u).sum(-1, keepdim=True) * u
    v = v / v.norm(dim=-1, keepdim=True)
    return torch.stack([u, v, torch.linalg.cross(u, v, dim=-1)], dim=-1)


def align_frames(d: torch.Tensor, lateral: torch.Tensor, d_to: torch.Tensor, lateral_to: torch.Tensor) -> torch.Tensor:
    """The rotation taking direction d onto d_to and the part of lateral orthogonal to d onto the part
    of lateral_to orthogonal to d_to (a frame given by a main and a secondary direction). All (..., 3),
    any non-zero length, lateral not parallel to d -> R (..., 3, 3)."""
    return _orthonormal_frame(d_to, lateral_to) @ _orthonormal_frame(d, lateral).transpose(-1, -2)


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t) -> torch.Tensor:
    """Spherical linear interpolation of unit quaternions (..., 4) (w, x, y, z) along the shorter arc
    (q1 is flipped where q0.q1 < 0); t in [0, 1], broadcast against (..., 1). Near-equal quaternions
    (sin of the arc < 1e-6) are interpolated linearly. Returns (..., 4), unit up to rounding."""
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.arccos(dot)
    sin_t = torch.sin(theta)
    small = sin_t < 1e-6
    a = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / torch.where(small, 1.0, sin_t))
    b = torch.where(small, t, torch.sin(t * theta) / torch.where(small, 1.0, sin_t))
    return a * q0 + b * q1


def slerp(R0: torch.Tensor, R1: torch.Tensor, t) -> torch.Tensor:
    """Rotation a share t of the way from R0 to R1 along the geodesic: R0 exp(t log(R0^T R1)).
    R0, R1 (..., 3, 3), t in [0, 1] broadcast against (...) -> (..., 3, 3)."""
    t = torch.as_tensor(t, dtype=R0.dtype, device=R0.device)
    return R0 @ axis_angle_to_matrix(matrix_to_axis_angle(R0.transpose(-1, -2) @ R1) * t[..., None])


def geodesic_cos(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Cosine of the geodesic angle between rotations, (trace(R1^T R2) - 1) / 2: (..., 3, 3) x2 -> (...).
    Cheap and monotone in the angle, for comparing angles with a threshold away from 0 and pi (use
    geodesic_angle for the angle itself)."""
    return ((R1 * R2).sum((-1, -2)) - 1) / 2


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor = None) -> torch.Tensor:
    """Angle (rad, in [0, pi]) of the rotation taking R2 to R1 (of R1 itself when R2 is None).

    R1, R2 (..., 3, 3) -> (...). Computed as 2 atan2(|v|, |w|) of the quaternion of R1 R2^T, which
    stays accurate near 0 and pi, where arccos((tr - 1) / 2) loses precision and its gradient is infinite.
    The gradient is finite everywhere; at angle exactly 0 it is zero (the subgradient of |angle|).
    """
    _check_rotation(R1, "geodesic_angle")
    if R2 is not None:
        _check_rotation(R2, "geodesic_angle")
    rel = R1 if R2 is None else R1 @ R2.transpose(-1, -2)
    q = _matrix_to_quaternion(rel)
    w, v = q[..., 0], q[..., 1:]
    n2 = (v * v).sum(-1)
    n = _safe_sqrt(n2, n2 <= 0)
    return 2 * torch.atan2(torch.where(n2 <= 0, torch.zeros_like(n), n), w.abs())


# --------------------------------------------------------------------------- Euler angles
# Conventions are named as in transforms3d: 's' (static, extrinsic) or 'r' (rotating, intrinsic)
# followed by three distinct axes, e.g. 'sxyz': rotate about x by a, then about the fixed y by b, then
# about the fixed z by c, R = Rz(c) Ry(b) Rx(a); 'rxyz' = Rx(a) Ry(b) Rz(c), the same as 'szyx' with
# the angles reversed. Angles in radians.

_AXIS = {"x": 0, "y": 1, "z": 2}


def _parse_euler_axes(axes: str) -> tuple:
    if not (isinstance(axes, str) and len(axes) == 4 and axes[0] in "sr" and sorted(axes[1:]) == ["x", "y", "z"]):
        raise ValueError(f"Euler axes must be 's' or 'r' followed by a permutation of 'xyz' "
                         f"(e.g. 'sxyz', 'rzyx'), got {axes!r}")
    return axes[0] == "s", tuple(_AXIS[a] for a in axes[1:])


def _elementary_rotation(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """Rotation by ``angle`` (...) about coordinate axis 0, 1 or 2 -> (..., 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    if axis == 0:
        rows = (i, o, o, o, c, -s, o, s, c)
    elif axis == 1:
        rows = (c, o, s, o, i, o, -s, o, c)
    else:
        rows = (c, -s, o, s, c, o, o, o, i)
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def euler_to_matrix(angles: torch.Tensor, axes: str = "sxyz") -> torch.Tensor:
    """Euler angles (..., 3) (rad) in convention ``axes`` -> R (..., 3, 3)."""
    static, order = _parse_euler_axes(axes)
    mats = [_elementary_rotation(ax, angles[..., n]) for n, ax in enumerate(order)]
    return mats[2] @ mats[1] @ mats[0] if static else mats[0] @ mats[1] @ mats[2]


def matrix_to_euler(R: torch.Tensor, axes: str = "sxyz") -> torch.Tensor:
    """R (..., 3, 3) -> Euler angles (..., 3) (rad) in convention ``axes``; the middle angle is in
    [-pi/2, pi/2], the others in [-pi, pi]. At gimbal lock (middle angle +-pi/2) the third angle is 0.
    Gradients are finite everywhere."""
    static, order = _parse_euler_axes(axes)
    if not static:  # intrinsic (a, b, c) about (i, j, k) is extrinsic (c, b, a) about (k, j, i)
        return matrix_to_euler(R, "s" + "xyz"[order[2]] + "xyz"[order[1]] + "xyz"[order[0]]).flip(-1)
    i, j, k = order
    # Conjugating by the permutation that sends axes i, j, k to x, y, z turns the problem into 'sxyz';
    # an odd permutation is a reflection and flips the sense of every rotation.
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    P = R[..., [i, j, k], :][..., :, [i, j, k]]
    cos_b2 = P[..., 0, 0] ** 2 + P[..., 1, 0] ** 2
    locked = cos_b2 < 1e-12
    cos_b = _safe_sqrt(cos_b2, locked)
    cos_b = torch.where(locked, torch.zeros_like(cos_b), cos_b)
    one, zero = torch.ones_like(cos_b), torch.zeros_like(cos_b)
    # safe atan2 arguments in the branch that is not taken keep its gradient finite
    a = torch.where(locked,
                    torch.atan2(torch.where(locked, -P[..., 1, 2], zero), torch.where(locked, P[..., 1, 1], one)),
                    torch.atan2(torch.where(locked, zero, P[..., 2, 1]), torch.where(locked, one, P[..., 2, 2])))
    b = torch.atan2(-P[..., 2, 0], cos_b)
    c = torch.where(locked, zero,
                    torch.atan2(torch.where(locked, zero, P[..., 1, 0]), torch.where(locked, one, P[..., 0, 0])))
    return sign * torch.stack([a, b, c], dim=-1)
