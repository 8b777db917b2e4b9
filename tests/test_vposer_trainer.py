"""VPoser trainer: experiment folder, resume, determinism, atomic snapshots, two-process DDP."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.tools.model_loader import expid2model, load_vposer
from human_body_prior.train import losses
from human_body_prior.train.settings import load_settings, parse_cli_overrides
from human_body_prior.train.vposer_smpl import VPoser, VPoserTrainer, run_vposer_trainer

REPO = Path(__file__).resolve().parents[1]


def _write_split(folder: Path, n: int, rng) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # plausible-ish poses: small rotations about random axes, knees (joints 4, 5 -> rows 3, 4) bent
    pose = rng.normal(scale=0.25, size=(n, 21, 3))
    pose[:, 3:5, 0] = np.abs(pose[:, 3:5, 0]) + 0.2
    torch.save(torch.tensor(pose.reshape(n, 63), dtype=torch.float32), folder / "pose_body.pt")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vposer")
    rng = np.random.default_rng(3)
    _write_split(root / "data" / "train", 96, rng)
    _write_split(root / "data" / "vald", 24, rng)
    bm_path = write_synthetic_model(root / "model.npz", "smplx", num_verts=300, num_shape_columns=20)
    return root, bm_path


def _settings(tiny, work_dir, **kw):
    root, bm_path = tiny
    s = dict(dataset_dir=str(root / "data"), bm_path=bm_path, work_dir=str(work_dir), num_epochs=1,
             batch_size=32, num_neurons=32, latentD=8, render_pictures=False, progress_bar=False,
             num_threads=1, expr_code="tiny", seed=11)
    s.update(kw)
    return s


def _weights(work_dir):
    model, _ = load_vposer(work_dir, verbose=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_one_epoch_writes_2019_folder_that_load_vposer_reads(tiny, tmp_path):
    work = tmp_path / "exp"
    summary = run_vposer_trainer(_settings(tiny, work))
    assert summary["epochs"] == 1
    assert (work / "snapshots" / "TR00_E001.pt").is_file()
    assert (work / "TR00_tiny.ini").is_file() and (work / "vposer_smpl.py").is_file()
    log = (work / "tiny.log").read_text()
    assert "epoch   1/1" in log and "vald" in log and "train" in log
    ps, best = expid2model(work, verbose=False)
    assert Path(best).name == "TR00_E001.pt"
    assert ps.latentD == 8 and ps.num_neurons == 32 and list(ps.data_shape) == [1, 21, 3]
    model, _ = load_vposer(work, verbose=False)
    assert isinstance(model, VPoser) and not model.training
    state = torch.load(work / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1 and "optimizer" in state
    assert _same(model.state_dict(), state["model"])
    out = model.decode(torch.zeros(2, 8), output_type="aa")
    assert out.shape == (2, 1, 21, 3) and torch.isfinite(out).all()


def test_training_lowers_validation_loss(tiny, tmp_path):
    root, bm_path = tiny
    ps = load_settings(strict=False, **_settings(tiny, tmp_path / "exp", num_epochs=6, base_lr=3e-3))
    trainer = VPoserTrainer(ps)
    before = trainer.evaluate(trainer.vald_poses)["mesh_l1_mm"]
    trainer.train()
    after = trainer.evaluate(trainer.vald_poses)["mesh_l1_mm"]
    trainer.close()
    assert after < 0.8 * before


def test_deterministic_resume_and_global_rng_untouched(tiny, tmp_path):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    run_vposer_trainer(_settings(tiny, tmp_path / "straight", num_epochs=3))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)

    run_vposer_trainer(_settings(tiny, tmp_path / "again", num_epochs=3))
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "again"))

    split = tmp_path / "split"
    run_vposer_trainer(_settings(tiny, split, num_epochs=1))
    summary = run_vposer_trainer(_settings(tiny, split, num_epochs=3, resume=True))
    assert summary["epochs"] == 3
    assert "resumed from" in (split / "tiny.log").read_text()
    straight = torch.load(tmp_path / "straight" / "training_state.pt", weights_only=True)
    resumed = torch.load(split / "training_state.pt", weights_only=True)
    assert _same(straight["model"], resumed["model"])  # resume continues exactly where it stopped

    run_vposer_trainer(_settings(tiny, tmp_path / "other_seed", num_epochs=1, seed=12))
    assert not _same(_weights(tmp_path / "other_seed"), _weights(split))


def test_pose_jitter_setting_reaches_every_training_batch(tiny, tmp_path, monkeypatch):
    """pose_jitter_deg is applied to each training batch (not to validation) and changes the weights;
    at 0 the batches pass through unchanged."""
    from human_body_prior.train import trainer as trainer_module

    seen = []
    real = trainer_module.jitter_poses
    monkeypatch.setattr(trainer_module, "jitter_poses",
                        lambda pose, sigma, gen: seen.append((tuple(pose.shape), sigma)) or real(pose, sigma, gen))
    run_vposer_trainer(_settings(tiny, tmp_path / "plain"))
    plain_calls, seen[:] = list(seen), []
    run_vposer_trainer(_settings(tiny, tmp_path / "jitter", pose_jitter_deg=5.0))
    assert plain_calls and all(sigma == 0 for _, sigma in plain_calls)
    assert len(seen) == len(plain_calls) and all(sigma == 5.0 for _, sigma in seen)
    assert all(shape[1:] == (21, 3) for shape, _ in seen)
    assert not _same(_weights(tmp_path / "plain"), _weights(tmp_path / "jitter"))


def test_dropout_does_not_reseed_torchs_default_generator(tiny, tmp_path, monkeypatch):
    """Dropout masks come from a private generator: inside the training forward torch's default
    generator still has the seed it had outside (seeding it, even temporarily, would change that)."""
    from human_body_prior.train import trainer

    seen = []
    real_forward = trainer._VAEStep.forward

    def forward(self, pose_aa, eps):
        seen.append((torch.initial_seed(), self.training))
        return real_forward(self, pose_aa, eps)

    monkeypatch.setattr(trainer._VAEStep, "forward", forward)
    torch.manual_seed(1234)
    run_vposer_trainer(_settings(tiny, tmp_path / "exp", num_epochs=1))
    assert any(training for _, training in seen) and all(s == 1234 for s, _ in seen)


def test_resume_from_bare_snapshot_takes_epoch_from_name(tiny, tmp_path):
    work = tmp_path / "exp"
    run_vposer_trainer(_settings(tiny, work, num_epochs=1))
    snap = work / "snapshots" / "TR00_E001.pt"
    ps = load_settings(strict=False, **_settings(tiny, tmp_path / "exp2", num_epochs=2, resume=str(snap),
                                                 train_frame_step=2))
    trainer = VPoserTrainer(ps)
    assert trainer.epoch == 1
    assert len(trainer.train_poses) == 48  # every second of the 96 training poses
    assert _same({k: v for k, v in trainer.vposer.state_dict().items()}, torch.load(snap, weights_only=True))
    trainer.close()


def test_interrupted_save_leaves_previous_snapshot_intact(tiny, tmp_path, monkeypatch):
    work = tmp_path / "exp"
    run_vposer_trainer(_settings(tiny, work, num_epochs=1, base_lr=3e-3))
    good = torch.load(work / "snapshots" / "TR00_E001.pt", weights_only=True)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):  # half a file lands on disk, then the process "dies"
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:
            fh.truncate(max(1, os.path.getsize(f) // 2))
        raise KeyboardInterrupt("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        run_vposer_trainer(_settings(tiny, work, num_epochs=2, base_lr=3e-3, resume=True))
    monkeypatch.setattr(torch, "save", real_save)

    snaps = sorted(p.name for p in (work / "snapshots").iterdir())
    assert snaps == ["TR00_E001.pt"], snaps  # no half-written E002 and no temp file left behind
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]
    model, _ = load_vposer(work, verbose=False)
    assert _same(model.state_dict(), good)
    state = torch.load(work / "training_state.pt", weights_only=True)
    assert state["epoch"] == 1


def test_body_surface_matches_body_model(tiny):
    _, bm_path = tiny
    gen = torch.Generator().manual_seed(0)
    pose = torch.randn(4, 63, generator=gen, dtype=torch.float64) * 0.5
    ref = BodyModel(bm_path, dtype=torch.float64)(pose_body=pose)
    surf = losses.BodySurface(bm_path, num_vertices=50, seed=1, dtype=torch.float64)
    v, j = surf(VPoser.aa2matrot(pose.reshape(4, 21, 3)))
    assert v.shape == (4, 50, 3) and len(set(surf.vertex_ids.tolist())) == 50
    assert torch.allclose(v, ref.v[:, surf.vertex_ids], atol=1e-10)
    assert torch.allclose(j, ref.Jtr[:, :22], atol=1e-10)


def test_v2_objective_terms_match_independent_references(tiny):
    """Each term of the V02 loss against its definition: KL from torch.distributions, the geodesic
    angle from scipy, mesh and joint L1 from BodyModel's full skinning; weights and the switch apply."""
    from scipy.spatial.transform import Rotation

    _, bm_path = tiny
    rng = np.random.default_rng(5)
    aa_in, aa_rec = rng.normal(scale=0.6, size=(2, 6, 21, 3))
    R_in = torch.tensor(Rotation.from_rotvec(aa_in.reshape(-1, 3)).as_matrix().reshape(6, 21, 9))
    R_rec = torch.tensor(Rotation.from_rotvec(aa_rec.reshape(-1, 3)).as_matrix().reshape(6, 1, 21, 9),
                         requires_grad=True)
    mean = torch.tensor(rng.normal(size=(6, 4)))
    std = torch.tensor(rng.uniform(0.2, 1.5, size=(6, 4)))
    surf = losses.BodySurface(bm_path, dtype=torch.float64)
    w = {"loss_kl_wt": 0.005, "loss_rec_wt": 4.0, "loss_matrot_wt": 2.0, "loss_jtr_wt": 3.0}
    out = losses.vposer_v2_loss(R_in, R_rec, mean, std, surf, w, use_extra_terms=True)

    bm = BodyModel(bm_path, dtype=torch.float64)
    b_in = bm(pose_body=torch.tensor(aa_in.reshape(6, 63)))
    b_rec = bm(pose_body=torch.tensor(aa_rec.reshape(6, 63)))
    mesh = (b_rec.v - b_in.v).abs().mean().item()
    jtr = (b_rec.Jtr[:, 1:22] - b_in.Jtr[:, 1:22]).abs().mean().item()
    rot_in, rot_rec = Rotation.from_rotvec(aa_in.reshape(-1, 3)), Rotation.from_rotvec(aa_rec.reshape(-1, 3))
    geo = np.mean((rot_in.inv() * rot_rec).magnitude())
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mean, std),
                                           torch.distributions.Normal(0.0, 1.0)).sum(-1).mean().item()
    assert out["mesh_l1_mm"].item() == pytest.approx(1000 * mesh, rel=1e-9)
    assert out["jtr_l1_mm"].item() == pytest.approx(1000 * jtr, rel=1e-9)
    assert out["geodesic_deg"].item() == pytest.approx(np.degrees(geo), rel=1e-9)
    assert out["kl"].item() == pytest.approx(kl, rel=1e-9)
    full = 0.005 * kl + 4.0 * mesh + 2.0 * geo + 3.0 * jtr
    assert out["loss"].item() == pytest.approx(full, rel=1e-9)
    short = losses.vposer_v2_loss(R_in, R_rec, mean, std, surf, w, use_extra_terms=False)["loss"]
    assert short.item() == pytest.approx(0.005 * kl + 4.0 * mesh, rel=1e-9)
    out["loss"].backward()
    assert torch.isfinite(R_rec.grad).all() and R_rec.grad.abs().sum() > 0


