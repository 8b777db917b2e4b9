"""Writers of model files in the byte layouts of the official SMPL-family releases, for tests.

The values are random (from ``synthetic_model_arrays``); what is reproduced is how each release stores
them, from public descriptions of the files:

* SMPL v1.0.0 / v1.1.0 ``.pkl``, SMPL-H ``.pkl`` of the MANO release, ``MANO_LEFT/RIGHT.pkl``: Python 2
  pickles (protocol 2, written by cPickle) of a dict whose keys are Python 2 ``str``. ``v_template``,
  ``shapedirs``, ``posedirs`` and ``weights`` are ``chumpy.ch.Ch`` objects pickled with their whole state
  (``x`` and chumpy's bookkeeping: ``_dirty_vars`` a ``__builtin__.set``, ``_itr``, ``_depends_on_deps``,
  ``_make_dense``, ``_make_sparse``), ``J_regressor`` (and SMPL's ``J_regressor_prior``) a
  ``scipy.sparse.csc.csc_matrix`` of that time's scipy, the rest numpy arrays pickled by a Python 2 numpy
  (``numpy.core.multiarray._reconstruct``, raw data as a Python 2 ``str``) and Python 2 strings
  (``bs_style``, ``bs_type``). v1.0.0 has 10 shape columns, v1.1.0 300; 207 pose-corrective columns.
* SMPL-X 2019 (v1.0) ``.npz``: 10 shape + 10 expression columns; SMPL-X 2020 (v1.1) ``.npz``: 300 shape +
  100 expression columns. Besides the model arrays they carry ``vt``/``ft`` texture coordinates, face
  landmarks and ``joint2num``/``part2num``, dicts stored as 0-d object arrays (pickled inside the .npy).
* SMPL-X 2019 ``.pkl``: the same dict pickled with protocol 2, plain numpy arrays, no chumpy.
* SMPL-H of AMASS (``smplh/<gender>/model.npz``): 16 shape columns, dense ``J_regressor``, ``bs_style`` and
  ``bs_type`` as byte-string arrays. DMPL of AMASS (``dmpls/<gender>/model.npz``): ``eigvec`` (6890, 3, 8).

``write_release`` returns the arrays it wrote (float64), for comparisons.
"""

import io
import struct
import zipfile
from pathlib import Path

import numpy as np

from human_body_prior.body_model.synthetic import synthetic_model_arrays

NUM_FACES = {"smpl": 13776, "smplh": 13776, "smplx": 20908, "mano": 1538}


# ---------------------------------------------------------------------------------------------------------
# A Python 2 cPickle (protocol 2) writer for the objects the official files hold

class Py2Str(bytes):
    """A Python 2 ``str`` (bytes on Python 3): pickled as SHORT_BINSTRING / BINSTRING."""


class ChumpyCh:
    """What chumpy pickles for a ``chumpy.ch.Ch`` created as ``Ch(x)``: ``Ch.__getstate__`` returns the
    instance ``__dict__`` without ``_parents`` and ``_cache``."""

    def __init__(self, x):
        self.state = {"_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {}, "_make_dense": False,
                      "_make_sparse": False, "x": np.asarray(x)}


class OldScipyCsc:
    """A ``scipy.sparse.csc.csc_matrix`` as scipy 0.x pickled it (protocol 2: NEWOBJ + __dict__)."""

    def __init__(self, dense):
        dense = np.asarray(dense)
        cols = [np.flatnonzero(dense[:, c]) for c in range(dense.shape[1])]
        self.state = {
            "_shape": dense.shape, "maxprint": 50, "format": "csc",
            "indices": np.concatenate(cols).astype(np.int32),
            "indptr": np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32),
            "data": np.concatenate([dense[c, i] for i, c in enumerate(cols)]),
            "_has_sorted_indices": True,
        }


