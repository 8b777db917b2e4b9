"""Linear blend skinning for SMPL-family models.

Shapes: B batch, V vertices, J joints, K shape coefficients, P = 9 (J - 1) pose-corrective features.
Lengths are in the model's units (metres for the official and the shipped models).
"""

import torch

from human_body_prior.tools.rotation_tools import axis_angle_to_matrix


class KinematicTree:
    """A joint tree grouped by depth so that each level of the chain is one batched product.

    parents: sequence of J ints, parents[0] == -1 and parents[j] < j.
    """

    def __init__(self, parents):
        parents = [int(p) for p in parents]
        if not parents or parents[0] != -1 or any(not (0 <= p < j) for j, p in enumerate(parents) if j):
            raise ValueError(f"parents must start with -1 and list each parent before its child, got {parents}")
        self.parents = parents
        depth = [0] * len(parents)
        for j in range(1, len(parents)):
            depth[j] = depth[parents[j]] + 1
        self.levels = []  # [(joint indices, their parents)] for depth 1, 2, ...
        for d in range(1, max(depth) + 1):
            joints = [j for j in range(len(parents)) if depth[j] == d]
            self.levels.append((torch.tensor(joints), torch.tensor([parents[j] for j in joints])))

    def __len__(self):
        return len(self.parents)


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Linear blend shapes. coeffs (B, K), dirs (V, 3, K) -> offsets (B, V, 3)."""
    return torch.einsum("bk,vck->bvc", coeffs, dirs)


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """Pose-corrective features (R_j - I) of all joints but the root. (B, J, 3, 3) -> (B, 9 (J - 1))."""
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)


def forward_kinematics(rot_mats: torch.Tensor, joints: torch.Tensor, tree: KinematicTree):
    """Chain local rotations about rest joints into global transforms.

    rot_mats (B, J, 3, 3) local rotations; joints (B, J, 3) rest joint locations.
    Returns posed joints (B, J, 3) and skinning transforms (B, J, 3, 4) that map rest-pose points
    to posed points for each joint (rotation, translation).
    """
    rel = joints.clone()
    for idx, par in tree.levels:
        rel[:, idx] = joints[:, idx] - joints[:, par]
    glob_R = torch.empty_like(rot_mats)
    glob_t = torch.empty_like(joints)
    glob_R[:, 0] = rot_mats[:, 0]
    glob_t[:, 0] = joints[:, 0]
    for idx, par in tree.levels:
        parent_R = glob_R[:, par]
        glob_R[:, idx] = parent_R @ rot_mats[:, idx]
        glob_t[:, idx] = (parent_R @ rel[:, idx].unsqueeze(-1)).squeeze(-1) + glob_t[:, par]
    offset = glob_t - (glob_R @ joints.unsqueeze(-1)).squeeze(-1)
    return glob_t, torch.cat([glob_R, offset.unsqueeze(-1)], dim=-1)


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint transforms by skinning weights. vertices (B, V, 3), weights (V, J),
    transforms (B, J, 3, 4) -> (B, V, 3)."""
    B, J = transforms.shape[:2]
    T = torch.matmul(weights, transforms.reshape(B, J, 12)).reshape(B, -1, 3, 4)
    return (T[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + T[..., 3]


def lbs(full_pose: torch.Tensor, shape_coeffs: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, posedirs, J_regressor: torch.Tensor, weights: torch.Tensor,
        tree: KinematicTree, J_template=None, J_shapedirs=None):
    """Shape, pose-correct, pose and skin a body.

    full_pose (B, 3 J) axis-angle (rad); shape_coeffs (B, K); v_template (V, 3) or (B, V, 3);
    shapedirs (V, 3, K); posedirs (P, 3 V) or None to skip pose correctives; J_regressor (J, V);
    weights (V, J). J_template (J, 3) and J_shapedirs (J, 3, K), the regressor applied to the template
    and to the shape directions, may be given to skip regressing joints from the shaped mesh.
    Returns vertices (B, V, 3) and posed joints (B, J, 3).
    """
    B = full_pose.shape[0]
    v_shaped = v_template + blend_shapes(shape_coeffs, shapedirs)
    if J_template is not None and J_shapedirs is not None:
        joints = J_template + blend_shapes(shape_coeffs, J_shapedirs)
    else:
        joints = torch.einsum("jv,bvc->bjc", J_regressor, v_shaped)
    rot_mats = axis_angle_to_matrix(full_pose.reshape(B, -1, 3))
    if posedirs is not None:
        v_shaped = v_shaped + (pose_features(rot_mats) @ posedirs).reshape(B, -1, 3)
    posed_joints, transforms = forward_kinematics(rot_mats, joints.expand(B, -1, -1), tree)
    return skin_vertices(v_shaped, weights, transforms), posed_joints
