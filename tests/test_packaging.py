"""The wheel carries every shipped file, and an installed copy finds them from any directory.

Built with the test environment's setuptools (no build isolation, no network); the full check with a fresh
virtual environment and the main job is scripts/wheel_smoke.sh, which .ci/run calls.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tracked(folder=""):
    res = subprocess.run(["git", "ls-files", "-z"] + ([folder] if folder else []), cwd=REPO, capture_output=True,
                         text=True)
    if res.returncode != 0 or not res.stdout.strip():
        pytest.skip("not a git checkout")
    return [name for name in res.stdout.split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of a copy of the tracked files (what a clean clone holds; the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("clone")
    for name in _tracked():
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    (path,) = out.glob("human_body_prior-*.whl")
    return path


def _tracked_support_files():
    return {name[len("support_data/"):] for name in _tracked("support_data")}


def test_wheel_carries_the_shipped_models_and_priors(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    carried = {n[len("human_body_prior/_support_data/"):] for n in names
               if n.startswith("human_body_prior/_support_data/")}
    missing = _tracked_support_files() - carried
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert not any("__pycache__" in n for n in carried)
    assert "human_body_prior/train/vposer_smpl_defaults.ini" in names


def test_installed_copy_finds_its_files_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import human_body_prior as h, torch\n"
            "from human_body_prior.body_model.body_model import BodyModel\n"
            "from human_body_prior.tools.model_loader import load_vposer\n"
            "print(h.support_data_dir())\n"
            "bm = BodyModel(h.default_body_model_path('smpl', 'neutral'))\n"
            "vp, _ = load_vposer(h.default_vposer_dir())\n"
            "print(bm(pose_body=vp.sample_poses(2, seed=0).reshape(2, 63)).v.shape)\n")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    folder = res.stdout.splitlines()[0]
    assert folder == str(target / "human_body_prior" / "_support_data")
    assert "torch.Size([2, 13380, 3])" in res.stdout


def test_recorded_results_name_no_machine_folders():
    """Benchmark results, model cards and docs give paths relative to the repository (or placeholders),
    never the folders of the machine they were measured on."""
    import re

    machine = re.compile(r"(?<![\w.])/(work|home|root|Users|scratch|mnt)/")
    texts = [p for folder in ("docs", "support_data", "benchmarks", "notebooks") for p in (REPO / folder).rglob("*")
             if p.suffix in (".md", ".json", ".py", ".ipynb", ".txt", ".yaml", ".ini")]
    texts += [REPO / "README.md", REPO / "ARCHITECTURE.md"]
    found = [f"{p.relative_to(REPO)}:{i}" for p in texts for i, line in enumerate(p.read_text().splitlines(), 1)
             if machine.search(line)]
    assert not found, found
