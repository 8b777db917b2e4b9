"""Retargeting BVH onto SMPL-X: known rotations are recovered exactly (any units and up axis),
shared chains split evenly, the three shared skeletons import with the documented quality, the
bvh2amass command writes AMASS-style files atomically, and bad input fails clearly."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from mocap_fixtures import extract_take, shared_take_dir, tpose_model_path  # noqa: F401 (fixtures)

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from human_body_prior.data import bvh2amass
from human_body_prior.data.bvh import BVH, bvh_forward_kinematics, read_bvh, write_bvh
from human_body_prior.data.retarget import Retargeter, model_rest_skeleton
from human_body_prior.cli import run as run_cli
from human_body_prior.evaluation.retarget_quality import bend_direction_share, joint_errors_mm
from human_body_prior.evaluation.hinges import anatomical_share, hinge_angles

BODY = 22
Q_ZUP = Rotation.from_euler("x", 90, degrees=True).as_matrix()  # model (Y up) -> a Z-up file


def _body_model(path):
    from human_body_prior.body_model.body_model import BodyModel
    return BodyModel(path, num_betas=10)


def _posed_joints(bm, pose, trans):
    p = torch.as_tensor(pose.reshape(len(pose), -1), dtype=torch.float64)
    bm = bm.to(torch.float64) if hasattr(bm, "to") else bm
    with torch.no_grad():
        out = bm(root_orient=p[:, :3], pose_body=p[:, 3:66], pose_jaw=p[:, 66:69], pose_eye=p[:, 69:75],
                 pose_hand=p[:, 75:165], trans=torch.as_tensor(trans, dtype=torch.float64),
                 betas=torch.zeros(len(p), 10, dtype=torch.float64))
    return out.Jtr[:, :55].numpy()


def _skeleton_bvh(J, local_R, root_pos, world=np.eye(3), unit=1.0, names=None, order="ZXY"):
    """A BVH of the first 22 SMPL-X joints with rest offsets from J, in a world rotated by ``world``
    and scaled by ``unit``; local_R (F, 22, 3, 3) in the model frame, root_pos (F, 3) model frame."""
    names = names or SMPLX_JOINT_NAMES[:BODY]
    parents = np.array(SMPLX_PARENTS[:BODY])
    off = np.array([J[j] - J[p] if p >= 0 else np.zeros(3) for j, p in enumerate(parents)]) @ world.T * unit
    Lw = world @ local_R @ world.T
    eul = Rotation.from_matrix(Lw.reshape(-1, 3, 3)).as_euler(order, degrees=True).reshape(len(local_R), BODY, 3)
    root = root_pos @ world.T * unit
    rot_ch = tuple(f"{a}rotation" for a in order)
    channels = [("Xposition", "Yposition", "Zposition") + rot_ch] + [rot_ch] * (BODY - 1)
    motion = np.concatenate([root, eul.reshape(len(local_R), -1)], axis=1)
    return BVH(list(names), parents, off, channels, [], motion, frame_time=1 / 60.0, source="synthetic")


def _flexion(J, joint, child, toward, flex_rad):
    """(F, 3, 3) rotations bending the rest bone joint -> child of J towards ``toward`` by flex_rad (F,):
    about the axis perpendicular to the bone and to ``toward`` (the plane evaluation/hinges measures)."""
    b = (J[child] - J[joint]) / np.linalg.norm(J[child] - J[joint])
    f = np.asarray(toward, dtype=float) - np.dot(toward, b) * b
    axis = np.cross(b, f / np.linalg.norm(f))
    return Rotation.from_rotvec(np.outer(flex_rad, axis)).as_matrix()


def _random_rotations(rng, F, J, max_deg):
    aa = rng.normal(size=(F, J, 3))
    aa *= (np.deg2rad(max_deg) * rng.uniform(0, 1, size=(F, J, 1))) / np.linalg.norm(aa, axis=-1, keepdims=True)
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(F, J, 3, 3)


@pytest.mark.parametrize("world,unit", [(np.eye(3), 1.0), (Q_ZUP, 100.0)], ids=["yup_m", "zup_cm"])
def test_known_rotations_recovered_exactly(tmp_path, tpose_model_path, world, unit):
    J, _ = model_rest_skeleton(tpose_model_path)
    rng = np.random.default_rng(3)
    F = 12
    L = _random_rotations(rng, F, BODY, 60)
    root_pos = J[0] + rng.normal(size=(F, 3)) * 0.3
    bvh = _skeleton_bvh(J, L, root_pos, world, unit)
    path = tmp_path / "synthetic.bvh"
    write_bvh(path, bvh)
    rt = Retargeter(J)
    res = rt.retarget(read_bvh(path), skeleton={n: n for n in SMPLX_JOINT_NAMES[:BODY]}, world_up="y",
                      anatomical=False)
    assert np.allclose(res.diagnostics.C, world.T)
    assert res.scale == pytest.approx(1.0 / unit)
    R_out = Rotation.from_rotvec(res.pose[:, :BODY].reshape(-1, 3)).as_matrix().reshape(F, BODY, 3, 3)
    assert np.abs(R_out - L).max() < 1e-6  # every joint, twist included
    assert np.allclose(res.trans, root_pos - J[0], atol=1e-6)
    assert np.abs(res.pose[:, BODY:]).max() < 1e-9  # unmapped joints stay at identity
    # the body model's own forward kinematics reproduces the BVH joints (same units after scaling)
    P, _ = bvh_forward_kinematics(bvh)
    model = _posed_joints(_body_model(tpose_model_path), res.pose, res.trans)
    assert np.abs(model[:, :BODY] - P @ world / unit).max() < 1e-5


def test_z_up_output_matches_amass_convention(tpose_model_path):
    J, _ = model_rest_skeleton(tpose_model_path)
    rng = np.random.default_rng(4)
    L = _random_rotations(rng, 5, BODY, 30)
    root_pos = J[0] + rng.normal(size=(5, 3)) * 0.2
    bvh = _skeleton_bvh(J, L, root_pos)
    rt = Retargeter(J)
    m = {n: n for n in SMPLX_JOINT_NAMES[:BODY]}
    y = rt.retarget(bvh, skeleton=m, world_up="y")
    z = rt.retarget(bvh, skeleton=m, world_up="z")
    bm = _body_model(tpose_model_path)
    jy = _posed_joints(bm, y.pose, y.trans)
    jz = _posed_joints(bm, z.pose, z.trans)
    assert np.allclose(jz, jy @ Q_ZUP.T, atol=1e-6)  # same motion, world turned so +Y becomes +Z
    assert np.allclose(y.pose[:, 1:], z.pose[:, 1:])


def test_shared_source_joint_splits_rotation_evenly(tpose_model_path):
    """Two SMPL-X spine joints driven by one source joint get half the rotation each."""
    J, _ = model_rest_skeleton(tpose_model_path)
    rng = np.random.default_rng(5)
    F = 6
    L = _random_rotations(rng, F, BODY, 50)
    L[:, 6] = np.eye(3)  # the source has no joint at spine2: its chain spine1 -> spine3 is one bone
    bvh = _skeleton_bvh(J, L, np.tile(J[0], (F, 1)))
    # drop spine2 from the source: re-parent spine3 to spine1 with the summed offset
    keep = [i for i in range(BODY) if i != 6]
    newidx = {o: k for k, o in enumerate(keep)}
    parents = np.array([-1 if SMPLX_PARENTS[o] < 0 else newidx[SMPLX_PARENTS[o] if SMPLX_PARENTS[o] != 6 else 3]
                        for o in keep])
    offsets = np.array([bvh.offsets[o] + (bvh.offsets[6] if o == 9 else 0) for o in keep])
    cols = np.concatenate([np.arange(6)] + [np.arange(6 + 3 * (o - 1), 9 + 3 * (o - 1)) for o in keep[1:]])
    src = BVH([SMPLX_JOINT_NAMES[o] for o in keep], parents, offsets, [bvh.channels[o] for o in keep], [],
              bvh.motion[:, cols], bvh.frame_time)
    jmap = {SMPLX_JOINT_NAMES[o]: SMPLX_JOINT_NAMES[o] for o in keep}
    jmap["spine2"] = "spine1"
    res = Retargeter(J).retarget(src, skeleton=jmap, world_up="y")
    half = Rotation.from_matrix(L[:, 3]).as_rotvec() / 2
    assert np.allclose(res.pose[:, 3], half, atol=1e-6)
    assert np.allclose(res.pose[:, 6], half, atol=1e-6)
    R_spine3 = Rotation.from_rotvec(res.pose[:, 9]).as_matrix()
    assert np.abs(R_spine3 - L[:, 9]).max() < 1e-6


def test_half_turn_twisted_upper_arm_is_repaired(tpose_model_path):
    """Upper arm twisted 180 degrees with the elbow bending backwards gives the same positions as the
    anatomical pose; the retargeter returns the anatomical one."""
    J, _ = model_rest_skeleton(tpose_model_path)
    F = 15
    L = np.tile(np.eye(3), (F, BODY, 1, 1))
    rng = np.random.default_rng(8)
    L[:, 16] = _random_rotations(rng, F, 1, 40)[:, 0]
    flex = np.deg2rad(np.linspace(30, 110, F))
    L[:, 18] = _flexion(J, 18, 20, [0, 0, 1], flex)  # left elbow bends towards +Z
    u = (J[18] - J[16]) / np.linalg.norm(J[18] - J[16])
    T = 2 * np.outer(u, u) - np.eye(3)
    L_src = L.copy()
    L_src[:, 16] = L[:, 16] @ T
    L_src[:, 18] = T @ L[:, 18]
    res = Retargeter(J).retarget(_skeleton_bvh(J, L_src, np.tile(J[0], (F, 1))),
                                 skeleton={n: n for n in SMPLX_JOINT_NAMES[:BODY]}, world_up="y", anatomical=False)
    assert set(res.diagnostics.hinge_twist_deg) == {"left_shoulder"}
    assert abs(abs(res.diagnostics.hinge_twist_deg["left_shoulder"]) - 180) < 0.5
    R_out = Rotation.from_rotvec(res.pose[:, :BODY].reshape(-1, 3)).as_matrix().reshape(F, BODY, 3, 3)
    assert np.abs(R_out[:, [16, 18]] - L[:, [16, 18]]).max() < np.deg2rad(0.5)
    assert bend_direction_share(res.pose, J)["elbow"] == 1.0


@pytest.mark.parametrize("roll_deg", [35.0, -50.0])
def test_rolled_upper_arm_and_thigh_are_calibrated(tpose_model_path, roll_deg):
    """A rig whose upper arm and thigh are rolled about their own axes bends elbow and knee out of
    the model's forward/backward plane; the retargeter turns the roll back without moving a joint."""
    J, _ = model_rest_skeleton(tpose_model_path)
    F = 20
    L = np.tile(np.eye(3), (F, BODY, 1, 1))
    rng = np.random.default_rng(9)
    L[:, 16] = _random_rotations(rng, F, 1, 40)[:, 0]
    L[:, 1] = _random_rotations(rng, F, 1, 30)[:, 0]
    flex = np.deg2rad(np.linspace(25, 100, F))
    L[:, 18] = _flexion(J, 18, 20, [0, 0, 1], flex)  # left elbow forwards (+Z)
    L[:, 4] = _flexion(J, 4, 7, [0, 0, -1], flex)  # left knee backwards (-Z)
    L_src = L.copy()
    for upper, hinge in ((16, 18), (1, 4)):
        u = (J[hinge] - J[upper]) / np.linalg.norm(J[hinge] - J[upper])
        T = Rotation.from_rotvec(u * np.deg2rad(roll_deg)).as_matrix()
        L_src[:, upper] = L[:, upper] @ T
        L_src[:, hinge] = T.T @ L[:, hinge]
    bvh = _skeleton_bvh(J, L_src, np.tile(J[0], (F, 1)))
    res = Retargeter(J).retarget(bvh, skeleton={n: n for n in SMPLX_JOINT_NAMES[:BODY]}, world_up="y",
                                 anatomical=False)
    turns = res.diagnostics.hinge_twist_deg
    assert abs(turns["left_shoulder"] + roll_deg) < 0.5 and abs(turns["left_hip"] + roll_deg) < 0.5
    assert "right_shoulder" not in turns  # nothing bends there: left as it is
    R_out = Rotation.from_rotvec(res.pose[:, :BODY].reshape(-1, 3)).as_matrix().reshape(F, BODY, 3, 3)
    assert np.abs(R_out[:, [16, 18, 1, 4]] - L[:, [16, 18, 1, 4]]).max() < np.deg2rad(0.5)
    # joint positions are those of the source: forward kinematics of input and output agree
    P_src = bvh_forward_kinematics(bvh)[0]
    P_out = bvh_forward_kinematics(_skeleton_bvh(J, R_out, np.tile(J[0], (F, 1))))[0]
    assert np.abs(P_out - P_src).max() < 1e-9


