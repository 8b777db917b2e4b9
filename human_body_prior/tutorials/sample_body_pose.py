"""Sample novel body poses from a VPoser and look at them.

Command line (the defaults are the shipped open body model and the shipped open VPoser v1;
``--vposer-version 2`` uses the shipped open VPoser v2)::

    python -m human_body_prior.tutorials.sample_body_pose [--num-samples N] [--out DIR]
        [--vposer-version 1|2] [--expr-dir D] [--bm-path P] [--seed S] [--interpolate] [--save-ply]

writes ``DIR/vposer_samples.png`` (rows: views at 0, 90 and -90 degrees about the vertical axis;
columns: samples) with ``vposer_samples.npz`` (the sampled ``pose_body``, (N, 63) axis-angle in
radians), and with ``--interpolate`` ``DIR/vposer_interpolation.gif``: bodies decoded from
poZ_inp = alpha * poZ_1 + (1 - alpha) * poZ_2 as alpha goes from 0 to 1 and back. A VPoser v2 writes
``vposer_v2_samples.*`` and ``vposer_v2_interpolation.gif``, so both generations fit in one folder.
"""

import os
import secrets
import sys

import numpy as np
import torch

from human_body_prior import cli
from human_body_prior.files.atomic_io import save_npz_atomic
from human_body_prior.mesh.rendering import (
    imagearray2file,
    render_smpl_params,
    smpl_params2ply,
)
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.any_vposer import decode_aa, model_version, sample_aa

_POSE_BODY_WIDTH = 3 * NUM_POSE_BODY_JOINTS  # (N, 63) axis-angle

VIEW_ANGLES = (0.0, 90.0, -90.0)
TILE_SIZE = (240, 320)  # width, height of one body picture in pixels


def _bm_device_dtype(bm):
    ref = getattr(bm, "v_template", None)
    if torch.is_tensor(ref):
        return ref.device, ref.dtype
    return torch.device("cpu"), torch.float32


def _as_pose_body(pose_body):
    """(N, 1, 21, 3), (N, 21, 3) or (N, 63) -> (N, 63)."""
    pose_body = torch.as_tensor(pose_body)
    if pose_body.dim() < 2 or pose_body[0].numel() != _POSE_BODY_WIDTH:
        raise ValueError(f"pose_body must have shape (N, 63) or (N, 1, 21, 3), got {tuple(pose_body.shape)}")
    return pose_body.reshape(pose_body.shape[0], _POSE_BODY_WIDTH)


def _replace_ext(path, ext):
    return os.path.splitext(path)[0] + ext


def dump_vposer_samples(bm, pose_body, out_imgpath, save_ply=False, view_angles=VIEW_ANGLES,
                        tile_size=TILE_SIZE):
    """Render body poses to a grid picture and save them.

    bm: a BodyModel (any vertex count). pose_body: (N, 1, 21, 3) or (N, 63) axis-angle, radians.
    Writes ``out_imgpath`` (rows: ``view_angles`` in degrees about the vertical axis; columns: the
    N poses), the poses as ``pose_body`` (N, 63) in the .npz beside it and, with save_ply, one PLY
    per pose in the folder ``<out_imgpath without extension>_ply``. Returns out_imgpath.
    """
    device, dtype = _bm_device_dtype(bm)
    pose_body = _as_pose_body(pose_body).detach().to(device=device, dtype=dtype)
    images = render_smpl_params(bm, {"pose_body": pose_body}, view_angles=view_angles,
                                width=tile_size[0], height=tile_size[1])
    imagearray2file(images[:, :, None], out_imgpath)
    save_npz_atomic(_replace_ext(out_imgpath, ".npz"), {"pose_body": pose_body.cpu().numpy()})
    if save_ply:
        smpl_params2ply(bm, _replace_ext(out_imgpath, "_ply"), pose_body)
    return out_imgpath


def _load_vposer_for(expr_dir, bm, vp_model):
    """A loaded VPoser (v1 or v2) as is, or the folder's: either layout with vp_model 'snapshot'."""
    from human_body_prior.priors.any_vposer import load_any_vposer
    from human_body_prior.priors.experiment import load_vposer

    if isinstance(expr_dir, torch.nn.Module):  # an already loaded VPoser
        vposer = expr_dir
    elif vp_model == "snapshot":
        vposer, _ = load_any_vposer(expr_dir)
    else:
        vposer, _ = load_vposer(expr_dir, vp_model=vp_model)
    device, dtype = _bm_device_dtype(bm)
    return vposer.to(device=device, dtype=dtype).eval()


