"""Fit a held-out mocap take from noisy, incomplete 3D joints, with and without the VPoser prior,
and draw the fitted bodies beside the targets.

    python -m human_body_prior.fitting.examples.fit_heldout_take TAKE [--bm-path P] [--expr-dir D]
        [--frames 6] [--noise-mm 20] [--missing 0.3] [--out docs/fitting_heldout.png]

TAKE: an AMASS-style .npz take (``poses`` (N, >= 66)) or a VPoser data split folder (pose.pt,
root_orient.pt). The true bodies are the take's poses on the body model (betas 0); the targets are
their 22 body joints with Gaussian noise and joints missing at random. Each column of the figure is a
frame: the VPoser fit, then the fit without a prior (with --mesh, each followed by a row of the
rendered fitted meshes, seen from the same side). Grey: true skeleton; coloured: the fitted
skeleton; green dots: the noisy targets given to the fit; red crosses: true positions of the joints
that were missing.
"""

import sys

import numpy as np
import torch

import human_body_prior as hbp
from human_body_prior import cli
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.files.atomic_io import atomic_write
from human_body_prior.fitting import BodyFitter, JointTargets3D
from human_body_prior.fitting.heldout import corrupt_joints, load_poses
from human_body_prior.model_types.joints import NUM_BODY_JOINTS
from human_body_prior.priors.experiment import load_vposer


def view_frame(truth):
    """A proper rotation (3, 3) whose third row is the up direction of the bodies (pelvis to head,
    rounded to the nearest axis: y for the model's rest frame, z for AMASS takes)."""
    up_vec = (truth[:, 15] - truth[:, 0]).mean(0)
    axis = int(np.argmax(np.abs(up_vec)))
    up = np.zeros(3)
    up[axis] = np.sign(up_vec[axis])
    side = np.zeros(3)
    side[(axis + 1) % 3] = 1.0
    depth = np.cross(up, side)
    return np.stack([side, depth, up])


def _plot_skeleton(ax, joints, parents, color, lw=2.0, alpha=1.0):
    for j in range(1, NUM_BODY_JOINTS):
        seg = joints[[parents[j], j]]
        ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=color, lw=lw, alpha=alpha)


def render_meshes(verts, faces, R, width=220, height=280):
    """Fitted meshes (K, V, 3) -> images (K, H, W, 3) seen like the skeleton plots (up = R's third row,
    camera on the -depth side), with the project's headless renderer; None if it is unavailable."""
    try:
        from human_body_prior.mesh.rendering import render_vertices
    except ImportError:
        return None
    to_view = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]) @ R  # plot (side, depth, up) -> renderer (x, y up, z to camera)
    try:
        return render_vertices(verts @ to_view.T, faces, view_angles=(0.0,), width=width, height=height)[0]
    except Exception as e:  # no OpenGL context (EGL/OSMesa) on this machine
        print(f"mesh rendering skipped: {e}")
        return None


