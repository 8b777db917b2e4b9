"""Client: EasyMocap (easymocap/bodymodel and its multi-stage fitting), which uses the 2021 (v2) VPoser.

It loads ``load_model(expr_dir, model_code=VPoser, remove_words_in_model_weights='vp_model.',
disable_grad=True)`` with ``from human_body_prior.tools.model_loader import load_model`` and
``from human_body_prior.models.vposer_model import VPoser``, encodes full poses by their body part
``vposer.encode(poses[:, 3:66]).mean`` and decodes latent codes with
``vposer.decode(z)['pose_body'].reshape(z.shape[0], -1)``, optimising the codes by gradient.
Written from the public API, on the shipped open v2 prior.
"""

from pathlib import Path

import pytest
import torch

import human_body_prior as hbp


def _shipped_v2_folder():
    folders = sorted(p.parent for p in Path(hbp.support_data_dir()).glob("*/*.yaml"))
    return folders[0] if folders else None


def test_load_model_encode_decode():
    pytest.importorskip("human_body_prior.models.vposer_model", reason="the v2 model (#13) is not in this tree")
    expr_dir = _shipped_v2_folder()
    if expr_dir is None:
        pytest.skip("no shipped v2 VPoser folder (support_data/*/<name>.yaml) in this tree yet (#13)")
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model

    vposer, _ = load_model(str(expr_dir), model_code=VPoser, remove_words_in_model_weights="vp_model.",
                           disable_grad=True)
    vposer.eval()
    poses = torch.zeros(5, 72)
    poses[:, 3:66] = 0.1 * torch.randn(5, 63, generator=torch.Generator().manual_seed(0))
    z = vposer.encode(poses[:, 3:66]).mean
    assert z.shape == (5, vposer.latentD)
    body = vposer.decode(z)["pose_body"].reshape(z.shape[0], -1)
    assert body.shape == (5, 63) and torch.isfinite(body).all()

    z_opt = z.clone().requires_grad_(True)
    loss = (vposer.decode(z_opt)["pose_body"].reshape(z_opt.shape[0], -1) - poses[:, 3:66]).pow(2).sum()
    loss.backward()
    assert torch.isfinite(z_opt.grad).all() and z_opt.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in vposer.parameters())
