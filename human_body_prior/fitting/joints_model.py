"""Posed joints of a BodyModel without skinning the mesh: what joint and keypoint fitting needs.

The joints of the SMPL family depend only on the shape (through the joint regressor applied to the
shaped template) and on the pose (forward kinematics); pose correctives and skinning move vertices,
not joints. Computing them directly makes a fitting iteration cost O(J) instead of O(V), and a fit
that only looks at the 22 body joints can stop the kinematic chain there (every parent index is
smaller than its child's, so the first n joints form a closed tree).
"""

import torch

from human_body_prior.geometry.kinematics import KinematicTree, forward_kinematics
from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import NUM_BODY_JOINTS, NUM_POSE_BODY_JOINTS
from human_body_prior.model_types.spec import model_spec


class PosedJoints:
    """Joints of a BodyModel (or BodyModelWithPoser) for a given pose, shape and translation.

    Hands, jaw and eyes stay in their rest pose (zero rotation); expressions and DMPLs at zero.
    """

    def __init__(self, bm):
        if not hasattr(bm, "J_template") or not hasattr(bm, "J_shapedirs"):
            raise TypeError(f"expected a human_body_prior BodyModel, got {type(bm).__name__}")
        if not model_spec(bm.model_type).has_body:
            raise ValueError("body fitting needs an SMPL, SMPL-H or SMPL-X model, got a MANO model")
        self.bm = bm
        self.model_type = bm.model_type
        self.num_joints = bm.num_joints
        self.num_betas = bm.num_betas
        self.parents = list(bm.parents)
        self._full_tree = KinematicTree(self.parents)
        self._trees = {}

    @property
    def dtype(self):
        return self.bm.J_template.dtype

    @property
    def device(self):
        return self.bm.J_template.device

    def _tree(self, n):
        if n not in self._trees:
            self._trees[n] = self._full_tree.select(range(n))
        return self._trees[n]

    def rest_joints(self, betas: torch.Tensor, batch: int, num_joints=None) -> torch.Tensor:
        """betas (B or 1, num_betas) -> rest-pose joints (B, n, 3) of the first n (default all) joints."""
        n = num_joints or self.num_joints
        dirs = self.bm.J_shapedirs[:n, :, :self.num_betas]
        return (self.bm.J_template[:n] + torch.einsum("bk,jck->bjc", betas, dirs)).expand(batch, -1, -1)

    def from_rotations(self, root_rot, body_rot, trans, betas, num_joints=None) -> torch.Tensor:
        """root_rot (B, 3, 3), body_rot (B, 21, 3, 3) local rotations, trans (B, 3) metres, betas
        (B or 1, num_betas) -> posed joints (B, n, 3) of the first n (default all) model joints."""
        n = int(num_joints or self.num_joints)
        if not 1 <= n <= self.num_joints:
            raise ValueError(f"num_joints must be in [1, {self.num_joints}], got {n}")
        B = body_rot.shape[0]
        rots = [root_rot.unsqueeze(1), body_rot[:, :max(0, min(n, NUM_BODY_JOINTS) - 1)]]
        if n > NUM_BODY_JOINTS:
            eye = torch.eye(3, dtype=body_rot.dtype, device=body_rot.device)
            rots.append(eye.expand(B, n - NUM_BODY_JOINTS, 3, 3))
        joints, _ = forward_kinematics(torch.cat(rots, 1), self.rest_joints(betas, B, n), self._tree(n))
        return joints + trans.unsqueeze(1)

    def __call__(self, root_orient, pose_body, trans, betas, num_joints=None) -> torch.Tensor:
        """root_orient (B, 3), pose_body (B, 63) axis-angle (rad), trans (B, 3) metres,
        betas (B or 1, num_betas) -> posed joints (B, n, 3) in metres (n: default all joints)."""
        B = pose_body.shape[0]
        return self.from_rotations(axis_angle_to_matrix(root_orient), axis_angle_to_matrix(pose_body.reshape(B, NUM_POSE_BODY_JOINTS, 3)),
                                   trans, betas, num_joints)
