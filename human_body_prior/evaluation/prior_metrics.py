"""Metrics of the published pose-prior protocols (VPoser / GAN-S / Pose-NDF / NRDF / DPoser comparisons).

All functions take tensors (any float dtype and device) and return Python floats or tensors:

- :func:`apd`: average pairwise distance of a set of posed bodies (diversity).
- :func:`frechet_distance`: the Frechet (FID) distance between Gaussians fitted to two feature sets.
- :func:`prdc`: precision, recall, density and coverage with k-nearest-neighbour balls (Naeem et al. 2020).
- :func:`nearest_neighbour_distance`: dNN, the distance of each pose to the closest training pose in
  the summed per-joint quaternion angle 2 acos|<q1, q2>| (Pose-NDF / NRDF).
"""

import torch

from human_body_prior.geometry.rotations import axis_angle_to_quaternion


def apd(joints: torch.Tensor) -> float:
    """Average pairwise distance. joints (N, J, 3) -> mean over the N (N - 1) ordered pairs of
    distinct bodies of the mean per-joint Euclidean distance (units of the input)."""
    if joints.dim() != 3 or joints.shape[0] < 2:
        raise ValueError(f"apd needs (N >= 2, J, 3) joints, got {tuple(joints.shape)}")
    N = joints.shape[0]
    d = (joints.unsqueeze(0) - joints.unsqueeze(1)).norm(dim=-1).mean(-1)  # (N, N), zero diagonal
    return float(d.sum() / (N * (N - 1)))


def gaussian_stats(features: torch.Tensor):
    """features (N, F) -> mean (F,) and unbiased covariance (F, F) in float64."""
    x = features.reshape(features.shape[0], -1).to(torch.float64)
    mu = x.mean(0)
    d = x - mu
    return mu, d.T @ d / max(1, x.shape[0] - 1)


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) for two Gaussians (FID without the Inception net).

    tr (S1 S2)^(1/2) is computed as tr (S1^(1/2) S2 S1^(1/2))^(1/2), which is symmetric positive
    semi-definite, so singular covariances (e.g. a pelvis always at the origin) are fine.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, mu2, cov1, cov2))
    s1 = _sqrtm_psd(cov1)
    cross = torch.linalg.eigvalsh(s1 @ cov2 @ s1).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2.0 * cross)


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to real (N, ...) and fake (M, ...) feature sets."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


def _kth_nn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # the 0 to itself is the first


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict:
    """Precision, recall, density, coverage of fake (M, ...) against real (N, ...) features.

    Each real (fake) sample's ball has the radius of its k-th nearest other real (fake) sample.
    precision: share of fake samples inside at least one real ball; recall: share of real samples
    inside at least one fake ball; density: mean number of real balls containing a fake sample, / k;
    coverage: share of real balls that contain at least one fake sample. Strict inequalities.
    """
    r = real.reshape(real.shape[0], -1).to(torch.float64)
    f = fake.reshape(fake.shape[0], -1).to(torch.float64)
    if min(len(r), len(f)) <= k:
        raise ValueError(f"prdc with k={k} needs more than k samples in each set, got {len(r)} and {len(f)}")
    r_rad, f_rad = _kth_nn_radius(r, k), _kth_nn_radius(f, k)
    d = torch.cdist(r, f)  # (N, M)
    inside_real = d < r_rad.unsqueeze(1)
    return {"precision": float(inside_real.any(0).double().mean()),
            "recall": float((d < f_rad.unsqueeze(0)).any(1).double().mean()),
            "density": float(inside_real.double().sum(0).mean() / k),
            "coverage": float((d.min(1).values < r_rad).double().mean())}


def pose_quaternions(pose: torch.Tensor) -> torch.Tensor:
    """Axis-angle poses (N, J * 3) -> unit quaternions (N, J, 4)."""
    return axis_angle_to_quaternion(pose.reshape(pose.shape[0], -1, 3))


def quaternion_pose_distance(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Summed per-joint angle between rotations: sum_j 2 acos |<q1_j, q2_j>| (rad). q (..., J, 4)."""
    # 2 acos|<q1, q2>| = 4 atan2(|q1 - s q2|, |q1 + s q2|) with s = sign<q1, q2>: accurate near 0
    s = torch.where((q1 * q2).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(q1)
    return 4.0 * torch.atan2((q1 - s * q2).norm(dim=-1), (q1 + s * q2).norm(dim=-1)).sum(-1)


def nearest_neighbour_distance(pose: torch.Tensor, train_pose: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """dNN per pose: min over training poses of the summed per-joint quaternion angle (rad).

    pose (N, J*3), train_pose (M, J*3) axis-angle -> (N,) float64. Brute force over all M training
    poses in float32 (chunks of ``chunk`` poses); the distance to the nearest one found is then
    recomputed in float64.
    """
    q = pose_quaternions(pose.to(torch.float64))
    qt = pose_quaternions(train_pose.to(torch.float64))
    q32, qt32 = q.float(), qt.float()
    J = q.shape[1]
    nearest = []
    for s in range(0, q.shape[0], chunk):
        qc = q32[s:s + chunk]
        total = torch.zeros(qc.shape[0], qt.shape[0], dtype=torch.float32, device=q.device)
        for j in range(J):
            total.add_((qc[:, j] @ qt32[:, j].T).abs_().clamp_(max=1.0).acos_())
        nearest.append(total.argmin(1))
    return quaternion_pose_distance(q, qt[torch.cat(nearest)])
