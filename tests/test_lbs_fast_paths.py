"""The fast skinning path of lbs.py against the plain dense one, values and gradients."""

import io

import numpy as np
import pytest
import torch

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.model_types.joints import PARENTS
from human_body_prior.geometry.kinematics import KinematicTree
from human_body_prior.body_model.lbs import (SparseSkinningWeights, lbs,
                                             shaped_vertices_vertex_major, skin_vertices, skin_vertices_sparse)
from human_body_prior.body_model import lbs as lbs_module
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.geometry.rotations import axis_angle_to_matrix

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]
DENSE_MAX = lbs_module._DENSE_MAX  # the default, before the fixture below pins it to 0


@pytest.fixture(autouse=True)
def sparse_at_every_batch(monkeypatch):
    """These tests compare the sparse path with the dense one at small batches, where lbs would otherwise
    take the dense path for both (test_small_batches_take_the_dense_path)."""
    monkeypatch.setattr(lbs_module, "_DENSE_MAX", 0)


def _dense_like_official(num_verts, num_joints, seed, max_nonzero=10):
    """Weights with 1..max_nonzero non-zeros per row, some of them tiny (1e-9), rows summing to 1,
    and one vertex with no weights at all."""
    rng = np.random.default_rng(seed)
    w = np.zeros((num_verts, num_joints))
    for v in range(num_verts):
        k = rng.integers(1, min(max_nonzero, num_joints) + 1)
        cols = rng.choice(num_joints, size=k, replace=False)
        vals = rng.uniform(0.0, 1.0, size=k)
        vals[rng.uniform(size=k) < 0.3] = 1e-9
        w[v, cols] = vals / vals.sum()
    w[3] = 0.0
    return w


def _random_transforms(batch, num_joints, dtype, gen):
    rot = axis_angle_to_matrix(torch.randn(batch, num_joints, 3, generator=gen, dtype=torch.float64))
    t = torch.randn(batch, num_joints, 3, 1, generator=gen, dtype=torch.float64)
    return torch.cat([rot, t], -1).to(dtype)


def test_sparse_weights_keep_every_nonzero():
    w = torch.tensor(_dense_like_official(50, 7, seed=0))
    sw = SparseSkinningWeights.from_dense(w)
    joints, values, offsets = sw.tensors()[:3]
    rebuilt = torch.zeros_like(w)
    ends = torch.cat([offsets[1:], torch.tensor([joints.numel()])])
    for v in range(w.shape[0]):
        rebuilt[v, joints[offsets[v]:ends[v]]] = values[offsets[v]:ends[v]]
    assert torch.equal(rebuilt, w)  # nothing dropped, not even the 1e-9 weights
    assert values.numel() == int((w != 0).sum())
    assert sw.max_per_vertex == int((w != 0).sum(1).max())
    assert (values < 1e-8).any()
    with pytest.raises(ValueError, match=r"\(V, J\)"):
        SparseSkinningWeights.from_dense(torch.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 5])
def test_sparse_skinning_equals_dense(dtype, batch):
    g = torch.Generator().manual_seed(1)
    V, J = 200, 9
    w = torch.tensor(_dense_like_official(V, J, seed=1), dtype=dtype)
    verts = torch.randn(batch, V, 3, generator=g, dtype=torch.float64).to(dtype)
    T = _random_transforms(batch, J, dtype, g)

    dense = skin_vertices(verts, w, T)
    sparse = skin_vertices_sparse(verts.permute(1, 2, 0).contiguous(),
                                  SparseSkinningWeights.from_dense(w).tensors(), T).permute(2, 0, 1)
    assert (sparse - dense).abs().max() < TOL[dtype]
    assert sparse[:, 3].abs().max() == 0  # the vertex without weights collapses like the dense product


def test_sparse_skinning_gradients():
    g = torch.Generator().manual_seed(2)
    V, J, B = 30, 6, 2
    w = torch.tensor(_dense_like_official(V, J, seed=2, max_nonzero=4))
    sw = SparseSkinningWeights.from_dense(w).tensors()
    verts = torch.randn(B, V, 3, generator=g, dtype=torch.float64, requires_grad=True)
    T = _random_transforms(B, J, torch.float64, g).requires_grad_()

    def sparse(v, t):
        return skin_vertices_sparse(v.permute(1, 2, 0), sw, t).permute(2, 0, 1)

    # against finite differences, and against the dense path's gradients
    assert torch.autograd.gradcheck(sparse, (verts, T))
    up = torch.randn(B, V, 3, generator=g, dtype=torch.float64)
    g_sparse = torch.autograd.grad((sparse(verts, T) * up).sum(), (verts, T))
    g_dense = torch.autograd.grad((skin_vertices(verts, w, T) * up).sum(), (verts, T))
    for a, b in zip(g_sparse, g_dense):
        assert (a - b).abs().max() < 1e-10
    # second derivatives (issue 24: torch's embedding_bag backward has none)
    assert torch.autograd.gradgradcheck(sparse, (verts, T))


