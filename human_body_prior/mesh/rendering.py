"""Turn body-model outputs into pictures and mesh files.

- ``render_vertices`` / ``render_smpl_params``: render a batch of bodies from several view angles
  about the vertical (+y) axis, each body centred in its tile, with one camera distance for the
  whole batch chosen from the bodies' bounding boxes (any vertex count).
- ``imagearray2file``: a (rows, cols, frames, H, W, 3) image array to a PNG grid or an animated GIF.
- ``smpl_params2ply``: one PLY mesh per body in a batch.
"""

import os

import numpy as np

from human_body_prior.files.atomic_io import atomic_write

BODY_COLOR = (0.70, 0.72, 0.78)
BACKGROUND = (1.0, 1.0, 1.0)


def _rotation_about_vertical(angle_deg) -> np.ndarray:
    """(3, 3) rotation by ``angle_deg`` degrees about +y (right-handed)."""
    import torch

    from human_body_prior.geometry.rotations import axis_angle_to_matrix

    aa = torch.tensor([0.0, np.radians(float(angle_deg)), 0.0], dtype=torch.float64)
    return axis_angle_to_matrix(aa).numpy()


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def image_grid(frame_tiles):
    """(rows, cols, H, W, 3) uint8 -> (rows*H, cols*W, 3) uint8."""
    rows, cols, H, W, C = frame_tiles.shape
    return frame_tiles.transpose(0, 2, 1, 3, 4).reshape(rows * H, cols * W, C)


