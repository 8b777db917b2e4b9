"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.model_loader``.

The 2019 experiment loaders live in :mod:`human_body_prior.priors.experiment`, the 2021 (V02)
``load_model`` and ``exprdir2model`` in :mod:`human_body_prior.priors.vposer_v2_io`; every name is looked up
there on first use (a lazy import, so that ``tools/`` stays the bottom layer and imports nothing
from the rest of the package at import time). Library code imports from ``priors`` directly.
"""

from human_body_prior.tools._lazy import lazy_reexport

# where the names of this module live, searched in order
_HOMES = ("human_body_prior.priors.experiment", "human_body_prior.priors.vposer_v2_io")

__all__ = ["expid2model", "load_vposer", "read_settings", "read_state_dict", "load_state_dict_checked",
           "snapshot_fname", "save_snapshot", "write_settings", "write_vposer_experiment",
           "load_model", "exprdir2model"]

__getattr__, __dir__ = lazy_reexport(__name__, _HOMES, __all__)
