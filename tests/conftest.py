"""Shared fixtures: model files in each official layout, generated once per test session."""

import os

import numpy as np
import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from human_body_prior.body_model.synthetic import write_synthetic_model  # noqa: E402

# (file name, model type); SMPL is a plain .pkl and MANO a .pkl like the official releases.
MODEL_FILES = {
    "smpl": "smpl/SMPL_NEUTRAL.pkl",
    "smplh": "smplh/SMPLH_NEUTRAL.npz",
    "smplx": "smplx/SMPLX_NEUTRAL.npz",
    "mano": "mano/MANO_RIGHT.pkl",
}


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """Paths of synthetic model files with the official vertex counts: {model_type: path}.

    Stored in float32 like the official files (smplx rounds every array to float32 on load, so
    float64 comparisons need float32-representable data).
    """
    root = tmp_path_factory.mktemp("body_models")
    return {mt: write_synthetic_model(root / rel, mt, seed=i, dtype=np.float32)
            for i, (mt, rel) in enumerate(MODEL_FILES.items())}


@pytest.fixture(scope="session")
def small_smplx(tmp_path_factory):
    """A small SMPL-X layout file (500 vertices, 20 shape columns) for fast tests."""
    root = tmp_path_factory.mktemp("small_models")
    return write_synthetic_model(root / "SMPLX_SMALL.npz", "smplx", num_verts=500, num_shape_columns=20, seed=7,
                                 dtype=np.float32)
