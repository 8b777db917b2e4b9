"""The VPoser training objectives (v1, 2019, and v2, 2021) and the body surface they are measured on.

Objective per batch (2019): ``kl_coef * KL(q(z|x) || N(0, I))`` (summed over the latent
dimensions, averaged over the batch) ``+ (1 - kl_coef) * L1`` between the body-model vertices of
the input pose and of its reconstruction (mean absolute coordinate difference, millimetres),
plus, during the first epochs, ``(1 - kl_coef) * pose_loss_weight *`` the mean squared difference of
the rotation matrices. The mesh alone does not pin every joint rotation down (a joint can turn by
a large angle and its child turn back with little change of the skin, e.g. two short spine
segments), so without this term decoded rotations can drift far from the data's while the mesh
still matches.

Objective v2 (``V02_05.yaml``'s loss_weights): ``loss_kl_wt * KL + loss_rec_wt * L1(vertices, metres)``
plus, up to ``keep_extra_loss_terms_until_epoch``, ``loss_matrot_wt *`` the mean geodesic angle
(radians) between input and decoded joint rotations ``+ loss_jtr_wt * L1(body joints 1..21, metres)``.
"""

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.body_model.kinematics import KinematicTree, forward_kinematics
from human_body_prior.body_model.lbs import pose_features, skin_vertices
from human_body_prior.body_model.skeleton import NUM_BODY_JOINTS, NUM_POSE_BODY_JOINTS
from human_body_prior.tools.rotation_tools import geodesic_angle

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
        if bm.model_type not in ("smpl", "smplh", "smplx"):
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


def kl_to_standard_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) summed over the last dim. (N, D) -> (N,)."""
    var = std.pow(2)
    return 0.5 * (var + mean.pow(2) - 1.0 - torch.log(var.clamp_min(1e-20))).sum(-1)


def _posed_pair(pose_matrot_in, pose_matrot_rec, surface: BodySurface):
    """Input and reconstructed rotations as (N, 21, 3, 3) and their surfaces' (vertices, joints); the
    input's without gradient (it is the target)."""
    N = pose_matrot_in.shape[0]
    R_in = pose_matrot_in.reshape(N, NUM_POSE_BODY_JOINTS, 3, 3)
    R_rec = pose_matrot_rec.reshape(N, NUM_POSE_BODY_JOINTS, 3, 3)
    with torch.no_grad():
        posed_in = surface(R_in)
    return R_in, R_rec, posed_in, surface(R_rec)


def vposer_loss(pose_matrot_in, pose_matrot_rec, mean, std, surface: BodySurface, kl_coef: float,
                use_pose_term: bool, pose_weight: float = 1.0) -> dict:
    """The 2019 objective on one batch.

    pose_matrot_in / pose_matrot_rec: (N, 1, 21, 9) or (N, 21, 3, 3) rotation matrices;
    mean, std: (N, D) posterior parameters. pose_weight scales the rotation term (1: as in 2019).
    Returns a dict of scalar tensors: 'loss' (to minimise),
    'kl', 'mesh_l1_mm', 'pose_mse' and 'v2v_mm' (mean vertex distance, for logging).
    """
    R_in, R_rec, (v_in, _), (v_rec, _) = _posed_pair(pose_matrot_in, pose_matrot_rec, surface)
    diff_mm = (v_rec - v_in.to(v_rec.dtype)) * M_TO_MM
    mesh_l1 = diff_mm.abs().mean()
    kl = kl_to_standard_normal(mean, std).mean()
    pose_mse = (R_rec - R_in.to(R_rec.dtype)).pow(2).mean()
    loss = kl_coef * kl + (1.0 - kl_coef) * mesh_l1
    if use_pose_term:
        loss = loss + (1.0 - kl_coef) * pose_weight * pose_mse
    with torch.no_grad():
        v2v = diff_mm.norm(dim=-1).mean()
    return {"loss": loss, "kl": kl.detach(), "mesh_l1_mm": mesh_l1.detach(), "pose_mse": pose_mse.detach(),
            "v2v_mm": v2v}


V2_LOSS_WEIGHTS = ("loss_kl_wt", "loss_rec_wt", "loss_matrot_wt", "loss_jtr_wt")


def vposer_v2_loss(pose_matrot_in, pose_matrot_rec, mean, std, surface: BodySurface, weights: dict,
                   use_extra_terms: bool) -> dict:
    """The V02 objective on one batch (see the module docstring); weights: the four V2_LOSS_WEIGHTS.

    pose_matrot_in / pose_matrot_rec: (N, 21, 9), (N, 1, 21, 9) or (N, 21, 3, 3); mean, std: (N, D).
    Returns scalar tensors: 'loss', 'kl' (nats), 'mesh_l1_mm', 'jtr_l1_mm', 'geodesic_deg', 'v2v_mm'.
    """
    R_in, R_rec, (v_in, j_in), (v_rec, j_rec) = _posed_pair(pose_matrot_in, pose_matrot_rec, surface)
    d_v = v_rec - v_in.to(v_rec.dtype)
    mesh_l1 = d_v.abs().mean()
    jtr_l1 = (j_rec[:, 1:] - j_in[:, 1:].to(j_rec.dtype)).abs().mean()
    geodesic = geodesic_angle(R_in.to(R_rec.dtype), R_rec).mean()
    kl = kl_to_standard_normal(mean, std).mean()
    loss = weights["loss_kl_wt"] * kl + weights["loss_rec_wt"] * mesh_l1
    if use_extra_terms:
        loss = loss + weights["loss_matrot_wt"] * geodesic + weights["loss_jtr_wt"] * jtr_l1
    with torch.no_grad():
        v2v = d_v.norm(dim=-1).mean() * M_TO_MM
    return {"loss": loss, "kl": kl.detach(), "mesh_l1_mm": mesh_l1.detach() * M_TO_MM,
            "jtr_l1_mm": jtr_l1.detach() * M_TO_MM, "geodesic_deg": torch.rad2deg(geodesic.detach()), "v2v_mm": v2v}
