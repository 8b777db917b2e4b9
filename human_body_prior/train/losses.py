"""The VPoser training objectives (v1, 2019, and v2, 2021), measured on body_model/surface.py's surface.

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

import torch

from human_body_prior.body_model.surface import M_TO_MM, BodySurface
from human_body_prior.geometry.rotations import geodesic_angle
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.sampling import kl_to_standard_normal


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
