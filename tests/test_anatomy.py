"""Anatomical corrections of retargeted poses (data/anatomy.py) and the performer calibration that feeds
them (data/performer.py), checked against forward kinematics, scipy's Rotation and analytic cases."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_fixtures import tpose_joints

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from human_body_prior.data import anatomy
from human_body_prior.data.bvh import BVH, joint_world_frames
from human_body_prior.data.performer import TILT_RANGE_DEG, calibrate, take_measures

IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
PARENTS = np.array(SMPLX_PARENTS)


def _identity(F):
    return np.broadcast_to(np.eye(3), (F, len(SMPLX_JOINT_NAMES), 3, 3)).copy()


def _world(local):
    return joint_world_frames(local, np.zeros(local.shape[:-1]), PARENTS)[1]


def _positions(local, J):
    offsets = np.array([J[j] - J[p] if p >= 0 else J[j] for j, p in enumerate(PARENTS)])
    return joint_world_frames(local, np.broadcast_to(offsets, local.shape[:-1]).copy(), PARENTS)[0]


def _angle_deg(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_girdle_elevation_follows_inmans_rhythm():
    assert anatomy.girdle_elevation_deg(0.0) == 0.0
    assert anatomy.girdle_elevation_deg(30.0) == 0.0  # the setting phase
    assert anatomy.girdle_elevation_deg(90.0) == pytest.approx(20.0)  # a third of the 60 beyond it
    assert anatomy.girdle_elevation_deg(180.0) == pytest.approx(50.0)


@pytest.mark.parametrize("arm_deg", [0.0, 45.0, 90.0, 150.0])
def test_girdle_rhythm_moves_collars_and_keeps_the_arms(arm_deg):
    """Arms lowered from the T-pose by (90 - arm_deg): each collar turns about the forward axis by the
    rhythm's difference to the rest arm, the upper arm and everything below keep their world orientation."""
    J = tpose_joints()
    F = 1
    local = _identity(F)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        rest = J[IDX[f"{side}_elbow"]] - J[IDX[f"{side}_shoulder"]]
        rest_elev = np.degrees(np.arccos(-rest[1] / np.linalg.norm(rest)))
        turn = Rotation.from_rotvec([0, 0, sign * np.radians(arm_deg - rest_elev)]).as_matrix()
        local[:, IDX[f"{side}_shoulder"]] = turn
        local[:, IDX[f"{side}_elbow"]] = Rotation.from_rotvec([0, 0.4, 0.3]).as_matrix()
    before = _world(local)
    anatomy.apply_girdle_rhythm(local, J, PARENTS)
    after = _world(local)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        rest = J[IDX[f"{side}_elbow"]] - J[IDX[f"{side}_shoulder"]]
        rest_elev = _angle_deg(rest, [0.0, -1.0, 0.0])
        arm = before[0, IDX[f"{side}_shoulder"]] @ rest  # the posed upper arm (the trunk is at rest)
        expected = anatomy.girdle_elevation_deg(_angle_deg(arm, [0.0, -1.0, 0.0])) - anatomy.girdle_elevation_deg(rest_elev)
        rotvec = Rotation.from_matrix(local[0, IDX[f"{side}_collar"]]).as_rotvec()
        assert np.allclose(rotvec, [0, 0, sign * np.radians(expected)], atol=1e-9)
        for part in ("shoulder", "elbow", "wrist"):
            assert np.allclose(after[:, IDX[f"{side}_{part}"]], before[:, IDX[f"{side}_{part}"]], atol=1e-12)
    # arms at the sides lower the collars, arms overhead raise them
    sign_expected = np.sign(anatomy.girdle_elevation_deg(arm_deg) - anatomy.girdle_elevation_deg(86.7))
    elevation = Rotation.from_matrix(local[0, IDX["left_collar"]]).as_rotvec()[2]
    assert np.sign(elevation) == sign_expected or abs(elevation) < 1e-3


