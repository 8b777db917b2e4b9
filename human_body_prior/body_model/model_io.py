"""Reading official SMPL-family model files (.npz and .pkl) into plain numpy arrays.

The official .pkl files of SMPL, SMPL-H and MANO were written by Python 2 with chumpy and scipy.sparse;
the official SMPL-X .npz files hold a few pickled members (``joint2num``, ``part2num``). Both are read by
a restricted unpickler that can build numpy arrays, a few inert builtins and placeholders for chumpy and
scipy.sparse objects (and ``zlib.decompress`` for deflated array data), and nothing else: no code from
the file runs, neither chumpy nor scipy is needed, and no size is taken from the file without checking it
against the file's own length.

``load_model_file`` also validates what it read (finite values, face indices, the kinematic tree, the
vertex count of every per-vertex array) and names the file and key of anything wrong.
"""

import _compat_pickle
import codecs
import copyreg
import io
import pickle
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from human_body_prior.files.stand_in import StandIn, stand_in_class
from human_body_prior.files.unpickling import restricted_unpickler

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

REQUIRED_KEYS = ("v_template", "f", "J_regressor", "kintree_table", "weights", "shapedirs")

# Members official files carry that no model computation uses. A damaged one of these is skipped with a
# warning; a damaged member of any other name is an error.
OPTIONAL_METADATA = frozenset({
    "joint2num", "part2num", "vt", "ft", "bs_style", "bs_type", "J", "vert_sym_idxs", "pose_training_info",
    "weights_prior", "J_regressor_prior", "hands_coeffs", "hands_coeffsl", "hands_coeffsr",
    "segm", "pose_subjects",
})
_ROOT_PARENTS = (-1, 2 ** 32 - 1)  # how files store the root's parent (int and uint32 writers)
_SPARSE_DENSE_SLACK = 2 ** 24  # bytes a sparse matrix may expand to regardless of the file's size
_MAX_DEFLATE_RATIO = 1100  # deflate expands at most ~1032x


class ModelFileError(ValueError):
    """A body-model file that cannot be read or does not hold a valid model; the message names file and key."""


# ----------------------------------------------------------------------------------------------------------
# The restricted unpickler

class _Placeholder(StandIn):
    """Stands in for a chumpy or scipy.sparse object while unpickling; keeps only its state."""

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0] or state[1]
        self.state = state


def _placeholder_class(module: str, name: str) -> type:
    return stand_in_class(_Placeholder, module, name)


def _checked_reconstructor(cls, base, state):
    """copyreg._reconstructor as protocol 0/1 pickles of new-style objects use it: only for placeholders
    built from ``object`` (anything else could construct arbitrary builtins from file data)."""
    if not (isinstance(cls, type) and issubclass(cls, _Placeholder)) or base is not object:
        raise pickle.UnpicklingError(f"refusing copy_reg._reconstructor({getattr(cls, '__name__', cls)}, "
                                     f"{getattr(base, '__name__', base)}) in a model file")
    return copyreg._reconstructor(cls, base, state)


def _checked_bytearray(*args):
    """bytearray from bytes or text only: bytearray(2**31) from a 30-byte file would allocate 2 GiB."""
    if args and not isinstance(args[0], (bytes, str)):
        raise pickle.UnpicklingError(f"refusing bytearray({type(args[0]).__name__}) in a model file")
    return bytearray(*args)


def _checked_array_reconstruct(subtype, shape, dtype):
    """numpy's pickle constructor: numpy always writes an empty (0,) array and fills it from the state,
    whose data length numpy checks against the shape; a larger shape here is an allocation from nothing."""
    if subtype is not np.ndarray or int(np.prod(shape)) != 0:
        raise pickle.UnpicklingError(f"refusing numpy _reconstruct({getattr(subtype, '__name__', subtype)}, "
                                     f"{shape}) in a model file; numpy writes ndarray with shape (0,)")
    return _multiarray._reconstruct(subtype, shape, dtype)


