"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.visualization_tools``.

Rendering lives in :mod:`human_body_prior.mesh.rendering`; every name is looked up there on first
use (a lazy import, so that ``tools/`` stays the bottom layer). Library code imports from ``mesh``.
"""

import importlib

_HOME = "human_body_prior.mesh.rendering"

__all__ = ["imagearray2file", "image_grid", "frame_camera_distance", "render_vertices", "render_smpl_params",
           "smpl_params2ply", "BODY_COLOR", "BACKGROUND"]


def __getattr__(name):
    if not name.startswith("__"):
        module = importlib.import_module(_HOME)
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(globals()))
