"""The training command, run at its 2019 path (``train/vposer_smpl.py``).

``from human_body_prior.train.vposer_smpl import VPoser`` gives the network (it lives in
:mod:`human_body_prior.priors.vposer`). Training::

    python -m human_body_prior.train.vposer_smpl --config_path X.ini [--key value ...]
    torchrun --nproc_per_node=4 -m human_body_prior.train.vposer_smpl --config_path X.ini

X.ini overrides ``vposer_smpl_defaults.ini`` (same sections and keys); ``--key value`` pairs
override both. ``model_version = 2`` trains VPoser v2 (V02 objective and folder layout) instead of v1. See :mod:`human_body_prior.train.trainer` for the experiment folder it writes.
"""

import argparse
import sys

from human_body_prior import cli
from human_body_prior.train.settings import load_settings, parse_cli_overrides
from human_body_prior.train.trainer import VPoserTrainer


def run_vposer_trainer(ps) -> dict:
    """Train with the settings ps (a Configer or dict, merged over the defaults); returns a summary dict
    (epochs, best_val_loss, best_snapshot, wall_time_s, work_dir)."""
    ps = load_settings(strict=False, **{k: v for k, v in dict(ps).items() if k != "default_ps"})
    trainer = VPoserTrainer(ps)
    try:
        summary = trainer.train()
    except BaseException:
        trainer.close(wait_for_peers=False)  # the other ranks may never get to the closing barrier
        raise
    trainer.close()
    return summary


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: {cli.module_command('human_body_prior.train.vposer_smpl')} [--config_path X.ini] [--key value ...]\n\n{__doc__}")
        return {}
    try:
        args = parse_cli_overrides(argv)
    except ValueError as e:
        raise cli.UsageError(str(e)) from e
    config_path = args.pop("config_path", None)
    ps = load_settings(config_path, **args)
    _check_device(ps.get("device", "auto"))
    return run_vposer_trainer(ps)


def _check_device(name) -> None:
    """A device the settings name must exist here (``cuda`` without CUDA: one line, not a traceback)."""
    if name in (None, "", "auto"):
        return
    try:
        cli.device(str(name))
    except argparse.ArgumentTypeError as e:
        raise cli.UsageError(f"setting 'device': {e}") from None

