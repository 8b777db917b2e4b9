"""BodyModel against the reference smplx package, on files in every official layout."""

import numpy as np
import pytest
import smplx
import smplx.lbs
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.body_model.body_model import BodyModel

NUM_BETAS = {"smpl": 10, "smplh": 16, "smplx": 16, "mano": 10}
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def _exact_rodrigues(rot_vecs, epsilon=1e-8, dtype=torch.float32):
    """scipy's rotation matrices, replacing smplx's Rodrigues, which adds 1e-8 to every rotation
    vector and so is only accurate to ~1e-8: too coarse for a 1e-10 float64 comparison."""
    mats = Rotation.from_rotvec(rot_vecs.detach().cpu().double().numpy()).as_matrix()
    return torch.as_tensor(mats, dtype=rot_vecs.dtype, device=rot_vecs.device)


def _reference(model_type, path, dtype):
    common = dict(batch_size=1, dtype=dtype)
    if model_type == "smpl":
        return smplx.SMPL(path, num_betas=10, **common)
    if model_type == "smplh":
        # smplx caps files with fewer than 300 shape columns at 10 betas; zero-padding the columns
        # lets it use all 16 of the AMASS-style file
        data = dict(np.load(path))
        data["shapedirs"] = np.concatenate([data["shapedirs"], np.zeros(data["shapedirs"].shape[:2] + (284,))], -1)
        return smplx.SMPLH(path, data_struct=smplx.utils.Struct(**data), num_betas=16, use_pca=False,
                           flat_hand_mean=True, **common)
    if model_type == "smplx":
        return smplx.SMPLX(path, ext="npz", num_betas=16, num_expression_coeffs=10, use_pca=False,
                           flat_hand_mean=True, **common)
    return smplx.MANO(path, ext="pkl", is_rhand=True, use_pca=False, flat_hand_mean=True, **common)


def _random_inputs(model_type, batch, dtype, seed):
    g = torch.Generator().manual_seed(seed)

    def r(width, scale):
        return (torch.randn(batch, width, generator=g, dtype=torch.float64) * scale).to(dtype)

    inputs = dict(root_orient=r(3, 1.0), betas=r(NUM_BETAS[model_type], 1.0), trans=r(3, 0.5))
    inputs["pose_hand"] = r({"smpl": 6, "mano": 45}.get(model_type, 90), 0.5)
    if model_type != "mano":
        inputs["pose_body"] = r(63, 0.5)
    if model_type == "smplx":
        inputs.update(pose_jaw=r(3, 0.3), pose_eye=r(6, 0.3), expression=r(10, 1.0))
    return inputs


def _reference_forward(ref, model_type, x):
    kw = dict(global_orient=x["root_orient"], betas=x["betas"], transl=x["trans"])
    if model_type == "smpl":
        return ref(body_pose=torch.cat([x["pose_body"], x["pose_hand"]], 1), **kw)
    if model_type == "mano":
        return ref(hand_pose=x["pose_hand"], **kw)
    kw.update(body_pose=x["pose_body"], left_hand_pose=x["pose_hand"][:, :45],
              right_hand_pose=x["pose_hand"][:, 45:])
    if model_type == "smplx":
        kw.update(jaw_pose=x["pose_jaw"], leye_pose=x["pose_eye"][:, :3], reye_pose=x["pose_eye"][:, 3:],
                  expression=x["expression"])
    return ref(**kw)


@pytest.fixture(scope="module")
def models(model_files):
    cache = {}

    def get(model_type, dtype):
        key = (model_type, dtype)
        if key not in cache:
            path = model_files[model_type]
            ours = BodyModel(path, num_betas=NUM_BETAS[model_type], dtype=dtype)
            cache[key] = ours, _reference(model_type, path, dtype)
        return cache[key]

    return get


