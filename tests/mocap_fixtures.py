"""Shared helpers for the mocap tests: single takes pulled from ../shared/mocap (or $HBP_MOCAP_DIR), and an SMPL-X
model file whose rest pose is a T-pose (the shipped open model when it exists)."""

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES, SMPLX_PARENTS

# the project's mocap archives: $HBP_MOCAP_DIR, else ../shared/mocap beside the clone; tests skip without them
MOCAP_DIR = Path(os.environ.get("HBP_MOCAP_DIR") or Path(__file__).resolve().parent.parent.parent / "shared" / "mocap")

# one take per skeleton, near the start of each archive (xz is read sequentially)
SHARED_TAKES = {
    "cmu_daz": ("cmu_daz.tar.xz", "cmu_daz/martial/08.bvh"),
    "iclone_cc": ("cmu_iclone.tar.xz", "cmu_iclone/subjects/007/007_01.bvh"),
    "reactidle": ("reactidle.tar.xz", "reactidle/genuine/003_genuine.bvh"),
}


def extract_take(tmp_dir: Path, key: str) -> Path:
    archive, member = SHARED_TAKES[key]
    path = MOCAP_DIR / archive
    if not path.is_file():
        pytest.skip(f"{path} not available")
    out = tmp_dir / Path(member).name
    if not out.exists():
        with tarfile.open(path, "r:xz") as tf:
            for m in tf:
                if m.name == member:
                    out.write_bytes(tf.extractfile(m).read())
                    break
            else:
                pytest.skip(f"{member} not in {path}")
    return out


@pytest.fixture(scope="session")
def shared_take_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared_takes")


@pytest.fixture(scope="session")
def reactidle_take(shared_take_dir):
    return extract_take(shared_take_dir, "reactidle")


def tpose_joints() -> np.ndarray:
    """A plausible SMPL-X T-pose (55, 3) in metres: Y up, facing +Z, left at +X, arms horizontal."""
    d = {"pelvis": (0, .95, 0), "left_hip": (.06, .86, -.005), "spine1": (0, 1.06, -.01), "left_knee": (.10, .48, .005),
         "spine2": (0, 1.19, 0.0), "left_ankle": (.09, .08, -.04), "spine3": (0, 1.245, .01), "left_foot": (.12, .02, .08),
         "neck": (0, 1.46, -.02), "left_collar": (.07, 1.37, 0), "head": (0, 1.55, .03), "left_shoulder": (.17, 1.40, -.01),
         "left_elbow": (.42, 1.39, -.03), "left_wrist": (.67, 1.39, -.02), "jaw": (0, 1.57, .05),
         "left_eye_smplhf": (.03, 1.62, .09)}
    J = np.zeros((55, 3))
    for i, n in enumerate(SMPLX_JOINT_NAMES):
        key = n.replace("right", "left")
        if key in d:
            J[i] = d[key]
            if n.startswith("right"):
                J[i, 0] *= -1
    for i in range(25, 55):
        side = 1 if SMPLX_JOINT_NAMES[i].startswith("left") else -1
        J[i] = J[SMPLX_PARENTS[i]] + (side * 0.03, 0, 0.01 * ((i - 25) % 15 // 3 - 2))
    return J


@pytest.fixture(scope="session")
def tpose_model_path(tmp_path_factory):
    """The shipped open SMPL-X neutral model if built, else a synthetic SMPL-X file whose joints
    regress to tpose_joints()."""
    try:
        from human_body_prior import default_body_model_path
        return default_body_model_path("smplx", "neutral")
    except (FileNotFoundError, ImportError):
        pass
    from human_body_prior.body_model.synthetic import write_synthetic_model

    path = tmp_path_factory.mktemp("tpose_model") / "SMPLX_TPOSE.npz"
    write_synthetic_model(str(path), "smplx")
    d = dict(np.load(path, allow_pickle=False))
    V = d["v_template"].shape[0]
    Jr = np.zeros((55, V))
    Jr[np.arange(55), np.arange(55)] = 1.0
    vt = d["v_template"].copy()
    vt[:55] = tpose_joints()
    d["v_template"], d["J_regressor"] = vt, Jr
    np.savez(path, **d)
    return str(path)
