"""Loading and writing 2019-layout VPoser experiment folders (priors/experiment.py; upstream path tools/model_loader)."""

import os
import pickle

import numpy as np
import pytest
import torch
from configer import Configer

from human_body_prior.priors.vposer import VPoser
from human_body_prior.priors.experiment import (expid2model, load_vposer, save_snapshot, snapshot_fname,
                                                 write_settings, write_vposer_experiment)
from vposer_v1_reference import (folder_code_was_executed, np_decode, np_encode, v1_state_dict,
                                 write_2019_folder)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A folder laid out like the official vposer_v1_0 download (its code file imports torchgeometry)."""
    return write_2019_folder(tmp_path_factory.mktemp("dl") / "vposer_v1_0", v1_state_dict(seed=5))


def test_official_layout_loads_without_running_folder_code(official, capsys):
    folder, sd = official
    vp, ps = load_vposer(str(folder), vp_model="snapshot")
    assert f"Found Trained Model: {folder / 'snapshots' / 'TR00_E096.pt'}" in capsys.readouterr().out
    assert not folder_code_was_executed(folder)
    assert isinstance(vp, VPoser) and not vp.training
    assert isinstance(ps, Configer)
    assert (ps.num_neurons, ps.latentD, ps.data_shape, ps.use_cont_repr) == (512, 32, [1, 21, 3], True)
    assert ps.expr_code == "004_00_WO_accad" and ps.kl_coef == 0.005
    assert ps.work_dir == str(folder) and ps.best_model_fname.endswith("TR00_E096.pt")
    for k, v in vp.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_loaded_model_outputs_match_reference(official):
    folder, sd = official
    vp, _ = load_vposer(folder, verbose=False)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 32))
    with torch.no_grad():
        R = vp.decode(torch.tensor(z, dtype=torch.float32)).numpy().reshape(4, 21, 3, 3)
        pose = rng.normal(scale=0.5, size=(4, 63))
        q = vp.encode(torch.tensor(pose, dtype=torch.float32))
    np.testing.assert_allclose(R, np_decode(sd, z), atol=2e-5)
    mu, std = np_encode(sd, pose)
    np.testing.assert_allclose(q.mean.numpy(), mu, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.scale.numpy(), std, rtol=1e-4, atol=1e-5)
    assert vp.sample_poses(num_poses=10).shape == (10, 1, 21, 3)


def test_expid2model(official):
    folder, _ = official
    ps, best = expid2model(folder, verbose=False)
    assert best == str(folder / "snapshots" / "TR00_E096.pt")
    assert ps.best_model_fname == best


def test_highest_epoch_wins_over_newest_mtime(tmp_path):
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8, seed=1), 64, 8, snapshot="TR00_E999.pt")
    newest_sd = v1_state_dict(64, 8, seed=2)
    torch.save(newest_sd, folder / "snapshots" / "TR00_E1000.pt")  # numerically higher, lexically lower
    torch.save(v1_state_dict(64, 8, seed=3), folder / "snapshots" / "TR00_E010.pt")
    torch.save(v1_state_dict(64, 8, seed=4), folder / "snapshots" / "TR01_E005.pt")
    os.utime(folder / "snapshots" / "TR00_E1000.pt", (1_000_000, 1_000_000))  # oldest file time
    ps, best = expid2model(folder, verbose=False)
    assert os.path.basename(best) == "TR00_E1000.pt"
    vp, _ = load_vposer(folder, verbose=False)
    assert torch.equal(vp.bodyprior_dec_out.weight, newest_sd["bodyprior_dec_out.weight"])


def test_settings_with_several_sections(tmp_path):
    ini = "[General]\nexpr_code : multi\nbatch_size : 64\n\n[Model]\nnum_neurons : 64\nlatentD : 8\n" \
          "data_shape : [1, 21, 3]\nuse_cont_repr : True\n"
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8, ini_name="s.ini", ini_text=ini)
    vp, ps = load_vposer(folder, verbose=False)
    assert (vp.num_neurons, vp.latentD, ps.batch_size, ps.expr_code) == (64, 8, 64, "multi")


def test_vp_model_class_and_instance(official):
    folder, sd = official
    built = []

    class Mine(VPoser):
        def __init__(self, **kwargs):
            built.append(kwargs)
            super().__init__(**kwargs)

    vp, _ = load_vposer(folder, vp_model=Mine, verbose=False)
    assert isinstance(vp, Mine)
    assert built == [dict(num_neurons=512, latentD=32, data_shape=[1, 21, 3], use_cont_repr=True)]
    inst = VPoser(512, 32, [1, 21, 3]).train()
    vp2, _ = load_vposer(folder, vp_model=inst, verbose=False)
    assert vp2 is inst and not inst.training
    assert torch.equal(inst.bodyprior_enc_mu.weight, sd["bodyprior_enc_mu.weight"])
    with pytest.raises(ValueError, match="vp_model"):
        load_vposer(folder, vp_model="folder_code", verbose=False)


def test_map_location_and_device(official):
    folder, _ = official
    vp, _ = load_vposer(folder, map_location="cpu", verbose=False)
    assert vp.bodyprior_dec_fc1.weight.device.type == "cpu"
    vp, _ = load_vposer(folder, device=torch.device("cpu"), verbose=False)
    assert vp.bodyprior_dec_fc1.weight.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_to_cuda(official):
    vp, _ = load_vposer(official[0], device="cuda", verbose=False)
    assert vp.sample_poses(3, seed=0).device.type == "cuda"


def test_legacy_non_zip_snapshot(tmp_path):
    """2019 snapshots predate PyTorch's zip format (1.6); weights_only loading still reads them."""
    model = VPoser(64, 8, [1, 21, 3])
    model.load_state_dict(v1_state_dict(64, 8, seed=8))
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8, snapshot="TR00_E001.pt")
    torch.save(model.state_dict(), folder / "snapshots" / "TR00_E096.pt", _use_new_zipfile_serialization=False)
    vp, _ = load_vposer(folder, verbose=False)
    assert torch.equal(vp.bodyprior_dec_fc2.weight, model.bodyprior_dec_fc2.weight)


