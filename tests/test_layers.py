"""The folder is the layer: imports point down ARCHITECTURE.md's layers, with no exceptions; the upstream
import paths are thin, marked re-exports in the compatibility layer at the top.

Every ``import``/``from ... import`` of the package (module level and inside functions) is read from the
source with ``ast``, so an upward import hidden in a function counts too.
"""

import ast
import importlib
import io
import tokenize
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "human_body_prior"

# ARCHITECTURE.md's layers, bottom first: a module may import from its own layer or a lower one. A name is a
# folder (package) or a module at the package root.
LAYERS = (
    ("geometry", "files", "cli", "model_types", "support_paths"),  # model_types: tables, file names from them
    ("mesh",),
    ("priors",),
    ("body_model",),
    ("open_model", "data"),
    ("fitting",),
    ("evaluation",),
    ("train",),
    ("tutorials",),
    ("compat", "tools", "models"),  # the upstream-compatibility layer
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
COMPAT = RANK["compat"]

# Every import path of the 2019 and 2021 human_body_prior that is not the real home of its code.
UPSTREAM_SHIMS = ("tools.model_loader", "tools.visualization_tools", "tools.rotation_tools", "tools.tgm_conversion",
                  "tools.angle_continuous_repres", "tools.omni_tools", "train.vposer_smpl", "train.evaluate_vposer",
                  "models.vposer_model", "models.model_components", "models.ik_engine")
MAX_SHIM_CODE_LINES = 40
SHIM_MARK = "Upstream-compatibility shim"


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _package_imports(path):
    """(imported module or name relative to human_body_prior ('' = the root), line) for every import."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "human_body_prior" or name.startswith("human_body_prior."):
                out.append((name[len("human_body_prior."):] if "." in name else "", node.lineno))
    return out


def _layer(dotted):
    """Layer of a module or of a name imported from one ('' and root-package names: the root re-exports
    support_paths only)."""
    head = dotted.split(".")[0]
    if head not in RANK:
        if dotted == "" or not (PKG / head).exists() and not (PKG / f"{head}.py").exists():
            return RANK["support_paths"]
        raise AssertionError(f"human_body_prior.{dotted} is in no layer of tests/test_layers.py / ARCHITECTURE.md")
    return COMPAT if dotted in UPSTREAM_SHIMS else RANK[head]


def _is_shim(module):
    return module in UPSTREAM_SHIMS or module.split(".")[0] in ("tools", "models")


def test_every_module_is_in_a_layer():
    for module, _ in _modules():
        if module:
            _layer(module)


def test_imports_point_down():
    upward = []
    for module, path in _modules():
        if not module:
            continue
        own = _layer(module)
        for target, line in _package_imports(path):
            if _layer(target) > own:
                upward.append(f"{path.relative_to(PKG.parent)}:{line} imports human_body_prior.{target}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_library_code_does_not_use_the_compatibility_layer():
    users = []
    for module, path in _modules():
        if not module or _layer(module) == COMPAT:
            continue
        for target, line in _package_imports(path):
            if target and _layer(target) == COMPAT:
                users.append(f"{path.relative_to(PKG.parent)}:{line} imports human_body_prior.{target}")
    assert not users, "library code imports the compatibility layer (import the real home):\n" + "\n".join(users)


def test_tools_and_models_hold_only_upstream_shims():
    for folder in ("tools", "models"):
        for path in (PKG / folder).glob("*.py"):
            module = f"{folder}.{path.stem}"
            assert path.stem == "__init__" or module in UPSTREAM_SHIMS, f"{path}: not an upstream path"


def _code_lines(source):
    """Lines holding code: not blank, not a comment, not part of the module docstring."""
    tree = ast.parse(source)
    doc = tree.body[0] if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(
        tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str) else None
    skip = set(range(doc.lineno, doc.end_lineno + 1)) if doc else set()
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER) and tok.start[0] not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines)


@pytest.mark.parametrize("shim", UPSTREAM_SHIMS)
def test_upstream_paths_are_thin_marked_reexports(shim):
    path = PKG / (shim.replace(".", "/") + ".py")
    source = path.read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree).startswith(SHIM_MARK), f"{path}: docstring does not start with {SHIM_MARK!r}"
    assert _code_lines(source) <= MAX_SHIM_CODE_LINES, f"{path}: {_code_lines(source)} code lines"
    for node in tree.body[1:]:
        plain = isinstance(node, (ast.Import, ast.ImportFrom)) or (
            isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__all__"])
        command = isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        assert plain or command, f"{path}:{node.lineno}: a shim holds imports, __all__ and a __main__ block only"
    module = importlib.import_module(f"human_body_prior.{shim}")
    homes = [importlib.import_module(n.module) for n in tree.body if isinstance(n, ast.ImportFrom)]
    real = [h for h in homes if not _is_shim(h.__name__[len("human_body_prior."):])]
    for name in getattr(module, "__all__", []):
        assert any(getattr(h, name, None) is getattr(module, name) for h in real), f"{shim}.{name}: not re-exported"
