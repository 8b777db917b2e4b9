"""The two paths that make joint fitting fast, checked against the plain computations they replace:

- BodyModel defers the mesh: ``out.v`` is computed on first use, equal bit for bit to lbs() computing
  everything at once, under the grad mode of the call; ``Jtr`` alone never computes it.
- BodyModel chains only the joints that can move when the other pose parts are known to be at rest (not
  given, stored at zero, not optimised): the others follow their nearest moving ancestor rigidly, which
  equals chaining them to float rounding, values and gradients. Their pose correctives, whose features
  are exactly zero, are not read.
- batched_lbfgs with rows=True evaluates a trial step for the frames still searching only: per-frame
  minima of separable problems are those of the whole-batch search (and of the analytic solution),
  with fewer frame evaluations; a loss that cannot take a subset falls back to the whole batch.
"""

import pickle

import pytest
import torch

from human_body_prior.body_model import body_model as body_model_module
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.lbs import lbs
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.fitting.batched_lbfgs import batched_lbfgs


@pytest.fixture(scope="module")
def bm(tmp_path_factory):
    path = write_synthetic_model(tmp_path_factory.mktemp("defer") / "SMPLX_SYN.npz", "smplx", num_verts=300,
                                 num_shape_columns=20, seed=4)
    return BodyModel(str(path), dtype=torch.float64)