def imagearray2file(img_array, outpath, fps=10):
    """Write a (rows, cols, frames, H, W, 3) image array as a tiled picture.

    One frame: a single grid image (format from the extension, e.g. .png). Several frames: an
    animated GIF (``outpath`` must end in .gif), ``fps`` frames per second, looping forever.
    Pixels are uint8 in [0, 255] or floats in [0, 1]. Returns ``outpath``.
    """
    from PIL import Image

    img = _to_numpy(img_array)
    if img.ndim != 6 or img.shape[-1] not in (3, 4):
        raise ValueError(f"img_array must have shape (rows, cols, frames, H, W, 3), got {img.shape}")
    if 0 in img.shape:
        raise ValueError(f"img_array is empty: shape {img.shape}")
    if img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f"img_array must be uint8 or float in [0, 1], got {img.dtype}")
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = img[..., :3]
    frames = [image_grid(img[:, :, t]) for t in range(img.shape[2])]

    ext = os.path.splitext(outpath)[1].lower()
    if len(frames) > 1 and ext != ".gif":
        raise ValueError(f"{len(frames)} frames need a .gif output path, got {outpath}")
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ValueError(f"unknown image extension {ext!r} for {outpath}")

    def write(tmp):
        if len(frames) == 1:
            Image.fromarray(frames[0]).save(tmp, format=fmt)
            return
        # one shared adaptive palette keeps colours steady across the animation
        palette_src = Image.fromarray(np.concatenate(frames[:: max(1, len(frames) // 8)], axis=0))
        palette = palette_src.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        pil_frames = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        pil_frames[0].save(tmp, format="GIF", save_all=True, append_images=pil_frames[1:],
                           duration=int(round(1000.0 / fps)), loop=0, optimize=False)

    atomic_write(outpath, write)
    return outpath


def frame_camera_distance(half_extents, yfov, aspect, margin=1.08):
    """Camera distance from the box centre so a box of ``half_extents`` (hx, hy, hz) fits the view.

    The camera looks down -z at the box centre; yfov in radians, aspect = width / height.
    """
    hx, hy, hz = (float(h) for h in half_extents)
    tan_y = np.tan(yfov / 2.0)
    tan_x = aspect * tan_y
    return hz + margin * max(hy / tan_y, hx / tan_x, 1e-6)


def render_vertices(vertices, faces, view_angles=(0.0,), width=400, height=400, center_each=True,
                    color=BODY_COLOR, bg_color=BACKGROUND, viewer=None, centers=None):
    """Render bodies from several view angles about the vertical (+y) axis.

    vertices: (B, V, 3) in metres (any V), faces: (F, 3) vertex indices.
    view_angles: degrees; 0 shows a body in its rest frame from the front (+z side).
    center_each: centre every body in its tile (True) or use one centre for the whole batch (for
    animations, so the body does not jitter). centers: explicit (B, 3) centres, overriding center_each.
    color: RGB in [0, 1], one (3,) for the whole body or one per vertex (V, 3).
    Returns (len(view_angles), B, height, width, 3) uint8.
    """
    import trimesh

    from human_body_prior.mesh.mesh_viewer import MeshViewer, look_at_pose

    verts = _to_numpy(vertices).astype(np.float64)
    if verts.ndim == 2:
        verts = verts[None]
    if verts.ndim != 3 or verts.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (B, V, 3), got {verts.shape}")
    faces = _to_numpy(faces).astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= verts.shape[1]):
        raise ValueError(f"faces index vertices 0..{faces.max()} but there are {verts.shape[1]}")
    if not np.isfinite(verts).all():
        raise ValueError("vertices contain NaN or inf")
    col = np.asarray(color, dtype=np.float64)
    if col.shape not in ((3,), (verts.shape[1], 3)):
        raise ValueError(f"color must have shape (3,) or ({verts.shape[1]}, 3), got {col.shape}")
    rgba = np.concatenate([np.broadcast_to(col, (verts.shape[1], 3)), np.ones((verts.shape[1], 1))], 1)

    if centers is not None:
        centers = _to_numpy(centers).astype(np.float64)
        if centers.shape != (verts.shape[0], 3):
            raise ValueError(f"centers must have shape ({verts.shape[0]}, 3), got {centers.shape}")
    elif center_each:
        centers = 0.5 * (verts.min(axis=1) + verts.max(axis=1))  # (B, 3)
    else:
        centers = np.broadcast_to(0.5 * (verts.min(axis=(0, 1)) + verts.max(axis=(0, 1))),
                                  (verts.shape[0], 3))
    posed = {}
    for a in view_angles:
        R = _rotation_about_vertical(a)
        posed[a] = (verts - centers[:, None]) @ R.T

    own_viewer = viewer is None
    if own_viewer:
        viewer = MeshViewer(width=width, height=height, use_offscreen=True, bg_color=bg_color)
    H, W = viewer.height, viewer.width
    # one distance for every view and body: the farthest any of them needs
    dist = max(frame_camera_distance(np.abs(p).max(axis=(0, 1)), viewer.yfov, W / H)
               for p in posed.values())
    viewer.update_camera_pose(look_at_pose((0.0, 0.0, dist), (0.0, 0.0, 0.0)))
    out = np.zeros((len(view_angles), verts.shape[0], H, W, 3), dtype=np.uint8)
    try:
        for i, a in enumerate(view_angles):
            for b in range(verts.shape[0]):
                mesh = trimesh.Trimesh(posed[a][b], faces, process=False,
                                       vertex_colors=(rgba * 255).astype(np.uint8))
                viewer.set_static_meshes([mesh])
                out[i, b] = viewer.render()
    finally:
        if own_viewer:
            viewer.close_viewer()
    return out


def _body_output(bm, body_parms):
    import torch

    params = {}
    for key, value in body_parms.items():
        if value is None:
            continue
        if not torch.is_tensor(value):
            value = torch.as_tensor(np.asarray(value))
        params[key] = value
    if "pose_body" in params:
        pb = params["pose_body"]
        if pb.shape[-1] == 3 and pb.dim() >= 2:  # (N, 1, 21, 3) / (N, 21, 3) -> (N, 63)
            params["pose_body"] = pb.reshape(pb.shape[0], -1)
    with torch.no_grad():
        out = bm(**params)
    return out


def render_smpl_params(bm, body_parms, view_angles=(0.0,), width=400, height=400, center_each=True,
                       color=BODY_COLOR, bg_color=BACKGROUND, group_size=None):
    """Run ``bm`` on a batch of parameters and render every body from each view angle.

    body_parms: dict of BodyModel.forward keyword arguments with a batch dimension B, e.g.
    ``{'pose_body': (B, 63)}``; pose_body may also be (B, 1, 21, 3) as VPoser outputs it.
    group_size: centre consecutive groups of this many bodies together (e.g. the frames of one
    animation), instead of each body alone (center_each=True) or the whole batch (False).
    Returns (len(view_angles), B, height, width, 3) uint8.
    """
    out = _body_output(bm, body_parms)
    centers = None
    if group_size is not None:
        verts = _to_numpy(out.v)
        if verts.shape[0] % int(group_size):
            raise ValueError(f"batch of {verts.shape[0]} bodies is not a multiple of group_size={group_size}")
        groups = verts.reshape(-1, int(group_size) * verts.shape[1], 3)
        centers = np.repeat(0.5 * (groups.min(axis=1) + groups.max(axis=1)), int(group_size), axis=0)
    return render_vertices(out.v, _faces_of(bm, out), view_angles=view_angles, width=width,
                           height=height, center_each=center_each, color=color, bg_color=bg_color,
                           centers=centers)


def _faces_of(bm, out=None):
    faces = getattr(out, "f", None) if out is not None else None
    if faces is None:
        faces = getattr(bm, "f", None)
    if faces is None:
        raise ValueError("body model output has no faces (.f)")
    return _to_numpy(faces)


def smpl_params2ply(bm, out_dir, pose_body, pose_hand=None, trans=None, betas=None,
                    root_orient=None):
    """Write one PLY mesh per body: ``out_dir/000.ply``, ``001.ply``, ...

    pose_body: (N, 63) or (N, 1, 21, 3) axis-angle in radians; other arguments as BodyModel.forward.
    Returns the list of written paths.
    """
    import trimesh

    out = _body_output(bm, dict(pose_body=pose_body, pose_hand=pose_hand, trans=trans, betas=betas,
                                root_orient=root_orient))
    verts = _to_numpy(out.v)
    faces = _faces_of(bm, out)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, v in enumerate(verts):
        path = os.path.join(out_dir, f"{i:03d}.ply")
        mesh = trimesh.Trimesh(v, faces, process=False)
        atomic_write(path, lambda tmp: mesh.export(tmp, file_type="ply"))
        paths.append(path)
    return paths
