"""Fitting terms: weighted squared errors with an optional robust (Geman-McClure) penalty, and temporal
smoothness over the frames of a clip."""

import torch


def geman_mcclure(sq_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure penalty of squared residuals: sigma^2 r^2 / (sigma^2 + r^2).

    Equal to r^2 for |r| << sigma and bounded by sigma^2, so outliers pull with at most a constant
    cost. sq_residual (...) in squared units of sigma -> same shape.
    """
    s2 = float(sigma) ** 2
    return s2 * sq_residual / (s2 + sq_residual)


def confidence_weighted_error(pred: torch.Tensor, target: torch.Tensor, conf: torch.Tensor,
                              robust_sigma=None, scale=None) -> torch.Tensor:
    """Per-frame sum over points of conf * rho(|pred - target|^2).

    pred, target (B, J, D); conf (B, J) >= 0 (0 = missing: the target is ignored, even when NaN);
    scale: optional (B, 1, 1) or scalar divisor applied to the residual first (e.g. focal length);
    robust_sigma: None for plain squared error, else the Geman-McClure scale in the units of the
    (scaled) residual. Returns (B,).
    """
    diff = pred - torch.where(conf.unsqueeze(-1) > 0, target, pred.detach())
    if scale is not None:
        diff = diff / scale
    sq = (diff * diff).sum(-1)
    if robust_sigma is not None:
        sq = geman_mcclure(sq, robust_sigma)
    return (conf * sq).sum(-1)


def acceleration_term(joints: torch.Tensor) -> torch.Tensor:
    """Squared acceleration of each frame's joints, sum_j |J_(b-1)j - 2 J_bj + J_(b+1)j|^2, for the frames
    of one clip in time order. joints (B, J, 3) -> (B,) (squared units of joints), zero for the first
    and the last frame."""
    out = joints.new_zeros(joints.shape[0])
    if joints.shape[0] > 2:
        acc = joints[:-2] - 2 * joints[1:-1] + joints[2:]
        out = torch.cat([out[:1], (acc * acc).sum((-1, -2)), out[:1]])
    return out
