"""Linear blend skinning for SMPL-family models.

Shapes: B batch, V vertices, J joints, K shape coefficients, P = 9 (J - 1) pose-corrective features.
Lengths are in the model's units (metres for the official and the shipped models).

Two equivalent paths compute the posed mesh:
- the plain dense path (`skin_vertices`): blend a (3, 4) transform per vertex from all J joints, as one
  product with the vertices last; the fast path's choice, too, at batches up to 4;
- the fast path (`SparseSkinningWeights` + `skin_vertices_sparse`), used by BodyModel: the mesh is
  kept vertex-major, (V, 3, B), so that shape and pose correctives are one matrix product each with
  the file's own (3 V, K) and (3 V, P) layouts, and each vertex blends only the joints it has non-zero
  weights for (every non-zero weight is kept, however small, so the result is exact).
The fast path runs a few hundred vertices at a time on the CPU (`posed_mesh`, `_posed_in_chunks`,
`_SkinInChunks`): each chunk is skinned (and, without autograd, also shaped and pose-corrected) and
written into the batch-major result while it is in cache; its first derivatives are taken chunk by
chunk too. Both paths pose the joints with the one forward kinematics of ``kinematics.py``.
tests/test_lbs_fast_paths.py checks that both paths agree. Both support derivatives of any order: past
the first, the fast path's derivatives are composed of differentiable operations, among them the blend
`_SparseBlend`, an embedding_bag whose backward is the embedding_bag of the transposed weights (torch's
own embedding_bag has no second derivative).
"""

from typing import NamedTuple

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


class JointRows(NamedTuple):
    """The pose-corrective rows of some joints only, when every other joint's rotation is known to be the
    identity (its features are zero): joints (m,) joint indices (never the root), dirs (9 m, 3 V) their
    rows of posedirs, in that order. Copied into one block (:func:`joint_rows`), they are read in one
    contiguous pass instead of as columns strided across the whole of the file's (3 V, P) array."""

    joints: torch.Tensor
    dirs: torch.Tensor


def joint_rows(posedirs: torch.Tensor, moving) -> JointRows:
    """The rows of posedirs (9 (J - 1), 3 V) of the moving joints but the root (``moving`` a
    :class:`MovingJoints`), copied with the file's memory order: dirs is a (3 V, 9 m) array, transposed.
    Differentiable: a gradient for dirs flows back into posedirs."""
    joints = moving.index[moving.index > 0]
    rows = (9 * (joints - 1)).repeat_interleave(9) + torch.arange(9).repeat(len(joints))
    return JointRows(joints, posedirs.t()[:, rows.to(posedirs.device)].t())


def corrective_blocks(rot_mats: torch.Tensor, posedirs) -> list:
    """The pose correctives as [(features (B, n), directions (n, 3 V))], whose product is
    pose_features(rot_mats) @ posedirs; [] when posedirs is None.

    posedirs: (9 (J - 1), 3 V), nine rows per joint but the root; or a :class:`JointRows` when only some
    joints move (the others' features are exactly zero, and their rows, most of an SMPL-X file's when
    only the body moves, are not read)."""
    if posedirs is None:
        return []
    if not isinstance(posedirs, JointRows):
        return [(pose_features(rot_mats), posedirs)]
    if not len(posedirs.joints):
        return []
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return [((rot_mats.index_select(1, posedirs.joints.to(rot_mats.device)) - eye).flatten(1), posedirs.dirs)]


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint transforms by skinning weights (plain dense path). vertices (B, V, 3),
    weights (V, J), transforms (B, J, 3, 4) -> (B, V, 3).

    The blend is one product with the vertices last, (B, 12, J) @ (J, V), so that applying each
    vertex's transform runs along the vertices (with them first, each vertex would be a 3 x 4 product)."""
    B, J = transforms.shape[:2]
    blended = torch.matmul(transforms.reshape(B, J, 12).transpose(1, 2), weights.t()).view(B, 3, 4, -1)
    homogeneous = torch.cat([vertices.transpose(1, 2), vertices.new_ones(B, 1, vertices.shape[1])], 1).unsqueeze(1)
    # in place when autograd records nothing: no second (B, 3, 4, V) array, and the same sums
    product = blended * homogeneous if _needs_grad(vertices, weights, transforms) else blended.mul_(homogeneous)
    return product.sum(2).transpose(1, 2).contiguous()


