"""The paired-take fidelity yardstick (evaluation/retarget_fidelity.py): its measures on analytic cases
(references from closed forms and scipy), the time alignment on shifted copies, pairing files, and one
run on the real paired takes when ../shared/amass_dev and the mocap archives are there."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.model_types.joints import BODY_JOINT_NAMES, HINGES, NUM_BODY_JOINTS
from human_body_prior.evaluation import retarget_fidelity as rf

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
PAIRED_FITS = SHARED / "amass_dev" / "paired_cmu"
ICLONE_ARCHIVE = SHARED / "mocap" / "cmu_iclone.tar.xz"
J = BODY_JOINT_NAMES.index


@pytest.fixture(scope="module")
def joints_model():
    from human_body_prior import default_body_model_path
    from human_body_prior.body_model.body_model import BodyModel
    from human_body_prior.fitting.joints_model import PosedJoints

    return PosedJoints(BodyModel(default_body_model_path("smplx", "neutral"), dtype=torch.float64))


def _random_poses(T, seed, scale=0.3):
    """(T, 66) root + body axis-angle, smooth in time."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, T)[:, None]
    return scale * (np.sin(t * rng.uniform(1, 3, 66) + rng.uniform(0, 6, 66)) + 0.3 * rng.standard_normal((1, 66)))


# ------------------------------------------------------------------------------------ angles

