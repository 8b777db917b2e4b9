"""The prior benchmark's real-pose protocol (--real-poses): reading folders of AMASS-layout takes, refusing
bad ones in one line, the per-take summaries, and the protocol on a tiny case, checked against the
VPoser evaluation's own reconstruction measure (evaluation/vposer.py). Synthetic takes only, except one
test on ../shared/amass_dev/real_poses that skips without it."""

from pathlib import Path

import numpy as np
import pytest
import torch

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.evaluation import prior_benchmark
from human_body_prior.evaluation.prior_protocols import per_take_summary
from human_body_prior import cli

REAL_POSES = Path(__file__).resolve().parent.parent.parent / "shared" / "amass_dev" / "real_poses"


def _poses(T, width, seed=0):
    return np.random.default_rng(seed).normal(scale=0.2, size=(T, width))


def _smplh(path, poses, fps=120.0, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=poses, trans=np.zeros((len(poses), 3)), betas=np.zeros(16), gender="male",
             mocap_framerate=np.array(fps), **extra)


def _smplx(path, poses, fps=120.0, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=poses, trans=np.zeros((len(poses), 3)), betas=np.zeros(16), gender="neutral",
             mocap_frame_rate=np.array(fps), surface_model_type="smplx", **extra)


@pytest.fixture
def take_set(tmp_path):
    """An AMASS-like tree: an SMPL-H take, an SMPL-X take (with a MoSh++ object array), shape files."""
    root = tmp_path / "amass"
    a, b = _poses(35, 156, 1), _poses(25, 165, 2)
    _smplh(root / "SetA" / "s1" / "walk_poses.npz", a)
    _smplx(root / "SetB" / "s2" / "run_stageii.npz", b, markers_latent_vids=np.array({"C7": 1}, dtype=object))
    np.savez(root / "SetA" / "s1" / "shape.npz", betas=np.zeros(16))
    np.savez(root / "SetB" / "s2" / "s2_stagei.npz", betas=np.zeros(16))
    return root, a, b


# ------------------------------------------------------------------------------------ loading

