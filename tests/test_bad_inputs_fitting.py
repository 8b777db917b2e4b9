"""Bad input to fitting and to BodyModel's sizes (#16): clear errors naming the argument, and
fit_joints never writes half a result nor loses a finished one."""

import numpy as np
import pytest
import torch

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.fitting import JointTargets3D, Keypoints2D, PinholeCamera, Stage
from human_body_prior.fitting import engine as engine_module
from human_body_prior.fitting import fit_joints
from human_body_prior.fitting.fit_joints import main
from human_body_prior import cli


def _run(argv, capsys):
    """Run the command as `python -m` does -> (exit code, stderr)."""
    rc = cli.run(main, argv)
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def joints_file(tmp_path_factory):
    """4 frames of body joints of the open SMPL-X in a bent pose, far from the rest pose."""
    bm = BodyModel(hbp.default_body_model_path())
    pose = torch.zeros(4, 63)
    pose[:, 3 * 3 + 0] = 1.2  # left knee
    pose[:, 16 * 3 + 2] = -1.0  # left shoulder
    with torch.no_grad():
        joints = bm(pose_body=pose, trans=torch.tensor([[0.0, 0.0, 2.0]])).Jtr[:, :22].numpy()
    path = tmp_path_factory.mktemp("fit_in") / "in.npz"
    np.savez(path, joints=joints)
    return path


@pytest.mark.parametrize("flag,value", [("--robust-sigma", "0"), ("--robust-sigma", "-0.05"),
                                        ("--iterations", "0"), ("--iterations", "-3")])
def test_fit_joints_refuses_bad_numbers(joints_file, tmp_path, capsys, flag, value):
    out = tmp_path / "out.npz"
    rc, err = _run([str(joints_file), str(out), "--no-prior", flag, value, "--quiet"], capsys)
    assert rc == 2 and flag in err and "Traceback" not in err
    assert not out.exists()


def test_zero_robust_sigma_would_hide_a_bad_fit():
    """sigma 0 makes every residual cost 0: a fit 159 mm off reported zero data loss. Refused now."""
    with pytest.raises(ValueError, match=r"robust_sigma must be a finite number > 0 \(metres\)"):
        JointTargets3D(np.zeros((1, 22, 3)), robust_sigma=0)
    with pytest.raises(ValueError, match=r"robust_sigma must be a finite number > 0 \(pixels\)"):
        Keypoints2D(np.zeros((1, 22, 2)), camera=PinholeCamera(1000.0, [500.0, 500.0]), robust_sigma=-1)
    with pytest.raises(ValueError, match="Stage iterations must be an integer >= 1, got 0"):
        Stage(1.0, 0)


def test_fit_joints_writes_nothing_when_the_fit_fails_midway(joints_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.npz"
    out.write_bytes(b"an earlier result")
    real_fit = engine_module.BodyFitter.fit
    calls = []

    def failing_second_chunk(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("the fit diverged (loss nan) in stage Stage(prior_scale=10.0, iterations=2)")
        return real_fit(self, *a, **kw)

    monkeypatch.setattr(engine_module.BodyFitter, "fit", failing_second_chunk)
    rc, err = _run([str(joints_file), str(out), "--no-prior", "--iterations", "2", "--batch-size", "2", "--quiet"],
                   capsys)
    assert rc != 0 and "diverged" in err and "frames 2-3" in err and "nothing was written" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]  # no temporary leftovers


def test_fit_joints_keeps_the_finished_fit_when_only_the_save_fails(joints_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.npz"
    real_save = fit_joints.save_npz_atomic

    def disk_full_at_out(path, arrays, **kw):
        if str(path) == str(out):
            raise OSError(28, "No space left on device", str(path))
        return real_save(path, arrays, **kw)

    monkeypatch.setattr(fit_joints, "save_npz_atomic", disk_full_at_out)
    rc, err = _run([str(joints_file), str(out), "--no-prior", "--iterations", "3", "--quiet"], capsys)
    assert rc == 1 and "No space left on device" in err and "Traceback" not in err
    kept = err.rsplit("kept in ", 1)[1].strip().split()[0]
    try:
        with np.load(kept) as data:
            assert data["pose_body"].shape == (4, 63) and data["joints"].shape == (4, 22, 3)
            assert str(data["pose_prior"]) == "none"
    finally:
        __import__("os").remove(kept)
    assert not out.exists()


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_betas=-1), "num_betas must be an integer >= 0, got -1"),
    (dict(batch_size=-1), "batch_size must be an integer >= 1, got -1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
])
def test_body_model_sizes_name_the_argument(small_smplx, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BodyModel(small_smplx, **kwargs)


def test_body_model_zero_batch_names_the_argument(small_smplx):
    bm = BodyModel(small_smplx)
    with pytest.raises(ValueError, match=r"pose_body has batch 0; .* B >= 1"):
        bm(pose_body=torch.zeros(0, 63))
    with pytest.raises(ValueError, match=r"betas has batch 0"):
        bm(betas=torch.zeros(0, 10))


# ---------------------------------------------------------------------------------------------- issue 24
@pytest.mark.parametrize("value", ["abc", [None] * 63, [[None] * 63], {"a": 1}, b"\x00\x01", [1j] * 63])
def test_pose_body_that_is_not_numbers_names_pose_body(small_smplx, value):
    """torch's TypeError/RuntimeError ('Could not infer dtype of NoneType') named neither the argument nor
    what was wrong."""
    bm = BodyModel(small_smplx)
    with pytest.raises(ValueError, match=r"^pose_body must be (real )?numbers"):
        bm(pose_body=value)


def test_forward_rest_arrays_that_are_not_numbers_are_named(small_smplx):
    bm = BodyModel(small_smplx)
    with pytest.raises(ValueError, match=r"^v_template must be numbers"):
        bm(v_template="template.npy")
    with pytest.raises(ValueError, match=r"^v_template must be finite with shape \(500, 3\)"):
        BodyModel(small_smplx, v_template=np.zeros((499, 3)))


@pytest.mark.parametrize("where", ["file/out.npz", "folder"])
def test_fit_joints_checks_the_output_before_fitting(joints_file, tmp_path, capsys, monkeypatch, where):
    """An output it cannot write was found only after minutes of fitting."""
    (tmp_path / "file").write_text("a regular file")
    (tmp_path / "folder").mkdir()

    def never(*a, **k):
        raise AssertionError("fitted before checking the output")

    monkeypatch.setattr(fit_joints, "fit_arrays", never)
    rc, err = _run([str(joints_file), str(tmp_path / where), "--quiet"], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and where.split("/")[0] in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
