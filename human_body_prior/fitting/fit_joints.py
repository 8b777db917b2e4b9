"""Command line: fit bodies to 3D joints, with or without the VPoser prior.

    python -m human_body_prior.fitting.fit_joints IN.npz OUT.npz [--no-prior | --l2-pose]
        [--prior-weight W] [--bm-path P] [--expr-dir D] [--fit-betas] [--smooth-weight S] [--batch-size N]
        [--device D]

IN.npz: ``joints`` (N, J, 3) in metres in the body model's joint order (J >= 22: the body joints
first, SMPL-X order), optional ``conf`` (N, J) (0 = missing; missing joints may be NaN).
OUT.npz (written atomically): ``root_orient`` (N, 3), ``pose_body`` (N, 63), ``trans`` (N, 3),
``betas`` (N, num_betas), ``poZ_body`` (N, latentD) with the prior, ``joints`` (N, J, 3) of the
fitted bodies, ``data_loss`` (N,) final weighted squared error per frame (m^2), and ``pose_prior``.
With ``--smooth-weight S`` the frames are a motion in time order: each batch of frames is fitted as one
clip with the joints' squared acceleration weighted by S (fitting/engine.py; batches are smoothed
separately, so pass a batch size of at least the clip's length to smooth it as a whole).
"""

import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from human_body_prior import cli
from human_body_prior.files.atomic_io import check_writable, save_npz_atomic
from human_body_prior.fitting.engine import DEFAULT_PRIOR_WEIGHT, BodyFitter, Stage
from human_body_prior.fitting.observations import NUM_BODY_JOINTS, JointTargets3D