def _checked_encode(text, encoding="utf-8", errors="strict"):
    """_codecs.encode as Python 3 pickles bytes for protocol 2: text to bytes by latin1 only."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r}) in a model file")
    return codecs.encode(text, "latin1", errors)


def _checked_zlib_decompress(data, *args):
    """zlib.decompress for array data stored compressed (the shipped plain-numpy SMPL .pkl); output is
    bounded by deflate's largest expansion of the input, so the file's size bounds the allocation."""
    if not isinstance(data, (bytes, bytearray)) or args:
        raise pickle.UnpicklingError("refusing zlib.decompress with arguments other than one bytes object")
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, _MAX_DEFLATE_RATIO * len(data) + 65536)
    except zlib.error as err:
        raise pickle.UnpicklingError(f"damaged compressed array data: {err}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise pickle.UnpicklingError("compressed array data is truncated or expands beyond what deflate can")
    return out


# Python 3 names of the globals a model file may use. Python 2 names (__builtin__, copy_reg, ...) are first
# translated by the standard library's own Python-2 table, so the translation cannot widen this list.
_SAFE_GLOBALS = {
    ("copyreg", "_reconstructor"): _checked_reconstructor,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _checked_bytearray,
    ("_codecs", "encode"): _checked_encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("zlib", "decompress"): _checked_zlib_decompress,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE_GLOBALS[(_mod, "_reconstruct")] = _checked_array_reconstruct
    _SAFE_GLOBALS[(_mod, "scalar")] = _multiarray.scalar


def _python3_name(module: str, name: str) -> tuple:
    """The Python 3 (module, name) of a global a Python 2 pickle names, by the standard library's table."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _stand_in(module: str, name: str):
    """A placeholder class for chumpy and scipy.sparse globals; None for anything else."""
    if module == "chumpy" or module.startswith("chumpy.") or module.startswith("scipy.sparse"):
        return _placeholder_class(module, name)
    return None


def _refusal(module: str, name: str, key: tuple) -> pickle.UnpicklingError:
    shown = f"{module}.{name}" + (f" (Python 3: {key[0]}.{key[1]})" if key != (module, name) else "")
    return pickle.UnpicklingError(f"refusing to load global {shown} from a model file")


_RestrictedUnpickler = restricted_unpickler(_SAFE_GLOBALS, _python3_name, _stand_in, _refusal)


def restricted_unpickle(raw: bytes):
    """Unpickle ``raw`` (Python 2 or 3 pickle) allowing only numpy arrays, inert builtins and placeholders."""
    return _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()


# ----------------------------------------------------------------------------------------------------------
# chumpy and scipy.sparse placeholders -> numpy

_SPARSE_FORMATS = ("csc", "csr", "coo")


