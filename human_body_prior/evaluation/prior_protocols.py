"""The pose-prior protocols: generation, reconstruction, completion, denoising and partial fitting.

Every protocol poses bodies on one body model at zero shape (the shipped open SMPL-X neutral by
default) and takes a compared prior (evaluation/compared_priors.py). Fitting goes through the fitting
engine (human_body_prior.fitting): the same stages, optimiser and iteration budget for every prior;
only the prior term differs.

Shapes: pose_body (N, 63) axis-angle (rad); root_orient (N, 3); joints (N, 22, 3) metres.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from human_body_prior.evaluation.prior_metrics import (
    apd,
    frechet_distance,
    gaussian_stats,
    nearest_neighbour_distance,
    prdc,
)
from human_body_prior.fitting import BodyFitter, JointTargets3D
from human_body_prior.fitting.batched_lbfgs import batched_lbfgs
from human_body_prior.fitting.heldout import corrupt_joints
from human_body_prior.fitting.joints_model import PosedJoints
from human_body_prior.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
)
from human_body_prior.model_types.joints import (
    BODY_JOINT_NAMES,
    NUM_BODY_JOINTS,
    NUM_POSE_BODY_JOINTS,
)

POSE_WIDTH = 3 * NUM_POSE_BODY_JOINTS  # pose_body values
# Occlusion sets (body joints whose rotations are hidden). Legs and arms as in DPoser's code; the
# issue's "trunk and head" hides the spine, the neck and the head.
OCCLUSIONS = {
    "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
    "left_arm": ("left_collar", "left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_collar", "right_shoulder", "right_elbow", "right_wrist"),
    "legs": ("left_hip", "left_knee", "left_ankle", "left_foot",
             "right_hip", "right_knee", "right_ankle", "right_foot"),
    "trunk_head": ("spine1", "spine2", "spine3", "neck", "head"),
}
# Completion of a latent prior: weight of |z|^2 against the squared Frobenius distance of the decoded
# observed rotations to the observed ones (summed over joints); the full run's choice on vald for the
# shipped VPoser v1 (docs/PRIORS.md).
LATENT_COMPLETION_WEIGHT = 1e-1


@dataclass
class BenchData:
    """The body model and the pose sets every protocol uses.

    bm: BodyModel; train (M, 63) training poses; test (N, 63) held-out poses with test_root (N, 3)
    their real root orientations; vald / vald_root optional (weight tuning).
    """
    bm: object
    train: torch.Tensor
    test: torch.Tensor
    test_root: torch.Tensor
    vald: torch.Tensor = None
    vald_root: torch.Tensor = None

    def __post_init__(self):
        self.joints_model = PosedJoints(self.bm)
        self._cache = {}

    @property
    def dtype(self):
        return self.joints_model.dtype

    def joints(self, pose_body, root_orient=None, batch=4096) -> torch.Tensor:
        """Posed body joints (N, 22, 3) at zero shape and translation (root at the identity when
        root_orient is None)."""
        pose_body = torch.as_tensor(pose_body).to(self.dtype)
        out = []
        with torch.no_grad():
            for s in range(0, len(pose_body), batch):
                pb = pose_body[s:s + batch]
                ro = pb.new_zeros(len(pb), 3) if root_orient is None else torch.as_tensor(root_orient[s:s + batch]).to(pb)
                out.append(self.joints_model(ro, pb, pb.new_zeros(len(pb), 3), pb.new_zeros(1, self.joints_model.num_betas),
                                             NUM_BODY_JOINTS))
        return torch.cat(out)

    def vertices(self, pose_body, root_orient=None, batch=256) -> torch.Tensor:
        """Posed mesh vertices (N, V, 3) at zero shape and translation."""
        pose_body = torch.as_tensor(pose_body).to(self.dtype)
        out = []
        with torch.no_grad():
            for s in range(0, len(pose_body), batch):
                pb = pose_body[s:s + batch]
                kw = {} if root_orient is None else {"root_orient": torch.as_tensor(root_orient[s:s + batch]).to(pb)}
                out.append(self.bm(pose_body=pb, **kw).v)
        return torch.cat(out)

    def cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _sem(x: np.ndarray) -> float:
    """Standard error of the mean over frames."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def _mean_std(rows: list) -> tuple:
    keys = rows[0].keys()
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    std = {k: float(np.std([r[k] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for k in keys}
    return mean, std


# ---------------------------------------------------------------------- generation
def score_samples(data: BenchData, samples: torch.Tensor, seed: int, reference: str = "test", k: int = 3) -> dict:
    """Generation metrics of pose samples (n, 63) against the held-out poses ('test') or, for the
    real-data row, against the training poses ('train'). dNN is always against the training poses."""
    ref = data.test if reference == "test" else data.train
    n = len(samples)
    ref_stats = data.cached(("stats", reference), lambda: (gaussian_stats(ref), gaussian_stats(
        data.joints(ref).reshape(len(ref), -1))))
    j = data.joints(samples)
    pick = np.random.default_rng(10_000 + seed).choice(len(ref), size=min(n, len(ref)), replace=False)
    ref_j = data.joints(ref[np.sort(pick)])
    pr = prdc(ref_j.reshape(len(ref_j), -1), j.reshape(n, -1), k=k)
    return {"apd_cm": apd(j) * 100.0,
            "fid_aa": frechet_distance(*ref_stats[0], *gaussian_stats(samples)),
            "fid_joints": frechet_distance(*ref_stats[1], *gaussian_stats(j.reshape(n, -1))),
            "precision": pr["precision"], "recall": pr["recall"],
            "dnn_rad": float(nearest_neighbour_distance(samples, data.train).mean())}


def generation(data: BenchData, prior, seeds=(0, 1, 2), num_samples: int = 500) -> dict:
    """Sample num_samples poses per seed; mean and spread (std over seeds) of every metric."""
    rows, sample_time = [], 0.0
    for seed in seeds:
        t0 = time.perf_counter()
        samples = prior.sample(num_samples, seed=seed)
        sample_time += time.perf_counter() - t0
        rows.append(score_samples(data, samples.to(torch.float64), seed))
    mean, std = _mean_std(rows)
    return {"mean": mean, "std": std, "per_seed": rows, "seeds": list(seeds), "num_samples": num_samples,
            "seconds_per_sample": sample_time / (len(seeds) * num_samples)}


def generation_real(data: BenchData, seeds=(0, 1, 2), num_samples: int = 500) -> dict:
    """The real-data row: held-out poses scored against the training poses the same way."""
    rows = []
    for seed in seeds:
        pick = np.random.default_rng(seed).choice(len(data.test), size=min(num_samples, len(data.test)), replace=False)
        rows.append(score_samples(data, data.test[np.sort(pick)].to(torch.float64), seed, reference="train"))
    mean, std = _mean_std(rows)
    return {"mean": mean, "std": std, "per_seed": rows, "seeds": list(seeds), "num_samples": num_samples}


# ---------------------------------------------------------------------- reconstruction
WITHIN_MM = 25.0  # a reconstructed frame counts as close when its mean joint error is at most this


def frame_joint_errors_mm(data: BenchData, pose_a: torch.Tensor, pose_b: torch.Tensor) -> np.ndarray:
    """Mean distance (mm) of body joints 1..21 per frame between two pose sets (N, 63), root at zero."""
    d = (data.joints(pose_a) - data.joints(pose_b))[:, 1:].norm(dim=-1).mean(-1)
    return d.to(torch.float64).numpy() * 1000.0


def per_take_summary(frame_mm: np.ndarray, take_index: np.ndarray, within_mm: float = WITHIN_MM) -> dict:
    """Frame errors (N,) of takes numbered by take_index (N,) -> median over takes of the per-take mean,
    mean over frames, share of frames within within_mm, and the per-take means (in take order)."""
    takes = np.unique(take_index)
    per_take = np.array([frame_mm[take_index == k].mean() for k in takes])
    return {"median_take_mm": float(np.median(per_take)), "mean_frame_mm": float(frame_mm.mean()),
            "share_within": float((frame_mm <= within_mm).mean()), "within_mm": within_mm,
            "frames": int(len(frame_mm)), "takes": int(len(takes)), "per_take_mm": per_take.tolist()}


def reconstruction(data: BenchData, prior, take_index: np.ndarray, batch: int = 1024,
                   within_mm: float = WITHIN_MM) -> dict:
    """Encode -> decode (posterior mean) of every data.test pose with a latent prior; per_take_summary of
    the per-frame joint errors (take_index (N,) numbers each test pose's take)."""
    out = []
    for s in range(0, len(data.test), batch):
        pose = data.test[s:s + batch]
        rec = matrix_to_axis_angle(prior.reconstruct(pose)).reshape(len(pose), POSE_WIDTH)
        out.append(frame_joint_errors_mm(data, rec, pose))
    return per_take_summary(np.concatenate(out), np.asarray(take_index), within_mm)


# ---------------------------------------------------------------------- completion
def joint_ids(names) -> list:
    """Body joint names -> indices in the 22 body joints (pelvis = 0)."""
    return [BODY_JOINT_NAMES.index(n) for n in names]


def part_vertices(bm, names) -> np.ndarray:
    """Vertices of a body part: those whose largest skinning weight belongs to one of the named body
    joints or to a non-body descendant of one (fingers of a wrist, jaw and eyes of the head)."""
    parents = list(bm.parents)
    owners = set(joint_ids(names))
    for j in range(NUM_BODY_JOINTS, len(parents)):
        a = j
        while a >= NUM_BODY_JOINTS:
            a = parents[a]
        if a in owners:
            owners.add(j)
    dominant = bm.weights.argmax(1).cpu().numpy()
    return np.flatnonzero(np.isin(dominant, sorted(owners)))


def complete(data: BenchData, prior, observed: torch.Tensor, occluded: list, hypotheses: int, seed: int,
             iterations: int = 80, latent_weight: float = LATENT_COMPLETION_WEIGHT) -> torch.Tensor:
    """Complete poses whose occluded joints' rotations are hidden.

    observed (F, 63): poses (the occluded joints' numbers are ignored); occluded: body joint indices
    (1..21). Returns (F, hypotheses, 63): the observed joints exactly as given, the occluded ones
    optimised from noise under the prior with the fitting engine's per-frame L-BFGS (iterations).
    Pose priors: the occluded numbers start from Gaussian noise with the per-number std of the
    training poses, and minimise the prior's energy of the whole pose. Latent priors: the code starts
    from N(0, I) and minimises the squared distance of the decoded observed rotations to the
    observed ones + latent_weight |z|^2; the occluded rotations are the decoded ones.
    """
    F, S = observed.shape[0], int(hypotheses)
    dt = data.dtype
    rng = np.random.default_rng(seed)
    obs = observed.to(dt).repeat_interleave(S, 0)  # (F S, 63)
    cols = torch.as_tensor([3 * (j - 1) + c for j in occluded for c in range(3)], dtype=torch.long)
    keep = torch.ones(POSE_WIDTH, dtype=torch.bool)
    keep[cols] = False
    if prior.kind == "latent":
        z0 = torch.as_tensor(rng.standard_normal((F * S, prior.latentD)), dtype=dt)
        R_obs = axis_angle_to_matrix(obs.reshape(-1, NUM_POSE_BODY_JOINTS, 3))
        seen = keep.reshape(NUM_POSE_BODY_JOINTS, 3)[:, 0]
        prior.model.to(dt)

        def loss(z):
            R = prior.decode_rotations(z)
            return ((R - R_obs)[:, seen] ** 2).sum((1, 2, 3)) + latent_weight * (z * z).sum(-1)

        z, _ = batched_lbfgs(loss, z0, max_iter=iterations)
        with torch.no_grad():
            decoded = matrix_to_axis_angle(prior.decode_rotations(z)).reshape(F * S, POSE_WIDTH)
        out = torch.where(keep, obs, decoded)
    else:
        scale = data.cached("train_std", lambda: data.train.to(torch.float64).std(0))
        x0 = torch.as_tensor(rng.standard_normal((F * S, len(cols))), dtype=dt) * scale[cols].to(dt)

        def full(x):
            pose = obs.clone()
            pose[:, cols] = x
            return pose

        def loss(x):
            return prior.energy(full(x))

        x, _ = batched_lbfgs(loss, x0, max_iter=iterations)  # no prior: zero gradient, x stays x0
        out = full(x.detach())
    return out.reshape(F, S, POSE_WIDTH)


def completion(data: BenchData, prior, frames: np.ndarray, parts=tuple(OCCLUSIONS), hypotheses: int = 10,
               seed: int = 0, iterations: int = 80, latent_weight: float = LATENT_COMPLETION_WEIGHT,
               split: str = "test") -> dict:
    """Per occlusion set: min and mean (over the hypotheses) MPVPE (mm) over the occluded part's
    vertices, averaged over frames, and the APD (cm, 22 joints) across each frame's hypotheses."""
    gt = (data.test if split == "test" else data.vald)[frames].to(data.dtype)
    gt_v = data.vertices(gt)
    res = {}
    for p_i, part in enumerate(parts):
        occ = joint_ids(OCCLUSIONS[part])
        verts = torch.as_tensor(part_vertices(data.bm, OCCLUSIONS[part]))
        t0 = time.perf_counter()
        hyp = complete(data, prior, gt, occ, hypotheses, seed=seed * 100 + p_i, iterations=iterations,
                       latent_weight=latent_weight)
        seconds = time.perf_counter() - t0
        F, S = hyp.shape[:2]
        v = data.vertices(hyp.reshape(F * S, POSE_WIDTH)).reshape(F, S, -1, 3)
        err = (v[:, :, verts] - gt_v[:, None, verts]).norm(dim=-1).mean(-1) * 1000.0  # (F, S) mm
        j = data.joints(hyp.reshape(F * S, POSE_WIDTH)).reshape(F, S, NUM_BODY_JOINTS, 3)
        apds = [apd(j[f]) * 100.0 for f in range(F)] if S > 1 else [0.0]
        best = err.min(1).values
        res[part] = {"mpvpe_min_mm": float(best.mean()), "mpvpe_mean_mm": float(err.mean()),
                     "mpvpe_min_sem_mm": _sem(best.numpy()), "apd_cm": float(np.mean(apds)),
                     "seconds_per_frame": seconds / F}
    return {"parts": res, "frames": int(len(frames)), "hypotheses": int(hypotheses), "iterations": iterations,
            "latent_weight": latent_weight if prior.kind == "latent" else None,
            "mean": {k: float(np.mean([r[k] for r in res.values()])) for k in next(iter(res.values()))
                     if not k.endswith("sem_mm")}}


# ---------------------------------------------------------------------- fitting protocols
def make_fitter(bm, prior, weight: float, stages=None, **options):
    """A BodyFitter that fits with `prior` at `weight` (units of the data term, m^2 per frame);
    stages: the engine's default (None) or a list of fitting.Stage, the same for every prior; options:
    further BodyFitter arguments (e.g. smooth_weight)."""
    if prior.kind == "latent":
        return BodyFitter(bm, pose_prior="vposer", vposer=prior.model, prior_weight=weight, stages=stages,
                          **options)
    if prior.name == "none":
        return BodyFitter(bm, pose_prior="none", stages=stages, **options)
    if prior.name == "l2":
        return BodyFitter(bm, pose_prior="l2", prior_weight=weight, stages=stages, **options)
    return BodyFitter(bm, pose_prior=prior.prior, prior_weight=weight, stages=stages, **options)


def fit_joints(data: BenchData, prior, weight: float, targets: np.ndarray, conf: np.ndarray, batch: int = 256,
               stages=None):
    """Fit joints (N, 22, 3) with confidences (N, 22) -> (fitted joints (N, 22, 3), fitted parameters
    dict of (N, .) tensors, seconds)."""
    fitter = make_fitter(data.bm, prior, weight, stages)
    out, prm = [], []
    t0 = time.perf_counter()
    for s in range(0, len(targets), batch):
        r = fitter.fit(JointTargets3D(targets[s:s + batch], conf[s:s + batch]), write_back=False)
        out.append(r.joints[:, :NUM_BODY_JOINTS])
        prm.append({k: getattr(r, k) for k in ("root_orient", "pose_body", "trans")})
    seconds = time.perf_counter() - t0
    return torch.cat(out), {k: torch.cat([p[k] for p in prm]) for k in prm[0]}, seconds


def fitting_targets(data: BenchData, split: str, frames: np.ndarray, noise_mm: float, missing: float, seed: int):
    """Clean joints (F, 22, 3) of the chosen frames (real root orientations) and corrupted targets."""
    pose, root = (data.test, data.test_root) if split == "test" else (data.vald, data.vald_root)
    truth = data.joints(pose[frames], root[frames]).to(torch.float64).numpy()
    targets, conf = corrupt_joints(truth, noise_mm / 1000.0, missing, seed)
    return truth, targets, conf


def fitting_protocol(data: BenchData, prior, weight: float, frames: np.ndarray, noise_mm: float,
                     missing: float = 0.0, seed: int = 0, split: str = "test", vertices: bool = False,
                     stages=None) -> dict:
    """Fit noisy (and incomplete) joints; errors (mm) against the clean joints.

    noise_mm: Gaussian noise per axis; missing: probability that a joint is unobserved. Returns
    mpjpe_mm (all 22 joints), visible / missing joint errors when some are missing, vertex error
    (mean distance of the fitted to the true mesh) when vertices=True, seconds_per_frame. stages: the
    fitting engine's default when None (2 x 40 L-BFGS iterations; not converged for every frame
    in the axis-angle spaces).
    """
    truth, targets, conf = fitting_targets(data, split, frames, noise_mm, missing, seed)
    fit, params, seconds = fit_joints(data, prior, weight, targets, conf, stages=stages)
    d = np.linalg.norm(fit.to(torch.float64).numpy() - truth, axis=-1) * 1000.0
    res = {"mpjpe_mm": float(d.mean()), "mpjpe_sem_mm": _sem(d.mean(1)), "seconds_per_frame": seconds / len(frames),
           "weight": weight}
    if missing > 0:
        res["visible_mm"] = float(d[conf > 0].mean())
        res["missing_mm"] = float(d[conf == 0].mean())
    if vertices:
        pose = data.test if split == "test" else data.vald
        root = data.test_root if split == "test" else data.vald_root
        total = 0.0
        with torch.no_grad():
            for s in range(0, len(frames), 256):
                sl = slice(s, s + 256)
                tv = data.bm(root_orient=root[frames[sl]].to(data.dtype), pose_body=pose[frames[sl]].to(data.dtype)).v
                fv = data.bm(**{k: v[sl] for k, v in params.items()}).v
                total += float((fv - tv).norm(dim=-1).mean(-1).sum())
        res["vertex_mm"] = total / len(frames) * 1000.0
    return res


def tune_weight(data: BenchData, prior, grid, frames: np.ndarray, noise_mm: float, missing: float = 0.0,
                seed: int = 1) -> tuple:
    """The grid weight with the lowest joint error on the vald split -> (weight, {weight: mm})."""
    scores = {w: fitting_protocol(data, prior, w, frames, noise_mm, missing, seed, split="vald")["mpjpe_mm"]
              for w in grid}
    return min(scores, key=scores.get), scores


def _second_difference(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) positions of consecutive frames -> (T - 2, J, 3) accelerations (per frame^2)."""
    return joints[:-2] - 2 * joints[1:-1] + joints[2:]


def clip_denoising(data: BenchData, prior, weight: float, clips: list, noise_mm: float, smooth_weight: float,
                   seed: int = 0) -> dict:
    """Fit noisy joints of whole clips; errors against the clean joints.

    clips: [(pose_body (T, 63), root_orient (T, 3))] consecutive frames of real motion. Each clip is one
    batch: per-frame stages, then (smooth_weight > 0) the engine's whole-clip refinement with the
    acceleration term. Returns mpjpe_mm, accel_error_mm (mean over interior frames and joints of
    |a_fit - a_true|, a the second difference of joint positions, mm per frame^2), seconds_per_frame.
    """
    fitter = make_fitter(data.bm, prior, weight, smooth_weight=smooth_weight)
    errors, accel, frames, seconds = [], [], 0, 0.0  # errors, accel: per clip, per frame
    for k, (pose, root) in enumerate(clips):
        truth = data.joints(pose, root).to(torch.float64).numpy()
        targets, conf = corrupt_joints(truth, noise_mm / 1000.0, 0.0, seed + k)
        t0 = time.perf_counter()
        fit = fitter.fit(JointTargets3D(targets, conf), write_back=False).joints[:, :NUM_BODY_JOINTS]
        seconds += time.perf_counter() - t0
        fit = fit.to(torch.float64).numpy()
        errors.append(np.linalg.norm(fit - truth, axis=-1).mean(1))
        accel.append(np.linalg.norm(_second_difference(fit) - _second_difference(truth), axis=-1).mean(1))
        frames += len(truth)
    clip_means = np.array([e.mean() for e in errors]) * 1000.0  # frames of a clip are not independent
    return {"mpjpe_mm": float(np.concatenate(errors).mean() * 1000.0), "mpjpe_sem_mm": _sem(clip_means),
            "accel_error_mm": float(np.concatenate(accel).mean() * 1000.0), "seconds_per_frame": seconds / frames,
            "weight": weight, "smooth_weight": smooth_weight, "clips": len(clips)}