def test_direction_angle_matches_arccos():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 3)), rng.standard_normal((50, 3)) * 3
    ref = np.degrees(np.arccos(np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)))
    got = rf.direction_angle_deg(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    same = rf.direction_angle_deg(torch.from_numpy(a), torch.from_numpy(2 * a))
    assert float(same.abs().max()) < 1e-5


def _bent_leg_joints(theta_deg: np.ndarray) -> torch.Tensor:
    """(T, 22, 3) joints with the left knee bent by theta: thigh straight down, shin swung backwards."""
    th = np.radians(theta_deg)
    j = np.zeros((len(th), NUM_BODY_JOINTS, 3))
    j[:, :, 0] = np.arange(NUM_BODY_JOINTS) * 0.01  # distinct points for the unused joints
    j[:, J("left_hip")] = (0.1, 0.0, 0.0)
    j[:, J("left_knee")] = (0.1, -0.4, 0.0)
    j[:, J("left_ankle")] = np.stack([np.full_like(th, 0.1), -0.4 - 0.4 * np.cos(th), -0.4 * np.sin(th)], -1)
    return torch.from_numpy(j)


def test_hinge_flexion_is_the_bend_angle():
    theta = np.array([0.0, 10.0, 45.0, 90.0, 130.0])
    flex = rf.hinge_flexion_deg(_bent_leg_joints(theta)).numpy()
    k = [h.name for h in HINGES].index("left_knee")
    np.testing.assert_allclose(flex[:, k], theta, atol=1e-5)


def test_collar_elevation():
    elev = np.array([-20.0, 0.0, 7.0, 35.0])
    j = np.zeros((len(elev), NUM_BODY_JOINTS, 3))
    j[:, J("left_collar")] = (0.05, 1.4, 0.0)
    e = np.radians(elev)
    j[:, J("left_shoulder")] = j[:, J("left_collar")] + 0.12 * np.stack([np.cos(e), np.sin(e), 0 * e], -1)
    j[:, J("right_collar")] = (-0.05, 1.4, 0.0)
    j[:, J("right_shoulder")] = (-0.17, 1.4, 0.05)  # horizontal, pointing a little forwards
    got = rf.collar_elevation_deg(torch.from_numpy(j)).numpy()
    np.testing.assert_allclose(got[:, 0], elev, atol=1e-5)
    np.testing.assert_allclose(got[:, 1], 0.0, atol=1e-5)


def test_heading_alignment_recovers_a_turn_about_up():
    R_ref = torch.from_numpy(Rotation.random(40, random_state=1).as_matrix())
    turn = Rotation.from_rotvec([0, 0, np.radians(-63.0)]).as_matrix()
    R_ours = torch.from_numpy(turn) @ R_ref
    H = rf.heading_alignment(R_ours, R_ref).numpy()
    np.testing.assert_allclose(H, turn.T, atol=1e-8)


# ------------------------------------------------------------------------------------ time alignment

@pytest.mark.parametrize("lag", [0, 7, -5])
def test_find_lag_on_a_shifted_copy(lag):
    rng = np.random.default_rng(3)
    t = np.arange(300)
    sig = np.stack([np.sin(t * f + p) + 0.1 * np.sin(t * 3.1 * f) for f, p in rng.uniform(0.03, 0.2, (4, 2))], -1)
    a = sig[20:220]
    b = 2.0 * sig[20 - lag:220 - lag] + 15.0  # b[t + lag] = 2 a[t] + 15: a bias and a scale do not matter
    found, agreement = rf.find_lag(a, b, max_lag=12)
    assert found == lag
    assert agreement == pytest.approx(1.0, abs=1e-9)


def test_find_lag_with_a_short_overlap_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        rf.find_lag(np.zeros((5, 2)), np.zeros((5, 2)), max_lag=2, min_overlap=10)


# ------------------------------------------------------------------------------------ comparisons

def test_identical_sequences_compare_to_zero(joints_model):
    poses = _random_poses(20, seed=0)
    p = rf.pose_sequence(joints_model, poses[:, :3], poses[:, 3:])
    res = rf.compare_posed(p, p)
    for key in ("mean_joint_mm", "mean_angle_deg", "mean_bone_deg", "pelvis_deg", "world_joint_mm", "aligned_joint_mm"):
        assert res[key] == pytest.approx(0.0, abs=1e-4), key
    assert all(abs(v["bias_deg"]) < 1e-4 for v in res["flexion"].values())
    assert all(abs(v["bias_deg"]) < 1e-4 for v in res["collar"].values())


def test_a_known_rotation_offset_gives_that_angle(joints_model):
    """The left elbow turned by 30 deg about an axis across the forearm: that joint's angle is 30, the
    forearm points 30 deg apart, the wrist moves 2 L sin(15 deg); everything else stays."""
    T = 6
    ref = np.zeros((T, 66))
    e, w = J("left_elbow"), J("left_wrist")
    rest = joints_model.rest_joints(torch.zeros(1, joints_model.num_betas, dtype=torch.float64), 1)[0].numpy()
    forearm = rest[w] - rest[e]
    axis = np.cross(forearm, [0.0, 1.0, 0.0])
    axis /= np.linalg.norm(axis)
    ours = ref.copy()
    ours[:, 3 * e:3 * e + 3] = np.radians(30.0) * axis  # pose_body joint e-1 sits at poses[3e:3e+3]
    res = rf.compare_posed(rf.pose_sequence(joints_model, ours[:, :3], ours[:, 3:]),
                           rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:]))
    angles = np.array(res["angle_deg"])
    assert angles[e - 1] == pytest.approx(30.0, abs=1e-6)
    assert np.delete(angles, e - 1).max() < 1e-6
    bones = dict(zip(rf.bone_names(), res["bone_deg"]))
    assert bones["left_elbow->left_wrist"] == pytest.approx(30.0, abs=1e-5)
    assert max(v for k, v in bones.items() if k != "left_elbow->left_wrist") < 1e-5
    mm = np.array(res["joint_mm"])
    expect = 2 * np.linalg.norm(forearm) * np.sin(np.radians(15.0)) * 1000
    assert mm[w - 1] == pytest.approx(expect, rel=1e-6)
    assert mm.mean() == pytest.approx(expect / 21, rel=1e-6)


def test_random_offsets_match_scipy(joints_model):
    """Per-joint angles of random local offsets against scipy's magnitude of the relative rotation."""
    ref = _random_poses(8, seed=4)
    ours = ref.copy()
    rng = np.random.default_rng(5)
    ours[:, 3:] = (Rotation.from_rotvec(ref[:, 3:].reshape(-1, 3)) *
                   Rotation.from_rotvec(0.4 * rng.standard_normal((8 * 21, 3)))).as_rotvec().reshape(8, 63)
    res = rf.compare_posed(rf.pose_sequence(joints_model, ours[:, :3], ours[:, 3:]),
                           rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:]))
    rel = (Rotation.from_rotvec(ours[:, 3:].reshape(-1, 3)) * Rotation.from_rotvec(ref[:, 3:].reshape(-1, 3)).inv())
    expect = np.degrees(rel.magnitude()).reshape(8, 21).mean(0)
    np.testing.assert_allclose(res["angle_deg"], expect, atol=1e-6)


