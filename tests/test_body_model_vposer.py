"""BodyModelWithPoser: VPoser latent codes driving a BodyModel; the seed tutorial snippets."""

import io
import contextlib

import numpy as np
import pytest
import torch

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.body_model_vposer import BodyModelWithPoser
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.priors.vposer import VPoser
from human_body_prior.tools.model_loader import write_vposer_experiment
from vposer_v1_reference import folder_code_was_executed, np_decode, v1_state_dict, write_2019_folder
from scipy.spatial.transform import Rotation

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bmvp")
    bm_path = write_synthetic_model(root / "models" / "smplx" / "SMPLX_FEMALE.npz", "smplx", num_verts=400,
                                    num_shape_columns=20, seed=1)
    expr_dir, sd = write_2019_folder(root / "vposer_v1_0", v1_state_dict(seed=21))
    return {"root": root, "bm_path": bm_path, "expr_dir": str(expr_dir), "sd": sd}


def _small_poser_dir(folder, num_joints, latentD=6, seed=0):
    model = VPoser(32, latentD, [1, num_joints, 3])
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    write_vposer_experiment(folder, model, epoch=1)
    return str(folder), model.eval()


# ------------------------------------------------------------------------------------------- seeds
def test_seed_poZ_notebook_snippet(files):
    expr_dir, bm_path = files["expr_dir"], files["bm_path"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        # --- seed vposer_poZ_notebook, with .to(DEVICE) for .to('cuda') when CUDA is absent
        from human_body_prior.body_model.body_model_vposer import BodyModelWithPoser
        bm = BodyModelWithPoser(bm_path=bm_path, batch_size=1, poser_type='vposer', smpl_exp_dir=expr_dir).to(DEVICE)
        print('poZ_body', bm.poZ_body.shape)
        print('pose_body', bm.pose_body.shape)
        # ---
    out = stdout.getvalue().splitlines()
    assert out == [f"Found Trained Model: {expr_dir}/snapshots/TR00_E096.pt",
                   "poZ_body torch.Size([1, 32])", "pose_body torch.Size([1, 63])"]
    assert not folder_code_was_executed(expr_dir)


def test_seed_sampling_notebook_snippet(files):
    expr_dir = files["expr_dir"]
    # --- seed vposer_sampling_notebook (first snippet)
    from human_body_prior.tools.model_loader import load_vposer
    num_sample_batch = 10  # number of body poses in each batch
    vposer_pt, ps = load_vposer(expr_dir, vp_model='snapshot')
    sampled_pose_body = vposer_pt.sample_poses(num_poses=num_sample_batch)  # will a generate Nx1x21x3 tensor of body poses
    # ---
    assert sampled_pose_body.shape == (10, 1, 21, 3)
    assert torch.isfinite(sampled_pose_body).all()
    # the samples drive a body model
    bm = BodyModel(files["bm_path"], "smplx", batch_size=10)
    assert bm(pose_body=sampled_pose_body.reshape(10, 63)).v.shape == (10, 400, 3)


# ------------------------------------------------------------------------------------------- structure
def test_parameters_and_freezing(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=3, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"])
    assert bm.poZ_body.shape == (3, 32) and torch.equal(bm.poZ_body, torch.zeros(3, 32))
    assert bm.poZ_body.requires_grad and not bm.pose_body.requires_grad and bm.root_orient.requires_grad
    assert all(not p.requires_grad for p in bm.poser_body_pt.parameters())
    bm.train()
    assert bm.training and not bm.poser_body_pt.training
    assert bm.poser_body_ps.latentD == 32


def test_forward_decodes_pose_body(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"], dtype=torch.float64)
    z = np.random.default_rng(3).normal(size=(2, 32))
    with torch.no_grad():
        bm.poZ_body.copy_(torch.tensor(z))
        out = bm(trans=torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    pose_ref = Rotation.from_matrix(np_decode(files["sd"], z).reshape(-1, 3, 3)).as_rotvec().reshape(2, 63)
    np.testing.assert_allclose(out.full_pose[:, 3:66].numpy(), pose_ref, atol=1e-5)
    assert out.poZ_body is bm.poZ_body
    # the same body as a plain BodyModel posed with the decoded pose
    plain = BodyModel(files["bm_path"], dtype=torch.float64, batch_size=2)
    with torch.no_grad():
        ref = plain(pose_body=torch.tensor(pose_ref), trans=torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(out.Jtr.numpy(), ref.Jtr.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.v.numpy(), ref.v.numpy(), atol=1e-5)
    # a code passed to forward overrides the stored one
    out0 = bm(poZ_body=torch.zeros(2, 32, dtype=torch.float64))
    assert torch.equal(out0.poZ_body, torch.zeros(2, 32, dtype=torch.float64))
    assert not torch.allclose(out0.full_pose, out.full_pose)
    with pytest.raises(ValueError, match="pose_body"):
        bm(pose_body=torch.zeros(2, 63))


def test_gradients_reach_poZ_body(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=1, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"], dtype=torch.float64)
    with torch.no_grad():
        bm.poZ_body.copy_(torch.tensor(np.random.default_rng(4).normal(size=(1, 32))))
    w = torch.tensor(np.random.default_rng(5).normal(size=(55, 3)))

    def loss_of(z):
        return (bm(poZ_body=z).Jtr[0] * w).sum()

    loss_of(bm.poZ_body).backward()
    g = bm.poZ_body.grad.clone()
    assert torch.isfinite(g).all() and g.abs().max() > 0
    assert all(p.grad is None for p in bm.poser_body_pt.parameters())
    eps = 1e-6
    with torch.no_grad():
        for i in (0, 7, 31):
            dz = torch.zeros(1, 32, dtype=torch.float64)
            dz[0, i] = eps
            fd = (loss_of(bm.poZ_body + dz) - loss_of(bm.poZ_body - dz)) / (2 * eps)
            np.testing.assert_allclose(g[0, i].item(), fd.item(), rtol=1e-5, atol=1e-8)


def test_fitting_poZ_body_to_target_joints_lowers_loss(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"])
    z_target = torch.tensor(np.random.default_rng(6).normal(scale=0.8, size=(2, 32)), dtype=torch.float32)
    with torch.no_grad():
        target = bm(poZ_body=z_target).Jtr
    poser_before = {k: v.clone() for k, v in bm.poser_body_pt.state_dict().items()}
    opt = torch.optim.Adam([bm.poZ_body], lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((bm().Jtr - target) ** 2).sum(-1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    assert all(torch.equal(v, bm.poser_body_pt.state_dict()[k]) for k, v in poser_before.items())


def test_randomize_pose(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"])
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    bm.randomize_pose(seed=3)
    z1, p1 = bm.poZ_body.detach().clone(), bm.pose_body.detach().clone()
    bm.randomize_pose(seed=3)
    assert torch.equal(z1, bm.poZ_body) and torch.equal(p1, bm.pose_body)
    bm.randomize_pose()
    assert not torch.equal(z1, bm.poZ_body)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    with torch.no_grad():
        decoded = bm.poser_body_pt.decode(bm.poZ_body, output_type="aa").reshape(2, 63)
    np.testing.assert_allclose(bm.pose_body.detach().numpy(), decoded.numpy(), atol=1e-6)
    assert not bm.pose_body.requires_grad


def test_22_joint_poser_drives_root_orient(files, tmp_path):
    expr_dir, poser = _small_poser_dir(tmp_path / "p22", 22)
    bm = BodyModelWithPoser(bm_path=files["bm_path"], poser_type="vposer", smpl_exp_dir=expr_dir)
    assert not bm.root_orient.requires_grad and not bm.pose_body.requires_grad
    z = torch.full((1, 6), 0.4)
    out = bm(poZ_body=z)
    with torch.no_grad():
        pose = poser.decode(z, output_type="aa").reshape(1, 66)
    np.testing.assert_allclose(out.full_pose[:, :66].detach().numpy(), pose.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="root_orient"):
        bm(root_orient=torch.zeros(1, 3))


def test_hand_posers(files, tmp_path):
    left, poser_l = _small_poser_dir(tmp_path / "hl", 15, latentD=5, seed=1)
    right, poser_r = _small_poser_dir(tmp_path / "hr", 15, latentD=5, seed=2)
    bm = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, poser_type="vposer",
                            smpl_exp_dir=files["expr_dir"], mano_exp_dir=(left, right))
    assert bm.poZ_handL.shape == (2, 5) and bm.poZ_handR.shape == (2, 5) and not bm.pose_hand.requires_grad
    zl, zr = torch.full((2, 5), 0.3), torch.full((2, 5), -0.2)
    out = bm(poZ_handL=zl, poZ_handR=zr)
    with torch.no_grad():
        expected = torch.cat([poser_l.decode(zl, "aa").reshape(2, 45), poser_r.decode(zr, "aa").reshape(2, 45)], 1)
    np.testing.assert_allclose(out.full_pose[:, -90:].detach().numpy(), expected.numpy(), atol=1e-6)
    assert torch.equal(out.poZ_handL, zl)
    (out.Jtr ** 2).sum().backward()
    assert bm.poZ_handL.grad is None  # a passed code replaces the stored one
    bm().Jtr.sum().backward()
    assert bm.poZ_handL.grad.abs().sum() > 0 and bm.poZ_handR.grad.abs().sum() > 0

    mano_path = write_synthetic_model(tmp_path / "MANO_RIGHT.npz", "mano", seed=3)
    mano = BodyModelWithPoser(bm_path=mano_path, poser_type="vposer", mano_exp_dir=right)
    assert mano.poZ_hand.shape == (1, 5) and not hasattr(mano, "poZ_body")
    np.testing.assert_allclose(mano(poZ_hand=zr[:1]).full_pose[:, 3:].detach().numpy(),
                               expected[:1, 45:].numpy(), atol=1e-6)


def test_vposer_instances_instead_of_folders(files, tmp_path):
    from human_body_prior.priors.experiment import load_vposer

    vp, _ = load_vposer(files["expr_dir"], verbose=False)
    by_dir = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, smpl_exp_dir=files["expr_dir"],
                                dtype=torch.float64)
    by_obj = BodyModelWithPoser(bm_path=files["bm_path"], batch_size=2, smpl_exp_dir=vp, dtype=torch.float64)
    assert by_obj.poser_body_pt is vp and by_obj.poser_body_ps is None
    assert vp.parameters().__next__().dtype == torch.float64 and not any(p.requires_grad for p in vp.parameters())
    z = torch.tensor(np.random.default_rng(8).normal(size=(2, 32)))
    with torch.no_grad():
        a, b = by_dir(poZ_body=z), by_obj(poZ_body=z)
    assert torch.equal(a.v, b.v) and torch.equal(a.full_pose, b.full_pose)
    # hands: one instance for both, and a poser of the wrong width names itself
    _, poser_h = _small_poser_dir(tmp_path / "h", 15, latentD=5, seed=1)
    bm = BodyModelWithPoser(bm_path=files["bm_path"], smpl_exp_dir=vp, mano_exp_dir=poser_h)
    assert bm.poser_handL_pt is poser_h and bm.poser_handR_pt is poser_h and bm.poZ_handL.shape == (1, 5)
    mano_path = write_synthetic_model(tmp_path / "MANO_RIGHT.npz", "mano", seed=3)
    assert BodyModelWithPoser(bm_path=mano_path, mano_exp_dir=poser_h).poser_hand_pt is poser_h
    with pytest.raises(ValueError, match="given outputs 15 joints"):
        BodyModelWithPoser(bm_path=files["bm_path"], smpl_exp_dir=poser_h)


def test_default_poser_is_the_shipped_open_vposer(files, tmp_path, monkeypatch):
    support = tmp_path / "support_data"
    expr_dir, _ = _small_poser_dir(support / "vposer_v1_0_open", 21, latentD=7)
    monkeypatch.setenv("HUMAN_BODY_PRIOR_SUPPORT_DATA", str(support))
    bm = BodyModelWithPoser(bm_path=files["bm_path"], poser_type="vposer")
    assert bm.poZ_body.shape == (1, 7) and bm.poser_body_ps.work_dir == expr_dir


def test_dtype_and_device_follow_the_model(files):
    bm = BodyModelWithPoser(bm_path=files["bm_path"], poser_type="vposer", smpl_exp_dir=files["expr_dir"])
    bm = bm.to(torch.float64)
    assert bm.poser_body_pt.bodyprior_dec_fc1.weight.dtype == torch.float64
    assert bm().v.dtype == torch.float64
    if torch.cuda.is_available():
        bm = bm.to("cuda")
        assert bm.poser_body_pt.bodyprior_dec_fc1.weight.is_cuda and bm().v.is_cuda


def test_errors(files, tmp_path):
    with pytest.raises(ValueError, match="poser_type"):
        BodyModelWithPoser(bm_path=files["bm_path"], poser_type="gmm", smpl_exp_dir=files["expr_dir"])
    d20, _ = _small_poser_dir(tmp_path / "p20", 20)
    with pytest.raises(ValueError, match="20 joints"):
        BodyModelWithPoser(bm_path=files["bm_path"], poser_type="vposer", smpl_exp_dir=d20)
    mano_path = write_synthetic_model(tmp_path / "MANO_RIGHT.npz", "mano", seed=3)
    with pytest.raises(ValueError, match="mano_exp_dir"):
        BodyModelWithPoser(bm_path=mano_path, poser_type="vposer")
    smpl_path = write_synthetic_model(tmp_path / "SMPL.npz", "smpl", num_verts=200, seed=3)
    with pytest.raises(ValueError, match="hands"):
        BodyModelWithPoser(bm_path=smpl_path, poser_type="vposer", smpl_exp_dir=files["expr_dir"],
                           mano_exp_dir=d20)
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        BodyModelWithPoser(bm_path=files["bm_path"], poser_type="vposer", smpl_exp_dir=tmp_path / "missing_dir")