@pytest.mark.parametrize("dtype", DTYPES)
def test_vertex_major_shaping(dtype):
    g = torch.Generator().manual_seed(3)
    V, K, B = 40, 4, 3
    vt = torch.randn(V, 3, generator=g, dtype=dtype)
    dirs = torch.randn(V, 3, K, generator=g, dtype=dtype)
    c = torch.randn(B, K, generator=g, dtype=dtype)
    ref = vt + torch.einsum("bk,vck->bvc", c.double(), dirs.double()).to(dtype)
    out = shaped_vertices_vertex_major(c, vt, dirs).permute(2, 0, 1)
    assert (out - ref).abs().max() < TOL[dtype]
    per_batch = vt + torch.randn(B, V, 3, generator=g, dtype=dtype)
    out = shaped_vertices_vertex_major(c, per_batch, dirs).permute(2, 0, 1)
    assert (out - (per_batch + (ref - vt))).abs().max() < TOL[dtype]


def _small_model(dtype, model_type="smplh", posedirs=True, seed=4):
    g = torch.Generator().manual_seed(seed)
    parents = PARENTS[model_type]
    J = len(parents)
    V, K = 300, 6
    reg = torch.rand(J, V, generator=g, dtype=torch.float64)
    reg = reg / reg.sum(1, keepdim=True)
    m = dict(
        v_template=torch.randn(V, 3, generator=g, dtype=torch.float64) * 0.3,
        shapedirs=torch.randn(V, 3, K, generator=g, dtype=torch.float64) * 0.01,
        posedirs=(torch.randn(V * 3, 9 * (J - 1), generator=g, dtype=torch.float64) * 0.003).t()
        if posedirs else None,
        J_regressor=reg,
        weights=torch.tensor(_dense_like_official(V, J, seed=seed)),
        tree=KinematicTree(parents),
    )
    m = {k: v.to(dtype) if torch.is_tensor(v) else v for k, v in m.items()}
    m["J_template"] = m["J_regressor"] @ m["v_template"]
    m["J_shapedirs"] = torch.einsum("jv,vck->jck", m["J_regressor"], m["shapedirs"])
    return m, g


