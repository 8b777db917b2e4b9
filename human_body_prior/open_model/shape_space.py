"""Sample MakeHuman bodies in the rest T-pose and reduce them to a PCA shape space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from human_body_prior.open_model.rest_pose import to_rest_pose
from human_body_prior.open_model.symmetry import symmetrize_points

DM_TO_M = 0.1


@dataclass
class RestSamples:
    """T-posed bodies in metres: verts (S, V, 3), joints (S, J, 3)."""

    verts: np.ndarray
    joints: np.ndarray


def rest_bodies(base_verts, displacements, cube_groups, weights, body_count, vert_mirror, joint_mirror):
    """T-pose one body per displacement field (each (N, 3), decimetres, full hm08 mesh).

    cube_groups: list (J) of vertex-index arrays of the joint cubes; weights (V, J) over
    the ``body_count`` first vertices. Results are symmetrised left/right.
    """
    verts, joints = [], []
    for disp in displacements:
        full = base_verts + disp
        j_a = np.stack([full[g].mean(0) for g in cube_groups])
        v_t, j_t = to_rest_pose(full[:body_count], weights, j_a)
        verts.append(v_t * DM_TO_M)
        joints.append(j_t * DM_TO_M)
    verts = symmetrize_points(np.stack(verts), vert_mirror)
    joints = symmetrize_points(np.stack(joints), joint_mirror)
    return RestSamples(verts, joints)


@dataclass
class ShapeSpace:
    """mean (V, 3); dirs (V, 3, K) scaled so that the samples' betas have unit variance;
    joint_mean (J, 3) and joint_dirs (J, 3, K) the least-squares joint counterparts;
    std (K,) standard deviation of each component in metres (RMS over coordinates)."""

    mean: np.ndarray
    dirs: np.ndarray
    joint_mean: np.ndarray
    joint_dirs: np.ndarray
    explained: np.ndarray
    betas: np.ndarray


def fit_pca(samples: RestSamples, num: int) -> ShapeSpace:
    s, v, _ = samples.verts.shape
    x = samples.verts.reshape(s, -1)
    mean = x.mean(0)
    u, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    scale = sv[:num] / np.sqrt(s - 1)
    dirs = vt[:num] * scale[:, None]  # (K, 3V)
    betas = u[:, :num] * np.sqrt(s - 1)  # (S, K), unit variance
    # deterministic signs: component 0 makes the body taller, others have their largest entry positive
    heights = x[:, 1::3].max(1) - x[:, 1::3].min(1)
    for k in range(num):
        if k == 0:
            flip = np.dot(betas[:, 0], heights - heights.mean()) < 0
        else:
            flip = dirs[k][np.argmax(np.abs(dirs[k]))] < 0
        if flip:
            dirs[k] *= -1
            betas[:, k] *= -1
    jx = samples.joints.reshape(s, -1)
    jmean = jx.mean(0)
    jdirs, *_ = np.linalg.lstsq(betas, jx - jmean, rcond=None)
    explained = sv ** 2 / np.sum(sv ** 2)
    j = samples.joints.shape[1]
    return ShapeSpace(mean.reshape(v, 3), dirs.T.reshape(v, 3, num), jmean.reshape(j, 3),
                      jdirs.T.reshape(j, 3, num), explained[:num], betas)
