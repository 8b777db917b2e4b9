"""Posed joints of a BodyModel without skinning the mesh: what joint and keypoint fitting needs.

The joints of the SMPL family depend only on the shape (through the joint regressor applied to the
shaped template) and on the pose (forward kinematics); pose correctives and skinning move vertices,
not joints. Computing them directly makes a fitting iteration cost O(J) instead of O(V).
"""

import torch

from human_body_prior.body_model.lbs import forward_kinematics, blend_shapes, KinematicTree
from human_body_prior.body_model.body_model import POSE_PARTS
from human_body_prior.tools.rotation_tools import axis_angle_to_matrix


class PosedJoints:
    """Joints (B, J, 3) of a BodyModel (or BodyModelWithPoser) for given pose, shape and translation.

    Hands, jaw and eyes stay in their rest pose (zeros); expressions and DMPLs at zero.
    """

    def __init__(self, bm):
        if not hasattr(bm, "J_template") or not hasattr(bm, "J_shapedirs"):
            raise TypeError(f"expected a human_body_prior BodyModel, got {type(bm).__name__}")
        if bm.model_type == "mano":
            raise ValueError("body fitting needs an SMPL, SMPL-H or SMPL-X model, got a MANO model")
        self.bm = bm
        self.model_type = bm.model_type
        self.num_joints = bm.num_joints
        self.num_betas = bm.num_betas
        self.tree = KinematicTree(bm.parents)
        widths = dict(POSE_PARTS[bm.model_type])
        self.rest_width = sum(w for name, w in POSE_PARTS[bm.model_type]
                              if name not in ("root_orient", "pose_body"))
        self._order = [name for name, _ in POSE_PARTS[bm.model_type]]
        self._widths = widths

    @property
    def dtype(self):
        return self.bm.J_template.dtype

    @property
    def device(self):
        return self.bm.J_template.device

    def rest_joints(self, betas: torch.Tensor, batch: int) -> torch.Tensor:
        """betas (B or 1, num_betas) -> rest-pose joints (B, J, 3)."""
        dirs = self.bm.J_shapedirs[..., :self.num_betas]
        return (self.bm.J_template + blend_shapes(betas, dirs)).expand(batch, -1, -1)

    def __call__(self, root_orient, pose_body, trans, betas) -> torch.Tensor:
        """root_orient (B, 3), pose_body (B, 63) axis-angle (rad), trans (B, 3) metres,
        betas (B or 1, num_betas) -> posed joints (B, J, 3) in metres."""
        B = pose_body.shape[0]
        parts = {"root_orient": root_orient, "pose_body": pose_body}
        zeros = pose_body.new_zeros(B, 1)
        full = torch.cat([parts[n] if n in parts else zeros.expand(B, self._widths[n]) for n in self._order], dim=1)
        rot = axis_angle_to_matrix(full.reshape(B, -1, 3))
        joints, _ = forward_kinematics(rot, self.rest_joints(betas, B), self.tree)
        return joints + trans.unsqueeze(1)