def test_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    std = torch.rand(5, 7, generator=gen, dtype=torch.float64) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, std),
                                            torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(losses.kl_to_standard_normal(mean, std), ref)


def test_settings_files_and_command_line(tmp_path):
    ini = tmp_path / "run.ini"
    ini.write_text("[training]\nnum_epochs = 7\n[network]\nlatentD = 16\n")
    args = parse_cli_overrides(["--config_path", str(ini), "--base_lr", "2e-4", "--expr_code=abc"])
    assert args == {"config_path": str(ini), "base_lr": 2e-4, "expr_code": "abc"}
    cfg = args.pop("config_path")
    ps = load_settings(cfg, **args)
    assert ps.num_epochs == 7 and ps.latentD == 16 and ps.base_lr == 2e-4 and ps.expr_code == "abc"
    assert ps.kl_coef == 5e-3 and ps.num_neurons == 512  # 2019 defaults
    with pytest.raises(ValueError, match="unknown settings.*num_epoch"):
        load_settings(num_epoch=3)
    with pytest.raises(ValueError, match="--num_epochs needs a value"):
        parse_cli_overrides(["--num_epochs"])


def test_missing_dataset_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="split folder .*nowhere.*train"):
        run_vposer_trainer(_settings(tiny, tmp_path / "exp", dataset_dir=str(tmp_path / "nowhere")))


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys, weakref, torch
    from human_body_prior.train.settings import load_settings
    from human_body_prior.train.trainer import VPoserTrainer
    settings, out = eval(sys.argv[1]), sys.argv[2]
    trainer = VPoserTrainer(load_settings(strict=False, **settings))
    trainer.train()
    torch.save({k: v.detach().cpu() for k, v in trainer.vposer.state_dict().items()},
               os.path.join(out, f"rank{trainer.dist.rank}.pt"))
    ddp = weakref.ref(trainer.step_module)
    trainer.close()
    # the DDP wrapper (whose reducer holds the gloo group) is gone before the interpreter exits
    assert ddp() is None and not torch.distributed.is_initialized()
