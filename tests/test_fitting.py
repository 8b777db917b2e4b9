"""Fitting bodies to 3D joints and 2D keypoints (human_body_prior.fitting).

References: the core BodyModel (itself tested against smplx), scipy rotations, analytic camera
projections, and targets produced by known poses.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.body_model_vposer import BodyModelWithPoser
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.fitting import BodyFitter, JointTargets3D, Keypoints2D, PinholeCamera, Stage, fit_body
from human_body_prior.fitting.fit_joints import main as cli_main
from human_body_prior.cli import run as run_cli
from human_body_prior.fitting.joints_model import PosedJoints
from human_body_prior.fitting.losses import confidence_weighted_error, geman_mcclure
from human_body_prior.fitting.rigid import kabsch
from fitting_fixtures import tame_vposer
from human_body_prior.tools.model_loader import write_vposer_experiment

LATENT = 8
# Noise-free recovery needs more iterations than the defaults (tuned on noisy real poses).
LONG = [Stage(10.0, 100), Stage(1.0, 100)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A small synthetic SMPL-X file and a VPoser folder whose decoder gives moderate poses
    (random weights scaled, output bias at the identity rotation): mean joint angle ~0.2 rad, up to ~1.8."""
    d = tmp_path_factory.mktemp("fitting")
    bm_path = write_synthetic_model(d / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=3)
    vp = tame_vposer(LATENT)
    expr_dir = d / "vposer_tame"
    write_vposer_experiment(expr_dir, vp)
    return str(bm_path), str(expr_dir)


def _bm(assets, batch_size=1, dtype=torch.float32):
    bm_path, expr_dir = assets
    return BodyModelWithPoser(poser_type="vposer", smpl_exp_dir=expr_dir, bm_path=bm_path,
                              batch_size=batch_size, dtype=dtype)


def _known_bodies(bm, B, seed=1):
    """Targets from known latent codes, orientations and translations -> (truth dict, joints (B, 22, 3))."""
    g = torch.Generator().manual_seed(seed)
    dt = bm.v_template.dtype
    z = torch.randn(B, LATENT, generator=g).to(dt)
    root = torch.as_tensor(Rotation.random(B, random_state=seed).as_rotvec(), dtype=dt)
    trans = (torch.randn(B, 3, generator=g) * 0.5).to(dt)
    with torch.no_grad():
        pose = bm.poser_body_pt.decode(z, output_type="aa").reshape(B, 63)
        joints = BodyModel.forward(bm, root_orient=root, pose_body=pose, trans=trans).Jtr
    return dict(poZ_body=z, pose_body=pose, root_orient=root, trans=trans), joints


def _mpjpe_mm(a, b, n=22):
    return float((a[:, :n] - b[:, :n]).norm(dim=-1).mean() * 1000)


# ---------------------------------------------------------------------------------------------- pieces
def test_posed_joints_match_body_model(assets):
    bm = _bm(assets, batch_size=3, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    ro, pb = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 63, generator=g, dtype=torch.float64)
    tr, be = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 10, generator=g, dtype=torch.float64)
    ref = BodyModel.forward(bm, root_orient=ro, pose_body=pb, trans=tr, betas=be).Jtr
    torch.testing.assert_close(PosedJoints(bm)(ro, pb, tr, be), ref, rtol=0, atol=1e-12)


def test_kabsch_recovers_rigid_motion_and_ignores_missing_points():
    rng = np.random.default_rng(0)
    src = torch.as_tensor(rng.normal(size=(4, 10, 3)))
    R = torch.as_tensor(Rotation.random(4, random_state=1).as_matrix())
    t = torch.as_tensor(rng.normal(size=(4, 3)))
    dst = src @ R.transpose(-1, -2) + t.unsqueeze(1)
    w = torch.ones(4, 10, dtype=torch.float64)
    w[:, :3] = 0
    dst[:, :3] = float("nan")  # missing points may hold anything
    R_est, t_est = kabsch(src, dst, w)
    torch.testing.assert_close(R_est, R, rtol=0, atol=1e-10)
    torch.testing.assert_close(t_est, t, rtol=0, atol=1e-10)
    # a mirrored target still gives a proper rotation
    R_m, _ = kabsch(src, src * torch.tensor([-1.0, 1, 1], dtype=torch.float64), torch.ones(4, 10, dtype=torch.float64))
    assert torch.allclose(torch.linalg.det(R_m), torch.ones(4, dtype=torch.float64))


