"""Peers read the shipped open models through their normal entry points and agree with BodyModel.

smplx 0.1.28: ``smplx.create(<support_data/body_models>, model_type=..., gender=..., ext=...)``.
body-models 0.26.x: ``body_models.<type>.torch.<Class>(model_path=...)``.
Both are test-only dependencies (see scripts/setup.sh for how body-models is installed).
"""

import io
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from human_body_prior import default_body_model_path
from human_body_prior.body_model.body_model import BodyModel

TOL = 1e-5
GENDERS = ("neutral", "female", "male")
B = 3


def _models_dir():
    return Path(default_body_model_path("smplx", "neutral")).parent.parent


def _inputs(model_type, num_betas, seed):
    g = torch.Generator().manual_seed(seed)

    def r(width, scale=0.4):
        return scale * torch.randn(B, width, generator=g)

    x = dict(root_orient=r(3), betas=r(num_betas, 1.0), trans=r(3))
    x["pose_hand"] = r({"smpl": 6, "mano": 45}.get(model_type, 90))
    if model_type != "mano":
        x["pose_body"] = r(63)
    if model_type == "smplx":
        x.update(pose_jaw=r(3), pose_eye=r(6), expression=r(10, 1.0))
    return x


def _ours(path, model_type, x):
    bm = BodyModel(path, num_betas=x["betas"].shape[1], num_expressions=10)
    with torch.no_grad():
        return bm(**x).v.numpy()


# ---------------------------------------------------------------------------------------------- smplx

smplx = pytest.importorskip("smplx")


def _smplx_call(model, model_type, x):
    """Vertices (B, V, 3) of an smplx model called as smplx's users call it, with our inputs x."""
    kw = dict(global_orient=x["root_orient"], betas=x["betas"], transl=x["trans"])
    if model_type == "mano":
        kw["hand_pose"] = x["pose_hand"]
    elif model_type == "smpl":
        kw["body_pose"] = torch.cat([x["pose_body"], x["pose_hand"]], 1)
    else:
        kw.update(body_pose=x["pose_body"], left_hand_pose=x["pose_hand"][:, :45],
                  right_hand_pose=x["pose_hand"][:, 45:])
    if model_type == "smplx":
        kw.update(jaw_pose=x["pose_jaw"], leye_pose=x["pose_eye"][:, :3], reye_pose=x["pose_eye"][:, 3:],
                  expression=x["expression"])
    with torch.no_grad():
        return model(**kw).vertices.numpy()