""")


def test_two_process_gloo_ranks_agree(tiny, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT)
    settings = _settings(tiny, tmp_path / "exp", num_epochs=2, batch_size=16)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                "--standalone"]
    proc = subprocess.run(torchrun + [str(script), repr(settings), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert _same(r0, r1)  # parameters and batch-norm buffers identical on both ranks
    init = VPoser(32, 8, [1, 21, 3]).state_dict()
    assert not torch.equal(r0["bodyprior_dec_out.weight"], init["bodyprior_dec_out.weight"])
    log = (tmp_path / "exp" / "tiny.log").read_text()
    assert "2 process(es)" in log and "epoch   2/2" in log
    model, _ = load_vposer(tmp_path / "exp", verbose=False)
    best = int(Path(expid2model(tmp_path / "exp", verbose=False)[1]).stem.split("_E")[1])
    if best == 2:  # the folder's best snapshot is the final weights
        assert _same(model.state_dict(), r0)


_DDP_FAILING_RANK_SCRIPT = textwrap.dedent("""
    import sys
    from human_body_prior.train import trainer
    from human_body_prior.train.vposer_smpl import run_vposer_trainer
    real = trainer.VPoserTrainer.train_epoch
    def train_epoch(self, epoch):
        if self.dist.rank == 1 and epoch == 2:
            raise RuntimeError("rank 1 fails on purpose")
        return real(self, epoch)
    trainer.VPoserTrainer.train_epoch = train_epoch
    run_vposer_trainer(eval(sys.argv[1]))
