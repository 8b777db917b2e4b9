"""The prior benchmark: each metric against a hand-computed case, completion, the GMM prior, --quick."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.spatial.transform import Rotation
from scipy.stats import multivariate_normal

import human_body_prior as hbp
from human_body_prior import cli
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.evaluation import prior_benchmark
from human_body_prior.evaluation.compared_priors import GMMPrior, L2Prior, LatentPrior, NoPrior
from human_body_prior.evaluation.prior_metrics import (apd, fid, frechet_distance, nearest_neighbour_distance,
                                                       prdc)
from human_body_prior.evaluation.prior_protocols import (OCCLUSIONS, BenchData, clip_denoising, complete, joint_ids,
                                                         part_vertices)
from human_body_prior.priors.gmm import GMMPosePrior, default_gmm_path, fit_gmm
from human_body_prior.priors.experiment import load_vposer


@pytest.fixture(scope="module")
def data():
    bm = BodyModel(hbp.default_body_model_path()).to(torch.float64)
    d, _ = prior_benchmark.load_data(bm, None)
    return BenchData(bm, d.train.double(), d.test.double(), d.test_root.double())


# ---------------------------------------------------------------------- metrics
def test_apd_of_two_known_poses(data):
    """Rest pose vs the left elbow bent 90 degrees: only the left wrist moves, by sqrt(2) forearm lengths."""
    bent = torch.zeros(1, 63, dtype=torch.float64)
    elbow = joint_ids(["left_elbow"])[0]
    bent[0, 3 * (elbow - 1) + 1] = math.pi / 2  # about the y axis, perpendicular to the forearm
    poses = torch.cat([torch.zeros(1, 63, dtype=torch.float64), bent])
    rest = data.joints(poses[:1])[0]
    wrist = joint_ids(["left_wrist"])[0]
    forearm = (rest[wrist] - rest[elbow]).norm()
    along_y = abs(float((rest[wrist] - rest[elbow])[1]))
    assert along_y < 0.1 * float(forearm)  # the rest forearm is (nearly) perpendicular to y
    # distance moved: chord of the rotation of the forearm's component perpendicular to y
    perp = float((rest[wrist] - rest[elbow])[[0, 2]].norm())
    expected = math.sqrt(2.0) * perp / 22.0
    assert apd(data.joints(poses)) == pytest.approx(expected, rel=1e-9)


def test_apd_hand_computed_three_bodies():
    j = torch.zeros(3, 2, 3, dtype=torch.float64)
    j[1, :, 0] = 1.0            # body 1: both joints moved by 1
    j[2, 0, 1] = 2.0            # body 2: first joint moved by 2
    # pair distances (mean over 2 joints): d01 = 1, d02 = 1, d12 = (sqrt(5) + 1) / 2
    expected = (1 + 1 + (math.sqrt(5) + 1) / 2) / 3
    assert apd(j) == pytest.approx(expected, rel=1e-12)


def test_fid_identical_sets_is_zero():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(fid(x, x)) < 1e-9


def test_frechet_distance_known_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 4)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-10)
    # general covariances against scipy's matrix square root
    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    c1, c2 = A @ A.T + 0.1 * np.eye(4), B @ B.T + 0.1 * np.eye(4)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)


def test_prdc_hand_computed_1d():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    fake = torch.tensor([[0.5], [10.0]])
    # real radii (1st neighbour) 1; fake radii 9.5. precision: 0.5 is in real balls, 10 is not -> 1/2;
    # recall: every real point is within 9.5 of 0.5 -> 1; density: 0.5 lies in the balls of 0 and 1 -> (2 + 0) / 2;
    # coverage: the balls of 0 and 1 hold a fake point -> 2/5.
    r = prdc(real, fake, k=1)
    assert r == pytest.approx({"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.4})


def test_prdc_separable_and_identical_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(50, 6, generator=g, dtype=torch.float64)
    far = real + 100.0
    r = prdc(real, far, k=3)
    assert r == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = prdc(real, real.clone(), k=3)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0


def test_dnn_of_training_pose_is_zero_and_rotated_joints_add_up():
    g = torch.Generator().manual_seed(0)
    train = 0.3 * torch.randn(40, 63, generator=g, dtype=torch.float64)
    assert nearest_neighbour_distance(train[[3, 17]], train).abs().max() < 1e-12
    # one training pose; a query with joint 2 turned by 0.2 rad and joint 9 by 0.5 rad more -> 0.7 rad
    base = train[:1]
    query = base.clone().reshape(21, 3).numpy()
    for j, ang in ((2, 0.2), (9, 0.5)):
        axis = np.array([0.0, 0.6, 0.8])
        query[j] = (Rotation.from_rotvec(query[j]) * Rotation.from_rotvec(ang * axis)).as_rotvec()
    d = nearest_neighbour_distance(torch.as_tensor(query.reshape(1, 63)), base)
    assert float(d[0]) == pytest.approx(0.7, abs=1e-9)


# ---------------------------------------------------------------------- GMM prior
def _random_gmm(K=3, D=63, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, K)
    w /= w.sum()
    mu = rng.normal(scale=0.3, size=(K, D))
    cov = []
    for _ in range(K):
        A = rng.normal(scale=0.2, size=(D, D))
        cov.append(A @ A.T / D + 0.05 * np.eye(D))
    return w, mu, np.stack(cov)


def test_gmm_energy_and_gradient_against_numpy():
    w, mu, cov = _random_gmm()
    gmm = GMMPosePrior(w, mu, cov, dtype=torch.float64)
    x = np.random.default_rng(5).normal(scale=0.4, size=(7, 63))
    D = 63
    comp = np.stack([[0.5 * (xi - mu[k]) @ np.linalg.inv(cov[k]) @ (xi - mu[k])
                      + 0.5 * np.linalg.slogdet(2 * np.pi * cov[k])[1] - np.log(w[k]) for k in range(3)] for xi in x])
    best = comp.argmin(1)
    grad = np.stack([np.linalg.solve(cov[k], xi - mu[k]) for xi, k in zip(x, best)])
    xt = torch.as_tensor(x).requires_grad_(True)
    e = gmm.energy(xt)
    e.sum().backward()
    np.testing.assert_allclose(e.detach().numpy(), comp.min(1), rtol=1e-10)
    np.testing.assert_allclose(xt.grad.numpy(), grad, rtol=1e-8, atol=1e-10)
    # energy = -log max_k w_k N(x; mu_k, Sigma_k); the mixture log density against scipy
    logpdf = np.stack([np.log(w[k]) + multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(3)], 1)
    np.testing.assert_allclose(e.detach().numpy(), -logpdf.max(1), rtol=1e-9)
    ref_ll = np.logaddexp.reduce(logpdf, axis=1)
    np.testing.assert_allclose(gmm.log_likelihood(torch.as_tensor(x)).numpy(), ref_ll, rtol=1e-9)
    assert D == gmm.dim


def test_gmm_sampling_is_seeded_and_follows_the_mixture():
    w, mu, cov = _random_gmm(K=2, D=3, seed=2)
    gmm = GMMPosePrior(w, mu, cov, dtype=torch.float64)
    state = torch.random.get_rng_state()
    a, b = gmm.sample(20000, seed=4), gmm.sample(20000, seed=4)
    assert torch.equal(a, b) and torch.equal(state, torch.random.get_rng_state())
    mean = (w[:, None] * mu).sum(0)
    np.testing.assert_allclose(a.mean(0).numpy(), mean, atol=0.03)


def test_fit_gmm_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal([0, 0], 0.1, (3000, 2)), rng.normal([3, 1], 0.3, (1000, 2))])
    g = fit_gmm(x, num_components=2, iterations=50, seed=0, reg=1e-6)
    order = np.argsort(g.means_np[:, 0])
    np.testing.assert_allclose(g.weights_np[order], [0.75, 0.25], atol=0.01)
    np.testing.assert_allclose(g.means_np[order], [[0, 0], [3, 1]], atol=0.03)
    np.testing.assert_allclose(np.sqrt(np.diagonal(g.covariances_np[order], axis1=1, axis2=2)),
                               [[0.1, 0.1], [0.3, 0.3]], rtol=0.1)


def test_gmm_files(tmp_path):
    w, mu, cov = _random_gmm(K=2, D=4, seed=3)
    p = GMMPosePrior(w, mu, cov).save(tmp_path / "g.npz")
    g = GMMPosePrior.load(p, dtype=torch.float64)
    np.testing.assert_array_equal(g.covariances_np, cov)
    np.savez(tmp_path / "bad.npz", weights=w, means=mu)
    with pytest.raises(ValueError, match="covariances"):
        GMMPosePrior.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="sum to 1"):
        GMMPosePrior(w * 2, mu, cov)


def test_shipped_gmm_prefers_real_poses(data):
    gmm = GMMPosePrior.load(default_gmm_path(), dtype=torch.float64)
    assert gmm.num_components == 8 and gmm.dim == 63
    real = gmm.energy(data.test[:500])
    rand = gmm.energy(NoPrior().sample(500, seed=0).double())
    assert float(real.median()) < float(rand.min())


# ---------------------------------------------------------------------- completion
def _priors(data):
    vp, _ = load_vposer(hbp.default_vposer_dir(), verbose=False)
    return [NoPrior(), L2Prior.from_training(data.train), GMMPrior(GMMPosePrior.load(dtype=torch.float64)),
            LatentPrior.from_vposer_v1(vp.double())]


def test_completion_recovers_an_exactly_observed_body(data):
    gt = data.test[:3]
    for prior in _priors(data):
        hyp = complete(data, prior, gt, occluded=[], hypotheses=4, seed=0, iterations=5)
        assert hyp.shape == (3, 4, 63)
        torch.testing.assert_close(hyp, gt[:, None].expand(-1, 4, -1), rtol=0, atol=0)
        err = (data.vertices(hyp.reshape(-1, 63)) - data.vertices(gt).repeat_interleave(4, 0)).norm(dim=-1)
        assert float(err.max()) < 1e-9


def test_completion_keeps_observed_joints_and_solves_the_gaussian_conditional(data):
    """A one-component GMM: the completion of the occluded numbers is the Gaussian conditional mean."""
    rng = np.random.default_rng(0)
    A = rng.normal(scale=0.2, size=(63, 63))
    cov = A @ A.T / 63 + 0.02 * np.eye(63)
    mu = rng.normal(scale=0.2, size=63)
    prior = GMMPrior(GMMPosePrior(np.ones(1), mu[None], cov[None], dtype=torch.float64))
    occ = joint_ids(OCCLUSIONS["left_arm"])
    cols = np.array([3 * (j - 1) + c for j in occ for c in range(3)])
    obs_cols = np.setdiff1d(np.arange(63), cols)
    gt = data.test[:2]
    hyp = complete(data, prior, gt, occ, hypotheses=3, seed=1, iterations=200)
    torch.testing.assert_close(hyp[..., obs_cols], gt[:, None, obs_cols].expand(-1, 3, -1), rtol=0, atol=0)
    x = gt.numpy()
    cond = mu[cols, None] + cov[np.ix_(cols, obs_cols)] @ np.linalg.solve(cov[np.ix_(obs_cols, obs_cols)],
                                                                      (x[:, obs_cols] - mu[obs_cols]).T)
    np.testing.assert_allclose(hyp[..., cols].numpy(), np.repeat(cond.T[:, None], 3, 1), atol=1e-5)


def test_part_vertices_follow_the_skinning(data):
    arm = part_vertices(data.bm, OCCLUSIONS["left_arm"])
    leg = part_vertices(data.bm, OCCLUSIONS["left_leg"])
    assert len(arm) > 100 and len(leg) > 100 and not set(arm) & set(leg)
    # a left-elbow rotation moves arm vertices and leaves the leg's alone
    pose = torch.zeros(2, 63, dtype=torch.float64)
    pose[1, 3 * (joint_ids(["left_elbow"])[0] - 1) + 1] = 1.0
    v = data.vertices(pose)
    moved = np.flatnonzero((v[1] - v[0]).norm(dim=-1).numpy() > 1e-9)
    assert set(moved) <= set(arm)
    assert not set(moved) & set(leg)


# ---------------------------------------------------------------------- the command
def test_quick_run_smoke(tmp_path):
    out = tmp_path / "bench"
    assert prior_benchmark.main(["--quick", "--out", str(out), "--no-pictures"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["generation"]) == {"real", "none", "l2", "gmm", "vposer_v1"}
    for name in ("none", "l2", "gmm", "vposer_v1"):
        assert set(res["completion"][name]["parts"]) == set(OCCLUSIONS)
        for proto in ("denoise_40", "denoise_100", "partial"):
            assert math.isfinite(res["fitting"][proto][name]["mpjpe_mm"])
    # L2 completes every hypothesis to the same (zero) rotations: no diversity
    assert res["completion"]["l2"]["mean"]["apd_cm"] == pytest.approx(0.0, abs=1e-9)
    assert "### Generation" in (out / "tables.md").read_text()
    # tables combining runs: a prior taken from a second run appears once, with its numbers
    other = dict(res, generation={"real": res["generation"]["real"], "extra": res["generation"]["gmm"]}, completion={},
                 fitting={k: {} for k in res["fitting"]})
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert prior_benchmark.main(["--tables-from", str(out / "results.json"), str(tmp_path / "other.json"),
                                 "--out", str(tmp_path / "merged")]) == 0
    merged = (tmp_path / "merged" / "tables.md").read_text()
    gmm_fid = f"{res['generation']['gmm']['mean']['fid_aa']:.3f}"
    assert merged.count("| real |") == 1 and "| extra | " in merged
    with_fid = {line.split("|")[1].strip() for line in merged.splitlines() if gmm_fid in line.split("|")[3:4]
                or f" {gmm_fid} ±" in line}
    assert {"gmm", "extra"} <= with_fid  # the second run's prior carries the gmm numbers it was given


def test_command_errors_are_one_line(capsys):
    assert cli.run(prior_benchmark.main, ["--quick", "--priors", "none,nonsense", "--no-pictures"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonsense" in err[0]


@pytest.mark.render
def test_render_vertices_takes_per_vertex_colours():
    from human_body_prior.mesh.rendering import render_vertices

    # two separate triangles facing the camera: left one red, right one blue
    v = np.array([[-1.0, 0, 0], [-0.2, 0, 0], [-0.6, 0.8, 0], [0.2, 0, 0], [1.0, 0, 0], [0.6, 0.8, 0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    col = np.array([[1.0, 0, 0]] * 3 + [[0, 0, 1.0]] * 3)
    img = render_vertices(v[None], f, width=120, height=80, color=col)[0, 0].astype(int)
    left, right = img[:, :60].reshape(-1, 3), img[:, 60:].reshape(-1, 3)
    assert ((left[:, 0] - left[:, 2]) > 60).any() and not ((left[:, 2] - left[:, 0]) > 60).any()
    assert ((right[:, 2] - right[:, 0]) > 60).any() and not ((right[:, 0] - right[:, 2]) > 60).any()
    with pytest.raises(ValueError, match="color must have shape"):
        render_vertices(v[None], f, color=col[:4])


# ---------------------------------------------------------------------- fitting protocols
def test_fitting_protocol_without_noise_recovers_the_joints(data):
    """No noise, nothing missing, no prior: the fit reaches the true joints (the targets line up with
    the truth: same frames, real root orientations)."""
    from human_body_prior.evaluation.prior_protocols import fitting_protocol
    from human_body_prior.fitting import Stage

    d = BenchData(data.bm, data.train, data.test, data.test_root, data.test, data.test_root)
    frames = np.arange(0, 40, 5)
    long = [Stage(1.0, 300)]  # converged (the default 2 x 40 iterations leave several mm)
    r = fitting_protocol(d, NoPrior(), 0.0, frames, noise_mm=0.0, missing=0.0, vertices=True, stages=long)
    assert r["mpjpe_mm"] < 1.0
    noisy = fitting_protocol(d, NoPrior(), 0.0, frames, noise_mm=40.0, missing=0.3, seed=0, split="vald", stages=long)
    assert noisy["mpjpe_mm"] > 10.0 and noisy["missing_mm"] > noisy["visible_mm"]


def test_energy_prior_is_the_term_the_fitting_engine_minimises(data):
    """A one-component GMM with an overwhelming weight pulls the fitted pose onto its mean."""
    from human_body_prior.evaluation.prior_protocols import make_fitter
    from human_body_prior.fitting import JointTargets3D

    mu = 0.1 * np.random.default_rng(3).normal(size=63)
    prior = GMMPrior(GMMPosePrior(np.ones(1), mu[None], 0.01 * np.eye(63)[None], dtype=torch.float64))
    truth = data.joints(data.test[:2], data.test_root[:2]).numpy()
    fitter = make_fitter(data.bm, prior, weight=1e3)
    r = fitter.fit(JointTargets3D(truth, np.ones(truth.shape[:2])), write_back=False)
    np.testing.assert_allclose(r.pose_body.numpy(), np.repeat(mu[None], 2, 0), atol=2e-3)
    free = make_fitter(data.bm, NoPrior(), 0.0).fit(JointTargets3D(truth, np.ones(truth.shape[:2])), write_back=False)
    assert np.abs(free.pose_body.numpy() - mu).max() > 0.1


def test_vposer_v2_folder_plugs_into_the_harness(tmp_path, data):
    """A 2021 (V02_05-layout) folder is one more latent prior: its samples and its fitting decoder
    are the network's own decoding (checked against a numpy evaluation of the decoder)."""
    from tests.v2_fixtures import numpy_decode, random_v02_weights, write_v02_folder

    weights = random_v02_weights(seed=2)
    folder = tmp_path / "V02_05"
    write_v02_folder(folder, weights)
    prior, = prior_benchmark.build_priors(["vposer_v2"], data, vposer_v2_dir=str(folder))
    assert prior.name == "vposer_v2" and prior.kind == "latent"
    z = np.random.default_rng(0).standard_normal((4, prior.latentD))
    ref = numpy_decode(weights, z)
    R = prior.decode_rotations(torch.as_tensor(z, dtype=prior.dtype))
    np.testing.assert_allclose(R.double().numpy(), ref, atol=1e-4)
    dec = prior.fitting_decoder().decode(torch.as_tensor(z, dtype=prior.dtype), output_type="matrot")
    np.testing.assert_allclose(dec.reshape(4, 21, 3, 3).double().numpy(), ref, atol=1e-4)
    s = prior.sample(5, seed=1)
    assert s.shape == (5, 63) and torch.equal(s, prior.sample(5, seed=1))