def _sparse_to_dense(obj: _Placeholder, fname: str, key: str, budget: int) -> np.ndarray:
    state = obj.state if isinstance(getattr(obj, "state", None), dict) else {}
    cls = obj.source.rsplit(".", 1)[-1]
    fmt = cls[:3]
    if fmt not in _SPARSE_FORMATS or cls[3:] not in ("_matrix", "_array"):
        raise ModelFileError(f"{fname}: key {key!r} holds a {obj.source}; only csc, csr and coo "
                             "sparse matrices can be read")
    try:
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
        data = np.asarray(state["data"])
        if fmt == "coo":  # scipy < 1.13 stores row and col, newer scipy a coords tuple
            rows, cols = (state["coords"] if "coords" in state else (state["row"], state["col"]))
            rows, cols = np.asarray(rows), np.asarray(cols)
        else:
            indptr, indices = np.asarray(state["indptr"]), np.asarray(state["indices"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{fname}: key {key!r}: damaged {obj.source} state "
                             f"(members {sorted(state)}): {err!r}") from None
    if len(shape) != 2 or min(shape) < 0:
        raise ModelFileError(f"{fname}: key {key!r}: sparse matrix shape {shape} is not 2-D")
    dense_bytes = shape[0] * shape[1] * max(data.dtype.itemsize, 1)
    if dense_bytes > budget:
        raise ModelFileError(f"{fname}: key {key!r}: a {shape} sparse matrix would need {dense_bytes} bytes "
                             f"as a dense array, out of proportion to the file's size")
    if fmt != "coo":
        major_len = shape[1] if fmt == "csc" else shape[0]
        if indptr.shape != (major_len + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0) \
                or indptr[-1] != len(indices) or len(indices) != len(data):
            raise ModelFileError(f"{fname}: key {key!r}: inconsistent {fmt} index arrays for shape {shape}")
        major = np.repeat(np.arange(major_len), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
    if not (len(rows) == len(cols) == len(data)):
        raise ModelFileError(f"{fname}: key {key!r}: sparse row/col/data lengths differ")
    if len(rows) and (rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]):
        raise ModelFileError(f"{fname}: key {key!r}: sparse indices outside the matrix shape {shape}")
    dense = np.zeros(shape, dtype=data.dtype)
    np.add.at(dense, (rows, cols), data)
    return dense


def _chumpy_to_numpy(obj: _Placeholder, fname: str, key: str) -> np.ndarray:
    state = getattr(obj, "state", None)
    if obj.source != "chumpy.ch.Ch":
        raise ModelFileError(f"{fname}: key {key!r} holds a chumpy expression ({obj.source}), not a plain "
                             "chumpy.ch.Ch array; only plain arrays can be read without running chumpy")
    # chumpy's Ch.__getstate__ is its __dict__ without _parents and _cache: the values in 'x' beside
    # _dirty_vars, _itr, _depends_on_deps, _make_dense and _make_sparse
    if not isinstance(state, dict) or not isinstance(state.get("x"), np.ndarray):
        raise ModelFileError(f"{fname}: key {key!r}: chumpy.ch.Ch without an array 'x' in its state "
                             f"(members {sorted(state) if isinstance(state, dict) else type(state).__name__})")
    return state["x"]


def _to_numpy(value, fname: str, key: str, budget: int):
    if not isinstance(value, _Placeholder):
        return value
    if value.source.startswith("scipy.sparse"):
        return _sparse_to_dense(value, fname, key, budget)
    return _chumpy_to_numpy(value, fname, key)


# ----------------------------------------------------------------------------------------------------------
# .pkl and .npz

def _load_pickle(path: Path) -> dict:
    raw = path.read_bytes()
    if not raw:
        raise ModelFileError(f"{path}: the file is empty (0 bytes); expected a pickled body model")
    try:
        data = restricted_unpickle(raw)
    except pickle.UnpicklingError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            MemoryError, UnicodeDecodeError, struct.error, SystemError) as err:
        # SystemError: numpy's C code refusing a dtype state it was handed (BUILD on a dtype)
        raise ModelFileError(f"{path}: not a readable pickle (truncated or damaged?): "
                             f"{type(err).__name__}: {err}") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a pickled dict of arrays, found {type(data).__name__}")
    budget = max(_SPARSE_DENSE_SLACK, 16 * len(raw))
    out = {}
    for key, value in data.items():
        key = str(key)
        try:
            out[key] = _to_numpy(value, str(path), key, budget)
        except ModelFileError as err:
            if key not in OPTIONAL_METADATA:
                raise
            warnings.warn(f"{err}; it is optional metadata, skipped", stacklevel=3)
    return out


def _read_npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """One .npy member, with object arrays unpickled by the restricted unpickler. The sizes the member's
    header announces are checked against what the archive stores before anything is allocated."""
    max_ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
    if info.file_size > max_ratio * info.compress_size + 4096:
        raise ValueError(f"the archive says it inflates {info.compress_size} bytes to {info.file_size}, "
                         "which its compression cannot do (damaged)")
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            shape, fortran_order, dtype = np.lib.format._read_array_header(fh, version)
        if dtype.hasobject:
            arr = restricted_unpickle(fh.read(info.file_size))
            if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
                raise ValueError(f"pickled member does not hold the {shape} object array its header announces")
            return arr
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        stored = info.file_size - fh.tell()
        if nbytes != stored:
            raise ValueError(f"header announces {shape} {dtype} ({nbytes} bytes) but the member stores "
                             f"{stored} bytes of data (truncated or damaged)")
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise ValueError(f"member data ends after {got} of {nbytes} bytes (truncated)")
            got += n
    arr = np.frombuffer(buf, dtype=dtype, count=count)
    return arr.reshape(shape[::-1]).transpose() if fortran_order else arr.reshape(shape)


