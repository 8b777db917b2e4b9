"""Client: HuMoR (humor/fitting/fitting_utils.py) and SLAHMR (slahmr/body_model/...), whose own
``load_vposer`` loads a 2019 experiment folder without importing this package's loader: it reads the
folder's .ini with configer, picks the newest snapshot, executes the folder's ``vposer_*.py`` with
importlib, builds ``VPoser(num_neurons=ps.num_neurons, latentD=ps.latentD, data_shape=ps.data_shape)``
and loads the snapshot with ``torch.load(..., map_location='cpu')``.

The shipped folder must work that way even where human_body_prior is not installed: the loader runs
in a subprocess that cannot import the package.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path


import human_body_prior as hbp

LOADER = textwrap.dedent('''
    import glob, importlib.util, json, os, sys

    class _NoPackage:
        """Makes `import human_body_prior` fail, as on a machine where it is not installed."""
        def find_spec(self, name, path=None, target=None):
            if name == "human_body_prior" or name.startswith("human_body_prior."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, _NoPackage())
    import torch
    from configer import Configer

    def expid2model(expr_dir):
        best_model_fname = sorted(glob.glob(os.path.join(expr_dir, 'snapshots', '*.pt')), key=os.path.getmtime)[-1]
        default_ps_fname = glob.glob(os.path.join(expr_dir, '*.ini'))[0]
        ps = Configer(default_ps_fname=default_ps_fname, work_dir=expr_dir, best_model_fname=best_model_fname)
        return ps, best_model_fname

    def load_vposer(expr_dir, vp_model='snapshot'):
        ps, trained_model_fname = expid2model(expr_dir)
        vposer_path = sorted(glob.glob(os.path.join(expr_dir, 'vposer_*.py')), key=os.path.getmtime)[-1]
        spec = importlib.util.spec_from_file_location('VPoser', vposer_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        vposer_pt = getattr(module, 'VPoser')(num_neurons=ps.num_neurons, latentD=ps.latentD, data_shape=ps.data_shape)
        vposer_pt.load_state_dict(torch.load(trained_model_fname, map_location='cpu'))
        vposer_pt.eval()
        return vposer_pt, ps

    vposer, ps = load_vposer(sys.argv[1])
    z = torch.zeros(3, ps.latentD)
    pose = vposer.decode(z, output_type='aa').reshape(3, -1)
    print(json.dumps({"shape": list(pose.shape), "pose": pose[0].tolist(),
                      "package_loaded": any(m.startswith("human_body_prior") for m in sys.modules)}))
''')


def test_own_loader_without_the_package(tmp_path):
    folder = Path(hbp.default_vposer_dir())
    script = tmp_path / "humor_loader.py"
    script.write_text(LOADER)
    run = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["shape"] == [3, 63] and not out["package_loaded"]

    # the same weights through the package's own loader give the same pose
    import torch

    from human_body_prior.tools.model_loader import load_vposer

    vposer, ps = load_vposer(str(folder), vp_model="snapshot")
    ref = vposer.decode(torch.zeros(1, ps.latentD), output_type="aa").reshape(1, -1)[0]
    assert torch.allclose(torch.tensor(out["pose"]), ref, atol=1e-6)
