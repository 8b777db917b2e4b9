"""What a body is fitted to: 3D joint targets and 2D keypoints, checked before any optimisation.

Every observation holds a batch of B frames. Confidences are per frame and joint, >= 0; 0 marks a
missing joint, whose target is ignored and may be NaN. Targets follow the body model's joint order
(SMPL-X: the 22 body joints pelvis..right_wrist first) unless joint_ids maps them.
"""

import numpy as np
import torch

from human_body_prior.fitting.camera import PinholeCamera
from human_body_prior.model_types.joints import (
    NUM_BODY_JOINTS,  # noqa: F401  (pelvis + pose_body's joints)
)


def _as_array(value, name):
    try:
        arr = np.asarray(value.detach().cpu() if torch.is_tensor(value) else value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array: {e}") from e
    return arr


def _frames(mask):
    idx = np.flatnonzero(mask)
    head = ", ".join(str(i) for i in idx[:10])
    return f"{len(idx)} frame(s) [{head}{', ...' if len(idx) > 10 else ''}]"


def check_targets(targets, conf, dim: int, name: str, conf_name: str):
    """Validate targets (B, J, dim) (or (J, dim) for one frame) and conf (B, J) (default ones).

    Returns float64 numpy arrays (targets with missing entries set to 0, conf). Raises ValueError for
    a wrong shape, negative or non-finite confidences, NaN/inf targets with confidence > 0, and
    frames whose confidences are all zero.
    """
    t = _as_array(targets, name)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[-1] != dim or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, J, {dim}) with B, J >= 1, got {t.shape}")
    B, J = t.shape[:2]
    if conf is None:
        c = np.ones((B, J))
    else:
        c = _as_array(conf, conf_name)
        if c.ndim == 1 and B == 1:
            c = c[None]
        if c.shape != (B, J):
            raise ValueError(f"{conf_name} must have shape ({B}, {J}) to match {name} {t.shape}, got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError(f"{conf_name} has NaN or infinite values in {_frames(~np.isfinite(c).all(-1))}")
        if np.any(c < 0):
            raise ValueError(f"{conf_name} must be >= 0 (0 = missing); negative values in {_frames((c < 0).any(-1))}")
    bad = ~np.isfinite(t).all(-1) & (c > 0)
    if bad.any():
        raise ValueError(f"{name} has NaN or infinite values with confidence > 0 in {_frames(bad.any(-1))}; "
                         f"give those joints confidence 0 to mark them missing")
    empty = ~(c > 0).any(-1)
    if empty.any():
        raise ValueError(f"{conf_name} is all zero in {_frames(empty)}: nothing to fit there")
    t = np.where(c[..., None] > 0, t, 0.0)
    return t, c


def _check_sigma(robust_sigma, unit: str):
    """None (plain squared error) or a finite Geman-McClure scale > 0; a scale of 0 would make every
    residual cost nothing, and a fit far off would report zero data loss."""
    if robust_sigma is None:
        return None
    sigma = float(robust_sigma)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"robust_sigma must be a finite number > 0 ({unit}) or None for plain squared error, "
                         f"got {robust_sigma!r}")
    return sigma


def _check_weight(weight) -> float:
    w = float(weight)
    if not (np.isfinite(w) and w >= 0):
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
    return w


def check_joint_ids(joint_ids, num_targets: int, num_model_joints: int, model_type: str):
    """joint_ids (J,) model joint index of each target column; default: the first J model joints."""
    if joint_ids is None:
        if num_targets > num_model_joints:
            raise ValueError(f"got {num_targets} joints but a {model_type} model has {num_model_joints}; "
                             f"pass joint_ids to say which model joint each target is")
        return list(range(num_targets))
    ids = [int(i) for i in np.asarray(joint_ids).reshape(-1)]
    if len(ids) != num_targets:
        raise ValueError(f"joint_ids has {len(ids)} entries but the targets have {num_targets} joints")
    if any(not 0 <= i < num_model_joints for i in ids):
        raise ValueError(f"joint_ids must lie in [0, {num_model_joints}) for a {model_type} model, got {ids}")
    return ids


class JointTargets3D:
    """3D joint targets (B, J, 3) in metres with confidences (B, J).

    joint_ids: model joint of each target column (default: the first J model joints, which must
    then include the 22 body joints). weight: multiplies the term. robust_sigma: Geman-McClure
    scale in metres (None: plain squared error).
    """

    dim = 3

    def __init__(self, joints, conf=None, joint_ids=None, weight: float = 1.0, robust_sigma=None):
        self.targets, self.conf = check_targets(joints, conf, 3, "joints", "conf")
        self.joint_ids = None if joint_ids is None else list(np.asarray(joint_ids).reshape(-1))
        if self.joint_ids is None and self.targets.shape[1] < NUM_BODY_JOINTS:
            raise ValueError(f"joints must have at least {NUM_BODY_JOINTS} columns (the body joints in the "
                             f"model's order), got {self.targets.shape[1]}; pass joint_ids for a subset")
        self.weight = _check_weight(weight)
        self.robust_sigma = _check_sigma(robust_sigma, "metres")

    @property
    def batch_size(self) -> int:
        return self.targets.shape[0]


class Keypoints2D:
    """2D keypoints (B, J, 2) in pixels with confidences (B, J), seen by a PinholeCamera.

    The residual is divided by the mean focal length, so that the term is in normalised image units
    (about metres / depth) and weights comparable with the 3D term. robust_sigma is in pixels.
    joint_ids and weight as for JointTargets3D (any J >= 1 when joint_ids is given).
    """

    dim = 2

    def __init__(self, keypoints, conf=None, camera: PinholeCamera = None, joint_ids=None, weight: float = 1.0,
                 robust_sigma=None):
        if not isinstance(camera, PinholeCamera):
            raise ValueError("Keypoints2D needs camera=PinholeCamera(focal_length, principal_point, ...)")
        self.targets, self.conf = check_targets(keypoints, conf, 2, "keypoints", "conf")
        self.joint_ids = None if joint_ids is None else list(np.asarray(joint_ids).reshape(-1))
        if self.joint_ids is None and self.targets.shape[1] < NUM_BODY_JOINTS:
            raise ValueError(f"keypoints must have at least {NUM_BODY_JOINTS} columns (the body joints in the "
                             f"model's order), got {self.targets.shape[1]}; pass joint_ids for a subset")
        if camera.batch_size not in (1, self.targets.shape[0]):
            raise ValueError(f"camera has batch {camera.batch_size} but keypoints have {self.targets.shape[0]} frames")
        self.camera = camera
        self.weight = _check_weight(weight)
        self.robust_sigma = _check_sigma(robust_sigma, "pixels")

    @property
    def batch_size(self) -> int:
        return self.targets.shape[0]