def _load_npz(path: Path) -> dict:
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the file is empty (0 bytes); expected a .npz archive")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not a readable .npz archive (truncated or damaged?): {err}") from None
    out = {}
    with archive:
        for info in archive.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                out[key] = _read_npz_member(archive, info)
            except pickle.UnpicklingError as err:
                raise ModelFileError(f"{path}: key {key!r}: {err}") from None
            except (ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError, TypeError, MemoryError,
                    UnicodeDecodeError, zlib.error, SystemError) as err:
                msg = f"{path}: key {key!r} cannot be read (truncated or damaged?): {type(err).__name__}: {err}"
                if key not in OPTIONAL_METADATA:
                    raise ModelFileError(msg) from None
                warnings.warn(msg + "; it is optional metadata, skipped", stacklevel=4)
    return out


# ----------------------------------------------------------------------------------------------------------
# Validation

def _fail(fname, key, msg):
    raise ModelFileError(f"{fname}: {key} {msg}")


def _numeric(data, key, fname, kinds="fiub"):
    arr = data[key]
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in kinds:
        what = f"{arr.dtype} array" if isinstance(arr, np.ndarray) else type(arr).__name__
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "O":
            what = "an object array (pickled Python objects)"
        _fail(fname, key, f"holds {what}; expected a numeric array")
    return arr


def validate_model_arrays(data: dict, fname: str) -> None:
    """Check a loaded model file's arrays for consistency; raise ModelFileError naming file and key.

    Checks only the keys present: numeric dtype and finite values of every model array, faces (F, 3)
    within the vertex count, kintree_table (2, J) with row 1 = 0..J-1 and each parent listed before its
    child, and per-vertex arrays (weights, J_regressor, shapedirs, posedirs, eigvec) against v_template.
    """
    for key, arr in data.items():
        if key in OPTIONAL_METADATA or not isinstance(arr, np.ndarray) or arr.dtype.kind == "O":
            continue
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))
            first = tuple(int(i) for i in bad[0])
            _fail(fname, key, f"has {len(bad)} non-finite value(s) (NaN or inf), first at index {first}")
    for key in REQUIRED_KEYS + ("posedirs", "eigvec"):
        if key in data:
            _numeric(data, key, fname)

    num_verts = None
    if "v_template" in data:
        vt = data["v_template"]
        if vt.ndim != 2 or vt.shape[1] != 3 or vt.shape[0] < 1:
            _fail(fname, "v_template", f"must have shape (V, 3), got {vt.shape}")
        num_verts = vt.shape[0]
    num_joints = None
    if "kintree_table" in data:
        num_joints = _check_kintree(data["kintree_table"], fname)
    if "f" in data:
        f = data["f"]
        if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] < 1:
            _fail(fname, "f", f"(faces) must have shape (F, 3), got {f.shape}")
        if f.dtype.kind == "f" and np.any(f != np.round(f)):
            _fail(fname, "f", "(faces) has indices that are not whole numbers")
        if num_verts is not None and (f.min() < 0 or f.max() >= num_verts):
            _fail(fname, "f", f"(faces) has indices {int(f.min())}..{int(f.max())} but the model has {num_verts} "
                              f"vertices (valid: 0..{num_verts - 1})")
    if num_verts is None:
        return
    _check_joint_columns(data, fname, num_joints)
    expect = {"weights": (num_verts, num_joints), "J_regressor": (num_joints, num_verts)}
    for key, shape in expect.items():
        if key in data and (data[key].ndim != 2 or any(s is not None and a != s
                                                       for a, s in zip(data[key].shape, shape))):
            shown = tuple("J" if s is None else s for s in shape)
            _fail(fname, key, f"must have shape {shown} for {num_verts} vertices and {num_joints} joints, "
                              f"got {data[key].shape}")
    for key in ("shapedirs", "posedirs", "eigvec"):
        if key in data:
            arr = data[key]
            if arr.ndim == 3 and arr.shape[:2] == (num_verts, 3):
                continue
            if key == "posedirs" and arr.ndim == 2 and arr.shape[0] == 3 * num_verts:
                continue  # some writers store posedirs flattened as (3 V, P)
            _fail(fname, key, f"must have shape ({num_verts}, 3, K) for the {num_verts} vertices of v_template, "
                              f"got {arr.shape}")
    if "posedirs" in data and num_joints is not None and data["posedirs"].shape[-1] != 9 * (num_joints - 1):
        _fail(fname, "posedirs", f"has {data['posedirs'].shape[-1]} columns but kintree_table has {num_joints} "
                                 f"joints, which needs 9 * {num_joints - 1} = {9 * (num_joints - 1)}")
    if "weights" in data:
        _check_weight_rows(data["weights"], fname)


