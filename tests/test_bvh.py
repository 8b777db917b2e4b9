"""BVH reader/writer/FK: exact round trips of files with known rotations, checked against scipy;
clear errors on malformed and truncated files."""

import gzip
import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_fixtures import reactidle_take, shared_take_dir  # noqa: F401 (fixtures)

from human_body_prior.data.bvh import (BVH, BVHError, bvh_forward_kinematics, channel_rotations, parse_bvh, read_bvh,
                                       rest_pose, write_bvh)

ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_scipy_intrinsic(order):
    rng = np.random.default_rng(1)
    ang = rng.uniform(-180, 180, size=(50, 3))
    ref = Rotation.from_euler(order.upper(), ang, degrees=True).as_matrix()  # upper case = intrinsic
    assert np.allclose(channel_rotations(ang, order), ref, atol=1e-12)


def _random_bvh(rng, frames=7) -> BVH:
    """A small tree: 6-channel root with odd channel order, 3-channel joints in every order, a
    6-channel child joint, branches and end sites."""
    names = ["root", "a", "b", "c", "d", "e"]
    parents = np.array([-1, 0, 1, 0, 3, 4])
    offsets = rng.normal(size=(6, 3)) * 10
    offsets[0] = [1.5, 90.0, -2.0]
    channels = [("Xrotation", "Zposition", "Yrotation", "Xposition", "Zrotation", "Yposition"),
                ("Zrotation", "Xrotation", "Yrotation"),
                ("Yrotation", "Zrotation", "Xrotation"),
                ("Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation"),
                ("Xrotation", "Yrotation", "Zrotation"),
                ()]
    end_sites = [(2, rng.normal(size=3)), (5, rng.normal(size=3))]
    motion = rng.uniform(-170, 170, size=(frames, sum(len(c) for c in channels)))
    return BVH(names, parents, offsets, channels, end_sites, motion, frame_time=1 / 120.0, source="test")


def _reference_fk(bvh: BVH):
    """Independent FK with scipy, one frame and one joint at a time."""
    F, J = bvh.num_frames, len(bvh.names)
    pos, rot = np.zeros((F, J, 3)), np.zeros((F, J, 3, 3))
    for f in range(F):
        k = 0
        for j in range(J):
            vals = dict(zip(bvh.channels[j], bvh.motion[f, k:k + len(bvh.channels[j])]))
            k += len(bvh.channels[j])
            rot_ch = [c for c in bvh.channels[j] if c.endswith("rotation")]
            R = (Rotation.from_euler("".join(c[0] for c in rot_ch), [vals[c] for c in rot_ch], degrees=True).as_matrix()
                 if rot_ch else np.eye(3))
            t = bvh.offsets[j].copy()
            for a, c in enumerate(("Xposition", "Yposition", "Zposition")):
                if c in vals:
                    t[a] = vals[c] + (bvh.offsets[j, a] if bvh.parents[j] < 0 else 0.0)
            p = bvh.parents[j]
            if p < 0:
                rot[f, j], pos[f, j] = R, t
            else:
                rot[f, j] = rot[f, p] @ R
                pos[f, j] = pos[f, p] + rot[f, p] @ t
    return pos, rot


@pytest.mark.parametrize("suffix", [".bvh", ".bvh.gz"])
def test_round_trip_exact_and_fk_matches_scipy(tmp_path, suffix):
    rng = np.random.default_rng(0)
    bvh = _random_bvh(rng)
    path = tmp_path / f"take{suffix}"
    write_bvh(path, bvh)
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = read_bvh(path)
    assert back.names == bvh.names
    assert np.array_equal(back.parents, bvh.parents)
    assert np.array_equal(back.offsets, bvh.offsets)  # exact, not approximately
    assert np.array_equal(back.motion, bvh.motion)
    assert back.channels == bvh.channels
    assert back.frame_time == bvh.frame_time
    assert len(back.end_sites) == 2 and all(np.array_equal(a[1], b[1]) for a, b in zip(back.end_sites, bvh.end_sites))
    pos, rot = bvh_forward_kinematics(back)
    ref_pos, ref_rot = _reference_fk(bvh)
    assert np.allclose(rot, ref_rot, atol=1e-12)
    assert np.allclose(pos, ref_pos, atol=1e-9)
    _, _, ends = bvh_forward_kinematics(back, end_sites=True)
    assert np.allclose(ends[:, 0], ref_pos[:, 2] + np.einsum("fab,b->fa", ref_rot[:, 2], bvh.end_sites[0][1]))