@pytest.mark.parametrize("model_type,ext", [("smpl", "pkl"), ("smplh", "npz"), ("smplx", "npz")])
@pytest.mark.parametrize("gender", GENDERS)
def test_smplx_create_finds_and_agrees(model_type, ext, gender):
    model = smplx.create(str(_models_dir()), model_type=model_type, gender=gender, ext=ext, num_betas=10,
                         use_pca=False, flat_hand_mean=True, num_expression_coeffs=10)
    x = _inputs(model_type, 10, seed=len(gender))
    theirs = _smplx_call(model, model_type, x)
    np.testing.assert_allclose(theirs, _ours(default_body_model_path(model_type, gender), model_type, x),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_smplx_create_mano(side):
    model = smplx.create(str(_models_dir()), model_type="mano", ext="npz", is_rhand=side == "right",
                         use_pca=False, flat_hand_mean=True, num_betas=10)
    x = _inputs("mano", 10, seed=5)
    theirs = _smplx_call(model, "mano", x)
    np.testing.assert_allclose(theirs, _ours(default_body_model_path("mano", side), "mano", x), atol=TOL, rtol=0)


@pytest.mark.parametrize("model_type,gender", [("smpl", "neutral"), ("smplh", "female"), ("smplx", "male"),
                                               ("mano", "left"), ("mano", "right")])
def test_smplx_create_with_its_default_extension(model_type, gender):
    """smplx.create's defaults (ext='pkl' for SMPL, SMPL-H and MANO, 'npz' for SMPL-X), as code written for
    the official downloads calls it: finds SMPLH_*.pkl and MANO_{LEFT,RIGHT}.pkl too (issue 24)."""
    kwargs = {"is_rhand": gender == "right"} if model_type == "mano" else {"gender": gender}
    model = smplx.create(str(_models_dir()), model_type=model_type, use_pca=False, flat_hand_mean=True, **kwargs)
    x = _inputs(model_type, 10, seed=11)
    if model_type == "smplx":
        x["expression"] = torch.zeros(B, 10)
    theirs = _smplx_call(model, model_type, x)
    np.testing.assert_allclose(theirs, _ours(default_body_model_path(model_type, gender), model_type, x),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("model_type,gender", [(t, g) for t in ("smpl", "smplh") for g in GENDERS]
                         + [("mano", "left"), ("mano", "right")])
def test_pickles_are_plain_numpy_and_match_the_npz(model_type, gender):
    npz = Path(default_body_model_path(model_type, gender))
    pkl = npz.with_suffix(".pkl")
    raw = pkl.read_bytes()
    globals_used = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            globals_used.add(f"{module}.{name}")
            return super().find_class(module, name)

    Recorder(io.BytesIO(raw)).load()
    assert globals_used <= {"numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype", "zlib.decompress"}
    assert b"chumpy" not in raw and b"scipy" not in raw
    # Python's own unpickler with nothing but numpy importable (chumpy and scipy blocked)
    code = ("import sys, pickle; sys.modules['chumpy'] = None; sys.modules['scipy'] = None\n"
            f"d = pickle.load(open({str(pkl)!r}, 'rb'), encoding='latin1')\n"
            "print(sorted(d), d['posedirs'].shape, d['shapedirs'].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    with np.load(npz) as data:
        assert "'v_template'" in out and str(data["posedirs"].shape) in out
    x = _inputs(model_type, 10, seed=3)
    np.testing.assert_array_equal(_ours(pkl, model_type, x), _ours(npz, model_type, x))


# --------------------------------------------------------------------------------------- body-models

@pytest.fixture(scope="module")
def body_models_torch():
    pytest.importorskip("body_models")
    from body_models.mano.torch import MANO
    from body_models.smpl.torch import SMPL
    from body_models.smplh.torch import SMPLH
    from body_models.smplx.torch import SMPLX

    return dict(smplx=SMPLX, smplh=SMPLH, smpl=SMPL, mano=MANO)


@pytest.mark.parametrize("model_type", ["smplx", "smplh", "smpl"])
@pytest.mark.parametrize("gender", GENDERS)
def test_body_models_loads_and_agrees(body_models_torch, model_type, gender):
    path = default_body_model_path(model_type, gender)
    paths = [path] + ([str(Path(path).with_suffix(".pkl"))] if model_type == "smpl" else [])
    x = _inputs(model_type, 10, seed=7)
    ours = _ours(path, model_type, x)
    for p in paths:
        peer = body_models_torch[model_type](model_path=p, **({} if model_type == "smpl" else
                                                              {"flat_hand_mean": True}))
        common = dict(pelvis_rotation=x["root_orient"], shape=x["betas"], global_translation=x["trans"])
        body = x["pose_body"].view(B, 21, 3)
        with torch.no_grad():
            if model_type == "smplx":
                head = torch.cat([x["pose_jaw"], x["pose_eye"]], 1).view(B, 3, 3)
                theirs = peer.forward_vertices(body, head, x["pose_hand"].view(B, 30, 3),
                                               expression=x["expression"], **common)
            elif model_type == "smplh":
                theirs = peer.forward_vertices(body, x["pose_hand"].view(B, 30, 3), **common)
            else:
                theirs = peer.forward_vertices(torch.cat([body, x["pose_hand"].view(B, 2, 3)], 1), **common)
        np.testing.assert_allclose(theirs.numpy(), ours, atol=TOL, rtol=0, err_msg=p)
    if model_type == "smplx":
        assert peer.joint_names[:3] == ["Pelvis", "L_Hip", "R_Hip"] and len(peer.joint_names) == 55


def test_body_models_reads_synthetic_official_layout(body_models_torch, tmp_path):
    """The synthetic official-layout SMPL-X (dense pose correctives, joint2num as the official files store
    it) is what the benchmark measures body-models on: it loads there and agrees with BodyModel."""
    from human_body_prior.body_model.synthetic import write_synthetic_model

    path = write_synthetic_model(tmp_path / "SMPLX_NEUTRAL.npz", "smplx", num_verts=900, dtype=np.float32)
    peer = body_models_torch["smplx"](model_path=path, flat_hand_mean=True)
    assert len(peer.joint_names) == 55
    x = _inputs("smplx", 10, seed=11)
    with torch.no_grad():
        theirs = peer.forward_vertices(x["pose_body"].view(B, 21, 3),
                                       torch.cat([x["pose_jaw"], x["pose_eye"]], 1).view(B, 3, 3),
                                       x["pose_hand"].view(B, 30, 3), expression=x["expression"],
                                       pelvis_rotation=x["root_orient"], shape=x["betas"],
                                       global_translation=x["trans"])
    np.testing.assert_allclose(theirs.numpy(), _ours(path, "smplx", x), atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_body_models_loads_mano(body_models_torch, side):
    path = default_body_model_path("mano", side)
    peer = body_models_torch["mano"](model_path=path, flat_hand_mean=True)
    x = _inputs("mano", 10, seed=9)
    with torch.no_grad():
        theirs = peer.forward_vertices(x["pose_hand"].view(B, 15, 3), wrist_rotation=x["root_orient"],
                                       shape=x["betas"], global_translation=x["trans"])
    np.testing.assert_allclose(theirs.numpy(), _ours(path, "mano", x), atol=TOL, rtol=0)


def test_readme_peer_snippet_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Peers read the shipped files", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    pytest.importorskip("body_models")
    exec(compile(snippet, "README.md peers snippet", "exec"), {"__name__": "__readme__"})