@pytest.mark.parametrize("model_type", ["smpl", "smplh", "smplx", "mano"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_matches_smplx(models, model_type, dtype, batch, monkeypatch):
    if dtype == torch.float64:
        monkeypatch.setattr(smplx.lbs, "batch_rodrigues", _exact_rodrigues)
    ours, ref = models(model_type, dtype)
    x = _random_inputs(model_type, batch, dtype, seed=batch)
    with torch.no_grad():
        out = ours(**x)
        expected = _reference_forward(ref, model_type, x)
    assert out.v.shape == expected.vertices.shape and out.v.dtype == dtype
    J = ours.num_joints
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(out.v.numpy(), expected.vertices.numpy(), atol=tol, rtol=0)
    np.testing.assert_allclose(out.Jtr.numpy(), expected.joints[:, :J].numpy(), atol=tol, rtol=0)


def test_model_type_detection_and_mismatch(model_files):
    for model_type, path in model_files.items():
        assert BodyModel(path).model_type == model_type
    with pytest.raises(ValueError, match="contradicts.*'smplh'"):
        BodyModel(model_files["smplh"], "smplx")
    assert BodyModel(model_files["smplx"], "smplx").model_type == "smplx"  # the seed's call


def test_expressions_start_at_column_10_in_small_files(small_smplx, monkeypatch):
    ours = BodyModel(small_smplx, num_betas=10, num_expressions=10, dtype=torch.float64)
    ref = smplx.SMPLX(small_smplx, ext="npz", num_betas=10, num_expression_coeffs=10, use_pca=False,
                      flat_hand_mean=True, dtype=torch.float64, use_face_contour=False)
    ref.vertex_joint_selector = _NoExtraJoints()  # its fixed vertex ids exceed this small mesh
    monkeypatch.setattr(smplx.lbs, "batch_rodrigues", _exact_rodrigues)
    x = _random_inputs("smplx", 5, torch.float64, seed=3)
    x["betas"] = x["betas"][:, :10]
    with torch.no_grad():
        np.testing.assert_allclose(ours(**x).v.numpy(), _reference_forward(ref, "smplx", x).vertices.numpy(),
                                   atol=1e-10)
    with pytest.raises(ValueError, match="20 shape columns and its expressions start at column 10"):
        BodyModel(small_smplx, num_betas=16)
    with pytest.raises(ValueError, match="only 20 shape columns"):
        BodyModel(small_smplx, num_betas=10, num_expressions=12)


class _NoExtraJoints(torch.nn.Module):
    def forward(self, vertices, joints):
        return joints


def test_pickle_with_chumpy_and_sparse_loads_without_chumpy(tmp_path, model_files):
    """An official-style SMPL pickle: chumpy arrays, a scipy sparse J_regressor, Python 2 strings."""
    import sys
    import types

    import scipy.sparse

    plain = BodyModel(model_files["smpl"], dtype=torch.float64)
    data = {k: v for k, v in np.load(_npz_copy(model_files["smpl"], tmp_path)).items()}

    fake = types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy pickles: an object whose state dict keeps the values in 'x'
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    fake.Ch = Ch
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = fake
    try:
        for key in ("v_template", "shapedirs", "posedirs", "weights"):
            data[key] = Ch(data[key])
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
        data["bs_style"] = "lbs"
        path = tmp_path / "SMPL_CHUMPY.pkl"
        with open(path, "wb") as fh:
            _Py2Pickler(fh, protocol=2).dump(data)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    raw = path.read_bytes()
    assert b"cchumpy.ch\nCh" in raw and b"scipy.sparse" in raw and b"\nT" in raw

    loaded = BodyModel(path, dtype=torch.float64)
    x = _random_inputs("smpl", 3, torch.float64, seed=11)
    np.testing.assert_array_equal(loaded(**x).v.detach().numpy(), plain(**x).v.detach().numpy())


def _npz_copy(pkl_path, tmp_path):
    from human_body_prior.body_model.model_io import load_model_file

    out = tmp_path / "copy.npz"
    np.savez(out, **load_model_file(pkl_path))
    return out


class _Py2Pickler(__import__("pickle")._Pickler):
    """Writes bytes the way Python 2 wrote str (BINSTRING opcodes), so loading needs latin1."""

    dispatch = dict(__import__("pickle")._Pickler.dispatch)

    def save_bytes_as_py2_str(self, obj):
        import struct

        self.write(b"T" + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_py2_str


def test_refuses_pickles_that_run_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Evil()}))
    with pytest.raises(ValueError, match="refusing to load global builtins.print"):
        BodyModel(path)