# Batches up to this one take the dense path even when sparse weights are given: there the vertex-major
# layout's innermost dimension, the batch, is too short for vectorised loops, and MKL's vertex-major
# product with the files' (3 V, P) correctives is 2-4x slower than the batch-major one at batch 2-3.
# Official-layout SMPL-X, 1 thread, forward + backward: batch 2 21.1 -> 18.3 ms (body-only 15.5 -> 12.3),
# batch 4 29.2 -> 27.1; forward alone within 3%. Batch 8 would be slower (34 -> 38 ms).
_DENSE_MAX = 4


def _skin_path(sparse_weights, batch: int):
    """The sparse weights to skin with, or None (the dense path) at a batch up to _DENSE_MAX."""
    return None if batch <= _DENSE_MAX else sparse_weights


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
    transforms (B, J, 3, 4) -> posed points (V, 3, B) (a view of a batch-major array).
    """
    return _SkinInChunks.apply(_transform_table(transforms), rest_vm, None, tuple(sparse_weights)).permute(1, 2, 0)


def _transform_table(transforms: torch.Tensor) -> torch.Tensor:
    """(B, J, 3, 4) -> (J, 12 B): one row per joint holding its B transforms as (column d, row c, batch b),
    so that a weighted bag of rows per vertex is that vertex's blended transform, laid out like a
    vertex-major (3, B) point."""
    B, J = transforms.shape[:2]
    return transforms.permute(1, 3, 2, 0).reshape(J, 12 * B)


_CHUNK_BYTES = 1 << 21  # blended transforms per chunk: small enough to stay in cache until applied


def _chunks(sparse_weights: tuple, table: torch.Tensor):
    """(start, stop, first, last) of successive vertex chunks and the CSR entries they own: a few hundred
    vertices each on the CPU, so that a chunk's blended transforms (n, 12 B) stay in cache; one chunk
    elsewhere (a GPU gains nothing from it and pays per kernel launch)."""
    joints, offsets = sparse_weights[0], sparse_weights[2]
    V = offsets.numel()
    step = max(1, _CHUNK_BYTES // (table.shape[1] * table.element_size())) if table.device.type == "cpu" else V
    if step >= V:  # known without reading the offsets (on a GPU, reading them would wait for it)
        yield 0, V, 0, joints.numel()
        return
    ends = torch.cat([offsets[1:], offsets.new_tensor([joints.numel()])])
    for start in range(0, V, step):
        stop = min(V, start + step)
        yield start, stop, int(offsets[start]), int(ends[stop - 1])


def _blend(sparse_weights: tuple, table: torch.Tensor, start, stop, first, last) -> torch.Tensor:
    """The blended transforms (n, 4, 3, B) of vertices start..stop (CSR entries first..last)."""
    joints, values, offsets = sparse_weights[:3]
    return F.embedding_bag(joints[first:last], table, offsets[start:stop] - first, mode="sum",
                           per_sample_weights=values[first:last]).view(stop - start, 4, 3, -1)


def _posed_in_chunks(rest_rows, correctives: list, sparse_weights: tuple, table: torch.Tensor,
                     trans=None) -> torch.Tensor:
    """The posed mesh (B, V, 3) without autograd, a few hundred vertices at a time (on the CPU): each chunk
    is pose-corrected, skinned and written into the batch-major result while in cache, so that no
    (3 V, B) array goes through memory between the steps.

    rest_rows(start, stop) -> (3 (stop - start), B): the shaped rest rows of those vertices, vertex-major,
    which this function may change in place. correctives, the list of :func:`corrective_blocks` (empty:
    no correctives); sparse_weights as in :func:`skin_vertices_sparse`; table (J, 12 B) from
    :func:`_transform_table`; trans (B, 3) or None. The sums and their order are those of the autograd
    path, so the result is the same."""
    B, V = table.shape[1] // 12, sparse_weights[2].numel()
    trans_t = None if trans is None else trans.reshape(B, 3).t()  # (3, B)
    posed = table.new_empty(B, V, 3)
    flat = posed.view(B, 3 * V)
    for start, stop, first, last in _chunks(sparse_weights, table):
        rest = rest_rows(start, stop)
        for feats, dirs in correctives:  # dirs (P, 3 V) is the file's (3 V, P) array transposed
            rest.addmm_(dirs[:, 3 * start:3 * stop].t(), feats.t())
        rest = rest.view(stop - start, 3, B)
        blended = _blend(sparse_weights, table, start, stop, first, last)
        out = torch.addcmul(blended[:, 3], blended[:, 0], rest[:, 0:1])
        out.addcmul_(blended[:, 1], rest[:, 1:2]).addcmul_(blended[:, 2], rest[:, 2:3])
        if trans_t is not None:
            out.add_(trans_t)
        # as a 2-D transpose into the result's columns, which torch copies block by block
        flat[:, 3 * start:3 * stop].copy_(out.view(-1, B).t())
    return posed


class _SkinInChunks(torch.autograd.Function):
    """Sparse skinning into a batch-major mesh: table (J, 12 B) of :func:`_transform_table`, rest (V, 3, B)
    vertex-major, trans (B, 3) or None -> posed (B, V, 3). The forward and first derivatives run a few
    hundred vertices at a time, recomputing each chunk's blended transforms instead of storing a
    (V, 12 B) array; higher derivatives (create_graph) go through the composite differentiable path."""

    @staticmethod
    def forward(table, rest, trans, sparse_weights):
        V, B = rest.shape[0], rest.shape[2]
        rest_vm = rest.reshape(3 * V, B)
        return _posed_in_chunks(lambda start, stop: rest_vm[3 * start:3 * stop], [], sparse_weights, table, trans)

    @staticmethod
    def setup_context(ctx, inputs, output):  # a separate context set-up lets torch.func transforms use it
        table, rest, trans, sparse_weights = inputs
        ctx.save_for_backward(table, rest, trans)
        ctx.sparse_weights = sparse_weights

    @staticmethod
    def backward(ctx, grad):
        table, rest, trans = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: derivatives of the derivatives
            return (*_skin_grads_composite(grad, table, rest, trans, ctx.sparse_weights), None)
        sw = ctx.sparse_weights
        J, V, B = table.shape[0], rest.shape[0], rest.shape[2]
        need_table, need_rest, need_trans = ctx.needs_input_grad[:3]
        grad_table = torch.zeros_like(table) if need_table else None
        grad_rest = torch.empty_like(rest) if need_rest else None
        grad_trans = grad.new_zeros(3, B) if need_trans else None
        flat = grad.reshape(B, 3 * V)
        chunks = list(_chunks(sw, table))
        by_joint = _chunks_by_joint(sw, chunks, J) if need_table else [None] * len(chunks)
        for (start, stop, first, last), chunk_t in zip(chunks, by_joint):
            g = flat[:, 3 * start:3 * stop].t().contiguous().view(stop - start, 3, B)
            if need_trans:
                grad_trans += g.sum(0)
            if need_rest:
                grad_rest[start:stop] = _grad_rest(_blend(sw, table, start, stop, first, last), g)
            if need_table:
                per_vertex = _grad_blended(rest[start:stop], g)
                vertices, values, joint_offsets = chunk_t
                grad_table += F.embedding_bag(vertices, per_vertex.view(stop - start, -1), joint_offsets,
                                              mode="sum", per_sample_weights=values)
        return grad_table, grad_rest, None if grad_trans is None else grad_trans.t(), None


def _chunks_by_joint(sparse_weights: tuple, chunks: list, num_joints: int) -> list:
    """For each chunk (start, stop, first, last) of :func:`_chunks`, its CSR entries joint by joint, in
    vertex order within each joint: local vertex indices (n,), values (n,) and where each of the
    num_joints joints starts (J,). All chunks are sorted at once, by (chunk, joint)."""
    joints, values, offsets = sparse_weights[:3]
    V, N = offsets.numel(), joints.numel()
    if len(chunks) == 1 and chunks[0][:2] == (0, V):  # the whole mesh: the transpose SparseSkinningWeights keeps
        return [sparse_weights[3:]]
    device = joints.device
    starts = torch.tensor([c[0] for c in chunks], device=device)
    sizes = torch.tensor([c[1] - c[0] for c in chunks], device=device)
    vertex = torch.repeat_interleave(torch.arange(V, device=device), torch.diff(offsets, append=offsets.new_tensor([N])))
    chunk = torch.repeat_interleave(torch.arange(len(chunks), device=device), sizes)[vertex]
    key = chunk * num_joints + joints
    order = torch.argsort(key, stable=True)  # stable: vertex order within each (chunk, joint)
    local, vals = (vertex - starts[chunk])[order], values[order]
    per_joint = torch.bincount(key, minlength=len(chunks) * num_joints).view(len(chunks), num_joints)
    joint_offsets = torch.cumsum(per_joint, 1) - per_joint
    return [(local[first:last], vals[first:last], joint_offsets[i]) for i, (_, _, first, last) in enumerate(chunks)]


def _grad_rest(blended: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """d posed / d rest applied to g: blended (n, 4, 3, B) transforms, g (n, 3, B) -> (n, 3, B), where
    posed = blended[:, 3] + sum_d blended[:, d] * rest[:, d]. One (n, 3, B) pass per row c of the
    transforms, which is faster than reducing an (n, 3, 3, B) product."""
    out = blended[:, :3, 0] * g[:, 0:1]
    return out.addcmul_(blended[:, :3, 1], g[:, 1:2]).addcmul_(blended[:, :3, 2], g[:, 2:3])


def _grad_blended(rest: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """d posed / d blended applied to g: rest (n, 3, B), g (n, 3, B) -> (n, 4, 3, B): the homogeneous rest
    point times g, in one broadcast product."""
    homogeneous = torch.cat([rest, torch.ones_like(rest[:, :1])], 1)
    return homogeneous.unsqueeze(2) * g.unsqueeze(1)


def _skin_grads_composite(grad, table, rest, trans, sparse_weights):
    """The derivatives of _SkinInChunks for (table, rest, trans) from differentiable operations, so that
    they can be differentiated again. grad (B, V, 3)."""
    V, B = rest.shape[0], rest.shape[2]
    g = grad.permute(1, 2, 0)  # (V, 3, B)
    blended = _SparseBlend.apply(table, tuple(sparse_weights[:3]), tuple(sparse_weights[3:])).view(V, 4, 3, B)
    per_vertex = _grad_blended(rest, g).reshape(V, -1)
    grad_table = _SparseBlend.apply(per_vertex, tuple(sparse_weights[3:]), tuple(sparse_weights[:3]))
    return grad_table, _grad_rest(blended, g), None if trans is None else grad.sum(1)


class _SparseBlend(torch.autograd.Function):
    """rows (R, C) -> bags (M, C): each bag the weighted sum of the rows its CSR triple
    (indices (N,), values (N,), offsets (M,)) lists. Its backward is the same blend with the transposed
    triple, so it has derivatives of every order (torch's embedding_bag backward has no derivative)."""

    @staticmethod
    def forward(rows, csr, csr_t):
        indices, values, offsets = csr
        return F.embedding_bag(indices, rows, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def setup_context(ctx, inputs, output):  # a separate context set-up lets torch.func transforms use it
        ctx.csr, ctx.csr_t = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return _SparseBlend.apply(grad.contiguous(), ctx.csr_t, ctx.csr), None, None


def shaped_vertices_vertex_major(shape_coeffs: torch.Tensor, v_template: torch.Tensor,
                                 shapedirs: torch.Tensor) -> torch.Tensor:
    """Template plus shape blend shapes as one matrix product, vertex-major.

    shape_coeffs (B, K); v_template (V, 3) or (B, V, 3); shapedirs (V, 3, K) -> (V, 3, B).
    """
    V = shapedirs.shape[0]
    return _shaped_rows(shape_coeffs, v_template, shapedirs)(0, V).view(V, 3, shape_coeffs.shape[0])


def _shaped_rows(shape_coeffs, v_template, shapedirs):
    """rows(start, stop) -> (3 (stop - start), B): the vertex-major shaped rest of those vertices, a new
    tensor (arguments as in :func:`shaped_vertices_vertex_major`)."""
    B, V = shape_coeffs.shape[0], shapedirs.shape[0]
    if v_template.dim() == 2:
        base = v_template.reshape(3 * V, 1)
    else:
        base = v_template.expand(B, V, 3).reshape(B, 3 * V).t()
    dirs, coeffs = shapedirs.reshape(3 * V, -1), shape_coeffs.t()
    return lambda start, stop: torch.addmm(base[3 * start:3 * stop], dirs[3 * start:3 * stop], coeffs)


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
              sparse_weights=None, trans=None) -> torch.Tensor:
    """The posed mesh (B, V, 3) of a posed skeleton (rot_mats (B, J, 3, 3), transforms (B, J, 3, 4) from
    :func:`pose_skeleton`) and its shaped rest mesh (:func:`shaped_rest`, consumed): pose correctives, then
    skinning (arguments as in :func:`lbs`; posedirs may also be a :class:`JointRows`), then trans (B, 3)
    added if given."""
    B = rot_mats.shape[0]
    correctives = corrective_blocks(rot_mats, posedirs)
    if sparse_weights is None:
        v_shaped = rest
        for feats, dirs in correctives:
            v_shaped = v_shaped + (feats @ dirs).reshape(B, -1, 3)
        v = skin_vertices(v_shaped, weights, transforms)
        return v if trans is None else v + trans.unsqueeze(1)
    V = rest.shape[0]
    rest_vm = rest.view(3 * V, B)
    table = _transform_table(transforms)
    if not _needs_grad(rot_mats, transforms, rest, posedirs, trans):
        return _posed_in_chunks(lambda start, stop: rest_vm[3 * start:3 * stop], correctives, sparse_weights,
                                table, trans)
    for feats, dirs in correctives:  # not in place, which autograd would pay for in copies
        rest_vm = torch.addmm(rest_vm, dirs.t(), feats.t())
    return _SkinInChunks.apply(table, rest_vm.view(V, 3, B), trans, tuple(sparse_weights))


def posed_mesh(rot_mats: torch.Tensor, transforms: torch.Tensor, shape_coeffs: torch.Tensor,
               v_template: torch.Tensor, shapedirs: torch.Tensor, posedirs, weights: torch.Tensor,
               sparse_weights=None, trans=None) -> torch.Tensor:
    """The posed mesh (B, V, 3) of a posed skeleton (as in :func:`skin_mesh`), shaped from shape_coeffs,
    v_template and shapedirs (as in :func:`shaped_rest`) and moved by trans (B, 3) (None: not moved).
    Without autograd on the sparse path, each few hundred vertices are shaped, pose-corrected and skinned
    while in cache (:func:`_posed_in_chunks`); the result is that of skin_mesh(shaped_rest(...), trans=trans)."""
    sparse_weights = _skin_path(sparse_weights, rot_mats.shape[0])
    if sparse_weights is not None and not _needs_grad(rot_mats, transforms, shape_coeffs, v_template, shapedirs,
                                                     posedirs, trans):
        return _posed_in_chunks(_shaped_rows(shape_coeffs, v_template, shapedirs),
                                corrective_blocks(rot_mats, posedirs), sparse_weights,
                                _transform_table(transforms), trans)
    return skin_mesh(rot_mats, transforms, shaped_rest(shape_coeffs, v_template, shapedirs, sparse_weights),
                     posedirs, weights, sparse_weights, trans)


def _needs_grad(*tensors) -> bool:
    tensors = [t.dirs if isinstance(t, JointRows) else t for t in tensors]
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def lbs(full_pose: torch.Tensor, shape_coeffs: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, posedirs, J_regressor: torch.Tensor, weights: torch.Tensor,
        tree: KinematicTree, J_template=None, J_shapedirs=None, sparse_weights=None, rest_joints=None):
    """Shape, pose-correct, pose and skin a body.

    full_pose (B, 3 J) axis-angle (rad); shape_coeffs (B, K); v_template (V, 3) or (B, V, 3);
    shapedirs (V, 3, K); posedirs (P, 3 V) or None to skip pose correctives; J_regressor (J, V);
    weights (V, J). J_template (J, 3) and J_shapedirs (J, 3, K), the regressor applied to the template
    and to the shape directions, may be given to skip regressing joints from the shaped mesh.
    sparse_weights, SparseSkinningWeights.tensors() of `weights`, selects the fast vertex-major path
    (at batches up to _DENSE_MAX, the dense one, faster there); None the plain dense one.
    rest_joints (J, 3) or (B, J, 3), if given, are the rest joints to pose about
    (nothing is regressed).
    Returns vertices (B, V, 3) and posed joints (B, J, 3).
    """
    sparse_weights = _skin_path(sparse_weights, full_pose.shape[0])
    rest = shaped_rest(shape_coeffs, v_template, shapedirs, sparse_weights)
    joints = rest_joints_without_mesh(shape_coeffs, J_template, J_shapedirs, rest_joints)
    if joints is None:  # regressed from the shaped mesh (without pose correctives)
        pattern = "jv,bvc->bjc" if sparse_weights is None else "jv,vcb->bjc"
        joints = torch.einsum(pattern, J_regressor, rest)
    rot_mats, posed_joints, transforms = pose_skeleton(full_pose, joints, tree)
    return skin_mesh(rot_mats, transforms, rest, posedirs, weights, sparse_weights), posed_joints