""")


def test_a_failing_rank_ends_the_job_with_its_error(tiny, tmp_path):
    """The failing rank leaves without the closing barrier (its peer is inside a collective and never
    reaches it), so torchrun sees the error at once instead of after gloo's 30-minute timeout."""
    script = tmp_path / "ddp_fail.py"
    script.write_text(_DDP_FAILING_RANK_SCRIPT)
    settings = _settings(tiny, tmp_path / "exp", num_epochs=3, batch_size=16)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                           "--standalone", str(script), repr(settings)], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stdout + proc.stderr


def test_evaluation_script_on_tiny_run(tiny, tmp_path):
    from human_body_prior.evaluation.vposer import evaluate

    root, bm_path = tiny
    data = tmp_path / "data"
    for split in ("train", "vald", "test"):
        src = root / "data" / ("vald" if split == "test" else split)
        (data / split).mkdir(parents=True)
        (data / split / "pose_body.pt").write_bytes((src / "pose_body.pt").read_bytes())
    run_vposer_trainer(_settings(tiny, tmp_path / "exp", num_epochs=1))
    res = evaluate(tmp_path / "exp", data, num_samples=50, bm_path=bm_path)
    assert res["splits"]["vald"]["poses"] == 24 and res["samples"]["non_finite"] == 0
    # test == vald here, so their numbers agree; and a vald pose's nearest training pose is not itself
    assert res["splits"]["test"]["per_joint_mm"] == pytest.approx(res["splits"]["vald"]["per_joint_mm"])
    assert res["samples"]["reference_test_poses_nearest_train_rms_joint_mm"]["median"] > 0