def test_pelvis_difference_ignores_heading_and_sees_tilt(joints_model):
    ref = _random_poses(30, seed=6)
    # upright in the Z-up world (the model's Y up turned onto Z), swaying a little, turning about z
    upright = Rotation.from_rotvec(np.linspace(0, 3, 30)[:, None] * [0, 0, 1]) * Rotation.from_rotvec([np.pi / 2, 0, 0])
    ref[:, :3] = (upright * Rotation.from_rotvec(0.3 * ref[:, :3])).as_rotvec()
    ours = ref.copy()
    turned = Rotation.from_rotvec([0, 0, 1.1]) * Rotation.from_rotvec(ref[:, :3])
    ours[:, :3] = turned.as_rotvec()
    same = rf.compare_posed(rf.pose_sequence(joints_model, ours[:, :3], ours[:, 3:]),
                            rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:]))
    assert same["pelvis_deg"] == pytest.approx(0.0, abs=1e-5)
    assert same["heading_turn_deg"] == pytest.approx(np.degrees(1.1), abs=1e-5)
    ours[:, :3] = (turned * Rotation.from_rotvec([np.radians(8.0), 0, 0])).as_rotvec()  # pelvis tilted 8 deg
    tilted = rf.compare_posed(rf.pose_sequence(joints_model, ours[:, :3], ours[:, 3:]),
                              rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:]))
    assert tilted["pelvis_deg"] == pytest.approx(8.0, abs=0.2)
    assert tilted["mean_joint_mm"] == pytest.approx(0.0, abs=1e-6)  # root-relative joints ignore the root


def test_a_turned_pelvis_frame_shows_in_the_root_relative_error_only(joints_model):
    """One world body described in a pelvis frame tilted 10 deg (joints in the pelvis frame turned back by
    the tilt): the root-relative error is that turn's displacement (closed form), the world-frame and
    best-turn errors are 0 and the pelvis differs by 10 deg."""
    T = 12
    ref = _random_poses(T, seed=8)
    upright = Rotation.from_rotvec(np.linspace(0, 2, T)[:, None] * [0, 0, 1]) * Rotation.from_rotvec([np.pi / 2, 0, 0])
    ref[:, :3] = upright.as_rotvec()
    p_ref = rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:])
    Q = torch.from_numpy(Rotation.from_rotvec([np.radians(10.0), 0, 0]).as_matrix())  # about the model's left axis
    ours = rf.Posed(p_ref.root @ Q, p_ref.body, p_ref.joints @ Q)  # rows: x -> Q^T x
    res = rf.compare_posed(ours, p_ref)
    x = p_ref.joints[:, 1:].numpy()
    turned = Rotation.from_rotvec([np.radians(-10.0), 0, 0]).apply(x.reshape(-1, 3)).reshape(x.shape)
    expect = np.linalg.norm(turned - x, axis=-1).mean() * 1000
    assert expect > 20.0
    assert res["mean_joint_mm"] == pytest.approx(expect, rel=1e-6)
    assert res["world_joint_mm"] == pytest.approx(0.0, abs=1e-6)
    assert res["aligned_joint_mm"] == pytest.approx(0.0, abs=1e-4)
    assert res["pelvis_deg"] == pytest.approx(10.0, abs=1e-4)
    assert res["mean_angle_deg"] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------ files

def _write_fit(path, poses, **extra):
    np.savez(path, poses=poses, mocap_frame_rate=np.array(120.0), **extra)


