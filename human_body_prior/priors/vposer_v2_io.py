"""Read and write VPoser v2 (``V02``) experiment folders, and ``load_model`` / ``exprdir2model``.

A V02 experiment folder (the layout of the official ``V02_05`` download)::

    <expr_id>.yaml            settings: model_params, train_parms, data_parms, general, logging, body_model
    snapshots/*.ckpt          PyTorch Lightning checkpoints, e.g. V02_05_epoch=13_val_loss=0.03.ckpt

A checkpoint is a dict whose ``state_dict`` holds the network under the ``vp_model.`` prefix (a
trained upstream file also holds ``bm_train.*`` body-model buffers, which are ignored) beside
Lightning's own entries (``epoch``, ``global_step``, ``optimizer_states``, ``callbacks``, ...).

Loading never runs code from the folder: the yaml is read with ``yaml.safe_load``; a checkpoint is
read with ``torch.load(weights_only=True)`` and, when Lightning's entries hold other objects, with a
restricted unpickler that rebuilds tensors and plain containers only, replaces every other object by
an inert placeholder (never constructed or called) and refuses globals from code-running modules
(``os``, ``subprocess``, ``builtins.eval``, ...) with an error naming the file.
"""

import io
import pickle
import types
from collections import OrderedDict
from pathlib import Path

import torch

from human_body_prior.files.stand_in import StandIn, stand_in_class
from human_body_prior.files.unpickling import as_pickle_module, restricted_unpickler
from human_body_prior.files.zip_check import check_zip_crcs
from human_body_prior.priors import snapshots
from human_body_prior.priors.snapshots import v2_snapshot_name as snapshot_name  # noqa: F401 (public name)

V2_PREFIX = "vp_model."
IGNORED_PREFIXES = ("bm_train.",)  # body-model buffers of the upstream LightningModule, not weights
CONFIG_SECTIONS = ("general", "logging", "train_parms", "data_parms", "model_params", "body_model")



# ---------------------------------------------------------------------------------------------- config
class ExperimentConfig(dict):
    """A nested dict whose keys are also attributes: ``cfg.model_params.latentD == cfg['model_params']['latentD']``."""

    def __init__(self, data=(), **kwargs):
        super().__init__()
        for k, v in dict(data, **kwargs).items():
            self[k] = v

    def __setitem__(self, key, value):
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"the configuration has no key {key!r} (keys: {sorted(self)})") from None

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (what yaml.safe_dump writes)."""
        return {k: _unwrap(v) for k, v in self.items()}


def _wrap(value):
    if isinstance(value, ExperimentConfig):
        return value
    if isinstance(value, dict):
        return ExperimentConfig(value)
    if isinstance(value, types.SimpleNamespace):
        return ExperimentConfig(vars(value))
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value):
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unwrap(v) for v in value]
    return value


def merge_config(cfg: ExperimentConfig, override) -> ExperimentConfig:
    """A copy of cfg with override (a nested dict, SimpleNamespace or ExperimentConfig) merged in, key by key."""
    out = ExperimentConfig(_unwrap(cfg))
    if override is None:
        return out
    if isinstance(override, types.SimpleNamespace):
        override = vars(override)
    if not isinstance(override, dict):
        raise TypeError(f"model_cfg_override must be a dict or SimpleNamespace, got {type(override).__name__}")
    for k, v in override.items():
        if isinstance(v, types.SimpleNamespace):
            v = vars(v)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = _unwrap(v)
    return out


def read_config(yaml_fname) -> ExperimentConfig:
    """A V02 .yaml (safe loader, no Python tags) -> ExperimentConfig."""
    import yaml

    yaml_fname = Path(yaml_fname)
    try:
        text = yaml_fname.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"settings file {yaml_fname} is not UTF-8 text ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"cannot parse the settings file {yaml_fname} as YAML (safe loader): {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"settings file {yaml_fname} must hold a mapping of sections, got {type(data).__name__}")
    return ExperimentConfig(data)


def write_config(cfg, yaml_fname) -> str:
    """Write a configuration (dict or ExperimentConfig) as yaml, atomically."""
    import yaml

    from human_body_prior.files.atomic_io import atomic_write_bytes

    text = yaml.safe_dump(_unwrap(dict(cfg)), sort_keys=False, default_flow_style=False)
    atomic_write_bytes(Path(yaml_fname), text.encode("utf-8"))
    return str(yaml_fname)


# ---------------------------------------------------------------------------------------------- checkpoints
class _Skipped(StandIn):
    """Stands in for an object of a non-weight checkpoint entry: nothing of the original class runs and
    nothing of its state is kept."""

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __repr__(self):
        return f"<skipped {self.source} object>"


def _allowed_globals() -> dict:
    allowed = {
        "collections.OrderedDict": OrderedDict,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "_codecs.encode": __import__("codecs").encode,
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
        "builtins.bytearray": bytearray, "builtins.slice": slice,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    }
    if hasattr(torch._utils, "_rebuild_parameter_with_state"):
        allowed["torch._utils._rebuild_parameter_with_state"] = torch._utils._rebuild_parameter_with_state
    for name in dir(torch):
        value = getattr(torch, name)
        if isinstance(value, torch.dtype):
            allowed[str(value)] = value
    return allowed


# Globals from these modules in a checkpoint are a code payload, not Lightning bookkeeping.
_CODE_MODULES = {"builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "importlib", "runpy",
                 "shutil", "socket", "pickle", "_pickle", "marshal", "types", "code", "codeop", "ctypes", "pty",
                 "webbrowser", "operator", "functools", "io", "_io", "commands", "popen2", "pdb", "timeit",
                 "multiprocessing", "asyncio", "threading", "signal"}


class CheckpointPayloadError(pickle.UnpicklingError):
    pass


def _stand_in(module: str, name: str):
    """Lightning's bookkeeping objects become inert _Skipped objects; code modules get None (refused)."""
    return None if module.split(".")[0] in _CODE_MODULES else stand_in_class(_Skipped, module, name)


