"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.model_loader``.

The experiment loaders live in :mod:`human_body_prior.priors.experiment`; every name is looked up
there on first use (a lazy import, so that ``tools/`` stays the bottom layer and imports nothing
from the rest of the package at import time). Library code imports from ``priors`` directly.
"""

from human_body_prior.tools._lazy import lazy_reexport

# where the names of this module live, searched in order
_HOMES = ("human_body_prior.priors.experiment",)

__all__ = ["expid2model", "load_vposer", "read_settings", "read_state_dict", "load_state_dict_checked",
           "snapshot_fname", "save_snapshot", "write_settings", "write_vposer_experiment"]

__getattr__, __dir__ = lazy_reexport(__name__, _HOMES, __all__)
