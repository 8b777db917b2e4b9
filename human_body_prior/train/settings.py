"""Trainer settings: the packaged defaults, a run's .ini and overrides, merged and parsed once into a frozen config.

Files are .ini files in UTF-8 (any sections; keys are flattened, later sections win). Every known key
has a type (:data:`SETTING_TYPES`) and its value is parsed strictly: booleans are true/false, yes/no,
on/off or 1/0 (``render_pictures : no`` is False, ``maybe`` is an error), integers are integers
(``latentD : 32.7`` is an error naming the key and the file), and so on. Command-line overrides are
``--key value`` pairs, parsed the same way. Keys a written experiment .ini carries for bookkeeping
(unknown to the defaults) are kept as text.
"""

from collections.abc import Mapping
from pathlib import Path

from human_body_prior.files.settings_parser import (  # noqa: F401 - re-exported: the trainer's names
    SETTING_TYPES,
    parse_value,
    read_ini,
    read_ini_text,
)

DEFAULTS_INI = Path(__file__).resolve().parent / "vposer_smpl_defaults.ini"


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
