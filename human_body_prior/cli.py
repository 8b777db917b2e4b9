"""The command-line error convention of every ``python -m human_body_prior...`` command.

A command's ``main(argv)`` stays an ordinary function that raises; its ``__main__`` block runs it
through :func:`run`::

    if __name__ == "__main__":
        sys.exit(cli.run(main))

:func:`run` turns a *user error* into one line on stderr, ``<command>: error: <message>``, and an exit
code; anything else keeps its traceback, because it is a bug to fix, not a message to read.

===============================================  =====  ==========================================
exception                                        exit   meaning
===============================================  =====  ==========================================
:class:`UsageError` (bad option or value,          2     the command line is wrong; also raised by
argparse errors through :class:`ArgumentParser`)         the argparse ``type`` helpers below
``OSError`` (missing/unreadable file, output       1     the machine or the files said no; the
folder is a file, permission, disk full, ...)            message names the path
``ValueError`` (incl. the package's validation     1     a value in the input was refused; the
errors such as ``BVHError``, ``UnicodeError``)           package's messages name file, key or shape
damaged files: ``zipfile.BadZipFile``,             1     a data file is cut short or not what its
``EOFError``, ``pickle.UnpicklingError``,                name says
``tarfile.TarError``, ``zlib.error``
``MemoryError``, ``torch.OutOfMemoryError``        1     the input is too large for this machine
``KeyboardInterrupt``                            130     stopped by the user
anything else (``TypeError``, ``KeyError``,        1     a bug: Python's traceback is kept
``IndexError``, ``RuntimeError``, ...)
===============================================  =====  ==========================================

``HBP_TRACEBACK=1`` in the environment keeps the traceback of user errors too (for bug reports).
Integer return values of ``main`` are the exit code; any other return value means success (0).
"""

import argparse
import math
import os
import pickle
import sys
import tarfile
import zipfile
import zlib

__all__ = ["UsageError", "ArgumentParser", "module_command", "run", "user_error_message", "device", "positive_int",
           "nonnegative_int", "positive_float", "finite_float", "seed"]


class UsageError(ValueError):
    """A wrong command line (option, argument or value): exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser raising :class:`UsageError` instead of printing the usage and exiting, so
    :func:`run` reports it in one line (``--help`` still prints the full usage). Without ``prog`` the
    usage names the command as it is run: ``python -m <module>``."""

    def __init__(self, *args, **kwargs):
        if not args and "prog" not in kwargs:
            kwargs["prog"] = module_command(sys._getframe(1).f_globals.get("__name__", ""))
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


def module_command(module: str) -> str:
    """``python -m <module>`` for a command module; the module run as ``__main__`` when it is ours (a
    shim such as train.evaluate_vposer runs another module's main)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("human_body_prior."):
        module = spec.name
    return f"python -m {module}" if module and module != "__main__" else os.path.basename(sys.argv[0])


_DAMAGED_FILE = (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, tarfile.TarError, zlib.error)


def _is_oom(exc) -> bool:
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(exc, oom)


def user_error_message(exc: BaseException):
    """``(message, exit_code)`` when ``exc`` is a user error (see the module table), else None."""
    if isinstance(exc, UsageError):
        return f"{exc} (see --help)", 2
    if isinstance(exc, OSError):
        parts = [exc.strerror or str(exc) or type(exc).__name__]
        if exc.filename is not None:
            parts.append(str(exc.filename))
        if getattr(exc, "filename2", None) is not None:
            parts.append(str(exc.filename2))
        if exc.strerror is None:
            return str(exc) or type(exc).__name__, 1
        return ": ".join(parts), 1
    if isinstance(exc, (ValueError, *_DAMAGED_FILE)):
        msg = str(exc)
        return (msg if msg else type(exc).__name__), 1
    if _is_oom(exc):
        return f"out of memory ({exc})" if str(exc) else "out of memory", 1
    return None


def _command_name(main) -> str:
    module = getattr(main, "__module__", None) or "command"
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else os.path.basename(sys.argv[0])
    return module.rsplit(".", 1)[-1]


def run(main, argv=None, prog: str = None) -> int:
    """Run ``main(argv)`` and return the process exit code; user errors become one line on stderr."""
    prog = prog or _command_name(main)
    try:
        rc = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
        found = user_error_message(exc)
        if found is None or os.environ.get("HBP_TRACEBACK"):
            raise
        msg, code = found
        print(f"{prog}: error: {' '.join(msg.split())}", file=sys.stderr)
        return code
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0


# ------------------------------------------------------------------------------------ argparse value types
def _number(text, kind, name):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}")
    return value


def finite_float(text) -> float:
    """A finite number (no nan/inf)."""
    return _number(text, float, "a finite number")


def positive_float(text) -> float:
    """A finite number > 0."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def nonnegative_float(text) -> float:
    """A finite number >= 0."""
    value = _number(text, float, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_int(text) -> int:
    """An integer >= 1."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text) -> int:
    """An integer >= 0."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def seed(text) -> int:
    """A random seed: an integer from 0 to 2**63 - 1 (what torch and numpy generators take)."""
    value = _number(text, int, "an integer seed")
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**63 - 1, got {text!r}")
    return value


def device(text) -> str:
    """A torch device string that exists on this machine (``cuda`` without CUDA is refused here, not
    deep inside the first tensor copy)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"unsupported device {text!r} (cpu, cuda, cuda:N or mps)")
    return text
