"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.model_loader``.

The 2019 experiment-folder loaders live in :mod:`human_body_prior.priors.experiment`, the 2021 (V02)
``load_model`` and ``exprdir2model`` in :mod:`human_body_prior.priors.vposer_v2_io`.
"""

from human_body_prior.priors.experiment import (
                                                expid2model,
                                                load_state_dict_checked,
                                                load_vposer,
                                                read_settings,
                                                read_state_dict,
                                                save_snapshot,
                                                snapshot_fname,
                                                write_settings,
                                                write_vposer_experiment,
)
from human_body_prior.priors.vposer_v2_io import exprdir2model, load_model

__all__ = ["expid2model", "load_vposer", "read_settings", "read_state_dict", "load_state_dict_checked",
           "snapshot_fname", "save_snapshot", "write_settings", "write_vposer_experiment",
           "load_model", "exprdir2model"]