def test_flexible_batch_and_broadcast(small_smplx):
    bm = BodyModel(small_smplx, batch_size=1)
    assert bm(pose_body=torch.zeros(5, 63)).v.shape == (5, 500, 3)
    assert bm(pose_body=torch.zeros(5, 21, 3), betas=torch.zeros(1, 10)).Jtr.shape == (5, 55, 3)
    bm4 = BodyModel(small_smplx, batch_size=4)
    assert bm4().v.shape == (4, 500, 3)
    with pytest.raises(ValueError, match=r"root_orient has batch 4 .* expected shape \(6, 3\) or \(1, 3\)"):
        bm4(trans=torch.zeros(6, 3))
    with pytest.raises(ValueError, match=r"pose_body must have shape \(B, 63\)"):
        bm(pose_body=torch.zeros(2, 60))
    with pytest.raises(ValueError, match="has no"):
        bm(dmpls=torch.zeros(1, 4))


def test_batch_rows_are_independent(small_smplx):
    """Posing a batch equals posing each row alone."""
    bm = BodyModel(small_smplx, dtype=torch.float64)
    x = _random_inputs("smplx", 6, torch.float64, seed=5)
    x["betas"] = x["betas"][:, :10]
    full = bm(**x).v
    for i in range(6):
        row = bm(**{k: v[i:i + 1] for k, v in x.items()}).v
        np.testing.assert_allclose(full[i:i + 1].detach().numpy(), row.detach().numpy(), atol=1e-12)


def test_params_return_dict_and_r(small_smplx):
    betas = torch.linspace(-1, 1, 10)
    bm = BodyModel(small_smplx, params={"betas": betas, "trans": [0.0, 1.0, 0.0]}, batch_size=2)
    assert isinstance(bm.pose_body, torch.nn.Parameter) and bm.pose_body.shape == (2, 63)
    assert bm.pose_hand.shape == (2, 90) and bm.pose_eye.shape == (2, 6) and bm.expression.shape == (2, 10)
    np.testing.assert_allclose(bm.betas.detach().numpy(), np.tile(betas.numpy(), (2, 1)))
    out = bm(return_dict=True)
    assert type(out) is dict and {"v", "f", "Jtr", "full_pose", "betas", "pose_body"} <= set(out)
    assert out["full_pose"].shape == (2, 165)
    # r() runs without gradients, so the unposed hands and face hang from their anchors (float32 rounding)
    np.testing.assert_allclose(bm.r(), out["v"].detach().numpy(), rtol=0, atol=1e-6)
    assert np.allclose(bm.r()[..., 1] - BodyModel(small_smplx, params={"betas": betas}).r()[..., 1], 1.0)
    with pytest.raises(ValueError, match="unknown entries in params"):
        BodyModel(small_smplx, params={"pose_bodyy": torch.zeros(1, 63)})


def test_v_template_override_regresses_joints(small_smplx):
    bm = BodyModel(small_smplx, dtype=torch.float64)
    shifted = bm.v_template * 1.5
    out = bm(v_template=shifted)
    ref = BodyModel(small_smplx, dtype=torch.float64)
    np.testing.assert_allclose(out.Jtr[0].detach().numpy(),
                               (ref.J_regressor @ shifted).detach().numpy(), atol=1e-12)


def test_dmpls(tmp_path, model_files):
    rng = np.random.default_rng(0)
    eigvec = rng.normal(scale=0.01, size=(6890, 3, 8))
    path = tmp_path / "dmpl.npz"
    np.savez(path, eigvec=eigvec)
    bm = BodyModel(model_files["smplh"], num_betas=16, num_dmpls=8, path_dmpl=path, dtype=torch.float64)
    d = torch.tensor(rng.normal(size=(2, 8)))
    delta = bm(dmpls=d).v - bm(dmpls=torch.zeros(2, 8)).v
    np.testing.assert_allclose(delta.detach().numpy(), np.einsum("bk,vck->bvc", d.numpy(), eigvec), atol=1e-12)
    with pytest.raises(ValueError, match="SMPL and SMPL-H only"):
        BodyModel(model_files["smplx"], num_dmpls=8, path_dmpl=path)


