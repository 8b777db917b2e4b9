"""Weighted rigid alignment (Kabsch), used to initialise the global orientation and translation."""

import torch


def kabsch(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor, min_points: int = 3):
    """Rotation R (B, 3, 3) and translation t (B, 3) minimising sum_j w_j |R src_j + t - dst_j|^2.

    src, dst (B, J, 3); weights (B, J) >= 0 (points with weight 0 are ignored, their dst may be NaN).
    Proper rotations only (det R = +1). Frames with fewer than min_points weighted points get R = I
    and t aligning the weighted centroids (or zero when no point has weight).
    """
    w = weights.clamp(min=0)
    dst = torch.where(w.unsqueeze(-1) > 0, dst, src)
    wsum = w.sum(-1, keepdim=True)  # (B, 1)
    safe = wsum.clamp(min=torch.finfo(src.dtype).tiny)
    mu_s = (w.unsqueeze(-1) * src).sum(1) / safe
    mu_d = (w.unsqueeze(-1) * dst).sum(1) / safe
    a = src - mu_s.unsqueeze(1)
    b = dst - mu_d.unsqueeze(1)
    H = torch.einsum("bj,bji,bjk->bik", w, a, b)  # sum w a b^T
    U, _, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = V @ D @ U.transpose(-1, -2)
    enough = ((weights > 0).sum(-1) >= min_points).view(-1, 1, 1)
    eye = torch.eye(3, dtype=src.dtype, device=src.device).expand_as(R)
    R = torch.where(enough, R, eye)
    t = mu_d - (R @ mu_s.unsqueeze(-1)).squeeze(-1)
    return R, t