def test_geman_mcclure_and_weighted_error():
    r2 = torch.tensor([0.0, 1e-6, 1.0, 1e6])
    out = geman_mcclure(r2, sigma=1.0)
    torch.testing.assert_close(out, torch.tensor([0.0, 1e-6 / (1 + 1e-6), 0.5, 1e6 / (1 + 1e6)]))
    pred = torch.zeros(1, 3, 3)
    target = torch.tensor([[[1.0, 0, 0], [0, 2, 0], [float("nan"), 0, 0]]])
    conf = torch.tensor([[1.0, 0.5, 0.0]])
    err = confidence_weighted_error(pred, target, conf)
    torch.testing.assert_close(err, torch.tensor([1.0 + 0.5 * 4]))


def test_pinhole_projection_against_hand_computed_values():
    cam = PinholeCamera(100.0, (50.0, 60.0))
    px = cam.project(torch.tensor([[[1.0, 2.0, 4.0]]]))
    torch.testing.assert_close(px, torch.tensor([[[75.0, 110.0]]]))
    R = torch.as_tensor(Rotation.from_euler("y", 90, degrees=True).as_matrix(), dtype=torch.float32)
    cam = PinholeCamera((200.0, 100.0), (0.0, 0.0), rotation=R, translation=(0.0, 0.0, 5.0))
    X = torch.tensor([[[-1.0, 1.0, 0.0]]])  # R X = (0, 1, 1) -> camera (0, 1, 6)
    torch.testing.assert_close(cam.project(X), torch.tensor([[[0.0, 100.0 / 6]]]))
    torch.testing.assert_close(cam.unproject(cam.project(X), torch.tensor([[6.0]])), X)


# ---------------------------------------------------------------------------------------------- 3D fits
def test_prior_fit_recovers_known_poses(assets):
    bm = _bm(assets)
    truth, joints = _known_bodies(bm, 6)
    r = fit_body(bm, JointTargets3D(joints[:, :22]), pose_prior="vposer", prior_weight=1e-7, stages=LONG,
                 write_back=False)
    assert _mpjpe_mm(r.joints, joints) < 3.0
    torch.testing.assert_close(r.trans, truth["trans"], rtol=0, atol=5e-3)


@pytest.mark.parametrize("prior", ["none", "l2"])
def test_direct_pose_fit_recovers_known_poses(assets, prior):
    bm = _bm(assets)
    _, joints = _known_bodies(bm, 3, seed=2)
    r = fit_body(bm, JointTargets3D(joints[:, :22]), pose_prior=prior, prior_weight=1e-8,
                 stages=[Stage(1.0, 150)], write_back=False)
    assert r.poZ_body is None
    assert _mpjpe_mm(r.joints, joints) < 5.0


def test_batched_and_single_fits_agree(assets):
    """Frames are independent problems: a batch follows each frame's own single-frame trajectory
    (up to float rounding of batched products, which long runs on the non-smooth decoder amplify,
    so the long fits are compared by quality)."""
    bm = _bm(assets, dtype=torch.float64)
    _, joints = _known_bodies(bm, 4, seed=3)
    rng = np.random.default_rng(0)
    noisy = joints[:, :22].numpy() + rng.normal(scale=0.01, size=(4, 22, 3))
    # short run: the same trajectory, frame by frame
    fitter = BodyFitter(bm, pose_prior="vposer", prior_weight=1e-3, stages=[Stage(10, 8)])
    batch = fitter.fit(JointTargets3D(noisy), write_back=False)
    for i in range(4):
        single = fitter.fit(JointTargets3D(noisy[i:i + 1]), write_back=False)
        assert _mpjpe_mm(single.joints, batch.joints[i:i + 1]) < 1e-6
    # full run: as good in a batch as alone
    fitter = BodyFitter(bm, pose_prior="vposer", prior_weight=1e-3, stages=[Stage(10, 60), Stage(1, 60)])
    batch = fitter.fit(JointTargets3D(noisy), write_back=False)
    singles = [fitter.fit(JointTargets3D(noisy[i:i + 1]), write_back=False) for i in range(4)]
    single_joints = torch.cat([s.joints for s in singles])
    assert _mpjpe_mm(single_joints, batch.joints) < 5.0
    assert abs(_mpjpe_mm(single_joints, joints) - _mpjpe_mm(batch.joints, joints)) < 2.0
    single_loss = sum(float(s.data_loss[0]) for s in singles)
    assert abs(single_loss - float(batch.data_loss.sum())) < 0.1 * single_loss


