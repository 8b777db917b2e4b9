"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.visualization_tools``.

Rendering lives in :mod:`human_body_prior.mesh.rendering`; every name is looked up there on first
use (a lazy import, so that ``tools/`` stays the bottom layer). Library code imports from ``mesh``.
"""

from human_body_prior.tools._lazy import lazy_reexport

__all__ = ["imagearray2file", "image_grid", "frame_camera_distance", "render_vertices", "render_smpl_params",
           "smpl_params2ply", "BODY_COLOR", "BACKGROUND"]

__getattr__, __dir__ = lazy_reexport(__name__, ("human_body_prior.mesh.rendering",), __all__)
