"""Upstream-compatibility shim: the 2021 path ``human_body_prior.models.vposer_model``; VPoser v2 lives in
:mod:`human_body_prior.priors.vposer_v2`."""

from human_body_prior.priors.vposer_v2 import (
    BatchFlatten,
    ContinousRotReprDecoder,
    NormalDistDecoder,
    VPoser,
)

__all__ = ["VPoser", "ContinousRotReprDecoder", "NormalDistDecoder", "BatchFlatten"]