def test_pairing_by_subject_and_trial(tmp_path):
    fits = tmp_path / "fits"
    fits.mkdir()
    for name in ("cmu_02_02_stageii.npz", "cmu_10_05_stageii.npz", "cmu_99_01_stageii.npz"):
        _write_fit(fits / name, np.zeros((4, 165)))
    raw = tmp_path / "raw"
    for rel in ("cmu_iclone/subjects/002/002_02.bvh", "cmu_iclone/subjects/002/002_20.bvh",
                "cmu_daz_atelier/subjects/10/10_05.bvh", "cmu_daz_atelier/subjects/10/10_05_extra.bvh"):
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_text("")
    pairs = rf.find_paired_takes(fits, raw)
    assert [(p.take, p.source, p.bvh_path.name) for p in pairs] == [
        ("02_02", "cmu_iclone", "002_02.bvh"), ("10_05", "cmu_daz_atelier", "10_05.bvh")]


def test_read_fit_reads_mosh_files_and_names_bad_ones(tmp_path):
    good = tmp_path / "cmu_01_01_stageii.npz"
    poses = np.zeros((5, 165))
    # MoSh++ files carry object arrays (markers_latent_vids); reading them must not need pickle
    _write_fit(good, poses, markers_latent_vids=np.array({"C7": 1}, dtype=object))
    p, fps = rf.read_fit(good)
    assert p.shape == (5, 165) and fps == 120.0
    bad = poses.copy()
    bad[2, 10] = np.nan
    _write_fit(tmp_path / "nan.npz", bad)
    with pytest.raises(ValueError, match=r"nan\.npz.*'poses'.*NaN"):
        rf.read_fit(tmp_path / "nan.npz")
    np.savez(tmp_path / "norate.npz", poses=poses)
    with pytest.raises(ValueError, match=r"norate\.npz.*frame rate"):
        rf.read_fit(tmp_path / "norate.npz")


# ------------------------------------------------------------------------------------ the real paired takes

@pytest.fixture(scope="module")
def iclone_raw(tmp_path_factory):
    if not PAIRED_FITS.is_dir():
        pytest.skip(f"{PAIRED_FITS} is not here (AMASS fits for measurement only; see ../shared/amass_dev/README.md)")
    if not ICLONE_ARCHIVE.is_file():
        pytest.skip(f"{ICLONE_ARCHIVE} is not here")
    from human_body_prior.data.prepare_open_mocap import extract_archives

    raw = tmp_path_factory.mktemp("paired_raw")
    extract_archives(ICLONE_ARCHIVE.parent, raw, ("cmu_iclone",))
    return raw


def test_real_paired_take(iclone_raw, joints_model):
    """02_02: the lag found on the flexion signals is the one with the smallest joint error (within a
    frame), and the measures are in the issue's range."""
    res = rf.run_fidelity(PAIRED_FITS, iclone_raw, takes=["02_02"])
    (take,) = res["takes"]
    assert take["source"] == "cmu_iclone" and take["skeleton"] == "iclone_cc"
    assert take["lag_agreement"] > 0.8
    # an independent search: joint error over the whole overlap at every lag
    pair = rf.find_paired_takes(PAIRED_FITS, iclone_raw)[0]
    ref, fps = rf.read_fit(pair.fit_path)
    from human_body_prior.data.retarget import Retargeter
    from human_body_prior import default_body_model_path

    ours, our_fps, _ = rf.import_bvh(pair.bvh_path, Retargeter.from_model_file(default_body_model_path()))
    ours = rf.resample_poses(ours, our_fps, fps)
    po = rf.pose_sequence(joints_model, ours[:, :3], ours[:, 3:66])
    pr = rf.pose_sequence(joints_model, ref[:, :3], ref[:, 3:66])
    err = {}
    for lag in range(-10, 11):
        t = np.arange(max(0, -lag), min(len(pr.joints), len(po.joints) - lag))
        err[lag] = float((po.joints[t + lag] - pr.joints[t]).norm(dim=-1).mean())
    assert abs(take["lag_frames"] - min(err, key=err.get)) <= 1
    assert take["frames"] == pytest.approx(len(ref) / 4, abs=2)  # 120 fps fit compared at 30 fps
    row = res["rows"][0]
    assert 10 < row["joint_mm"] < 200 and 2 < row["angle_deg"] < 60
    assert np.isfinite([row[k] for k in ("knee_bias_deg", "elbow_bias_deg", "collar_bias_deg", "pelvis_deg")]).all()