def sample_vposer(expr_dir, bm, num_samples=5, vp_model="snapshot", out_dir="vposer_samples",
                  seed=None, save_ply=False, view_angles=VIEW_ANGLES, tile_size=TILE_SIZE, name="vposer_samples"):
    """Draw ``num_samples`` poses from the VPoser in ``expr_dir`` and render them with ``bm``.

    expr_dir: VPoser experiment folder (or a loaded VPoser). seed: integer for repeatable samples.
    Writes ``out_dir/<name>.png`` and ``.npz`` (see dump_vposer_samples); returns the PNG path.
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    vposer = _load_vposer_for(expr_dir, bm, vp_model)
    pose_body = sample_aa(vposer, int(num_samples), seed=seed)
    out_imgpath = os.path.join(out_dir, f"{name}.png")
    return dump_vposer_samples(bm, pose_body, out_imgpath, save_ply=save_ply, view_angles=view_angles,
                               tile_size=tile_size)


def interpolation_alphas(num_frames):
    """alpha from 0 to 1 in ``num_frames`` steps and back (without repeating the ends): a loop."""
    if int(num_frames) < 2:
        raise ValueError(f"num_frames must be at least 2, got {num_frames}")
    up = np.linspace(0.0, 1.0, int(num_frames))
    return np.concatenate([up, up[-2:0:-1]])


def interpolate_vposer(expr_dir, bm, out_gifpath, num_sequences=3, num_frames=16, vp_model="snapshot",
                       seed=None, view_angles=(0.0,), tile_size=(160, 220), fps=12):
    """Render latent interpolations poZ_inp = alpha * poZ_1 + (1 - alpha) * poZ_2 to an animated GIF.

    Each of ``num_sequences`` columns has its own pair (poZ_1, poZ_2) drawn from N(0, I) (repeatable
    with ``seed``); rows are ``view_angles``; alpha runs 0 -> 1 -> 0 over 2 * num_frames - 2 frames.
    Returns (out_gifpath, poZ_inp, pose_body): latent codes (num_sequences, frames, latentD) and the
    decoded poses (num_sequences, frames, 63) axis-angle, on the CPU.
    """
    vposer = _load_vposer_for(expr_dir, bm, vp_model)
    device, dtype = _bm_device_dtype(bm)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(secrets.randbits(63) if seed is None else int(seed))
    z = torch.randn(2, int(num_sequences), vposer.latentD, generator=gen, dtype=torch.float64)
    alphas = torch.as_tensor(interpolation_alphas(num_frames), dtype=torch.float64)
    poZ_inp = alphas[None, :, None] * z[0][:, None] + (1.0 - alphas[None, :, None]) * z[1][:, None]
    S, T = poZ_inp.shape[:2]
    with torch.no_grad():
        pose = decode_aa(vposer, poZ_inp.reshape(S * T, -1).to(device=device, dtype=dtype))
    pose_body = pose.reshape(S * T, _POSE_BODY_WIDTH)
    images = render_smpl_params(bm, {"pose_body": pose_body}, view_angles=view_angles,
                                width=tile_size[0], height=tile_size[1], group_size=T)
    images = images.reshape(len(view_angles), S, T, *images.shape[2:])
    imagearray2file(images, out_gifpath, fps=fps)
    return out_gifpath, poZ_inp.to(dtype), pose_body.reshape(S, T, _POSE_BODY_WIDTH).cpu()


def build_parser():
    p = cli.ArgumentParser(
        prog="python -m human_body_prior.tutorials.sample_body_pose",
        description="Sample body poses from VPoser and render them to a picture grid "
                    "(rows: views at 0, 90, -90 degrees; columns: samples).")
    p.add_argument("--num-samples", type=cli.positive_int, default=5, help="number of poses (default 5)")
    p.add_argument("--out", default="vposer_samples", help="output folder (default ./vposer_samples)")
    p.add_argument("--expr-dir", default=None,
                   help="VPoser experiment folder, 2019 or V02 layout (default: the shipped open VPoser)")
    p.add_argument("--vposer-version", type=int, choices=(1, 2), default=1,
                   help="which shipped open VPoser to use when --expr-dir is not given (default 1)")
    p.add_argument("--bm-path", default=None,
                   help="body model file .npz/.pkl (default: the shipped open SMPL-X neutral model)")
    p.add_argument("--seed", type=cli.seed, default=None, help="random seed (default: a fresh one, printed)")
    p.add_argument("--interpolate", action="store_true",
                   help="also write a latent interpolation GIF (vposer_interpolation.gif)")
    p.add_argument("--num-frames", type=cli.positive_int, default=16,
                   help="interpolation steps from one pose to the other (default 16)")
    p.add_argument("--save-ply", action="store_true", help="also write one PLY mesh per sample")
    p.add_argument("--device", type=cli.device, default="cpu", help="torch device (default cpu)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from human_body_prior import default_body_model_path, default_vposer_dir
    from human_body_prior.body_model.body_model import BodyModel

    bm_path = args.bm_path or default_body_model_path("smplx", "neutral")
    expr_dir = args.expr_dir or default_vposer_dir(version=args.vposer_version)
    seed = args.seed if args.seed is not None else secrets.randbelow(2 ** 31)
    bm = BodyModel(bm_path).to(args.device)
    vposer = _load_vposer_for(expr_dir, bm, "snapshot")
    prefix = "vposer" if model_version(vposer) == 1 else "vposer_v2"  # v1 and v2 pictures side by side
    png = sample_vposer(vposer, bm, num_samples=args.num_samples, out_dir=args.out, seed=seed,
                        save_ply=args.save_ply, name=f"{prefix}_samples")
    print(f"seed {seed}", file=sys.stderr)
    print(os.path.abspath(png))
    if args.interpolate:
        gif, _, _ = interpolate_vposer(vposer, bm, os.path.join(args.out, f"{prefix}_interpolation.gif"),
                                       num_frames=args.num_frames, seed=seed)
        print(os.path.abspath(gif))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
