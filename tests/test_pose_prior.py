"""The PosePrior interface: the shipped priors satisfy it, load_prior agrees with the per-format loaders,
and energy / sample / encode / decode against independent numpy references."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import human_body_prior as hbp
from human_body_prior.priors import PRIOR_NAMES, PosePrior, load_prior
from human_body_prior.priors.experiment import load_vposer
from human_body_prior.priors.gmm import GMMPosePrior
from human_body_prior.priors.vposer_v2_io import load_model
from v2_fixtures import numpy_decode, numpy_encode, random_v02_weights, write_v02_folder
from vposer_v1_reference import np_decode, np_encode, v1_state_dict, write_2019_folder

PKG = Path(__file__).resolve().parents[1] / "human_body_prior"


def poses(n, seed):
    return torch.as_tensor(Rotation.random(n * 21, random_state=seed).as_rotvec().reshape(n, 63) * 0.5)


@pytest.fixture(scope="module")
def shipped():
    return {name: load_prior(name) for name in PRIOR_NAMES}


# ---------------------------------------------------------------------------------------------- interface
def test_shipped_priors_satisfy_the_interface(shipped):
    assert set(shipped) == {"vposer_v1", "vposer_v2", "gmm"}
    for name, prior in shipped.items():
        assert isinstance(prior, PosePrior), name
        assert prior.num_joints == 21
        x = poses(4, seed=1).to(next(iter(prior.parameters())).dtype if name != "gmm" else prior.dtype)
        e = prior.energy(x)
        assert e.shape == (4,) and torch.isfinite(e).all()
        assert prior.sample(3, seed=0).shape == (3, 63)
    assert shipped["gmm"].latentD is None
    for method in ("encode_pose", "decode_pose", "decode_rotations"):
        with pytest.raises(TypeError, match="no latent space"):
            getattr(shipped["gmm"], method)(torch.zeros(1, 63))


def test_things_that_are_not_priors():
    assert not isinstance(torch.nn.Linear(2, 2), PosePrior)
    assert not isinstance("vposer_v1", PosePrior)


# ---------------------------------------------------------------------------------------------- loading
def test_load_prior_by_name_and_by_path_matches_the_format_loaders(shipped):
    v1, _ = load_vposer(hbp.default_vposer_dir(1), verbose=False)
    v2, _ = load_model(hbp.default_vposer_dir(2), comp_device="cpu", verbose=False)
    gmm = GMMPosePrior.load()
    by_path = {"vposer_v1": load_prior(hbp.default_vposer_dir(1)), "vposer_v2": load_prior(hbp.default_vposer_dir(2)),
               "gmm": load_prior(Path(hbp.support_data_dir()) / "gmm_prior" / "gmm_08.npz")}
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    x = poses(5, seed=2).float()
    for name, ref in (("vposer_v1", v1), ("vposer_v2", v2)):
        for prior in (shipped[name], by_path[name]):
            assert type(prior) is type(ref) and not prior.training
            assert all(torch.equal(a, b) for a, b in zip(prior.state_dict().values(), ref.state_dict().values()))
            assert torch.equal(prior.decode_rotations(z), ref.decode_rotations(z))
            assert torch.equal(prior.energy(x), ref.energy(x))
    for prior in (shipped["gmm"], by_path["gmm"]):
        assert torch.equal(prior.energy(x), gmm.energy(x))


def test_load_prior_reads_either_folder_layout(tmp_path):
    sd = v1_state_dict(seed=4)
    write_2019_folder(tmp_path / "v1", sd)
    write_v02_folder(tmp_path / "v2", random_v02_weights(seed=5))
    v1, v2 = load_prior(tmp_path / "v1"), load_prior(str(tmp_path / "v2"))
    assert v1.latentD == v2.latentD == 32 and type(v1) is not type(v2)
    assert torch.equal(v1.bodyprior_dec_out.bias, sd["bodyprior_dec_out.bias"])


def test_load_prior_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"^no pose prior at {missing}: ") as e:
        load_prior(missing)
    assert "\n" not in str(e.value)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=f"^cannot load a pose prior from {text}: expected ") as e:
        load_prior(text)
    assert "\n" not in str(e.value) and "vposer_v2" in str(e.value)
    with pytest.raises(FileNotFoundError, match="vposer_v3"):
        load_prior("vposer_v3")


# ---------------------------------------------------------------------------------------------- references
def test_gmm_energy_and_likelihood_against_numpy():
    rng = np.random.default_rng(7)
    K, D = 3, 63
    w = rng.random(K) + 0.1
    w /= w.sum()
    mu = rng.normal(size=(K, D)) * 0.3
    A = rng.normal(size=(K, D, D)) * 0.1
    cov = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(D)
    gmm = GMMPosePrior(w, mu, cov, dtype=torch.float64)
    x = rng.normal(size=(6, D)) * 0.4
    logn = np.empty((6, K))  # log w_k N(x; mu_k, Sigma_k), written out
    for k in range(K):
        d = x - mu[k]
        maha = np.einsum("bi,bi->b", d, np.linalg.solve(cov[k], d.T).T)
        logn[:, k] = math.log(w[k]) - 0.5 * maha - 0.5 * np.linalg.slogdet(2 * np.pi * cov[k])[1]
    m = logn.max(1)
    lse = m + np.log(np.exp(logn - m[:, None]).sum(1))
    got = gmm.energy(torch.as_tensor(x))
    np.testing.assert_allclose(got.numpy(), -logn.max(1), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(gmm.log_likelihood(torch.as_tensor(x)).numpy(), lse, rtol=1e-10, atol=1e-9)


def _v1_with_numpy_reference():
    from human_body_prior.priors.vposer import VPoser

    sd = v1_state_dict(seed=3)
    vp = VPoser(512, 32, [1, 21, 3]).double()
    vp.load_state_dict(sd)
    return vp, (lambda x: np_encode(sd, x)[0]), (lambda z: np_decode(sd, z)), (
        lambda zt: vp.decode(zt, output_type="aa"))


def _v2_with_numpy_reference():
    from human_body_prior.priors.vposer_v2 import VPoser
    from human_body_prior.priors.vposer_v2_io import ExperimentConfig

    w = random_v02_weights(seed=2, dtype=torch.float64)
    vp = VPoser(ExperimentConfig(model_params={"num_neurons": 512, "latentD": 32})).double()
    vp.load_state_dict(w)
    return vp, (lambda x: numpy_encode(w, x)[0]), (lambda z: numpy_decode(w, z)), (
        lambda zt: vp.decode(zt)["pose_body"])


@pytest.mark.parametrize("build,seed", [(_v1_with_numpy_reference, 8), (_v2_with_numpy_reference, 9)],
                         ids=["v1", "v2"])
def test_vposer_interface_against_numpy(build, seed):
    """encode_pose, energy, decode_rotations and decode_pose against a float64 numpy forward pass written
    from the documented architecture, and decode_pose against the generation's own upstream decode."""
    vp, np_mean, np_rotations, upstream_aa = build()
    vp.eval()
    x = poses(4, seed=seed)
    mu = np_mean(x.numpy())
    np.testing.assert_allclose(vp.encode_pose(x).detach().numpy(), mu, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(vp.energy(x).detach().numpy(), (mu ** 2).sum(1), rtol=1e-9)
    z = np.random.default_rng(seed - 7).normal(size=(4, 32))
    R = np_rotations(z)
    zt = torch.as_tensor(z)
    np.testing.assert_allclose(vp.decode_rotations(zt).detach().numpy(), R, atol=1e-10)
    aa = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(4, 63)
    np.testing.assert_allclose(vp.decode_pose(zt).detach().numpy(), aa, atol=1e-7)
    assert torch.equal(vp.decode_pose(zt), upstream_aa(zt).reshape(4, 63))


# ---------------------------------------------------------------------------------------------- sampling
def test_seeded_sampling_is_reproducible_and_leaves_global_rngs_alone(shipped):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    for name, prior in shipped.items():
        a, b, c = prior.sample(5, seed=11), prior.sample(5, seed=11), prior.sample(5, seed=12)
        assert torch.equal(a, b) and not torch.equal(a, c), name
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_latent_sample_is_the_models_own_sample_poses(shipped):
    v1, v2 = shipped["vposer_v1"], shipped["vposer_v2"]
    assert torch.equal(v1.sample(4, seed=3), v1.sample_poses(4, output_type="aa", seed=3).reshape(4, 63))
    assert torch.equal(v2.sample(4, seed=3), v2.sample_poses(4, seed=3)["pose_body"].reshape(4, 63))
    assert torch.equal(v2.sample_rotations(4, seed=3),
                       v2.sample_poses(4, seed=3)["pose_body_matrot"].reshape(4, 21, 3, 3))


# ---------------------------------------------------------------------------------------------- users
INTERFACE_ONLY = ("fitting/pose_space.py", "fitting/engine.py", "fitting/ik_engine.py", "fitting/fit_joints.py",
                  "evaluation/compared_priors.py", "evaluation/prior_benchmark.py", "body_model/body_model_vposer.py")


@pytest.mark.parametrize("rel", INTERFACE_ONLY)
def test_prior_users_go_through_the_interface(rel):
    """No class of a particular prior, no signature inspection, no per-format loader: only
    human_body_prior.priors (PosePrior, load_prior) and its interface helpers."""
    tree = ast.parse((PKG / rel).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module not in ("inspect", "human_body_prior.priors.vposer", "human_body_prior.priors.vposer_v2",
                                       "human_body_prior.priors.experiment", "human_body_prior.priors.vposer_v2_io",
                                       "human_body_prior.priors.any_vposer"), f"{rel}:{node.lineno}"
        if isinstance(node, ast.Import):
            assert all(a.name != "inspect" for a in node.names), f"{rel}:{node.lineno}"


def test_gmm_command_fits_a_jittered_copy_of_the_poses(tmp_path):
    """--jitter-deg: the mixture is fitted to one seeded jittered copy (priors/augmentation.py), so a
    one-component fit's covariance is the jittered poses' own (numpy), wider than the plain fit's."""
    from human_body_prior.priors import gmm as gmm_module
    from human_body_prior.priors.augmentation import jitter_poses

    rng = np.random.default_rng(3)
    poses = 0.3 * rng.standard_normal((400, 63))
    (tmp_path / "train").mkdir()
    torch.save(torch.as_tensor(poses, dtype=torch.float32), tmp_path / "train" / "pose.pt")
    for name, extra in (("plain", []), ("jitter", ["--jitter-deg", "10"])):
        gmm_module.main(["--train", str(tmp_path / "train"), "--out", str(tmp_path / f"{name}.npz"),
                         "--components", "1", "--seed", "4"] + extra)
    stored = torch.load(tmp_path / "train" / "pose.pt").double()
    jittered = jitter_poses(stored.reshape(400, 21, 3), 10.0, torch.Generator().manual_seed(4)).reshape(400, 63).numpy()
    with np.load(tmp_path / "jitter.npz") as f, np.load(tmp_path / "plain.npz") as g:
        np.testing.assert_allclose(f["means"][0], jittered.mean(0), atol=1e-9)
        np.testing.assert_allclose(f["covariances"][0], np.cov(jittered.T, bias=True) + 1e-4 * np.eye(63), atol=1e-9)
        assert np.trace(f["covariances"][0]) > np.trace(g["covariances"][0])
