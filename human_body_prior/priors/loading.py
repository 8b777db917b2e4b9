"""``load_prior``: a PosePrior from a file, a folder or the name of a shipped prior.

A new prior is one module in ``priors/`` and one line in ``_KINDS`` (and, if it is shipped, in ``_NAMES``).
Loading never runs code from the files (see the loaders each line calls).
"""

from pathlib import Path

from human_body_prior.support_paths import default_vposer_dir


def _v2_folder(path: Path) -> bool:
    from human_body_prior.priors.vposer_v2_io import is_v2_folder

    return path.is_dir() and is_v2_folder(path)


def _load_v2(path, verbose: bool):
    from human_body_prior.priors.vposer_v2_io import load_model

    return load_model(path, comp_device="cpu", verbose=verbose)


def _load_v1(path, verbose: bool):
    from human_body_prior.priors.experiment import load_vposer

    return load_vposer(path, verbose=verbose)


def _load_gmm(path, verbose: bool):
    from human_body_prior.priors.gmm import GMMPosePrior

    return GMMPosePrior.load(path), None


def _gmm_path() -> str:
    from human_body_prior.priors.gmm import default_gmm_path

    return default_gmm_path()


# (what it is, does the path hold one, load it -> (prior, settings or None)); the first match loads.
_KINDS = (
    ("a VPoser v2 (V02) experiment folder", _v2_folder, _load_v2),
    ("a VPoser v1 (2019) experiment folder", Path.is_dir, _load_v1),
    ("a GMM prior file (.npz)", lambda p: p.is_file() and p.suffix == ".npz", _load_gmm),
)
# the shipped priors, by name -> their path
_NAMES = {
    "vposer_v1": lambda: default_vposer_dir(1),
    "vposer_v2": lambda: default_vposer_dir(2),
    "gmm": _gmm_path,
}
PRIOR_NAMES = tuple(_NAMES)


def load_prior_and_settings(path_or_name, verbose: bool = False):
    """A shipped prior's name ('vposer_v1', 'vposer_v2', 'gmm'), a v1 or V02 experiment folder or a GMM
    .npz -> (PosePrior on the CPU, in eval mode; its settings: the folder's Configer / ExperimentConfig,
    None for a GMM). Anything else is a FileNotFoundError or ValueError naming the path."""
    if isinstance(path_or_name, str) and path_or_name in _NAMES:
        path_or_name = _NAMES[path_or_name]()
    path = Path(path_or_name)
    for _what, holds, load in _KINDS:
        if holds(path):
            return load(path_or_name, verbose)  # as given: the settings record the folder as named
    expected = ", ".join(what for what, _, _ in _KINDS) + f" or one of the names {list(_NAMES)}"
    if not path.exists():
        raise FileNotFoundError(f"no pose prior at {path}: not found (expected {expected})")
    raise ValueError(f"cannot load a pose prior from {path}: expected {expected}")


def load_prior(path_or_name, verbose: bool = False):
    """A PosePrior (see :func:`load_prior_and_settings`): ``load_prior('vposer_v2').sample(4, seed=0)`` -> (4, 63)."""
    return load_prior_and_settings(path_or_name, verbose=verbose)[0]


def load_any_vposer(expr_dir, verbose: bool = False):
    """Experiment folder of either VPoser layout -> (model in eval mode on the CPU, settings).

    A folder with a .yaml or snapshots/*.ckpt is V02 (``load_model``), otherwise 2019 (``load_vposer``).
    """
    if not Path(expr_dir).is_dir():
        raise FileNotFoundError(f"experiment folder {expr_dir} not found")
    return load_prior_and_settings(expr_dir, verbose=verbose)
