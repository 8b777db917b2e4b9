"""Bad inputs to the trainer and to the experiment loaders: each gets a clear error naming the file and key,
or is read as written (a boolean written 'false' is False)."""

from pathlib import Path

import pytest
import torch

from human_body_prior.train.settings import load_settings, parse_cli_overrides
from tests.v2_fixtures import random_v02_weights, write_v02_folder


def _ini(tmp_path: Path, body: str, name="run.ini") -> Path:
    f = tmp_path / name
    f.write_text("[All]\n" + body + "\n")
    return f


@pytest.mark.parametrize("text,value", [("false", False), ("False", False), ("no", False), ("off", False),
                                        ("0", False), ("true", True), ("yes", True), ("on", True), ("1", True)])
def test_ini_booleans_are_parsed_strictly(tmp_path, text, value):
    ps = load_settings(_ini(tmp_path, f"use_cont_repr : {text}\nrender_pictures : {text}"))
    assert ps.use_cont_repr is value and ps.render_pictures is value


def test_cli_booleans_are_parsed_strictly():
    assert parse_cli_overrides(["--render_pictures", "no"]) == {"render_pictures": False}
    with pytest.raises(ValueError, match=r"'render_pictures' on the command line: expected a boolean"):
        parse_cli_overrides(["--render_pictures", "maybe"])


def test_ini_boolean_that_is_no_boolean_names_key_and_file(tmp_path):
    f = _ini(tmp_path, "render_pictures : maybe")
    with pytest.raises(ValueError, match=rf"'render_pictures' in {f}: expected a boolean.*'maybe'"):
        load_settings(f)


@pytest.mark.parametrize("key,text", [("latentD", "32.7"), ("num_epochs", "ten"), ("batch_size", "1e3"),
                                      ("num_neurons", "True")])
def test_ini_integers_are_parsed_strictly(tmp_path, key, text):
    f = _ini(tmp_path, f"{key} : {text}")
    with pytest.raises(ValueError, match=rf"'{key}' in {f}: expected .*integer.*{text}"):
        load_settings(f)


@pytest.mark.parametrize("key,text,expected", [("base_lr", "fast", "a number"), ("data_shape", "[1, 21]x", "a list"),
                                               ("lr_schedule", "cosine", "one of"), ("dtype", "float16", "one of"),
                                               ("pose_jitter_deg", "-5", "a number >= 0")])
def test_ini_type_errors_name_the_key(tmp_path, key, text, expected):
    f = _ini(tmp_path, f"{key} : {text}")
    with pytest.raises(ValueError, match=rf"'{key}' in {f}: expected {expected}"):
        load_settings(f)


def test_non_utf8_ini_names_the_file(tmp_path):
    f = tmp_path / "latin1.ini"
    f.write_bytes("[All]\nexpr_code : caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"settings file {f} is not UTF-8"):
        load_settings(f)


def test_settings_are_frozen():
    ps = load_settings(num_epochs=3)
    assert ps.num_epochs == 3 and ps["num_epochs"] == 3
    with pytest.raises(AttributeError, match="frozen"):
        ps.num_epochs = 4


def _spy_constructions(monkeypatch, cls):
    """Record (num_neurons, device the parameters are created on) for each construction of cls."""
    seen = []
    orig = cls.__init__

    def init(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        seen.append((self.num_neurons, next(self.parameters()).device.type))

    monkeypatch.setattr(cls, "__init__", init)
    return seen


def test_v1_wide_settings_fail_before_the_network_is_built(tmp_path, monkeypatch):
    from human_body_prior.priors.experiment import write_vposer_experiment
    from human_body_prior.priors.vposer import VPoser
    from human_body_prior.tools.model_loader import load_vposer

    d = tmp_path / "exp"
    write_vposer_experiment(d, VPoser(num_neurons=512, latentD=32, data_shape=[1, 21, 3]), epoch=1, expr_code="x")
    ini = next(d.glob("*.ini"))
    ini.write_text(ini.read_text().replace("num_neurons : 512", "num_neurons : 20000"))
    seen = _spy_constructions(monkeypatch, VPoser)
    with pytest.raises(ValueError, match=r"TR00_E001\.pt does not fit VPoser: shape mismatches.*bodyprior_enc_fc1"):
        load_vposer(d, verbose=False)
    assert (20000, "cpu") not in seen  # a 20000-wide VPoser holds 3.3 GB of float32 weights


def test_v2_wide_settings_fail_before_the_network_is_built(tmp_path, monkeypatch):
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model

    d = write_v02_folder(tmp_path / "e", num_neurons=20000, weights=random_v02_weights(0))
    seen = _spy_constructions(monkeypatch, VPoser)
    with pytest.raises(ValueError, match=r"epoch=13_val_loss=0\.03\.ckpt does not fit VPoser: shape mismatches"):
        load_model(d, model_code=VPoser, remove_words_in_model_weights="vp_model.", verbose=False)
    assert (20000, "cpu") not in seen


def test_v2_checkpoint_with_nan_weights_is_refused(tmp_path):
    from human_body_prior.tools.model_loader import load_model

    w = random_v02_weights(0)
    w["encoder_net.8.mu.bias"][3] = float("nan")
    d = write_v02_folder(tmp_path / "e", weights=w)
    with pytest.raises(ValueError, match=r"V02_05_epoch=13_val_loss=0\.03\.ckpt holds NaN or inf.*encoder_net\.8\.mu\.bias"):
        load_model(d, verbose=False)


# ---------------------------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from human_body_prior.body_model.synthetic import write_synthetic_model

    root = tmp_path_factory.mktemp("bad_train")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 64), ("vald", 16)):
        (root / "data" / split).mkdir(parents=True)
        torch.save(0.2 * torch.randn(n, 63, generator=g), root / "data" / split / "pose_body.pt")
    bm = write_synthetic_model(root / "model.npz", "smplx", num_verts=300, num_shape_columns=20)
    return root, bm


