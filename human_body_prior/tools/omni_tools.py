"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.omni_tools``; the helpers live
in :mod:`human_body_prior.compat.omni_tools`."""

from human_body_prior.compat.omni_tools import *  # noqa: F401,F403
