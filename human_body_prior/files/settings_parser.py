"""The one strict parser of settings files (.ini, configer format) and their values, shared by the trainer
(train/settings.py) and the 2019 experiment-folder loader (priors/experiment.py).

Files are .ini files in UTF-8 (any sections; keys are flattened, later sections win). Every known key
has a type (:data:`SETTING_TYPES`) and its value is parsed strictly: booleans are true/false, yes/no,
on/off or 1/0 (``render_pictures : no`` is False, ``maybe`` is an error), integers are integers
(``latentD : 32.7`` is an error naming the key and the file), and so on. Unknown keys are read as
Python literals, or kept as text.
"""

import ast
import configparser
import math
import re
from pathlib import Path

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
    "pose_jitter_deg": "float", "num_loss_vertices": "int", "vertex_subset": "str", "vertex_subset_seed": "int",
    "loss_kl_wt": "float", "loss_rec_wt": "float", "loss_matrot_wt": "float", "loss_jtr_wt": "float",
    "model_version": "int", "num_neurons": "int", "latentD": "int", "data_shape": "int_list", "use_cont_repr": "bool",
}
_CHOICES = {"lr_schedule": ("plateau", "step", "none"), "dtype": ("float32", "float64"),
            "vertex_subset": ("random", "fps"), "model_version": (1, 2)}
_POSITIVE = ("num_epochs", "batch_size", "num_neurons", "latentD", "train_frame_step", "base_lr")
_NONNEGATIVE = ("min_lr", "reg_coef", "kl_coef", "pose_loss_weight", "pose_jitter_deg")
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
        if not math.isfinite(out):
            _fail(key, where, "a finite number", value)
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
        _fail(key, where, "a positive number" if kind == "float" else "a positive integer", value)
    if key in _NONNEGATIVE and out < 0:
        _fail(key, where, "a number >= 0", value)
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


def read_ini(fname, text_as_literal: bool = False) -> dict:
    """All keys of an .ini file with typed values (known keys strictly, others as Python literals or text).

    text_as_literal: read the known text keys (expr_code, work_dir, ...) as Python literals too, as
    configer does (``dataset_dir : None`` is None), for 2019 experiment folders; numbers, booleans and
    lists stay strict.
    """
    def typed(key, text):
        if text_as_literal and SETTING_TYPES.get(key, "str") == "str":
            return _literal(text)
        return parse_value(key, text, where=f"in {fname}")

    return {k: typed(k, v) for k, v in read_ini_text(fname).items()}
