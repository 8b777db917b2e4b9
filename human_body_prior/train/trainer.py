"""VPoserTrainer: trains VPoser v1 (2019) or v2 (V02, 2021) into an experiment folder, on one process or many.

``model_version`` (1 or 2) picks the network, its objective (:mod:`human_body_prior.train.losses`) and
the folder layout; everything else (data, batches, DDP, schedule, resume, snapshots) is one code path.
Folder written (rank 0 only)::

    <work_dir>/<expr_code>.log            one line per epoch (train and validation losses)
    v1: <work_dir>/TRxx_<expr_code>.ini    the run's settings (read back by load_vposer)
        <work_dir>/vposer_smpl.py          the model code (documentation; never executed)
        <work_dir>/snapshots/TRxx_Eyyy.pt  the model state_dict whenever validation improves
    v2: <work_dir>/<expr_code>.yaml        the run's settings in the V02 layout (read back by load_model)
        <work_dir>/snapshots/<expr_code>_epoch=NN_val_loss=X.ckpt   whenever validation improves
    <work_dir>/training_state.pt           model + optimizer + schedule + epoch, for resuming
    <work_dir>/pictures/*.png              reconstructions and samples, when rendering works

Every file is written to a temporary name in its folder and then renamed, so an interrupted
run never leaves a half-written snapshot. Randomness (initial weights, shuffling, dropout and the
reparameterisation noise) comes from the ``seed`` setting through local generators: a run on CPU
is reproducible and the global random state of numpy and torch is left untouched.
"""

import functools
import gc
import math
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.data.pose_data import PoseBatches, load_pose_split
from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors.any_vposer import decode_aa, decode_matrot, sample_aa
from human_body_prior.priors.vposer import VPoser
from human_body_prior.support_paths import model_file_gender
from human_body_prior.train import distributed
from human_body_prior.train.checkpoints import TRAINING_STATE, ExperimentCheckpoints
from human_body_prior.priors.augmentation import jitter_poses
from human_body_prior.train.losses import (
    V2_LOSS_WEIGHTS,
    BodySurface,
    vposer_loss,
    vposer_v2_loss,
)
from human_body_prior.train.settings import TrainSettings, load_settings

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_vposer(model_version: int, num_neurons: int, latentD: int, data_shape=(1, NUM_POSE_BODY_JOINTS, 3),
                 use_cont_repr=True):
    """The untrained network of a model version: v1 VPoser(...) or v2 VPoser(cfg) (upstream constructors)."""
    if model_version == 1:
        return VPoser(num_neurons=num_neurons, latentD=latentD, data_shape=list(data_shape), use_cont_repr=use_cont_repr)
    if model_version == 2:
        from human_body_prior.priors.vposer_v2 import VPoser as VPoserV2

        return VPoserV2(types.SimpleNamespace(model_params=types.SimpleNamespace(num_neurons=num_neurons,
                                                                                 latentD=latentD)))
    raise ValueError(f"model_version must be 1 or 2, got {model_version!r}")


class _VAEStep(nn.Module):
    """encode -> z = mean + std * eps -> decode, as one forward (what DistributedDataParallel wraps).

    pose_aa (N, 21, 3), eps (N, D) -> (mean, std, pose_matrot (N, 21, 3, 3)).
    """

    def __init__(self, vposer: nn.Module):
        super().__init__()
        self.vposer = vposer

    def forward(self, pose_aa, eps):
        q_z = self.vposer.encode(pose_aa)
        z = q_z.loc + q_z.scale * eps
        return q_z.loc, q_z.scale, decode_matrot(self.vposer, z)