def test_unknown_skeleton_lists_unmapped_joints(tpose_model_path):
    J, _ = model_rest_skeleton(tpose_model_path)
    bvh = _skeleton_bvh(J, np.tile(np.eye(3), (2, BODY, 1, 1)), np.tile(J[0], (2, 1)),
                        names=[f"bone{i}" for i in range(BODY)])
    with pytest.raises(ValueError) as e:
        Retargeter(J).retarget(bvh)
    msg = str(e.value)
    assert "unknown skeleton" in msg and "left_knee" in msg and "bone3" in msg
    with pytest.raises(ValueError, match="valid names"):
        Retargeter(J).retarget(bvh, skeleton={"left_kneee": "bone4", **{n: f"bone{i}" for i, n in enumerate(SMPLX_JOINT_NAMES[:BODY])}})
    with pytest.raises(ValueError, match="could not map"):
        Retargeter(J).retarget(bvh, skeleton="cmu_daz")


@pytest.mark.parametrize("key", ["cmu_daz", "iclone_cc", "reactidle"])
def test_shared_skeletons_import_with_quality(shared_take_dir, tpose_model_path, key):
    """One real take per skeleton (300 frames): without the anatomical corrections the body joints lie
    within 25 mm of the length-normalised BVH joints on average; with them knees and elbows bend the
    anatomical way."""
    path = extract_take(shared_take_dir, key)
    bvh = read_bvh(path)
    sub = BVH(bvh.names, bvh.parents, bvh.offsets, bvh.channels, bvh.end_sites,
              bvh.motion[np.linspace(0, bvh.num_frames - 1, 300).astype(int)], bvh.frame_time, bvh.source)
    rt = Retargeter.from_model_file(tpose_model_path)
    exact = rt.retarget(sub, anatomical=False)  # the source's geometry
    errs = joint_errors_mm(exact, _posed_joints(_body_model(tpose_model_path), exact.pose, exact.trans), rt.J)
    assert len(errs) >= 10
    assert np.mean([e.mean() for e in errs.values()]) <= 25.0
    res = rt.retarget(sub)  # with the anatomical corrections, as bvh2amass writes it
    assert res.skeleton == key
    joints = _posed_joints(_body_model(tpose_model_path), res.pose, res.trans)
    bend = bend_direction_share(res.pose, rt.J)
    for k in ("knee", "elbow"):
        if bend[f"{k}_bent_frames"] >= 20:
            assert bend[k] >= 0.95, bend
    # and in the plane the prior's evaluation expects (evaluation/hinges: at most 30 deg sideways); the
    # uncalibrated rigs bend CMU elbows 24-33 deg and ReActIdle's 17-60 deg out of it
    R = torch.from_numpy(Rotation.from_rotvec(res.pose[:, 1:22].reshape(-1, 3)).as_matrix().reshape(-1, 21, 3, 3))
    plane = anatomical_share(R, torch.from_numpy(rt.J))
    assert plane["left_elbow"] >= 0.97 and plane["right_elbow"] >= 0.97, plane
    # the zero pose carries the forearm 5.4 deg off the upper arm's line (SMPL's), so the DAZ rig's elbow,
    # which bends about an axis not quite square to its forearm, stays 5-8 deg off the model's plane
    for name, (flex, side) in hinge_angles(R, torch.from_numpy(rt.J)).items():
        if "elbow" in name and int((flex > 20).sum()) >= 20:
            assert float(side[flex > 20].median()) < 6.0, (name, float(side[flex > 20].median()))
    # feet near the ground (Z up, metres): the lowest ankle over the take is within 25 cm of z = 0
    assert abs(joints[:, [7, 8], 2].min()) < 0.25


