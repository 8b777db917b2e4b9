"""Linear blend skinning for SMPL-family models.

Shapes: B batch, V vertices, J joints, K shape coefficients, P = 9 (J - 1) pose-corrective features.
Lengths are in the model's units (metres for the official and the shipped models).

Two equivalent paths compute the posed mesh:
- the plain dense path (`skin_vertices`): blend a (3, 4) transform per vertex from all J joints;
- the fast path (`SparseSkinningWeights` + `skin_vertices_sparse`), used by BodyModel: the mesh is
  kept vertex-major, (V, 3, B), so that shape and pose correctives are one matrix product each with
  the file's own (3 V, K) and (3 V, P) layouts, and each vertex blends only the joints it has non-zero
  weights for (every non-zero weight is kept, however small, so the result is exact).
Both pose the joints with the one forward kinematics of ``kinematics.py``.
tests/test_lbs_fast_paths.py checks that both paths agree. Both support derivatives of any order: the
fast path's blend (`_SparseBlend`) is an embedding_bag whose backward is the embedding_bag of the
transposed weights (torch's own embedding_bag has no second derivative).
"""

import torch
import torch.nn.functional as F

from human_body_prior.geometry.kinematics import KinematicTree, forward_kinematics
from human_body_prior.geometry.rotations import axis_angle_to_matrix


