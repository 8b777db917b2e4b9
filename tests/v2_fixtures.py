"""Writers of VPoser v2 (V02) experiment folders shaped like the official V02_05 download.

Official files cannot be had here and pytorch-lightning cannot be installed beside the pinned torch
(pip's plan replaces torch==2.13.0), so the checkpoint is built from the facts of Lightning's format:
a dict with 'state_dict' (the LightningModule's parameters and buffers: the network under
'vp_model.', the training body model's buffers under 'bm_train.') beside Lightning's own entries
('epoch', 'global_step', 'pytorch-lightning_version', 'loops', 'callbacks', 'optimizer_states',
'lr_schedulers', 'hparams_name', 'hyper_parameters'). The hyper-parameters hold an object of a class
from a module that is not installed (an omegaconf DictConfig, as upstream's configs are), so a
weights-only torch.load alone cannot read the file, as with real Lightning checkpoints.

The state-dict layout is written from the issue's list of facts, independently of
``human_body_prior.models.vposer_model``.
"""

import math
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

H, D, J = 512, 32, 21


def v02_state_dict_layout(num_neurons=H, latentD=D) -> "OrderedDict[str, tuple]":
    """Key -> shape of an official V02_05 network state dict (without the 'vp_model.' prefix)."""
    h, d = num_neurons, latentD
    out = OrderedDict()

    def bn(prefix, n):
        out[f"{prefix}.weight"] = (n,)
        out[f"{prefix}.bias"] = (n,)
        out[f"{prefix}.running_mean"] = (n,)
        out[f"{prefix}.running_var"] = (n,)
        out[f"{prefix}.num_batches_tracked"] = ()

    def lin(prefix, i, o):
        out[f"{prefix}.weight"] = (o, i)
        out[f"{prefix}.bias"] = (o,)

    bn("encoder_net.1", J * 3)
    lin("encoder_net.2", J * 3, h)
    bn("encoder_net.4", h)
    lin("encoder_net.6", h, h)
    lin("encoder_net.7", h, h)
    lin("encoder_net.8.mu", h, d)
    lin("encoder_net.8.logvar", h, d)
    lin("decoder_net.0", d, h)
    lin("decoder_net.3", h, h)
    lin("decoder_net.5", h, J * 6)
    return out


def random_v02_weights(seed=0, num_neurons=H, latentD=D, dtype=torch.float32) -> "OrderedDict[str, torch.Tensor]":
    """Random weights in the V02_05 layout, scaled like a trained net (finite, non-trivial batch-norm statistics)."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for k, shape in v02_state_dict_layout(num_neurons, latentD).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1234, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = (0.5 + torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)
        elif k.endswith("weight") and len(shape) == 2:
            sd[k] = (torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(shape[1])).to(dtype)
        elif k.endswith("weight"):  # batch-norm scale
            sd[k] = (0.8 + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)
        else:
            sd[k] = (0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    return sd


V02_05_YAML = """\
---
body_model:
  gender: neutral
  bm_fname: ../../../../support_data/dowloads/models/smplx/neutral/model.npz

general:
  verbosity: 0
  expr_id: {expr_id}
  dataset_id: V02_03
  rnd_seed: 100
  work_basedir: ../../../../support_data/training_experiments
  dataset_basedir: ../../../../support_data/training_data

logging:
  expr_msg:
  num_bodies_to_display: 25
  work_dir:
  dataset_dir:
  render_during_training: False
  best_model_fname:

train_parms:
  batch_size:
  num_epochs: 100
  restore_optimizer: False
  gen_optimizer:
    type: Adam
    args:
      lr: 0.001
      weight_decay: 0.00001
  lr_scheduler:
    type: ReduceLROnPlateau
    args:
      verbose: true
      patience: 5
  early_stopping:
    monitor: val_loss
    min_delta: 0.0
    patience: 10
    verbose: True
    mode: min
  keep_extra_loss_terms_until_epoch: 15
  loss_weights:
    loss_kl_wt: 0.005
    loss_rec_wt: 4
    loss_matrot_wt: 2
    loss_jtr_wt: 2

data_parms:
  num_workers: 5
  amass_dir: support_data/dowloads/amass/smplx_neutral
  num_timeseq_frames: 1
  amass_splits:
    vald:
      - HumanEva
      - MPI_HDM05
    train:
      - CMU
      - MPI_Limits
    test:
      - Transitions_mocap
      - SSM_synced

