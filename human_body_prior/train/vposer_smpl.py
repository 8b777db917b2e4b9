"""The 2019 import path of VPoser v1: ``from human_body_prior.train.vposer_smpl import VPoser``.

The network lives in :mod:`human_body_prior.priors.vposer`. The VPoser trainer
(``VPoserTrainer``, ``run_vposer_trainer``) goes in this module too.
"""

from human_body_prior.priors.vposer import VPoser

__all__ = ["VPoser"]