def test_prior_pulls_missing_joints_to_plausible_places(assets):
    """With the arms' joints missing, the prior fills them from the pose model; no prior cannot."""
    bm = _bm(assets)
    _, joints = _known_bodies(bm, 4, seed=4)
    conf = np.ones((4, 22))
    conf[:, [18, 19, 20, 21]] = 0  # elbows and wrists missing
    err = {}
    for prior in ("vposer", "none"):
        r = fit_body(bm, JointTargets3D(joints[:, :22], conf), pose_prior=prior, prior_weight=1e-4,
                     write_back=False)
        err[prior] = float((r.joints[:, [18, 19, 20, 21]] - joints[:, [18, 19, 20, 21]]).norm(dim=-1).mean())
    assert err["vposer"] < err["none"]


def test_write_back_sets_body_model_with_poser_variables(assets):
    bm = _bm(assets, batch_size=2)
    _, joints = _known_bodies(bm, 2, seed=5)
    r = fit_body(bm, JointTargets3D(joints[:, :22]), pose_prior="vposer", prior_weight=1e-6, stages=LONG)
    with torch.no_grad():
        out = bm()
    torch.testing.assert_close(out.Jtr, r.joints, rtol=0, atol=1e-5)
    torch.testing.assert_close(bm.poZ_body.detach(), r.poZ_body)


def test_robust_loss_resists_an_outlier(assets):
    bm = _bm(assets)
    _, joints = _known_bodies(bm, 2, seed=6)
    target = joints[:, :22].clone()
    target[:, 20] += torch.tensor([0.8, 0.8, 0.0])  # a wild wrist
    keep = [j for j in range(22) if j != 20]
    errs = {}
    for sigma in (None, 0.05):
        r = fit_body(bm, JointTargets3D(target, robust_sigma=sigma), prior_weight=1e-6, stages=LONG,
                     write_back=False)
        errs[sigma] = float((r.joints[:, keep] - joints[:, keep]).norm(dim=-1).mean())
    assert errs[0.05] < 0.5 * errs[None]
    assert errs[0.05] < 0.01


def test_adam_float64_fit(assets):
    bm = _bm(assets, dtype=torch.float64)
    _, joints = _known_bodies(bm, 2, seed=7)
    r = fit_body(bm, JointTargets3D(joints[:, :22]), optimizer="adam", lr=0.05, prior_weight=1e-7,
                 stages=[Stage(1.0, 300)], write_back=False)
    assert r.joints.dtype == torch.float64
    assert _mpjpe_mm(r.joints, joints) < 10.0


def test_fit_betas_recovers_shape(assets):
    bm = _bm(assets)
    g = torch.Generator().manual_seed(8)
    betas = torch.randn(1, 10, generator=g)
    truth, _ = _known_bodies(bm, 5, seed=8)
    with torch.no_grad():
        joints = BodyModel.forward(bm, root_orient=truth["root_orient"], pose_body=truth["pose_body"],
                                   trans=truth["trans"], betas=betas.expand(5, -1)).Jtr
    r = fit_body(bm, JointTargets3D(joints), pose_prior="vposer", prior_weight=1e-7, fit_betas=True,
                 betas_weight=1e-8, stages=LONG, write_back=False)
    assert r.betas.shape == (1, 10)
    assert _mpjpe_mm(r.joints, joints, n=55) < 3.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda(assets):
    bm = _bm(assets).to("cuda")
    _, joints = _known_bodies(bm.to("cpu"), 3, seed=9)
    bm = bm.to("cuda")
    r = fit_body(bm, JointTargets3D(joints[:, :22]), prior_weight=1e-7, stages=LONG, write_back=False)
    assert r.joints.device.type == "cuda"
    assert _mpjpe_mm(r.joints.cpu(), joints) < 3.0


