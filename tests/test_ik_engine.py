"""IK_Engine (fitting/ik_engine.py; upstream path models/ik_engine.py) on the shipped open SMPL-X and VPoser: recovery, batching, and the
upstream defects it fixes (mutable defaults, num_betas mismatch, NaNs from degenerate targets)."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn as nn

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.models.ik_engine import IK_Engine
from human_body_prior.priors.experiment import load_vposer


class SourceJoints(nn.Module):
    """What the upstream joints tutorial's source module does: pose a BodyModel, return its first joints."""

    def __init__(self, bm, n_joints=22):
        super().__init__()
        self.bm, self.n_joints = bm, n_joints

    def forward(self, body_parms):
        body = self.bm(**body_parms)
        return {"source_kpts": body.Jtr[:, :self.n_joints], "body": body}


@pytest.fixture(scope="module")
def bm():
    return BodyModel(bm_fname=hbp.default_body_model_path("smplx", "neutral"), num_betas=10)


@pytest.fixture(scope="module")
def targets(bm):
    """Joints of 4 plausible poses (decoded from the shipped prior) with random orientation and place."""
    vp, _ = load_vposer(hbp.default_vposer_dir(), verbose=False)
    pose = vp.sample_poses(4, seed=3).reshape(4, 63)
    g = torch.Generator().manual_seed(0)
    root = torch.randn(4, 3, generator=g) * 0.8
    trans = torch.randn(4, 3, generator=g) * 0.5
    with torch.no_grad():
        return bm(pose_body=pose, root_orient=root, trans=trans).Jtr[:, :22].clone()


def _engine(**kw):
    args = dict(data_loss=nn.MSELoss(reduction="sum"), stepwise_weights=[{"data": 10.0, "poZ_body": 0.01, "betas": 0.5}],
                optimizer_args={"type": "LBFGS", "max_iter": 300, "history_size": 20}, verbosity=0)
    args.update(kw)
    return IK_Engine(**args)


def test_recovers_joints_batched(bm, targets):
    ik = _engine()
    res = ik(SourceJoints(bm), targets)
    assert set(res) >= {"pose_body", "root_orient", "trans", "betas", "poZ_body", "data_loss"}
    assert res["pose_body"].shape == (4, 63) and res["betas"].shape == (4, 10) and res["poZ_body"].shape == (4, 32)
    with torch.no_grad():
        fitted = bm(**{k: res[k] for k in ("pose_body", "root_orient", "trans", "betas")}).Jtr[:, :22]
    err_mm = (fitted - targets).norm(dim=-1).mean(-1) * 1000
    assert (err_mm < 10).all(), err_mm  # upstream's weights: the prior keeps a few mm
    # frames are independent: one frame alone gives the same fit as inside the batch
    single = ik(SourceJoints(bm), targets[2:3])
    np.testing.assert_allclose(single["trans"].numpy(), res["trans"][2:3].numpy(), atol=2e-3)


def test_the_callers_parameters_are_constants_of_the_fit_only(bm, targets):
    """During the fit the source module's own parameters (the BodyModel's stored poses) are constants, so
    the body model chains only the body joints; afterwards, and after an error, they are as they were."""
    before = {n: p.requires_grad for n, p in bm.named_parameters()}
    seen = []

    class Watching(SourceJoints):
        def forward(self, body_parms):
            seen.append(any(p.requires_grad for p in self.bm.parameters()))
            return super().forward(body_parms)

    _engine(optimizer_args={"type": "LBFGS", "max_iter": 5})(Watching(bm), targets)
    assert {n: p.requires_grad for n, p in bm.named_parameters()} == before and any(before.values())
    # the rigid initialisation before the fit and the final data term after it see them as they were
    fit = "".join("T" if x else "F" for x in seen).strip("T")
    assert fit and set(fit) == {"F"}

    class Failing(SourceJoints):
        def forward(self, body_parms):
            if len(seen) > 3:
                raise RuntimeError("the caller's module failed")
            seen.append(True)
            return super().forward(body_parms)

    seen.clear()
    with pytest.raises(RuntimeError, match="module failed"):
        _engine(optimizer_args={"type": "LBFGS", "max_iter": 5})(Failing(bm), targets)
    assert {n: p.requires_grad for n, p in bm.named_parameters()} == before


def test_adam_and_a_plain_function_loss(bm, targets):
    start = (targets - targets.mean(1, keepdim=True)).norm(dim=-1).mean()
    ik = _engine(optimizer_args={"type": "Adam", "max_iter": 60, "lr": 0.05})
    res = ik(SourceJoints(bm), targets[:2])
    with torch.no_grad():
        err = (bm(**{k: res[k] for k in ("pose_body", "root_orient", "trans", "betas")}).Jtr[:, :22]
               - targets[:2]).norm(dim=-1).mean()
    assert err < 0.5 * start
    # a loss that is not a torch 'sum'/'mean' loss is minimised as one problem
    ik = _engine(data_loss=lambda a, b: ((a - b) ** 2).sum(), optimizer_args={"type": "LBFGS", "max_iter": 60})
    res = ik(SourceJoints(bm), targets[:2])
    assert "data_loss" not in res and torch.isfinite(res["pose_body"]).all()


