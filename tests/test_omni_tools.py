"""omni_tools helpers used by 2019 experiment code."""

import random

import numpy as np
import pytest
import torch
import trimesh

from human_body_prior.tools import omni_tools


def test_copy2cpu_and_makepath(tmp_path):
    t = torch.arange(6.0, requires_grad=True).reshape(2, 3)
    arr = omni_tools.copy2cpu(t * 2)
    assert isinstance(arr, np.ndarray) and arr.tolist() == [[0, 2, 4], [6, 8, 10]]
    assert omni_tools.copy2cpu([1, 2]) == [1, 2]
    f = omni_tools.makepath(str(tmp_path), "a", "b", "file.txt", isfile=True)
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "file.txt").exists()
    d = omni_tools.makepath(str(tmp_path / "c" / "d"))
    assert (tmp_path / "c" / "d").is_dir() and d.endswith("d") and f.endswith("file.txt")


def test_log2file_appends(tmp_path, capsys):
    log = omni_tools.log2file(str(tmp_path / "logs" / "run.log"))
    log("epoch 1")
    log("epoch 2")
    assert (tmp_path / "logs" / "run.log").read_text() == "epoch 1\nepoch 2\n"
    assert "epoch 2" in capsys.readouterr().err


def test_id_generator_leaves_global_random_state():
    state = random.getstate()
    ids = {omni_tools.id_generator() for _ in range(20)}
    assert random.getstate() == state
    assert len(ids) == 20 and all(len(i) == 13 and i.isalnum() for i in ids)
    assert set(omni_tools.colors["red"]) <= set(np.linspace(0, 1, 101).round(2))


def test_apply_mesh_transformations_in_place():
    meshes = [trimesh.creation.box(), trimesh.creation.icosphere()]
    before = [m.vertices.copy() for m in meshes]
    T = np.eye(4)
    T[:3, :3] = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])[:3, :3]
    T[:3, 3] = [1, 2, 3]
    omni_tools.apply_mesh_tranfsormations_(meshes, T)
    for m, v in zip(meshes, before):
        np.testing.assert_allclose(m.vertices, v @ T[:3, :3].T + T[:3, 3], atol=1e-12)


def test_2021_helpers(tmp_path):
    from human_body_prior import support_data_dir

    assert omni_tools.get_support_data_dir() == str(support_data_dir())
    script = tmp_path / "project" / "src" / "scripts" / "run.py"
    (tmp_path / "project" / "support_data").mkdir(parents=True)
    assert omni_tools.get_support_data_dir(str(script)) == str(tmp_path / "project" / "support_data")

    assert omni_tools.create_list_chunks(list(range(7)), 3, 1) == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert omni_tools.create_list_chunks(list(range(7)), 3, 0, cut_smaller_batches=False) == [[0, 1, 2], [3, 4, 5], [6]]
    assert omni_tools.create_list_chunks(list(range(7)), 3, 0) == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="0 <= overlap_size < group_size"):
        omni_tools.create_list_chunks(list(range(7)), 3, 3)
    assert omni_tools.flatten_list([[1, 2], [], [3]]) == [1, 2, 3]

    try:
        omni_tools.make_deterministic(5)
        a = (random.random(), np.random.rand(), torch.rand(1).item())
        omni_tools.make_deterministic(5)
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
