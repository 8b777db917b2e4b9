"""The 6-D rotation representation and geodesic loss under the names human_body_prior 2021 code imports.

Over the geometry core (geometry/rotations.py). Layouts: ``bgs`` reads (B, 3, 2) matrices
whose columns are the two vectors to orthonormalise (the layout of geometry.rotations.cont6d_to_matrix);
``matrot2sixd`` / ``sixd2matrot`` use (N, 6) = first column then second column of R.
"""

import torch
import torch.nn as nn

from human_body_prior.geometry import rotations as rt

REDUCTIONS = ("batchmean", "mean", "sum", "none")


def bgs(d6s: torch.Tensor) -> torch.Tensor:
    """Batched Gram-Schmidt: (B, 3, 2) -> rotation matrices (B, 3, 3) (columns b1, b2, b1 x b2)."""
    if d6s.shape[-2:] != (3, 2):
        raise ValueError(f"bgs expects (B, 3, 2), got {tuple(d6s.shape)}")
    return rt.cont6d_to_matrix(d6s.reshape(d6s.shape[:-2] + (6,)))


def matrot2sixd(pose_matrot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) -> (N, 6): the first column, then the second."""
    if pose_matrot.shape[-2:] != (3, 3):
        raise ValueError(f"matrot2sixd expects (N, 3, 3), got {tuple(pose_matrot.shape)}")
    return torch.cat([pose_matrot[..., :, 0], pose_matrot[..., :, 1]], dim=-1)


def sixd2matrot(pose_6d: torch.Tensor) -> torch.Tensor:
    """(N, 6) (first column, second column) -> rotation matrices (N, 3, 3), orthonormalised by
    Gram-Schmidt (exact rotations come back unchanged; network outputs become rotations)."""
    if pose_6d.shape[-1] != 6:
        raise ValueError(f"sixd2matrot expects (N, 6), got {tuple(pose_6d.shape)}")
    columns = torch.stack([pose_6d[..., :3], pose_6d[..., 3:]], dim=-1)  # (N, 3, 2)
    return rt.cont6d_to_matrix(columns.reshape(columns.shape[:-2] + (6,)))


def aa2sixd(pose_aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle (N, 3) -> (N, 6)."""
    return matrot2sixd(rt.axis_angle_to_matrix(pose_aa))


def sixd2aa(pose_6d: torch.Tensor, batch: bool = False) -> torch.Tensor:
    """(N, 6) -> axis-angle (N, 3); with batch=True (B, J, 6) -> (B, J, 3)."""
    out = rt.matrix_to_axis_angle(sixd2matrot(pose_6d.reshape(-1, 6)))
    return out.reshape(pose_6d.shape[:-1] + (3,)) if batch else out


class geodesic_loss_R(nn.Module):
    """Geodesic distance (rad) between batches of rotation matrices (B, 3, 3).

    reduction: 'batchmean' or 'mean' (the mean angle), 'sum', or 'none' (the (B,) angles). Finite in
    value and gradient for every pair, including identical (angle 0) and opposite (angle pi) rotations.
    """

    def __init__(self, reduction: str = "batchmean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    @staticmethod
    def bgdR(m1: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
        """(B, 3, 3), (B, 3, 3) -> (B,) angles of m1 m2^T."""
        return rt.geodesic_angle(m1, m2)

    def forward(self, ypred: torch.Tensor, ytrue: torch.Tensor) -> torch.Tensor:
        if ypred.shape[-2:] != (3, 3) or ytrue.shape[-2:] != (3, 3):
            raise ValueError(f"geodesic_loss_R expects (B, 3, 3) rotation matrices, got "
                             f"{tuple(ypred.shape)} and {tuple(ytrue.shape)}")
        theta = self.bgdR(ypred, ytrue)
        if self.reduction in ("batchmean", "mean"):
            return theta.mean()
        if self.reduction == "sum":
            return theta.sum()
        return theta
