"""Headless rendering (pyrender + EGL/Mesa) and image/mesh file writing.

Rendering tests are marked ``render``; they need libegl1 + libgl1-mesa-dri (see .ci/run).
Geometry is checked against a pinhole-camera projection computed here by hand.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from human_body_prior.mesh.rendering import frame_camera_distance, imagearray2file, render_vertices, smpl_params2ply

render = pytest.mark.render
BG = np.array([255, 255, 255])


def foreground(img, bg=BG, tol=8):
    """Boolean (H, W) mask of pixels that differ from the background colour."""
    return np.abs(img.astype(int) - np.asarray(bg)).max(axis=-1) > tol


def bbox(mask):
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max(), xs.min(), xs.max()


def stick_figure(arm_right_only=False):
    """A ~1.75 m figure (+y up, facing +z) made of boxes and a sphere; arms along x (T-pose)."""
    parts = []

    def box(extents, center):
        b = trimesh.creation.box(extents=extents)
        b.apply_translation(center)
        parts.append(b)

    box((0.35, 0.55, 0.2), (0, 1.2, 0))
    head = trimesh.creation.icosphere(subdivisions=2, radius=0.11)
    head.apply_translation((0, 1.62, 0))
    parts.append(head)
    box((0.12, 0.85, 0.12), (0.1, 0.47, 0))
    box((0.12, 0.85, 0.12), (-0.1, 0.47, 0))
    box((0.6, 0.08, 0.08), (0.45, 1.42, 0))
    if not arm_right_only:
        box((0.6, 0.08, 0.08), (-0.45, 1.42, 0))
    return trimesh.util.concatenate(parts)


@pytest.fixture(scope="module")
def viewer():
    from human_body_prior.mesh.mesh_viewer import MeshViewer

    mv = MeshViewer(width=320, height=240, use_offscreen=True)
    yield mv
    mv.close_viewer()


def flat_plate(w, h, depth=1e-3):
    return trimesh.creation.box(extents=(w, h, depth))


@render
def test_render_size_dtype_and_not_blank(viewer):
    from human_body_prior.mesh.mesh_viewer import look_at_pose

    viewer.set_background_color((1.0, 1.0, 1.0))
    viewer.update_camera_pose(look_at_pose((0, 0, 3.0), (0, 0, 0)))
    viewer.set_static_meshes([flat_plate(0.5, 0.5)])
    img = viewer.render()
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    mask = foreground(img)
    assert 0.01 < mask.mean() < 0.5
    assert (img[0, 0] == 255).all() and (img[-1, -1] == 255).all()


@render
@pytest.mark.parametrize("dist", [2.0, 4.0])
def test_silhouette_matches_pinhole_projection(viewer, dist):
    from human_body_prior.mesh.mesh_viewer import look_at_pose

    w, h = 0.6, 0.9
    viewer.update_camera_pose(look_at_pose((0, 0, dist), (0, 0, 0)))
    viewer.set_static_meshes([flat_plate(w, h)])
    mask = foreground(viewer.render())
    H, W = mask.shape
    focal = (H / 2.0) / np.tan(viewer.yfov / 2.0)  # pixels; square pixels
    exp_w, exp_h = focal * w / dist, focal * h / dist
    y0, y1, x0, x1 = bbox(mask)
    assert abs((x1 - x0 + 1) - exp_w) <= 2.0
    assert abs((y1 - y0 + 1) - exp_h) <= 2.0
    assert abs((x0 + x1) / 2 - (W - 1) / 2) <= 1.0 and abs((y0 + y1) / 2 - (H - 1) / 2) <= 1.0


@render
def test_background_wireframe_and_groups(viewer):
    from human_body_prior.mesh.mesh_viewer import look_at_pose

    viewer.update_camera_pose(look_at_pose((0, 0, 3.0), (0, 0, 0)))
    viewer.set_background_color((0.0, 0.0, 1.0))
    viewer.set_static_meshes([flat_plate(0.4, 0.4)])
    img = viewer.render()
    assert tuple(img[0, 0]) == (0, 0, 255)
    solid = foreground(img, bg=(0, 0, 255)).sum()
    wire = foreground(viewer.render(render_wireframe=True), bg=(0, 0, 255)).sum()
    assert 0 < wire < 0.7 * solid

    # a dynamic mesh on the left joins the static one; replacing the static group removes it
    left = flat_plate(0.3, 0.3)
    left.apply_translation((-1.6, 0, 0))
    viewer.set_dynamic_meshes([left])
    both = foreground(viewer.render(), bg=(0, 0, 255))
    viewer.set_static_meshes([])
    only_left = foreground(viewer.render(), bg=(0, 0, 255))
    W = both.shape[1]
    assert both[:, W // 2].any() and both[:, : W // 4].any()
    assert not only_left[:, W // 2].any() and only_left[:, : W // 4].any()
    viewer.set_dynamic_meshes([])
    viewer.set_background_color((1.0, 1.0, 1.0))
    assert not foreground(viewer.render()).any()


@render
def test_rgba_render_is_transparent_outside_the_body(viewer):
    from human_body_prior.mesh.mesh_viewer import look_at_pose

    viewer.update_camera_pose(look_at_pose((0, 0, 3.0), (0, 0, 0)))
    viewer.set_static_meshes([flat_plate(0.5, 0.5)])
    assert (viewer.render(RGBA=True)[..., 3] == 255).all()  # opaque background
    viewer.set_background_color((1.0, 1.0, 1.0, 0.0))
    rgba = viewer.render(RGBA=True)
    viewer.set_background_color((1.0, 1.0, 1.0))
    assert rgba.shape == (240, 320, 4)
    assert rgba[0, 0, 3] == 0 and rgba[120, 160, 3] == 255
    np.testing.assert_array_equal(rgba[..., 3] > 0, foreground(viewer.render()))


@render
def test_two_viewers_alive_then_one_closed(viewer):
    from human_body_prior.mesh.mesh_viewer import MeshViewer, look_at_pose

    other = MeshViewer(width=100, height=50)
    other.set_static_meshes([flat_plate(1.0, 1.0)])
    assert other.render().shape == (50, 100, 3)
    other.close_viewer()
    viewer.update_camera_pose(look_at_pose((0, 0, 3.0), (0, 0, 0)))
    viewer.set_static_meshes([flat_plate(0.5, 0.5)])
    assert viewer.render().shape == (240, 320, 3) and foreground(viewer.render()).any()
    # each viewer has its own context: a new one renders beside the first, also after others closed
    third = MeshViewer(width=60, height=40)
    third.set_static_meshes([flat_plate(1.0, 1.0)])
    assert foreground(third.render()).any() and foreground(viewer.render()).any()
    third.close_viewer()
    assert foreground(viewer.render()).any()


@render
def test_bad_inputs_raise_clear_errors(viewer):
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        viewer.update_camera_pose(np.eye(3))
    with pytest.raises(TypeError, match="trimesh"):
        viewer.set_static_meshes([np.zeros((3, 3))])
    with pytest.raises(ValueError, match="poses"):
        viewer.set_static_meshes([flat_plate(1, 1)], poses=[np.eye(4), np.eye(4)])


@render
def test_save_snapshot_png(viewer, tmp_path):
    from human_body_prior.mesh.mesh_viewer import look_at_pose

    viewer.update_camera_pose(look_at_pose((0, 0, 3.0), (0, 0, 0)))
    viewer.set_static_meshes([flat_plate(0.5, 0.8)])
    out = tmp_path / "sub" / "snap.png"
    assert viewer.save_snapshot(str(out)) == str(out)
    saved = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(saved, viewer.render())
    assert [p.name for p in out.parent.iterdir()] == ["snap.png"]


@render
def test_render_vertices_frames_bodies_of_any_vertex_count():
    fig = stick_figure()
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.3)  # 642 vertices
    for mesh in (fig, sphere):
        verts = np.stack([mesh.vertices, mesh.vertices + (5.0, -2.0, 1.0)])  # far off-centre too
        imgs = render_vertices(verts, mesh.faces, view_angles=(0, 90, -90), width=200, height=300)
        assert imgs.shape == (3, 2, 300, 200, 3) and imgs.dtype == np.uint8
        fill = []
        for img in imgs.reshape(-1, 300, 200, 3):
            mask = foreground(img)
            y0, y1, x0, x1 = bbox(mask)
            assert y0 > 0 and x0 > 0 and y1 < 299 and x1 < 199, "body touches the image border"
            assert abs((y0 + y1) / 2 - 149.5) < 15 and abs((x0 + x1) / 2 - 99.5) < 15
            fill.append(max((y1 - y0) / 300, (x1 - x0) / 200))
        # one camera distance serves all views: the largest view fills most of its tile
        assert max(fill) > 0.65
        # the two copies differ only by a translation: each is centred, so the tiles agree
        np.testing.assert_array_equal(foreground(imgs[0, 0]), foreground(imgs[0, 1]))


@render
def test_view_angles_rotate_about_vertical():
    fig = stick_figure(arm_right_only=True)  # one arm along +x
    imgs = render_vertices(fig.vertices, fig.faces, view_angles=(0, 90, -90, 180), width=300,
                           height=300, center_each=False)
    widths = [np.ptp(np.nonzero(foreground(im))[1]) for im in imgs[:, 0]]
    # front and back views show the arm's full span, side views a much narrower body
    assert widths[1] < 0.6 * widths[0] and widths[2] < 0.6 * widths[0]
    assert abs(widths[0] - widths[3]) <= 3
    # front view: the +x arm is on the image right; seen from behind (180 deg) it is on the left
    for img, arm_on_right in ((imgs[0, 0], True), (imgs[3, 0], False)):
        mask = foreground(img)
        rows = np.nonzero(mask.any(axis=1))[0]
        legs_mid = np.nonzero(mask[rows.max() - 10:])[1].mean()  # legs: centred under the torso
        cols = np.nonzero(mask)[1]
        assert ((cols.max() - legs_mid) > 2 * (legs_mid - cols.min())) == arm_on_right


def test_frame_camera_distance_analytic():
    yfov = np.pi / 3
    # a tall thin box: height limits; distance = hz + margin * hy / tan(yfov/2)
    d = frame_camera_distance((0.1, 1.0, 0.2), yfov, aspect=1.0, margin=1.0)
    assert d == pytest.approx(0.2 + 1.0 / np.tan(yfov / 2))
    # a wide box in a narrow image: width limits
    d = frame_camera_distance((1.0, 0.1, 0.0), yfov, aspect=0.5, margin=1.0)
    assert d == pytest.approx(1.0 / (0.5 * np.tan(yfov / 2)))


def test_render_vertices_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        render_vertices(np.zeros((2, 5, 2)), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        render_vertices(np.zeros((2, 5, 3)), np.zeros((3,), int))
    with pytest.raises(ValueError, match="index vertices"):
        render_vertices(np.zeros((2, 5, 3)), np.array([[0, 1, 5]]))


def tiles(rows, cols, frames, H=6, W=8):
    """Distinct flat-coloured tiles: pixel value encodes (row, col, frame)."""
    arr = np.zeros((rows, cols, frames, H, W, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            for t in range(frames):
                arr[r, c, t] = (40 * r + 10, 60 * c + 20, 50 * t + 5)
    return arr


def test_imagearray2file_png_grid_layout(tmp_path):
    arr = tiles(2, 3, 1)
    out = imagearray2file(arr, str(tmp_path / "grid.png"))
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (2 * 6, 3 * 8, 3)
    for r in range(2):
        for c in range(3):
            np.testing.assert_array_equal(img[r * 6:(r + 1) * 6, c * 8:(c + 1) * 8], arr[r, c, 0])
    # floats in [0, 1] are scaled to 0..255
    out2 = imagearray2file(arr.astype(np.float32) / 255.0, str(tmp_path / "grid_f.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(out2).convert("RGB")), img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "grid_f.png"]


def test_imagearray2file_gif_frames(tmp_path):
    arr = tiles(1, 2, 4)
    out = imagearray2file(arr, str(tmp_path / "anim.gif"), fps=5)
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4 and gif.size == (2 * 8, 6)
        assert gif.info.get("duration") == 200
        for t in range(4):
            gif.seek(t)
            frame = np.asarray(gif.convert("RGB"))
            np.testing.assert_array_equal(frame[:, :8], arr[0, 0, t])
            np.testing.assert_array_equal(frame[:, 8:], arr[0, 1, t])


def test_imagearray2file_errors(tmp_path):
    with pytest.raises(ValueError, match="rows, cols, frames"):
        imagearray2file(np.zeros((2, 4, 4, 3), np.uint8), str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match=r"\.gif"):
        imagearray2file(tiles(1, 1, 3), str(tmp_path / "x.png"))
    assert list(tmp_path.iterdir()) == []


class _FakeBodyModel:
    """Duck-typed body model: vertices = template + pose-dependent offsets (for file checks)."""

    def __init__(self, num_verts=37):
        rng = np.random.default_rng(0)
        self.v_template = rng.normal(size=(num_verts, 3))
        self.f = np.stack([np.arange(num_verts - 2), np.arange(1, num_verts - 1),
                           np.arange(2, num_verts)], axis=1)

    def __call__(self, pose_body, **kw):
        pb = np.asarray(pose_body).reshape(len(pose_body), -1)
        v = self.v_template[None] + pb[:, :3][:, None, :]

        class Out:
            pass

        out = Out()
        out.v, out.f = v, self.f
        return out


def test_smpl_params2ply_writes_one_mesh_per_body(tmp_path):
    import torch

    bm = _FakeBodyModel()
    pose = torch.tensor(np.random.default_rng(1).normal(size=(3, 1, 21, 3)))
    paths = smpl_params2ply(bm, str(tmp_path / "ply"), pose)
    assert [os.path.basename(p) for p in paths] == ["000.ply", "001.ply", "002.ply"]
    expected = bm(pose.numpy()).v
    for i, p in enumerate(paths):
        mesh = trimesh.load(p, process=False)
        np.testing.assert_allclose(mesh.vertices, expected[i], atol=1e-5)
        np.testing.assert_array_equal(mesh.faces, bm.f)


def _run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_importing_the_viewer_leaves_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM")}
    code = ("import os\nimport human_body_prior.mesh.mesh_viewer, human_body_prior.mesh.rendering\n"
            "print(os.environ.get('PYOPENGL_PLATFORM'))")
    res = _run_python(code, env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["None"]


@render
def test_egl_is_default_without_display():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                            "PYOPENGL_PLATFORM")}
    code = ("import os\nfrom human_body_prior.mesh.mesh_viewer import MeshViewer\n"
            "mv = MeshViewer(64, 48)\nprint(os.environ['PYOPENGL_PLATFORM'], mv.render().shape)")
    res = _run_python(code, env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["egl", "(48,", "64,", "3)"]


def test_missing_gl_error_names_packages():
    probe = _run_python("import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('OSMesa')"
                        " else 1)", dict(os.environ))
    if probe.returncode == 0:
        pytest.skip("OSMesa is installed here, so it cannot stand in for a missing GL")
    env = dict(os.environ, PYOPENGL_PLATFORM="osmesa")
    code = ("from human_body_prior.mesh.mesh_viewer import MeshViewer\n"
            "try:\n    MeshViewer(64, 48)\nexcept RuntimeError as e:\n    print(e)\n")
    res = _run_python(code, env)
    assert res.returncode == 0, res.stderr
    assert "libegl1 libgl1-mesa-dri" in res.stdout and "osmesa" in res.stdout


@render
def test_explicit_centers_move_the_body_in_its_tile():
    fig = stick_figure()
    c = 0.5 * (fig.vertices.min(axis=0) + fig.vertices.max(axis=0))
    verts = np.stack([fig.vertices, fig.vertices])
    imgs = render_vertices(verts, fig.faces, width=200, height=200,
                           centers=np.stack([c, c + (0.3, 0.0, 0.0)]))
    x_centered = np.nonzero(foreground(imgs[0, 0]))[1].mean()
    x_shifted = np.nonzero(foreground(imgs[0, 1]))[1].mean()
    assert abs(x_centered - 99.5) < 3 and x_shifted < x_centered - 10  # looking at a point to its right
    with pytest.raises(ValueError, match=r"centers must have shape \(2, 3\)"):
        render_vertices(verts, fig.faces, centers=np.zeros((1, 3)))