def _lbs(m, pose, coeffs, template=None, fast=True, regress=False):
    sw = SparseSkinningWeights.from_dense(m["weights"]).tensors() if fast else None
    jt, js = (None, None) if regress else (m["J_template"], m["J_shapedirs"])
    return lbs(pose, coeffs, m["v_template"] if template is None else template, m["shapedirs"], m["posedirs"],
               m["J_regressor"], m["weights"], m["tree"], jt, js, sparse_weights=sw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("posedirs", [True, False])
@pytest.mark.parametrize("regress", [False, True])
def test_fast_lbs_equals_plain_lbs(dtype, posedirs, regress):
    m, g = _small_model(dtype, posedirs=posedirs)
    B, J = 4, len(m["tree"])
    pose = (torch.randn(B, 3 * J, generator=g, dtype=torch.float64) * 0.7).to(dtype)
    coeffs = torch.randn(B, 6, generator=g, dtype=torch.float64).to(dtype)
    v_fast, j_fast = _lbs(m, pose, coeffs, fast=True, regress=regress)
    v_plain, j_plain = _lbs(m, pose, coeffs, fast=False, regress=regress)
    assert v_fast.shape == (B, m["v_template"].shape[0], 3) and v_fast.is_contiguous()
    assert (v_fast - v_plain).abs().max() < TOL[dtype]
    assert (j_fast - j_plain).abs().max() < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_lbs_per_batch_template_and_gradients(dtype):
    m, g = _small_model(dtype)
    B, J = 3, len(m["tree"])
    pose = (torch.randn(B, 3 * J, generator=g, dtype=torch.float64) * 0.7).to(dtype).requires_grad_()
    coeffs = torch.randn(B, 6, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    template = (m["v_template"] + 0.01 * torch.randn(B, *m["v_template"].shape, generator=g,
                                                     dtype=torch.float64).to(dtype)).requires_grad_()
    up_v = torch.randn(B, m["v_template"].shape[0], 3, generator=g, dtype=torch.float64).to(dtype)
    up_j = torch.randn(B, J, 3, generator=g, dtype=torch.float64).to(dtype)
    results = []
    for fast in (True, False):
        v, j = _lbs(m, pose, coeffs, template, fast=fast, regress=True)
        loss = (v * up_v).sum() + (j * up_j).sum()
        results.append((v, j) + torch.autograd.grad(loss, (pose, coeffs, template)))
    for a, b in zip(*results):
        scale = max(1.0, float(b.detach().abs().max()))
        assert (a - b).abs().max() < TOL[dtype] * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("posedirs", [True, False])
@pytest.mark.parametrize("template", ["file", "per_batch", "shaped"])
def test_posed_mesh_in_chunks_equals_plain_path(dtype, posedirs, template, monkeypatch):
    """posed_mesh without autograd shapes, corrects, skins and moves a few vertices at a time (here 7,
    so that chunk edges cut weight lists); against the plain dense path computed step by step."""
    from human_body_prior.body_model import lbs as lbs_module

    m, g = _small_model(dtype, posedirs=posedirs, seed=5)
    B, J, V = 3, len(m["tree"]), m["v_template"].shape[0]
    pose = (torch.randn(B, 3 * J, generator=g, dtype=torch.float64) * 0.7).to(dtype)
    coeffs = torch.randn(B, 6, generator=g, dtype=torch.float64).to(dtype)
    trans = torch.randn(B, 3, generator=g, dtype=torch.float64).to(dtype)
    vt = m["v_template"]
    if template == "per_batch":
        vt = vt + 0.01 * torch.randn(B, V, 3, generator=g, dtype=torch.float64).to(dtype)
    if template == "shaped":  # v_shaped: no shape coefficients at all
        coeffs = coeffs[:, :0]
    dirs = m["shapedirs"][..., :coeffs.shape[1]]
    rot, _, transforms = lbs_module.pose_skeleton(pose, m["J_template"], m["tree"])
    sw = SparseSkinningWeights.from_dense(m["weights"]).tensors()
    monkeypatch.setattr(lbs_module, "_CHUNK_BYTES", 7 * 12 * B * torch.finfo(dtype).bits // 8)
    fast = lbs_module.posed_mesh(rot, transforms, coeffs, vt, dirs, m["posedirs"], m["weights"], sw, trans)
    rest = vt + torch.einsum("bk,vck->bvc", coeffs, dirs)
    if posedirs:
        rest = rest + (lbs_module.pose_features(rot) @ m["posedirs"]).reshape(B, V, 3)
    plain = skin_vertices(rest, m["weights"], transforms) + trans[:, None]
    assert fast.shape == (B, V, 3) and fast.is_contiguous()
    assert (fast - plain).abs().max() < TOL[dtype]
    # the autograd path gives the same, and without trans the mesh is where it was
    with_grad = lbs_module.posed_mesh(rot, transforms, coeffs.clone().requires_grad_(), vt, dirs, m["posedirs"],
                                      m["weights"], sw, trans)
    assert with_grad.requires_grad and (with_grad.detach() - fast).abs().max() < TOL[dtype]
    unmoved = lbs_module.posed_mesh(rot, transforms, coeffs, vt, dirs, m["posedirs"], m["weights"], sw)
    assert (unmoved + trans[:, None] - fast).abs().max() < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wanted", ["all", "pose", "trans", "shape"])
def test_chunked_skinning_gradients_equal_plain_path(dtype, wanted, monkeypatch):
    """First derivatives of the fast path run 7 vertices at a time (chunk edges cut weight lists); each
    input's gradient, alone or with the others, against the plain dense path."""
    from human_body_prior.body_model import lbs as lbs_module

    m, g = _small_model(dtype, seed=6)
    B, J, V = 3, len(m["tree"]), m["v_template"].shape[0]
    monkeypatch.setattr(lbs_module, "_CHUNK_BYTES", 7 * 12 * B * torch.finfo(dtype).bits // 8)
    pose = (torch.randn(B, 3 * J, generator=g, dtype=torch.float64) * 0.7).to(dtype)
    coeffs = torch.randn(B, 6, generator=g, dtype=torch.float64).to(dtype)
    trans = torch.randn(B, 3, generator=g, dtype=torch.float64).to(dtype)
    up = torch.randn(B, V, 3, generator=g, dtype=torch.float64).to(dtype)
    names = {"all": ("pose", "shape", "trans"), "pose": ("pose",), "trans": ("trans",), "shape": ("shape",)}[wanted]
    sw = SparseSkinningWeights.from_dense(m["weights"]).tensors()
    results = []
    for fast in (True, False):
        x = {"pose": pose.clone(), "shape": coeffs.clone(), "trans": trans.clone()}
        for n in names:
            x[n].requires_grad_(True)
        rot, _, transforms = lbs_module.pose_skeleton(x["pose"], m["J_template"], m["tree"])
        v = lbs_module.posed_mesh(rot, transforms, x["shape"], m["v_template"], m["shapedirs"], m["posedirs"],
                                  m["weights"], sw if fast else None, x["trans"])
        results.append(torch.autograd.grad((v * up).sum(), [x[n] for n in names]))
    for a, b in zip(*results):
        assert (a - b).abs().max() < TOL[dtype] * max(1.0, float(b.abs().max()))


def test_fast_path_gradcheck_float64():
    m, g = _small_model(torch.float64, model_type="mano")
    B, J = 2, len(m["tree"])
    pose = (torch.randn(B, 3 * J, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    coeffs = torch.randn(B, 6, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, c: _lbs(m, p, c, fast=True), (pose, coeffs))


@pytest.fixture(scope="module")
def smplx_file(tmp_path_factory):
    return write_synthetic_model(tmp_path_factory.mktemp("fast") / "SMPLX_SMALL.npz", "smplx", num_verts=800,
                                 num_shape_columns=20)


@pytest.mark.parametrize("dtype", DTYPES)
def test_body_model_runs_the_fast_path(smplx_file, dtype):
    bm = BodyModel(smplx_file, num_betas=10, batch_size=3, dtype=dtype)
    assert bm._skin_values.numel() == int((bm.weights != 0).sum()) == bm.num_skinning_weights
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in (bm.root_orient, bm.pose_body, bm.pose_hand, bm.pose_jaw, bm.pose_eye, bm.betas, bm.expression):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype) * 0.5)
    out = bm()
    coeffs = torch.cat([bm.betas, bm.expression], 1)
    v_plain, j_plain = lbs(out.full_pose, coeffs, bm.v_template, bm.shapedirs, bm.posedirs, bm.J_regressor,
                           bm.weights, bm._tree)  # plain dense path, regressing joints from the mesh
    assert (out.v - bm.trans.unsqueeze(1) - v_plain).abs().max() < TOL[dtype]
    assert (out.Jtr - bm.trans.unsqueeze(1) - j_plain).abs().max() < TOL[dtype]


def test_body_model_buffers_move_and_save(smplx_file):
    # persistant_buffer=True: the model arrays are saved (upstream's default, False, keeps them out)
    bm = BodyModel(smplx_file, num_betas=10, persistant_buffer=True)
    assert not any(k.startswith("_skin") for k in bm.state_dict())  # derived, not saved
    assert bm.posedirs.shape == (9 * 54, 3 * 800)
    v32 = bm(pose_body=torch.full((1, 63), 0.2)).v
    bm64 = bm.double()
    assert bm64._skin_values.dtype == torch.float64 and bm64._skin_joints.dtype == torch.long
    v64 = bm64(pose_body=torch.full((1, 63), 0.2, dtype=torch.float64)).v
    assert (v64 - v32.double()).abs().max() < 1e-5
    fresh = BodyModel(smplx_file, num_betas=10, dtype=torch.float64, persistant_buffer=True)  # float64 weights
    fresh.load_state_dict(bm64.state_dict())  # float32-rounded weights: the index follows them
    assert torch.equal(fresh._skin_values, bm64._skin_values)
    assert torch.equal(fresh(pose_body=torch.full((1, 63), 0.2, dtype=torch.float64)).v, v64)
    buf = io.BytesIO()
    torch.save(fresh, buf)  # whole-module pickling survives the load hook
    buf.seek(0)
    again = torch.load(buf, weights_only=False)  # our own object, written just above
    assert torch.equal(again(pose_body=torch.full((1, 63), 0.2, dtype=torch.float64)).v, v64)


def test_body_model_plain_path_switch_and_second_derivatives(smplx_file):
    bm = BodyModel(smplx_file, num_betas=10, dtype=torch.float64)
    pose = torch.full((1, 63), 0.3, dtype=torch.float64, requires_grad=True)
    fast = bm(pose_body=pose).v
    bm.sparse_skinning = False
    plain = bm(pose_body=pose).v
    assert (fast - plain).abs().max() < 1e-10
    # both paths are twice differentiable, with the same second derivatives (issue 24: the fast path
    # raised NotImplementedError from _embedding_bag_backward)
    second = []
    for fast_path in (False, True):
        bm.sparse_skinning = fast_path
        (g,) = torch.autograd.grad(bm(pose_body=pose).v.pow(2).sum(), pose, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), pose)
        assert torch.isfinite(gg).all() and gg.abs().max() > 0
        second.append(gg)
    assert (second[0] - second[1]).abs().max() < 1e-8 * second[0].abs().max()


@pytest.mark.slow
def test_torch_compile_matches_eager(smplx_file):
    """torch.compile(bm) is the opt-in compiled path (minutes of compile time on 2 cores, hence slow)."""
    bm = BodyModel(smplx_file, num_betas=10)
    compiled = torch.compile(bm)
    g = torch.Generator().manual_seed(6)
    x = dict(pose_body=torch.randn(4, 63, generator=g) * 0.4, betas=torch.randn(4, 10, generator=g),
             trans=torch.randn(4, 3, generator=g))
    pose = x["pose_body"].clone().requires_grad_()
    eager = bm(**{**x, "pose_body": pose}).v
    (g_eager,) = torch.autograd.grad(eager.pow(2).sum(), pose)
    out = compiled(**{**x, "pose_body": pose}).v
    (g_compiled,) = torch.autograd.grad(out.pow(2).sum(), pose)
    assert (out - eager).abs().max() < 1e-5
    assert (g_compiled - g_eager).abs().max() < 1e-4 * max(1.0, float(g_eager.abs().max()))


def test_torch_func_grad_of_the_mesh_equals_autograd(smplx_file):
    """torch.func.grad through the fast path's autograd Functions (they set up their context apart from
    forward, as functorch transforms need) gives autograd's gradient."""
    bm = BodyModel(smplx_file, num_betas=10, dtype=torch.float64)
    g = torch.Generator().manual_seed(8)
    pose = torch.randn(2, 63, generator=g, dtype=torch.float64) * 0.4
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    up = torch.randn(2, bm.v_template.shape[0], 3, generator=g, dtype=torch.float64)

    def loss(p, b):
        return (bm(pose_body=p, betas=b).v * up).sum()

    func_grads = torch.func.grad(loss, argnums=(0, 1))(pose, betas)
    p, b = pose.clone().requires_grad_(), betas.clone().requires_grad_()
    auto_grads = torch.autograd.grad(loss(p, b), (p, b))
    for a, f in zip(auto_grads, func_grads):
        assert torch.allclose(a, f, atol=1e-10, rtol=0)


@pytest.mark.parametrize("batch", [1, DENSE_MAX, DENSE_MAX + 1])
def test_small_batches_take_the_dense_path(smplx_file, batch, monkeypatch):
    """Batches up to _DENSE_MAX skin with the dense product (faster there), with and without autograd
    (the same numbers either way); values and gradients equal the sparse path's."""
    bm = BodyModel(smplx_file, num_betas=10, dtype=torch.float64).requires_grad_(False)
    g = torch.Generator().manual_seed(9)
    pose = (torch.randn(batch, 63, generator=g, dtype=torch.float64) * 0.4).requires_grad_()
    betas = torch.randn(batch, 10, generator=g, dtype=torch.float64)
    up = torch.randn(batch, 800, 3, generator=g, dtype=torch.float64)
    sparse_calls = []  # the sparse skinning, with autograd (_SkinInChunks) or without, runs _posed_in_chunks
    real = lbs_module._posed_in_chunks
    monkeypatch.setattr(lbs_module, "_posed_in_chunks", lambda *a: sparse_calls.append(1) or real(*a))
    results = {}
    for limit in (0, DENSE_MAX):  # the sparse path at every batch, then the default
        monkeypatch.setattr(lbs_module, "_DENSE_MAX", limit)
        sparse_calls.clear()
        v = bm(pose_body=pose, betas=betas).v
        (grad,) = torch.autograd.grad((v * up).sum(), pose)
        with torch.no_grad():
            v_no_grad = bm(pose_body=pose, betas=betas).v
        results[limit] = (v, grad, v_no_grad, len(sparse_calls))
    assert results[0][3] == 2 and results[DENSE_MAX][3] == (2 if batch > DENSE_MAX else 0)
    for a, b in zip(results[0][:3], results[DENSE_MAX][:3]):
        assert (a - b).abs().max() < 1e-10 * max(1.0, float(b.detach().abs().max()))
    assert results[DENSE_MAX][0].is_contiguous() and results[DENSE_MAX][2].is_contiguous()
    assert torch.equal(results[DENSE_MAX][0].detach(), results[DENSE_MAX][2])  # with autograd or without
