"""VPoser v2 (V02_05): layout, forward pass against a float64 numpy re-computation, checkpoints and load_model."""

import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tests.v2_fixtures import (
    lightning_checkpoint,
    numpy_decode,
    numpy_encode,
    random_v02_weights,
    v02_state_dict_layout,
    write_v02_folder,
)


def _cfg(H=512, D=32):
    return types.SimpleNamespace(model_params=types.SimpleNamespace(num_neurons=H, latentD=D))


def _poses(n=16, seed=1):
    g = np.random.default_rng(seed)
    return torch.as_tensor(g.normal(scale=0.6, size=(n, 21, 3)))


def test_upstream_import_paths():
    from human_body_prior.models.model_components import BatchFlatten
    from human_body_prior.models.vposer_model import ContinousRotReprDecoder, NormalDistDecoder, VPoser
    from human_body_prior.tools.model_loader import exprdir2model, load_model

    assert callable(load_model) and callable(exprdir2model)
    vp = VPoser(_cfg())
    assert isinstance(vp.encoder_net[0], BatchFlatten)
    assert isinstance(vp.encoder_net[8], NormalDistDecoder)
    assert isinstance(vp.decoder_net[6], ContinousRotReprDecoder)
    assert isinstance(vp.encoder_net[3], torch.nn.LeakyReLU) and vp.encoder_net[3].negative_slope == 0.01
    assert isinstance(vp.encoder_net[5], torch.nn.Dropout) and vp.encoder_net[5].p == 0.1


@pytest.mark.parametrize("H,D", [(512, 32), (64, 8)])
def test_state_dict_is_the_official_layout(H, D):
    from human_body_prior.models.vposer_model import VPoser

    sd = VPoser(_cfg(H, D)).state_dict()
    expected = v02_state_dict_layout(H, D)
    assert list(sd) == list(expected)
    assert {k: tuple(v.shape) for k, v in sd.items()} == dict(expected)
    VPoser(_cfg(H, D)).load_state_dict(random_v02_weights(0, H, D), strict=True)