def test_gradients_flow_to_parameters(small_smplx):
    bm = BodyModel(small_smplx, dtype=torch.float64)
    loss = bm(pose_body=torch.full((1, 63), 0.2)).Jtr.square().sum() + bm().v.sum()
    loss.backward()
    for name in ("root_orient", "betas", "trans", "expression"):
        assert getattr(bm, name).grad is not None and torch.isfinite(getattr(bm, name).grad).all()


def test_dtype_and_device_moves(small_smplx):
    bm = BodyModel(small_smplx).to(torch.float64)
    assert bm.v_template.dtype == torch.float64 and bm.pose_body.dtype == torch.float64
    assert bm(pose_body=torch.zeros(1, 63, dtype=torch.float32)).v.dtype == torch.float64
    assert bm.f.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(model_files):
    cpu = BodyModel(model_files["smplx"], num_betas=16, dtype=torch.float64)
    gpu = BodyModel(model_files["smplx"], num_betas=16, dtype=torch.float64).to("cuda")
    x = _random_inputs("smplx", 8, torch.float64, seed=9)
    out = gpu(**{k: v.cuda() for k, v in x.items()})
    assert out.v.device.type == "cuda"
    np.testing.assert_allclose(out.v.cpu().detach().numpy(), cpu(**x).v.detach().numpy(), atol=1e-10)
    with torch.no_grad():  # the path without autograd, and gradients of every input
        np.testing.assert_allclose(gpu(**{k: v.cuda() for k, v in x.items()}).v.cpu().numpy(),
                                   cpu(**x).v.numpy(), atol=1e-10)
    up = torch.randn(8, cpu.v_template.shape[0], 3, dtype=torch.float64)
    grads = []
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        xs = {k: v.to(dev).requires_grad_(True) for k, v in x.items()}
        grads.append(torch.autograd.grad((model(**xs).v * up.to(dev)).sum(), list(xs.values())))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b.cpu().numpy(), a.numpy(), atol=1e-9)


def test_bad_files(tmp_path, small_smplx):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        BodyModel(tmp_path / "nowhere.npz")
    odd = tmp_path / "model.obj"
    odd.write_text("v 0 0 0\n")
    with pytest.raises(ValueError, match=r"model.obj.*unknown body model file extension"):
        BodyModel(odd)
    data = dict(np.load(small_smplx, allow_pickle=True))  # trusted: written by the fixture
    del data["J_regressor"]
    missing = tmp_path / "no_regressor.npz"
    np.savez(missing, **data)
    with pytest.raises(ValueError, match=r"no_regressor.npz.*'J_regressor'"):
        BodyModel(missing)
    data = dict(np.load(small_smplx, allow_pickle=True))  # trusted: written by the fixture
    data["kintree_table"] = data["kintree_table"][:, :30]
    odd_tree = tmp_path / "odd_tree.npz"
    np.savez(odd_tree, **data)
    with pytest.raises(ValueError, match="odd_tree.npz.*30 joints"):
        BodyModel(odd_tree)
    data = dict(np.load(small_smplx, allow_pickle=True))  # trusted: written by the fixture
    data["weights"] = data["weights"][:-1]
    short = tmp_path / "short_weights.npz"
    np.savez(short, **data)
    with pytest.raises(ValueError, match=r"short_weights.npz: weights must have shape \(500, 55\)"):
        BodyModel(short)


def test_files_without_posedirs_load(tmp_path, small_smplx):
    data = dict(np.load(small_smplx, allow_pickle=True))  # trusted: written by the fixture
    with_pd = BodyModel(small_smplx, dtype=torch.float64)
    del data["posedirs"]
    path = tmp_path / "no_posedirs.npz"
    np.savez(path, **data)
    bm = BodyModel(path, dtype=torch.float64)
    assert bm.posedirs is None
    rest = bm().v
    np.testing.assert_allclose(rest.detach().numpy(), with_pd().v.detach().numpy(), atol=1e-12)
