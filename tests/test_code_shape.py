"""The shape of the code: no function of the package over 60 lines, its docstring aside."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "human_body_prior"
MAX_FUNCTION_LINES = 60


def _function_lengths(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str)
            doc_lines = first.end_lineno - first.lineno + 1 if has_doc else 0
            yield node, node.end_lineno - node.lineno + 1 - doc_lines


def test_no_function_is_over_60_lines():
    long = [f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name}: {n} lines"
            for path in sorted(PKG.rglob("*.py")) for node, n in _function_lengths(path) if n > MAX_FUNCTION_LINES]
    assert not long, "functions over 60 lines (docstring aside):\n" + "\n".join(long)


def test_function_length_counts_what_it_should(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    path = tmp_path / "m.py"
    path.write_text(f'def f():\n    """one\n    two\n    """\n{body}\n')
    assert [n for _, n in _function_lengths(path)] == [62]  # the def line and 61 statements

