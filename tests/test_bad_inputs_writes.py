"""Bad-input suite, writes (json.dump/pickle.dump write to a handle: the open() is what is checked): every file the package writes goes through files/atomic_io (checked on the
source), atomic_write makes the new file durable before it replaces the old one, and a folder swap
never leaves the destination missing."""

import ast
import os
from pathlib import Path

import pytest

from human_body_prior.files import atomic_io

PKG = Path(__file__).resolve().parents[1] / "human_body_prior"

# calls that write to the path given as their first argument (or as 'file'/'fname'/'f')
PATH_WRITERS = {"np.save", "np.savez", "np.savez_compressed", "numpy.save", "numpy.savez",
                "numpy.savez_compressed", "torch.save", "shutil.copy", "shutil.copy2", "shutil.copyfile",
                "shutil.move", "imageio.imwrite", "imageio.mimsave", "imageio.mimwrite", "cv2.imwrite"}
# methods that write to their first argument: Image.save, Figure.savefig, Trimesh.export, ...
METHOD_WRITERS = {"save", "savefig", "export", "write_text", "write_bytes", "to_csv", "tofile"}
# append-only logs may be opened for appending: an append never destroys what was there
APPEND_ONLY = {("train/trainer.py", "log"), ("compat/omni_tools.py", "log")}
# method calls named like a writer that are the package's own atomic writers (checked in their module)
OWN_ATOMIC = {("priors/gmm.py", "gmm.save")}  # GMMPrior.save -> save_npz_atomic


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return None


class _Finder(ast.NodeVisitor):
    """Writes whose target is not a temporary path handed out by atomic_write (the parameter of the
    callback passed to it) or an in-memory buffer."""

    def __init__(self, rel):
        self.rel, self.scopes, self.found, self.callbacks, self.buffers = rel, [], [], set(), set()

    def visit_Module(self, node):
        # functions and lambdas passed to atomic_write(...) anywhere in the module
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and (_name(call.func) or "").split(".")[-1] == "atomic_write":
                for arg in call.args[1:] + [k.value for k in call.keywords]:
                    if isinstance(arg, ast.Name):
                        self.callbacks.add(arg.id)
                    elif isinstance(arg, ast.Lambda):
                        self.callbacks.add(id(arg))
            if isinstance(call, ast.Assign) and isinstance(call.value, ast.Call) and \
                    (_name(call.value.func) or "").endswith("BytesIO"):
                self.buffers.update(t.id for t in call.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def _scope(self, node, name):
        params = {a.arg for a in node.args.args + node.args.kwonlyargs}
        ok = name in self.callbacks or id(node) in self.callbacks
        self.scopes.append((name, params if ok else set()))
        self.generic_visit(node)
        self.scopes.pop()

    def visit_FunctionDef(self, node):
        self._scope(node, node.name)

    def visit_Lambda(self, node):
        self._scope(node, "<lambda>")

    def _safe_target(self, target):
        if target is None:
            return True
        if isinstance(target, ast.Name):
            if target.id in self.buffers:
                return True
            return any(target.id in params for _, params in self.scopes)
        if isinstance(target, ast.Call) and (_name(target.func) or "").endswith("BytesIO"):
            return True
        return False

    def visit_Call(self, node):
        name = _name(node.func) or ""
        target, what = None, None
        if name == "open" or name.endswith(".open") and name not in ("tarfile.open", "gzip.open", "np.load"):
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                                  None)
            mode = mode.value if isinstance(mode, ast.Constant) else "r"
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                scope = self.scopes[-1][0] if self.scopes else "<module>"
                if "a" in mode and any(self.rel == r and k in scope for r, k in APPEND_ONLY):
                    pass
                else:
                    target, what = (node.args[0] if node.args else None), f"open(..., {mode!r})"
        elif name in PATH_WRITERS:
            arg = 1 if name == "torch.save" or name.startswith("shutil.") else 0
            target = node.args[arg] if len(node.args) > arg else None
            what = name
        elif isinstance(node.func, ast.Attribute) and node.func.attr in METHOD_WRITERS and node.args:
            if name.startswith(("np.", "torch.")) or (self.rel, name) in OWN_ATOMIC:
                pass
            else:
                target, what = node.args[0], f".{node.func.attr}(...)"
                if node.func.attr in ("write_text", "write_bytes"):
                    target, what = node.func.value, f"Path.{node.func.attr}"
        if what and not self._safe_target(target):
            self.found.append(f"{self.rel}:{node.lineno}: {what} writes {ast.unparse(target) if target else '?'} "
                              "in place")
        self.generic_visit(node)


