"""Trainer settings: the packaged defaults, a run's .ini and command-line overrides, merged in that order.

Files are configer .ini files (any sections; keys are flattened, values read as Python literals
when they parse as one, else kept as strings). Command-line overrides are ``--key value`` pairs.
"""

import ast
import configparser
from pathlib import Path

from configer import Configer

DEFAULTS_INI = Path(__file__).resolve().parent / "vposer_smpl_defaults.ini"


def _literal(text):
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_ini(fname) -> dict:
    """All keys of an .ini file (sections flattened, later sections win) with literal values."""
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"settings file {fname} not found")
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.optionxform = str  # keep key case (latentD)
    try:
        parser.read(fname)
    except configparser.Error as e:
        raise ValueError(f"cannot parse the settings file {fname}: {e}") from e
    return {k: _literal(v) for s in parser.sections() for k, v in parser.items(s)}


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
        out[key.replace("-", "_")] = _literal(value)
    return out


def load_settings(config_path=None, strict: bool = True, **overrides) -> Configer:
    """Defaults <- config_path's keys <- overrides. With strict, override keys that neither the
    defaults nor the file know are an error (likely a typo)."""
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
    values.update(overrides)
    if config_path:
        values["config_path"] = str(config_path)
    return Configer(**values)
