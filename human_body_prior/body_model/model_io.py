"""Reading official SMPL-family model files (.npz and .pkl) into plain numpy arrays.

The official .pkl files of SMPL and MANO were written with chumpy and scipy.sparse in Python 2.
They are read here by a restricted unpickler that can build numpy arrays and a few inert
placeholders and nothing else: no code from the file runs, and neither chumpy nor scipy is needed.
"""

import copyreg
import io
import pickle
from pathlib import Path

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

REQUIRED_KEYS = ("v_template", "f", "J_regressor", "kintree_table", "weights", "shapedirs")


class _Placeholder:
    """Stands in for a chumpy or scipy.sparse object while unpickling; keeps only its state."""

    source_class = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0] or state[1]
        self.state = state


def _placeholder_class(module: str, name: str) -> type:
    return type(name, (_Placeholder,), {"source_class": f"{module}.{name}"})


_SAFE_GLOBALS = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): __import__("codecs").encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE_GLOBALS[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _SAFE_GLOBALS[(_mod, "scalar")] = _multiarray.scalar


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "chumpy" or module.startswith("chumpy.") or module.startswith("scipy.sparse"):
            return _placeholder_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a model file")


def _sparse_to_dense(obj: _Placeholder) -> np.ndarray:
    state = obj.state
    shape = tuple(state.get("_shape", state.get("shape", ())))
    fmt = obj.source_class.rsplit(".", 1)[-1][:3]
    dense = np.zeros(shape, dtype=np.asarray(state["data"]).dtype)
    if fmt in ("csc", "csr"):
        indptr, indices, data = (np.asarray(state[k]) for k in ("indptr", "indices", "data"))
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
    elif fmt == "coo":
        rows, cols, data = np.asarray(state["row"]), np.asarray(state["col"]), np.asarray(state["data"])
    else:
        raise ValueError(f"unsupported sparse matrix class {obj.source_class}")
    np.add.at(dense, (rows, cols), data)
    return dense


def _to_numpy(value, fname: str, key: str):
    if not isinstance(value, _Placeholder):
        return value
    if value.source_class.startswith("scipy.sparse"):
        return _sparse_to_dense(value)
    state = getattr(value, "state", None)
    if isinstance(state, dict) and "x" in state:  # a chumpy Ch array keeps its values in 'x'
        return np.asarray(state["x"])
    raise ValueError(f"{fname}: key {key!r} holds a {value.source_class} object that is not a plain "
                     "array; only chumpy arrays (Ch) and scipy sparse matrices can be read")


def _load_pickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict of arrays, found {type(data).__name__}")
    return {str(k): _to_numpy(v, str(path), str(k)) for k, v in data.items()}


def _load_npz(path: Path) -> dict:
    out = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError:
                # object arrays (e.g. part2num dictionaries) would need pickle; the model never uses them
                continue
    return out


def load_model_file(path, required=REQUIRED_KEYS) -> dict:
    """Read a body-model file into a dict of numpy arrays.

    path: an official .npz or .pkl file (SMPL, SMPL-H, SMPL-X, MANO), or one in the same layout.
    required: keys that must be present; a missing one raises ValueError naming file and key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"body model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = _load_npz(path)
    elif suffix == ".pkl":
        data = _load_pickle(path)
    else:
        raise ValueError(f"{path}: unknown body model file extension {suffix!r}; expected .npz or .pkl")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a body model file needs {list(required)}")
    return data