@pytest.mark.render
def test_pictures_of_reconstructions_and_samples(tiny, tmp_path):
    from PIL import Image

    work = tmp_path / "exp"
    run_vposer_trainer(_settings(tiny, work, num_epochs=1, render_pictures=True))
    pics = sorted((work / "pictures").glob("*.png"))
    assert [p.name for p in pics] == ["TR00_E001_reconstructions.png", "TR00_E001_samples.png"]
    for p in pics:
        img = np.asarray(Image.open(p))
        assert img.ndim == 3 and img.std() > 1.0  # not a blank canvas


def test_packaging_the_shipped_folder(tiny, tmp_path):
    from human_body_prior.train.train_open_vposer import package

    work = tmp_path / "exp"
    run_vposer_trainer(_settings(tiny, work, num_epochs=2, base_lr=3e-3))
    best = expid2model(work, verbose=False)[1]
    out = tmp_path / "shipped"
    package(work, out)
    (out / "MODEL_CARD.md").write_text("card")
    package(work, out)  # packaging again keeps the hand-written card
    assert (out / "MODEL_CARD.md").read_text() == "card"
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [Path(best).name]
    model, ps = load_vposer(out, verbose=False)
    assert _same(model.state_dict(), torch.load(best, weights_only=True))
    assert ps.work_dir == str(out) and ps.expr_code == "vposer_v1_0_open"
    ini_text = (out / "TR00_vposer_v1_0_open.ini").read_text()
    assert str(tmp_path) not in ini_text and "work_dir : .\n" in ini_text  # relocatable, no scratch paths
    assert not (tmp_path / "shipped.packing").exists() and not (tmp_path / "shipped.old").exists()


def test_packaging_the_shipped_v2_folder(tiny, tmp_path):
    """train_open_vposer's v2 packaging: the V02 layout, weights only, relocatable, loadable as public v2 code does."""
    from human_body_prior.models.vposer_model import VPoser as VPoserV2
    from human_body_prior.priors.vposer_v2_io import read_checkpoint
    from human_body_prior.tools.model_loader import load_model
    from human_body_prior.train.train_open_vposer import package_v2

    work = tmp_path / "exp"
    summary = run_vposer_trainer(_settings(tiny, work, num_epochs=2, base_lr=3e-3, model_version=2))
    out = tmp_path / "shipped"
    package_v2(work, out)
    (out / "MODEL_CARD.md").write_text("card")
    package_v2(work, out)
    assert (out / "MODEL_CARD.md").read_text() == "card"
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [Path(summary["best_snapshot"]).name]
    assert sorted(torch.load(next((out / "snapshots").iterdir()), weights_only=True)) == ["epoch", "global_step",
                                                                                          "state_dict"]
    text = (out / "vposer_v2_0_open.yaml").read_text()
    assert str(tmp_path) not in text and "data_shape:\n  - 1\n  - 21\n  - 3" in text
    vp, cfg = load_model(out, model_code=VPoserV2, remove_words_in_model_weights="vp_model.", verbose=False)
    trained = read_checkpoint(summary["best_snapshot"])["state_dict"]
    assert _same({f"vp_model.{k}": v for k, v in vp.state_dict().items()}, trained)
    assert cfg.model_params.latentD == 8 and cfg.logging.work_dir == "."