model_params:
  num_neurons : {num_neurons}
  latentD : {latentD}
"""


class _FakeDictConfig:
    """Pickled under 'omegaconf.dictconfig.DictConfig', a module that is not installed here."""

    def __init__(self, content):
        self._content = content

    def __reduce__(self):
        return (_FakeDictConfig, (self._content,))


def _save_with_foreign_class(obj, fname):
    mod_names = ("omegaconf", "omegaconf.dictconfig")
    saved = {m: sys.modules.get(m) for m in mod_names}
    pkg = types.ModuleType("omegaconf")
    mod = types.ModuleType("omegaconf.dictconfig")
    _FakeDictConfig.__module__, _FakeDictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    mod.DictConfig = _FakeDictConfig
    pkg.dictconfig = mod
    sys.modules.update({"omegaconf": pkg, "omegaconf.dictconfig": mod})
    try:
        torch.save(obj, str(fname))
    finally:
        _FakeDictConfig.__module__, _FakeDictConfig.__qualname__ = __name__, "_FakeDictConfig"
        for m, v in saved.items():
            if v is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = v


def lightning_checkpoint(weights: dict, epoch=13, val_loss=0.03, with_body_model=True, steps_per_epoch=1771) -> dict:
    """A dict shaped as Lightning's ModelCheckpoint writes it for upstream's VPoserTrainer."""
    sd = OrderedDict((f"vp_model.{k}", v) for k, v in weights.items())
    if with_body_model:  # upstream's LightningModule holds its body model as bm_train: its buffers are saved too
        g = torch.Generator().manual_seed(7)
        for k, shape in (("init_v_template", (1, 40, 3)), ("f", (60, 3)), ("shapedirs", (40, 3, 16)),
                         ("exprdirs", (40, 3, 10)), ("J_regressor", (55, 40)), ("posedirs", (486, 120)),
                         ("kintree_table", (2, 55)), ("weights", (40, 55)), ("init_trans", (1, 3)),
                         ("init_root_orient", (1, 3)), ("init_pose_body", (1, 63)), ("init_pose_hand", (1, 90)),
                         ("init_pose_jaw", (1, 3)), ("init_pose_eye", (1, 6)), ("init_betas", (1, 16)),
                         ("init_expression", (1, 10))):
            dtype = torch.long if k in ("f", "kintree_table") else torch.float32
            sd[f"bm_train.{k}"] = torch.randint(0, 40, shape, generator=g).to(dtype)
    params = [k for k in weights if not any(k.endswith(s) for s in ("running_mean", "running_var", "num_batches_tracked"))]
    step = epoch * steps_per_epoch
    opt_state = {i: {"step": torch.tensor(float(step)), "exp_avg": torch.zeros_like(weights[k]),
                     "exp_avg_sq": torch.zeros_like(weights[k])} for i, k in enumerate(params)}
    ckpt_path = f"/is/ps3/nghorbani/code-repos/human_body_prior/support_data/training_experiments/V02_05/snapshots/" \
                f"V02_05_epoch={epoch:02d}_val_loss={val_loss:.2f}.ckpt"
    mc_key = ("ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
              "'train_time_interval': None, 'save_on_train_epoch_end': True}")
    return {
        "epoch": epoch,
        "global_step": step,
        "pytorch-lightning_version": "1.5.10",
        "state_dict": sd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": step},
                               "epoch_progress": {"total": {"ready": epoch + 1, "started": epoch + 1,
                                                            "processed": epoch + 1, "completed": epoch},
                                                  "current": {"ready": epoch + 1, "started": epoch + 1,
                                                              "processed": epoch + 1, "completed": epoch}}},
                  "validate_loop": {"state_dict": {}}, "test_loop": {"state_dict": {}},
                  "predict_loop": {"state_dict": {}}},
        "callbacks": {
            mc_key: {"monitor": "val_loss", "best_model_score": torch.tensor(val_loss), "best_model_path": ckpt_path,
                     "current_score": torch.tensor(val_loss), "dirpath": str(Path(ckpt_path).parent),
                     "best_k_models": {ckpt_path: torch.tensor(val_loss)}, "kth_best_model_path": ckpt_path,
                     "kth_value": torch.tensor(val_loss), "last_model_path": ""},
            "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}": {"wait_count": 0, "stopped_epoch": 0,
                                                                   "best_score": torch.tensor(val_loss),
                                                                   "patience": 10},
        },
        "optimizer_states": [{"state": opt_state, "param_groups": [
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-5, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "params": list(range(len(params)))}]}],
        "lr_schedulers": [{"factor": 0.1, "min_lrs": [0], "patience": 5, "verbose": True, "cooldown": 0,
                           "cooldown_counter": 0, "mode": "min", "threshold": 1e-4, "threshold_mode": "rel",
                           "best": val_loss, "num_bad_epochs": 0, "mode_worse": math.inf, "eps": 1e-8,
                           "last_epoch": epoch, "_last_lr": [1e-3]}],
        "hparams_name": "kwargs",
        "hyper_parameters": {"_config": _FakeDictConfig({"model_params": {"num_neurons": H, "latentD": D}})},
    }


def write_v02_folder(expr_dir, weights=None, expr_id="V02_05", epochs_and_losses=((13, 0.03),),
                     num_neurons=H, latentD=D, seed=0, with_body_model=True) -> Path:
    """<expr_dir>/<expr_id>.yaml and snapshots/<expr_id>_epoch=NN_val_loss=X.ckpt per (epoch, val_loss).

    Every checkpoint holds ``weights`` (default: random_v02_weights(seed)) except that the weights of
    checkpoint k are offset by k * 1e-3 in 'decoder_net.5.bias', so tests can tell which one loaded.
    Returns the folder.
    """
    expr_dir = Path(expr_dir)
    (expr_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    (expr_dir / f"{expr_id}.yaml").write_text(V02_05_YAML.format(expr_id=expr_id, num_neurons=num_neurons,
                                                                 latentD=latentD))
    base = weights if weights is not None else random_v02_weights(seed, num_neurons, latentD)
    for k, (epoch, val_loss) in enumerate(epochs_and_losses):
        w = OrderedDict((n, t.clone()) for n, t in base.items())
        w["decoder_net.5.bias"] += k * 1e-3
        ckpt = lightning_checkpoint(w, epoch=epoch, val_loss=val_loss, with_body_model=with_body_model)
        _save_with_foreign_class(ckpt, expr_dir / "snapshots" / f"{expr_id}_epoch={epoch:02d}_val_loss={val_loss:.2f}.ckpt")
    return expr_dir


# ---------------------------------------------------------------------------------------------- reference
def _leaky(x, slope=0.01):
    return np.where(x > 0, x, slope * x)


def _bn(x, sd, p, eps=1e-5):
    return (x - sd[f"{p}.running_mean"]) / np.sqrt(sd[f"{p}.running_var"] + eps) * sd[f"{p}.weight"] + sd[f"{p}.bias"]


def _lin(x, sd, p):
    return x @ sd[f"{p}.weight"].T + sd[f"{p}.bias"]


def numpy_encode(weights: dict, pose_body: np.ndarray):
    """Eval-mode V02 encoder in float64 numpy: (N, 63) -> (mu (N, D), scale (N, D))."""
    sd = {k: v.double().numpy() for k, v in weights.items()}
    x = np.asarray(pose_body, dtype=np.float64).reshape(len(pose_body), -1)
    x = _bn(x, sd, "encoder_net.1")
    x = _leaky(_lin(x, sd, "encoder_net.2"))
    x = _bn(x, sd, "encoder_net.4")
    x = _lin(x, sd, "encoder_net.6")
    x = _lin(x, sd, "encoder_net.7")
    pre = _lin(x, sd, "encoder_net.8.logvar")
    return _lin(x, sd, "encoder_net.8.mu"), np.logaddexp(0.0, pre)


def numpy_decode(weights: dict, z: np.ndarray):
    """Eval-mode V02 decoder in float64 numpy: (N, D) -> rotation matrices (N, 21, 3, 3)."""
    sd = {k: v.double().numpy() for k, v in weights.items()}
    x = _leaky(_lin(np.asarray(z, dtype=np.float64), sd, "decoder_net.0"))
    x = _leaky(_lin(x, sd, "decoder_net.3"))
    x = _lin(x, sd, "decoder_net.5").reshape(len(z), J, 3, 2)
    a1, a2 = x[..., 0], x[..., 1]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)
