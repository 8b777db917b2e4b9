"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.visualization_tools``.

Rendering lives in :mod:`human_body_prior.mesh.rendering`.
"""

from human_body_prior.mesh.rendering import (
                                             BACKGROUND,
                                             BODY_COLOR,
                                             frame_camera_distance,
                                             image_grid,
                                             imagearray2file,
                                             render_smpl_params,
                                             render_vertices,
                                             smpl_params2ply,
)

__all__ = ["imagearray2file", "image_grid", "frame_camera_distance", "render_vertices", "render_smpl_params",
           "smpl_params2ply", "BODY_COLOR", "BACKGROUND"]
