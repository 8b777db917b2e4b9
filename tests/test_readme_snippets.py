"""The README's "v1 and v2 APIs" snippets run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets():
    text = README.read_text()
    section = text.split("## v1 and v2 APIs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_section_has_v1_and_v2_snippets():
    snippets = _snippets()
    assert len(snippets) == 2
    assert "load_vposer" in snippets[0] and "IK_Engine" in snippets[1]


@pytest.mark.parametrize("index", [0, 1], ids=["v1", "v2"])
def test_snippet_runs(index, capsys):
    exec(compile(_snippets()[index], f"README.md v1-and-v2 snippet {index}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "1, 55, 3" in out if index == 0 else "'pose_body': (1, 63)" in out
