"""The shipped experiment folder's model file runs where human_body_prior is not importable, and computes
what the package's VPoser computes."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from human_body_prior import default_vposer_dir
from human_body_prior.priors import vposer as package_vposer

FOLDER = Path(default_vposer_dir())

_RUN_STANDALONE = r"""
import importlib.util, json, sys
import torch
sys.modules["human_body_prior"] = None  # any import of the package fails
spec = importlib.util.spec_from_file_location("vposer_smpl", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
model = mod.VPoser(num_neurons=512, latentD=32, data_shape=[1, 21, 3], use_cont_repr=True)
state = torch.load(sys.argv[2], map_location="cpu", weights_only=True)
model.load_state_dict(state, strict=True)
model.eval()
g = torch.Generator().manual_seed(0)
z = torch.randn(5, 32, generator=g, dtype=torch.float64).float()
pose = 0.4 * torch.randn(5, 1, 21, 3, generator=g, dtype=torch.float64).float()
with torch.no_grad():
    out = {"aa": model.decode(z, output_type="aa").tolist(), "matrot": model.decode(z).tolist(),
           "mu": model.encode(pose).mean.tolist(), "roundtrip": mod.VPoser.matrot2aa(mod.VPoser.aa2matrot(pose)).tolist()}
print(json.dumps(out))
"""


def test_model_file_runs_without_the_package_and_agrees():
    snapshot = sorted((FOLDER / "snapshots").glob("*.pt"))[-1]
    res = subprocess.run([sys.executable, "-c", _RUN_STANDALONE, str(FOLDER / "vposer_smpl.py"), str(snapshot)],
                         capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    theirs = json.loads(res.stdout)

    model = package_vposer.VPoser(512, 32, [1, 21, 3], use_cont_repr=True)
    model.load_state_dict(torch.load(snapshot, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 32, generator=g, dtype=torch.float64).float()
    pose = 0.4 * torch.randn(5, 1, 21, 3, generator=g, dtype=torch.float64).float()
    with torch.no_grad():
        ours = {"aa": model.decode(z, output_type="aa"), "matrot": model.decode(z), "mu": model.encode(pose).mean,
                "roundtrip": package_vposer.VPoser.matrot2aa(package_vposer.VPoser.aa2matrot(pose))}
    for key, value in ours.items():
        # float32, two processes (BLAS summation order may differ): 1e-5
        np.testing.assert_allclose(np.asarray(theirs[key]), value.numpy(), atol=1e-5, rtol=1e-5, err_msg=key)


def test_model_file_imports_only_torch_and_numpy_and_keeps_the_package_class():
    text = (FOLDER / "vposer_smpl.py").read_text()
    imports = {m.group(1).split(".")[0] for m in re.finditer(r"^\s*(?:import|from)\s+([\w.]+)", text, re.M)}
    assert imports <= {"torch", "numpy"}, imports
    # the class is the package's, with the file's own rotation helpers in place of rotation_tools
    shipped = text[text.index("class VPoser"):]
    package = Path(package_vposer.__file__).read_text()
    package = package[package.index("class VPoser"):]
    for name in ("cont6d_to_matrix", "axis_angle_to_matrix", "matrix_to_axis_angle"):
        package = package.replace(f"rotation_tools.{name}(", f"_{name}(")
    assert shipped == package
