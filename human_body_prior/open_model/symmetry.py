"""Left/right mirror maps of the body mesh and of the SMPL-X joints."""

from __future__ import annotations

import numpy as np

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, mirror_permutation

_FLIP = np.array([-1.0, 1.0, 1.0])


def joint_mirror(names=SMPLX_JOINT_NAMES) -> np.ndarray:
    """(J,) index of each joint's mirror joint (itself for joints on the midline)."""
    return np.asarray(mirror_permutation(names), dtype=np.int64)


def symmetrize_points(x: np.ndarray, mirror: np.ndarray, axis: int = -2) -> np.ndarray:
    """Average points (..., N, 3) with their mirror images; ``mirror`` (N,) permutes N."""
    return 0.5 * (x + np.take(x, mirror, axis=axis) * _FLIP)
