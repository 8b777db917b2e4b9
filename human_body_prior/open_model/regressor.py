"""Sparse convex joint regressor: each joint as a fixed convex combination of nearby vertices."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def _fibonacci_directions(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * k / n)
    theta = np.pi * (1 + 5 ** 0.5) * k
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def _surrounding_vertices(verts: np.ndarray, joint: np.ndarray, num_nearest: int,
                          num_dirs: int = 32, per_dir: int = 3, cos_min: float = 0.9,
                          max_dist: float = 0.35) -> np.ndarray:
    """Vertices around a joint: its nearest ones plus the nearest few inside cones in
    ``num_dirs`` directions, so that the joint lies inside their convex hull."""
    diff = verts - joint
    dist = np.linalg.norm(diff, axis=1)
    order = np.argsort(dist, kind="stable")
    picked = [order[:num_nearest]]
    unit = diff / np.maximum(dist, 1e-12)[:, None]
    for d in _fibonacci_directions(num_dirs):
        inside = np.flatnonzero((unit @ d > cos_min) & (dist < max_dist))
        if len(inside):
            picked.append(inside[np.argsort(dist[inside], kind="stable")[:per_dir]])
    return np.unique(np.concatenate(picked))


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, vert_mirror: np.ndarray,
                        joint_mirror: np.ndarray, num_candidates: int = 48,
                        sum_weight: float = 1e3) -> np.ndarray:
    """Fit J_regressor (J, V) with non-negative rows summing to one.

    verts (S, V, 3) and joints (S, J, 3): bodies sampled over the shape space (metres).
    Each joint uses the ``num_candidates`` vertices nearest to it on the mean body. Joints on
    the midline use a mirror-symmetric vertex set and weights; a right joint copies its left
    mirror joint's weights onto the mirrored vertices, so the regressor is left/right symmetric.
    """
    s, v, _ = verts.shape
    num_joints = joints.shape[1]
    mean_v = verts.mean(0)
    mean_j = joints.mean(0)
    reg = np.zeros((num_joints, v))
    done = np.zeros(num_joints, dtype=bool)
    for j in range(num_joints):
        m = joint_mirror[j]
        if done[j]:
            continue
        if m != j and mean_j[j, 0] < 0:  # fit the left one (+X), mirror later
            continue
        cand = _surrounding_vertices(mean_v, mean_j[j], num_candidates)
        if m == j:
            cand = np.unique(np.concatenate([cand, vert_mirror[cand]]))
        a = verts[:, cand, :].transpose(0, 2, 1).reshape(3 * s, len(cand))
        b = joints[:, j, :].reshape(3 * s)
        a = np.vstack([a, np.full((1, len(cand)), sum_weight)])
        b = np.concatenate([b, [sum_weight]])
        w, _ = nnls(a, b, maxiter=50 * len(cand))
        w = w / w.sum()
        row = np.zeros(v)
        row[cand] = w
        if m == j:
            row = 0.5 * (row + row[vert_mirror])
            reg[j] = row
            done[j] = True
        else:
            reg[j] = row
            mirrored = np.zeros(v)
            mirrored[vert_mirror] = row
            reg[m] = mirrored
            done[j] = done[m] = True
    return reg


def regressor_error_mm(reg: np.ndarray, verts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(S, J) distance in millimetres between regressed and true joints."""
    pred = np.einsum("jv,svc->sjc", reg, verts)
    return 1000.0 * np.linalg.norm(pred - joints, axis=-1)
