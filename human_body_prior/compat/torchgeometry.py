"""torchgeometry's conversion names, as human_body_prior 2021 code imports them from this module.

Over the geometry core (geometry/rotations.py): the names, argument shapes and return
shapes of torchgeometry 0.1.2 (homogeneous (N, 4, 4) matrices, (w, x, y, z) quaternions), with the
library's own numerics underneath, so values and gradients are finite at angle 0 and angle pi (where
torchgeometry returns NaN) and nothing subtracts booleans (torchgeometry's crash on torch >= 1.2).
Angles in radians.
"""

import math

import torch
import torch.nn.functional as F

from human_body_prior.compat.rotation_names import tmat
from human_body_prior.geometry import rotations as rt

pi = torch.tensor([math.pi])


def rad2deg(tensor: torch.Tensor) -> torch.Tensor:
    """Radians -> degrees, any shape."""
    return tensor * (180.0 / math.pi)


def deg2rad(tensor: torch.Tensor) -> torch.Tensor:
    """Degrees -> radians, any shape."""
    return tensor * (math.pi / 180.0)


def convert_points_from_homogeneous(points: torch.Tensor) -> torch.Tensor:
    """(..., N, D) homogeneous points -> (..., N, D - 1), divided by the last coordinate."""
    if points.dim() < 2:
        raise ValueError(f"points must have shape (B, N, D), got {tuple(points.shape)}")
    return points[..., :-1] / points[..., -1:]


def convert_points_to_homogeneous(points: torch.Tensor) -> torch.Tensor:
    """(..., N, D) points -> (..., N, D + 1) with a last coordinate of 1."""
    if points.dim() < 2:
        raise ValueError(f"points must have shape (B, N, D), got {tuple(points.shape)}")
    return F.pad(points, [0, 1], value=1.0)


def _homogeneous(R: torch.Tensor, t: torch.Tensor = None) -> torch.Tensor:
    t = R.new_zeros(R.shape[:-2] + (3,)) if t is None else t
    return tmat(R, t)


def angle_axis_to_rotation_matrix(angle_axis: torch.Tensor) -> torch.Tensor:
    """Axis-angle (N, 3) -> homogeneous rotation matrices (N, 4, 4) (zero translation)."""
    if angle_axis.shape[-1] != 3:
        raise ValueError(f"angle_axis must have shape (N, 3), got {tuple(angle_axis.shape)}")
    return _homogeneous(rt.axis_angle_to_matrix(angle_axis))


def rtvec_to_pose(rtvec: torch.Tensor) -> torch.Tensor:
    """(N, 6) axis-angle then translation -> (N, 4, 4) rigid transforms."""
    if rtvec.shape[-1] != 6:
        raise ValueError(f"rtvec must have shape (N, 6), got {tuple(rtvec.shape)}")
    return _homogeneous(rt.axis_angle_to_matrix(rtvec[..., :3]), rtvec[..., 3:])


def _rotation_block(rotation_matrix: torch.Tensor, name: str) -> torch.Tensor:
    if rotation_matrix.dim() < 2 or rotation_matrix.shape[-2:] not in ((3, 4), (4, 4), (3, 3)):
        raise ValueError(f"{name} expects rotation matrices of shape (N, 3, 4) or (N, 4, 4) (or (N, 3, 3)), "
                         f"got {tuple(rotation_matrix.shape)}")
    return rotation_matrix[..., :3, :3]


def rotation_matrix_to_angle_axis(rotation_matrix: torch.Tensor) -> torch.Tensor:
    """(N, 3, 4) or (N, 4, 4) (or (N, 3, 3)) -> axis-angle (N, 3), angle in [0, pi]."""
    return rt.matrix_to_axis_angle(_rotation_block(rotation_matrix, "rotation_matrix_to_angle_axis"))


def rotation_matrix_to_quaternion(rotation_matrix: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, 3, 4) or (N, 4, 4) (or (N, 3, 3)) -> unit quaternion (N, 4) (w, x, y, z), w >= 0.

    eps is accepted for torchgeometry's signature; the conversion needs no threshold.
    """
    return rt.matrix_to_quaternion(_rotation_block(rotation_matrix, "rotation_matrix_to_quaternion"))


def quaternion_to_angle_axis(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternion (..., 4) (w, x, y, z) -> axis-angle (..., 3)."""
    if quaternion.shape[-1] != 4:
        raise ValueError(f"quaternion must have shape (N, 4), got {tuple(quaternion.shape)}")
    return rt.quaternion_to_axis_angle(quaternion)


def angle_axis_to_quaternion(angle_axis: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> unit quaternion (..., 4) (w, x, y, z)."""
    if angle_axis.shape[-1] != 3:
        raise ValueError(f"angle_axis must have shape (N, 3), got {tuple(angle_axis.shape)}")
    return rt.axis_angle_to_quaternion(angle_axis)
