"""Fitting SMPL-family bodies to 3D joints and 2D keypoints, with the VPoser pose prior."""

from human_body_prior.fitting.camera import PinholeCamera
from human_body_prior.fitting.engine import BodyFitter, FitResult, Stage, fit_body
from human_body_prior.fitting.observations import JointTargets3D, Keypoints2D

__all__ = ["PinholeCamera", "BodyFitter", "FitResult", "Stage", "fit_body", "JointTargets3D", "Keypoints2D"]
