"""VPoser v1 against an independent numpy re-computation of the documented architecture."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.priors.vposer import VPoser
from vposer_v1_reference import np_decode, np_encode, v1_shapes, v1_state_dict


@pytest.fixture(scope="module")
def sd():
    return v1_state_dict(seed=3)


@pytest.fixture()
def vp(sd):
    model = VPoser(num_neurons=512, latentD=32, data_shape=[1, 21, 3], use_cont_repr=True)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def random_aa(n, seed):
    return Rotation.random(n * 21, random_state=seed).as_rotvec().reshape(n, 1, 21, 3)


def test_parameter_count_and_v1_names():
    model = VPoser(512, 32, [1, 21, 3])
    assert sum(p.numel() for p in model.parameters()) == 673596
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == v1_shapes(512, 32, 21)


def test_2019_import_path():
    from human_body_prior.train.vposer_smpl import VPoser as VPoser2019
    assert VPoser2019 is VPoser


def test_decode_matches_reference(vp, sd):
    z = np.random.default_rng(1).normal(size=(7, 32))
    R_ref = np_decode(sd, z)
    with torch.no_grad():
        matrot = vp.decode(torch.tensor(z, dtype=torch.float32), output_type="matrot")
        aa = vp.decode(torch.tensor(z, dtype=torch.float32), output_type="aa")
    assert matrot.shape == (7, 1, 21, 9) and aa.shape == (7, 1, 21, 3)
    np.testing.assert_allclose(matrot.numpy().reshape(7, 21, 3, 3), R_ref, atol=2e-5)
    # axis-angle output is the same rotation (scipy as the reference conversion)
    R_from_aa = Rotation.from_rotvec(aa.numpy().reshape(-1, 3).astype(np.float64)).as_matrix()
    np.testing.assert_allclose(R_from_aa, R_ref.reshape(-1, 3, 3), atol=5e-5)


def test_decode_float64(vp, sd):
    z = np.random.default_rng(2).normal(size=(3, 32))
    vp64 = vp.double()
    with torch.no_grad():
        out = vp64.decode(torch.tensor(z), output_type="matrot")
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy().reshape(3, 21, 3, 3), np_decode(sd, z), atol=1e-10)


def test_encode_matches_reference(vp, sd):
    pose = random_aa(5, seed=4)
    mu_ref, std_ref = np_encode(sd, pose.reshape(5, 63))
    with torch.no_grad():
        q = vp.encode(torch.tensor(pose, dtype=torch.float32))
        q_flat = vp.encode(torch.tensor(pose.reshape(5, 63), dtype=torch.float32))
    assert isinstance(q, torch.distributions.Normal)
    np.testing.assert_allclose(q.mean.numpy(), mu_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.scale.numpy(), std_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(q_flat.mean.numpy(), q.mean.numpy())


def _with_tiny_std(sd):
    """Same network with the scale head pinned near 0, so forward's sample equals the mean."""
    sd = dict(sd)
    sd["bodyprior_enc_logvar.weight"] = torch.zeros_like(sd["bodyprior_enc_logvar.weight"])
    sd["bodyprior_enc_logvar.bias"] = torch.full_like(sd["bodyprior_enc_logvar.bias"], -60.0)
    model = VPoser(512, 32, [1, 21, 3])
    model.load_state_dict(sd)
    return model.eval()


def test_forward_is_encode_then_decode(sd):
    model = _with_tiny_std(sd)
    pose = random_aa(4, seed=5)
    mu_ref, _ = np_encode(sd, pose.reshape(4, 63))
    R_ref = np_decode(sd, mu_ref)
    with torch.no_grad():
        out = model(torch.tensor(pose, dtype=torch.float32), output_type="matrot")
        out_aa = model(torch.tensor(pose, dtype=torch.float32), input_type="aa", output_type="aa")
        out_m = model(VPoser.aa2matrot(torch.tensor(pose, dtype=torch.float32)), input_type="matrot",
                      output_type="matrot")
    assert set(out) == {"mean", "std", "pose_matrot"} and set(out_aa) == {"mean", "std", "pose_aa"}
    assert out["std"].max() < 1e-20
    np.testing.assert_allclose(out["mean"].numpy(), mu_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out["pose_matrot"].numpy().reshape(4, 21, 3, 3), R_ref, atol=1e-4)
    R_aa = Rotation.from_rotvec(out_aa["pose_aa"].numpy().reshape(-1, 3).astype(np.float64)).as_matrix()
    np.testing.assert_allclose(R_aa, R_ref.reshape(-1, 3, 3), atol=1e-4)
    np.testing.assert_allclose(out_m["pose_matrot"].numpy(), out["pose_matrot"].numpy(), atol=1e-4)


def test_forward_samples_from_posterior(vp):
    """In train mode a default-init model still returns a reparameterised sample with grads to the input."""
    model = VPoser(64, 8, [1, 21, 3]).train()
    pose = torch.tensor(random_aa(16, seed=6), dtype=torch.float32, requires_grad=True)
    out = model(pose)
    assert out["pose_matrot"].shape == (16, 1, 21, 9) and out["mean"].shape == (16, 8)
    out["pose_matrot"].sum().backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0