def blend_shapes(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Linear blend shapes. coeffs (B, K), dirs (V, 3, K) -> offsets (B, V, 3)."""
    return torch.einsum("bk,vck->bvc", coeffs, dirs)


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """Pose-corrective features (R_j - I) of all joints but the root. (B, J, 3, 3) -> (B, 9 (J - 1))."""
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint transforms by skinning weights (plain dense path). vertices (B, V, 3),
    weights (V, J), transforms (B, J, 3, 4) -> (B, V, 3)."""
    B, J = transforms.shape[:2]
    T = torch.matmul(weights, transforms.reshape(B, J, 12)).reshape(B, -1, 3, 4)
    return (T[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + T[..., 3]


class SparseSkinningWeights:
    """The non-zero entries of a (V, J) skinning-weight matrix, row by row (CSR), every one of them.

    joints (N,) long and values (N,) the non-zero weights in row order; offsets (V,) long, where each
    vertex's entries start. The same entries joint by joint (the transpose, for the backward pass):
    t_vertices (N,), t_values (N,), t_offsets (J,). Build with `from_dense`; `tensors()` gives the six
    tensors in that order.
    """

    def __init__(self, joints: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor, num_joints: int):
        self.joints, self.values, self.offsets, self.num_joints = joints, values, offsets, int(num_joints)
        ends = torch.cat([offsets[1:], offsets.new_tensor([joints.numel()])])
        vertices = torch.repeat_interleave(torch.arange(offsets.numel(), device=offsets.device), ends - offsets)
        order = torch.argsort(joints, stable=True)
        per_joint = torch.bincount(joints, minlength=self.num_joints)
        self.t_vertices, self.t_values = vertices[order], values[order]
        self.t_offsets = torch.cumsum(per_joint, 0) - per_joint

    @classmethod
    def from_dense(cls, weights: torch.Tensor) -> "SparseSkinningWeights":
        if weights.dim() != 2:
            raise ValueError(f"weights must have shape (V, J), got {tuple(weights.shape)}")
        rows, cols = torch.nonzero(weights, as_tuple=True)  # row-major order
        counts = torch.bincount(rows, minlength=weights.shape[0])
        offsets = torch.cumsum(counts, 0) - counts
        return cls(cols, weights[rows, cols], offsets, weights.shape[1])

    def tensors(self) -> tuple:
        return self.joints, self.values, self.offsets, self.t_vertices, self.t_values, self.t_offsets

    @property
    def max_per_vertex(self) -> int:
        """The largest number of joints any vertex is skinned to."""
        ends = torch.cat([self.offsets[1:], self.offsets.new_tensor([self.joints.numel()])])
        return int((ends - self.offsets).max()) if self.offsets.numel() else 0


def skin_vertices_sparse(rest_vm: torch.Tensor, sparse_weights: tuple, transforms: torch.Tensor) -> torch.Tensor:
    """Skin vertex-major rest points with each vertex's non-zero weights only.

    rest_vm (V, 3, B); sparse_weights, the six tensors of SparseSkinningWeights.tensors();
    transforms (B, J, 3, 4) -> posed points (V, 3, B).
    """
    B, J = transforms.shape[:2]
    V = rest_vm.shape[0]
    # One table row per joint holding its B transforms as (column d, row c, batch b); a weighted bag
    # of rows per vertex is that vertex's blended transform, already in the layout of rest_vm.
    table = transforms.permute(1, 3, 2, 0).reshape(J, 12 * B)
    if not (torch.is_grad_enabled() and (table.requires_grad or rest_vm.requires_grad)):
        return _skin_in_chunks(rest_vm, sparse_weights, table)
    blended = _SparseBlend.apply(table, tuple(sparse_weights[:3]), tuple(sparse_weights[3:])).view(V, 4, 3, B)
    return _ApplyBlended.apply(blended, rest_vm)


_CHUNK_BYTES = 1 << 21  # blended transforms per chunk: small enough to stay in cache until applied


def _skin_in_chunks(rest_vm: torch.Tensor, sparse_weights: tuple, table: torch.Tensor) -> torch.Tensor:
    """skin_vertices_sparse without autograd, a few hundred vertices at a time, so that each chunk's
    blended transforms (n, 4, 3, B) are applied while still in cache instead of a (V, 12 B) array going
    through memory twice. The same sums in the same order: bit for bit the result of the plain path."""
    joints, values, offsets = sparse_weights[:3]
    V, B = rest_vm.shape[0], rest_vm.shape[2]
    ends = torch.cat([offsets[1:], offsets.new_tensor([joints.numel()])])
    step = max(1, _CHUNK_BYTES // (table.shape[1] * table.element_size()))
    posed = torch.empty_like(rest_vm)
    for start in range(0, V, step):
        stop = min(V, start + step)
        first, last = int(offsets[start]), int(ends[stop - 1])
        blended = F.embedding_bag(joints[first:last], table, offsets[start:stop] - first, mode="sum",
                                  per_sample_weights=values[first:last]).view(stop - start, 4, 3, B)
        rest = rest_vm[start:stop]
        out = torch.addcmul(blended[:, 3], blended[:, 0], rest[:, 0:1], out=posed[start:stop])
        out.addcmul_(blended[:, 1], rest[:, 1:2]).addcmul_(blended[:, 2], rest[:, 2:3])
    return posed


class _SparseBlend(torch.autograd.Function):
    """rows (R, C) -> bags (M, C): each bag the weighted sum of the rows its CSR triple
    (indices (N,), values (N,), offsets (M,)) lists. Its backward is the same blend with the transposed
    triple, so it has derivatives of every order (torch's embedding_bag backward has no derivative)."""

    @staticmethod
    def forward(ctx, rows, csr, csr_t):
        ctx.csr, ctx.csr_t = csr, csr_t
        indices, values, offsets = csr
        return F.embedding_bag(indices, rows, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx, grad):
        return _SparseBlend.apply(grad.contiguous(), ctx.csr_t, ctx.csr), None, None


class _ApplyBlended(torch.autograd.Function):
    """posed = blended[:, 3] + sum_d blended[:, d] * rest[:, d]: blended (V, 4, 3, B) per-vertex transforms
    stored by column, rest (V, 3, B) -> (V, 3, B). Written out because autograd's own backward of the
    three fused multiply-adds makes several extra passes over (V, 3, B) arrays."""

    @staticmethod
    def forward(ctx, blended, rest):
        ctx.save_for_backward(blended, rest)
        posed = torch.addcmul(blended[:, 3], blended[:, 0], rest[:, 0:1])
        posed.addcmul_(blended[:, 1], rest[:, 1:2])
        return posed.addcmul_(blended[:, 2], rest[:, 2:3])

    @staticmethod
    def backward(ctx, grad):
        blended, rest = ctx.saved_tensors
        grad_blended = grad_rest = None
        if ctx.needs_input_grad[0]:
            grad_blended = torch.stack([grad * rest[:, 0:1], grad * rest[:, 1:2], grad * rest[:, 2:3], grad], 1)
        if ctx.needs_input_grad[1]:
            grad_rest = (blended[:, :3] * grad.unsqueeze(1)).sum(2)
        return grad_blended, grad_rest


def shaped_vertices_vertex_major(shape_coeffs: torch.Tensor, v_template: torch.Tensor,
                                 shapedirs: torch.Tensor) -> torch.Tensor:
    """Template plus shape blend shapes as one matrix product, vertex-major.

    shape_coeffs (B, K); v_template (V, 3) or (B, V, 3); shapedirs (V, 3, K) -> (V, 3, B).
    """
    B = shape_coeffs.shape[0]
    V = shapedirs.shape[0]
    if v_template.dim() == 2:
        base = v_template.reshape(3 * V, 1)
    else:
        base = v_template.expand(B, V, 3).reshape(B, 3 * V).t()
    return torch.addmm(base, shapedirs.reshape(3 * V, -1), shape_coeffs.t()).view(V, 3, B)


def pose_skeleton(full_pose: torch.Tensor, joints: torch.Tensor, tree: KinematicTree, moving=None):
    """Rotations and forward kinematics. full_pose (B, 3 J) axis-angle (rad); joints (J, 3) or (B, J, 3) rest
    joints -> local rotations (B, J, 3, 3), posed joints (B, J, 3), skinning transforms (B, J, 3, 4).

    moving: None, or a :class:`MovingJoints` of ``tree`` when the other joints' rotations are known to be
    zero (e.g. hands and face a body-only caller never poses): only the moving joints are chained, and
    each other joint takes its anchor's skinning transform (the same rigid motion)."""
    B = full_pose.shape[0]
    joints = joints.expand(B, -1, -1)
    if moving is None:
        rot_mats = axis_angle_to_matrix(full_pose.reshape(B, -1, 3))
        posed_joints, transforms = forward_kinematics(rot_mats, joints, tree)
        return rot_mats, posed_joints, transforms
    index = moving.index.to(full_pose.device)
    moving_rot = axis_angle_to_matrix(full_pose.reshape(B, -1, 3).index_select(1, index))
    moving_posed, moving_transforms = forward_kinematics(moving_rot, joints.index_select(1, index), moving.tree)
    transforms = moving_transforms.index_select(1, moving.anchor.to(full_pose.device))
    posed_joints = (transforms[..., :3] @ joints.unsqueeze(-1)).squeeze(-1) + transforms[..., 3]
    posed_joints = posed_joints.index_copy(1, index, moving_posed)
    eye = torch.eye(3, dtype=moving_rot.dtype, device=moving_rot.device)
    rot_mats = eye.expand(B, len(tree), 3, 3).index_copy(1, index, moving_rot)
    return rot_mats, posed_joints, transforms


def rest_joints_without_mesh(shape_coeffs, J_template=None, J_shapedirs=None, rest_joints=None):
    """The rest joints (J, 3) or (B, J, 3) when they do not need the shaped mesh: the given ones, or the
    regressor's template joints plus their shape blend shapes; None when they must be regressed."""
    if rest_joints is not None:
        return rest_joints
    if J_template is not None and J_shapedirs is not None:
        return J_template + blend_shapes(shape_coeffs, J_shapedirs)
    return None


def shaped_rest(shape_coeffs, v_template, shapedirs, sparse_weights=None) -> torch.Tensor:
    """Template plus shape blend shapes: (B, V, 3) for the dense path, vertex-major (V, 3, B) for the sparse one."""
    if sparse_weights is None:
        return v_template + blend_shapes(shape_coeffs, shapedirs)
    return shaped_vertices_vertex_major(shape_coeffs, v_template, shapedirs)


def skin_mesh(rot_mats: torch.Tensor, transforms: torch.Tensor, rest: torch.Tensor, posedirs, weights: torch.Tensor,
              sparse_weights=None) -> torch.Tensor:
    """The posed mesh (B, V, 3) of a posed skeleton (rot_mats (B, J, 3, 3), transforms (B, J, 3, 4) from
    :func:`pose_skeleton`) and its shaped rest mesh (:func:`shaped_rest`, consumed): pose correctives, then
    skinning (arguments as in :func:`lbs`)."""
    B = rot_mats.shape[0]
    if sparse_weights is None:
        v_shaped = rest
        if posedirs is not None:
            v_shaped = v_shaped + (pose_features(rot_mats) @ posedirs).reshape(B, -1, 3)
        return skin_vertices(v_shaped, weights, transforms)
    V = rest.shape[0]
    if posedirs is not None:  # in place, sparing a copy of the mesh; posedirs.t() is (3 V, P)
        rest.view(3 * V, B).addmm_(posedirs.t(), pose_features(rot_mats).t())
    posed = skin_vertices_sparse(rest, sparse_weights, transforms)
    # as a 2-D transpose, which torch copies block by block (a 3-D permute copy is far slower)
    return posed.view(3 * V, B).t().contiguous().view(B, V, 3)


def lbs(full_pose: torch.Tensor, shape_coeffs: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, posedirs, J_regressor: torch.Tensor, weights: torch.Tensor,
        tree: KinematicTree, J_template=None, J_shapedirs=None, sparse_weights=None, rest_joints=None):
    """Shape, pose-correct, pose and skin a body.

    full_pose (B, 3 J) axis-angle (rad); shape_coeffs (B, K); v_template (V, 3) or (B, V, 3);
    shapedirs (V, 3, K); posedirs (P, 3 V) or None to skip pose correctives; J_regressor (J, V);
    weights (V, J). J_template (J, 3) and J_shapedirs (J, 3, K), the regressor applied to the template
    and to the shape directions, may be given to skip regressing joints from the shaped mesh.
    sparse_weights, SparseSkinningWeights.tensors() of `weights`, selects the fast vertex-major path;
    None the plain dense one. rest_joints (J, 3) or (B, J, 3), if given, are the rest joints to pose about
    (nothing is regressed).
    Returns vertices (B, V, 3) and posed joints (B, J, 3).
    """
    rest = shaped_rest(shape_coeffs, v_template, shapedirs, sparse_weights)
    joints = rest_joints_without_mesh(shape_coeffs, J_template, J_shapedirs, rest_joints)
    if joints is None:  # regressed from the shaped mesh (without pose correctives)
        pattern = "jv,bvc->bjc" if sparse_weights is None else "jv,vcb->bjc"
        joints = torch.einsum(pattern, J_regressor, rest)
    rot_mats, posed_joints, transforms = pose_skeleton(full_pose, joints, tree)
    return skin_mesh(rot_mats, transforms, rest, posedirs, weights, sparse_weights), posed_joints
