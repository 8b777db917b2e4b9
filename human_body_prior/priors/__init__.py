"""Pose priors behind one interface: :class:`PosePrior`, and :func:`load_prior` for files, folders and names."""

from human_body_prior.priors.interface import PosePrior
from human_body_prior.priors.loading import PRIOR_NAMES, load_prior, load_prior_and_settings

__all__ = ["PosePrior", "load_prior", "load_prior_and_settings", "PRIOR_NAMES"]
