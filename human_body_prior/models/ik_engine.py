"""Upstream-compatibility shim: the 2021 path ``human_body_prior.models.ik_engine``; ``IK_Engine`` lives in
:mod:`human_body_prior.fitting.ik_engine`."""

from human_body_prior.fitting.ik_engine import IK_Engine

__all__ = ["IK_Engine"]
