"""The restricted unpicklers refuse code payloads that name builtins (issue 27).

Every place the project unpickles a file it did not write: body-model files (.pkl, and the pickled
object members of .npz; body_model/model_io.py), V02 checkpoints (Lightning .ckpt; the restricted
unpickler of priors/vposer_v2_io.py, reached when a weights-only torch.load gives up), and VPoser v1
snapshots (torch.load(weights_only=True)).

The payloads are raw pickle bytes written opcode by opcode, so that they really name
``builtins.eval`` / ``__builtin__.eval`` etc. (an ``os.system`` payload pickles as ``posix.system``
and never reaches a builtins entry of an allowlist). Each payload, unpickled by the standard library
without restrictions, writes a sentinel file (``test_payloads_are_live`` checks that), so "the
sentinel is absent" really means "the payload did not run".
"""

import io
import pickle
import pickletools
import re
import struct
import sys
import uuid
import zipfile

import numpy as np
import pytest
import torch

from human_body_prior.body_model import model_io
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.priors import vposer_v2_io

NAMES = ("eval", "exec", "getattr", "__import__")
MODULES = ("builtins", "__builtin__")
PROTOCOLS = (2, 4)


# ---------------------------------------------------------------------------------------------- payloads
class _Writer:
    """Pickle opcodes by hand, in a protocol 2 form (GLOBAL, BINUNICODE) or a protocol 4 form (FRAME,
    SHORT_BINUNICODE + STACK_GLOBAL)."""

    def __init__(self, protocol):
        self.protocol = protocol

    def text(self, s):
        b = s.encode("utf-8")
        if self.protocol >= 4 and len(b) < 256:
            return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE
        return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE

    def glob(self, module, name):
        if self.protocol >= 4:
            return self.text(module) + self.text(name) + b"\x93"  # STACK_GLOBAL
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL

    @staticmethod
    def call(func, *args):
        return func + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE

    def document(self, value):
        """{'hyper_parameters': value}: the payload where a checkpoint or a model file keeps a value."""
        body = b"}(" + self.text("hyper_parameters") + value + b"u."  # EMPTY_DICT MARK k v SETITEMS STOP
        head = bytes([0x80, self.protocol])
        if self.protocol >= 4:
            head += b"\x95" + struct.pack("<Q", len(body))  # FRAME
        return head + body


def make_payload(module, name, protocol, sentinel, import_name):
    """Raw pickle bytes whose first refusable global is ``module.name``; run, they create ``sentinel``."""
    w = _Writer(protocol)
    code = w.text(f"open({str(sentinel)!r}, 'w').close()")
    fn = w.glob(module, name)
    if name in ("eval", "exec"):
        value = w.call(fn, code)
    elif name == "__import__":  # importing the sentinel module creates the file
        value = w.call(fn, w.text(import_name))
    else:  # getattr alone reaches exec: A.__init__.__globals__['__builtins__']['exec'](code), A a class
        # with a Python __init__ (scipy's, or the stand-in both restricted unpicklers build for it)
        def ga(obj, attr):
            return w.call(w.glob(module, "getattr"), obj, w.text(attr))

        globals_dict = ga(ga(w.glob("scipy.sparse", "csc_matrix"), "__init__"), "__globals__")
        builtins_dict = w.call(ga(globals_dict, "get"), w.text("__builtins__"))
        value = w.call(w.call(ga(builtins_dict, "get"), w.text("exec")), code)
    raw = w.document(value)
    globals_named = _globals_named(raw)
    assert globals_named[0] == f"{module}.{name}", globals_named  # the payload names what it says
    assert f"{module}.{name}" in globals_named and all(
        g.split(".")[0] not in ("builtins", "__builtin__") or g == f"{module}.{name}" for g in globals_named)
    return raw