def test_defaults_are_not_shared_and_inputs_not_mutated(bm, targets):
    assert inspect.signature(IK_Engine.forward).parameters["initial_body_params"].default is None
    for p in inspect.signature(IK_Engine.__init__).parameters.values():
        assert not isinstance(p.default, (dict, list)), p.name
    init = {"pose_body": torch.zeros(1, 63)}
    ik = _engine(optimizer_args={"type": "LBFGS", "max_iter": 5})
    ik(SourceJoints(bm), targets[:1], init)
    assert set(init) == {"pose_body"} and not init["pose_body"].requires_grad
    first = ik(SourceJoints(bm), targets[:1])
    again = ik(SourceJoints(bm), targets[1:2])  # a second call starts from scratch, not from the first's result
    assert not torch.equal(first["trans"], again["trans"])


def test_betas_follow_the_body_model(targets):
    bm16 = BodyModel(hbp.default_body_model_path("smplx", "neutral"), num_betas=16)
    ik = _engine(optimizer_args={"type": "LBFGS", "max_iter": 5})
    assert ik(SourceJoints(bm16), targets[:1])["betas"].shape == (1, 16)
    with pytest.raises(ValueError, match=r"num_betas=10\) but the body model in source_kpts_module has 16"):
        _engine(num_betas=10)(SourceJoints(bm16), targets[:1])


def test_bad_and_degenerate_targets(bm, targets):
    ik = _engine(optimizer_args={"type": "LBFGS", "max_iter": 10})
    bad = targets[:3].clone()
    bad[1, 4, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values in frame\(s\) \[1\]"):
        ik(SourceJoints(bm), bad)
    with pytest.raises(ValueError, match=r"target_kpts must have shape \(B, K, 3\)"):
        ik(SourceJoints(bm), targets[0])
    collapsed = torch.zeros(2, 22, 3)  # every target at one point: upstream's NaN case
    res = ik(SourceJoints(bm), collapsed)
    assert all(torch.isfinite(v).all() for v in res.values())
    with pytest.raises(ValueError, match="unknown keys"):
        _engine(stepwise_weights=[{"data": 1.0, "pose": 1.0}])
    with pytest.raises(ValueError, match="'LBFGS' or 'Adam'"):
        _engine(optimizer_args={"type": "SGD"})
    with pytest.raises(ValueError, match="max_iter'\\] must be an integer >= 1"):
        _engine(optimizer_args={"type": "LBFGS", "max_iter": 0})


def test_v2_vposer_folder(bm, targets):
    pytest.importorskip("human_body_prior.models.vposer_model", reason="the v2 model (#13) is not in this tree")
    from pathlib import Path

    folders = sorted(p.parent for p in Path(hbp.support_data_dir()).glob("*/*.yaml"))
    if not folders:
        pytest.skip("no shipped v2 VPoser folder in this tree yet (#13)")
    ik = _engine(vposer_expr_dir=str(folders[0]), optimizer_args={"type": "LBFGS", "max_iter": 300})
    res = ik(SourceJoints(bm), targets[:2])
    assert res["pose_body"].shape == (2, 63) and res["poZ_body"].shape[0] == 2
    with torch.no_grad():
        fitted = bm(**{k: res[k] for k in ("pose_body", "root_orient", "trans", "betas")}).Jtr[:, :22]
    assert ((fitted - targets[:2]).norm(dim=-1).mean(-1) * 1000 < 20).all()


def test_v2_folder_in_the_official_layout(bm, tmp_path):
    """A V02_05 folder as upstream writes it (random weights of the official layout): IK decodes through
    the v2 model's decode(z)['pose_body'] and reaches poses that model can make."""
    from tests.v2_fixtures import random_v02_weights, write_v02_folder

    from human_body_prior.priors.vposer_v2_io import load_model

    folder = tmp_path / "V02_05"
    write_v02_folder(folder, random_v02_weights(seed=1))
    vp, _ = load_model(str(folder), comp_device="cpu", verbose=False)
    with torch.no_grad():  # near IK's start (the code of the zero pose): random weights make wild poses further out
        z = vp.encode(torch.zeros(2, 63)).mean + 0.2 * torch.randn(2, vp.latentD, generator=torch.Generator().manual_seed(2))
        target = bm(pose_body=vp.decode(z)["pose_body"].reshape(2, 63),
                    trans=torch.tensor([[0.0, 0.2, 1.0]])).Jtr[:, :22]
    ik = _engine(vposer_expr_dir=str(folder), optimizer_args={"type": "LBFGS", "max_iter": 150})
    res = ik(SourceJoints(bm), target)
    assert res["poZ_body"].shape == (2, vp.latentD) and res["pose_body"].shape == (2, 63)
    with torch.no_grad():
        fitted = bm(**{k: res[k] for k in ("pose_body", "root_orient", "trans", "betas")}).Jtr[:, :22]
    err_mm = (fitted - target).norm(dim=-1).mean(-1) * 1000
    assert (err_mm < 20).all(), err_mm
