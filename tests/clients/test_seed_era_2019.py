"""Client: code of the 2019 seed era (the seed's own tutorials, MOJO/LEMO-era motion code, user forks of the
2019 VPoser) and 2021 code reading BodyModel's buffers, in the four call patterns the issue-24 audit
found failing.

- ``BodyModel(bm_path, None, 10, 2)``: the seed-era positional order ``bm_path, params=None,
  num_betas=10, batch_size=1, v_template=None, ...``;
- ``BodyModel(bm_path=..., v_template=...)``: a custom template (a subject's registered mesh);
- ``load_vposer(expr_dir, vp_model=MyVPoser)`` with a 2019 class taking ``(num_neurons, latentD, data_shape)``;
- ``bm.init_v_template`` (1, V, 3), the 2021 buffer.
Written from the public API, on the shipped open files.
"""

import torch
from torch import nn

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.tools.model_loader import load_vposer
from human_body_prior.train.vposer_smpl import VPoser


def test_seed_positional_body_model_with_a_batch():
    bm = BodyModel(hbp.default_body_model_path("smplx", "neutral"), None, 10, 2)
    out = bm()
    assert out.v.shape[0] == 2 and bm.betas.shape == (2, 10)


def test_subject_template_as_v_template():
    path = hbp.default_body_model_path("smplx", "neutral")
    ref = BodyModel(bm_path=path, num_betas=10)
    subject = ref.v_template + 0.01 * torch.randn(ref.v_template.shape, generator=torch.Generator().manual_seed(0))
    bm = BodyModel(bm_path=path, num_betas=10, batch_size=1, v_template=subject)
    with torch.no_grad():
        pose = torch.full((1, 63), 0.1)
        assert torch.allclose(bm(pose_body=pose).v, ref(pose_body=pose, v_template=subject).v, atol=1e-6)


def test_user_vposer_class_of_2019():
    class MyVPoser(nn.Module):
        """A fork of the 2019 VPoser: its own class, the 2019 constructor."""

        def __init__(self, num_neurons, latentD, data_shape):
            super().__init__()
            self.inner = VPoser(num_neurons, latentD, data_shape)
            self.latentD = latentD

        def load_state_dict(self, state_dict, strict=True):
            return self.inner.load_state_dict(state_dict, strict)

        def state_dict(self, *args, **kwargs):
            return self.inner.state_dict(*args, **kwargs)

        def decode(self, z, output_type="aa"):
            return self.inner.decode(z, output_type=output_type)

    vposer, ps = load_vposer(hbp.default_vposer_dir(), vp_model=MyVPoser)
    with torch.no_grad():
        assert vposer.decode(torch.zeros(1, ps.latentD)).reshape(1, -1).shape == (1, 63)


def test_init_v_template_of_2021_code():
    bm = BodyModel(bm_fname=hbp.default_body_model_path("smplx", "neutral"), num_betas=10)
    v_template = bm.init_v_template.expand(3, -1, -1)  # as the 2021 forward does
    assert v_template.shape == (3, bm.v_template.shape[0], 3) and torch.equal(v_template[2], bm.v_template)
