"""The sampling tutorial and its command line, end to end in temporary folders.

Uses a synthetic SMPL-X file with a non-official vertex count and a VPoser experiment folder with
random weights; the no-option default (shipped open model + shipped open VPoser) runs once those
files exist. Sampled poses are checked against the VPoser loaded independently here.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

pytestmark = pytest.mark.render

NUM_VERTS = 900
TILE_W, TILE_H = 240, 320  # sample_body_pose.TILE_SIZE


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from human_body_prior.body_model.synthetic import write_synthetic_model
    from human_body_prior.priors.vposer import VPoser
    from human_body_prior.tools.model_loader import write_vposer_experiment

    root = tmp_path_factory.mktemp("assets")
    bm_path = write_synthetic_model(root / "SMPLX_SYN.npz", "smplx", num_verts=NUM_VERTS,
                                    num_shape_columns=20, seed=1)
    vp = VPoser(64, 8, [1, 21, 3])
    with torch.no_grad():  # fixed, non-trivial weights without touching the global RNG
        gen = torch.Generator().manual_seed(0)
        for p in vp.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    expr_dir = root / "vposer_rand"
    write_vposer_experiment(expr_dir, vp, epoch=3)
    return str(bm_path), str(expr_dir)


def run_cli(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                         env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "human_body_prior.tutorials.sample_body_pose", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def foreground(img):
    return np.abs(img.astype(int) - 255).max(axis=-1) > 8


def check_grid(png, rows, cols, tile_w, tile_h):
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (rows * tile_h, cols * tile_w, 3)
    for r in range(rows):
        for c in range(cols):
            tile = foreground(img[r * tile_h:(r + 1) * tile_h, c * tile_w:(c + 1) * tile_w])
            assert tile.mean() > 0.02, f"tile {r},{c} is blank"
            border = np.concatenate([tile[0], tile[-1], tile[:, 0], tile[:, -1]])
            assert not border.any(), f"body in tile {r},{c} leaves the frame"


def test_cli_end_to_end_with_options(assets, tmp_path):
    from human_body_prior.body_model.body_model import BodyModel
    from human_body_prior.tools.model_loader import load_vposer

    bm_path, expr_dir = assets
    out = tmp_path / "out"
    res = run_cli(["--num-samples", "2", "--out", str(out), "--expr-dir", expr_dir, "--bm-path", bm_path,
                   "--seed", "5", "--interpolate", "--num-frames", "3", "--save-ply"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    printed = res.stdout.strip().splitlines()
    png, gif = out / "vposer_samples.png", out / "vposer_interpolation.gif"
    assert printed[-2:] == [str(png), str(gif)]

    check_grid(png, rows=3, cols=2, tile_w=TILE_W, tile_h=TILE_H)

    # the saved poses are what the VPoser of the folder draws with that seed
    vposer, _ = load_vposer(expr_dir, verbose=False)
    expected = vposer.sample_poses(2, output_type="aa", seed=5).reshape(2, 63)
    saved = np.load(out / "vposer_samples.npz")["pose_body"]
    np.testing.assert_allclose(saved, expected.numpy(), atol=1e-6)

    bm = BodyModel(bm_path)
    with torch.no_grad():
        verts = bm(pose_body=torch.as_tensor(saved)).v.numpy()
    plys = sorted((out / "vposer_samples_ply").iterdir())
    assert [p.name for p in plys] == ["000.ply", "001.ply"]
    for i, p in enumerate(plys):
        mesh = trimesh.load(p, process=False)
        assert mesh.vertices.shape == (NUM_VERTS, 3)
        np.testing.assert_allclose(mesh.vertices, verts[i], atol=1e-5)

    with Image.open(gif) as im:
        assert im.n_frames == 2 * 3 - 2 and im.size == (3 * 160, 220)


def test_interpolation_follows_the_latent_formula(assets, tmp_path):
    from human_body_prior.body_model.body_model import BodyModel
    from human_body_prior.tools.model_loader import load_vposer
    from human_body_prior.tutorials.sample_body_pose import interpolate_vposer

    bm_path, expr_dir = assets
    bm = BodyModel(bm_path)
    gif, poZ, pose = interpolate_vposer(expr_dir, bm, str(tmp_path / "i.gif"), num_sequences=2,
                                        num_frames=5, seed=11, tile_size=(64, 96))
    assert poZ.shape == (2, 8, 8) and pose.shape == (2, 8, 63)
    alphas = np.array([0, .25, .5, .75, 1, .75, .5, .25])
    z2, z1 = poZ[:, 0], poZ[:, 4]  # alpha = 0 gives poZ_2, alpha = 1 gives poZ_1
    for k, a in enumerate(alphas):
        torch.testing.assert_close(poZ[:, k], a * z1 + (1 - a) * z2, atol=1e-6, rtol=0)
    assert not torch.allclose(z1, z2)
    vposer, _ = load_vposer(expr_dir, verbose=False)
    with torch.no_grad():
        decoded = vposer.decode(poZ.reshape(-1, 8), output_type="aa").reshape(2, 8, 63)
    torch.testing.assert_close(pose, decoded, atol=1e-5, rtol=0)
    with Image.open(gif) as im:
        assert im.n_frames == 8 and im.size == (2 * 64, 96)


def test_sample_vposer_as_in_the_seed(assets, tmp_path, monkeypatch):
    from human_body_prior.body_model.body_model import BodyModel
    from human_body_prior.tutorials.sample_body_pose import sample_vposer

    bm_path, expr_dir = assets
    monkeypatch.chdir(tmp_path)
    bm = BodyModel(bm_path, 'smplx')
    png = sample_vposer(expr_dir, bm, 3, vp_model='snapshot')
    assert os.path.abspath(png) == str(tmp_path / "vposer_samples" / "vposer_samples.png")
    check_grid(png, rows=3, cols=3, tile_w=TILE_W, tile_h=TILE_H)
    assert np.load(tmp_path / "vposer_samples" / "vposer_samples.npz")["pose_body"].shape == (3, 63)


def test_cli_errors_are_clear(assets, tmp_path):
    bm_path, expr_dir = assets
    res = run_cli(["--bm-path", str(tmp_path / "missing.npz"), "--expr-dir", expr_dir], cwd=tmp_path)
    assert res.returncode == 1 and "missing.npz" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(["--bm-path", bm_path, "--expr-dir", str(tmp_path / "nope")], cwd=tmp_path)
    assert res.returncode == 1 and "nope" in res.stderr and "Traceback" not in res.stderr
    res = run_cli(["--num-samples", "0"], cwd=tmp_path)
    assert res.returncode == 2 and "--num-samples" in res.stderr
    assert not (tmp_path / "vposer_samples").exists()


def test_cli_no_options_uses_shipped_defaults(tmp_path):
    from human_body_prior import default_body_model_path

    res = run_cli([], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    png = tmp_path / "vposer_samples" / "vposer_samples.png"
    assert res.stdout.strip().splitlines()[-1] == str(png)
    check_grid(png, rows=3, cols=5, tile_w=TILE_W, tile_h=TILE_H)
    assert np.load(tmp_path / "vposer_samples" / "vposer_samples.npz")["pose_body"].shape == (5, 63)
    assert os.path.isfile(default_body_model_path())


def test_v1_and_v2_pictures_share_a_folder(tmp_path):
    """--vposer-version 2 wrote vposer_samples.png over the v1 picture in the same folder (issue 24)."""
    out = tmp_path / "both"
    v1 = run_cli(["--num-samples", "1", "--seed", "3", "--out", str(out)], cwd=tmp_path)
    v2 = run_cli(["--num-samples", "1", "--seed", "3", "--out", str(out), "--vposer-version", "2"], cwd=tmp_path)
    assert v1.returncode == 0 and v2.returncode == 0, v1.stderr + v2.stderr
    assert v1.stdout.strip().splitlines()[-1] == str(out / "vposer_samples.png")
    assert v2.stdout.strip().splitlines()[-1] == str(out / "vposer_v2_samples.png")
    assert sorted(p.name for p in out.iterdir()) == ["vposer_samples.npz", "vposer_samples.png",
                                                     "vposer_v2_samples.npz", "vposer_v2_samples.png"]
    assert not np.array_equal(np.load(out / "vposer_samples.npz")["pose_body"],
                              np.load(out / "vposer_v2_samples.npz")["pose_body"])
