"""Client: SMPLify-X (smplifyx/fit_single_frame.py, smplifyx/fitting.py) and PROX
(prox/fit_single_frame.py, which repeats SMPLify-X's VPoser calls).

They load the 2019 VPoser with ``load_vposer(vposer_ckpt, vp_model='snapshot')``, optimise a latent
``pose_embedding`` (batch, 32) and feed ``vposer.decode(pose_embedding, output_type='aa').view(1, -1)``
to an smplx SMPL-X model as ``body_pose``, with ``pose_embedding.pow(2).sum() * body_pose_weight ** 2``
as the pose prior. Written from the public API (import lines, arguments, output indexing), with the
shipped open SMPL-X file read by smplx 0.1.28 and the shipped open VPoser.
"""

import os.path as osp

import smplx
import torch

import human_body_prior as hbp
from human_body_prior.tools.model_loader import load_vposer


def test_fit_single_frame_vposer_calls():
    device, dtype, batch_size = torch.device("cpu"), torch.float32, 1
    vposer_ckpt = osp.expandvars(hbp.default_vposer_dir())
    vposer, _ = load_vposer(vposer_ckpt, vp_model="snapshot")
    vposer = vposer.to(device=device)
    vposer.eval()

    body_model = smplx.create(osp.join(hbp.support_data_dir(), "body_models"), model_type="smplx", gender="neutral",
                              ext="npz", use_pca=True, num_pca_comps=12, create_body_pose=False, dtype=dtype)
    pose_embedding = torch.zeros([batch_size, 32], dtype=dtype, device=device, requires_grad=True)
    body_pose = vposer.decode(pose_embedding, output_type="aa").view(1, -1)
    assert body_pose.shape == (1, 63)
    body_model_output = body_model(return_verts=True, body_pose=body_pose)
    assert body_model_output.vertices.shape == (1, body_model.v_template.shape[0], 3)

    # a target from a plausible pose, then SMPLify-X's closure: decode inside, prior on the embedding
    with torch.no_grad():
        target_pose = vposer.sample_poses(1, seed=7).reshape(1, -1)
        target = body_model(body_pose=target_pose).joints[:, :22]
    body_pose_weight = 0.05
    optimizer = torch.optim.LBFGS([pose_embedding], lr=1.0, max_iter=30, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        body_pose = vposer.decode(pose_embedding, output_type="aa").view(body_model_output.joints.shape[0], -1)
        output = body_model(return_verts=True, body_pose=body_pose)
        joint_loss = (output.joints[:, :22] - target).pow(2).sum()
        pprior_loss = pose_embedding.pow(2).sum() * body_pose_weight ** 2
        loss = joint_loss + pprior_loss
        loss.backward()
        return loss

    start = closure().item()
    for _ in range(3):
        optimizer.step(closure)
    final = closure().item()
    assert torch.isfinite(pose_embedding.grad).all()
    assert final < 0.05 * start

    # the result as they store it
    body_pose = vposer.decode(pose_embedding, output_type="aa").view(1, -1)
    result = {"body_pose": body_pose.detach().cpu().numpy(), "pose_embedding": pose_embedding.detach().cpu().numpy()}
    assert result["body_pose"].shape == (1, 63) and result["pose_embedding"].shape == (1, 32)