# ---------------------------------------------------------------------------------------------- 2D fits
def _cameras():
    front = PinholeCamera(1000.0, (320.0, 240.0), translation=(0.0, 0.0, 4.0))
    side_R = torch.as_tensor(Rotation.from_euler("y", -70, degrees=True).as_matrix(), dtype=torch.float32)
    side = PinholeCamera((900.0, 950.0), (300.0, 250.0), rotation=side_R, translation=(0.2, -0.1, 4.5))
    return front, side


def _upright_bodies(bm, B, seed):
    """Known bodies standing in front of the first camera (the model's y up, facing the camera)."""
    truth, _ = _known_bodies(bm, B, seed)
    flip = torch.as_tensor(Rotation.from_euler("x", 180, degrees=True).as_matrix(), dtype=torch.float32)
    tilt = torch.as_tensor(Rotation.from_rotvec(np.random.default_rng(seed).normal(scale=0.2, size=(B, 3))).as_matrix(),
                           dtype=torch.float32)
    root = Rotation.from_matrix((tilt @ flip).numpy()).as_rotvec()
    truth["root_orient"] = torch.as_tensor(root, dtype=torch.float32)
    with torch.no_grad():
        joints = BodyModel.forward(bm, root_orient=truth["root_orient"], pose_body=truth["pose_body"],
                                   trans=truth["trans"] * 0.2).Jtr
    return joints


def _multi_view_mpjpe_mm(bm, joints, cams):
    """Body-joint error (mm) of a VPoser fit to the joints' exact 2D projections in every camera."""
    obs = [Keypoints2D(cam.project(joints[:, :22]), camera=cam) for cam in cams]
    r = fit_body(bm, obs, pose_prior="vposer", prior_weight=1e-7, stages=[Stage(10.0, 50, pose=False)] + LONG,
                 write_back=False)
    return _mpjpe_mm(r.joints, joints)


def test_two_view_keypoints_recover_the_3d_pose(assets):
    bm = _bm(assets)
    joints = _upright_bodies(bm, 3, seed=10)
    assert _multi_view_mpjpe_mm(bm, joints, _cameras()) < 5.0


def test_per_frame_cameras(assets):
    """One camera per frame (different focal lengths and distances) in a batch of 3 frames."""
    bm = _bm(assets)
    joints = _upright_bodies(bm, 3, seed=12)
    cams = [PinholeCamera(torch.tensor([[800.0, 800.0], [1000.0, 1000.0], [1200.0, 1100.0]]), (320.0, 240.0),
                          translation=torch.tensor([[0.0, 0.0, 3.0], [0.1, 0.0, 4.0], [0.0, 0.2, 5.0]])),
            _cameras()[1]]
    assert _multi_view_mpjpe_mm(bm, joints, cams) < 5.0


def test_single_view_keypoints_are_reproduced(assets):
    bm = _bm(assets)
    joints = _upright_bodies(bm, 2, seed=11)
    cam = _cameras()[0]
    kp = cam.project(joints[:, :22])
    r = fit_body(bm, Keypoints2D(kp, camera=cam, robust_sigma=50.0), pose_prior="vposer", prior_weight=1e-7,
                 stages=[Stage(10.0, 50, pose=False)] + LONG, write_back=False)
    px = (cam.project(r.joints[:, :22]) - kp).norm(dim=-1).mean()
    assert px < 1.0  # pixels
    assert _mpjpe_mm(r.joints, joints) < 50.0  # depth of single-view limbs is weakly observed


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("joints, conf, message", [
    (np.zeros((2, 22, 2)), None, r"shape \(B, J, 3\)"),
    (np.zeros((2, 10, 3)), None, "at least 22"),
    (np.full((2, 22, 3), np.nan), None, "NaN"),
    (np.zeros((2, 22, 3)), np.zeros((2, 22)), "all zero"),
    (np.zeros((2, 22, 3)), np.ones((2, 21)), r"conf must have shape \(2, 22\)"),
    (np.zeros((2, 22, 3)), -np.ones((2, 22)), ">= 0"),
])
def test_bad_3d_targets_raise_clear_errors(joints, conf, message):
    with pytest.raises(ValueError, match=message):
        JointTargets3D(joints, conf)


