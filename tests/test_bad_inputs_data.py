"""Bad-input suite, motion data: BVH reading, bvh2amass, prepare_open_mocap, mocap_report.

Each test is one case of the #16 audit: nothing that was there before is lost, nothing wrong is
returned without an error, and an error names the file."""

import errno
import gzip
import io
import json
import os
import tarfile

import numpy as np
import pytest

from mocap_fixtures import tpose_joints, tpose_model_path  # noqa: F401 (fixture)

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from human_body_prior.data import bvh as bvh_mod
from human_body_prior.data import bvh2amass, prepare_open_mocap
from human_body_prior.evaluation import mocap_report
from human_body_prior.data.skeleton_maps import CMU_MOTIONBUILDER
from human_body_prior.data.bvh import BVH, BVHError, format_bvh, parse_bvh, read_bvh, write_bvh
from human_body_prior.cli import run

BODY = 22


def body_bvh(frames=4, offsets_scale=1.0, frame_time=1 / 30, seed=0) -> BVH:
    """A BVH of the 22 SMPL-X body joints (CMU MotionBuilder names, T-pose offsets in metres), small random motion."""
    J = tpose_joints()[:BODY]
    parents = np.array(SMPLX_PARENTS[:BODY])
    off = np.array([J[j] - J[p] if p >= 0 else J[0] for j, p in enumerate(parents)]) * offsets_scale
    rng = np.random.default_rng(seed)
    rot = ("Zrotation", "Xrotation", "Yrotation")
    channels = [("Xposition", "Yposition", "Zposition") + rot] + [rot] * (BODY - 1)
    motion = np.concatenate([rng.normal(scale=0.05, size=(frames, 3)), rng.normal(scale=10, size=(frames, 3 * BODY))], 1)
    names = [CMU_MOTIONBUILDER.joint_map[n] for n in SMPLX_JOINT_NAMES[:BODY]]
    return BVH(names, parents, off, channels, [], motion, frame_time=frame_time)


