"""The rotation names human_body_prior 2021 (v2) code imports from ``tools/rotation_tools.py``, with their
v2 meanings and shapes, as thin layers over the geometry core. Library code calls the core names instead.

The 2019 (v1) (N, 1, J, 9) meanings live on as the static methods VPoser.aa2matrot / VPoser.matrot2aa.
"""

import numpy as np
import torch
import torch.nn.functional as F

from human_body_prior.geometry.kinematics import KinematicTree, forward_kinematics
from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
)

__all__ = ["aa2matrot", "matrot2aa", "local2global_pose", "em2euler", "euler2em", "remove_zrot", "noisy_zrot",
           "rotate_points_xyz", "tmat", "batch_rigid_transform"]

def _as_torch(x):
    """(tensor, back): numpy (or lists) become float64 tensors and results go back to numpy."""
    if isinstance(x, torch.Tensor):
        return x, lambda y: y
    return torch.from_numpy(np.array(x, dtype=np.float64)), lambda y: y.numpy()


def aa2matrot(pose: torch.Tensor) -> torch.Tensor:
    """v2: axis-angle (N, 3) (any (..., 3)) -> rotation matrices (N, 3, 3) (..., 3, 3)."""
    if pose.shape[-1] != 3:
        raise ValueError(f"aa2matrot expects axis-angle of shape (N, 3), got {tuple(pose.shape)}")
    return axis_angle_to_matrix(pose)


def matrot2aa(pose_matrot: torch.Tensor) -> torch.Tensor:
    """v2: rotation matrices (N, 3, 3) (any (..., 3, 3), or flattened (..., 9)) -> axis-angle (N, 3)."""
    if pose_matrot.shape[-1] == 9:
        pose_matrot = pose_matrot.reshape(pose_matrot.shape[:-1] + (3, 3))
    elif pose_matrot.shape[-2:] != (3, 3):
        raise ValueError(f"matrot2aa expects (N, 3, 3) (or (..., 9)), got {tuple(pose_matrot.shape)}")
    return matrix_to_axis_angle(pose_matrot)


def local2global_pose(local_pose: torch.Tensor, kintree) -> torch.Tensor:
    """Chain local joint rotations into global ones.

    local_pose (B, J, 3, 3) (or (B, 9 J)); kintree: the parent of each joint, (J,) ints with -1 (or any
    negative) at the root, e.g. ``bm.kintree_table[0].long()``; every parent comes before its child.
    Returns global rotations (B, J, 3, 3).
    """
    parents = [int(p) for p in (kintree.tolist() if hasattr(kintree, "tolist") else kintree)]
    B = local_pose.shape[0]
    local = local_pose.reshape(B, len(parents), 3, 3)
    tree = KinematicTree([-1] + parents[1:] if parents[0] < 0 else parents)
    zeros = local.new_zeros(B, len(parents), 3)
    return forward_kinematics(local, zeros, tree)[1][..., :3]


def em2euler(em):
    """Exponential map (axis-angle) (..., 3) -> Euler angles (..., 3), rad, static 'sxyz' (transforms3d's
    default: R = Rz Ry Rx). numpy in, numpy out; torch in, torch out."""
    t, back = _as_torch(em)
    return back(matrix_to_euler(axis_angle_to_matrix(t), "sxyz"))


def euler2em(ea):
    """Euler angles (..., 3), rad, static 'sxyz' -> exponential map (axis-angle) (..., 3), angle in [0, pi].
    numpy in, numpy out; torch in, torch out."""
    t, back = _as_torch(ea)
    return back(matrix_to_axis_angle(euler_to_matrix(t, "sxyz")))


def remove_zrot(pose):
    """Zero the 'sxyz' Euler z-angle of the root orientation pose[:3], in place; returns pose."""
    euler = em2euler(pose[:3])
    euler[2] = 0
    pose[:3] = euler2em(euler)
    return pose


def noisy_zrot(rot_in, rng=None):
    """Add one random z-rotation (uniform in [-pi, pi), the same for all rows) to axis-angle rotations.

    rot_in: numpy (3,) or (N, 3). Returns numpy (N, 3) ((1, 3) for a single rotation), as upstream.
    rng: a numpy Generator; None draws from numpy's global generator (without reseeding it).
    """
    rot = np.asarray(rot_in, dtype=np.float64)
    rot = rot[np.newaxis] if rot.ndim == 1 else rot
    angle = (rng.uniform(-np.pi, np.pi) if rng is not None else np.random.uniform(-np.pi, np.pi))
    euler = em2euler(rot)
    euler[:, 2] += angle
    return euler2em(euler)


def rotate_points_xyz(mesh_v, Rxyz):
    """Rotate each frame's points by its Euler angles in DEGREES, about x, then y, then z (fixed axes).

    mesh_v (N, V, 3), Rxyz (N, 3) -> (N, V, 3). numpy in, numpy out; torch in, torch out.
    """
    v, back = _as_torch(mesh_v)
    angles = torch.as_tensor(np.asarray(Rxyz, dtype=np.float64) if not isinstance(Rxyz, torch.Tensor) else Rxyz).to(v)
    R = euler_to_matrix(torch.deg2rad(angles), "sxyz")
    return back(v @ R.transpose(-1, -2))


def tmat(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Homogeneous transforms from rotations R (N, 3, 3) and translations t (N, 3, 1) or (N, 3) -> (N, 4, 4)."""
    t = t.reshape(R.shape[:-2] + (3, 1))
    top = torch.cat([R, t], dim=-1)
    bottom = F.pad(torch.zeros_like(t[..., :1, :]).expand(R.shape[:-2] + (1, 3)), [0, 1], value=1.0)
    return torch.cat([top, bottom], dim=-2)


def batch_rigid_transform(rot_mats: torch.Tensor, joints: torch.Tensor, parents):
    """Forward kinematics with upstream's outputs.

    rot_mats (B, J, 3, 3) local rotations; joints (B, J, 3) rest joints; parents (J,) with the root's < 0.
    Returns posed joints (B, J, 3) and the skinning transforms (B, J, 4, 4) that map rest-pose points
    to posed points.
    """
    parents = [int(p) for p in (parents.tolist() if hasattr(parents, "tolist") else parents)]
    tree = KinematicTree([-1] + parents[1:])
    posed, transforms = forward_kinematics(rot_mats, joints, tree)
    return posed, tmat(transforms[..., :3], transforms[..., 3])