def test_config_read_by_attribute_or_key():
    from human_body_prior.models.vposer_model import VPoser

    assert VPoser({"model_params": {"num_neurons": 64, "latentD": 8}}).latentD == 8
    with pytest.raises(ValueError, match="latentD"):
        VPoser(types.SimpleNamespace(model_params=types.SimpleNamespace(num_neurons=64)))
    with pytest.raises(ValueError, match="latentD"):
        VPoser(_cfg(64, 7.5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_decode_match_numpy_float64(dtype):
    from human_body_prior.models.vposer_model import VPoser

    w = random_v02_weights(3)
    vp = VPoser(_cfg()).to(dtype).eval()
    vp.load_state_dict(w)
    pose = _poses(32)
    torch.set_grad_enabled(False)
    try:
        q = vp.encode(pose.to(dtype))
        out = vp.decode(torch.as_tensor(np.random.default_rng(5).normal(size=(32, 32))).to(dtype))
    finally:
        torch.set_grad_enabled(True)
    mu_ref, scale_ref = numpy_encode(w, pose.numpy())
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert isinstance(q, torch.distributions.Normal) and q.loc.shape == (32, 32)
    np.testing.assert_allclose(q.loc.double().numpy(), mu_ref, atol=tol * 10, rtol=tol)
    np.testing.assert_allclose(q.scale.double().numpy(), scale_ref, atol=tol * 10, rtol=tol)
    # (N, 63) input gives the same
    torch.testing.assert_close(vp.encode(pose.reshape(32, 63).to(dtype)).loc.detach(), q.loc)

    R_ref = numpy_decode(w, np.random.default_rng(5).normal(size=(32, 32)))
    assert out["pose_body"].shape == (32, 21, 3) and out["pose_body_matrot"].shape == (32, 21, 9)
    np.testing.assert_allclose(out["pose_body_matrot"].double().numpy().reshape(32, 21, 3, 3), R_ref, atol=tol * 10)
    aa_ref = Rotation.from_matrix(R_ref.reshape(-1, 3, 3)).as_rotvec().reshape(32, 21, 3)
    np.testing.assert_allclose(out["pose_body"].double().numpy(), aa_ref, atol=tol * 50)


def test_forward_and_sampling():
    from human_body_prior.models.vposer_model import VPoser

    vp = VPoser(_cfg(64, 8))
    vp.load_state_dict(random_v02_weights(1, 64, 8))
    out = vp(_poses(8).float())
    assert set(out) == {"pose_body", "pose_body_matrot", "poZ_body_mean", "poZ_body_std", "q_z"}
    assert out["poZ_body_mean"].shape == (8, 8) and (out["poZ_body_std"] > 0).all()
    out["pose_body"].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in vp.parameters() if p.grad is not None)

    vp.train()
    cpu_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = vp.sample_poses(5, seed=11)
    b = vp.sample_poses(5, seed=11)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert vp.training
    torch.testing.assert_close(a["pose_body"], b["pose_body"])
    assert a["pose_body"].shape == (5, 21, 3)
    assert not torch.allclose(vp.sample_poses(5, seed=12)["pose_body"], a["pose_body"])


def test_load_model_as_easymocap_calls_it(tmp_path, capsys):
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model

    w = random_v02_weights(2)
    d = write_v02_folder(tmp_path / "V02_05", weights=w)
    vp, cfg = load_model(str(d), model_code=VPoser, remove_words_in_model_weights="vp_model.", disable_grad=True)
    assert "Found Trained Model" in capsys.readouterr().out
    assert not vp.training and not any(p.requires_grad for p in vp.parameters())
    for k, v in w.items():
        assert torch.equal(vp.state_dict()[k], v), k
    assert cfg.model_params.latentD == 32 and cfg["model_params"]["num_neurons"] == 512
    assert cfg.train_parms.loss_weights.loss_kl_wt == 0.005
    assert cfg.logging.best_model_fname.endswith("V02_05_epoch=13_val_loss=0.03.ckpt")

    # the usual v2 call chain: encode real-ish poses, decode, compare against the reference
    pose = _poses(4)
    mu_ref, _ = numpy_encode(w, pose.numpy())
    np.testing.assert_allclose(vp.encode(pose.float()).mean.double().detach().numpy(), mu_ref, atol=1e-4)
    # without the prefix argument, as many scripts call it, the weights still load
    vp2, _ = load_model(d, model_code=VPoser, verbose=False)
    assert torch.equal(vp2.state_dict()["decoder_net.5.bias"], w["decoder_net.5.bias"])
    # only the config
    cfg2 = load_model(d, load_only_cfg=True, verbose=False, model_cfg_override={"model_params": {"latentD": 16}})
    assert cfg2.model_params.latentD == 16 and cfg2.model_params.num_neurons == 512


def test_comp_device_gpu_without_cuda_loads_on_cpu(tmp_path, capsys):
    from human_body_prior.priors import vposer_v2_io
    from human_body_prior.tools.model_loader import load_model

    d = write_v02_folder(tmp_path / "e")
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    vposer_v2_io._said_no_cuda = False
    vp, _ = load_model(d, comp_device="gpu", verbose=False)
    vp, _ = load_model(d, comp_device="gpu", verbose=False)
    assert next(vp.parameters()).device.type == "cpu"
    assert capsys.readouterr().out.count("CUDA is not available") == 1


def test_exprdir2model_picks_highest_epoch_then_lower_loss(tmp_path):
    from human_body_prior.priors.vposer_v2_io import read_checkpoint
    from human_body_prior.tools.model_loader import exprdir2model, load_model

    d = write_v02_folder(tmp_path / "e", epochs_and_losses=((3, 0.01), (13, 0.05), (13, 0.03), (9, 0.02)))
    # file times must not matter: make the intended best the oldest file
    best_name = "V02_05_epoch=13_val_loss=0.03.ckpt"
    for i, p in enumerate(sorted((d / "snapshots").iterdir())):
        os.utime(p, (1e9 + (0 if p.name == best_name else 1000 + i),) * 2)
    cfg, fname = exprdir2model(d)
    assert Path(fname).name == best_name
    vp, _ = load_model(d, verbose=False)
    expected = read_checkpoint(fname)["state_dict"]["vp_model.decoder_net.5.bias"]
    assert torch.equal(vp.state_dict()["decoder_net.5.bias"], expected)


def test_checkpoint_objects_are_never_constructed(tmp_path):
    """The hyper-parameters' foreign object is skipped; loading does not import its module."""
    import sys

    from human_body_prior.priors.vposer_v2_io import read_checkpoint

    d = write_v02_folder(tmp_path / "e")
    ckpt = read_checkpoint(next((d / "snapshots").iterdir()))
    assert "omegaconf" not in sys.modules
    assert "skipped omegaconf.dictconfig.DictConfig" in repr(ckpt["hyper_parameters"]["_config"])
    assert ckpt["epoch"] == 13 and torch.is_tensor(ckpt["callbacks"][next(iter(ckpt["callbacks"]))]["best_model_score"])


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickle_payload_is_refused(tmp_path):
    from human_body_prior.tools.model_loader import load_model

    d = write_v02_folder(tmp_path / "e")
    ckpt_path = next((d / "snapshots").iterdir())
    ckpt = lightning_checkpoint(random_v02_weights(0))
    ckpt["hyper_parameters"] = {"x": _Payload(tmp_path / "pwned")}
    torch.save(ckpt, ckpt_path)
    with pytest.raises(ValueError, match=f"refusing to load {ckpt_path}.*system"):
        load_model(d, verbose=False)
    assert not (tmp_path / "pwned").exists()


def test_safe_yaml(tmp_path):
    from human_body_prior.tools.model_loader import load_model

    d = write_v02_folder(tmp_path / "e")
    y = d / "V02_05.yaml"
    y.write_text(y.read_text() + f"\nevil: !!python/object/apply:os.system ['touch {tmp_path / 'pwned'}']\n")
    with pytest.raises(ValueError, match=f"{y}.*safe"):
        load_model(d, verbose=False)
    assert not (tmp_path / "pwned").exists()


def test_bad_folders_name_the_file(tmp_path):
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model

    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nowhere")
    d = write_v02_folder(tmp_path / "e")
    (d / "V02_05.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"no settings file \(\*\.yaml\)"):
        load_model(d)
    d = write_v02_folder(tmp_path / "f")
    for p in (d / "snapshots").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint \(\*\.ckpt\)"):
        load_model(d)
    # key / shape mismatch: a 256-wide checkpoint against the yaml's 512
    d = write_v02_folder(tmp_path / "g", weights=random_v02_weights(0, 256, 32))
    with pytest.raises(ValueError, match=r"epoch=13.*shape mismatches.*decoder_net\.0\.weight"):
        load_model(d, model_code=VPoser, remove_words_in_model_weights="vp_model.", verbose=False)
    # unexpected keys are listed
    w = random_v02_weights(0)
    w["extra_head.weight"] = torch.zeros(3)
    d = write_v02_folder(tmp_path / "h", weights=w)
    with pytest.raises(ValueError, match=r"unexpected keys \['extra_head\.weight'\]"):
        load_model(d, verbose=False)
    # NaN weights are refused
    w = random_v02_weights(0)
    w["decoder_net.3.weight"][0, 0] = float("nan")
    d = write_v02_folder(tmp_path / "n", weights=w)
    with pytest.raises(ValueError, match=r"epoch=13_val_loss=0\.03\.ckpt holds NaN.*decoder_net\.3\.weight"):
        load_model(d, verbose=False)
    # not a checkpoint at all
    d = write_v02_folder(tmp_path / "t")
    ckpt = next((d / "snapshots").iterdir())
    ckpt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=f"cannot read the checkpoint {ckpt}"):
        load_model(d, verbose=False)


def test_v1_and_v2_folders_point_at_the_right_loader(tmp_path):
    from human_body_prior import default_vposer_dir
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.priors.vposer import VPoser as VPoserV1
    from human_body_prior.tools.model_loader import load_model, load_vposer

    with pytest.raises(FileNotFoundError, match="load_vposer"):
        load_model(default_vposer_dir(), model_code=VPoser)
    d = write_v02_folder(tmp_path / "e")
    with pytest.raises(FileNotFoundError, match="load_model"):
        load_vposer(d)
    with pytest.raises(TypeError, match="models.vposer_model.VPoser"):
        load_model(d, model_code=VPoserV1, verbose=False)


def test_write_checkpoint_round_trip_weights_only(tmp_path):
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.priors.vposer_v2_io import write_checkpoint

    vp = VPoser(_cfg(64, 8))
    vp.load_state_dict(random_v02_weights(4, 64, 8))
    f = write_checkpoint(vp, tmp_path / "x_epoch=02_val_loss=0.10.ckpt", epoch=2)
    ckpt = torch.load(f, weights_only=True)
    assert set(ckpt) == {"epoch", "global_step", "state_dict"}
    assert all(k.startswith("vp_model.") for k in ckpt["state_dict"])