def test_every_write_goes_through_atomic_io():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel == "files/atomic_io.py":
            continue
        f = _Finder(rel)
        f.visit(ast.parse(path.read_text()))
        found += f.found
    assert not found, "writes that bypass files/atomic_io:\n" + "\n".join(found)


def test_the_checker_finds_in_place_writes():
    src = '''
import json, numpy as np, torch
from pathlib import Path
def a(p, x):
    with open(p, "w") as f:
        json.dump(x, f)
def b(p, x):
    np.save(p, x); np.savez_compressed(p, a=x); torch.save(x, p)
def c(fig, img, p):
    fig.savefig(p); img.save(p, format="PNG"); Path(p).write_text("x")
def ok(p, x):
    atomic_write(p, lambda tmp: np.save(tmp, x))
    def write(tmp):
        with open(tmp, "w") as f:
            f.write("x")
    atomic_write(p, write)
    buf = io.BytesIO(); np.save(buf, x); torch.save(x, buf)
'''
    f = _Finder("example.py")
    f.visit(ast.parse(src))
    lines = sorted({int(s.split(":")[1]) for s in f.found})
    assert lines == [5, 8, 10], f.found
    assert sum(":8:" in s for s in f.found) == 3 and sum(":10:" in s for s in f.found) == 3


# ------------------------------------------------------------------------------------------ atomic_write
def test_atomic_write_fsyncs_the_file_and_its_folder_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", Path(target).name if Path(target).is_file() else "<dir>" + target))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, "fsync", fsync)
    monkeypatch.setattr(atomic_io.os, "replace", replace)
    out = tmp_path / "x.bin"
    atomic_io.atomic_write_bytes(out, b"data")
    assert out.read_bytes() == b"data"
    kinds = [e[0] for e in events]
    i = kinds.index("replace")
    assert events[0][0] == "fsync" and events[0][1].startswith(".x.bin.")  # the temporary file, before
    assert i >= 1 and events[i + 1] == ("fsync", f"<dir>{tmp_path}")  # the folder, after the rename


def _old_and_new_folder(tmp_path):
    """A shipped folder holding model.pt "old" and its replacement beside it holding "new"."""
    dst, new = tmp_path / "shipped", tmp_path / "shipped.packing"
    for folder, text in ((dst, "old"), (new, "new")):
        folder.mkdir()
        (folder / "model.pt").write_text(text)
    return dst, new


def test_replace_dir_leaves_a_complete_folder_at_every_step(tmp_path, monkeypatch):
    dst, new = _old_and_new_folder(tmp_path)
    atomic_io.replace_dir(new, dst)
    assert (dst / "model.pt").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def test_replace_dir_fallback_killed_between_renames_recovers(tmp_path, monkeypatch):
    """Without an atomic exchange (non-Linux), a death between the two renames is repaired by the next
    replace_dir/recover_dir: the old folder comes back."""
    dst, new = _old_and_new_folder(tmp_path)
    monkeypatch.setattr(atomic_io, "_exchange", lambda a, b: False)
    real_replace, calls = os.replace, []

    def dies_on_second(src, d):
        calls.append(d)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_replace(src, d)

    monkeypatch.setattr(atomic_io.os, "replace", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        atomic_io.replace_dir(new, dst)
    monkeypatch.setattr(atomic_io.os, "replace", real_replace)
    assert not dst.exists()  # the window the fallback cannot close ...
    assert atomic_io.recover_dir(dst)  # ... and its repair
    assert (dst / "model.pt").read_text() == "old"


@pytest.mark.skipif(not getattr(atomic_io, "_exchange_supported", lambda: True)(),
                    reason="needs renameat2(RENAME_EXCHANGE)")
def test_replace_dir_is_one_exchange_on_linux(tmp_path, monkeypatch):
    dst, new = _old_and_new_folder(tmp_path)
    renames = []
    monkeypatch.setattr(atomic_io.os, "replace", lambda s, d: renames.append(d))
    atomic_io.replace_dir(new, dst)
    assert renames == []  # no rename of dst away: it is never missing
    assert (dst / "model.pt").read_text() == "new"