def test_dataparallel_prefix_and_missing_num_batches_tracked(tmp_path):
    sd = v1_state_dict(64, 8, seed=9)
    sd = {f"module.{k}": v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    folder, _ = write_2019_folder(tmp_path / "ex", sd, 64, 8)
    vp, _ = load_vposer(folder, verbose=False)
    assert torch.equal(vp.bodyprior_enc_fc1.weight, sd["module.bodyprior_enc_fc1.weight"])


# ------------------------------------------------------------------------------------------- errors
def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_vposer(tmp_path / "nowhere")


def test_no_snapshot(tmp_path):
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8)
    os.remove(folder / "snapshots" / "TR00_E096.pt")
    with pytest.raises(FileNotFoundError, match="no snapshot"):
        load_vposer(folder, verbose=False)
    os.rmdir(folder / "snapshots")
    with pytest.raises(FileNotFoundError, match="snapshots"):
        expid2model(folder, verbose=False)


def test_ambiguous_snapshot_names(tmp_path):
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8, snapshot="a.pt")
    vp, _ = load_vposer(folder, verbose=False)  # a single snapshot under any name is fine
    torch.save(v1_state_dict(64, 8), folder / "snapshots" / "b.pt")
    with pytest.raises(FileNotFoundError, match="TRxx_Eyyy"):
        load_vposer(folder, verbose=False)


def test_no_settings_file(tmp_path):
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8)
    os.remove(folder / "TR00_004_00_WO_accad.ini")
    with pytest.raises(FileNotFoundError, match=r"settings file \(\*\.ini\)"):
        load_vposer(folder, verbose=False)


def test_settings_missing_keys(tmp_path):
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8, ini_text="[All]\nlatentD : 8\n")
    with pytest.raises(ValueError, match="num_neurons"):
        load_vposer(folder, verbose=False)