def load_targets(path):
    """IN.npz -> (joints (N, J, 3) float64, conf (N, J) or None), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    if not zipfile.is_zipfile(path):  # numpy would call a text file 'pickled data'
        with open(path, "rb") as fh:
            head = fh.read(16)
        raise ValueError(f"{path}: not an .npz archive (a zip of .npy arrays); the file starts with {head!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "joints" not in data:
                raise ValueError(f"{path}: no 'joints' array (N, J, 3); it has {sorted(data.files)}")
            joints = np.asarray(data["joints"])
            conf = np.asarray(data["conf"]) if "conf" in data else None
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[1] < NUM_BODY_JOINTS or joints.shape[0] == 0:
        raise ValueError(f"{path}: 'joints' must have shape (N, J, 3) with N >= 1 and J >= {NUM_BODY_JOINTS} "
                         f"(the body joints in SMPL-X order first), got {joints.shape}")
    if conf is not None and conf.shape != joints.shape[:2]:
        raise ValueError(f"{path}: 'conf' must have shape {joints.shape[:2]} (N, J), got {conf.shape}")
    # validate the whole file up front (NaNs, negative or all-zero confidences)
    try:
        JointTargets3D(joints, conf)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return joints, conf


def build_fitter(pose_prior, bm_path=None, expr_dir=None, prior_weight=None, device="cpu", fit_betas=False,
                 iterations=None, optimizer="lbfgs", robust_sigma=None, smooth_weight=0.0):
    """BodyFitter on the open (or given) body model, with the shipped (or given) VPoser."""
    import human_body_prior as hbp
    bm_path = bm_path or hbp.default_body_model_path()
    if not Path(bm_path).is_file():
        raise FileNotFoundError(f"body model file {bm_path} not found (pass --bm-path)")
    if pose_prior == "vposer":
        from human_body_prior.body_model.body_model_vposer import BodyModelWithPoser
        from human_body_prior.priors import PRIOR_NAMES

        expr_dir = expr_dir or hbp.default_vposer_dir()
        if not Path(expr_dir).is_dir() and expr_dir not in PRIOR_NAMES:
            raise FileNotFoundError(f"VPoser experiment folder {expr_dir} not found (pass --expr-dir)")
        bm = BodyModelWithPoser(poser_type="vposer", smpl_exp_dir=expr_dir, bm_path=bm_path)
    else:
        from human_body_prior.body_model.body_model import BodyModel
        bm = BodyModel(bm_path)
    bm = bm.to(device)
    stages = None
    if iterations is not None:  # Stage refuses iterations < 1
        stages = [Stage(10.0, iterations), Stage(1.0, iterations)]
    return BodyFitter(bm, pose_prior=pose_prior, prior_weight=prior_weight, optimizer=optimizer, stages=stages,
                      fit_betas=fit_betas, smooth_weight=smooth_weight), robust_sigma


def fit_arrays(fitter, joints, conf=None, batch_size=256, robust_sigma=None, verbose=False) -> dict:
    """Fit (N, J, 3) joints in chunks of batch_size frames -> dict of numpy outputs (see module doc)."""
    N, J = joints.shape[:2]
    num_model = fitter.joints_model.num_joints
    if J > num_model:
        raise ValueError(f"joints have {J} columns but the {fitter.joints_model.model_type} model has {num_model} joints")
    out = {}
    for start in range(0, N, batch_size):
        sl = slice(start, min(N, start + batch_size))
        obs = JointTargets3D(joints[sl], None if conf is None else conf[sl], robust_sigma=robust_sigma)
        try:
            r = fitter.fit(obs, write_back=False).as_numpy()
        except FloatingPointError as e:
            raise ValueError(f"frames {sl.start}-{sl.stop - 1}: {e}; nothing was written") from e
        r["betas"] = np.broadcast_to(r["betas"], (sl.stop - sl.start, r["betas"].shape[-1]))
        r["joints"] = r["joints"][:, :J]
        for k, v in r.items():
            out.setdefault(k, []).append(v)
        if verbose:
            print(f"  frames {sl.start}-{sl.stop - 1}: mean data loss {r['data_loss'].mean():.3g}")
    return {k: np.concatenate(v, 0) for k, v in out.items()}


def save_fit(path, arrays: dict) -> str:
    """Write the fit atomically to ``path``; when that fails, keep it in a new file in the temporary
    folder and raise an OSError that says where it is (a long fit is not lost to a full disk or a
    mistyped folder)."""
    try:
        return save_npz_atomic(path, arrays)
    except OSError as e:
        reason = f"could not write {path}: {e.strerror or e}"
        try:
            fd, kept = tempfile.mkstemp(prefix="fit_joints-", suffix=".npz")
            os.close(fd)
            save_npz_atomic(kept, arrays)
        except OSError as e2:
            raise OSError(f"{reason}; keeping the fit in the temporary folder failed too ({e2})") from e
        raise OSError(f"{reason}; the finished fit is kept in {kept}") from e


def main(argv=None):
    ap = cli.ArgumentParser(prog="python -m human_body_prior.fitting.fit_joints",
                            description="Fit SMPL-family bodies to 3D joints (metres) with the VPoser prior.")
    ap.add_argument("input", help="IN.npz with joints (N, J, 3) and optional conf (N, J)")
    ap.add_argument("output", help="OUT.npz to write")
    prior = ap.add_mutually_exclusive_group()
    prior.add_argument("--no-prior", action="store_true", help="optimise pose_body directly, no pose prior")
    prior.add_argument("--l2-pose", action="store_true", help="optimise pose_body directly with an L2 prior on it")
    ap.add_argument("--prior-weight", type=float, default=None,
                    help=f"pose prior weight (default {DEFAULT_PRIOR_WEIGHT['vposer']:g} for VPoser, "
                         f"{DEFAULT_PRIOR_WEIGHT['l2']:g} for --l2-pose)")
    ap.add_argument("--bm-path", default=None, help="body model file (default: the open SMPL-X neutral model)")
    ap.add_argument("--expr-dir", default=None, help="VPoser experiment folder, v1 or v2, or 'vposer_v1' / 'vposer_v2' "
                                                     "(default: the shipped open VPoser v1)")
    ap.add_argument("--fit-betas", action="store_true", help="also fit betas, shared by each batch")
    ap.add_argument("--smooth-weight", type=cli.finite_float, default=0.0,
                    help="the frames are a motion: weight of the joints' squared acceleration (default 0: off)")
    ap.add_argument("--robust-sigma", type=cli.positive_float, default=None,
                    help="Geman-McClure scale in metres, > 0 (default: plain L2)")
    ap.add_argument("--iterations", type=cli.positive_int, default=None, help="LBFGS iterations per stage (>= 1)")
    ap.add_argument("--batch-size", type=cli.positive_int, default=256, help="frames per optimisation (default 256)")
    ap.add_argument("--device", type=cli.device, default="cpu", help="torch device (cpu, cuda, ...)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    pose_prior = "none" if args.no_prior else "l2" if args.l2_pose else "vposer"
    joints, conf = load_targets(args.input)
    check_writable(args.output)  # before minutes of fitting, not after
    fitter, robust = build_fitter(pose_prior, args.bm_path, args.expr_dir, args.prior_weight, args.device,
                                  args.fit_betas, args.iterations, robust_sigma=args.robust_sigma,
                                  smooth_weight=args.smooth_weight)
    t0 = time.perf_counter()
    out = fit_arrays(fitter, joints, conf, args.batch_size, robust, verbose=not args.quiet)
    elapsed = time.perf_counter() - t0
    out["pose_prior"] = np.array(pose_prior)
    out["prior_weight"] = np.array(fitter.prior_weight)
    save_fit(args.output, out)  # an OSError names the file the fit is kept in (cli.py prints it)
    if not args.quiet:
        print(f"fitted {len(joints)} frames ({pose_prior} prior) in {elapsed:.1f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
