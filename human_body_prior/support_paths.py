"""Where the shipped open body models and the open VPoser live.

The files are in the repository's top-level ``support_data/`` folder; an installed wheel (or a
non-editable ``pip install .``) carries them as the package folder ``human_body_prior/_support_data``.
Set the environment variable ``HUMAN_BODY_PRIOR_SUPPORT_DATA`` to use a copy elsewhere.
"""

import os
from pathlib import Path

_MODEL_DIRS = {"smplx": "smplx", "smplh": "smplh", "smpl": "smpl", "mano": "mano"}
_GENDERS = ("neutral", "female", "male")
_MANO_SIDES = ("left", "right")


def support_data_dir() -> Path:
    """The folder holding the shipped model files."""
    env = os.environ.get("HUMAN_BODY_PRIOR_SUPPORT_DATA")
    if env:
        folder = Path(env)
        if not folder.is_dir():
            raise FileNotFoundError(f"HUMAN_BODY_PRIOR_SUPPORT_DATA={env} is not a folder")
        return folder
    package = Path(__file__).resolve().parent
    candidates = (package / "_support_data", package.parent / "support_data")  # installed, then a clone
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"support data not found (looked in {', '.join(map(str, candidates))}); reinstall "
                            "human_body_prior or set HUMAN_BODY_PRIOR_SUPPORT_DATA")


def default_body_model_path(model_type: str = "smplx", gender: str = "neutral") -> str:
    """Path of the shipped open body model file (or of the official one in HUMAN_BODY_PRIOR_SUPPORT_DATA).

    model_type: 'smplx' | 'smplh' | 'smpl' | 'mano'; gender: 'neutral' | 'female' | 'male'
    ('left' | 'right' for MANO, where 'neutral' means 'right'). Looks for
    ``body_models/<type>/<TYPE>_<GENDER>.npz`` (the official names), then for AMASS's layout
    ``body_models/<type>/<gender>/model.npz``.
    """
    model_type = model_type.lower()
    gender = gender.lower()
    if model_type not in _MODEL_DIRS:
        raise ValueError(f"model_type must be one of {sorted(_MODEL_DIRS)}, got {model_type!r}")
    if model_type == "mano":
        side = "right" if gender == "neutral" else gender
        if side not in _MANO_SIDES:
            raise ValueError(f"for MANO, gender must be 'left' or 'right', got {gender!r}")
        name = f"MANO_{side.upper()}.npz"
    else:
        if gender not in _GENDERS:
            raise ValueError(f"gender must be one of {_GENDERS}, got {gender!r}")
        name = f"{model_type.upper()}_{gender.upper()}.npz"
    folder = support_data_dir() / "body_models" / _MODEL_DIRS[model_type]
    candidates = [folder / name] + ([folder / gender / "model.npz"] if model_type != "mano" else [])
    for path in candidates:
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"body model {candidates[0]} is missing"
                            + (f" (nor is AMASS's {candidates[1]} there)" if len(candidates) > 1 else "")
                            + "; rebuild the shipped one with `python -m human_body_prior.open_model.build`")


_VPOSER_DIRS = {1: "vposer_v1_0_open", 2: "vposer_v2_0_open"}


def default_vposer_dir(version: int = 1) -> str:
    """Experiment folder of the shipped open VPoser: version 1 (2019 layout, ``load_vposer``; the
    default) or 2 (V02 layout, ``load_model``)."""
    if version not in _VPOSER_DIRS:
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    path = support_data_dir() / _VPOSER_DIRS[version]
    if not path.is_dir():
        raise FileNotFoundError(f"shipped VPoser folder {path} is missing; retrain it with "
                                f"`python -m human_body_prior.train.train_open_vposer --version {version}`")
    return str(path)
