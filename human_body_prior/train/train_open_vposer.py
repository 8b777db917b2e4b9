"""Reproduce a shipped open VPoser from the project's mocap: v1 (``support_data/vposer_v1_0_open``,
the default) or, with ``--version 2``, v2 (``support_data/vposer_v2_0_open``).

    python -m human_body_prior.train.train_open_vposer --mocap-dir ../shared/mocap \\
        --work-dir /tmp/open_vposer [--version 1|2] [--out DIR] [--num-epochs N]

Steps, each skipped when its output already exists:
  1. ``human_body_prior.data.prepare_open_mocap``: extract the BVH archives, retarget every take onto
     the shipped open SMPL-X neutral model at 30 fps, split by take into train/vald/test with
     left/right mirroring of the training split -> ``<work-dir>/vposer_data``;
  2. the VPoser trainer with ``open_vposer.ini`` (v1: 2019 objective, 1000-vertex loss subset, seed
     4815) -> ``<work-dir>/experiment``, or ``open_vposer_v2.ini`` (v2: V02 objective, 1000
     farthest-point vertices, seed 4815) -> ``<work-dir>/experiment_v2``;
  3. packaging: the best snapshot and the settings (v1: and the model code) into ``--out`` (default
     ``<work-dir>/vposer_v1_0_open`` or ``vposer_v2_0_open``; replacing the shipped folder in
     ``support_data/`` needs ``--overwrite-shipped``), in the 2019 layout (v1) or the V02 layout (v2:
     <name>.yaml, snapshots/<name>_epoch=NN_val_loss=X.ckpt);
  4. evaluation on the held-out vald and test takes -> ``--out/evaluation.json``.

Training is deterministic on CPU for a given number of threads, so the same command gives the same
weights. Pass ``--torchrun-nproc G`` to train with G processes (one per GPU) instead.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from human_body_prior import cli
from human_body_prior.files.atomic_io import atomic_write, recover_dir, replace_dir
from human_body_prior.priors import experiment as model_loader
from human_body_prior.train.settings import load_settings

OPEN_VPOSER_INI = Path(__file__).resolve().parent / "open_vposer.ini"
OPEN_VPOSER_V2_INI = Path(__file__).resolve().parent / "open_vposer_v2.ini"
SHIPPED_EXPR_CODE = "vposer_v1_0_open"
SHIPPED_V2_EXPR_CODE = "vposer_v2_0_open"
# version -> (settings file, shipped folder name, experiment folder under --work-dir)
VERSIONS = {1: (OPEN_VPOSER_INI, SHIPPED_EXPR_CODE, "experiment"),
            2: (OPEN_VPOSER_V2_INI, SHIPPED_V2_EXPR_CODE, "experiment_v2")}
RELOCATED_DATA = "prepared from ../shared/mocap by train_open_vposer (see MODEL_CARD.md)"


def prepare_data(mocap_dir, work_dir) -> Path:
    out = Path(work_dir) / "vposer_data"
    if all((out / s / "pose.pt").is_file() for s in ("train", "vald", "test")):
        print(f"[1/4] using the prepared data in {out}")
        return out
    print(f"[1/4] preparing VPoser data from {mocap_dir} into {out}")
    from human_body_prior.data import prepare_open_mocap
    rc = prepare_open_mocap.main(["--mocap-dir", str(mocap_dir), "--work-dir", str(Path(work_dir) / "mocap"),
                                  "--out-dir", str(out)])
    if rc not in (None, 0):
        raise RuntimeError(f"mocap preparation failed with code {rc}")
    return out


def train(data_dir, work_dir, num_epochs=None, nproc=None, extra=(), version: int = 1) -> Path:
    ini, _, sub = VERSIONS[version]
    expr_dir = Path(work_dir) / sub
    args = ["--config_path", str(ini), "--dataset_dir", str(data_dir), "--work_dir", str(expr_dir)]
    if num_epochs is not None:
        args += ["--num_epochs", str(num_epochs)]
    if (expr_dir / "training_state.pt").is_file():
        args += ["--resume", "True"]  # continue an interrupted run
    args += list(extra)
    print(f"[2/4] training into {expr_dir}")
    if nproc and int(nproc) > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(nproc)}",
               "-m", "human_body_prior.train.vposer_smpl"] + args
        subprocess.run(cmd, check=True)
    else:
        from human_body_prior.train.vposer_smpl import main as trainer_main
        trainer_main(args)
    return expr_dir


def package(expr_dir, out_dir) -> Path:
    """Copy the best snapshot of expr_dir with its settings and model code into out_dir (2019 layout)."""
    model, ps = model_loader.load_vposer(expr_dir, verbose=False)
    _, best = model_loader.expid2model(expr_dir, verbose=False)
    epoch = int(Path(best).stem.split("_E")[1])
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".packing")
    if tmp.exists():
        shutil.rmtree(tmp)
    settings = {k: v for k, v in dict(ps).items() if k not in ("default_ps", "best_model_fname", "work_dir")}
    settings["dataset_dir"] = "prepared from ../shared/mocap by train_open_vposer (see MODEL_CARD.md)"
    settings["bm_path"] = ""  # the shipped open SMPL-X neutral model
    settings["expr_code"] = SHIPPED_EXPR_CODE
    settings.pop("work_root", None)
    settings["config_path"] = "human_body_prior/train/open_vposer.ini"
    model_loader.write_vposer_experiment(tmp, model, settings=settings, epoch=epoch, expr_code=SHIPPED_EXPR_CODE)
    for ini in tmp.glob("*.ini"):  # the folder is relocatable: no scratch paths in its settings
        values = {k: v for k, v in dict(model_loader.read_settings(ini)).items() if k != "default_ps"}
        values["work_dir"] = "."
        model_loader.write_settings(values, ini)
    _swap_into(tmp, out_dir)
    print(f"[3/4] packaged epoch {epoch} into {out_dir}")
    return out_dir


def _swap_into(tmp: Path, out_dir: Path) -> None:
    """Replace out_dir by the packed folder tmp, keeping out_dir's hand-written files. out_dir is the
    whole old folder or the whole new one at every moment (files/atomic_io.replace_dir)."""
    recover_dir(out_dir)  # an earlier run that died inside a two-rename swap (systems without an exchange)
    if out_dir.exists():  # keep hand-written files (model card, licence note)
        for keep in ("MODEL_CARD.md", "LICENSE.md"):
            if (out_dir / keep).is_file():
                atomic_write(tmp / keep, lambda t, src=out_dir / keep: shutil.copy2(src, t))
    replace_dir(tmp, out_dir)


def package_v2(expr_dir, out_dir) -> Path:
    """The best checkpoint of a V02 expr_dir, as weights only, with its relocatable yaml into out_dir."""
    from human_body_prior.priors import vposer_v2_io

    vp, cfg = vposer_v2_io.load_model(expr_dir, comp_device="cpu", verbose=False)
    best = Path(cfg.logging.best_model_fname)
    epoch = int(vposer_v2_io.read_checkpoint(best)["epoch"])
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".packing")
    if tmp.exists():
        shutil.rmtree(tmp)
    cfg = cfg.to_dict()
    cfg["logging"].update(work_dir=".", best_model_fname=None)
    cfg["logging"].pop("expr_dir", None)
    cfg["data_parms"]["dataset_dir"] = RELOCATED_DATA
    cfg["body_model"]["bm_fname"] = ""  # the shipped open SMPL-X neutral model
    trainer = cfg.get("human_body_prior_trainer", {})
    trainer.update(work_dir=".", dataset_dir=RELOCATED_DATA, bm_path="",
                   config_path="human_body_prior/train/open_vposer_v2.ini")
    trainer.pop("work_root", None)
    from human_body_prior.train.settings import parse_value
    trainer.update({k: parse_value(k, v) for k, v in trainer.items()})  # e.g. data_shape written as text
    vposer_v2_io.write_config(cfg, tmp / f"{SHIPPED_V2_EXPR_CODE}.yaml")
    vposer_v2_io.write_checkpoint(vp, tmp / "snapshots" / best.name, epoch=epoch)
    _swap_into(tmp, out_dir)
    print(f"[3/4] packaged epoch {epoch} into {out_dir}")
    return out_dir


def _output_folder(out, default: Path, overwrite_shipped: bool) -> Path:
    """--out (default: a new folder in the work folder); a shipped folder only with --overwrite-shipped."""
    from human_body_prior.support_paths import support_data_dir

    out = Path(out) if out is not None else default
    try:
        shipped = support_data_dir().resolve()
    except FileNotFoundError:
        return out
    target = out.resolve()
    if (target == shipped or shipped in target.parents) and not overwrite_shipped:
        raise cli.UsageError(f"--out {out} is inside the shipped support data ({shipped}); pass "
                             "--overwrite-shipped to replace the shipped prior, or choose another folder")
    return out


def main(argv=None) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mocap-dir", default=os.environ.get("HBP_MOCAP_DIR", "../shared/mocap"),
                    help="folder with the mocap archives (default: $HBP_MOCAP_DIR, else ../shared/mocap)")
    ap.add_argument("--work-dir", required=True, help="scratch folder for extracted mocap, data and the run")
    ap.add_argument("--data-dir", default=None, help="use already prepared train/vald/test splits")
    ap.add_argument("--version", type=int, choices=(1, 2), default=1, help="VPoser v1 (2019, default) or v2 (V02)")
    ap.add_argument("--out", default=None,
                    help="where to write the packaged prior (default: <work-dir>/vposer_v1_0_open, or vposer_v2_0_open)")
    ap.add_argument("--overwrite-shipped", action="store_true",
                    help="allow --out to replace a folder the package ships (support_data/...)")
    ap.add_argument("--num-epochs", type=cli.positive_int, default=None, help="override the settings file's num_epochs")
    ap.add_argument("--torchrun-nproc", type=cli.positive_int, default=None)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--no-train", action="store_true",
                    help="package (and evaluate) the best snapshot of <work-dir>/experiment[_v2] as it is now")
    args, extra = ap.parse_known_args(argv)
    ini, shipped_name, sub = VERSIONS[args.version]
    load_settings(ini)  # fail early on a broken settings file
    out = _output_folder(args.out, Path(args.work_dir) / shipped_name, args.overwrite_shipped)
    if args.no_train:
        data_dir = Path(args.data_dir) if args.data_dir else Path(args.work_dir) / "vposer_data"
        expr_dir = Path(args.work_dir) / sub
    else:
        data_dir = Path(args.data_dir) if args.data_dir else prepare_data(args.mocap_dir, args.work_dir)
        expr_dir = train(data_dir, args.work_dir, args.num_epochs, args.torchrun_nproc, extra, version=args.version)
    (package if args.version == 1 else package_v2)(expr_dir, out)
    if not args.skip_eval:
        print("[4/4] evaluating on the held-out takes")
        from human_body_prior.evaluation import vposer as evaluate_vposer
        res = evaluate_vposer.evaluate(out, data_dir)
        print(evaluate_vposer.format_markdown(res))
        # the shipped folder is relocatable: no paths of the machine that made it
        res.update(expr_dir=".", data_dir="<work-dir>/vposer_data (prepared from ../shared/mocap)",
                   bm_path="support_data/body_models/smplx/SMPLX_NEUTRAL.npz (the shipped open neutral)")
        evaluate_vposer.save_json(res, out / "evaluation.json")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