def _twist(R, axis):
    """Signed twist (rad) of rotations R (F, 3, 3) about a unit axis: R = swing * twist (scipy)."""
    q = Rotation.from_matrix(R).as_quat()  # x, y, z, w
    return 2 * np.arctan2(q[:, :3] @ axis, q[:, 3])


def test_untwisted_elbow_keeps_the_forearm_direction_and_only_loses_the_mean_twist():
    J = tpose_joints()
    rng = np.random.default_rng(0)
    local = _identity(50)
    for side in ("left", "right"):
        e, w = IDX[f"{side}_elbow"], IDX[f"{side}_wrist"]
        axis = (J[w] - J[e]) / np.linalg.norm(J[w] - J[e])
        twist = Rotation.from_rotvec(np.outer(0.4 + 0.2 * rng.normal(size=50), axis))  # 23 deg on average
        local[:, e] = (Rotation.from_rotvec(rng.normal(size=(50, 3)) * 0.6) * twist).as_matrix()
    before = _positions(local, J)
    twists_before = {s: _twist(local[:, IDX[f"{s}_elbow"]], (J[IDX[f"{s}_wrist"]] - J[IDX[f"{s}_elbow"]]) /
                               np.linalg.norm(J[IDX[f"{s}_wrist"]] - J[IDX[f"{s}_elbow"]])) for s in ("left", "right")}
    anatomy.untwist_elbows(local, J)
    after = _positions(local, J)
    for side in ("left", "right"):
        e, w = IDX[f"{side}_elbow"], IDX[f"{side}_wrist"]
        axis = (J[w] - J[e]) / np.linalg.norm(J[w] - J[e])
        assert np.allclose(after[:, w], before[:, w], atol=1e-12)  # the forearm points where it did
        t = _twist(local[:, e], axis)
        assert abs(np.angle(np.mean(np.exp(1j * t)))) < 1e-9  # no constant twist left ...
        d_before = np.angle(np.exp(1j * (twists_before[side] - twists_before[side][0])))
        assert np.allclose(np.angle(np.exp(1j * (t - t[0]))), d_before, atol=1e-9)  # ... its variation kept


@pytest.mark.parametrize("offset", [5.0, 20.0])
def test_straightened_knees_keep_the_ankle_on_the_hip_line(offset):
    J = tpose_joints()
    rng = np.random.default_rng(1)
    F = 40
    local = _identity(F)
    flex = rng.uniform(2.0, 100.0, size=F)
    local[:, IDX["left_hip"]] = Rotation.from_rotvec(rng.normal(size=(F, 3)) * 0.5).as_matrix()
    local[:, IDX["left_knee"]] = Rotation.from_rotvec(np.radians(flex)[:, None] * [1.0, 0, 0]).as_matrix()
    local[:, IDX["left_ankle"]] = Rotation.from_rotvec(rng.normal(size=(F, 3)) * 0.3).as_matrix()
    before_pos, before_rot = _positions(local, J), _world(local)
    anatomy.straighten_knees(local, J, PARENTS, offset)
    after_pos, after_rot = _positions(local, J), _world(local)
    h, k, a = (IDX[f"left_{p}"] for p in ("hip", "knee", "ankle"))
    bend_before = anatomy.knee_flexion_deg(before_pos[:, h], before_pos[:, k], before_pos[:, a])
    bend_after = anatomy.knee_flexion_deg(after_pos[:, h], after_pos[:, k], after_pos[:, a])
    assert np.allclose(bend_after, np.maximum(bend_before - offset, 0.0), atol=1e-5)
    line_before = before_pos[:, a] - before_pos[:, h]
    line_after = after_pos[:, a] - after_pos[:, h]
    assert _angle_deg(line_before, line_after).max() < 1e-5  # the ankle stays on its line from the hip
    assert np.allclose(after_rot[:, a], before_rot[:, a], atol=1e-9)  # the foot keeps its orientation
    h, k, a = (IDX[f"right_{p}"] for p in ("hip", "knee", "ankle"))  # the rest leg, a little bent, too
    bend_before = anatomy.knee_flexion_deg(before_pos[:, h], before_pos[:, k], before_pos[:, a])
    bend_after = anatomy.knee_flexion_deg(after_pos[:, h], after_pos[:, k], after_pos[:, a])
    assert np.allclose(bend_after, np.maximum(bend_before - offset, 0.0), atol=1e-5)