def _inputs(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(root_orient=0.3 * torch.randn(B, 3, generator=g, dtype=torch.float64),
                pose_body=0.3 * torch.randn(B, 63, generator=g, dtype=torch.float64),
                betas=torch.randn(B, 10, generator=g, dtype=torch.float64),
                trans=torch.randn(B, 3, generator=g, dtype=torch.float64))


def _eager(bm, p):
    """The mesh and joints as lbs() computes them in one go, from the same inputs."""
    out = bm(**p, return_dict=True)
    sparse = bm._sparse_weights() if bm.sparse_skinning else None
    shape = torch.cat([p["betas"], torch.zeros(len(p["betas"]), bm.shapedirs.shape[-1] - 10, dtype=torch.float64)], 1)
    v, j = lbs(out["full_pose"], shape, bm.v_template, bm.shapedirs, bm.posedirs, bm.J_regressor, bm.weights,
               bm._tree, bm.J_template, bm.J_shapedirs, sparse_weights=sparse)
    return v + p["trans"][:, None], j + p["trans"][:, None]


def test_deferred_mesh_equals_computing_everything_at_once(bm):
    p = _inputs()
    out = bm(**p)
    v, j = _eager(bm, p)
    assert torch.equal(out.Jtr, j) and torch.equal(out.v, v) and torch.equal(out["v"], v)
    assert out.v is out.v  # computed once


def test_reading_only_the_joints_never_computes_the_mesh(bm, monkeypatch):
    calls = []
    real = body_model_module.posed_mesh
    monkeypatch.setattr(body_model_module, "posed_mesh", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = bm(**_inputs())
    out.Jtr.sum()
    assert "v" in out and len(out) == len(dict(out)) and calls == [1]  # dict(out) settled it
    out2 = bm(**_inputs(seed=1))
    out2.Jtr.sum()
    assert calls == [1]
    assert {**out2}.keys() >= {"v", "Jtr", "f", "full_pose"} and calls == [1, 1]


def test_deferred_mesh_keeps_the_grad_mode_of_the_call(bm):
    p = {k: v.clone().requires_grad_(True) for k, v in _inputs().items()}
    with torch.no_grad():
        out = bm(**p)
    assert not out.v.requires_grad
    out = bm(**p)
    with torch.no_grad():
        v = out.v
    assert v.requires_grad  # recorded as the call was, whenever it is read
    v.sum().backward()
    assert p["pose_body"].grad is not None and torch.isfinite(p["pose_body"].grad).all()


def test_deferred_mesh_uses_the_translation_of_the_call(bm):
    """An optimiser stepping the model's stored translation before v is read does not move that v."""
    bm.trans.data.zero_()
    out = bm(pose_body=_inputs(B=1)["pose_body"])
    v_now = _eager(bm, {**_inputs(B=1), "root_orient": bm.root_orient.detach(), "trans": bm.trans.detach().clone(),
                        "betas": bm.betas.detach()[:, :10]})[0]
    bm.trans.data.add_(1.0)
    try:
        torch.testing.assert_close(out.v, v_now, rtol=0, atol=0)
    finally:
        bm.trans.data.zero_()


def test_output_pickles_and_compares_as_a_dict(bm):
    out = bm(**_inputs())
    back = pickle.loads(pickle.dumps(out))
    assert set(back) == set(dict(out)) and torch.equal(back["v"], out.v)
    assert out == dict(out) and out.get("v") is out.v and out.get("nothing", 7) == 7
    with pytest.raises(AttributeError, match="nothing"):
        out.nothing


# ------------------------------------------------------------------ joints at rest hang from their anchors
def test_parts_at_rest_hang_rigidly_from_the_moving_joints(tmp_path):
    path = write_synthetic_model(tmp_path / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=5)
    frozen = BodyModel(str(path), dtype=torch.float64).requires_grad_(False)
    p = {k: v.requires_grad_(True) for k, v in _inputs(B=4, seed=3).items()}
    out = frozen(**p)
    assert frozen._moving and all(m is not None and len(m.index) == 22 for m in frozen._moving.values())
    v_ref, j_ref = _eager(frozen, p)  # every joint chained
    torch.testing.assert_close(out.Jtr, j_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.v, v_ref, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((out.Jtr ** 2).sum() + (out.v ** 2).sum(), list(p.values()))
    grads_ref = torch.autograd.grad((j_ref ** 2).sum() + (v_ref ** 2).sum(), list(p.values()))
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
    # a finger joint keeps its rest offset to the wrist, turned by the wrist's world rotation
    rest = frozen.J_template + torch.einsum("jck,bk->bjc", frozen.J_shapedirs[..., :10], p["betas"])
    wrist, finger = 20, 25  # left wrist; the first left-hand joint hangs from it
    turned = (out.Jtr[:, finger] - out.Jtr[:, wrist]).norm(dim=-1)
    torch.testing.assert_close(turned, (rest[:, finger] - rest[:, wrist]).norm(dim=-1), rtol=0, atol=1e-12)


def test_parts_that_may_move_are_chained(tmp_path):
    path = write_synthetic_model(tmp_path / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=5)
    p = _inputs(B=2, seed=4)
    live = BodyModel(str(path), dtype=torch.float64)  # stored parameters are optimisable: all chained
    live(**p)
    assert not live._moving
    with torch.no_grad():  # unless no gradient is taken
        live(**p)
    assert list(live._moving) == [frozenset({"pose_eye", "pose_jaw", "pose_hand"})]
    frozen = BodyModel(str(path), dtype=torch.float64).requires_grad_(False)
    frozen(**p, pose_hand=torch.zeros(2, 90, dtype=torch.float64))  # given: may move
    frozen.pose_jaw.data[:] = 0.2  # stored but not zero
    frozen(**p)
    assert set(frozen._moving) == {frozenset({"pose_eye", "pose_jaw"}), frozenset({"pose_eye", "pose_hand"})}
    assert all(len(m.index) == n for m, n in zip(frozen._moving.values(), (52, 23)))
    old = pickle.loads(pickle.dumps(frozen))
    del old.__dict__["_moving"]  # a module pickled before the cache existed still poses
    torch.testing.assert_close(old(**p).Jtr, frozen(**p).Jtr, rtol=0, atol=0)


@pytest.mark.parametrize("sparse", [True, False])
def test_correctives_of_joints_at_rest_are_not_read(tmp_path, sparse):
    path = write_synthetic_model(tmp_path / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=6)
    frozen = BodyModel(str(path), dtype=torch.float64).requires_grad_(False)
    frozen.sparse_skinning = sparse
    p = {k: v.requires_grad_(True) for k, v in _inputs(B=3, seed=5).items()}
    hands = dict(p, pose_hand=0.3 * torch.randn(3, 90, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    v_ref, _ = _eager(frozen, p)  # every joint chained, every corrective read
    v_hands_ref, _ = _eager(frozen, hands)
    grads_ref = torch.autograd.grad((v_ref ** 2).sum(), list(p.values()))
    clean = frozen.posedirs.clone()
    frozen.posedirs[9 * 21:] = float("nan")  # the rows of jaw, eyes and hands (nine per joint but the root)
    v = frozen(**p).v
    torch.testing.assert_close(v, v_ref, rtol=0, atol=1e-12)
    for g, r in zip(torch.autograd.grad((v ** 2).sum(), list(p.values())), grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(frozen(**p).v, v_ref, rtol=0, atol=1e-12)
        assert frozen(**p, pose_hand=torch.zeros(3, 90, dtype=torch.float64)).v.isnan().any()  # hands may move
        frozen.posedirs[:] = clean
        frozen.posedirs[9 * 21:9 * 24] = float("nan")  # jaw and eyes only: body and hands are two blocks
        torch.testing.assert_close(frozen(**hands).v, v_hands_ref, rtol=0, atol=1e-12)
    frozen.posedirs[:] = clean
    frozen.posedirs[:9] = float("nan")  # a body joint's rows are read
    assert frozen(**p).v.isnan().all(-1).any()


def test_body_only_calls_read_one_copied_block_kept_in_step_with_posedirs(tmp_path):
    """The moving joints' rows are copied into one contiguous block; the copy follows posedirs when it is
    changed in place, replaced or converted, is not pickled, and gradients for posedirs itself still flow."""
    path = write_synthetic_model(tmp_path / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=7)
    frozen = BodyModel(str(path), dtype=torch.float64).requires_grad_(False)
    p = _inputs(B=2, seed=6)
    torch.testing.assert_close(frozen(**p).v, _eager(frozen, p)[0], rtol=0, atol=1e-12)
    joints, dirs = frozen._joint_rows[1]
    assert joints.tolist() == list(range(1, 22)) and dirs.shape == (189, 3 * 300) and dirs.t().is_contiguous()
    assert torch.equal(dirs, frozen.posedirs[:189])
    with torch.no_grad():
        frozen.posedirs.mul_(2.0)  # in place
    torch.testing.assert_close(frozen(**p).v, _eager(frozen, p)[0], rtol=0, atol=1e-12)
    frozen.posedirs = -frozen.posedirs  # replaced
    torch.testing.assert_close(frozen(**p).v, _eager(frozen, p)[0], rtol=0, atol=1e-12)
    v32 = frozen.float()(**{k: v.float() for k, v in p.items()}).v  # converted (in place, as Module.float does)
    assert v32.dtype == frozen._joint_rows[1].dirs.dtype == torch.float32
    torch.testing.assert_close(v32.double(), _eager(frozen.double(), p)[0], rtol=0, atol=1e-5)
    restored = pickle.loads(pickle.dumps(frozen))
    assert "_joint_rows" not in restored.__dict__
    torch.testing.assert_close(restored(**p).v, frozen(**p).v, rtol=0, atol=0)
    frozen.posedirs.requires_grad_(True)  # trained: read in place, so that its gradient flows
    grad, = torch.autograd.grad((frozen(**p).v ** 2).sum(), frozen.posedirs)
    ref, = torch.autograd.grad((_eager(frozen, p)[0] ** 2).sum(), frozen.posedirs)
    torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-12)
    assert grad[:189].abs().sum() > 0 and not grad[189:].any()  # the hands and face did not move


# ------------------------------------------------------------------ batched L-BFGS on frame subsets
def _quadratics(B=16, D=5, seed=0):
    """B independent convex quadratics 0.5 (x - c)^T A (x - c) + 0.1 |x|^4-ish terms, of different
    conditioning, so that frames converge after different numbers of steps."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(B, D, D, generator=g, dtype=torch.float64)
    A = M @ M.transpose(1, 2) + torch.diag_embed(torch.logspace(-1, 1, D, dtype=torch.float64)).expand(B, D, D)
    c = torch.randn(B, D, generator=g, dtype=torch.float64)
    return A, c


def test_subset_line_search_finds_the_same_minima_with_fewer_evaluations():
    A, c = _quadratics()
    counts = {}

    def make(name):
        counts[name] = 0

        def func(x, rows=None):
            Ar, cr = (A, c) if rows is None else (A[rows], c[rows])
            counts[name] += len(x)
            r = (x - cr).unsqueeze(-1)
            return 0.5 * (r.transpose(1, 2) @ Ar @ r).reshape(-1)
        return func

    x0 = torch.zeros_like(c)
    x_all, f_all = batched_lbfgs(make("all"), x0, max_iter=60)
    x_sub, f_sub = batched_lbfgs(make("sub"), x0, max_iter=60, rows=True)
    torch.testing.assert_close(x_sub, c, rtol=0, atol=1e-6)  # the analytic minimum
    torch.testing.assert_close(x_sub, x_all, rtol=0, atol=1e-8)
    assert counts["sub"] < counts["all"]


@pytest.mark.parametrize("rows", [False, True])
def test_each_frame_runs_as_if_alone_and_calls_follow_the_slowest_frame(rows):
    """Frames are not kept in step: a batch gives every frame exactly the result of solving it alone
    (a non-convex loss), and takes as many calls as the frame that needs the most evaluations alone (not
    the sum over iterations of each iteration's longest line search)."""
    g = torch.Generator().manual_seed(0)
    B, D = 12, 4
    M = torch.randn(B, D, D, generator=g, dtype=torch.float64)
    A = M @ M.transpose(1, 2) + 0.1 * torch.eye(D, dtype=torch.float64)
    c = torch.randn(B, D, generator=g, dtype=torch.float64)
    x0 = 2 * torch.randn(B, D, generator=g, dtype=torch.float64)

    def loss(Ar, cr, x):
        r = x - cr
        return 0.5 * (r.unsqueeze(1) @ Ar @ r.unsqueeze(-1)).reshape(-1) + (r ** 4).sum(-1) + torch.cos(3 * x).sum(-1)

    alone, evaluations = [], []
    for b in range(B):
        n = [0]

        def one(x, frames=None, b=b, n=n):
            n[0] += 1
            return loss(A[b:b + 1], c[b:b + 1], x)
        alone.append(batched_lbfgs(one, x0[b:b + 1], max_iter=40)[0])
        evaluations.append(n[0])
    calls = [0]

    def batch(x, frames=None):
        calls[0] += 1
        Ar, cr = (A, c) if frames is None else (A[frames], c[frames])
        return loss(Ar, cr, x)

    x, _ = batched_lbfgs(batch if rows else (lambda x: batch(x)), x0, max_iter=40, rows=rows)
    assert torch.equal(x, torch.cat(alone))
    assert calls[0] == max(evaluations) and min(evaluations) < max(evaluations)


def test_a_loss_that_cannot_take_a_subset_falls_back_to_the_whole_batch():
    A, c = _quadratics(B=6)

    def func(x, rows=None):
        if len(x) != len(c):
            raise RuntimeError("this module keeps state of the whole batch")
        r = (x - c).unsqueeze(-1)
        return 0.5 * (r.transpose(1, 2) @ A @ r).reshape(-1)

    x, _ = batched_lbfgs(func, torch.zeros_like(c), max_iter=60, rows=True)
    torch.testing.assert_close(x, c, rtol=0, atol=1e-6)


def test_a_loss_without_a_rows_argument_runs_on_the_whole_batch():
    A, c = _quadratics(B=6, seed=1)
    sizes = []

    def func(x):  # the older one-argument form
        sizes.append(len(x))
        r = (x - c).unsqueeze(-1)
        return 0.5 * (r.transpose(1, 2) @ A @ r).reshape(-1)

    x, _ = batched_lbfgs(func, torch.zeros_like(c), max_iter=60, rows=True)
    torch.testing.assert_close(x, c, rtol=0, atol=1e-6)
    assert set(sizes) == {len(c)}


@pytest.mark.parametrize("rows", [False, True])
def test_a_trial_step_outside_the_domain_steps_back_instead_of_raising(rows):
    """A loss that raises ValueError beyond |x - c| > 1.5 (as a VPoser decoder output that names no rotation
    does after a long latent step), started where L-BFGS's first full steps overshoot (step scale 8):
    every frame still reaches the analytic minimum c, and the subset path stays on."""
    A, c = _quadratics(B=8, seed=2)
    x0 = c + 1.0
    calls, refused = [], []

    def func(x, frames=None):
        Ar, cr = (A, c) if frames is None else (A[frames], c[frames])
        calls.append(len(x))
        if bool(((x - cr).abs() > 1.5).any()):
            refused.append(len(x))
            raise ValueError("6-D input names no rotation")
        r = (x - cr).unsqueeze(-1)
        return 0.5 * (r.transpose(1, 2) @ Ar @ r).reshape(-1)

    x, _ = batched_lbfgs(func if rows else (lambda x: func(x)), x0, max_iter=80, lr=8.0, rows=rows)
    torch.testing.assert_close(x, c, rtol=0, atol=1e-6)
    assert refused, "no trial step left the domain: the test does not test the step back"
    assert not rows or min(calls) < len(c)


def test_a_loss_that_fails_at_the_start_still_raises():
    A, c = _quadratics(B=3)

    def func(x, frames=None):
        raise ValueError("names no rotation")

    with pytest.raises(ValueError, match="names no rotation"):
        batched_lbfgs(func, torch.zeros_like(c), max_iter=5, rows=True)


# ------------------------------------------------------------------ skinning without autograd, in chunks
def test_skinning_in_chunks_equals_the_autograd_path_bit_for_bit(bm, monkeypatch):
    """Without autograd the sparse skinning runs a few vertices at a time (here 7 per chunk, so that
    chunk edges fall inside vertices' weight lists); the result is the autograd path's exactly."""
    from human_body_prior.body_model import lbs as lbs_module

    p = _inputs(B=5, seed=3)  # every pose part given, so that both calls chain every joint; past lbs._DENSE_MAX
    p.update(pose_hand=torch.zeros(5, 90, dtype=torch.float64), pose_jaw=torch.zeros(5, 3, dtype=torch.float64),
             pose_eye=torch.zeros(5, 6, dtype=torch.float64))
    with torch.no_grad():
        chunked = bm(**p).v
    monkeypatch.setattr(lbs_module, "_CHUNK_BYTES", 7 * 12 * 5 * 8)
    with torch.no_grad():
        small_chunks = bm(**p).v
    grad_inputs = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    with_grad = bm(**grad_inputs).v
    assert torch.equal(chunked, with_grad.detach()) and torch.equal(small_chunks, with_grad.detach())