def test_state_dict_that_does_not_fit(tmp_path):
    sd = v1_state_dict(64, 8)
    del sd["bodyprior_enc_mu.bias"]
    sd["extra.weight"] = torch.zeros(3)
    sd["bodyprior_dec_out.weight"] = torch.zeros(10, 64)
    folder, _ = write_2019_folder(tmp_path / "ex", sd, 64, 8)
    with pytest.raises(ValueError) as err:
        load_vposer(folder, verbose=False)
    msg = str(err.value)
    assert "TR00_E096.pt" in msg and "bodyprior_enc_mu.bias" in msg and "extra.weight" in msg
    assert "bodyprior_dec_out.weight: file (10, 64) vs model (126, 64)" in msg


def test_wrong_architecture_in_settings(official, tmp_path):
    """Settings saying latentD 16 for 32-dim weights: a shape error naming the keys, not a crash."""
    _, sd = official
    folder, _ = write_2019_folder(tmp_path / "ex", sd, 512, 16)
    with pytest.raises(ValueError, match="bodyprior_enc_mu.weight: file \\(32, 512\\) vs model \\(16, 512\\)"):
        load_vposer(folder, verbose=False)


def test_snapshot_with_code_is_refused(tmp_path):
    """A pickle that would run code when unpickled is refused by weights_only loading."""
    folder, _ = write_2019_folder(tmp_path / "ex", v1_state_dict(64, 8), 64, 8)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "snapshots" / "TR00_E100.pt", "wb") as f:
        pickle.dump({"x": Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match="TR00_E100.pt"):
        load_vposer(folder, verbose=False)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- writing
def test_write_and_reload_roundtrip(tmp_path):
    model = VPoser(64, 8, [1, 21, 3])
    model.load_state_dict(v1_state_dict(64, 8, seed=12))
    folder = tmp_path / "trained"
    path = write_vposer_experiment(folder, model, {"batch_size": 32, "base_lr": 5e-3, "note": "100% mocap"},
                                   epoch=7, expr_code="my_exp")
    assert path == snapshot_fname(folder, 7) == str(folder / "snapshots" / "TR00_E007.pt")
    write_vposer_experiment(folder, model, {"batch_size": 32}, epoch=12, expr_code="my_exp")
    names = sorted(os.listdir(folder))
    assert names == ["TR00_my_exp.ini", "snapshots", "vposer_smpl.py"]  # no temp files left behind
    assert sorted(os.listdir(folder / "snapshots")) == ["TR00_E007.pt", "TR00_E012.pt"]
    from human_body_prior.priors import vposer as vposer_module
    with open(vposer_module.__file__) as f:
        assert (folder / "vposer_smpl.py").read_text() == f.read()

    ps = Configer(default_ps_fname=str(folder / "TR00_my_exp.ini"))  # configer itself reads it
    assert (ps.num_neurons, ps.latentD, ps.data_shape, ps.use_cont_repr, ps.batch_size) == (64, 8, [1, 21, 3], True, 32)

    vp, ps2 = load_vposer(folder, verbose=False)
    assert ps2.best_model_fname.endswith("TR00_E012.pt")
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_array_equal(vp.decode(z).numpy(), model.eval().decode(z).numpy())


def test_write_settings_escapes_percent(tmp_path):
    write_settings({"note": "50% done", "lr": 0.1, "shape": [1, 21, 3]}, tmp_path / "s.ini")
    ps = Configer(default_ps_fname=str(tmp_path / "s.ini"))
    assert (ps.note, ps.lr, ps.shape) == ("50% done", 0.1, [1, 21, 3])


def test_save_snapshot_is_atomic_and_cpu(tmp_path):
    model = VPoser(16, 4, [1, 21, 3])
    fname = tmp_path / "snapshots" / "TR00_E001.pt"
    save_snapshot(model, fname)
    sd = torch.load(fname, weights_only=True)
    assert set(sd) == set(model.state_dict())
    assert os.listdir(tmp_path / "snapshots") == ["TR00_E001.pt"]