def test_pitched_feet_and_tilted_pelvis():
    J = tpose_joints()
    local = _identity(1)
    anatomy.pitch_feet(local, 10.0)
    toe = _positions(local, J)[0, IDX["left_foot"]] - J[IDX["left_ankle"]]
    rest = J[IDX["left_foot"]] - J[IDX["left_ankle"]]
    elevation = lambda d: np.degrees(np.arctan2(d[1], np.hypot(d[0], d[2])))  # noqa: E731
    assert elevation(toe) == pytest.approx(elevation(rest) - 10.0, abs=0.5)  # turned down by about 10
    local = _identity(1)
    before = _world(local)
    anatomy.tilt_pelvis(local, PARENTS, 12.0)
    after = _world(local)
    up = after[0, 0] @ [0.0, 1.0, 0.0]
    assert np.degrees(np.arctan2(up[2], up[1])) == pytest.approx(12.0)  # the pelvis leans forward
    for child in np.flatnonzero(PARENTS == 0):
        assert np.allclose(after[:, child], before[:, child])


def _leg_bvh(knee_deg, foot_pitch_deg, pelvis_tilt_deg=0.0):
    """A small Y-up BVH (pelvis, legs with toes, spine to the neck, arms to the shoulders) standing:
    knees bent knee_deg (F,) with the feet kept flat, the toes foot_pitch_deg below the ankle, the
    pelvis bone tilted forward pelvis_tilt_deg (legs and trunk upright)."""
    names = ["pelvis", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
             "right_ankle", "right_foot", "spine3", "neck", "left_shoulder", "right_shoulder", "left_elbow",
             "right_elbow", "left_wrist", "right_wrist"]
    parents = np.array([-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 9, 9, 11, 12, 13, 14])
    toe = 0.14 * np.array([0, -np.sin(np.radians(foot_pitch_deg)), np.cos(np.radians(foot_pitch_deg))])
    offsets = np.array([[0, 0, 0], [0.1, -0.05, 0], [0, -0.4, 0], [0, -0.4, 0], toe, [-0.1, -0.05, 0], [0, -0.4, 0],
                        [0, -0.4, 0], toe, [0, 0.3, 0], [0, 0.2, 0], [0.18, 0.15, 0], [-0.18, 0.15, 0],
                        [0.25, 0, 0], [-0.25, 0, 0], [0.25, 0, 0], [-0.25, 0, 0]])
    F = len(knee_deg)
    motion = np.zeros((F, 3 + 3 * len(names)))
    motion[:, 1] = 0.9
    rot = np.zeros((F, len(names), 3))  # per joint (Z, X, Y) degrees, the channel order
    rot[:, 0] = [0.0, pelvis_tilt_deg, 0.0]  # the pelvis bone tilts forward ...
    for k in (1, 5, 9):
        rot[:, k] = [0.0, -pelvis_tilt_deg, 0.0]  # ... and the legs and the trunk stay upright
    for k in (2, 6):
        rot[:, k] = np.stack([np.zeros(F), -knee_deg, np.zeros(F)], 1)  # knee flexion: about X, shank back
    for k in (3, 7):
        rot[:, k] = np.stack([np.zeros(F), knee_deg, np.zeros(F)], 1)  # the foot stays flat
    motion[:, 3:] = rot.reshape(F, -1)
    channels = [("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")] + \
        [("Zrotation", "Xrotation", "Yrotation")] * (len(names) - 1)
    return BVH(names, parents, offsets, channels, [], motion, frame_time=1 / 30, source="legs")


LEG_MAP = {n: n for n in ["pelvis", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
                          "right_ankle", "right_foot", "spine3", "neck", "left_shoulder", "right_shoulder",
                          "left_elbow", "right_elbow", "left_wrist", "right_wrist"]}