def _check_joint_columns(data, fname, num_joints):
    """weights (V, J) and J_regressor (J, V) against kintree_table's J, naming the two that disagree."""
    if num_joints is None:
        return
    for key, axis in (("weights", 1), ("J_regressor", 0)):
        arr = data.get(key)
        if isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.shape[axis] != num_joints:
            side = "columns" if axis else "rows"
            _fail(fname, key, f"has {arr.shape[axis]} joint {side} (shape {arr.shape}) but kintree_table has "
                              f"{num_joints} joints; the two must agree")


WEIGHT_SUM_TOLERANCE = 1e-3


def _check_weight_rows(weights, fname):
    """Each vertex's skinning weights must sum to 1 (else the vertex shrinks towards the origin)."""
    sums = weights.astype(np.float64).sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > WEIGHT_SUM_TOLERANCE)
    if len(bad):
        _fail(fname, "weights", f"rows must sum to 1 (each vertex's skinning weights), but {len(bad)} of "
                                f"{len(sums)} do not, first vertex {int(bad[0])} sums to {sums[bad[0]]:.6g}")


def _check_kintree(kintree, fname) -> int:
    if kintree.ndim != 2 or kintree.shape[0] != 2 or kintree.shape[1] < 1:
        _fail(fname, "kintree_table", f"must have shape (2, J), got {kintree.shape}")
    if kintree.dtype.kind == "f" and np.any(kintree != np.round(kintree)):
        _fail(fname, "kintree_table", "has entries that are not whole numbers")
    num_joints = kintree.shape[1]
    ids = kintree[1].astype(np.int64)
    if not np.array_equal(ids, np.arange(num_joints)):
        _fail(fname, "kintree_table", f"row 1 must list the joints 0..{num_joints - 1} in order, got "
                                      f"{ids.tolist()}")
    parents = kintree[0].astype(np.int64)
    if int(parents[0]) not in _ROOT_PARENTS:
        _fail(fname, "kintree_table", f"row 0 must start with the root's parent (-1 or 2**32-1), got "
                                      f"{int(parents[0])}")
    for j in range(1, num_joints):
        if not 0 <= parents[j] < j:
            _fail(fname, "kintree_table", f"row 0 gives joint {j} the parent {int(parents[j])}, which contradicts "
                                          f"row 1: a parent must be one of the joints 0..{j - 1} listed before it")
    return num_joints


# ----------------------------------------------------------------------------------------------------------

def load_model_file(path, required=REQUIRED_KEYS) -> dict:
    """Read and validate a body-model file into a dict of numpy arrays.

    path: an official .npz or .pkl file (SMPL, SMPL-H, SMPL-X, MANO, DMPL), or one in the same layout.
    required: keys that must be present. Object-array members (``joint2num``, ``part2num``) are returned as
    object arrays, as ``np.load(allow_pickle=True)`` would return them.
    Raises FileNotFoundError, or ModelFileError (a ValueError) naming the file and the key at fault.
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
        raise ModelFileError(f"{path}: unknown body model file extension {suffix!r}; expected .npz or .pkl")
    missing = [k for k in required if k not in data]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {missing}; a body model file needs {list(required)}")
    validate_model_arrays(data, str(path))
    return data
