"""Where a fit starts: the global orientation and translation of each frame's body.

From 3D targets: a weighted rigid registration of the body's torso onto them. From 2D keypoints only:
a body upright in the image and facing the camera, at the depth whose projected torso has the
observed size. Both take the rest joints of the bodies at their initial pose (root at identity, no
translation) and return root_orient (B, 3) axis-angle and trans (B, 3) in metres, with
posed = R (x - pelvis) + pelvis + trans, the body model's convention. The torso is the model type's
``ModelSpec.torso_joints``, by name; model_type None means the type with as many joints as ``rest``.
"""

import torch

from human_body_prior.fitting.rigid import kabsch
from human_body_prior.geometry.rotations import matrix_to_axis_angle
from human_body_prior.model_types.spec import SMPLX, model_spec, spec_for_joint_count

# Indices of the torso joints (pelvis, hips, spine1-3, neck, collars, shoulders), the same in SMPL,
# SMPL-H and SMPL-X, whose first 22 joints are the body.
TORSO_JOINTS = SMPLX.torso_indices


def _torso_joints(rest: torch.Tensor, model_type) -> tuple:
    """Indices of the torso joints of ``model_type`` (None: the type with rest's J joints; for a rest of
    only the first joints of a body, SMPL-X's, whose body joints are every body type's)."""
    if model_type is not None:
        spec = model_spec(model_type)
    else:
        spec = spec_for_joint_count(rest.shape[-2]) or SMPLX
    if not spec.torso_joints:
        raise ValueError(f"no torso joints to place a body by in a model with {rest.shape[-2]} joints "
                         f"(a {spec.title} model); an SMPL, SMPL-H or SMPL-X body is needed")
    return spec.torso_indices


def _torso_mask(item, dtype, torso: tuple):
    return torch.as_tensor([j in torso for j in item.joint_ids.tolist()], device=item.conf.device).to(dtype)


def initial_global_3d(prepared_3d: list, rest: torch.Tensor, model_type=None) -> tuple:
    """Kabsch of the torso joints (all joints for frames with fewer than 3 torso joints seen) of
    ``rest`` (B, J_model, 3) onto the 3D targets -> (root_orient (B, 3), trans (B, 3))."""
    src, dst, w = [], [], []
    torso_joints = _torso_joints(rest, model_type)
    for item in prepared_3d:
        torso = item.conf * _torso_mask(item, rest.dtype, torso_joints)
        few = (torso > 0).sum(-1, keepdim=True) < 3
        w.append(torch.where(few, item.conf, torso))
        src.append(rest[:, item.joint_ids])
        dst.append(item.targets)
    R, t = kabsch(torch.cat(src, 1), torch.cat(dst, 1), torch.cat(w, 1))
    pelvis = rest[:, 0]
    # R x + t  ==  R (x - pelvis) + pelvis + trans
    return matrix_to_axis_angle(R), t + (R @ pelvis.unsqueeze(-1)).squeeze(-1) - pelvis


def initial_global_2d(item, rest: torch.Tensor, model_type=None) -> tuple:
    """A camera-facing upright body whose torso projects onto the keypoints of ``item`` (a prepared
    Keypoints2D) at the matching size -> (root_orient (B, 3), trans (B, 3))."""
    B, dtype, device = rest.shape[0], rest.dtype, rest.device
    cam, ids = item.camera, item.joint_ids
    pelvis = rest[:, 0]
    R_cam = cam.rotation.expand(B, 3, 3)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=dtype, device=device))
    R = R_cam.transpose(-1, -2) @ flip  # upright (image y down) and facing the camera
    pts = (R.unsqueeze(1) @ (rest[:, ids] - pelvis.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
    w = item.conf * _torso_mask(item, dtype, _torso_joints(rest, model_type))
    w = torch.where((w > 0).sum(-1, keepdim=True) < 2, item.conf, w)
    wn = w / w.sum(-1, keepdim=True)
    c3 = (wn.unsqueeze(-1) * pts).sum(1)
    c2 = (wn.unsqueeze(-1) * item.targets).sum(1)
    pts_cam = (R_cam.unsqueeze(1) @ (pts - c3.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
    size_3d = (wn * pts_cam[..., :2].norm(dim=-1)).sum(-1)
    size_2d = (wn * (item.targets - c2.unsqueeze(1)).norm(dim=-1)).sum(-1) / item.focal.reshape(-1)
    depth = (size_3d / size_2d.clamp(min=1e-6)).clamp(min=0.1, max=1e3)
    centre = cam.unproject(c2.unsqueeze(1), depth.unsqueeze(1)).squeeze(1)
    # put the torso centroid at `centre`
    return matrix_to_axis_angle(R), centre - c3 - pelvis


def initial_global(prepared: list, rest: torch.Tensor, model_type=None) -> tuple:
    """From the 3D observations when there are any, else from the first 2D one."""
    with torch.no_grad():
        three_d = [item for item in prepared if item.is_3d]
        if three_d:
            return initial_global_3d(three_d, rest, model_type)
        return initial_global_2d(prepared[0], rest, model_type)