def _globals_named(raw):
    """module.name of every GLOBAL / STACK_GLOBAL of a pickle, in order (pickletools, no unpickling)."""
    out, strings = [], []
    for op, arg, _ in pickletools.genops(raw):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            out.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            out.append(f"{strings[-2]}.{strings[-1]}")
    return out


@pytest.fixture
def payload_case(tmp_path, monkeypatch):
    """-> make(module, name, protocol) -> raw bytes, and the sentinel path. The __import__ payload imports
    a fresh module (unique name, on sys.path only for this test) whose import creates the sentinel."""
    sentinel = tmp_path / "payload_ran"
    import_name = f"hbp_issue27_sentinel_{uuid.uuid4().hex}"
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / f"{import_name}.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(mod_dir))
    yield (lambda module, name, protocol: make_payload(module, name, protocol, sentinel, import_name)), sentinel
    sys.modules.pop(import_name, None)


pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")  # torch, on our payloads

ALL_CASES = [pytest.param(m, n, p, id=f"{m}.{n}-p{p}") for m in MODULES for n in NAMES for p in PROTOCOLS]


@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_payloads_are_live(payload_case, module, name, protocol):
    """Control: unrestricted, each payload runs (so the refusal tests below can fail). The standard
    library maps __builtin__ to builtins in protocols < 3 only; a protocol-4 __builtin__ global runs
    wherever an unpickler translates Python 2 names always (as model_io's does before its allowlist)."""
    make, sentinel = payload_case

    class Unrestricted(pickle.Unpickler):
        def find_class(self, mod, qualname):
            return super().find_class("builtins" if mod == "__builtin__" else mod, qualname)

    Unrestricted(io.BytesIO(make(module, name, protocol))).load()
    assert sentinel.exists()