class Py2Pickler:
    """Emits the opcodes Python 2's cPickle wrote at protocol 2 for dicts, lists, tuples, sets, numbers,
    ``str`` (``Py2Str`` and, for dict keys and strings, ``str``), numpy arrays and dtypes as Python 2 numpy
    pickled them, and ``ChumpyCh`` / ``OldScipyCsc`` objects."""

    def __init__(self):
        self.out = io.BytesIO()
        self.memo_count = 1  # cPickle numbers its memo from 1
        self.dtype_memo = {}

    def dumps(self, obj) -> bytes:
        self.out.write(b"\x80\x02")
        self.save(obj)
        self.out.write(b".")
        return self.out.getvalue()

    def put(self):
        n = self.memo_count
        self.memo_count += 1
        self.out.write(b"q" + bytes([n]) if n < 256 else b"r" + struct.pack("<I", n))
        return n

    def get(self, n):
        self.out.write(b"h" + bytes([n]) if n < 256 else b"j" + struct.pack("<I", n))

    def glob(self, module, name):
        self.out.write(b"c" + module.encode() + b"\n" + name.encode() + b"\n")
        self.put()

    def save(self, obj):
        w = self.out.write
        if obj is None:
            w(b"N")
        elif obj is True or obj is False:
            w(b"\x88" if obj else b"\x89")
        elif isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
            obj = int(obj)
            if 0 <= obj < 256:
                w(b"K" + bytes([obj]))
            elif 0 <= obj < 65536:
                w(b"M" + struct.pack("<H", obj))
            elif -2 ** 31 <= obj < 2 ** 31:
                w(b"J" + struct.pack("<i", obj))
            else:
                raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                w(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(obj, float):
            w(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, (bytes, str)):
            raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
            w((b"U" + bytes([len(raw)])) if len(raw) < 256 else (b"T" + struct.pack("<i", len(raw))))
            w(raw)
            self.put()
        elif isinstance(obj, tuple):
            if not obj:
                w(b")")
                return
            if len(obj) <= 3:
                for item in obj:
                    self.save(item)
                w(b"\x85\x86\x87"[len(obj) - 1:len(obj)])
            else:
                w(b"(")
                for item in obj:
                    self.save(item)
                w(b"t")
            self.put()
        elif isinstance(obj, list):
            w(b"]")
            self.put()
            self._batch(obj, b"a", b"e")
        elif isinstance(obj, dict):
            w(b"}")
            self.put()
            self._batch(list(obj.items()), b"s", b"u", pairs=True)
        elif isinstance(obj, (set, frozenset)):  # Python 2's set.__reduce__: (set, (list,), None)
            self.glob("__builtin__", "set")
            self.save((sorted(obj),))
            w(b"R")
            self.put()
        elif isinstance(obj, np.dtype):
            self.save_dtype(obj)
        elif isinstance(obj, np.ndarray):
            self.save_array(obj)
        elif isinstance(obj, ChumpyCh):
            self.save_newobj("chumpy.ch", "Ch", obj.state)
        elif isinstance(obj, OldScipyCsc):
            self.save_newobj("scipy.sparse.csc", "csc_matrix", obj.state)
        else:
            raise TypeError(f"cannot write {type(obj).__name__} as a Python 2 pickle")

    def _batch(self, items, one, many, pairs=False):
        def emit(item):
            if pairs:
                self.save(item[0])
                self.save(item[1])
            else:
                self.save(item)
        for start in range(0, len(items), 1000):  # cPickle batches appends and setitems by 1000
            chunk = items[start:start + 1000]
            if len(chunk) == 1:
                emit(chunk[0])
                self.out.write(one)
            else:
                self.out.write(b"(")
                for item in chunk:
                    emit(item)
                self.out.write(many)

    def save_newobj(self, module, name, state):
        self.glob(module, name)
        self.out.write(b")\x81")
        self.put()
        self.save(state)
        self.out.write(b"b")

    def save_dtype(self, dtype):
        key = dtype.str
        if key in self.dtype_memo:
            self.get(self.dtype_memo[key])
            return
        self.glob("numpy", "dtype")
        # Python 2 numpy: dtype.__reduce__ = (dtype, (kind+size, 0, 1), (3, byteorder, None, None, None,
        # elsize, alignment, flags)); elsize/alignment are -1 except for flexible (string) types
        flexible = dtype.kind in "SUV"
        self.save((Py2Str(f"{dtype.kind}{dtype.itemsize}".encode()), 0, 1))
        self.out.write(b"R")
        self.dtype_memo[key] = self.put()
        self.save((3, Py2Str(dtype.byteorder.replace("=", "<").encode()), None, None, None,
                   dtype.itemsize if flexible else -1, 1 if flexible else -1, 0))
        self.out.write(b"b")

    def save_array(self, arr):
        arr = np.ascontiguousarray(arr)
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.glob("numpy", "ndarray")
        self.out.write(b"K\x00\x85")
        self.put()
        self.save(Py2Str(b"b"))
        self.out.write(b"\x87")
        self.put()
        self.out.write(b"R")
        self.put()
        self.out.write(b"(K\x01")
        self.save(tuple(int(n) for n in arr.shape))
        self.save_dtype(arr.dtype)
        self.out.write(b"\x89")
        self.save(Py2Str(arr.tobytes()))
        self.out.write(b"t")
        self.put()
        self.out.write(b"b")


def py2_pickle(obj) -> bytes:
    return Py2Pickler().dumps(obj)


# ---------------------------------------------------------------------------------------------------------
# The releases

def _arrays(model_type, shape_columns, seed, num_verts=None):
    arrays = synthetic_model_arrays(model_type, num_verts=num_verts, num_shape_columns=shape_columns, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    V = arrays["v_template"].shape[0]
    F = NUM_FACES[model_type] if num_verts is None else 2 * V
    first = rng.integers(0, V, size=F)
    steps = rng.integers(1, max(2, V // 3), size=(F, 2)).cumsum(axis=1)
    arrays["f"] = np.column_stack([first, (first[:, None] + steps) % V]).astype(np.uint32)
    # float32-representable values: smplx rounds every array to float32 on load
    return {k: (v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}


def _joint2num(model_type):
    from human_body_prior.model_types.joints import JOINT_NAMES

    return {name: i for i, name in enumerate(JOINT_NAMES[model_type])}


def _part2num():
    names = ["global", "head", "leftEye", "rightEye", "leftHand", "rightHand", "body"]
    return {n: i for i, n in enumerate(names)}


def write_release(path, release: str, seed: int = 0, num_verts=None) -> dict:
    """Write one official layout to ``path``; returns the model arrays written (float64), by key.

    release: 'smpl_v1.0.0_pkl' | 'smpl_v1.1.0_pkl' | 'smplh_mano_pkl' | 'smplh_amass_npz' | 'mano_pkl'
    | 'smplx_2019_npz' | 'smplx_2019_pkl' | 'smplx_2020_npz' | 'dmpl_amass_npz'.
    num_verts: None for the official vertex count; a smaller one for fast tests.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if release == "dmpl_amass_npz":
        V = num_verts or 6890
        eigvec = np.random.default_rng(seed).normal(scale=0.01, size=(V, 3, 8)).astype(np.float32)
        np.savez(path, eigvec=eigvec)
        return {"eigvec": eigvec.astype(np.float64)}
    model_type, shape_cols = {
        "smpl_v1.0.0_pkl": ("smpl", 10), "smpl_v1.1.0_pkl": ("smpl", 300), "smplh_mano_pkl": ("smplh", 10),
        "smplh_amass_npz": ("smplh", 16), "mano_pkl": ("mano", 10), "smplx_2019_npz": ("smplx", 20),
        "smplx_2019_pkl": ("smplx", 20), "smplx_2020_npz": ("smplx", 400),
    }[release]
    a = _arrays(model_type, shape_cols, seed, num_verts)
    V, J = a["weights"].shape
    rng = np.random.default_rng(seed + 2000)
    if release.endswith("_pkl") and model_type != "smplx":
        data = {
            "J_regressor": OldScipyCsc(a["J_regressor"]),
            "f": a["f"], "kintree_table": a["kintree_table"],
            "J": a["J_regressor"] @ a["v_template"],
            "weights": ChumpyCh(a["weights"]), "posedirs": ChumpyCh(a["posedirs"]),
            "v_template": ChumpyCh(a["v_template"]), "shapedirs": ChumpyCh(a["shapedirs"]),
            "bs_style": Py2Str(b"lbs"), "bs_type": Py2Str(b"lrotmin"),
        }
        if model_type == "smpl":
            data.update(J_regressor_prior=OldScipyCsc(a["J_regressor"]), weights_prior=a["weights"].copy(),
                        vert_sym_idxs=rng.permutation(V).astype(np.int64),
                        pose_training_info={Py2Str(b"num_poses"): 1786, Py2Str(b"num_subjects"): 40})
        elif model_type == "smplh":
            for side in "lr":
                data[f"hands_components{side}"] = a[f"hands_components{side}"]
                data[f"hands_mean{side}"] = a[f"hands_mean{side}"]
                data[f"hands_coeffs{side}"] = rng.normal(size=(1554, 45))
        else:
            data.update(hands_components=a["hands_components"], hands_mean=a["hands_mean"],
                        hands_coeffs=rng.normal(size=(1554, 45)))
        path.write_bytes(py2_pickle({Py2Str(k.encode()): v for k, v in data.items()}))
        return _plain(a)
    if release == "smplh_amass_npz":
        members = dict(a, J=a["J_regressor"] @ a["v_template"], bs_style=np.array(b"lbs"),
                       bs_type=np.array(b"lrotmin"), weights_prior=a["weights"].copy(),
                       J_regressor_prior=a["J_regressor"].copy())
        members["f"] = members["f"].astype(np.int32)
        np.savez(path, **members)
        return _plain(a)
    # SMPL-X
    members = dict(a)
    members["f"] = a["f"].astype(np.int32)
    members["vt"] = rng.uniform(size=(V + 832, 2))
    members["ft"] = members["f"].copy()
    members["joint2num"] = np.array(_joint2num("smplx"), dtype=object)
    members["part2num"] = np.array(_part2num(), dtype=object)
    if release == "smplx_2019_pkl":
        members = {Py2Str(k.encode()): v for k, v in members.items()
                   if k not in ("joint2num", "part2num")}
        path.write_bytes(py2_pickle(members))
    else:
        np.savez(path, **members)
    return _plain(a)


def _plain(a):
    """The arrays as written (float64 values exactly representable in float32), by key."""
    return dict(a)


def truncated_copy(src, dst, keep_fraction=0.5):
    raw = Path(src).read_bytes()
    Path(dst).write_bytes(raw[:int(len(raw) * keep_fraction)])
    return str(dst)


def npz_member_cut_short(src, dst, key, keep_fraction=0.5):
    """Copy an .npz, cutting member ``key`` short (its .npy data truncated, the archive itself valid)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            raw = zin.read(info)
            if info.filename == f"{key}.npy":
                raw = raw[:int(len(raw) * keep_fraction)]
            zout.writestr(info.filename, raw)
    return str(dst)
