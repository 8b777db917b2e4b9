"""Weighted rigid alignment (Kabsch), used to initialise the global orientation and translation."""

import torch

from human_body_prior.geometry.rigid import rigid_registration


def kabsch(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor, min_points: int = 3):
    """Rotation R (B, 3, 3) and translation t (B, 3) minimising sum_j w_j |R src_j + t - dst_j|^2.

    src, dst (B, J, 3); weights (B, J) >= 0 (points with weight 0 are ignored, their dst may be NaN).
    Proper rotations only (det R = +1). Frames with fewer than min_points weighted points get R = I
    and t aligning the weighted centroids (or zero when no point has weight).
    See :func:`human_body_prior.geometry.rigid.rigid_registration`.
    """
    return rigid_registration(src, dst, weights, min_points=min_points)