def test_known_rotation_analytic():
    """A 90 degree Zrotation at the root turns a +X child offset into +Y."""
    text = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT arm
  {
    OFFSET 2 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 3 0 0
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.04
1 2 3 90 0 0 0 0 0
"""
    bvh = parse_bvh(text)
    pos, rot, ends = bvh_forward_kinematics(bvh, end_sites=True)
    assert np.allclose(pos[0, 1], [1, 4, 3])
    assert np.allclose(ends[0, 0], [1, 7, 3])
    assert bvh.fps == pytest.approx(25.0)
    rp, _ = rest_pose(bvh)
    assert np.allclose(rp[1], [2, 0, 0])


GOOD = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT leg
  {
    OFFSET 0 -1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.01
0 1 0 0 0 0 10 0 0
0 1 0 0 0 0 20 0 0
"""


def _bad(tmp_path, text, name="bad.bvh"):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BVHError) as e:
        read_bvh(p)
    msg = str(e.value)
    assert str(p) in msg
    return msg


def test_good_file_parses(tmp_path):
    p = tmp_path / "good.bvh"
    p.write_text(GOOD)
    assert read_bvh(p).motion.shape == (2, 9)


def test_truncated_motion_names_file_and_line(tmp_path):
    msg = _bad(tmp_path, GOOD.rsplit("\n", 2)[0] + "\n")  # drop the last frame line
    assert "truncated" in msg and "line 19" in msg


def test_short_frame_line(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("0 1 0 0 0 0 20 0 0", "0 1 0 0 0 0 20"))
    assert "line 20" in msg and "7 values" in msg


def test_non_numeric_value(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("0 1 0 0 0 0 20 0 0", "0 1 0 0 0 0 abc 0 0"))
    assert "line 20" in msg


def test_bad_offset(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("OFFSET 0 -1 0\n    CHANNELS", "OFFSET 0 x 0\n    CHANNELS"))
    assert "line 8" in msg and "number" in msg


def test_unknown_channel(tmp_path):
    msg = _bad(tmp_path, GOOD.replace("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 3 Zrotation Wrotation Yrotation"))
    assert "line 9" in msg and "Wrotation" in msg


def test_truncated_hierarchy(tmp_path):
    msg = _bad(tmp_path, GOOD[: GOOD.index("End Site")])
    assert "line" in msg and "HIERARCHY" in msg


def test_missing_motion(tmp_path):
    msg = _bad(tmp_path, GOOD[: GOOD.index("MOTION")])
    assert "MOTION" in msg


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(GOOD.encode())[:40]
    p = tmp_path / "bad.bvh.gz"
    p.write_bytes(data)
    with pytest.raises(BVHError, match="bad.bvh.gz"):
        read_bvh(p)


def test_empty_file(tmp_path):
    _bad(tmp_path, "")


def test_shared_reactidle_six_channel_joints(reactidle_take):
    """ReActIdle's spine and neck carry position channels; they give the same positions as the offsets."""
    bvh = read_bvh(reactidle_take)
    neck = bvh.index("neck")
    assert len(bvh.channels[neck]) == 6
    t = bvh.local_translations()
    assert np.allclose(t[:, neck], bvh.offsets[neck], atol=1e-4)
    pos, _ = bvh_forward_kinematics(bvh)
    assert 0.6 < np.median(pos[:, bvh.index("pelvis"), 1]) < 1.2  # metres, Y up, standing


def test_writer_reorders_breadth_first_joints(tmp_path):
    """Joints given breadth first are written depth first together with their motion columns."""
    rng = np.random.default_rng(2)
    names = ["root", "l1", "r1", "l2", "r2"]
    parents = np.array([-1, 0, 0, 1, 2])
    ch = ("Zrotation", "Xrotation", "Yrotation")
    bvh = BVH(names, parents, rng.normal(size=(5, 3)), [("Xposition", "Yposition", "Zposition") + ch] + [ch] * 4, [],
              rng.uniform(-90, 90, size=(4, 18)), 0.01)
    write_bvh(tmp_path / "bf.bvh", bvh)
    back = read_bvh(tmp_path / "bf.bvh")
    assert back.names == ["root", "l1", "l2", "r1", "r2"]
    pos, rot = bvh_forward_kinematics(bvh)
    pos2, rot2 = bvh_forward_kinematics(back)
    perm = [back.names.index(n) for n in names]
    assert np.array_equal(pos2[:, perm], pos) and np.array_equal(rot2[:, perm], rot)


def test_mocap_folder_from_the_environment(tmp_path):
    """$HBP_MOCAP_DIR points the mocap tests at the archives when the clone is not beside shared/ (issue 24)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    code = f"import sys; sys.path.insert(0, {str(tests)!r}); import mocap_fixtures; print(mocap_fixtures.MOCAP_DIR)"
    env = {**os.environ, "HBP_MOCAP_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path)