def init_vposer_weights(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a local generator."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                for p in (m.weight, m.bias):
                    if p is not None:
                        p.copy_(torch.rand(p.shape, generator=generator, dtype=torch.float64) * 2 * bound - bound)
            elif isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()


def _step_seed(*keys) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _dropout(module: nn.Dropout, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    """nn.Dropout's training forward with masks from ``generator`` (the computation of torch's own CPU
    dropout: a Bernoulli(1 - p) mask scaled by 1 / (1 - p))."""
    if not module.training or module.p == 0:
        return x
    if module.p == 1:
        return x * 0
    noise = torch.empty_like(x).bernoulli_(1 - module.p, generator=generator)
    noise.div_(1 - module.p)
    return x * noise


class _LocalRandom:
    """Within the block, the model's dropout layers draw their masks from a private generator seeded
    with ``seed`` (torch's dropout takes no generator; torch's default generators are left alone)."""

    def __init__(self, seed: int, device: torch.device, model: nn.Module):
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def __enter__(self):
        for m in self.dropouts:
            m.forward = functools.partial(_dropout, m, self.generator)

    def __exit__(self, *exc):
        for m in self.dropouts:
            del m.forward
        return False


def _lr_schedule(ps):
    """The learning-rate schedule the settings ask for: (torch scheduler class, its keyword arguments
    besides the optimizer), or None for lr_schedule 'none'."""
    kind = ps.lr_schedule.lower()
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau, dict(mode="min", factor=ps.lr_factor,
                                                                patience=ps.lr_patience, min_lr=ps.min_lr)
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR, dict(step_size=ps.lr_step_epochs, gamma=ps.lr_factor)
    if kind == "none":
        return None
    raise ValueError(f"lr_schedule must be 'plateau', 'step' or 'none', got {kind!r}")


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in metrics.items())


class VPoserTrainer:
    """Train VPoser v1 with the 2019 objective (model_version 1) or v2 with the V02 objective (model_version 2).

    ps: settings (a TrainSettings from ``settings.load_settings``, or a dict merged over the defaults and
    parsed once) with at least dataset_dir; everything else
    has a default in ``vposer_smpl_defaults.ini``. Under ``torchrun`` each process trains on its
    shard of every epoch with DistributedDataParallel; rank 0 writes the folder.
    """

    def __init__(self, ps):
        ps = self.ps = self._resolve_settings(ps)
        self._set_up_runtime(ps)
        self._set_up_folder(ps)
        self._load_poses(ps)
        self.surface = BodySurface(ps.bm_path, num_vertices=ps.num_loss_vertices,
                                   seed=ps.vertex_subset_seed, dtype=self.dtype,
                                   subset=ps.vertex_subset).to(self.device)
        self._build_network(ps)
        self.optimizer = torch.optim.Adam(self.vposer.parameters(), lr=ps.base_lr,
                                          weight_decay=ps.reg_coef)
        self.scheduler = self._make_scheduler()
        self.epoch = 0
        self.best_val = math.inf
        self.best_snapshot = None
        self.epochs_since_best = 0
        if ps.resume:
            self.resume(self.work_dir / TRAINING_STATE if ps.resume is True else ps.resume)

    # ------------------------------------------------------------------------------ set-up steps
    def _set_up_runtime(self, ps) -> None:
        """Threads, process group and device, dtype, seed, model version and the objective's weights."""
        if ps.num_threads > 0:
            torch.set_num_threads(ps.num_threads)
        self.dist = distributed.setup(ps.device)
        self.device = self.dist.device
        if ps.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {ps.dtype!r}")
        self.dtype = _DTYPES[ps.dtype]
        self.seed = ps.seed
        self.model_version = ps.model_version
        if self.model_version not in (1, 2):
            raise ValueError(f"model_version must be 1 or 2, got {ps.model_version!r}")
        self.kl_coef = ps.kl_coef
        self.pose_weight = ps.pose_loss_weight
        self.v2_weights = {k: float(ps[k]) for k in V2_LOSS_WEIGHTS} if self.model_version == 2 else None

    def _set_up_folder(self, ps) -> None:
        """The experiment folder (made by rank 0), its log file and its snapshots."""
        self.expr_code = ps.expr_code
        self.work_dir = Path(ps.work_dir)
        self.try_num = ps.try_num
        if self.dist.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_fname = self.work_dir / f"{self.expr_code}.log"
        self.checkpoints = ExperimentCheckpoints(self.work_dir, self.model_version, self.expr_code, self.try_num)

    def _load_poses(self, ps) -> None:
        """train_poses and vald_poses (N, 21, 3) from dataset_dir, and this rank's batches of the former."""
        if not ps.dataset_dir:
            raise ValueError("setting dataset_dir is empty: point it at the folder with train/ and vald/ splits")
        dataset_dir = Path(ps.dataset_dir)
        self.train_poses = load_pose_split(dataset_dir / "train", self.dtype)
        if ps.train_frame_step > 1:  # consecutive mocap frames are near duplicates: shorter epochs, same variety
            self.train_poses = self.train_poses[::ps.train_frame_step].contiguous()
        self.vald_poses = load_pose_split(dataset_dir / "vald", self.dtype)
        self.batches = PoseBatches(self.train_poses, ps.batch_size, rank=self.dist.rank,
                                   world_size=self.dist.world_size, shuffle=True, seed=self.seed)

    def _build_network(self, ps) -> None:
        """The network, initialised from the seed, and the training step (wrapped for DDP when distributed)."""
        with torch.random.fork_rng(devices=[]):  # the layers' default init must not advance the global RNG
            self.vposer = build_vposer(self.model_version, ps.num_neurons, ps.latentD,
                                       list(ps.data_shape), ps.use_cont_repr)
        init_vposer_weights(self.vposer, torch.Generator().manual_seed(_step_seed(self.seed, 0x1417)))
        self.vposer.to(device=self.device, dtype=self.dtype)
        step = _VAEStep(self.vposer)
        if self.dist.is_distributed:
            from torch.nn.parallel import DistributedDataParallel
            step = DistributedDataParallel(step, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.step_module = step

    # ------------------------------------------------------------------------------ helpers
    @staticmethod
    def _resolve_settings(ps) -> TrainSettings:
        """Parse the settings once (a TrainSettings as is; a dict or Configer merged over the defaults)
        and resolve the derived values: expr_code, the experiment folder and the body model file."""
        if not isinstance(ps, TrainSettings):
            ps = load_settings(strict=False, **{k: v for k, v in dict(ps).items() if k != "default_ps"})
        expr_code = ps.expr_code or "vposer_run"
        work_dir = ps.work_dir or str(Path(ps.work_root or ".") / expr_code)
        bm_path = ps.bm_path
        if not bm_path:
            from human_body_prior import default_body_model_path
            bm_path = default_body_model_path("smplx", "neutral")
        return ps.replace(expr_code=expr_code, work_dir=str(work_dir), bm_path=str(bm_path))

    def _make_scheduler(self):
        schedule = _lr_schedule(self.ps)
        return None if schedule is None else schedule[0](self.optimizer, **schedule[1])

    def log(self, msg: str) -> None:
        if not self.dist.is_main:
            return
        print(msg, flush=True)
        with open(self.log_fname, "a") as f:
            f.write(msg + "\n")

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _loss(self, pose_aa, rec_matrot, mean, std, use_extra_terms: bool) -> dict:
        """The objective of this model version on (N, 21, 3) inputs and (N, 21, 3, 3) reconstructions."""
        R_in = axis_angle_to_matrix(pose_aa)
        if self.model_version == 2:
            return vposer_v2_loss(R_in, rec_matrot, mean, std, self.surface, self.v2_weights, use_extra_terms)
        return vposer_loss(R_in, rec_matrot, mean, std, self.surface, self.kl_coef, use_extra_terms, self.pose_weight)

    # ------------------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's shard; returns metrics averaged over batches and ranks."""
        self.step_module.train()
        self.batches.set_epoch(epoch)
        use_pose_term = epoch <= self.ps.keep_extra_loss_terms_until_epoch
        sums, n = {}, 0
        bar = None
        if self.dist.is_main and self.ps.progress_bar:
            from tqdm import tqdm
            bar = tqdm(total=len(self.batches), desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
        for b, pose_aa in enumerate(self.batches):
            pose_aa = pose_aa.to(self.device)
            seed = _step_seed(self.seed, epoch, b, self.dist.rank)
            gen = torch.Generator(device=self.device).manual_seed(seed)
            eps = torch.randn(pose_aa.shape[0], self.vposer.latentD, generator=gen, device=self.device,
                              dtype=self.dtype)
            pose_aa = jitter_poses(pose_aa, self.ps.pose_jitter_deg, gen)  # drawn after eps: 0 changes nothing
            with _LocalRandom(seed, self.device, self.vposer):  # dropout masks
                mean, std, rec = self.step_module(pose_aa, eps)
            out = self._loss(pose_aa, rec, mean, std, use_pose_term)
            self.optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            self.optimizer.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(out['loss']):.3f}", v2v=f"{float(out['v2v_mm']):.1f}")
        if bar is not None:
            bar.close()
        distributed.average_buffers(self.vposer, self.dist)
        metrics = {k: v / max(n, 1) for k, v in sums.items()}
        return distributed.all_reduce_mean(metrics, self.dist)

    @torch.no_grad()
    def evaluate(self, poses: torch.Tensor, chunk: int = 2048) -> dict:
        """Validation metrics of the posterior mean (eval mode, deterministic) on (N, 21, 3) poses;
        the pose term is included as in the last epoch's objective."""
        self.vposer.eval()
        sums, total = {}, 0
        use_pose_term = self.epoch <= self.ps.keep_extra_loss_terms_until_epoch
        for s in range(0, len(poses), chunk):
            p = poses[s:s + chunk].to(self.device)
            q_z = self.vposer.encode(p)
            rec = decode_matrot(self.vposer, q_z.loc)
            out = self._loss(p, rec, q_z.loc, q_z.scale, use_pose_term)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(p)
            total += len(p)
        self.vposer.train()
        return {k: v / total for k, v in sums.items()}

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.vposer.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                "epoch": int(self.epoch), "best_val": float(self.best_val),
                "best_snapshot": str(self.best_snapshot or ""), "epochs_since_best": int(self.epochs_since_best),
                "seed": self.seed}

    def save_training_state(self) -> None:
        if not self.dist.is_main:
            return
        self.checkpoints.save_training_state(self.state_dict())

    def resume(self, path) -> None:
        """Continue from a training_state.pt (model, optimizer, schedule, epoch) or from a bare
        snapshot (TRxx_Eyyy.pt for v1, ..._epoch=NN_...ckpt for v2: weights; the epoch comes from the
        name, the optimizer starts fresh)."""
        from human_body_prior.priors.experiment import load_state_dict_checked

        path = Path(path)
        if self.checkpoints.is_training_state(path):
            state = self.checkpoints.read_training_state(path)
            path = path / TRAINING_STATE if path.is_dir() else path
            load_state_dict_checked(self.vposer, state["model"], source=f"training state {path}")
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler"):
                self.scheduler.load_state_dict(state["scheduler"])
            self.epoch = int(state["epoch"])
            self.best_val = float(state["best_val"])
            self.best_snapshot = state.get("best_snapshot") or None
            self.epochs_since_best = int(state.get("epochs_since_best", 0))
        else:
            if not path.is_file():
                raise FileNotFoundError(f"cannot resume: {path} not found")
            epoch = self.checkpoints.snapshot_epoch(path)
            self.checkpoints.load_weights(self.vposer, path)
            self.epoch = epoch
        self.vposer.to(device=self.device, dtype=self.dtype)
        self.log(f"resumed from {path} at epoch {self.epoch}")

    def v2_config(self) -> dict:
        """The run's settings in the V02 yaml layout (sections as upstream's V02_05.yaml), plus the
        trainer's own flat settings under 'human_body_prior_trainer' (what reproduces the run). The
        schedule is the one the run uses; the body model's gender is the one its file name says
        (SMPLX_FEMALE.npz, female/model.npz), None when the name does not say."""
        ps = self.ps
        return {
            "general": {"expr_id": self.expr_code, "rnd_seed": self.seed, "verbosity": ps.verbosity},
            "logging": {"work_dir": str(self.work_dir), "render_during_training": ps.render_pictures,
                        "best_model_fname": None},
            "train_parms": {
                "batch_size": ps.batch_size, "num_epochs": ps.num_epochs,
                "gen_optimizer": {"type": "Adam", "args": {"lr": ps.base_lr, "weight_decay": ps.reg_coef}},
                "lr_scheduler": self._lr_schedule_record(),
                "early_stopping": {"monitor": "val_loss", "patience": ps.early_stop_patience,
                                   "mode": "min"},
                "keep_extra_loss_terms_until_epoch": ps.keep_extra_loss_terms_until_epoch,
                "loss_weights": dict(self.v2_weights)},
            "data_parms": {"dataset_dir": ps.dataset_dir,
                           "train_frame_step": ps.train_frame_step},
            "model_params": {"num_neurons": ps.num_neurons, "latentD": ps.latentD},
            "body_model": {"gender": model_file_gender(ps.bm_path), "bm_fname": str(ps.bm_path),
                           "num_loss_vertices": ps.num_loss_vertices,
                           "vertex_subset": ps.vertex_subset},
            "human_body_prior_trainer": {k: (v if isinstance(v, (int, float, bool, str, list, type(None))) else str(v))
                                         for k, v in self._settings_to_save().items()},
        }

    def _lr_schedule_record(self):
        """The schedule this run uses, as the V02 yaml records it: {'type': class name, 'args': its
        arguments}, or None without one."""
        schedule = _lr_schedule(self.ps)
        return None if schedule is None else {"type": schedule[0].__name__, "args": dict(schedule[1])}

    def _settings_to_save(self) -> dict:
        keep = {k: v for k, v in dict(self.ps).items() if k not in ("default_ps", "resume")}
        keep["dataset_dir"] = str(keep.get("dataset_dir", ""))
        return keep

    # ------------------------------------------------------------------------------ the run
    def train(self) -> dict:
        """Train from self.epoch + 1 to num_epochs; returns a summary dict."""
        num_epochs = self.ps.num_epochs
        patience = self.ps.early_stop_patience
        if self.epoch == 0:
            self.log(f"VPoser training {self.expr_code}: {len(self.train_poses)} train / {len(self.vald_poses)} vald "
                     f"poses, {self.dist.world_size} process(es) on {self.device}, batch {self.batches.batch_size} "
                     f"per process, {sum(p.numel() for p in self.vposer.parameters())} parameters, "
                     f"{self.surface.v_template.shape[0]} of {self.surface.num_model_vertices} vertices in the loss")
        t_start = time.time()
        while self.epoch < num_epochs:
            t0 = time.time()
            epoch = self.epoch + 1
            train_m = self.train_epoch(epoch)
            self.epoch = epoch
            vald_m = self.evaluate(self.vald_poses)
            val_loss = vald_m["loss"]
            if self.scheduler is not None:
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(val_loss)
                else:
                    self.scheduler.step()
            improved = val_loss < self.best_val
            if improved:
                self.best_val = val_loss
                self.epochs_since_best = 0
                if self.dist.is_main:
                    self.best_snapshot = self.checkpoints.write_snapshot(
                        self.vposer, epoch, val_loss, settings=self._settings_to_save(),
                        v2_config=self.v2_config() if self.model_version == 2 else None)
            else:
                self.epochs_since_best += 1
            self.save_training_state()
            self.log(f"epoch {epoch:3d}/{num_epochs} lr {self.lr:.2e} | train {_fmt(train_m)} | vald {_fmt(vald_m)} | "
                     f"{time.time() - t0:.1f} s{' | saved ' + Path(self.best_snapshot).name if improved and self.best_snapshot else ''}")
            distributed.barrier(self.dist)
            if patience and self.epochs_since_best >= patience:
                self.log(f"stopping early: no validation improvement for {patience} epochs")
                break
        summary = {"epochs": self.epoch, "best_val_loss": self.best_val, "best_snapshot": self.best_snapshot,
                   "wall_time_s": time.time() - t_start, "work_dir": str(self.work_dir)}
        if self.dist.is_main and self.ps.render_pictures and self.best_snapshot:
            self.render_pictures()
        return summary

    def render_pictures(self, num: int = 6) -> None:
        """Reconstructions (top: input, bottom: reconstruction) of vald poses and random samples as PNGs,
        made with the best snapshot (the model ``load_vposer`` returns) and named after it."""
        import copy

        best = copy.deepcopy(self.vposer).eval()
        self.checkpoints.load_weights(best, self.best_snapshot)
        try:
            from human_body_prior.body_model.body_model import BodyModel
            from human_body_prior.mesh.rendering import (
                imagearray2file,
                render_smpl_params,
            )

            bm = BodyModel(self.ps.bm_path)
            idx = torch.linspace(0, len(self.vald_poses) - 1, num).long()
            p = self.vald_poses[idx].to(self.device)
            with torch.no_grad():
                rec = decode_aa(best, best.encode(p).loc)
                samples = sample_aa(best, num, seed=self.seed)
            pics = self.work_dir / "pictures"
            stem = Path(self.best_snapshot).stem
            rows = [render_smpl_params(bm, {"pose_body": x.reshape(num, -1).cpu().float()}, width=200, height=200)[0]
                    for x in (p, rec)]
            imagearray2file(np.stack(rows)[:, :, None], str(pics / f"{stem}_reconstructions.png"))
            s_img = render_smpl_params(bm, {"pose_body": samples.reshape(num, -1).cpu().float()}, width=200, height=200)
            imagearray2file(s_img[:, :, None], str(pics / f"{stem}_samples.png"))
            self.log(f"pictures written to {pics}")
        except Exception as e:  # rendering is optional (no OpenGL context, no display)
            self.log(f"pictures skipped: rendering not available ({type(e).__name__}: {e})")

    def close(self, wait_for_peers: bool = True) -> None:
        """Release the process group (a no-op for a single process); pass wait_for_peers=False after an
        error (see ``distributed.teardown``). The DDP wrapper goes first, and is collected, because its
        reducer keeps the group alive past ``destroy_process_group``."""
        if self.dist.is_distributed and not isinstance(self.step_module, _VAEStep):
            self.step_module = _VAEStep(self.vposer)
            gc.collect()
        distributed.teardown(self.dist, wait_for_peers)
