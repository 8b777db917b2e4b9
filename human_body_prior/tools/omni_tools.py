"""Small helpers that code in 2019 experiment folders imports from this module."""

import os
import random
import string
import sys

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
