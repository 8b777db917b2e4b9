"""Observations made ready for one fit: on its device and dtype, joint ids resolved, and their data term.

A fit prepares its observations once (``prepare_observations``); every loss evaluation then reads
``PreparedObservation`` fields instead of re-converting arrays.
"""

from dataclasses import dataclass, replace
from typing import Optional

import torch

from human_body_prior.fitting.camera import PinholeCamera
from human_body_prior.fitting.losses import confidence_weighted_error
from human_body_prior.fitting.observations import (
    JointTargets3D,
    Keypoints2D,
    check_joint_ids,
)


@dataclass(frozen=True)
class PreparedObservation:
    """One JointTargets3D or Keypoints2D on the fit's device and dtype.

    joint_ids (J,) long: the model joint of each target column; targets (B, J, 3) metres or (B, J, 2)
    pixels; conf (B, J); weight: multiplies the term; robust_sigma: Geman-McClure scale in the
    residual's units (3D: metres; 2D: normalised image units, the pixel sigma over the mean focal
    length) or None; camera and focal (1 or B, 1, 1) mean focal length in pixels, for 2D only.
    """
    joint_ids: torch.Tensor
    targets: torch.Tensor
    conf: torch.Tensor
    weight: float
    robust_sigma: Optional[float]
    camera: Optional[PinholeCamera] = None
    focal: Optional[torch.Tensor] = None

    @property
    def is_3d(self) -> bool:
        return self.camera is None

    def select(self, frames: torch.Tensor) -> "PreparedObservation":
        """The observation of the frames ``frames`` (n,) long only."""
        return replace(self, targets=self.targets[frames], conf=self.conf[frames],
                       camera=None if self.camera is None else self.camera.select(frames),
                       focal=self.focal if self.focal is None or self.focal.shape[0] == 1 else self.focal[frames])

    def term(self, joints: torch.Tensor) -> torch.Tensor:
        """Weighted data term per frame (B,) of posed model joints (B, J_model, 3)."""
        pred = joints[:, self.joint_ids]
        if self.is_3d:
            err = confidence_weighted_error(pred, self.targets, self.conf, self.robust_sigma)
        else:
            err = confidence_weighted_error(self.camera.project(pred), self.targets, self.conf, self.robust_sigma,
                                            self.focal)
        return self.weight * err


def prepare_observations(observations, num_model_joints: int, model_type: str, device, dtype) -> tuple:
    """A JointTargets3D / Keypoints2D or a list of them (same frame count B) -> (list of
    PreparedObservation, B), with clear errors for an empty list, mixed frame counts or bad joint ids."""
    if isinstance(observations, (JointTargets3D, Keypoints2D)):
        observations = [observations]
    observations = list(observations)
    if not observations:
        raise ValueError("nothing to fit: give at least one JointTargets3D or Keypoints2D")
    for o in observations:
        if not isinstance(o, (JointTargets3D, Keypoints2D)):
            raise TypeError(f"observations must be JointTargets3D or Keypoints2D, got {type(o).__name__}")
    sizes = {o.batch_size for o in observations}
    if len(sizes) != 1:
        raise ValueError(f"observations have different frame counts {sorted(sizes)}")
    prepared = []
    for o in observations:
        ids = check_joint_ids(o.joint_ids, o.targets.shape[1], num_model_joints, model_type)
        common = dict(joint_ids=torch.as_tensor(ids, device=device),
                      targets=torch.as_tensor(o.targets, dtype=dtype, device=device),
                      conf=torch.as_tensor(o.conf, dtype=dtype, device=device), weight=o.weight)
        if isinstance(o, Keypoints2D):
            camera = o.camera.to(device=device, dtype=dtype)
            focal = camera.focal_length.mean(-1, keepdim=True).unsqueeze(-1)  # (1 or B, 1, 1)
            sigma = None if o.robust_sigma is None else o.robust_sigma / float(focal.mean())
            prepared.append(PreparedObservation(robust_sigma=sigma, camera=camera, focal=focal, **common))
        else:
            prepared.append(PreparedObservation(robust_sigma=o.robust_sigma, **common))
    return prepared, sizes.pop()


def data_term(prepared: list, joints: torch.Tensor) -> torch.Tensor:
    """Sum of the prepared observations' terms per frame (B,) for posed model joints (B, J_model, 3)."""
    total = joints.new_zeros(joints.shape[0])
    for item in prepared:
        total = total + item.term(joints)
    return total
