"""Read and write VPoser experiment folders in the 2019 layout.

An experiment folder holds::

    snapshots/TRxx_Eyyy.pt   state_dicts, one per saved epoch (xx: try number, yyy: epoch)
    <name>.ini               settings in configer format (num_neurons, latentD, data_shape, use_cont_repr, ...)
    vposer_*.py              the model code it was trained with (kept as documentation)

Loading never runs code from the folder: snapshots are read with ``torch.load(weights_only=True)``
and the network is this package's own :class:`~human_body_prior.priors.vposer.VPoser` (or a class
you pass). The official ``vposer_v1_0`` download loads this way on current PyTorch, although its
``vposer_smpl.py`` (which imports torchgeometry) no longer imports.
"""

import inspect
import shutil
from pathlib import Path

import torch
from configer import Configer

from human_body_prior.files.atomic_io import atomic_write, torch_save_atomic
from human_body_prior.files.settings_parser import read_ini, read_ini_text
from human_body_prior.files.zip_check import check_zip_crcs
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.snapshots import best_snapshot, v1_snapshot_name, v1_try_prefix

_REQUIRED_SETTINGS = ("num_neurons", "latentD")
_DEFAULT_SETTINGS = {"data_shape": [1, NUM_POSE_BODY_JOINTS, 3], "use_cont_repr": True}


# ---------------------------------------------------------------------------------------------- reading
def _settings_file(expr_dir: Path, snapshot: Path) -> Path:
    inis = sorted(p for p in expr_dir.glob("*.ini") if p.is_file())
    if not inis and any(expr_dir.glob("*.yaml")):
        raise FileNotFoundError(f"no settings file (*.ini) in {expr_dir}, but a .yaml: a VPoser v2 (V02) experiment "
                                "folder; load it with human_body_prior.tools.model_loader.load_model")
    if not inis:
        raise FileNotFoundError(f"no settings file (*.ini) in the experiment folder {expr_dir}")
    if len(inis) == 1:
        return inis[0]
    # several: prefer the one of the snapshot's try (TRxx_...)
    prefix = v1_try_prefix(snapshot.name)
    if prefix:
        same_try = [p for p in inis if p.name.startswith(prefix)]
        if len(same_try) == 1:
            return same_try[0]
    raise ValueError(f"several settings files in {expr_dir} ({[p.name for p in inis]}); keep only one")


def read_settings(ini_fname, **overrides) -> Configer:
    """Settings file (configer format, one [All] section or several) -> Configer; overrides win.

    Values are parsed by the package's strict settings parser (files/settings_parser.py): ``latentD :
    32.7`` or ``use_cont_repr : 'False'`` is a ValueError naming the key and the file, ``false`` is False.
    """
    ini_fname = Path(ini_fname)
    values = read_ini(ini_fname, text_as_literal=True)
    ps = Configer(**{**values, **overrides})
    ps["default_ps"] = read_ini_text(ini_fname)  # the raw text, as configer keeps it
    return ps


def expid2model(expr_dir, verbose: bool = True):
    """Experiment folder -> (ps, best_model_fname).

    ps: Configer of the folder's .ini, plus ``work_dir`` (the folder) and ``best_model_fname``.
    best_model_fname: snapshots/TRxx_Eyyy.pt with the highest epoch number in its name (file times
    are ignored: copies and unzips reset them).
    """
    expr_dir = Path(expr_dir)
    if not expr_dir.is_dir():
        raise FileNotFoundError(f"experiment folder {expr_dir} not found")
    best = best_snapshot(expr_dir, version=1)
    if verbose:
        print(f"Found Trained Model: {best}")
    ps = read_settings(_settings_file(expr_dir, best), work_dir=str(expr_dir), best_model_fname=str(best))
    return ps, str(best)


def _model_kwargs(ps: Configer) -> dict:
    missing = [k for k in _REQUIRED_SETTINGS if k not in ps]
    if missing:
        where = ps.get("work_dir", "the experiment folder")
        raise ValueError(f"settings of {where} lack {missing} (needed to build VPoser)")
    kwargs = {k: ps[k] for k in _REQUIRED_SETTINGS}
    for k, v in _DEFAULT_SETTINGS.items():
        kwargs[k] = ps.get(k, v)
    return kwargs