def bvh_text(frame_time="0.0333333", frames=2) -> str:
    lines = ["HIERARCHY", "ROOT hips", "{", "  OFFSET 0 0 0", "  CHANNELS 6 Xposition Yposition Zposition "
             "Zrotation Xrotation Yrotation", "  JOINT knee", "  {", "    OFFSET 0 -40 0",
             "    CHANNELS 3 Zrotation Xrotation Yrotation", "    End Site", "    {", "      OFFSET 0 -40 0",
             "    }", "  }", "}", "MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    lines += ["0 90 0 1 2 3 4 5 6"] * frames
    return "\n".join(lines) + "\n"


def deep_bvh_text(depth: int) -> str:
    """A chain of ``depth`` joints, one frame."""
    lines = ["HIERARCHY", "ROOT j0", "{", "OFFSET 0 0 0", "CHANNELS 3 Zrotation Xrotation Yrotation"]
    for k in range(1, depth):
        lines += [f"JOINT j{k}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["}"] * depth
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.01", " ".join(["0"] * (3 * depth))]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ data lost
def test_bvh2amass_refuses_to_overwrite_its_input(tmp_path, tpose_model_path, capsys):
    src = tmp_path / "same.bvh"
    write_bvh(src, body_bvh())
    before = src.read_bytes()
    assert run(bvh2amass.main, [str(src), str(src), "--bm-path", tpose_model_path]) == 2
    err = capsys.readouterr().err
    assert "same.bvh" in err and "input" in err and err.count("\n") == 1
    assert src.read_bytes() == before
    # through a symbolic link and a hard link
    link = tmp_path / "link.npz"
    link.symlink_to(src)
    assert run(bvh2amass.main, [str(src), str(link), "--bm-path", tpose_model_path]) == 2
    hard = tmp_path / "hard.npz"
    os.link(src, hard)
    assert run(bvh2amass.main, [str(src), str(hard), "--bm-path", tpose_model_path]) == 2
    # through a link to the input's folder
    (tmp_path / "alias").symlink_to(tmp_path)
    assert run(bvh2amass.main, [str(src), str(tmp_path / "alias" / "same.bvh"), "--bm-path", tpose_model_path]) == 2
    assert src.read_bytes() == before and link.is_symlink()


def test_bvh2amass_directory_mode_never_writes_onto_an_input(tmp_path, tpose_model_path, capsys):
    tree = tmp_path / "tree"
    write_bvh(tree / "a.bvh", body_bvh(seed=1))
    write_bvh(tree / "b.bvh", body_bvh(seed=2))
    before = (tree / "b.bvh").read_bytes()
    (tree / "b.npz").symlink_to(tree / "b.bvh")  # the output of b.bvh is a link to b.bvh
    assert run(bvh2amass.main, [str(tree), str(tree), "--bm-path", tpose_model_path]) == 1
    err = capsys.readouterr().err
    assert "b.bvh" in err and "input" in err
    assert (tree / "b.bvh").read_bytes() == before
    assert np.load(tree / "a.npz")["poses"].shape == (4, 165)  # the other take was converted


def test_mocap_report_keeps_the_previous_report_when_the_write_fails(tmp_path, tpose_model_path, monkeypatch,
                                                                     capsys):
    raw = tmp_path / "raw"
    write_bvh(raw / "cmu_daz" / "x" / "01.bvh", body_bvh(frames=3))
    out = tmp_path / "quality.json"
    out.write_text('{"previous": "report"}')
    from human_body_prior.files import atomic_io

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(atomic_io.os, "replace", disk_full)
    argv = ["--raw-dir", str(raw), "--out-json", str(out), "--bm-path", tpose_model_path]
    assert run(mocap_report.main, argv) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert json.loads(out.read_text()) == {"previous": "report"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.json", "raw"]  # no temporary file left
    monkeypatch.undo()
    assert run(mocap_report.main, argv) == 0
    assert json.loads(out.read_text())["cmu_daz"]["takes"] == 1


# ------------------------------------------------------------------------------------------ silently wrong
def test_all_zero_offsets_are_an_error_not_nan(tmp_path, tpose_model_path):
    from human_body_prior.data.retarget import Retargeter

    src = tmp_path / "zero.bvh"
    write_bvh(src, body_bvh(offsets_scale=0.0))
    rt = Retargeter.from_model_file(tpose_model_path)
    with pytest.raises(ValueError, match=r"zero\.bvh.*zero length"):
        bvh2amass.convert_take(str(src), rt)


@pytest.mark.parametrize("frame_time", ["inf", "1e-320", "nan", "0", "-0.01", "1e-9", "1e6"])
def test_absurd_frame_time_is_refused(tmp_path, frame_time):
    with pytest.raises(BVHError, match="Frame Time"):
        parse_bvh(bvh_text(frame_time), source="t.bvh")
    # a file whose header is wrong can still be read with the true rate given
    p = tmp_path / "t.bvh"
    p.write_text(bvh_text(frame_time))
    assert read_bvh(p, frame_time=1 / 120).fps == pytest.approx(120)


def test_frame_time_at_the_limits_is_read():
    assert parse_bvh(bvh_text("0.0001")).fps == pytest.approx(10000)
    assert parse_bvh(bvh_text("10")).fps == pytest.approx(0.1)


@pytest.mark.parametrize("fps,target", [(-30, None), (float("nan"), None), (0, None), (float("inf"), None),
                                        (None, 0), (None, float("nan")), (None, -30), (1e300, None)])
def test_bad_frame_rates_are_refused(tmp_path, tpose_model_path, fps, target):
    from human_body_prior.data.retarget import Retargeter

    src = tmp_path / "t.bvh"
    write_bvh(src, body_bvh())
    rt = Retargeter.from_model_file(tpose_model_path)
    with pytest.raises(ValueError, match="fps"):
        bvh2amass.convert_take(str(src), rt, fps=fps, target_fps=target)


@pytest.mark.parametrize("opt,value", [("--fps", "-30"), ("--fps", "nan"), ("--fps", "0"), ("--target-fps", "0"),
                                       ("--target-fps", "nan")])
def test_bad_frame_rates_on_the_command_line(tmp_path, opt, value, capsys):
    src = tmp_path / "t.bvh"
    write_bvh(src, body_bvh())
    assert run(bvh2amass.main, [str(src), str(tmp_path / "o.npz"), f"{opt}={value}"]) == 2
    assert opt in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def _archive(folder, name, members: dict):
    """NAME.tar.xz with members {relative path: text} under NAME/."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        for rel, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (folder / f"{name}.tar.xz").write_bytes(buf.getvalue())


def _fake_mocap(folder):
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for k, name in enumerate(prepare_open_mocap.ARCHIVES):
        members = {f"s{i}/{i:02d}.bvh": bvh_text() for i in range(3 + k)}
        members["readme.txt"] = "not a take"
        _archive(folder, name, members)
        counts[name] = 3 + k
    return counts


def test_interrupted_extraction_is_redone(tmp_path, monkeypatch):
    mocap, raw = tmp_path / "mocap", tmp_path / "raw"
    counts = _fake_mocap(mocap)
    real_extract = tarfile.TarFile.extract
    calls = {"n": 0}

    def killed(self, member, path="", *a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # the process dies after two files of the first archive
        return real_extract(self, member, path, *a, **k)

    monkeypatch.setattr(tarfile.TarFile, "extract", killed)
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda self, path=".", members=None, **k: [
        killed(self, m, path, **k) for m in (members or self.getmembers())])
    with pytest.raises(KeyboardInterrupt):
        prepare_open_mocap.extract_archives(mocap, raw)
    monkeypatch.undo()
    prepare_open_mocap.extract_archives(mocap, raw)
    takes = prepare_open_mocap.list_source_takes(raw)
    assert len(takes) == sum(counts.values())
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_partial_extraction_by_an_older_version_is_detected(tmp_path):
    mocap, raw = tmp_path / "mocap", tmp_path / "raw"
    counts = _fake_mocap(mocap)
    # what the old code left when killed: a folder with some of the takes and nothing to tell
    first = prepare_open_mocap.ARCHIVES[0]
    (raw / first / "s0").mkdir(parents=True)
    (raw / first / "s0" / "00.bvh").write_text(bvh_text())
    prepare_open_mocap.extract_archives(mocap, raw)
    assert len(prepare_open_mocap.list_source_takes(raw)) == sum(counts.values())
    # a take deleted after a complete extraction is noticed too
    (raw / first / "s1" / "01.bvh").unlink()
    with pytest.raises(ValueError, match=f"{first}.*2 of 3"):
        prepare_open_mocap.check_extracted(raw)
    prepare_open_mocap.extract_archives(mocap, raw)
    assert len(prepare_open_mocap.list_source_takes(raw)) == sum(counts.values())


# ------------------------------------------------------------------------------------------ unclear errors
def test_deep_hierarchy_parses_without_recursion_error(tmp_path):
    b = parse_bvh(deep_bvh_text(5000), source="deep.bvh")
    assert len(b.names) == 5000 and b.parents[-1] == 4998
    p = tmp_path / "deep.bvh"
    write_bvh(p, b)  # writing is iterative too
    again = read_bvh(p)
    assert again.names == b.names and np.array_equal(again.parents, b.parents)


def test_directory_mode_reports_bad_files_and_converts_the_others(tmp_path, tpose_model_path, capsys):
    tree = tmp_path / "in"
    write_bvh(tree / "good.bvh", body_bvh())
    (tree / "deep.bvh").write_text(deep_bvh_text(5000))
    (tree / "truncated.bvh").write_text(bvh_text()[:150])
    (tree / "bomb.bvh.gz").write_bytes(gzip.compress(b" " * (3 << 20), compresslevel=1))
    (tree / "empty.bvh").write_bytes(b"")
    out = tmp_path / "out"
    rc = run(lambda argv: bvh2amass.main(argv), [str(tree), str(out), "--bm-path", tpose_model_path])
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.npz"]
    for name in ("deep.bvh", "truncated.bvh", "empty.bvh"):
        assert f"FAILED {tree / name}" in err, err


def test_gzip_bomb_is_capped(tmp_path, monkeypatch):
    p = tmp_path / "bomb.bvh.gz"
    p.write_bytes(gzip.compress(b"HIERARCHY\n" + b" " * (3 << 20), compresslevel=1))
    assert p.stat().st_size < 100_000
    with pytest.raises(BVHError, match=r"bomb\.bvh\.gz.*MiB"):
        read_bvh(p, max_bytes=1 << 20)
    monkeypatch.setattr(bvh_mod, "MAX_BVH_BYTES", 1 << 20)  # the default cap applies without the argument
    with pytest.raises(BVHError, match="MiB"):
        read_bvh(p)
    plain = tmp_path / "big.bvh"
    plain.write_bytes(b"HIERARCHY\n" + b" " * (2 << 20))
    with pytest.raises(BVHError, match="MiB"):
        read_bvh(plain)
    assert bvh_mod.MAX_BVH_BYTES == 1 << 20 and bvh_mod.DEFAULT_MAX_BVH_BYTES >= 64 << 20


def test_corrupt_gzip_names_the_file(tmp_path):
    p = tmp_path / "cut.bvh.gz"
    p.write_bytes(gzip.compress(bvh_text().encode())[:40])
    with pytest.raises(BVHError, match=r"cut\.bvh\.gz"):
        read_bvh(p)


def test_skip_existing_redoes_a_zero_byte_output(tmp_path, tpose_model_path):
    tree, out = tmp_path / "in", tmp_path / "out"
    write_bvh(tree / "a.bvh", body_bvh())
    out.mkdir()
    (out / "a.npz").write_bytes(b"")
    argv = [str(tree), str(out), "--bm-path", tpose_model_path, "--skip-existing"]
    assert run(bvh2amass.main, argv) == 0
    assert np.load(out / "a.npz")["poses"].shape == (4, 165)
    before = (out / "a.npz").stat().st_mtime_ns
    assert run(bvh2amass.main, argv) == 0  # a complete output is kept
    assert (out / "a.npz").stat().st_mtime_ns == before


def test_format_round_trip_is_unchanged():
    """The iterative writer writes joints depth first, as before; every joint reads back the same."""
    b = body_bvh()
    again = parse_bvh(format_bvh(b))
    assert sorted(again.names) == sorted(b.names)
    for j, name in enumerate(b.names):
        k = again.index(name)
        assert np.array_equal(again.offsets[k], b.offsets[j])
        p = b.parents[j]
        assert (again.names[again.parents[k]] if again.parents[k] >= 0 else None) == (b.names[p] if p >= 0 else None)
        for c in b.channels[j]:
            assert np.array_equal(again.channel_values(k, c), b.channel_values(j, c))


def test_given_frame_rate_is_written_exactly(tmp_path, tpose_model_path):
    from human_body_prior.data.retarget import Retargeter

    src = tmp_path / "t.bvh"
    write_bvh(src, body_bvh(frame_time=1 / 1000))  # a header the option overrides
    rt = Retargeter.from_model_file(tpose_model_path)
    for fps in (120.0, 29.97, 60.0):
        arrays, _ = bvh2amass.convert_take(str(src), rt, fps=fps)
        assert float(arrays["mocap_framerate"]) == fps


# ---------------------------------------------------------------------------------------------- issue 24
@pytest.mark.parametrize("scale", [1e300, -1e12])
def test_absurd_offsets_name_the_file_line_and_offset(tmp_path, tpose_model_path, scale):
    """OFFSETs of 1e300 failed deep in retargeting: 'matrix_to_axis_angle: matrix (0, 0) is not a rotation'."""
    src = tmp_path / "huge.bvh"
    write_bvh(src, body_bvh(offsets_scale=scale))
    with pytest.raises(BVHError, match=r"huge\.bvh, line \d+: the OFFSET of \w+ is .*more than 1e\+06"):
        read_bvh(str(src))
    assert run(bvh2amass.main, [str(src), str(tmp_path / "out.npz")]) == 1


def test_absurd_motion_values_name_the_frame(tmp_path):
    bvh = body_bvh()
    bvh.motion[2, 7] = 1e300
    src = tmp_path / "huge_motion.bvh"
    write_bvh(src, bvh)
    with pytest.raises(BVHError, match=r"huge_motion\.bvh, line \d+: frame 2 has 1e\+300 in channel 7"):
        read_bvh(str(src))
