"""A Gaussian mixture prior over body poses with the SMPLify max-mixture energy (Bogo et al., ECCV 2016).

The mixture has K full-covariance components over the 63 axis-angle numbers of ``pose_body``
(21 body joints, radians). SMPLify replaces the mixture's negative log-likelihood by that of its best
component, which is cheap and has simple gradients::

    E(x) = min_k [ 0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k) + 0.5 log det(2 pi Sigma_k) - log w_k ]

(= -log max_k w_k N(x; mu_k, Sigma_k) exactly, so E is in nats and comparable across mixtures).

The shipped mixture (``support_data/gmm_prior/gmm_08.npz``, K = 8 as in SMPLify) was fitted by
:func:`fit_gmm` on the training poses of the shipped data split; the command that made it::

    python -m human_body_prior.priors.gmm --train DATA/train --jitter-deg 5 \
        --out support_data/gmm_prior/gmm_08.npz

(DATA: the ``--out-dir`` of ``python -m human_body_prior.data.prepare_open_mocap``.)

File format (``.npz``, no pickles): ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D),
float64.
"""

import math
import sys
from pathlib import Path

import numpy as np
import torch

from human_body_prior import cli
from human_body_prior.files.atomic_io import save_npz_atomic
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.augmentation import jitter_poses
from human_body_prior.priors.interface import no_latent

POSE_DIM = 3 * NUM_POSE_BODY_JOINTS  # pose_body values


def default_gmm_path() -> str:
    """The shipped 8-component mixture fitted on the training poses."""
    from human_body_prior.support_paths import support_data_dir

    return str(support_data_dir() / "gmm_prior" / "gmm_08.npz")


