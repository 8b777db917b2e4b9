"""Upstream-compatibility shim: the 2021 path ``human_body_prior.tools.tgm_conversion`` (torchgeometry's
conversion names); they live in :mod:`human_body_prior.compat.torchgeometry`."""

from human_body_prior.compat.torchgeometry import *  # noqa: F401,F403
