"""Where the shipped open body models and the open VPoser live.

The files are in the repository's top-level ``support_data/`` folder; an installed wheel (or a
non-editable ``pip install .``) carries them as the package folder ``human_body_prior/_support_data``.
Set the environment variable ``HUMAN_BODY_PRIOR_SUPPORT_DATA`` to use a copy elsewhere.
"""

import os
from pathlib import Path

from human_body_prior.model_types.spec import SPECS


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


def _file_gender(spec, gender: str) -> str:
    """The gender (MANO: side) of spec's files that ``gender`` names; 'neutral' is MANO's default side."""
    if spec.has_body:
        if gender not in spec.genders:
            raise ValueError(f"gender must be one of {spec.genders}, got {gender!r}")
        return gender
    side = spec.genders[0] if gender == "neutral" else gender
    if side not in spec.genders:
        raise ValueError(f"for {spec.title}, gender must be {' or '.join(map(repr, sorted(spec.genders)))}, "
                         f"got {gender!r}")
    return side


def default_body_model_path(model_type: str = "smplx", gender: str = "neutral") -> str:
    """Path of the shipped open body model file (or of the official one in HUMAN_BODY_PRIOR_SUPPORT_DATA).

    model_type: 'smplx' | 'smplh' | 'smpl' | 'mano'; gender: 'neutral' | 'female' | 'male'
    ('left' | 'right' for MANO, where 'neutral' means 'right'). Looks for
    ``body_models/<type>/<TYPE>_<GENDER>.npz`` (the official names), then for AMASS's layout
    ``body_models/<type>/<gender>/model.npz`` (body models only).
    """
    model_type = model_type.lower()
    gender = gender.lower()
    if model_type not in SPECS:
        raise ValueError(f"model_type must be one of {sorted(SPECS)}, got {model_type!r}")
    spec = SPECS[model_type]
    name = f"{spec.file_prefix}_{_file_gender(spec, gender).upper()}.npz"
    folder = support_data_dir() / "body_models" / spec.name
    candidates = [folder / name] + ([folder / gender / "model.npz"] if spec.has_body else [])
    for path in candidates:
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"body model {candidates[0]} is missing"
                            + (f" (nor is AMASS's {candidates[1]} there)" if len(candidates) > 1 else "")
                            + "; rebuild the shipped one with `python -m human_body_prior.open_model.build`")


def model_file_gender(path):
    """The gender (MANO: side) a model file's name says, or None: official names <TYPE>_<GENDER>.npz|.pkl
    (SMPLX_FEMALE.npz, MANO_LEFT.pkl) and AMASS's <gender>/model.npz."""
    path = Path(path)
    prefix, _, gender = path.stem.rpartition("_")
    for spec in SPECS.values():
        if prefix.upper() == spec.file_prefix and gender.lower() in spec.genders:
            return gender.lower()
    body_genders = {g for spec in SPECS.values() if spec.has_body for g in spec.genders}
    if path.stem == "model" and path.parent.name.lower() in body_genders:
        return path.parent.name.lower()
    return None


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
