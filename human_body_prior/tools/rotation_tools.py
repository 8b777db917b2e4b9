"""Upstream-compatibility shim: the 2019/2021 path ``human_body_prior.tools.rotation_tools``.

The rotation core (conversions, ``rotation_between``, ``geodesic_angle``, slerp, Euler angles) lives in
:mod:`human_body_prior.geometry.rotations`; the 2021 names with their v2 shapes (``aa2matrot`` (N, 3) ->
(N, 3, 3), ``local2global_pose``, ``em2euler``, ...) in :mod:`human_body_prior.compat.rotation_names`.
"""

from human_body_prior.compat.rotation_names import *  # noqa: F401,F403
from human_body_prior.geometry.rotations import *  # noqa: F401,F403