def test_resample_matches_scipy_slerp():
    rng = np.random.default_rng(6)
    F, Jn = 9, 4
    R = Rotation.from_rotvec(rng.normal(size=(F * Jn, 3)))
    pose = R.as_rotvec().reshape(F, Jn, 3)
    trans = rng.normal(size=(F, 3))
    out_pose, out_trans = bvh2amass.resample(pose, trans, 60.0, 25.0)
    t_out = np.arange(out_pose.shape[0]) / 25.0
    assert out_pose.shape[0] == int(np.floor(8 / 60 * 25)) + 1
    for j in range(Jn):
        ref = Slerp(np.arange(F) / 60.0, Rotation.from_rotvec(pose[:, j]))(t_out)
        got = Rotation.from_rotvec(out_pose[:, j])
        assert np.allclose((ref.inv() * got).magnitude(), 0, atol=1e-6)
    for a in range(3):
        assert np.allclose(out_trans[:, a], np.interp(t_out, np.arange(F) / 60.0, trans[:, a]))
    same_p, same_t = bvh2amass.resample(pose, trans, 30.0, 30.0)
    assert np.array_equal(same_p, pose) and np.array_equal(same_t, trans)


def test_cli_file_and_directory_modes(tmp_path, tpose_model_path):
    J, _ = model_rest_skeleton(tpose_model_path)
    rng = np.random.default_rng(7)
    F = 40
    bvh = _skeleton_bvh(J, _random_rotations(rng, F, BODY, 30), J[0] + rng.normal(size=(F, 3)) * 0.1,
                        names=None)
    # a CMU MotionBuilder-named copy so auto-detection has something to find
    from human_body_prior.data.skeleton_maps import CMU_MOTIONBUILDER
    names = [CMU_MOTIONBUILDER.joint_map[n] for n in SMPLX_JOINT_NAMES[:BODY]]
    bvh.names = names
    src = tmp_path / "in" / "sub" / "take.bvh.gz"
    write_bvh(src, bvh)
    out = tmp_path / "take.npz"
    rc = bvh2amass.main([str(src), str(out), "--fps", "120", "--target-fps", "30", "--bm-path", tpose_model_path])
    assert rc == 0
    d = np.load(out)
    n_out = int(np.floor((F - 1) * 30 / 120)) + 1
    assert d["poses"].shape == (n_out, 165) and d["trans"].shape == (n_out, 3)
    assert float(d["mocap_framerate"]) == 30.0 and str(d["surface_model_type"]) == "smplx"
    assert str(d["skeleton"]) == "cmu_motionbuilder" and str(d["source_file"]) == "take.bvh.gz"
    assert d["betas"].shape == (16,) and str(d["gender"]) == "neutral"
    assert np.array_equal(d["pose_body"], d["poses"][:, 3:66])

    # directory mode mirrors the tree; a broken take fails alone and writes nothing
    (tmp_path / "in" / "broken.bvh").write_text("HIERARCHY\nROOT hips\n{\n  OFFSET 0 0")
    out_dir = tmp_path / "out"
    rc = bvh2amass.main([str(tmp_path / "in"), str(out_dir), "--bm-path", tpose_model_path])
    assert rc == 1
    assert (out_dir / "sub" / "take.npz").is_file()
    assert not (out_dir / "broken.npz").exists()
    assert not [p for p in out_dir.rglob("*") if p.name.startswith(".tmp_")]


def test_cli_failure_writes_nothing(tmp_path, tpose_model_path, capsys):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n}\n"
                   "MOTION\nFrames: 3\nFrame Time: 0.01\n1 2 3\n")
    out = tmp_path / "bad.npz"
    assert run_cli(bvh2amass.main, [str(bad), str(out), "--bm-path", tpose_model_path]) == 1
    err = capsys.readouterr().err
    assert "bad.bvh" in err and "truncated" in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
