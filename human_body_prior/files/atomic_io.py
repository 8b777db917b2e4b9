"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one.

:func:`atomic_write` writes a temporary file beside the target, fsyncs it, renames it onto the target
and fsyncs the folder, so after it returns the new file survives a power cut too. :func:`replace_dir`
does the same for a whole folder (one ``renameat2(RENAME_EXCHANGE)`` on Linux).
"""

import ctypes
import ctypes.util
import errno
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def _fsync_path(path, directory=False) -> None:
    fd = os.open(path, (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot fsync a folder; the file itself must be durable
            raise
    finally:
        os.close(fd)


def atomic_write(path, write) -> str:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    The temporary file is fsynced before the rename and the folder after it. The temporary file is
    removed if anything fails, and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files; give the usual permissions
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_path(path.parent, directory=True)
    return str(path)


def check_writable(path) -> None:
    """Raise an OSError naming ``path`` now if atomic_write could not write it later (a folder at its
    place, a file where a folder should be, no write permission): checked before long work, not after."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file to write", str(path))
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "cannot create a folder under a file", str(folder))
    if folder == path.parent:  # the real test: a temporary file where atomic_write puts its own
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".check")
        os.close(fd)
        os.remove(tmp)
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot create the output's folder in", str(folder))


def atomic_write_bytes(path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def torch_save_atomic(obj, path) -> str:
    """torch.save(obj) to ``path`` atomically. torch reports a failed write (disk full, file-size limit) as
    a RuntimeError from its zip writer; that becomes an OSError naming the file and saying the old one
    is kept."""
    import torch

    try:
        return atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "inline_container" not in str(err) \
                and "PytorchStreamWriter" not in str(err):
            raise
        kept = "the previous file is kept" if Path(path).exists() else "nothing was written"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "the write failed (disk full or a file-size limit?)"
        raise OSError(f"cannot write {path}: {reason}; {kept}") from None


def save_npz_atomic(path, arrays: dict, compressed: bool = True) -> str:
    """Write a dict of arrays as an .npz atomically (compressed by default)."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------------ folders
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _renameat2():
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a, b) -> bool:
    """Swap two existing paths in one step; False where the system or file system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # not supported here
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _exchange_supported() -> bool:
    return _renameat2() is not None


def _old_name(dst: Path) -> Path:
    return dst.with_name(dst.name + ".old")


def recover_dir(dst) -> bool:
    """Put back ``dst`` from ``dst.old`` when a :func:`replace_dir` fallback died between its two
    renames; True if it did."""
    dst = Path(dst)
    old = _old_name(dst)
    if not dst.exists() and old.is_dir():
        os.replace(old, dst)
        return True
    return False


def replace_dir(new, dst) -> str:
    """Make the folder ``new`` (complete, beside ``dst``) be ``dst``; the old ``dst`` is removed.

    On Linux the two folders are exchanged in one ``renameat2(RENAME_EXCHANGE)``: ``dst`` is at every
    moment either the whole old folder or the whole new one. Elsewhere it is two renames through
    ``dst.old``, and :func:`recover_dir` (called first here) repairs a death between them.
    """
    new, dst = Path(new), Path(dst)
    recover_dir(dst)
    _fsync_tree(new)  # the new folder's contents are on disk before it becomes dst
    _fsync_path(new.parent, directory=True)
    if not dst.exists():
        os.replace(new, dst)
    elif _exchange(new, dst):
        shutil.rmtree(new)  # now the old folder
    else:
        old = _old_name(dst)
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
        os.replace(new, dst)
        shutil.rmtree(old)
    _fsync_path(dst.parent, directory=True)
    return str(dst)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for f in files:
            _fsync_path(os.path.join(folder, f))
        _fsync_path(folder, directory=True)
