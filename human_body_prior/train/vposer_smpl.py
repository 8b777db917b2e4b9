"""Upstream-compatibility shim: the 2019 path ``human_body_prior.train.vposer_smpl`` of VPoser v1 and its
trainer. The network lives in :mod:`human_body_prior.priors.vposer`, the trainer in
:mod:`human_body_prior.train.trainer` and the command in :mod:`human_body_prior.train.command`::

    python -m human_body_prior.train.vposer_smpl --config_path X.ini [--key value ...]
    torchrun --nproc_per_node=4 -m human_body_prior.train.vposer_smpl --config_path X.ini
"""

import sys

from human_body_prior import cli
from human_body_prior.priors.vposer import VPoser
from human_body_prior.train.command import main, run_vposer_trainer
from human_body_prior.train.trainer import VPoserTrainer

__all__ = ["VPoser", "VPoserTrainer", "run_vposer_trainer"]

if __name__ == "__main__":
    sys.exit(cli.run(main, prog="vposer_smpl"))
