"""Upstream-compatibility shim: the 2021 path ``human_body_prior.tools.angle_continuous_repres`` (the 6-D
representation and ``geodesic_loss_R``); they live in :mod:`human_body_prior.compat.continuous_rotations`."""

from human_body_prior.compat.continuous_rotations import *  # noqa: F401,F403
