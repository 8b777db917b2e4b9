"""Composite preview of the shipped SMPL-X files (docs/open_body_model.png).

    PYOPENGL_PLATFORM=egl python -m human_body_prior.open_model.preview [--out docs/open_body_model.png]

Rows: neutral, female, male. Columns: beta0 = -2, 0, +2 (front), beta0 = 0 from the side,
then a few poses (with expression 0 at +1.5) and the walk from the side. One scale for all tiles. Posing uses a small numpy LBS over the file's own arrays.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from human_body_prior import cli
from human_body_prior.files.atomic_io import atomic_write
from human_body_prior.model_types.joints import SMPLX_JOINT_NAMES
from human_body_prior.open_model.rest_pose import skin

_IDX = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}


def _pose(**aa) -> np.ndarray:
    local = np.tile(np.eye(3), (len(SMPLX_JOINT_NAMES), 1, 1))
    for name, vec in aa.items():
        local[_IDX[name]] = Rotation.from_rotvec(vec).as_matrix()
    return local


POSES = {
    "arms down": _pose(left_shoulder=[0, 0, -1.2], right_shoulder=[0, 0, 1.2]),
    "walk": _pose(left_hip=[-0.5, 0, 0], left_knee=[0.3, 0, 0], right_hip=[0.35, 0, 0],
                  right_knee=[0.7, 0, 0], left_shoulder=[0.4, 0, -1.25], right_shoulder=[-0.4, 0, 1.25],
                  left_elbow=[0, -0.6, 0], right_elbow=[0, 0.6, 0]),
    "sit + wave": _pose(left_hip=[-1.5, 0, 0], right_hip=[-1.5, 0, 0], left_knee=[1.5, 0, 0],
                        right_knee=[1.5, 0, 0], left_shoulder=[0, 0, -1.3], right_shoulder=[0, 0, -0.6],
                        right_elbow=[0, 1.8, 0], jaw=[0.35, 0, 0],
                        **{f"right_{f}{k}": [0, 0, -0.3] for f in ("index", "middle", "ring", "pinky")
                           for k in (1, 2, 3)}),
}


def _render(verts, faces, view, center, size=(200, 300), half_height=1.05):
    """RGB tile (H, W, 3) of an orthographic view; fixed scale so heights compare across tiles."""
    import pyrender
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=False)
    scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[0.35, 0.35, 0.35])
    mat = pyrender.MetallicRoughnessMaterial(baseColorFactor=[0.82, 0.68, 0.58, 1.0], roughnessFactor=0.8)
    scene.add(pyrender.Mesh.from_trimesh(mesh, material=mat, smooth=True))
    cam_dir = np.array([0, 0, 1.0]) if view == "front" else np.array([1.0, 0, 0])
    rot = np.eye(3) if view == "front" else Rotation.from_rotvec([0, np.pi / 2, 0]).as_matrix()
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = center + 4.0 * cam_dir
    scene.add(pyrender.OrthographicCamera(xmag=half_height * size[0] / size[1], ymag=half_height), pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
    key = np.eye(4)
    key[:3, :3] = Rotation.from_rotvec([-0.5, 0.6, 0]).as_matrix()
    scene.add(pyrender.DirectionalLight(intensity=2.0), pose=key)
    r = pyrender.OffscreenRenderer(*size)
    color, depth = r.render(scene)
    r.delete()
    color = color.copy()
    color[depth == 0] = 255
    return color


def composite(model_dir: Path) -> np.ndarray:
    rows = []
    for gender in ("neutral", "female", "male"):
        if not (model_dir / "smplx" / f"SMPLX_{gender.upper()}.npz").is_file():
            continue
        with np.load(model_dir / "smplx" / f"SMPLX_{gender.upper()}.npz") as d:
            v0, f = d["v_template"], d["f"].astype(np.int64)
            dirs, w, reg = d["shapedirs"].astype(np.float64), d["weights"], d["J_regressor"]
        center = np.array([0.0, 0.5 * (v0[:, 1].min() + v0[:, 1].max()), 0.0])
        tiles = []
        for b0 in (-2.0, 0.0, 2.0):
            tiles.append(_render(v0 + b0 * dirs[:, :, 0], f, "front", center, size=(360, 300)))
        tiles.append(_render(v0, f, "side", center))
        for local in POSES.values():
            v = v0 + 1.5 * dirs[:, :, 300]  # a visible expression
            posed, _ = skin(v, w, reg @ v, local)
            tiles.append(_render(posed, f, "front", center))
        tiles.append(_render(skin(v0, w, reg @ v0, POSES["walk"])[0], f, "side", center))
        rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise FileNotFoundError(errno.ENOENT, "no smplx/SMPLX_{NEUTRAL,FEMALE,MALE}.npz under", str(model_dir))
    return np.concatenate(rows, axis=0)


def main(argv=None) -> None:
    parser = cli.ArgumentParser(description="render docs/open_body_model.png")
    parser.add_argument("--models", type=Path, default=Path("support_data/body_models"))
    parser.add_argument("--out", type=Path, default=Path("docs/open_body_model.png"))
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import PIL.Image

    img = composite(args.models)
    atomic_write(args.out, lambda tmp: PIL.Image.fromarray(img).save(tmp, format="PNG", optimize=True))
    print(f"wrote {args.out} {img.shape[1]}x{img.shape[0]} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    sys.exit(cli.run(main))
