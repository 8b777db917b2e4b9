"""The body surface the VPoser objectives and measures are taken on: a body model posed by its body-joint
rotations only (zero shape, root at the origin), on all vertices or a farthest-point subset of them."""

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.body_model.lbs import pose_features, skin_vertices
from human_body_prior.geometry.kinematics import KinematicTree, forward_kinematics
from human_body_prior.model_types.joints import NUM_BODY_JOINTS, NUM_POSE_BODY_JOINTS

M_TO_MM = 1000.0


class BodySurface(nn.Module):
    """Vertices and joints of a body model posed by body-joint rotations only (zero shape,
    root and hands), optionally on a fixed vertex subset for speed.

    bm_path: a model file BodyModel reads (SMPL, SMPL-H or SMPL-X: joints 1..21 are the body).
    num_vertices: 0/None for all vertices, else a fixed subset of that many, chosen by ``subset``:
    'random' (seeded with ``seed``; depends on the mesh's vertex order) or 'fps' (farthest-point
    sampling of the rest-pose vertices, which depends only on the geometry, not on the vertex order).
    forward(body_rotmats (B, 21, 3, 3)) -> (vertices (B, S, 3), joints (B, 22, 3): root + body) in
    the model's units (metres).

    Exact shortcut: a joint whose local rotation is the identity (hands, jaw, eyes here) moves its
    vertices exactly as its parent does, so their skinning weights are folded into the nearest body
    joint and their pose-corrective features (zero) are dropped. Only the 22 body joints are chained.
    """

    def __init__(self, bm_path, num_vertices=None, seed: int = 0, dtype=torch.float32, subset: str = "random"):
        super().__init__()
        from human_body_prior.body_model.body_model import BodyModel

        bm = BodyModel(bm_path, dtype=torch.float64)
        if not bm.spec.has_body:
            raise ValueError(f"{bm_path}: the VPoser loss needs a body model (smpl/smplh/smplx), got {bm.model_type}")
        V = bm.v_template.shape[0]
        if subset not in ("random", "fps"):
            raise ValueError(f"vertex subset must be 'random' or 'fps', got {subset!r}")
        if num_vertices and 0 < int(num_vertices) < V and subset == "fps":
            ids = farthest_point_subset(bm.v_template.numpy(), int(num_vertices))
        elif num_vertices and 0 < int(num_vertices) < V:
            rng = np.random.default_rng(seed)
            ids = np.sort(rng.choice(V, size=int(num_vertices), replace=False))
        else:
            ids = np.arange(V)
        ids_t = torch.as_tensor(ids)
        nb = NUM_BODY_JOINTS
        parents = list(bm.parents)
        ancestor = []
        for j in range(len(parents)):
            a = j
            while a >= nb:
                a = parents[a]
            ancestor.append(a)
        weights = torch.zeros(len(ids), nb, dtype=torch.float64)
        weights.index_add_(1, torch.as_tensor(ancestor), bm.weights[ids_t])

        self.model_type = bm.model_type
        self.num_model_vertices = V
        self.tree = KinematicTree(parents).select(range(nb))
        self.register_buffer("vertex_ids", ids_t)
        self.register_buffer("v_template", bm.v_template[ids_t].to(dtype))
        self.register_buffer("weights", weights.to(dtype))
        self.register_buffer("joints_rest", bm.J_template[:nb].to(dtype))
        if bm.posedirs is not None:
            P = bm.posedirs.shape[0]
            pd = bm.posedirs.reshape(P, V, 3)[:9 * NUM_POSE_BODY_JOINTS, ids_t].reshape(9 * NUM_POSE_BODY_JOINTS, -1)
            self.register_buffer("posedirs", pd.to(dtype))
        else:
            self.posedirs = None

    def forward(self, body_rotmats: torch.Tensor):
        B = body_rotmats.shape[0]
        body_rotmats = body_rotmats.reshape(B, NUM_POSE_BODY_JOINTS, 3, 3).to(self.v_template.dtype)
        eye = torch.eye(3, dtype=body_rotmats.dtype, device=body_rotmats.device)
        rot = torch.cat([eye.expand(B, 1, 3, 3), body_rotmats], dim=1)
        verts = self.v_template.expand(B, -1, -1)
        if self.posedirs is not None:
            verts = verts + (pose_features(rot) @ self.posedirs).reshape(B, -1, 3)
        joints, transforms = forward_kinematics(rot, self.joints_rest.expand(B, -1, -1), self.tree)
        return skin_vertices(verts, self.weights, transforms), joints


def farthest_point_subset(points: np.ndarray, k: int) -> np.ndarray:
    """Indices (sorted) of k of the (V, 3) points picked by farthest-point sampling.

    Starts at the point with the largest (y, x, z) and adds the point farthest from those chosen;
    exact distance ties (mirror-symmetric meshes) go to the larger (x, y, z). Permuting the points
    permutes the indices and picks the same positions.
    """
    P = np.asarray(points, dtype=np.float64)
    order = np.lexsort((P[:, 2], P[:, 0], P[:, 1]))  # last key primary: y, then x, then z
    first = order[-1]
    chosen = [first]
    dist = np.linalg.norm(P - P[first], axis=1)
    for _ in range(k - 1):
        far = np.flatnonzero(dist == dist.max())
        if len(far) > 1:
            far = far[np.lexsort((P[far, 2], P[far, 1], P[far, 0]))]
        nxt = far[-1]
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(P - P[nxt], axis=1))
    return np.sort(np.asarray(chosen))
