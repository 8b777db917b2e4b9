"""Pose jitter: a training-time augmentation (VPoser trainer, GMM fit) that turns every joint of a training pose
by a small random rotation.

A BVH skeleton fixes degrees of freedom its markers do not measure (a wrist without hand markers, a
knee kept a pure hinge, an elbow without twist), so a prior trained on the imports alone learns those
as constants and cannot encode a real pose that moves them. Turning each joint's local rotation by a
rotation vector drawn from N(0, sigma^2 I) spreads the training distribution over that neighbourhood.
"""

import math

import torch

from human_body_prior.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle


def jitter_poses(pose_aa: torch.Tensor, sigma_deg: float, generator: torch.Generator) -> torch.Tensor:
    """(N, J, 3) axis-angle local rotations -> (N, J, 3) with each joint's rotation R turned to R exp([e]),
    e ~ N(0, (sigma_deg in radians)^2 I) drawn from ``generator`` (global RNGs untouched); sigma 0 returns the input."""
    if sigma_deg < 0 or not math.isfinite(sigma_deg):
        raise ValueError(f"pose jitter must be a finite angle >= 0 degrees, got {sigma_deg}")
    if sigma_deg == 0:
        return pose_aa
    noise = torch.randn(pose_aa.shape, generator=generator, device=pose_aa.device, dtype=pose_aa.dtype)
    turned = axis_angle_to_matrix(pose_aa) @ axis_angle_to_matrix(noise * math.radians(sigma_deg))
    return matrix_to_axis_angle(turned)
