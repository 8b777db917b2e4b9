"""Imports point down the layers of ARCHITECTURE.md; the upstream-compatibility shims stay thin and lazy.

Every ``import``/``from ... import`` of the package (module level and inside functions) is read from
the source with ``ast``, so an upward import hidden in a function counts too.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "human_body_prior"

# ARCHITECTURE.md's layers, bottom first: a module may import from its own layer or a lower one.
LAYERS = (
    ("tools",),
    ("support_paths", "body_model", "mesh"),
    ("priors", "models", "open_model"),
    ("data",),
    ("train",),
    ("evaluation", "fitting"),
    ("tutorials",),
)
# modules that sit in another layer than their folder
MODULE_LAYER = {
    "body_model.body_model_vposer": "priors",  # a body model driven by a prior (upstream path)
    "models.ik_engine": "fitting",             # the upstream v2 IK engine fits bodies
}
# command-line pipelines that run several layers; only these may import from any layer
ENTRY_POINTS = {
    "train.train_open_vposer",  # prepare data, train, package, evaluate
    "train.evaluate_vposer",    # the earlier path of `python -m human_body_prior.evaluation.vposer`
    "data.mocap_report",        # retargeting quality report (evaluation/retarget_quality)
}
# upstream-compatibility shims at upstream paths in tools/: may import the package, inside functions only
TOOLS_SHIMS = {"tools.model_loader", "tools.visualization_tools", "tools.rotation_tools",
               "tools.omni_tools"}  # omni_tools.get_support_data_dir reads support_paths
SHIM_HOMES = {"tools.model_loader": ("priors.experiment", "priors.vposer_v2_io"),
              "tools.visualization_tools": "mesh.rendering"}

RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def _is_module(dotted):
    """Is human_body_prior.<...> a module or package (not a name defined in one)?"""
    if not dotted.startswith("human_body_prior."):
        return False
    rel = PKG.joinpath(*dotted.split(".")[1:])
    return rel.with_suffix(".py").is_file() or rel.is_dir()


def _package_imports(path):
    """(imported module relative to human_body_prior ('' = the root), line, inside a function?)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: relative import"
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names
                                          if _is_module(f"{child.module}.{a.name}")]
            for name in names:
                if name == "human_body_prior" or name.startswith("human_body_prior."):
                    out.append((name[len("human_body_prior."):] if "." in name else "", child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return out


def _layer_of(module):
    if module in MODULE_LAYER:
        return RANK[MODULE_LAYER[module]]
    head = module.split(".")[0]
    if head not in RANK:
        raise AssertionError(f"human_body_prior.{module} is in no layer of tests/test_layers.py / ARCHITECTURE.md")
    return RANK[head]


def _target_layer(target):
    """Layer of an imported name: the longest known module prefix (from pkg import name -> pkg.name)."""
    if target == "" or target == "support_paths" or target.startswith("support_paths."):
        return RANK["support_paths"]  # the root package only re-exports support_paths
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULE_LAYER:
            return RANK[MODULE_LAYER[".".join(parts[:n])]]
    return _layer_of(parts[0])


def test_every_module_is_in_a_layer():
    for module, _ in _modules():
        if module:
            _layer_of(module)


def test_imports_point_down():
    upward = []
    for module, path in _modules():
        if not module or module in ENTRY_POINTS:
            continue
        own = _layer_of(module)
        for target, line, in_function in _package_imports(path):
            if module.startswith("tools"):
                same_layer = target == "tools" or target.startswith("tools.")
                if target and not same_layer and not (module in TOOLS_SHIMS and in_function):
                    upward.append(f"{path.relative_to(PKG.parent)}:{line} imports human_body_prior.{target} "
                                  "(tools/ is the bottom layer)")
                continue
            if _target_layer(target) > own:
                upward.append(f"{path.relative_to(PKG.parent)}:{line} imports human_body_prior.{target}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_library_code_does_not_use_the_compatibility_shims():
    users = []
    for module, path in _modules():
        if module in TOOLS_SHIMS:
            continue
        for target, line, _ in _package_imports(path):
            if any(target == s or target.startswith(f"{s}.") for s in SHIM_HOMES):
                users.append(f"{path.relative_to(PKG.parent)}:{line} imports human_body_prior.{target}")
    assert not users, "library code imports an upstream-compatibility shim (import the real home):\n" + "\n".join(users)


@pytest.mark.parametrize("shim", sorted(SHIM_HOMES))
def test_shims_are_marked_and_lazy(shim):
    path = PKG / (shim.replace(".", "/") + ".py")
    assert ast.get_docstring(ast.parse(path.read_text())).startswith("Upstream-compatibility shim")
    homes = SHIM_HOMES[shim] if isinstance(SHIM_HOMES[shim], tuple) else (SHIM_HOMES[shim],)
    code = (f"import sys, importlib, human_body_prior.{shim} as m\n"
            f"homes = {[f'human_body_prior.{h}' for h in homes]!r}\n"
            f"assert not any(h in sys.modules for h in homes), 'imported at import time'\n"
            f"hs = [importlib.import_module(h) for h in homes]\n"
            f"missing = [n for n in m.__all__ if not any(getattr(m, n) is getattr(h, n, None) for h in hs)]\n"
            f"assert not missing, missing\n"
            f"from human_body_prior.{shim} import *\n"
            f"try:\n    m.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no error')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