def test_loader_reads_both_layouts_every_stride_th_frame(take_set):
    root, a, b = take_set
    real = prior_benchmark.load_real_poses(root, stride=10)
    assert real["takes"] == ["SetA/s1/walk_poses.npz", "SetB/s2/run_stageii.npz"]
    assert real["frames"] == [35, 25] and real["fps"] == [120.0, 120.0]
    expect_body = np.concatenate([a[::10, 3:66], b[::10, 3:66]])
    expect_root = np.concatenate([a[::10, :3], b[::10, :3]])
    np.testing.assert_allclose(real["pose_body"].numpy(), expect_body, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(real["root_orient"].numpy(), expect_root, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(real["take_index"], [0] * 4 + [1] * 3)


def test_sample_fps_samples_takes_of_different_rates_alike(tmp_path):
    _smplh(tmp_path / "a_poses.npz", _poses(40, 156), fps=120.0)
    _smplh(tmp_path / "b_poses.npz", _poses(40, 156), fps=60.0)
    with pytest.raises(ValueError, match=r"frame rates disagree: .*b_poses\.npz has 60 fps.*a_poses\.npz 120 fps"):
        prior_benchmark.load_real_poses(tmp_path)
    real = prior_benchmark.load_real_poses(tmp_path, sample_fps=12.0)
    np.testing.assert_array_equal(np.bincount(real["take_index"]), [4, 8])  # every 10th and every 5th frame


def _bad_cases(tmp_path):
    good = _poses(30, 156)
    nan = good.copy()
    nan[3, 10] = np.nan
    cases = {
        "shape_only.npz": (lambda p: np.savez(p, betas=np.zeros(16)), r"shape_only\.npz: no 'poses' array"),
        "wide_poses.npz": (lambda p: _smplh(p, _poses(30, 99)), r"wide_poses\.npz: key 'poses' has 99 values"),
        "nan_poses.npz": (lambda p: _smplh(p, nan), r"nan_poses\.npz: key 'poses' holds NaN .*frame 3"),
        "short_poses.npz": (lambda p: _smplh(p, good[:4]), r"short_poses\.npz: key 'poses' has 4 frames"),
        "norate_poses.npz": (lambda p: np.savez(p, poses=good), r"norate_poses\.npz: no valid frame rate .*mocap_framerate"),
        "garbage_poses.npz": (lambda p: p.write_bytes(b"not a zip"), r"garbage_poses\.npz: not a readable \.npz"),
    }
    return {name: (tmp_path / name, make, pattern) for name, (make, pattern) in cases.items()}


@pytest.mark.parametrize("case", ["shape_only.npz", "wide_poses.npz", "nan_poses.npz", "short_poses.npz",
                                  "norate_poses.npz", "garbage_poses.npz"])
def test_bad_takes_are_named_with_their_key(tmp_path, case):
    _smplh(tmp_path / "good_poses.npz", _poses(30, 156))
    path, make, pattern = _bad_cases(tmp_path)[case]
    make(path)
    with pytest.raises(ValueError, match=pattern):
        prior_benchmark.load_real_poses(tmp_path)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="no .npz takes"):
        prior_benchmark.load_real_poses(tmp_path)
    with pytest.raises(FileNotFoundError):
        prior_benchmark.load_real_poses(tmp_path / "absent")


def test_cli_bad_take_is_one_line_and_overwrites_nothing(tmp_path, capsys):
    takes = tmp_path / "takes"
    _smplh(takes / "good_poses.npz", _poses(30, 156))
    bad = _poses(30, 156)
    bad[7, 40] = np.inf
    _smplh(takes / "bad_poses.npz", bad)
    out = tmp_path / "out"
    out.mkdir()
    (out / "real_poses.json").write_text("earlier results")
    rc = cli.run(prior_benchmark.main, ["--real-poses", str(takes), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and "bad_poses.npz: key 'poses' holds NaN or infinite values" in err
    assert (out / "real_poses.json").read_text() == "earlier results"
    assert not (out / "real_poses.md").exists()


# ------------------------------------------------------------------------------------ protocol

def test_per_take_summary_hand_computed():
    frame_mm = np.array([10.0, 20.0, 30.0, 40.0, 24.0])
    take = np.array([0, 0, 1, 1, 2])
    s = per_take_summary(frame_mm, take)
    assert s["per_take_mm"] == [15.0, 35.0, 24.0]
    assert s["median_take_mm"] == 24.0
    assert s["mean_frame_mm"] == pytest.approx(24.8)
    assert s["share_within"] == pytest.approx(3 / 5)  # 10, 20 and 24 are within 25 mm
    assert s["takes"] == 3 and s["frames"] == 5


def test_protocol_on_a_tiny_case_matches_the_vposer_evaluation(tmp_path):
    """Held-out poses of the shipped subset written as two AMASS takes: the table's mean frame error of
    VPoser v1 equals evaluation/vposer.reconstruction_errors' per-joint error on the same poses."""
    from human_body_prior.evaluation.vposer import reconstruction_errors
    from human_body_prior.priors.experiment import load_vposer
    from human_body_prior.body_model.surface import BodySurface

    with np.load(prior_benchmark.subset_path()) as f:
        test, root = f["test_pose"][:60].astype(np.float64), f["test_root_orient"][:60].astype(np.float64)
    poses = np.concatenate([root, test, np.zeros((60, 90))], 1)  # SMPL-H layout, hands at rest
    takes = tmp_path / "takes"
    _smplh(takes / "one_poses.npz", poses[:40])
    _smplh(takes / "two_poses.npz", poses[40:])
    out = tmp_path / "out"
    rc = prior_benchmark.main(["--real-poses", str(takes), "--stride", "2", "--quick", "--priors", "none,vposer_v1",
                               "--out", str(out)])
    assert rc == 0
    import json

    res = json.loads((out / "real_poses.json").read_text())
    rec = res["reconstruction"]["vposer_v1"]
    assert rec["frames"] == 30 and rec["takes"] == 2 and res["poses"] == 30
    assert "none" not in res["reconstruction"] and set(res["ik"]) == {"none", "vposer_v1"}
    assert set(res["generation"]) == {"real", "none", "vposer_v1"}
    # noisy fits of the real joints: every prior and none, on the same frames; 40 mm of noise per axis
    # leaves a fit without a prior well above the noise-free IK
    assert set(res["fit"]) == {"denoise_40", "partial"} and res["fit_frames"] == 8
    for kind in res["fit"].values():
        assert set(kind) == {"none", "vposer_v1"} and all(np.isfinite(r["mpjpe_mm"]) for r in kind.values())
    assert res["fit"]["denoise_40"]["none"]["mpjpe_mm"] > res["ik"]["none"]["mpjpe_mm"] + 10.0
    assert "fit, 40 mm noise" in (out / "real_poses.md").read_text()
    vp, _ = load_vposer(hbp.default_vposer_dir(), verbose=False)
    surface = BodySurface(hbp.default_body_model_path(), num_vertices=1)
    ref = reconstruction_errors(vp.eval(), surface, torch.as_tensor(test[::2], dtype=torch.float32).reshape(30, 21, 3))
    assert rec["mean_frame_mm"] == pytest.approx(ref["per_joint_mm"], rel=1e-4)
    assert "vposer_v1" in (out / "real_poses.md").read_text()


@pytest.mark.skipif(not REAL_POSES.is_dir(), reason=f"{REAL_POSES} is not here (AMASS fits for measurement only; "
                    "see ../shared/amass_dev/README.md)")
def test_real_poses_folder():
    """The shared real takes load at every 10th frame, and the protocol's reconstruction error of VPoser v1
    agrees with the VPoser evaluation's measure on the same frames."""
    from human_body_prior.evaluation.compared_priors import LatentPrior
    from human_body_prior.evaluation.prior_protocols import reconstruction
    from human_body_prior.evaluation.vposer import reconstruction_errors
    from human_body_prior.priors.experiment import load_vposer
    from human_body_prior.body_model.surface import BodySurface

    real = prior_benchmark.load_real_poses(REAL_POSES)
    assert len(real["takes"]) >= 30 and len(real["pose_body"]) == sum((n + 9) // 10 for n in real["frames"])
    bm = BodyModel(hbp.default_body_model_path())
    data = prior_benchmark.real_pose_data(bm, real, real["pose_body"][:10])
    vp, _ = load_vposer(hbp.default_vposer_dir(), verbose=False)
    res = reconstruction(data, LatentPrior.from_vposer_v1(vp), real["take_index"])
    surface = BodySurface(hbp.default_body_model_path(), num_vertices=1)
    ref = reconstruction_errors(vp.eval(), surface, real["pose_body"].reshape(-1, 21, 3))
    assert res["mean_frame_mm"] == pytest.approx(ref["per_joint_mm"], rel=1e-4)
    assert res["takes"] == len(real["takes"]) and 0.0 <= res["share_within"] <= 1.0
