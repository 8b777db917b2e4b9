"""Rigid (and similarity) transforms between point sets: the one weighted registration.

Weighted Kabsch / Umeyama: the rotation R (det +1), translation t and optionally scale s minimising
sum_j w_j |s R src_j + t - dst_j|^2. Everything that aligns points or vectors calls this.
"""

import torch


def rigid_registration(src: torch.Tensor, dst: torch.Tensor, weights=None, *, translation: bool = True,
                       scale: bool = False, min_points: int = 3):
    """Best rotation, translation (and scale) taking src onto dst in the weighted least-squares sense.

    src, dst (..., N, 3); weights (..., N) >= 0 or None (all 1). Points with weight 0 are ignored (their
    dst may be NaN). translation=False fits a rotation of vectors about the origin (t = 0, no centroids).
    scale=True also fits s > 0 (Umeyama); otherwise s = 1. Registrations with fewer than min_points
    weighted points get R = I (and t aligning the weighted centroids, zero when no point has weight).
    Returns (R (..., 3, 3), t (..., 3)), and s (...) as a third item when scale=True.
    """
    if src.shape != dst.shape or src.shape[-1] != 3 or src.dim() < 2:
        raise ValueError(f"src and dst must both have shape (..., N, 3), got {tuple(src.shape)} and {tuple(dst.shape)}")
    lead = src.shape[:-2]
    src, dst = src.reshape(-1, src.shape[-2], 3), dst.reshape(-1, dst.shape[-2], 3)
    if weights is None:
        weights = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
    else:
        weights = weights.reshape(src.shape[:2])
    w = weights.clamp(min=0)
    dst = torch.where(w.unsqueeze(-1) > 0, dst, src)
    wsum = w.sum(-1, keepdim=True)  # (B, 1)
    if translation:
        safe = wsum.clamp(min=torch.finfo(src.dtype).tiny)
        mu_s = (w.unsqueeze(-1) * src).sum(1) / safe
        mu_d = (w.unsqueeze(-1) * dst).sum(1) / safe
        a = src - mu_s.unsqueeze(1)
        b = dst - mu_d.unsqueeze(1)
    else:
        a, b = src, dst
    H = torch.einsum("bj,bji,bjk->bik", w, a, b)  # sum w a b^T
    U, S, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    R = V @ D @ U.transpose(-1, -2)
    enough = ((weights > 0).sum(-1) >= min_points).view(-1, 1, 1)
    eye = torch.eye(3, dtype=src.dtype, device=src.device).expand_as(R)
    R = torch.where(enough, R, eye)
    if scale:
        var_s = (w * (a * a).sum(-1)).sum(-1)
        s = (S * torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1)).sum(-1) / var_s.clamp(
            min=torch.finfo(src.dtype).tiny)
        s = torch.where(enough.view(-1), s, torch.ones_like(s))
    else:
        s = None
    if translation:
        sR = R if s is None else s.view(-1, 1, 1) * R
        t = mu_d - (sR @ mu_s.unsqueeze(-1)).squeeze(-1)
    else:
        t = torch.zeros(src.shape[0], 3, dtype=src.dtype, device=src.device)
    R, t = R.reshape(lead + (3, 3)), t.reshape(lead + (3,))
    return (R, t) if s is None else (R, t, s.reshape(lead))
