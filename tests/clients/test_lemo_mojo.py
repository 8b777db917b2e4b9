"""Client: LEMO (temporal motion fitting, fitting/fit_seq*.py) and MOJO (motion prediction, utils of
its experiments): the 2019 VPoser used in batches of frames.

Both load ``load_vposer(vposer_model_path, vp_model='snapshot')``, encode whole sequences of body poses
``vposer.encode(body_pose).mean`` with body_pose (T, 63), and decode them back with
``vposer.decode(z, output_type='aa').view(T, -1)`` (or ``.reshape(-1, 63)``), each frame independent.
Written from the public API.
"""

import torch

import human_body_prior as hbp
from human_body_prior.tools.model_loader import load_vposer


def test_batched_encode_decode():
    vposer, _ = load_vposer(hbp.default_vposer_dir(), vp_model="snapshot")
    vposer.eval()
    T = 64
    with torch.no_grad():
        body_pose = vposer.sample_poses(T, seed=2).view(T, -1)  # (T, 63) plausible poses
        z = vposer.encode(body_pose).mean
        assert z.shape == (T, 32)
        body_pose_rec = vposer.decode(z, output_type="aa").view(T, -1)
        assert body_pose_rec.shape == (T, 63)
        # frames are independent: a frame alone gives the same code and pose as inside the batch
        z5 = vposer.encode(body_pose[5:6]).mean
        assert torch.allclose(z5, z[5:6], atol=1e-5)
        assert torch.allclose(vposer.decode(z5, output_type="aa").reshape(-1, 63), body_pose_rec[5:6], atol=1e-5)
        # an encode-decode round trip of plausible poses stays close (mean angle error per joint)
        err = (body_pose_rec - body_pose).reshape(T, 21, 3).norm(dim=-1).mean()
        assert err < 0.2

    # a latent sequence optimised by gradient, as their motion fitting does
    z_seq = z.clone().requires_grad_(True)
    loss = (vposer.decode(z_seq, output_type="aa").view(T, -1) - body_pose).pow(2).sum() + 1e-3 * z_seq.pow(2).sum()
    loss.backward()
    assert z_seq.grad.shape == (T, 32) and torch.isfinite(z_seq.grad).all()