# ---------------------------------------------------------------------------------------------- files
def _refused(exc_info, *needles):
    msg = str(exc_info.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_model_pkl_payload_refused(payload_case, tmp_path, module, name, protocol):
    make, sentinel = payload_case
    path = tmp_path / "SMPL_EVIL.pkl"
    path.write_bytes(make(module, name, protocol))
    with pytest.raises(ValueError) as exc:
        model_io.load_model_file(path)
    assert not sentinel.exists()
    _refused(exc, str(path), f"{module}.{name}", "refusing")


def _npz_with_object_member(src, dst, member, raw_pickle):
    """A copy of the .npz `src` with the object-array member `member` (replaced if there) whose pickle is
    `raw_pickle` (as np.save writes an object array: a .npy header, then the pickle)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != member + ".npy":
                zout.writestr(info, zin.read(info))
        zout.writestr(member + ".npy", header.getvalue() + raw_pickle)


@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_model_npz_object_member_payload_refused(payload_case, tmp_path, module, name, protocol):
    make, sentinel = payload_case
    good = write_synthetic_model(tmp_path / "SMPLX_GOOD.npz", "smplx", num_verts=300, num_shape_columns=4, seed=1)
    path = tmp_path / "SMPLX_EVIL.npz"
    _npz_with_object_member(good, path, "part2num", make(module, name, protocol))
    with pytest.raises(ValueError) as exc:
        model_io.load_model_file(path)
    assert not sentinel.exists()
    _refused(exc, str(path), "part2num", f"{module}.{name}", "refusing")


def _torch_zip_with_data_pkl(path, raw_pickle):
    """A file as torch.save writes a checkpoint (a zip: <name>/data.pkl, data/0, version, ...), with
    data.pkl replaced by `raw_pickle`."""
    tmp = path.with_suffix(".orig")
    torch.save({"epoch": 3, "state_dict": {"vp_model.w": torch.ones(2)}}, tmp)
    with zipfile.ZipFile(tmp) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        names = zin.namelist()
        assert sum(n.endswith("/data.pkl") for n in names) == 1, names
        for n in names:
            zout.writestr(n, raw_pickle if n.endswith("/data.pkl") else zin.read(n))
    tmp.unlink()
    return path


@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_v2_checkpoint_payload_refused(payload_case, tmp_path, module, name, protocol):
    make, sentinel = payload_case
    path = _torch_zip_with_data_pkl(tmp_path / "V02_05_epoch=13_val_loss=0.03.ckpt", make(module, name, protocol))
    with pytest.raises(ValueError) as exc:
        vposer_v2_io.read_checkpoint(path)
    assert not sentinel.exists()
    _refused(exc, str(path), f"{module}.{name}", "refusing")


@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_v1_snapshot_payload_refused(payload_case, tmp_path, module, name, protocol):
    from human_body_prior.tools.model_loader import read_state_dict  # the upstream path of v1 snapshots

    make, sentinel = payload_case
    path = _torch_zip_with_data_pkl(tmp_path / "TR00_E096.pt", make(module, name, protocol))
    with pytest.raises(ValueError) as exc:
        read_state_dict(path)
    assert not sentinel.exists()
    # torch's weights-only unpickler names the resolved global ("GLOBAL eval"); it stops protocol 4 at its
    # FRAME opcode, before any global
    _refused(exc, str(path), "weights_only", f"GLOBAL {name} " if protocol == 2 else "Unsupported operand")


def test_good_files_still_load(tmp_path):
    """Control for the file tests: the same writers without a payload give files that load."""
    good = write_synthetic_model(tmp_path / "SMPLX_GOOD.npz", "smplx", num_verts=300, num_shape_columns=4, seed=1)
    path = tmp_path / "SMPLX_META.npz"
    _npz_with_object_member(good, path, "part2num", pickle.dumps(np.array({"a": 1}, dtype=object), protocol=2))
    assert model_io.load_model_file(path)["part2num"].item() == {"a": 1}
    w = _Writer(2)
    plain = w.document(w.text("x"))  # {'hyper_parameters': 'x'}: no globals at all
    pkl = tmp_path / "PLAIN.pkl"
    pkl.write_bytes(plain)
    with pytest.raises(ValueError, match="required key|missing"):
        model_io.load_model_file(pkl)  # read fine, then found not to be a model (no payload message)
    ckpt = _torch_zip_with_data_pkl(tmp_path / "plain.ckpt", plain)
    with pytest.raises(ValueError, match="no 'state_dict' entry"):
        vposer_v2_io.read_checkpoint(ckpt)


# ---------------------------------------------------------------------------------------------- unpicklers
def _model_file_unpickler(raw):
    return model_io._RestrictedUnpickler(io.BytesIO(raw), encoding="latin1")


def _checkpoint_unpickler(raw):
    return vposer_v2_io._restricted_pickle_module().Unpickler(io.BytesIO(raw))


UNPICKLERS = {"model_io": _model_file_unpickler, "v2_checkpoint": _checkpoint_unpickler}


@pytest.mark.parametrize("which", sorted(UNPICKLERS))
@pytest.mark.parametrize("module,name,protocol", ALL_CASES)
def test_unpickler_refuses_payload(payload_case, which, module, name, protocol):
    make, sentinel = payload_case
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{module}.{name}")):
        UNPICKLERS[which](make(module, name, protocol)).load()
    assert not sentinel.exists()


# What each unpickler may resolve among the builtins, under either module name: inert types only.
# model_io translates Python 2 names (__builtin__ -> builtins) first, the checkpoint reader does not.
_INERT = {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex, "bytearray": bytearray}
EXPECTED_BUILTINS = {
    "model_io": {**{("builtins", k): v for k, v in {**_INERT, "object": object}.items()},
                 **{("__builtin__", k): v for k, v in {**_INERT, "object": object}.items()}},
    "v2_checkpoint": {("builtins", k): v for k, v in _INERT.items()},
}


@pytest.mark.parametrize("which", sorted(UNPICKLERS))
def test_builtins_an_unpickler_resolves(which):
    """Every name of the builtins module, under both module names: exactly the inert types resolve
    (model_io's bytearray is a checked wrapper); every other one is refused."""
    import builtins

    find_class = UNPICKLERS[which](b".").find_class
    resolved = {}
    for module in MODULES:
        for name in dir(builtins):
            try:
                resolved[(module, name)] = find_class(module, name)
            except pickle.UnpicklingError:
                pass
    assert set(resolved) == set(EXPECTED_BUILTINS[which])
    for key, value in resolved.items():
        expected = EXPECTED_BUILTINS[which][key]
        assert value is expected or (key[1] == "bytearray" and callable(value)), (key, value)


def test_v2_allowlist_is_pinned():
    """The V02 checkpoint reader's allowlist: Lightning's containers, torch's tensor rebuilders and
    dtypes, and inert builtins, nothing else (issue 27: builtins.eval added here went unnoticed)."""
    allowed = vposer_v2_io._allowed_globals()
    utils = torch._utils
    expected = {
        "collections.OrderedDict", "torch.Size", "torch.device", "_codecs.encode",
        "builtins.set", "builtins.frozenset", "builtins.complex", "builtins.bytearray", "builtins.slice",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    }
    if hasattr(utils, "_rebuild_parameter_with_state"):
        expected.add("torch._utils._rebuild_parameter_with_state")
    dtypes = {k for k, v in allowed.items() if isinstance(v, torch.dtype)}
    assert set(allowed) - dtypes == expected
    assert {"torch.float32", "torch.float64", "torch.int64", "torch.bool"} <= dtypes
    for k in dtypes:  # each dtype entry is torch's dtype of that name
        assert k.startswith("torch.") and getattr(torch, k[len("torch."):]) is allowed[k], k
    assert allowed["builtins.set"] is set and allowed["builtins.bytearray"] is bytearray
    assert allowed["torch._utils._rebuild_tensor_v2"] is utils._rebuild_tensor_v2


def test_model_file_allowlist_is_pinned():
    """The body-model reader's allowlist (Python 3 names): numpy arrays, inert builtins, checked
    copies of the reconstructors, zlib for deflated arrays."""
    expected = {("copyreg", "_reconstructor"), ("builtins", "object"), ("builtins", "set"),
                ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
                ("builtins", "bytearray"), ("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("zlib", "decompress")}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        expected |= {(mod, "_reconstruct"), (mod, "scalar")}
    assert set(model_io._SAFE_GLOBALS) == expected


# ---------------------------------------------------------------------------------------------- coverage
def test_every_unpickling_site_is_one_of_the_above():
    """The package unpickles only through the loaders tested here: its one find_class override is the
    restricted unpickler both of the above are made from, every torch.load is weights-only (or hands the file to a restricted
    pickle_module), and nothing calls pickle.load(s), pickle.Unpickler directly or np.load with
    allow_pickle=True. A new unpickling site fails this test until it gets payload tests above."""
    import ast
    from pathlib import Path

    import human_body_prior

    root = Path(human_body_prior.__file__).parent
    find_class_defs, problems = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef) and node.name == "find_class":
                find_class_defs.append(rel)
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)):
                continue
            call = f"{node.func.value.id}.{node.func.attr}"
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{rel}:{node.lineno} {call}"
            if call == "torch.load":
                wo = kw.get("weights_only")
                if not ((isinstance(wo, ast.Constant) and wo.value is True) or "pickle_module" in kw):
                    problems.append(where)
            elif call in ("pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.loads", "dill.load"):
                problems.append(where)
            elif call == "np.load":
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    problems.append(where)
    # one implementation (files/unpickling.py), of which the two restricted unpicklers above are made
    assert find_class_defs == ["files/unpickling.py"], find_class_defs
    for make in UNPICKLERS.values():
        assert Path(type(make(b".")).find_class.__code__.co_filename).resolve() == root / "files" / "unpickling.py"
    assert not problems, problems
