"""Client: the upstream joints IK tutorial (tutorials/ik_example_joints.py, human_body_prior 2021).

It defines a ``SourceKeyPoints(nn.Module)`` that builds ``BodyModel(bm, persistant_buffer=False)`` from
a file name and returns ``{'source_kpts': body.Jtr[:, :n_joints], 'body': body}``; the targets are the
22 joints of ``BodyModel(bm_fname)(**{'pose_body': ..., 'root_orient': ..., 'trans': ...})`` for an
AMASS sample; ``IK_Engine(vposer_expr_dir=..., verbosity=2, display_rc=(2, 2), data_loss=MSELoss(reduction='sum'),
stepwise_weights=[{'data': 10., 'poZ_body': .01, 'betas': .5}], optimizer_args={'type': 'LBFGS', 'max_iter': 300,
'lr': 1, 'tolerance_change': 1e-4, 'history_size': 200}).to(comp_device)``, then
``ik_res = ik_engine(source_pts, target_pts, {})``, ``{k: c2c(v) for k, v in ik_res.items()}`` and a NaN check
on ``trans``. Written from the public API with the shipped open SMPL-X and VPoser.
"""

from typing import Union

import numpy as np
import torch
from torch import nn

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.models.ik_engine import IK_Engine
from human_body_prior.tools.omni_tools import copy2cpu as c2c


class SourceKeyPoints(nn.Module):
    def __init__(self, bm: Union[str, BodyModel], n_joints: int = 22, kpts_colors=None):
        super(SourceKeyPoints, self).__init__()
        self.bm = BodyModel(bm, persistant_buffer=False) if isinstance(bm, str) else bm
        self.bm_f = []
        self.n_joints = n_joints
        self.kpts_colors = np.array([[1.0, 0.0, 0.0]] * n_joints) if kpts_colors is None else kpts_colors

    def forward(self, body_parms):
        new_body = self.bm(**body_parms)
        return {"source_kpts": new_body.Jtr[:, :self.n_joints], "body": new_body}


def test_ik_example_joints():
    comp_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    vposer_expr_dir = hbp.default_vposer_dir()
    bm_fname = hbp.default_body_model_path("smplx", "neutral")
    rng = np.random.default_rng(5)
    from human_body_prior.tools.model_loader import load_vposer

    vp, _ = load_vposer(vposer_expr_dir, verbose=False)
    poses = np.zeros((3, 66))
    poses[:, 3:66] = vp.sample_poses(3, seed=11).reshape(3, 63).numpy()
    poses[:, :3] = rng.normal(scale=0.5, size=(3, 3))
    sample_amass = {"poses": poses, "trans": rng.normal(size=(3, 3))}

    n_joints = 22
    data_loss = torch.nn.MSELoss(reduction="sum")
    stepwise_weights = [{"data": 10.0, "poZ_body": 0.01, "betas": 0.5}]
    optimizer_args = {"type": "LBFGS", "max_iter": 300, "lr": 1, "tolerance_change": 1e-4, "history_size": 200}
    ik_engine = IK_Engine(vposer_expr_dir=vposer_expr_dir, verbosity=2, display_rc=(2, 2), data_loss=data_loss,
                          stepwise_weights=stepwise_weights, optimizer_args=optimizer_args).to(comp_device)

    target_bm = BodyModel(bm_fname)(**{
        "pose_body": torch.tensor(sample_amass["poses"][:, 3:66]).type(torch.float),
        "root_orient": torch.tensor(sample_amass["poses"][:, :3]).type(torch.float),
        "trans": torch.tensor(sample_amass["trans"]).type(torch.float)})
    target_pts = target_bm.Jtr[:, :n_joints].detach().to(comp_device)
    source_pts = SourceKeyPoints(bm=bm_fname, n_joints=n_joints).to(comp_device)

    ik_res = ik_engine(source_pts, target_pts, {})
    ik_res_detached = {k: c2c(v) for k, v in ik_res.items()}
    nan_mask = np.isnan(ik_res_detached["trans"]).sum(-1) != 0
    if nan_mask.sum() != 0:
        raise ValueError("Sum results were NaN!")

    fitted = source_pts({k: ik_res[k] for k in ("pose_body", "root_orient", "trans", "betas")})["source_kpts"]
    err_mm = (fitted - target_pts).norm(dim=-1).mean(-1) * 1000
    assert (err_mm < 10).all(), err_mm