def _user_class_kwargs(cls, kwargs: dict) -> dict:
    """2019's load_vposer called a class with num_neurons, latentD and data_shape; use_cont_repr goes
    only to a class that names it or takes **kwargs."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    takes = "use_cont_repr" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in kwargs.items() if k != "use_cont_repr" or takes}


def read_state_dict(snapshot_fname, map_location=None) -> dict:
    """torch.load(weights_only=True) of a state_dict snapshot; a 'module.' prefix (DataParallel) is removed.
    Non-finite floating-point weights raise ValueError naming the file and the tensors."""
    check_zip_crcs(snapshot_fname, "snapshot")
    try:
        sd = torch.load(str(snapshot_fname), map_location=map_location or "cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"cannot read the snapshot {snapshot_fname} as a plain tensor state_dict "
                         f"(weights_only=True): {e}") from e
    if not isinstance(sd, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
        raise ValueError(f"snapshot {snapshot_fname} is not a state_dict (a dict of name -> tensor)")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"snapshot {snapshot_fname} has non-finite weights (NaN or inf) in {', '.join(bad[:5])}"
                         f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}; a diverged training?")
    return sd


def check_state_dict(model: torch.nn.Module, state_dict: dict, source="state_dict") -> None:
    """Raise an error naming missing/unexpected keys and shape mismatches unless state_dict fits model
    exactly (model may live on the meta device). A missing BatchNorm num_batches_tracked (snapshots
    older than PyTorch 0.4.1) is fine."""
    expected = model.state_dict()
    state_dict = dict(state_dict)
    for k, v in expected.items():
        if k.endswith("num_batches_tracked") and k not in state_dict:
            state_dict[k] = v
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if mismatched:
            parts.append(f"shape mismatches [{'; '.join(mismatched)}]")
        raise ValueError(f"{source} does not fit {type(model).__name__}: " + ", ".join(parts))


def load_state_dict_checked(model: torch.nn.Module, state_dict: dict, source="state_dict") -> None:
    """model.load_state_dict(strict) after :func:`check_state_dict` (so errors name keys and shapes).

    Snapshots older than PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; those count as 0.
    """
    check_state_dict(model, state_dict, source)
    state_dict = dict(state_dict)
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in state_dict:
            state_dict[k] = torch.zeros_like(v)
    model.load_state_dict(state_dict, strict=True)


def build_checked(build, state_dict: dict, source="state_dict") -> torch.nn.Module:
    """``build()`` a model only once its keys and shapes, read from a build on the meta device (no
    memory), fit state_dict: a wrong width in a settings file (num_neurons : 20000) fails at once
    instead of allocating the network first. Models that cannot be built on the meta device are
    checked after building."""
    try:
        with torch.device("meta"):
            probe = build()
    except Exception:  # noqa: BLE001 - e.g. a custom class doing numpy work in __init__
        probe = None
    if probe is not None:
        check_state_dict(probe, state_dict, source)
    return build()


def load_vposer(expr_dir, vp_model="snapshot", map_location=None, device=None, verbose: bool = True):
    """Experiment folder -> (model in eval mode, ps).

    vp_model: 'snapshot' builds this package's VPoser from the folder's settings (num_neurons,
    latentD, data_shape, use_cont_repr); a class is called with num_neurons, latentD and data_shape as
    2019 did (and use_cont_repr when its signature names it); an
    nn.Module instance is used as is. The folder's own ``vposer_*.py`` is never executed. To use it
    anyway you must import it yourself, knowing that it runs untrusted code, and pass its class here.
    map_location: where torch.load puts the tensors (default CPU). device: where the model goes
    (default: map_location when that names a device, else CPU).
    """
    ps, best = expid2model(expr_dir, verbose=verbose)
    if isinstance(vp_model, str) and vp_model != "snapshot":
        raise ValueError(f"vp_model must be 'snapshot', a model class or a module, got {vp_model!r}")
    if not (isinstance(vp_model, (str, torch.nn.Module)) or callable(vp_model)):
        raise TypeError(f"vp_model must be 'snapshot', a model class or a module, got {type(vp_model).__name__}")
    state_dict = read_state_dict(best, map_location)
    if isinstance(vp_model, torch.nn.Module):
        model = vp_model
    elif isinstance(vp_model, str):  # this package's VPoser: shapes checked before anything is allocated
        from human_body_prior.priors.vposer import VPoser
        kwargs = _model_kwargs(ps)
        model = build_checked(lambda: VPoser(**kwargs), state_dict, source=f"snapshot {best}")
    else:  # a caller's class is built once, as it expects, with what 2019 passed
        model = vp_model(**_user_class_kwargs(vp_model, _model_kwargs(ps)))
    load_state_dict_checked(model, state_dict, source=f"snapshot {best}")
    if device is None and isinstance(map_location, (str, torch.device)):
        device = map_location
    model.to(device if device is not None else "cpu")
    model.eval()
    return model, ps


# ---------------------------------------------------------------------------------------------- writing
def snapshot_fname(expr_dir, epoch: int, try_num: int = 0) -> str:
    """<expr_dir>/snapshots/TRxx_Eyyy.pt."""
    return str(Path(expr_dir) / "snapshots" / v1_snapshot_name(epoch, try_num))


def save_snapshot(model_or_state_dict, fname) -> str:
    """Write a state_dict (tensors moved to CPU) to fname atomically. Returns fname."""
    sd = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, torch.nn.Module) else model_or_state_dict
    sd = {k: v.detach().cpu() for k, v in sd.items()}
    torch_save_atomic(sd, Path(fname))
    return str(fname)


def write_settings(settings, fname) -> str:
    """Write settings (dict or Configer) as a configer .ini ([All] section, 'key : value' lines), atomically.

    Values are written with str() and read back by configer with ast.literal_eval (strings that
    are not Python literals stay strings); '%' is escaped for configparser.
    """
    items = {k: v for k, v in dict(settings).items() if k != "default_ps"}

    def write(tmp):
        with open(tmp, "w") as f:
            f.write("[All]\n")
            for k in sorted(items):
                v = items[k]
                if isinstance(v, Path):
                    v = str(v)
                text = str(v).replace("\n", " ").replace("%", "%%")
                f.write(f"{k} : {text}\n")

    atomic_write(Path(fname), write)
    return str(fname)


def write_vposer_experiment(expr_dir, model, settings=None, epoch: int = 0, try_num: int = 0,
                            expr_code=None) -> str:
    """Write a 2019-layout experiment folder for a VPoser; returns the snapshot path.

    Writes snapshots/TRxx_Eyyy.pt, TRxx_<expr_code>.ini (settings plus the model's num_neurons,
    latentD, data_shape, use_cont_repr; expr_code defaults to settings['expr_code'] or the folder
    name) and a copy of this package's model code as vposer_smpl.py (documentation only; never
    executed), each atomically. Calling it again (next epoch) adds a snapshot and refreshes the rest.
    """
    expr_dir = Path(expr_dir)
    expr_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in dict(settings or {}).items() if k not in ("default_ps", "best_model_fname")}
    for k in ("num_neurons", "latentD", "data_shape", "use_cont_repr"):
        if hasattr(model, k):
            settings[k] = getattr(model, k)
    expr_code = expr_code or settings.get("expr_code") or expr_dir.resolve().name
    settings.setdefault("expr_code", expr_code)
    settings["work_dir"] = str(expr_dir)

    write_settings(settings, expr_dir / f"TR{int(try_num):02d}_{expr_code}.ini")
    from human_body_prior.priors import vposer as vposer_module
    atomic_write(expr_dir / "vposer_smpl.py", lambda tmp: shutil.copyfile(vposer_module.__file__, tmp))
    return save_snapshot(model, snapshot_fname(expr_dir, epoch, try_num))