def test_nan_allowed_for_missing_joints_and_too_many_joints_rejected(assets):
    bm = _bm(assets)
    j = np.zeros((1, 22, 3))
    j[0, 5] = np.nan
    conf = np.ones((1, 22))
    conf[0, 5] = 0
    JointTargets3D(j, conf)  # fine: the NaN joint is marked missing
    with pytest.raises(ValueError, match="has 55"):
        BodyFitter(bm).fit(JointTargets3D(np.zeros((1, 56, 3))))
    with pytest.raises(ValueError, match="camera"):
        Keypoints2D(np.zeros((1, 22, 2)))
    with pytest.raises(ValueError, match="different frame counts"):
        BodyFitter(bm).fit([JointTargets3D(np.zeros((1, 22, 3))), JointTargets3D(np.zeros((2, 22, 3)))])
    with pytest.raises(ValueError, match="pose_prior"):
        BodyFitter(bm, pose_prior="gmm")


# ---------------------------------------------------------------------------------------------- command line
def test_cli_end_to_end(assets, tmp_path):
    bm_path, expr_dir = assets
    bm = _bm(assets)
    _, joints = _known_bodies(bm, 5, seed=12)
    conf = np.ones((5, 22))
    conf[2, 7] = 0
    target = joints[:, :22].numpy().copy()
    target[2, 7] = np.nan
    inp, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(inp, joints=target, conf=conf)
    cmd = [sys.executable, "-m", "human_body_prior.fitting.fit_joints", str(inp), str(out), "--bm-path", bm_path,
           "--expr-dir", expr_dir, "--prior-weight", "1e-7", "--batch-size", "3", "--iterations", "100", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = np.load(out)
    assert res["root_orient"].shape == (5, 3) and res["pose_body"].shape == (5, 63) and res["trans"].shape == (5, 3)
    assert res["poZ_body"].shape == (5, LATENT) and res["betas"].shape == (5, 10) and res["joints"].shape == (5, 22, 3)
    # the stored parameters reproduce the stored joints through the body model
    with torch.no_grad():
        again = BodyModel.forward(bm, **{k: torch.as_tensor(res[k]) for k in ("root_orient", "pose_body", "trans",
                                                                               "betas")}).Jtr[:, :22]
    np.testing.assert_allclose(again.numpy(), res["joints"], atol=1e-5)
    assert _mpjpe_mm(torch.as_tensor(res["joints"]), joints) < 3.0
    assert not list(tmp_path.glob(".out.npz.*"))  # no temp file left behind

    out2 = tmp_path / "out_noprior.npz"
    assert cli_main([str(inp), str(out2), "--bm-path", bm_path, "--no-prior", "--quiet"]) == 0
    res2 = np.load(out2)
    assert "poZ_body" not in res2.files and str(res2["pose_prior"]) == "none"

    out3 = tmp_path / "out_smooth.npz"
    assert cli_main([str(inp), str(out3), "--bm-path", bm_path, "--expr-dir", expr_dir, "--smooth-weight", "10",
                     "--iterations", "20", "--quiet"]) == 0
    assert np.load(out3)["joints"].shape == (5, 22, 3)


def test_cli_bad_input_reports_clearly(assets, tmp_path, capsys):
    bm_path, expr_dir = assets
    bad = tmp_path / "bad.npz"
    np.savez(bad, points=np.zeros((2, 22, 3)))
    assert run_cli(cli_main, [str(bad), str(tmp_path / "o.npz"), "--bm-path", bm_path, "--expr-dir", expr_dir]) == 1
    assert "no 'joints' array" in capsys.readouterr().err
    np.savez(bad, joints=np.zeros((2, 22, 3)), conf=np.zeros((2, 22)))
    assert run_cli(cli_main, [str(bad), str(tmp_path / "o.npz"), "--bm-path", bm_path, "--expr-dir", expr_dir]) == 1
    assert "all zero" in capsys.readouterr().err
    np.savez(bad, joints=np.zeros((3, 22, 3)))
    assert run_cli(cli_main, [str(bad), str(tmp_path / "o.npz"), "--bm-path", bm_path, "--expr-dir", expr_dir,
                              "--smooth-weight", "-1"]) == 1
    assert "smooth_weight must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


# ---------------------------------------------------------------------------------------------- held-out helpers
def test_heldout_loading_and_corruption(tmp_path):
    from human_body_prior.fitting.heldout import corrupt_joints, load_poses, pick_frames
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(7, 165))
    np.savez(tmp_path / "take.npz", poses=poses)
    loaded = load_poses(tmp_path / "take.npz")
    np.testing.assert_array_equal(loaded["root_orient"], poses[:, :3])
    np.testing.assert_array_equal(loaded["pose_body"], poses[:, 3:66])
    split = tmp_path / "test"
    split.mkdir()
    torch.save(torch.as_tensor(poses[:, 3:66], dtype=torch.float32), split / "pose.pt")
    torch.save(torch.as_tensor(poses[:, :3], dtype=torch.float32), split / "root_orient.pt")
    np.testing.assert_allclose(load_poses(split)["pose_body"], poses[:, 3:66], atol=1e-6)
    with pytest.raises(ValueError, match="'poses'"):
        np.savez(tmp_path / "bad.npz", pose=poses)
        load_poses(tmp_path / "bad.npz")

    idx = pick_frames(100, 10, seed=3)
    assert len(np.unique(idx)) == 10 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, pick_frames(100, 10, seed=3))
    joints = rng.normal(size=(2000, 22, 3))
    targets, conf = corrupt_joints(joints, noise_sigma=0.02, missing=0.3, seed=1)
    assert abs((conf == 0).mean() - 0.3) < 0.01
    assert np.all(np.isnan(targets[conf == 0])) and np.all(np.isfinite(targets[conf > 0]))
    resid = (targets - joints)[conf > 0]
    assert abs(resid.std() - 0.02) < 0.001 and abs(resid.mean()) < 0.001
    assert (conf > 0).sum(1).min() >= 3
    JointTargets3D(targets, conf)  # valid fitting input


