"""Test helpers for VPoser v1, written from the documented architecture without using the package.

- ``v1_state_dict``: random weights under the v1 key names and shapes.
- ``write_2019_folder``: a 2019-layout experiment folder (snapshot, .ini, a vposer_smpl.py that imports
  torchgeometry and would leave a marker file if it were ever executed).
- ``np_encode`` / ``np_decode``: the v1 forward pass in float64 numpy (eval mode).
"""

import os
from pathlib import Path

import numpy as np
import torch

EXECUTED_MARKER = "FOLDER_CODE_WAS_EXECUTED"


def v1_shapes(num_neurons=512, latentD=32, num_joints=21):
    """{key: shape} of a v1 state_dict (use_cont_repr=True, axis-angle input)."""
    n_in, H, D = num_joints * 3, num_neurons, latentD
    shapes = {}
    for bn, width in (("bodyprior_enc_bn1", n_in), ("bodyprior_enc_bn2", H)):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{bn}.{k}"] = (width,)
        shapes[f"{bn}.num_batches_tracked"] = ()
    for name, (n_out, n_inp) in {"bodyprior_enc_fc1": (H, n_in), "bodyprior_enc_fc2": (H, H),
                                 "bodyprior_enc_mu": (D, H), "bodyprior_enc_logvar": (D, H),
                                 "bodyprior_dec_fc1": (H, D), "bodyprior_dec_fc2": (H, H),
                                 "bodyprior_dec_out": (num_joints * 6, H)}.items():
        shapes[f"{name}.weight"] = (n_out, n_inp)
        shapes[f"{name}.bias"] = (n_out,)
    return shapes


def v1_state_dict(num_neurons=512, latentD=32, num_joints=21, seed=0):
    """Random float32 weights under the v1 names, scaled so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    sd = {}
    for key, shape in v1_shapes(num_neurons, latentD, num_joints).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1234, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.tensor(rng.uniform(0.2, 2.0, shape), dtype=torch.float32)
        elif key.endswith(".weight") and len(shape) == 2:
            sd[key] = torch.tensor(rng.normal(0, 1.5 / np.sqrt(shape[1]), shape), dtype=torch.float32)
        elif "bn" in key and key.endswith(".weight"):
            sd[key] = torch.tensor(rng.uniform(0.5, 1.5, shape), dtype=torch.float32)
        else:  # biases, running means
            sd[key] = torch.tensor(rng.normal(0, 0.3, shape), dtype=torch.float32)
    return sd


OFFICIAL_INI = """\
[All]
adam_beta1 : 0.9
base_lr : 0.005
batch_size : 512
best_model_fname : None
cuda_id : 0
data_shape : [1, 21, 3]
dataset_dir : None
expr_code : 004_00_WO_accad
kl_coef : 0.005
latentD : {latentD}
model_type : smpl
num_epochs : 100
num_neurons : {num_neurons}
reg_coef : 0.0001
seed : 4815
use_cont_repr : True
work_dir : None
"""

FOLDER_CODE = f"""\
# stands in for the 2019 model code; executing it is a bug in the loader
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "{EXECUTED_MARKER}"), "w").close()
import torchgeometry as tgm
"""


def write_2019_folder(root, state_dict=None, num_neurons=512, latentD=32, snapshot="TR00_E096.pt",
                      ini_name="TR00_004_00_WO_accad.ini", ini_text=None):
    """A folder shaped like the official vposer_v1_0 download. Returns (folder, state_dict)."""
    root = Path(root)
    (root / "snapshots").mkdir(parents=True, exist_ok=True)
    if state_dict is None:
        state_dict = v1_state_dict(num_neurons, latentD)
    torch.save(state_dict, root / "snapshots" / snapshot)
    text = ini_text if ini_text is not None else OFFICIAL_INI.format(num_neurons=num_neurons, latentD=latentD)
    (root / ini_name).write_text(text)
    (root / "vposer_smpl.py").write_text(FOLDER_CODE)
    return root, state_dict


def folder_code_was_executed(root) -> bool:
    return os.path.exists(Path(root) / EXECUTED_MARKER)


# ---------------------------------------------------------------------------------- numpy reference
def _np(sd):
    return {k: v.detach().cpu().double().numpy() for k, v in sd.items()}


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def _bn(x, w, prefix, eps=1e-5):
    return (x - w[prefix + ".running_mean"]) / np.sqrt(w[prefix + ".running_var"] + eps) \
        * w[prefix + ".weight"] + w[prefix + ".bias"]


def _lin(x, w, prefix):
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def np_encode(sd, pose_aa):
    """(N, 63) axis-angle -> (mu, std) (N, D), eval mode (BatchNorm with running stats, no dropout)."""
    w = _np(sd)
    x = np.asarray(pose_aa, dtype=np.float64).reshape(len(pose_aa), -1)
    x = _bn(x, w, "bodyprior_enc_bn1")
    x = _lrelu(_lin(x, w, "bodyprior_enc_fc1"))
    x = _bn(x, w, "bodyprior_enc_bn2")
    x = _lrelu(_lin(x, w, "bodyprior_enc_fc2"))
    mu = _lin(x, w, "bodyprior_enc_mu")
    pre = _lin(x, w, "bodyprior_enc_logvar")
    std = np.log1p(np.exp(-np.abs(pre))) + np.maximum(pre, 0)  # softplus
    return mu, std


def np_decode(sd, z):
    """(N, D) -> rotation matrices (N, J, 3, 3): 6 numbers per joint read as a 3x2 matrix (row-major),
    its two columns Gram-Schmidt'ed, the third the cross product."""
    w = _np(sd)
    x = _lrelu(_lin(np.asarray(z, dtype=np.float64), w, "bodyprior_dec_fc1"))
    x = _lrelu(_lin(x, w, "bodyprior_dec_fc2"))
    x = _lin(x, w, "bodyprior_dec_out")
    n = len(x)
    a = x.reshape(n, -1, 3, 2)
    a1, a2 = a[..., 0], a[..., 1]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    u = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = u / np.linalg.norm(u, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)