def test_static_conversions_match_scipy():
    aa = random_aa(3, seed=7)
    matrot = VPoser.aa2matrot(torch.tensor(aa))
    assert matrot.shape == (3, 1, 21, 9)
    np.testing.assert_allclose(matrot.numpy().reshape(-1, 3, 3),
                               Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix(), atol=1e-12)
    back = VPoser.matrot2aa(matrot)
    assert back.shape == (3, 1, 21, 3)
    np.testing.assert_allclose(back.numpy(), aa, atol=1e-9)


def test_sample_poses_reproducible_and_global_rng_untouched(vp):
    vp.train()
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    a = vp.sample_poses(num_poses=6, seed=11)
    b = vp.sample_poses(num_poses=6, seed=11)
    c = vp.sample_poses(num_poses=6, seed=12)
    d = vp.sample_poses(num_poses=6)
    e = vp.sample_poses(num_poses=6)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert a.shape == (6, 1, 21, 3) and not a.requires_grad
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(d, e)  # seed=None draws fresh codes
    assert vp.training  # mode restored
    # the samples are decodes of N(0, I) codes: with the same private generator the codes are known
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(11))
    vp.eval()
    with torch.no_grad():
        np.testing.assert_allclose(a.numpy(), vp.decode(z, output_type="aa").numpy(), atol=1e-6)
    # eval mode during sampling: BatchNorm/dropout state must not matter, so train-mode calls agree with eval
    np.testing.assert_allclose(vp.sample_poses(6, seed=11).numpy(), a.numpy(), atol=1e-6)


def test_sample_poses_matrot(vp):
    m = vp.sample_poses(4, output_type="matrot", seed=0)
    assert m.shape == (4, 1, 21, 9)
    R = m.reshape(-1, 3, 3).double()
    np.testing.assert_allclose((R @ R.transpose(1, 2)).numpy(), np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    np.testing.assert_allclose(torch.linalg.det(R).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("col2", [[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], ids=["angle0", "anglepi"])
def test_finite_values_and_grads_at_angle_0_and_pi(col2):
    """Decoder output pinned to the identity / a rotation by pi about x; encoder fed 0 and pi rotations."""
    model = VPoser(32, 4, [1, 21, 3]).double().eval()
    with torch.no_grad():
        model.bodyprior_dec_out.weight.zero_()
        six = torch.tensor([1.0, col2[0], 0.0, col2[1], 0.0, col2[2]], dtype=torch.float64)  # (3,2) row-major
        model.bodyprior_dec_out.bias.copy_(six.repeat(21))
    z = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    aa = model.decode(z, output_type="aa")
    expected = np.zeros(3) if col2[1] > 0 else np.array([np.pi, 0, 0])
    np.testing.assert_allclose(np.abs(aa.detach().numpy().reshape(-1, 3)), np.broadcast_to(expected, (42, 3)),
                               atol=1e-7)
    (aa * torch.linspace(0.5, 1.5, 3, dtype=torch.float64)).sum().backward()
    grads = [z.grad] + [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert model.bodyprior_dec_out.bias.grad.abs().sum() > 0

    pose = torch.zeros(3, 1, 21, 3, dtype=torch.float64)
    pose[1, 0, :, 0] = np.pi
    pose.requires_grad_(True)
    q = model.encode(pose)
    (q.mean.sum() + q.scale.sum()).backward()
    assert torch.isfinite(pose.grad).all()


def test_bad_inputs_raise_clear_errors(vp):
    with pytest.raises(ValueError, match="latent"):
        vp.decode(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="output_type"):
        vp.decode(torch.zeros(2, 32), output_type="quat")
    with pytest.raises(ValueError, match="63"):
        vp.encode(torch.zeros(2, 1, 22, 3))
    with pytest.raises(ValueError, match="data_shape"):
        VPoser(512, 32, [21, 3])


def test_22_joint_variant_and_non_cont_repr():
    vp22 = VPoser(64, 8, [1, 22, 3]).eval()
    assert vp22.decode(torch.zeros(2, 8), output_type="aa").shape == (2, 1, 22, 3)
    assert vp22.bodyprior_dec_out.out_features == 22 * 6
    plain = VPoser(64, 8, [1, 21, 3], use_cont_repr=False).eval()
    assert plain.bodyprior_dec_out.out_features == 63
    with torch.no_grad():
        raw = plain.bodyprior_dec_out(F_leaky(plain, torch.ones(1, 8)))
        out = plain.decode(torch.ones(1, 8), output_type="aa")
    np.testing.assert_allclose(out.numpy().reshape(-1), raw.numpy().reshape(-1), atol=1e-5)


def F_leaky(model, z):
    x = torch.nn.functional.leaky_relu(model.bodyprior_dec_fc1(z), 0.2)
    return torch.nn.functional.leaky_relu(model.bodyprior_dec_fc2(x), 0.2)
