"""Execute the tutorial notebooks with nbclient, from a copy of notebooks/ in a temporary folder.

With files laid out as a user would put the official downloads (here: a synthetic SMPL-X file and a
random VPoser experiment folder), and, once they exist, with the shipped open defaults.
"""

import os
import shutil
from pathlib import Path

import pytest
import torch

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.render

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("vposer_poZ.ipynb", "vposer_sampling.ipynb")


def committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    return all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code")


def execute(nb_path, workdir):
    nb = nbformat.read(nb_path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env)
    return nb


def outputs_text(nb):
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


def copy_notebooks(root):
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "vposer_samples"))
    return root / "notebooks"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_committed_without_outputs(name):
    assert committed_without_outputs(REPO / "notebooks" / name)


@pytest.fixture(scope="module")
def downloads_layout(tmp_path_factory):
    """<root>/notebooks + <root>/downloads/{vposer_v1_0, models/smplx/SMPLX_FEMALE.npz}."""
    from human_body_prior.body_model.synthetic import write_synthetic_model
    from human_body_prior.priors.vposer import VPoser
    from human_body_prior.tools.model_loader import write_vposer_experiment

    root = tmp_path_factory.mktemp("nbroot")
    write_synthetic_model(root / "downloads/models/smplx/SMPLX_FEMALE.npz", "smplx", num_verts=700,
                          num_shape_columns=20, seed=2)
    vp = VPoser(64, 32, [1, 21, 3])
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        for p in vp.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    write_vposer_experiment(root / "downloads/vposer_v1_0", vp, epoch=96)
    return root, copy_notebooks(root)


def test_poZ_notebook_with_downloads(downloads_layout):
    root, nbdir = downloads_layout
    nb = execute(nbdir / "vposer_poZ.ipynb", nbdir)
    text = outputs_text(nb)
    assert "Found Trained Model: ../downloads/vposer_v1_0/snapshots/TR00_E096.pt" in text
    assert "body model file: ../downloads/models/smplx/SMPLX_FEMALE.npz" in text
    assert "poZ_body torch.Size([1, 32])" in text and "pose_body torch.Size([1, 63])" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1


def test_sampling_notebook_with_downloads(downloads_layout):
    root, nbdir = downloads_layout
    nb = execute(nbdir / "vposer_sampling.ipynb", nbdir)
    text = outputs_text(nb)
    assert "torch.Size([10, 1, 21, 3])" in text
    assert (nbdir / "vposer_samples" / "vposer_samples.png").is_file()
    assert (nbdir / "vposer_samples" / "vposer_interpolation.gif").is_file()
    assert "(3, 22, 32) (3, 22, 63)" in text


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_with_shipped_defaults(tmp_path, name):
    from human_body_prior import default_vposer_dir

    nbdir = copy_notebooks(tmp_path)  # no ../downloads here
    nb = execute(nbdir / name, nbdir)
    assert f"VPoser experiment folder: {default_vposer_dir()}" in outputs_text(nb)