class GMMPosePrior:
    """Gaussian mixture over pose vectors (D = 63 for pose_body) with the max-mixture energy.

    weights (K,) summing to 1, means (K, D), covariances (K, D, D) symmetric positive definite.
    Tensors live on ``device`` in ``dtype``; ``to()`` returns a copy elsewhere. A
    :class:`~human_body_prior.priors.PosePrior` without a latent space (``latentD`` is None).
    """

    latentD = None

    def __init__(self, weights, means, covariances, device="cpu", dtype=torch.float32):
        w = np.asarray(weights, dtype=np.float64)
        mu = np.asarray(means, dtype=np.float64)
        cov = np.asarray(covariances, dtype=np.float64)
        if w.ndim != 1 or mu.ndim != 2 or cov.ndim != 3 or mu.shape[0] != w.shape[0] \
                or cov.shape != (w.shape[0], mu.shape[1], mu.shape[1]):
            raise ValueError(f"a GMM needs weights (K,), means (K, D), covariances (K, D, D); got "
                             f"{w.shape}, {mu.shape}, {cov.shape}")
        if not (np.isfinite(w).all() and np.isfinite(mu).all() and np.isfinite(cov).all()):
            raise ValueError("GMM parameters contain NaN or inf")
        if (w <= 0).any() or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(f"GMM weights must be positive and sum to 1, got {w}")
        chol = np.linalg.cholesky(0.5 * (cov + cov.transpose(0, 2, 1)))  # raises if not positive definite
        D = mu.shape[1]
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
        self.weights_np, self.means_np, self.covariances_np = w, mu, cov
        self.num_components, self.dim = w.shape[0], D
        self.num_joints = D // 3
        # per component: 0.5 log det(2 pi Sigma_k) - log w_k
        const = 0.5 * (logdet + D * math.log(2.0 * math.pi)) - np.log(w)
        self._np = dict(precisions=np.linalg.inv(cov), chol=chol, const=const)
        self.device, self.dtype = torch.device(device), dtype
        self.means = torch.as_tensor(mu, dtype=dtype, device=self.device)
        self.precisions = torch.as_tensor(self._np["precisions"], dtype=dtype, device=self.device)
        self.chol = torch.as_tensor(chol, dtype=dtype, device=self.device)
        self.const = torch.as_tensor(const, dtype=dtype, device=self.device)

    def to(self, device=None, dtype=None) -> "GMMPosePrior":
        return GMMPosePrior(self.weights_np, self.means_np, self.covariances_np,
                            device=device or self.device, dtype=dtype or self.dtype)

    # ------------------------------------------------------------------ energy
    def component_energies(self, pose: torch.Tensor) -> torch.Tensor:
        """pose (B, D) -> (B, K): 0.5 Mahalanobis^2 + 0.5 log det(2 pi Sigma_k) - log w_k per component."""
        if pose.dim() != 2 or pose.shape[1] != self.dim:
            raise ValueError(f"pose must have shape (B, {self.dim}), got {tuple(pose.shape)}")
        d = pose.unsqueeze(1) - self.means.to(pose)  # (B, K, D)
        maha = torch.einsum("bki,kij,bkj->bk", d, self.precisions.to(pose), d)
        return 0.5 * maha + self.const.to(pose)

    def energy(self, pose: torch.Tensor) -> torch.Tensor:
        """SMPLify max-mixture energy, pose (B, D) axis-angle (rad) -> (B,) in nats (differentiable)."""
        return self.component_energies(pose).min(dim=1).values

    def log_likelihood(self, pose: torch.Tensor) -> torch.Tensor:
        """The full mixture's log density (B,) (log-sum-exp over components), for reference."""
        return torch.logsumexp(-self.component_energies(pose), dim=1)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n poses (n, D) drawn from the mixture with a private generator seeded by ``seed``."""
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.num_components, size=int(n), p=self.weights_np)
        eps = rng.standard_normal((int(n), self.dim))
        x = self.means_np[comp] + np.einsum("nij,nj->ni", self._np["chol"][comp], eps)
        return torch.as_tensor(x, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ no latent space
    def encode_pose(self, pose_body):
        raise no_latent(self, "encode_pose")

    def decode_pose(self, z):
        raise no_latent(self, "decode_pose")

    def decode_rotations(self, z):
        raise no_latent(self, "decode_rotations")

    # ------------------------------------------------------------------ files
    def save(self, path) -> str:
        return save_npz_atomic(str(path), {"weights": self.weights_np, "means": self.means_np,
                                           "covariances": self.covariances_np})

    @classmethod
    def load(cls, path=None, device="cpu", dtype=torch.float32) -> "GMMPosePrior":
        """Read a mixture written by save() (default: the shipped one). Never unpickles."""
        path = Path(path or default_gmm_path())
        if not path.is_file():
            raise FileNotFoundError(f"no GMM prior file at {path}")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("weights", "means", "covariances") if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing key(s) {missing}; expected weights (K,), means (K, D), "
                                 f"covariances (K, D, D)")
            arrays = {k: f[k] for k in ("weights", "means", "covariances")}
        try:
            return cls(**arrays, device=device, dtype=dtype)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


# ---------------------------------------------------------------------- fitting (EM)
def _log_gauss(x, means, covs):
    """x (N, D) -> (N, K) log N(x; mu_k, Sigma_k)."""
    N, D = x.shape
    out = np.empty((N, means.shape[0]))
    for k in range(means.shape[0]):
        L = np.linalg.cholesky(covs[k])
        z = np.linalg.solve(L, (x - means[k]).T)  # (D, N)
        out[:, k] = -0.5 * (z * z).sum(0) - np.log(np.diag(L)).sum() - 0.5 * D * math.log(2 * math.pi)
    return out


def fit_gmm(poses, num_components: int = 8, iterations: int = 100, seed: int = 0, reg: float = 1e-4,
            tol: float = 1e-6, verbose: bool = False) -> GMMPosePrior:
    """Fit a full-covariance Gaussian mixture to poses (N, D) by expectation-maximisation.

    Initialisation: k-means++ centres (seeded), then 10 k-means steps; reg is added to every
    covariance's diagonal (rad^2) to keep it positive definite. Stops after ``iterations`` EM steps or
    when the mean log-likelihood improves by less than ``tol``.
    """
    x = np.asarray(poses, dtype=np.float64)
    if x.ndim != 2 or len(x) < num_components:
        raise ValueError(f"poses must be (N, D) with N >= {num_components}, got {x.shape}")
    rng = np.random.default_rng(seed)
    N, D = x.shape
    # k-means++
    centres = [x[rng.integers(N)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, num_components):
        centres.append(x[rng.choice(N, p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    centres = np.stack(centres)
    for _ in range(10):
        lab = (((x[:, None] - centres[None]) ** 2).sum(-1)).argmin(1)
        centres = np.stack([x[lab == k].mean(0) if (lab == k).any() else centres[k] for k in range(num_components)])
    resp = np.zeros((N, num_components))
    resp[np.arange(N), lab] = 1.0
    prev = -np.inf
    for it in range(int(iterations)):
        # M step
        nk = resp.sum(0) + 1e-12
        weights = nk / N
        means = (resp.T @ x) / nk[:, None]
        covs = np.empty((num_components, D, D))
        for k in range(num_components):
            d = x - means[k]
            covs[k] = (resp[:, k, None] * d).T @ d / nk[k] + reg * np.eye(D)
        # E step
        logp = _log_gauss(x, means, covs) + np.log(weights)
        mx = logp.max(1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(logp - mx).sum(1))
        resp = np.exp(logp - lse[:, None])
        ll = float(lse.mean())
        if verbose:
            print(f"EM {it + 1}: mean log-likelihood {ll:.4f}", flush=True)
        if ll - prev < tol:
            break
        prev = ll
    return GMMPosePrior(weights, means, covs, dtype=torch.float64)


def _training_poses(folder) -> np.ndarray:
    """pose.pt (N, 63) of a prepared data split folder (read with weights_only=True)."""
    path = Path(folder) / "pose.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no pose.pt in {folder} (expected a prepared split folder, e.g. vposer_data/train)")
    pose = torch.load(path, map_location="cpu", weights_only=True)
    pose = np.asarray(pose, dtype=np.float64).reshape(len(pose), -1)
    if pose.shape[1] != POSE_DIM:
        raise ValueError(f"{path}: expected (N, {POSE_DIM}) body poses, got {pose.shape}")
    return pose


def main(argv=None):
    ap = cli.ArgumentParser(prog="python -m human_body_prior.priors.gmm",
                                 description="Fit the max-mixture GMM pose prior on training poses.")
    ap.add_argument("--train", required=True, help="training split folder with pose.pt (N, 63)")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--components", type=cli.positive_int, default=8)
    ap.add_argument("--iterations", type=cli.positive_int, default=100)
    ap.add_argument("--seed", type=cli.seed, default=0)
    ap.add_argument("--jitter-deg", type=cli.nonnegative_float, default=0.0,
                    help="fit on one copy of the poses with every joint turned by N(0, sigma^2 I) rotation "
                         "vectors, sigma in degrees (priors/augmentation.py, seeded by --seed; default 0: off)")
    args = ap.parse_args(argv)
    poses = _training_poses(args.train)
    if args.jitter_deg > 0:
        gen = torch.Generator().manual_seed(args.seed)
        poses = jitter_poses(torch.from_numpy(poses).reshape(len(poses), -1, 3), args.jitter_deg, gen)
        poses = poses.reshape(len(poses), -1).numpy()
    try:
        gmm = fit_gmm(poses, args.components, args.iterations, args.seed, verbose=True)
    except np.linalg.LinAlgError as exc:  # a degenerate fit of these poses: a data problem, not a bug
        raise ValueError(f"GMM fit of {args.train} failed: {exc}") from exc
    gmm.save(args.out)
    e = gmm.energy(torch.as_tensor(poses, dtype=torch.float64))
    print(f"{len(poses)} poses, K={args.components}: mean energy {float(e.mean()):.3f} nats; "
          f"weights {np.round(gmm.weights_np, 3).tolist()} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
