"""Upstream-compatibility shim: the 2021 path ``human_body_prior.models.model_components``; the layers live
in :mod:`human_body_prior.priors.vposer_v2`."""

from human_body_prior.priors.vposer_v2 import BatchFlatten

__all__ = ["BatchFlatten"]