def test_performer_calibration_reads_knees_feet_and_pelvis():
    knee = np.concatenate([np.full(20, 12.0), np.linspace(12.0, 60.0, 80)])
    bvh = _leg_bvh(knee, foot_pitch_deg=15.0, pelvis_tilt_deg=25.0)
    m = take_measures(bvh, LEG_MAP)
    assert np.allclose(m.knee, knee[:, None], atol=1e-6)
    assert m.flat_pitch.size > 0 and np.allclose(m.flat_pitch, -15.0, atol=1e-6)
    cal = calibrate(["a", "b"], LEG_MAP, read=lambda _: bvh)
    assert cal.knee_offset_deg == pytest.approx(12.0 - anatomy.FULL_EXTENSION_DEG, abs=0.01)
    assert cal.flat_foot_pitch_deg == pytest.approx(-15.0, abs=0.01)
    assert cal.pelvis_tilt_deg == pytest.approx(25.0, abs=0.01)
    assert cal.pelvis_turn_deg == pytest.approx(TILT_RANGE_DEG - 25.0, abs=0.01)  # the excess turned back
    upright = calibrate(["a"], LEG_MAP, read=lambda _: _leg_bvh(knee, 15.0, pelvis_tilt_deg=-6.0))
    assert upright.pelvis_turn_deg == 0.0  # within the range people stand in


def test_calibration_skips_unreadable_takes():
    def read(path):
        raise OSError(f"{path}: gone")
    assert calibrate(["x.bvh"], LEG_MAP, read=read).knee_offset_deg == 0.0


def test_bvh2amass_calibrates_each_folder_as_one_performer(tmp_path):
    from human_body_prior.data.bvh import write_bvh
    from human_body_prior.data.bvh2amass import calibrations_by_folder

    knee = np.linspace(12.0, 60.0, 60)
    for folder, shift in (("a", 0.0), ("b", 10.0)):
        for take in ("1.bvh", "2.bvh"):
            (tmp_path / folder).mkdir(exist_ok=True)
            write_bvh(tmp_path / folder / take, _leg_bvh(knee + shift, foot_pitch_deg=15.0))
    files = sorted(tmp_path.rglob("*.bvh"))
    cal = calibrations_by_folder(files, LEG_MAP)
    offsets = {p.parent.name: cal[p].knee_offset_deg for p in files}
    assert offsets["a"] == pytest.approx(12.0 - anatomy.FULL_EXTENSION_DEG, abs=0.1)
    assert offsets["b"] == pytest.approx(22.0 - anatomy.FULL_EXTENSION_DEG, abs=0.1)
    assert all(c is None for c in calibrations_by_folder(files, LEG_MAP, calibrate=False).values())


def test_one_file_is_calibrated_with_its_folder(tmp_path):
    """bvh2amass on one file of a folder gives that file what converting the whole folder gives it."""
    import json

    from human_body_prior.data import bvh2amass
    from human_body_prior.data.bvh import write_bvh

    src, knee = tmp_path / "subject", np.linspace(12.0, 60.0, 40)
    src.mkdir()
    write_bvh(src / "1.bvh", _leg_bvh(knee + 20.0, foot_pitch_deg=15.0))  # never straighter than 32 deg ...
    write_bvh(src / "2.bvh", _leg_bvh(knee, foot_pitch_deg=15.0))  # ... but the performer's other take is
    (tmp_path / "map.json").write_text(json.dumps(LEG_MAP))
    common = ["--joint-map", str(tmp_path / "map.json"), "--up", "y"]
    assert bvh2amass.main([str(src / "1.bvh"), str(tmp_path / "one.npz")] + common) == 0
    assert bvh2amass.main([str(src), str(tmp_path / "all")] + common) in (0, 1)
    with np.load(tmp_path / "one.npz") as one, np.load(tmp_path / "all" / "1.npz") as every:
        assert np.allclose(one["poses"], every["poses"])