def test_example_figure_is_written(assets, tmp_path):
    from human_body_prior.fitting.examples.fit_heldout_take import draw
    bm = _bm(assets)
    _, joints = _known_bodies(bm, 2, seed=13)
    truth = joints[:, :22].numpy()
    conf = np.ones((2, 22))
    conf[:, 5] = 0
    rows = [("fit", truth + 0.01, "tab:blue", None)]
    out = draw(tmp_path / "fig.png", rows, truth, truth, conf, bm.parents, ["a", "b"])
    with open(out, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("iterations,lr", [(3, 1.0), (8, 1.0), (8, 0.5)])
def test_batched_lbfgs_takes_torch_lbfgs_iterates(iterations, lr):
    """Each frame of the batched solver takes torch.optim.LBFGS's iterates (no line search; the trial
    steps are accepted on this mild problem): same first step lr / |g|_1, same two-loop recursion and
    history, same scaling."""
    from human_body_prior.fitting.batched_lbfgs import batched_lbfgs

    gen = torch.Generator().manual_seed(0)
    B, D = 5, 6
    A = torch.randn(B, D, D, generator=gen, dtype=torch.float64)
    A = 0.3 * A @ A.transpose(-1, -2) / D + torch.eye(D, dtype=torch.float64)
    c = torch.randn(B, D, generator=gen, dtype=torch.float64)
    x0 = 3 * torch.randn(B, D, generator=gen, dtype=torch.float64)

    def loss(x, A=A, c=c):  # per frame: a quadratic bowl plus a small quartic
        d = x - c
        return 0.5 * torch.einsum("bi,bij,bj->b", d, A, d) + 0.01 * (x * x).sum(-1) ** 2

    ours, _ = batched_lbfgs(loss, x0, max_iter=iterations, history_size=4, tolerance_change=0.0, lr=lr)
    for b in range(B):
        x = x0[b:b + 1].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=lr, max_iter=iterations, max_eval=100, history_size=4, tolerance_grad=0.0,
                                tolerance_change=0.0)

        def closure():
            opt.zero_grad()
            value = loss(x, A[b:b + 1], c[b:b + 1]).sum()
            value.backward()
            return value

        opt.step(closure)
        torch.testing.assert_close(ours[b], x.detach()[0], rtol=0, atol=1e-12)