def _trainer_settings(tiny_data, work_dir, **kw):
    root, bm = tiny_data
    s = dict(dataset_dir=str(root / "data"), bm_path=bm, work_dir=str(work_dir), num_epochs=1, batch_size=16,
             num_neurons=16, latentD=4, render_pictures=False, progress_bar=False, num_threads=1, expr_code="t")
    s.update(kw)
    return s


def test_resume_from_unreadable_state_names_the_file(tiny_data, tmp_path):
    from human_body_prior.train.vposer_smpl import run_vposer_trainer

    work = tmp_path / "exp"
    work.mkdir()
    (work / "training_state.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=rf"cannot resume from {work / 'training_state.pt'}: not a readable"):
        run_vposer_trainer(_trainer_settings(tiny_data, work, resume=True))


def test_resume_from_state_without_epoch_is_a_clear_error(tiny_data, tmp_path):
    from human_body_prior.train.vposer_smpl import run_vposer_trainer

    work = tmp_path / "exp"
    run_vposer_trainer(_trainer_settings(tiny_data, work))
    state = torch.load(work / "training_state.pt", weights_only=True)
    del state["epoch"]
    torch.save(state, work / "training_state.pt")
    with pytest.raises(ValueError, match=r"training_state\.pt: the training state lacks \['epoch'\]"):
        run_vposer_trainer(_trainer_settings(tiny_data, work, resume=True, num_epochs=2))


def test_v2_trainer_writes_a_folder_load_model_reads_and_resumes(tiny_data, tmp_path):
    """The one code path trains v2 too; resuming from a bare v2 snapshot works."""
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model
    from human_body_prior.train.vposer_smpl import run_vposer_trainer

    work = tmp_path / "v2"
    summary = run_vposer_trainer(_trainer_settings(tiny_data, work, model_version=2, num_epochs=2))
    snap = Path(summary["best_snapshot"])
    assert snap.parent == work / "snapshots" and snap.name.startswith("t_epoch=0") and snap.suffix == ".ckpt"
    vp, cfg = load_model(work, model_code=VPoser, remove_words_in_model_weights="vp_model.", verbose=False)
    assert cfg.model_params.num_neurons == 16 and cfg.train_parms.loss_weights.loss_kl_wt == 0.005
    assert vp.sample_poses(3, seed=0)["pose_body"].shape == (3, 21, 3)
    summary2 = run_vposer_trainer(_trainer_settings(tiny_data, tmp_path / "v2b", model_version=2, num_epochs=3,
                                                    resume=str(snap)))
    assert summary2["epochs"] == 3


# ---------------------------------------------------------------------------------------------- issue 24
@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf"])
def test_base_lr_that_is_not_a_positive_number_names_the_key(tmp_path, text):
    """base_lr = -1 reached torch.optim, whose message ('Invalid learning rate: -1.0') names no setting."""
    with pytest.raises(ValueError, match=rf"^setting 'base_lr' in .*run.ini: expected a (positive|finite) number"):
        load_settings(_ini(tmp_path, f"base_lr : {text}"))
    with pytest.raises(ValueError, match=r"^setting 'base_lr' on the command line"):
        parse_cli_overrides(["--base_lr", text])


def test_training_state_on_a_full_disk_is_one_line_and_keeps_the_old_state(tmp_path):
    """torch.save on a file-size limit (as on a full disk) raised a RuntimeError from torch's zip writer
    (a 40-line traceback through the CLI); now an OSError naming the file, the old state kept."""
    import subprocess
    import sys

    code = """
import resource, sys, torch
from human_body_prior.train.checkpoints import ExperimentCheckpoints
from human_body_prior import cli
store = ExperimentCheckpoints(sys.argv[1], model_version=1, expr_code='x')
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
def main(argv):
    store.save_training_state({'big': torch.zeros(1_000_000)})
sys.exit(cli.run(main, [], prog='train'))
"""
    (tmp_path / "training_state.pt").write_bytes(b"old state")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "training_state.pt" in res.stderr and "the previous file is kept" in res.stderr
    assert (tmp_path / "training_state.pt").read_bytes() == b"old state"
    assert [p.name for p in tmp_path.iterdir()] == ["training_state.pt"]  # no temporary file left
