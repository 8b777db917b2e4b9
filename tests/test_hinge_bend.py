"""data/hinge_bend: the one "is this knee or elbow bent, and which way" threshold and its bend angle."""

import inspect

import numpy as np

from human_body_prior.data.hinge_bend import STRAIGHT_TOL_DEG, bend_deg
from human_body_prior.data.retarget import Retargeter
from human_body_prior.evaluation import hinges
from human_body_prior.evaluation.retarget_quality import bend_direction_share


def test_bend_deg_analytic():
    u = np.array([0.0, -1.0, 0.0])
    ang = np.radians([0.0, 14.0, 16.0, 90.0, 180.0])
    d = np.stack([np.zeros_like(ang), -np.cos(ang), np.sin(ang)], axis=-1)
    np.testing.assert_allclose(bend_deg(d, u), [0.0, 14.0, 16.0, 90.0, 180.0], atol=1e-6)
    assert list(bend_deg(d, u) > STRAIGHT_TOL_DEG) == [False, False, True, True, True]


def test_every_hinge_decision_uses_the_one_threshold():
    default = inspect.signature(bend_direction_share).parameters["min_bend_deg"].default
    calibration = inspect.signature(Retargeter._calibrate_hinge_twist).parameters["min_bend_deg"].default
    assert default == calibration == STRAIGHT_TOL_DEG
    assert hinges.STRAIGHT_TOL_DEG is STRAIGHT_TOL_DEG and not hasattr(hinges, "HYPEREXTENSION_TOL_DEG")
