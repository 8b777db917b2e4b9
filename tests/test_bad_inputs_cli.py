"""Bad-input suite, command lines: every ``python -m`` command turns a user error into one line on
stderr (``<command>: error: ...``) with exit code 2 (usage) or 1 (runtime), and keeps the traceback
of a bug (cli.py)."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from human_body_prior import cli

ROOT = Path(__file__).resolve().parents[1]


def run_module(module, args, cwd, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("HBP_TRACEBACK", None)
    env["CUDA_VISIBLE_DEVICES"] = ""  # '--device cuda' must be refused on any machine
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", f"human_body_prior.{module}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# (module, arguments, expected exit code, words the one line must contain); {tmp} is a scratch folder,
# {file} an existing regular file there
CASES = [
    ("train.vposer_smpl", ["--config_path", "{tmp}/missing.ini"], 1, ["missing.ini"]),
    ("train.vposer_smpl", ["--num_epochs"], 2, ["--num_epochs", "needs a value"]),
    ("train.evaluate_vposer", ["--data-dir", "{tmp}/nodata", "--num-samples", "0"], 2, ["--num-samples", "'0'"]),
    ("train.evaluate_vposer", ["--data-dir", "{tmp}/nodata", "--expr-dir", "{tmp}/noexpr"], 1, ["noexpr"]),
    ("evaluation.vposer", ["--data-dir", "{tmp}/nodata", "--num-threads", "-2"], 2, ["--num-threads"]),
    ("train.train_open_vposer", ["--work-dir", "{tmp}/w", "--num-epochs", "-1"], 2, ["--num-epochs"]),
    ("train.train_open_vposer", [], 2, ["--work-dir"]),
    ("data.prepare_open_mocap", ["--mocap-dir", "{tmp}/nomocap", "--work-dir", "{tmp}/w", "--out-dir", "{tmp}/o"],
     1, ["nomocap"]),
    ("data.prepare_open_mocap", ["--work-dir", "{tmp}/w", "--out-dir", "{tmp}/o", "--min-change-deg", "nan"],
     2, ["--min-change-deg"]),
    ("fitting.examples.fit_heldout_take", ["{tmp}/take.npz", "--frames", "0"], 2, ["--frames"]),
    ("fitting.examples.fit_heldout_take", ["{tmp}/take.npz"], 1, ["take.npz"]),
    ("open_model.build", ["--wheel", "{tmp}/missing.whl", "--out", "{tmp}/models"], 1, ["missing.whl"]),
    ("open_model.build", ["--genders", "other"], 2, ["--genders"]),
    ("open_model.preview", ["--models", "{tmp}/nomodels", "--out", "{tmp}/p.png"], 1, ["nomodels"]),
    ("fitting.fit_joints", ["{tmp}/in.npz", "{tmp}/out.npz"], 1, ["in.npz"]),
    ("fitting.fit_joints", ["{tmp}/in.npz", "{tmp}/out.npz", "--device", "cuda"], 2, ["CUDA"]),
    ("fitting.fit_joints", ["{tmp}/in.npz", "{tmp}/out.npz", "--batch-size", "0"], 2, ["--batch-size"]),
    ("tutorials.sample_body_pose", ["--device", "cuda"], 2, ["CUDA", "--device"]),
    ("tutorials.sample_body_pose", ["--num-samples", "0"], 2, ["--num-samples"]),
    ("tutorials.sample_body_pose", ["--num-samples", "1", "--out", "{file}"], 1, ["{file}"]),
    ("data.bvh2amass", ["{tmp}/missing.bvh", "{tmp}/out.npz"], 1, ["missing.bvh"]),
    ("data.bvh2amass", ["{tmp}/missing.bvh", "{tmp}/out.npz", "--fps", "nan"], 2, ["--fps"]),
    ("data.bvh2amass", ["{tmp}/missing.bvh", "{tmp}/out.npz", "--target-fps", "0"], 2, ["--target-fps"]),
    ("evaluation.mocap_report", ["--raw-dir", "{tmp}/noraw", "--out-json", "{tmp}/q.json"], 1, ["noraw"]),
    ("evaluation.mocap_report", ["--raw-dir", "{tmp}", "--out-json", "{tmp}/q.json"], 1, ["no BVH takes"]),
    ("evaluation.prior_benchmark", ["--threads", "0"], 2, ["--threads"]),
    ("evaluation.prior_benchmark", ["--write-subset", "{tmp}/s"], 1, ["--write-subset needs --data"]),
    ("priors.gmm", ["--train", "{tmp}/notrain", "--out", "{tmp}/g.npz"], 1, ["notrain"]),
    ("priors.gmm", ["--train", "{tmp}", "--out", "{tmp}/g.npz", "--components", "0"], 2, ["--components"]),
    ("priors.gmm", ["--train", "{tmp}", "--out", "{tmp}/g.npz", "--jitter-deg", "-1"], 2, ["--jitter-deg"]),
    # issue 24
    ("train.vposer_smpl", ["--device", "cuda"], 2, ["'device'", "CUDA is not available"]),
    ("tutorials.sample_body_pose", ["--seed", str(2 ** 70)], 2, ["--seed", "2**63 - 1"]),
    ("fitting.fit_joints", ["{tmp}/text.npz", "{tmp}/out.npz"], 1, ["text.npz: not an .npz archive"]),
    ("train.train_open_vposer", ["--work-dir", "{tmp}/w", "--no-train", "--out",
                                 str(ROOT / "support_data" / "vposer_v1_0_open")], 2, ["--overwrite-shipped"]),
]


@pytest.mark.parametrize("module,args,code,words", CASES,
                         ids=[f"{c[0]}:{' '.join(c[1][-2:])}" for c in CASES])
def test_user_error_is_one_line(module, args, code, words, tmp_path):
    regular = tmp_path / "a_file"
    regular.write_text("not a folder")
    text_npz = tmp_path / "text.npz"  # a text file under an .npz name
    text_npz.write_text("joints: 1 2 3\n")
    fill = {"{tmp}": str(tmp_path), "{file}": str(regular)}

    def sub(s):
        for k, v in fill.items():
            s = s.replace(k, v)
        return s

    proc = run_module(module, [sub(a) for a in args], cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    command = module.rsplit(".", 1)[-1]
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    for w in words:
        assert sub(w) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    # nothing half-written: the only things in the scratch folder are what the test put there
    # (and empty work folders some commands create before failing)
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p not in (regular, text_npz)]
    assert not left, left


def test_every_command_runs_through_cli():
    """Each module with a ``__main__`` block exits with ``cli.run(main...)``, and each has a case above."""
    import ast

    pkg = ROOT / "human_body_prior"
    commands = set()
    for path in pkg.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
                commands.add(path.relative_to(pkg).with_suffix("").as_posix().replace("/", "."))
                assert "sys.exit(cli.run(main" in ast.unparse(node), f"{path}: __main__ does not use cli.run"
    commands.discard("cli")
    assert commands == {c[0] for c in CASES}


# ------------------------------------------------------------------------------------------- cli.run itself
def _raise(exc):
    def main(argv=None):
        raise exc
    main.__module__ = "human_body_prior.data.example"
    return main


@pytest.mark.parametrize("exc,code,words", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/report.json"), 1, ["No space left", "/out/report.json"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/out"), 1, ["Is a directory", "/out"]),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 1, ["Permission denied", "/root/x"]),
    (ValueError("take.bvh: line 3: expected 'OFFSET x y z'\n  got 'OFFSET 0 0'"), 1, ["take.bvh", "got 'OFFSET 0 0'"]),
    (cli.UsageError("--fps must be positive"), 2, ["--fps must be positive", "--help"]),
    (MemoryError(), 1, ["out of memory"]),
])
def test_run_turns_user_errors_into_one_line(exc, code, words, capsys):
    assert cli.run(_raise(exc), []) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("example: error: "), err
    for w in words:
        assert w in err


@pytest.mark.parametrize("exc", [TypeError("bug"), KeyError("bug"), IndexError("bug"), AttributeError("bug"),
                                 RuntimeError("bug"), AssertionError("bug"), ZeroDivisionError("bug")])
def test_run_keeps_the_traceback_of_bugs(exc):
    with pytest.raises(type(exc)):
        cli.run(_raise(exc), [])


def test_run_exit_codes_and_traceback_switch(capsys, monkeypatch):
    assert cli.run(lambda argv: 3, []) == 3
    assert cli.run(lambda argv: {"a": 1}, []) == 0
    assert cli.run(lambda argv: None, []) == 0
    assert cli.run(_raise(KeyboardInterrupt()), []) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setenv("HBP_TRACEBACK", "1")
    with pytest.raises(ValueError):
        cli.run(_raise(ValueError("x")), [])


def test_argument_parser_reports_in_one_line(capsys):
    def main(argv):
        ap = cli.ArgumentParser(prog="x")
        ap.add_argument("--fps", type=cli.positive_float, required=True)
        ap.add_argument("--n", type=cli.positive_int)
        ap.add_argument("--k", type=cli.nonnegative_int)
        ap.add_argument("--v", type=cli.finite_float)
        return ap.parse_args(argv)

    for argv in (["--fps", "-30"], ["--fps", "nan"], ["--fps", "inf"], ["--fps", "0"], ["--fps", "abc"], [],
                 ["--fps", "1", "--n", "0"], ["--fps", "1", "--n", "1.5"], ["--fps", "1", "--k", "-1"],
                 ["--fps", "1", "--v", "-inf"], ["--fps", "1", "--unknown"]):
        assert cli.run(main, argv, prog="x") == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("x: error: "), (argv, err)
    args = main(["--fps", "29.97", "--n", "2", "--k", "0", "--v=-1e3"])
    assert (args.fps, args.n, args.k, args.v) == (29.97, 2, 0, -1000.0)


def test_device_type():
    import argparse

    import torch

    assert cli.device("cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available"):
            cli.device("cuda")


# ---------------------------------------------------------------------------------------------- issue 24
@pytest.mark.parametrize("module", sorted({c[0] for c in CASES}))
def test_help_names_the_command_as_it_is_run(module, tmp_path):
    """`--help` shows `python -m <module>` (7 of 14 showed `usage: vposer.py` or a bare docstring)."""
    proc = run_module(module, ["--help"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m human_body_prior.{module}"), proc.stdout[:200]


def test_mocap_report_options_have_help(tmp_path):
    proc = run_module("evaluation.mocap_report", ["--help"], cwd=tmp_path)
    options = proc.stdout.split("\noptions:", 1)[1]  # below the usage lines
    for option in ("--raw-dir", "--out-json", "--png-dir", "--bm-path"):
        entry = options.split(f"  {option} ", 1)[1].split("\n  -", 1)[0]  # metavar and help text
        assert len(entry.split()) > 3, (option, entry)


@pytest.mark.parametrize("platform", ["osmesa", "nosuch"])
def test_sample_body_pose_without_opengl_is_one_line(platform, tmp_path):
    import ctypes.util

    if platform == "osmesa" and ctypes.util.find_library("OSMesa"):
        pytest.skip("this machine has OSMesa")
    proc = run_module("tutorials.sample_body_pose", ["--num-samples", "1", "--out", str(tmp_path / "o")],
                      cwd=tmp_path, env_extra={"PYOPENGL_PLATFORM": platform})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("sample_body_pose: error: could not") and "OpenGL" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("script,args,words", [
    ("bench_ik.py", ["--test", "{tmp}", "--device", "cuda"], ["--device", "CUDA is not available"]),
    ("bench_body_model.py", ["--no-cpu", "--out", "{tmp}/p.md"], ["--no-cpu", "no CUDA device"]),
])
def test_benchmark_options_without_cuda_fail_in_one_line(tmp_path, script, args, words):
    """The GPU-only benchmark options, on a machine without CUDA: exit 2, one line naming the option,
    nothing written."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script),
                          *[a.format(tmp=tmp_path) for a in args]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr and all(w in last for w in words), res.stderr
    assert list(tmp_path.iterdir()) == []
