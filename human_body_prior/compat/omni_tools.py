"""Small helpers that upstream code (2019 experiment folders and 2021 scripts) imports from this module."""

import os
import random
import string
import sys
from pathlib import Path

import numpy as np
import torch

# Name -> RGB in [0, 1].
colors = {
    "pink": [0.6, 0.0, 0.4],
    "purple": [0.5, 0.2, 0.7],
    "red": [0.8, 0.1, 0.1],
    "green": [0.1, 0.6, 0.2],
    "yellow": [0.9, 0.8, 0.1],
    "brown": [0.6, 0.35, 0.15],
    "blue": [0.1, 0.3, 0.8],
    "white": [1.0, 1.0, 1.0],
    "orange": [1.0, 0.55, 0.1],
    "grey": [0.6, 0.6, 0.6],
    "black": [0.0, 0.0, 0.0],
}


def copy2cpu(tensor):
    """A torch tensor (any device, with or without grad) as a numpy array; anything else unchanged."""
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().cpu().numpy()
    return tensor


def makepath(*args, isfile: bool = False) -> str:
    """Join ``args`` into a path and create its folder (its parent folder when ``isfile``)."""
    path = os.path.expanduser(os.path.join(*args))
    folder = os.path.dirname(path) if isfile else path
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def log2file(logpath=None, auto_newline: bool = True):
    """A logger function that prints a message and appends it to ``logpath`` (if given)."""
    if logpath is not None:
        makepath(logpath, isfile=True)

    def log(text: str):
        line = text + "\n" if auto_newline and not text.endswith("\n") else text
        sys.stderr.write(line)
        if logpath is not None:
            with open(logpath, "a", encoding="utf-8") as fh:
                fh.write(line)

    return log


def id_generator(size: int = 13, chars: str = string.ascii_uppercase + string.digits) -> str:
    """A random identifier; uses its own generator, so the global random state is untouched."""
    return "".join(random.SystemRandom().choice(chars) for _ in range(size))


def apply_mesh_tranfsormations_(meshes, transf) -> None:
    """Apply a 4x4 homogeneous transform to each trimesh mesh in ``meshes``, in place (2019 spelling)."""
    transf = np.asarray(transf, dtype=np.float64)
    if transf.shape != (4, 4):
        raise ValueError(f"transf must be a (4, 4) matrix, got {transf.shape}")
    for mesh in meshes:
        mesh.apply_transform(transf)


def get_support_data_dir(current_fname=None) -> str:
    """The ``support_data`` folder: the nearest one above ``current_fname`` (upstream scripts pass their
    ``__file__``), else the package's own (see human_body_prior.support_data_dir)."""
    if current_fname is not None:
        for folder in Path(os.path.abspath(current_fname)).parents:
            if (folder / "support_data").is_dir():
                return str(folder / "support_data")
    from human_body_prior.support_paths import (
        support_data_dir,  # a leaf module; lazily, tools/ stays a leaf
    )

    return str(support_data_dir())


def make_deterministic(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators and make cuDNN deterministic (what the caller
    asks for by calling this: it changes global state on purpose)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def create_list_chunks(list_, group_size: int, overlap_size: int, cut_smaller_batches: bool = True) -> list:
    """Windows of ``group_size`` items starting every ``group_size - overlap_size`` items.

    cut_smaller_batches drops the windows at the end that are shorter than group_size.
    """
    group_size, overlap_size = int(group_size), int(overlap_size)
    if group_size < 1 or not 0 <= overlap_size < group_size:
        raise ValueError(f"create_list_chunks needs group_size >= 1 and 0 <= overlap_size < group_size, "
                         f"got group_size={group_size}, overlap_size={overlap_size}")
    chunks = [list_[i:i + group_size] for i in range(0, len(list_), group_size - overlap_size)]
    if cut_smaller_batches:
        chunks = [c for c in chunks if len(c) == group_size]
    return chunks


def flatten_list(list_of_lists) -> list:
    """[[a, b], [c]] -> [a, b, c] (one level)."""
    return [item for sublist in list_of_lists for item in sublist]
