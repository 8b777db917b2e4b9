"""Trainer settings: the packaged defaults, a run's .ini and overrides, merged and parsed once into a frozen config.

Files are .ini files in UTF-8 (any sections; keys are flattened, later sections win). Every known key
has a type (:data:`SETTING_TYPES`) and its value is parsed strictly: booleans are true/false, yes/no,
on/off or 1/0 (``render_pictures : no`` is False, ``maybe`` is an error), integers are integers
(``latentD : 32.7`` is an error naming the key and the file), and so on. Command-line overrides are
``--key value`` pairs, parsed the same way. Keys a written experiment .ini carries for bookkeeping
(unknown to the defaults) are kept as text.
"""

import ast
import configparser
import re
from collections.abc import Mapping
from pathlib import Path

DEFAULTS_INI = Path(__file__).resolve().parent / "vposer_smpl_defaults.ini"

# key -> type: 'bool', 'int', 'float', 'str', 'int_list' or 'resume' (a boolean or a path)
SETTING_TYPES = {
    "verbosity": "int", "expr_code": "str", "work_dir": "str", "work_root": "str", "bm_path": "str",
    "dataset_dir": "str", "config_path": "str",
    "progress_bar": "bool", "render_pictures": "bool",
    "num_epochs": "int", "batch_size": "int", "base_lr": "float", "reg_coef": "float", "seed": "int",
    "lr_schedule": "str", "lr_patience": "int", "lr_factor": "float", "lr_step_epochs": "int", "min_lr": "float",
    "early_stop_patience": "int", "resume": "resume", "train_frame_step": "int", "try_num": "int",
    "device": "str", "dtype": "str", "num_threads": "int",
    "kl_coef": "float", "keep_extra_loss_terms_until_epoch": "int", "pose_loss_weight": "float",
    "num_loss_vertices": "int", "vertex_subset": "str", "vertex_subset_seed": "int",
    "loss_kl_wt": "float", "loss_rec_wt": "float", "loss_matrot_wt": "float", "loss_jtr_wt": "float",
    "model_version": "int", "num_neurons": "int", "latentD": "int", "data_shape": "int_list", "use_cont_repr": "bool",
}
_CHOICES = {"lr_schedule": ("plateau", "step", "none"), "dtype": ("float32", "float64"),
            "vertex_subset": ("random", "fps"), "model_version": (1, 2)}
_POSITIVE = ("num_epochs", "batch_size", "num_neurons", "latentD", "train_frame_step")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_INT_RE = re.compile(r"^[+-]?\d+$")


def _fail(key, where, expected, value):
    raise ValueError(f"setting {key!r} {where}: expected {expected}, got {value!r}")


def parse_value(key: str, value, where: str = "(given as an argument)"):
    """The typed value of setting ``key`` from text (files, command line) or a Python value; strict."""
    kind = SETTING_TYPES.get(key)
    if kind is None:
        return _literal(value)
    text = value.strip() if isinstance(value, str) else None
    if kind == "bool" or (kind == "resume" and (isinstance(value, bool) or (text or "").lower() in _TRUE + _FALSE)):
        if isinstance(value, bool):
            out = value
        elif isinstance(value, int) and value in (0, 1):
            out = bool(value)
        elif text is not None and text.lower() in _TRUE + _FALSE:
            out = text.lower() in _TRUE
        else:
            _fail(key, where, "a boolean (true/false, yes/no, on/off, 1/0)", value)
    elif kind == "resume":
        out = False if text == "" or value is None else str(value)
    elif kind == "int":
        if isinstance(value, bool):
            _fail(key, where, "an integer", value)
        if isinstance(value, int):
            out = value
        elif text is not None and _INT_RE.match(text):
            out = int(text)
        else:
            _fail(key, where, "an integer", value)
    elif kind == "float":
        if isinstance(value, bool):
            _fail(key, where, "a number", value)
        if isinstance(value, (int, float)):
            out = float(value)
        else:
            try:
                out = float(text)
            except (TypeError, ValueError):
                _fail(key, where, "a number", value)
    elif kind == "int_list":
        parsed = _literal(value) if isinstance(value, str) else value
        if not isinstance(parsed, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in parsed):
            _fail(key, where, "a list of integers such as [1, 21, 3]", value)
        out = [int(v) for v in parsed]
    else:  # str
        out = "" if value is None else str(value).strip() if isinstance(value, str) else str(value)
    if key in _CHOICES and out not in _CHOICES[key] and not (key == "lr_schedule" and str(out).lower() in _CHOICES[key]):
        _fail(key, where, f"one of {list(_CHOICES[key])}", value)
    if key in _POSITIVE and out <= 0:
        _fail(key, where, "a positive integer", value)
    return out


def _literal(text):
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_ini_text(fname) -> dict:
    """All keys of an .ini file (sections flattened, later sections win) as raw text."""
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"settings file {fname} not found")
    try:
        text = fname.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"settings file {fname} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
    parser.optionxform = str  # keep key case (latentD)
    try:
        parser.read_string(text, source=str(fname))
    except configparser.Error as e:
        raise ValueError(f"cannot parse the settings file {fname}: {e}") from None
    return {k: v for s in parser.sections() for k, v in parser.items(s)}


def read_ini(fname) -> dict:
    """All keys of an .ini file with typed values (known keys strictly, others as Python literals or text)."""
    return {k: parse_value(k, v, where=f"in {fname}") for k, v in read_ini_text(fname).items()}


def parse_cli_overrides(argv) -> dict:
    """['--config_path', 'x.ini', '--num_epochs', '3'] -> {'config_path': 'x.ini', 'num_epochs': 3}."""
    out = {}
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(f"expected --key value pairs on the command line, got {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ValueError(f"option --{key} needs a value")
            value = argv[i + 1]
            i += 2
        key = key.replace("-", "_")
        out[key] = parse_value(key, value, where="on the command line")
    return out


class TrainSettings(Mapping):
    """The trainer's settings, parsed once and frozen: ``cfg.num_epochs``, ``cfg['num_epochs']``, ``cfg.get(k, d)``.

    Derived values (the experiment folder, the body model path) are resolved by the code that needs
    them and never written back.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping):
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r}") from None

    def __setattr__(self, key, value):
        raise AttributeError(f"settings are frozen; pass {key}=... when loading them instead")

    def replace(self, **changes) -> "TrainSettings":
        """A copy with some values changed (parsed like any other value)."""
        values = dict(self._values)
        values.update({k: parse_value(k, v) for k, v in changes.items()})
        return TrainSettings(values)

    def __repr__(self):
        return f"TrainSettings({self._values!r})"


def load_settings(config_path=None, strict: bool = True, **overrides) -> TrainSettings:
    """Defaults <- config_path's keys <- overrides, each value parsed strictly -> frozen TrainSettings.

    With strict, override keys that neither the defaults nor the file know are an error (likely a typo).
    """
    values = read_ini(DEFAULTS_INI)
    known = set(values) | {"config_path"}
    if config_path:
        from_file = read_ini(config_path)
        # a written experiment .ini carries bookkeeping keys; accept them
        values.update(from_file)
        known |= set(from_file)
    overrides.pop("default_ps", None)
    unknown = sorted(set(overrides) - known)
    if strict and unknown:
        raise ValueError(f"unknown settings {unknown}; known keys are {sorted(known - {'config_path'})}")
    values.update({k: parse_value(k, v) for k, v in overrides.items()})
    if config_path:
        values["config_path"] = str(config_path)
    return TrainSettings(values)
