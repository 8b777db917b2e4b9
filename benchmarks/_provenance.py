"""Paths and command lines as the benchmarks record them in docs/: relative to the repository, or,
outside it, by their last two components (``.../vposer_data/test``), so that no machine's folders
are written into the results."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def portable_path(path) -> str:
    """``path`` relative to the repository when inside it, else ``.../<parent>/<name>``."""
    if path is None:
        return None
    p = Path(os.path.abspath(os.fspath(path)))
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return ".../" + "/".join(p.parts[-2:])


def command_line(argv=None) -> str:
    """The command that ran, with every absolute path in it made portable (``--opt=/x/y`` too)."""
    argv = sys.argv if argv is None else argv
    out = [os.path.basename(sys.executable)]
    for arg in argv:
        key, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if os.path.isabs(value):
            value = portable_path(value)
        out.append(f"{key}{eq}{value}")
    return " ".join(out)
