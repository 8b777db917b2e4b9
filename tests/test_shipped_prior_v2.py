"""The shipped open VPoser v2 (support_data/vposer_v2_0_open): loads as public v2 code loads it, decodes as an
independent numpy re-computation of the V02 network does, and generates natural poses.

Held-out reconstruction is measured by ``human_body_prior.evaluation.vposer`` on the prepared mocap splits
(MODEL_CARD.md, evaluation.json); these checks run on every clone.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from human_body_prior import default_body_model_path, default_vposer_dir
from human_body_prior.evaluation.hinges import anatomical_share
from human_body_prior.evaluation.vposer import body_joints, posture
from human_body_prior.body_model.surface import M_TO_MM, BodySurface
from tests.v2_fixtures import numpy_decode, numpy_encode, v02_state_dict_layout


@pytest.fixture(scope="module")
def shipped():
    from human_body_prior.models.vposer_model import VPoser
    from human_body_prior.tools.model_loader import load_model

    vp, cfg = load_model(default_vposer_dir(version=2), model_code=VPoser, remove_words_in_model_weights="vp_model.",
                         disable_grad=True, comp_device="cpu", verbose=False)
    surface = BodySurface(default_body_model_path("smplx", "neutral"), num_vertices=1, dtype=torch.float64)
    return vp, cfg, surface


def test_version_1_stays_the_default():
    assert Path(default_vposer_dir()).name == "vposer_v1_0_open"
    assert Path(default_vposer_dir(version=2)).name == "vposer_v2_0_open"
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        default_vposer_dir(version=3)


def test_shipped_folder_is_the_v02_layout_weights_only():
    folder = Path(default_vposer_dir(version=2))
    yamls = list(folder.glob("*.yaml"))
    ckpts = list((folder / "snapshots").glob("*.ckpt"))
    assert len(yamls) == 1 and len(ckpts) == 1 and "_epoch=" in ckpts[0].name
    ckpt = torch.load(ckpts[0], weights_only=True)
    assert set(ckpt) == {"epoch", "global_step", "state_dict"}
    layout = v02_state_dict_layout(512, 32)
    assert {k[len("vp_model."):]: tuple(v.shape) for k, v in ckpt["state_dict"].items()} == dict(layout)
    assert ckpts[0].stat().st_size < 5e6
    text = yamls[0].read_text()
    assert "/tmp" not in text and "/work" not in text  # relocatable: no paths of the machine that made it
    ev = json.loads((folder / "evaluation.json").read_text())
    assert ev["model_version"] == 2 and "vald" in ev["splits"] and ev["samples"]["num_samples"] == 1000


def test_shipped_network_matches_numpy_float64(shipped):
    vp, _, _ = shipped
    w = {k: v for k, v in vp.state_dict().items()}
    rng = np.random.default_rng(0)
    z = rng.normal(size=(16, 32))
    R = vp.double().decode(torch.as_tensor(z))["pose_body_matrot"].reshape(16, 21, 3, 3)
    np.testing.assert_allclose(R.numpy(), numpy_decode(w, z), atol=1e-10)
    pose = rng.normal(scale=0.3, size=(16, 63))
    mu, scale = numpy_encode(w, pose)
    q = vp.encode(torch.as_tensor(pose))
    np.testing.assert_allclose(q.loc.numpy(), mu, atol=1e-10)
    np.testing.assert_allclose(q.scale.numpy(), scale, atol=1e-10)
    vp.float()


def test_samples_bend_knees_and_elbows_the_anatomical_way(shipped):
    vp, _, surface = shipped
    rot = vp.sample_poses(1000, seed=0)["pose_body_matrot"].reshape(-1, 21, 3, 3).double()
    assert torch.isfinite(rot).all()
    share = anatomical_share(rot, surface.joints_rest)
    for hinge in ("left_knee", "right_knee", "left_elbow", "right_elbow"):
        assert share[hinge] >= 0.99, share


def test_samples_and_mean_code_stand_upright(shipped):
    vp, _, surface = shipped
    pelvis = surface.joints_rest[0] * M_TO_MM
    samples = vp.sample_poses(1000, seed=1)["pose_body_matrot"].reshape(-1, 21, 3, 3).double()
    with torch.no_grad():
        mean_code = vp.decode(torch.zeros(1, vp.latentD))["pose_body_matrot"].reshape(-1, 21, 3, 3).double()
    for rot in (samples, mean_code):
        lean = posture(body_joints(surface, rot), pelvis)["trunk_lean_deg"]
        assert abs(lean) < 8.0, lean


def test_readme_v2_snippet_runs(capsys):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
              if "load_model(default_vposer_dir(version=2)" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md v2 load_model snippet", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "torch.Size([8, 13380, 3])" in out, out
