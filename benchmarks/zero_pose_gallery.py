"""Real AMASS-convention poses on an open body model, front and side: does the zero pose mean
what SMPL-X's zero pose means (no dropped, shrugged or collapsed shoulders, hips or knees)?

    PYOPENGL_PLATFORM=egl python benchmarks/zero_pose_gallery.py --out /tmp/gallery.png \
        [--body-model support_data/body_models/smplx/SMPLX_NEUTRAL.npz] [--amass ../shared/amass_dev]

Each column is one frame of a take in ``--amass`` (pose_body = poses[:, 3:66]; root orientation 0,
or with ``--root`` the frame's pelvis tilt; zero betas); rows: front, side. The picture shows AMASS poses, so it stays outside the repository
(``../shared/amass_dev/README.md``: measurement only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from human_body_prior.body_model.body_model import BodyModel  # noqa: E402
from human_body_prior.geometry.rotations import (  # noqa: E402
    axis_angle_to_matrix,
    matrix_to_axis_angle,
)
from human_body_prior.mesh.rendering import (  # noqa: E402
    imagearray2file,
    render_vertices,
)

# (file under --amass, fraction of the take): standing, walking, lifting, crouching, running
FRAMES = [
    ("real_poses/accad_male1general_general_a1_stand.npz", 0.5),
    ("real_poses/accad_male1general_general_a4_look_around.npz", 0.6),
    ("real_poses/accad_male1general_general_a3_swing_arms_while_stand.npz", 0.3),
    ("paired_cmu/cmu_02_02_stageii.npz", 120),
    ("real_poses/accad_male1general_general_a2_sway.npz", 0.5),
    ("real_poses/accad_male1walking_walk_b10_walk_turn_left_45.npz", 0.3),
    ("real_poses/accad_s008_run1.npz", 0.4),
    ("real_poses/accad_male1general_general_a5_pick_up_box.npz", 0.5),
    ("real_poses/accad_male1general_general_a6_lift_box.npz", 0.5),
    ("real_poses/accad_male1general_general_a7_crouch.npz", 0.5),
    ("paired_cmu/cmu_06_03_stageii.npz", 0.5),
    ("paired_cmu/cmu_10_05_stageii.npz", 0.5),
]


def load_frames(amass: Path) -> np.ndarray:
    """(N, 66) root orientation and pose_body of the FRAMES (an int picks a frame, a float a fraction
    of the take)."""
    out = []
    for name, where in FRAMES:
        with np.load(amass / name) as take:
            poses = take["poses"]
        k = where if isinstance(where, int) else int(where * (len(poses) - 1))
        out.append(poses[k, :66])
    return np.stack(out)


def upright_root(root_orient: torch.Tensor) -> torch.Tensor:
    """(N, 3) AMASS root orientations (Z up) -> (N, 3) in the model's Y-up frame with the heading
    removed: the pelvis keeps its tilt, every body faces +Z."""
    z_to_y = axis_angle_to_matrix(torch.tensor([-np.pi / 2, 0.0, 0.0], dtype=root_orient.dtype))
    r = z_to_y @ axis_angle_to_matrix(root_orient)
    heading = torch.atan2(r[:, 0, 2], r[:, 2, 2])  # where the pelvis's forward axis points, about +Y
    unturn = axis_angle_to_matrix(torch.stack([torch.zeros_like(heading), -heading, torch.zeros_like(heading)], 1))
    return matrix_to_axis_angle(unturn @ r)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/zero_pose_gallery.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (keep it outside the repository)")
    parser.add_argument("--body-model", default=str(ROOT / "support_data/body_models/smplx/SMPLX_NEUTRAL.npz"))
    parser.add_argument("--amass", type=Path, default=ROOT.parent / "shared" / "amass_dev")
    parser.add_argument("--root", action="store_true", help="keep the pelvis tilt of each frame (heading removed)")
    parser.add_argument("--columns", type=int, nargs="+", help="draw only these frames (indices into FRAMES)")
    parser.add_argument("--size", type=int, default=360, help="tile height in pixels")
    args = parser.parse_args(argv)
    if not args.amass.is_dir():
        sys.exit(f"no AMASS dev folder at {args.amass}")
    poses = torch.from_numpy(load_frames(args.amass)).double()
    if args.columns:
        poses = poses[args.columns]
    root = upright_root(poses[:, :3]) if args.root else torch.zeros_like(poses[:, :3])
    bm = BodyModel(args.body_model, num_betas=10).double()
    with torch.no_grad():
        verts = bm(pose_body=poses[:, 3:], root_orient=root).v.numpy()
    tiles = render_vertices(verts, bm.f.numpy(), view_angles=(0.0, 90.0), width=args.size * 13 // 18,
                            height=args.size)
    imagearray2file(tiles[:, :, None], str(args.out))
    print(args.out)


if __name__ == "__main__":
    main()