def draw(out_png, rows, truth, targets, conf, parents, titles, faces=None, dpi=80):
    """rows: [(label, fitted joints (K, 22, 3), colour, fitted vertices (K, V, 3) or None)],
    truth/targets (K, 22, 3), conf (K, 22). Each method gets a row of skeleton plots and, when
    vertices and faces are given and rendering works, a row of rendered fitted meshes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = truth.shape[0]
    R = view_frame(truth)
    panels = []  # (kind, row)
    for row in rows:
        panels.append(("skeleton", row))
        if faces is not None and row[3] is not None:
            images = render_meshes(row[3], faces, R)
            if images is not None:
                panels.append(("mesh", row[:3] + (images,)))
    heights = [3.0 if kind == "skeleton" else 2.6 for kind, _ in panels]
    fig = plt.figure(figsize=(2.4 * K, sum(heights)), dpi=dpi)
    grid = fig.add_gridspec(len(panels), K, height_ratios=heights)
    for p, (kind, row) in enumerate(panels):
        label, fit, color = row[:3]
        for k in range(K):
            if kind == "mesh":
                ax = fig.add_subplot(grid[p, k])
                ax.imshow(row[3][k])
                ax.set_axis_off()
                continue
            ax = fig.add_subplot(grid[p, k], projection="3d")
            centre = truth[k, 0]
            t, f, g = ((x - centre) @ R.T for x in (truth[k], fit[k], targets[k]))
            _plot_skeleton(ax, t, parents, "0.6", lw=3.0, alpha=0.7)
            _plot_skeleton(ax, f, parents, color, lw=1.6)
            vis, miss = conf[k] > 0, conf[k] == 0
            ax.scatter(g[vis, 0], g[vis, 1], g[vis, 2], s=8, color="tab:green")
            ax.scatter(t[miss, 0], t[miss, 1], t[miss, 2], s=25, color="tab:red", marker="x")
            err = np.linalg.norm(fit[k] - truth[k], axis=-1).mean() * 1000
            ax.set_title(f"{label}: {err:.0f} mm" + (f"\n{titles[k]}" if p == 0 and titles else ""), fontsize=8)
            ax.set_xlim(-0.9, 0.9), ax.set_ylim(-0.9, 0.9), ax.set_zlim(-1.05, 0.75)
            ax.set_box_aspect((1, 1, 1), zoom=1.35)
            ax.view_init(elev=10, azim=-90)
            ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.93, wspace=0, hspace=0.08)
    try:
        return atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def main(argv=None):
    ap = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("take")
    ap.add_argument("--bm-path", default=None)
    ap.add_argument("--expr-dir", default=None)
    ap.add_argument("--frames", type=cli.positive_int, default=6)
    ap.add_argument("--first", type=cli.nonnegative_int, default=None, help="first frame of the take to use (default: 10%% in)")
    ap.add_argument("--step", type=cli.positive_int, default=None, help="frames between drawn frames (default: spread)")
    ap.add_argument("--noise-mm", type=cli.finite_float, default=20.0)
    ap.add_argument("--missing", type=cli.finite_float, default=0.3)
    ap.add_argument("--prior-weight", type=float, default=None)
    ap.add_argument("--seed", type=cli.seed, default=0)
    ap.add_argument("--mesh", action="store_true", help="also render the fitted meshes (headless OpenGL)")
    ap.add_argument("--out", default="docs/fitting_heldout.png")
    args = ap.parse_args(argv)
    if args.noise_mm < 0:
        ap.error(f"--noise-mm must be >= 0, got {args.noise_mm:g}")
    if not 0 <= args.missing < 1:
        ap.error(f"--missing is the share of dropped joints, in [0, 1); got {args.missing:g}")

    bm = BodyModel(args.bm_path or hbp.default_body_model_path())
    vposer, _ = load_vposer(args.expr_dir or hbp.default_vposer_dir(), verbose=False)
    poses = load_poses(args.take)
    n = len(poses["pose_body"])
    first = n // 10 if args.first is None else args.first  # skip a converter's rest pose at the start
    step = args.step or max(1, (n - 2 * first) // args.frames)
    idx = np.arange(first, n, step)[:args.frames]
    with torch.no_grad():
        truth = bm(root_orient=torch.as_tensor(poses["root_orient"][idx], dtype=torch.float32),
                   pose_body=torch.as_tensor(poses["pose_body"][idx], dtype=torch.float32)).Jtr[:, :NUM_BODY_JOINTS]
    truth = truth.numpy().astype(np.float64)
    targets, conf = corrupt_joints(truth, args.noise_mm / 1000, args.missing, args.seed)

    rows = []
    for method, label, color in (("vposer", "VPoser prior", "tab:blue"), ("none", "no prior", "tab:orange")):
        fitter = BodyFitter(bm, pose_prior=method, vposer=vposer,
                            prior_weight=args.prior_weight if method == "vposer" else None)
        r = fitter.fit(JointTargets3D(targets, conf), write_back=False)
        verts = None
        if args.mesh:
            with torch.no_grad():
                verts = bm(root_orient=r.root_orient, pose_body=r.pose_body, trans=r.trans, betas=r.betas).v.numpy()
        rows.append((label, r.joints[:, :NUM_BODY_JOINTS].numpy(), color, verts))
        err = np.linalg.norm(rows[-1][1] - truth, axis=-1).mean() * 1000
        print(f"{label}: mean joint error {err:.1f} mm over {len(idx)} frames")
    titles = [f"frame {i}" for i in idx]
    faces = bm.f.numpy() if args.mesh else None
    print("wrote", draw(args.out, rows, truth, targets, conf, bm.parents, titles, faces))


if __name__ == "__main__":
    sys.exit(cli.run(main))