def _refusal(module: str, name: str, qualname: str) -> CheckpointPayloadError:
    return CheckpointPayloadError(f"refusing the global {qualname}: a checkpoint holds weights, not code")


def _restricted_pickle_module():
    unpickler = restricted_unpickler(_allowed_globals(), lambda module, name: f"{module}.{name}", _stand_in, _refusal)
    return as_pickle_module(unpickler, "human_body_prior_restricted_pickle")


def read_checkpoint(ckpt_fname, map_location="cpu") -> dict:
    """A Lightning .ckpt (or a bare state dict) -> a dict with at least 'state_dict' (name -> tensor).

    Entries other than tensors and plain containers come back as inert placeholders.
    """
    ckpt_fname = Path(ckpt_fname)
    if not ckpt_fname.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_fname} not found")
    check_zip_crcs(ckpt_fname, "checkpoint")
    try:
        ckpt = torch.load(str(ckpt_fname), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # Lightning entries with other objects: the restricted unpickler decides
        try:
            with open(ckpt_fname, "rb") as fh:
                raw = fh.read()
            ckpt = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=False,
                              pickle_module=_restricted_pickle_module())
        except CheckpointPayloadError as e:
            raise ValueError(f"refusing to load {ckpt_fname}: {e}") from None
        except Exception as e:
            raise ValueError(f"cannot read the checkpoint {ckpt_fname}: {type(e).__name__}: {e}") from None
    except Exception as e:
        raise ValueError(f"cannot read the checkpoint {ckpt_fname} (not a torch/Lightning checkpoint?): "
                         f"{type(e).__name__}: {e}") from None
    if isinstance(ckpt, dict) and "state_dict" not in ckpt and ckpt and all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in ckpt.items()):
        ckpt = {"state_dict": ckpt}  # a bare state dict saved with torch.save(model.state_dict())
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        what = sorted(map(str, ckpt))[:12] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"checkpoint {ckpt_fname} has no 'state_dict' entry (found {what})")
    bad = [str(k) for k, v in ckpt["state_dict"].items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        raise ValueError(f"checkpoint {ckpt_fname}: state_dict entries that are not tensors: {bad[:10]}")
    return ckpt


def model_state_dict(ckpt_state_dict: dict, remove_words=None) -> dict:
    """Strip a prefix (e.g. 'vp_model.') and drop the body-model buffers ('bm_train.*')."""
    sd = {k: v for k, v in ckpt_state_dict.items() if not k.startswith(IGNORED_PREFIXES)}
    if remove_words is None and sd and all(k.startswith(V2_PREFIX) for k in sd):
        remove_words = V2_PREFIX  # upstream callers forgetting the prefix would silently load nothing
    if remove_words:
        sd = {(k[len(remove_words):] if k.startswith(remove_words) else k): v for k, v in sd.items()}
    return sd


def check_finite(state_dict: dict, source: str) -> None:
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{source} holds NaN or inf values in {bad}; refusing to load it")


def write_checkpoint(model: torch.nn.Module, ckpt_fname, epoch: int, global_step: int = 0) -> str:
    """Write a V02 snapshot atomically: {'state_dict': 'vp_model.*' tensors (CPU), 'epoch', 'global_step'},
    exactly what ``load_model`` (and a weights-only torch.load) needs."""
    from human_body_prior.files.atomic_io import torch_save_atomic

    sd = OrderedDict((V2_PREFIX + k, v.detach().cpu().clone()) for k, v in model.state_dict().items())
    ckpt = {"epoch": int(epoch), "global_step": int(global_step), "state_dict": sd}
    torch_save_atomic(ckpt, Path(ckpt_fname))
    return str(ckpt_fname)


def best_snapshot(expr_dir) -> Path:
    """snapshots/*.ckpt with the highest epoch= in its name; ties: lower val_loss=, then the name
    (:func:`human_body_prior.priors.snapshots.best_snapshot`)."""
    return snapshots.best_snapshot(expr_dir, version=2)


def config_file(expr_dir) -> Path:
    expr_dir = Path(expr_dir)
    yamls = sorted(p for p in expr_dir.glob("*.yaml") if p.is_file()) or \
        sorted(p for p in expr_dir.glob("*.yml") if p.is_file())
    if not yamls:
        if any(expr_dir.glob("*.ini")):
            raise FileNotFoundError(f"no settings file (*.yaml) in {expr_dir}: it holds an .ini, a VPoser v1 (2019) "
                                    "experiment folder; load it with human_body_prior.tools.model_loader.load_vposer")
        raise FileNotFoundError(f"no settings file (*.yaml) in the VPoser v2 experiment folder {expr_dir}")
    if len(yamls) > 1:
        named = [p for p in yamls if p.stem == expr_dir.name]
        if len(named) == 1:
            return named[0]
        raise ValueError(f"several settings files in {expr_dir} ({[p.name for p in yamls]}); keep only one")
    return yamls[0]


def is_v2_folder(expr_dir) -> bool:
    expr_dir = Path(expr_dir)
    return any(expr_dir.glob("*.yaml")) or any((expr_dir / "snapshots").glob("*.ckpt"))


def exprdir2model(expr_dir, model_cfg_override=None, verbose: bool = True):
    """V02 experiment folder -> (cfg, best checkpoint path).

    cfg: the folder's yaml as an ExperimentConfig with model_cfg_override merged in, and
    ``cfg.logging.best_model_fname`` set to the checkpoint chosen (see :func:`best_snapshot`).
    """
    expr_dir = Path(expr_dir)
    if not expr_dir.is_dir():
        raise FileNotFoundError(f"experiment folder {expr_dir} not found")
    yaml_fname = config_file(expr_dir)
    best = best_snapshot(expr_dir)
    if verbose:
        print(f"Found Trained Model: {best}")
    cfg = merge_config(read_config(yaml_fname), model_cfg_override)
    logging_section = cfg.get("logging")
    if not isinstance(logging_section, dict):
        cfg["logging"] = {}
    cfg.logging["best_model_fname"] = str(best)
    cfg.logging.setdefault("expr_dir", str(expr_dir))
    return cfg, str(best)


_said_no_cuda = False


def _resolve_device(comp_device):
    global _said_no_cuda
    if isinstance(comp_device, torch.device):
        return comp_device
    spec = str(comp_device or "cpu").lower()
    if spec in ("gpu", "cuda", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if spec != "auto" and not _said_no_cuda:
            print(f"load_model: comp_device={comp_device!r} but CUDA is not available; loading on the CPU")
            _said_no_cuda = True
        return torch.device("cpu")
    return torch.device(spec)


def load_model(expr_dir, model_code=None, remove_words_in_model_weights=None, load_only_cfg=False,
               disable_grad=True, model_cfg_override=None, comp_device="gpu", verbose: bool = True):
    """V02 experiment folder -> (model in eval mode, cfg), or cfg alone with load_only_cfg.

    model_code: the network class, called as ``model_code(cfg)`` (default: this package's v2 VPoser).
    remove_words_in_model_weights: prefix stripped from the checkpoint's keys ('vp_model.'); when
    omitted and every key carries 'vp_model.', it is stripped too. 'bm_train.*' buffers are ignored.
    The state dict must then fit the model exactly (missing/unexpected keys and shape mismatches are
    listed). comp_device: 'gpu'/'cuda' (the CPU, said once, when CUDA is absent), 'cpu' or a device.
    """
    cfg, best = exprdir2model(expr_dir, model_cfg_override, verbose=verbose)
    if load_only_cfg:
        return cfg
    if model_code is None:
        from human_body_prior.priors.vposer_v2 import VPoser as model_code
    from human_body_prior.priors.vposer import VPoser as VPoserV1
    if model_code is VPoserV1:
        raise TypeError(f"{expr_dir} is a VPoser v2 folder; pass model_code=human_body_prior.models.vposer_model.VPoser "
                        "(the 2019 class belongs to load_vposer and v1 folders)")
    ckpt = read_checkpoint(best)
    sd = model_state_dict(ckpt["state_dict"], remove_words_in_model_weights)
    check_finite(sd, f"checkpoint {best}")
    from human_body_prior.priors.experiment import (
        build_checked,
        load_state_dict_checked,
    )

    def build():
        try:
            return model_code(cfg)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"cannot build {getattr(model_code, '__name__', model_code)} from the settings of "
                             f"{config_file(expr_dir)}: {e}") from None

    # this package's VPoser: shapes are checked on the meta device first (a wrong width in the yaml
    # allocates nothing); a caller's class is built once, as it expects
    from human_body_prior.priors.vposer_v2 import VPoser as VPoserV2

    model = build_checked(build, sd, source=f"checkpoint {best}") if model_code is VPoserV2 else build()
    load_state_dict_checked(model, sd, source=f"checkpoint {best}")
    model.to(_resolve_device(comp_device))
    if disable_grad:
        for p in model.parameters():
            p.requires_grad = False
    model.eval()
    return model, cfg