def test_ik_engine_passes_torch_lbfgs_options_to_the_whole_batch_solver(assets):
    """A data loss that is not a per-frame sum is solved as one problem by torch.optim.LBFGS, which gets
    the caller's tolerance_change (the upstream tutorial's 1e-4 stops it early)."""
    from human_body_prior.models.ik_engine import IK_Engine

    bm_path, expr_dir = assets
    _, joints = _known_bodies(_bm(assets), 3, seed=21)
    joints = joints[:, :22]
    bm = BodyModel(bm_path)
    calls = [0]

    class Source(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bm = bm

        def forward(self, params):
            calls[0] += 1
            return {"source_kpts": self.bm(**params).Jtr[:, :22]}

    def batch_loss(pred, target):  # not a torch loss module: no per-frame form
        return ((pred - target) ** 2).sum()

    evaluations = {}
    for tol in (1e-12, 1e-4):
        calls[0] = 0
        ik = IK_Engine(expr_dir, data_loss=batch_loss, verbosity=0,
                       optimizer_args={"type": "LBFGS", "max_iter": 200, "lr": 1, "tolerance_change": tol,
                                       "history_size": 50})
        ik(Source(), joints)
        evaluations[tol] = calls[0]
    assert evaluations[1e-4] < 0.8 * evaluations[1e-12], evaluations


def test_acceleration_term_and_its_gradient():
    from human_body_prior.fitting.losses import acceleration_term

    rng = np.random.default_rng(4)
    J = rng.normal(size=(7, 5, 3))
    got = acceleration_term(torch.tensor(J)).numpy()
    ref = np.zeros(7)
    for b in range(1, 6):
        ref[b] = ((J[b - 1] - 2 * J[b] + J[b + 1]) ** 2).sum()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert acceleration_term(torch.zeros(2, 5, 3)).shape == (2,)
    assert torch.autograd.gradcheck(lambda x: acceleration_term(x).sum(), (torch.tensor(J, requires_grad=True),))


def test_smoothness_term_denoises_a_clip(assets):
    """A smooth 30-frame motion seen through 30 mm joint noise: the fit with the acceleration term is
    closer to the clean joints than frame-by-frame fits, and its loss carries exactly that term."""
    bm = _bm(assets)
    T = 30
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(2, LATENT, generator=g)
    s = torch.linspace(0, 1, T).unsqueeze(1)
    z = (1 - s) * z0 + s * z1
    root = torch.as_tensor(Rotation.from_rotvec(np.outer(np.linspace(0, 0.6, T), [0, 1, 0])).as_rotvec(),
                           dtype=torch.float32)
    trans = s * torch.tensor([[0.5, 0.0, 0.2]])
    with torch.no_grad():
        pose = bm.poser_body_pt.decode(z, output_type="aa").reshape(T, 63)
        clean = BodyModel.forward(bm, root_orient=root, pose_body=pose, trans=trans).Jtr[:, :22]
    noisy = clean + 0.03 * torch.randn(clean.shape, generator=g)
    errors, history = {}, {}
    for w in (0.0, 30.0):
        fitter = BodyFitter(bm, pose_prior="vposer", prior_weight=1e-4, smooth_weight=w)
        r = fitter.fit(JointTargets3D(noisy), write_back=False)
        errors[w], history[w] = _mpjpe_mm(r.joints, clean), r.history
    assert errors[30.0] < 0.75 * errors[0.0], errors
    assert len(history[30.0]) == len(history[0.0]) + 1  # the per-frame stages, then the whole clip
    with pytest.raises(ValueError, match="smooth_weight"):
        BodyFitter(bm, pose_prior="vposer", smooth_weight=-1.0)
    with pytest.raises(ValueError, match="smooth_iterations"):
        BodyFitter(bm, pose_prior="vposer", smooth_weight=1.0, smooth_iterations=0)