def test_v2_yaml_records_the_schedule_and_gender_the_run_used(tiny, tmp_path):
    """The V02 yaml says which learning-rate schedule ran, with its arguments, and the gender of the body
    model file (from its official name); not always ReduceLROnPlateau and 'neutral'."""
    import shutil

    from human_body_prior.priors.vposer_v2_io import read_config

    _, bm_path = tiny
    female = tmp_path / "SMPLX_FEMALE.npz"
    shutil.copyfile(bm_path, female)
    work = tmp_path / "step_female"
    run_vposer_trainer(_settings(tiny, work, model_version=2, bm_path=str(female), lr_schedule="step",
                                 lr_step_epochs=7, lr_factor=0.25))
    cfg = read_config(work / "tiny.yaml")
    assert cfg.train_parms.lr_scheduler.to_dict() == {"type": "StepLR", "args": {"step_size": 7, "gamma": 0.25}}
    assert cfg.body_model.gender == "female" and cfg.body_model.bm_fname == str(female)

    amass_male = tmp_path / "male" / "model.npz"  # AMASS's layout
    amass_male.parent.mkdir()
    shutil.copyfile(bm_path, amass_male)
    work = tmp_path / "none_male"
    run_vposer_trainer(_settings(tiny, work, model_version=2, bm_path=str(amass_male), lr_schedule="none"))
    cfg = read_config(work / "tiny.yaml")
    assert cfg.train_parms.lr_scheduler is None and cfg.body_model.gender == "male"

    work = tmp_path / "plateau_unnamed"  # the tiny model's file name says no gender: none is claimed
    run_vposer_trainer(_settings(tiny, work, model_version=2, lr_patience=2, lr_factor=0.3, min_lr=1e-5))
    cfg = read_config(work / "tiny.yaml")
    assert cfg.train_parms.lr_scheduler.to_dict() == {
        "type": "ReduceLROnPlateau", "args": {"mode": "min", "factor": 0.3, "patience": 2, "min_lr": 1e-5}}
    assert cfg.body_model.gender is None


def test_rotation_error_metric_against_scipy(tiny):
    from scipy.spatial.transform import Rotation

    from human_body_prior.evaluation.vposer import reconstruction_errors

    _, bm_path = tiny

    class FixedDecoder(VPoser):  # encodes anything to 0 and decodes to a known pose
        def __init__(self, out):
            super().__init__(8, 2, [1, 21, 3])
            self.out = out

        def encode(self, Pin):
            return torch.distributions.Normal(torch.zeros(len(Pin), 2), torch.ones(len(Pin), 2))

        def decode(self, Zin, output_type="matrot"):
            return self.out.expand(len(Zin), 1, 21, 9)

    rng = np.random.default_rng(0)
    poses = torch.tensor(rng.normal(scale=0.5, size=(5, 21, 3)), dtype=torch.float64)
    out_aa = rng.normal(scale=0.5, size=(21, 3))
    out = torch.tensor(Rotation.from_rotvec(out_aa).as_matrix().reshape(1, 1, 21, 9))
    surf = losses.BodySurface(bm_path, dtype=torch.float64)
    res = reconstruction_errors(FixedDecoder(out).double(), surf, poses)
    ref = [(Rotation.from_rotvec(p).inv() * Rotation.from_rotvec(out_aa)).magnitude() for p in poses.numpy()]
    assert res["rotation_error_deg"] == pytest.approx(np.degrees(np.mean(ref)), rel=1e-6)
    assert res["kl_nats"] == pytest.approx(0.0, abs=1e-9)  # N(0, 1) posterior