def test_clip_loading_and_clip_denoising(data, tmp_path):
    """Clips come from the middle 80% of AMASS-style takes (takes too short are passed over); a clip
    seen without noise is fitted exactly and its acceleration error is zero up to the fit's error."""
    (tmp_path / "src").mkdir()
    s = np.linspace(0, 1, 100)[:, None]  # a smooth motion: between two held-out poses, turning slowly
    test = (1 - s) * data.test[0].numpy() + s * data.test[1].numpy()
    root = s * np.array([0.0, 0.8, 0.0])
    for name, length in (("a", 100), ("b", 20), ("c", 80)):
        np.savez(tmp_path / "src" / f"{name}.npz", pose_body=test[:length], root_orient=root[:length])
    clips = prior_benchmark.load_clips(tmp_path, ["src/a.bvh", "src/b.bvh", "src/c.bvh"], num_clips=3, frames=30)
    assert len(clips) == 2 and all(p.shape == (30, 63) and r.shape == (30, 3) for p, r in clips)
    for pose, _ in clips:  # the clip is a window of consecutive frames of its take, inside the middle 80%
        start = int(np.flatnonzero(np.all(np.isclose(test[:100], pose[0].numpy()), axis=1))[0])
        assert 10 <= start and start + 30 <= 90 and np.allclose(test[start:start + 30], pose.numpy())
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        prior_benchmark.load_clips(tmp_path, ["src/nope.bvh"], num_clips=1, frames=10)
    np.savez(tmp_path / "src" / "bad.npz", poses=test)
    with pytest.raises(ValueError, match=r"bad.npz: missing key\(s\) \['pose_body', 'root_orient'\]"):
        prior_benchmark.load_clips(tmp_path, ["src/bad.bvh"], num_clips=1, frames=10)
    np.savez(tmp_path / "src" / "bad.npz", pose_body=test[:, :60], root_orient=root)
    with pytest.raises(ValueError, match=r"bad.npz: pose_body must be \(F, 63\)"):
        prior_benchmark.load_clips(tmp_path, ["src/bad.bvh"], num_clips=1, frames=10)
    clean = clip_denoising(data, NoPrior(), 0.0, clips[:1], noise_mm=0.0, smooth_weight=0.0)
    noisy = clip_denoising(data, NoPrior(), 0.0, clips[:1], noise_mm=40.0, smooth_weight=0.0)
    smooth = clip_denoising(data, NoPrior(), 0.0, clips[:1], noise_mm=40.0, smooth_weight=10.0)
    assert clean["clips"] == 1 and clean["mpjpe_mm"] < 0.5 * noisy["mpjpe_mm"]
    assert smooth["accel_error_mm"] < 0.5 * noisy["accel_error_mm"] and smooth["mpjpe_mm"] < noisy["mpjpe_mm"]
