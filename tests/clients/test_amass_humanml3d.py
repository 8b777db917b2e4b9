"""Client: AMASS's notebooks (notebooks/01-AMASS_Visualization.ipynb, 04-AMASS_DMPL.ipynb) and the
HumanML3D / text-to-motion preprocessing built on them (raw_pose_processing.ipynb).

They build ``BodyModel(bm_fname=..., num_betas=16, num_dmpls=8, dmpl_fname=...)`` per gender from
``body_models/smplh/<gender>/model.npz`` and ``body_models/dmpls/<gender>/model.npz``, read an AMASS
take (poses (T, 156), trans (T, 3), betas (16,), dmpls (T, 8)), pose it with ``bm(**body_parms)`` and
read ``.Jtr``, ``.v`` and ``bm.f`` through ``c2c`` (copy2cpu). Written from the public API, on the
shipped open SMPL-H male model in that folder layout and a DMPL file as AMASS ships it.
"""

import shutil

import numpy as np
import pytest
import torch

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.tools.omni_tools import copy2cpu as c2c


@pytest.fixture(scope="module")
def amass_layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("amass")
    (root / "body_models" / "smplh" / "male").mkdir(parents=True)
    (root / "body_models" / "dmpls" / "male").mkdir(parents=True)
    shutil.copy(hbp.default_body_model_path("smplh", "male"), root / "body_models" / "smplh" / "male" / "model.npz")
    num_verts = np.load(hbp.default_body_model_path("smplh", "male"))["v_template"].shape[0]
    rng = np.random.default_rng(0)
    np.savez(root / "body_models" / "dmpls" / "male" / "model.npz",
             eigvec=rng.normal(scale=0.005, size=(num_verts, 3, 8)).astype(np.float32))
    T = 12
    np.savez(root / "take_poses.npz", poses=rng.normal(scale=0.2, size=(T, 156)), trans=rng.normal(size=(T, 3)),
             betas=rng.normal(scale=0.5, size=16), dmpls=rng.normal(size=(T, 8)), gender=np.array("male"),
             mocap_framerate=np.array(120.0))
    return root


def test_amass_notebook_and_humanml3d_calls(amass_layout):
    comp_device = torch.device("cpu")
    bm_fname = str(amass_layout / "body_models" / "smplh" / "male" / "model.npz")
    dmpl_fname = str(amass_layout / "body_models" / "dmpls" / "male" / "model.npz")
    num_betas, num_dmpls = 16, 8
    bm = BodyModel(bm_fname=bm_fname, num_betas=num_betas, num_dmpls=num_dmpls, dmpl_fname=dmpl_fname).to(comp_device)
    faces = c2c(bm.f)
    assert isinstance(faces, np.ndarray) and faces.shape[1] == 3

    bdata = np.load(str(amass_layout / "take_poses.npz"))
    time_length = len(bdata["trans"])
    body_parms = {
        "root_orient": torch.Tensor(bdata["poses"][:, :3]).to(comp_device),
        "pose_body": torch.Tensor(bdata["poses"][:, 3:66]).to(comp_device),
        "pose_hand": torch.Tensor(bdata["poses"][:, 66:]).to(comp_device),
        "trans": torch.Tensor(bdata["trans"]).to(comp_device),
        "betas": torch.Tensor(np.repeat(bdata["betas"][:num_betas][np.newaxis], repeats=time_length, axis=0)).to(comp_device),
        "dmpls": torch.Tensor(bdata["dmpls"][:, :num_dmpls]).to(comp_device),
    }
    body_pose_beta = bm(**{k: v for k, v in body_parms.items() if k in ["pose_body", "betas"]})
    body_pose_hand = bm(**{k: v for k, v in body_parms.items() if k in ["pose_body", "betas", "pose_hand"]})
    body_dmpls = bm(**{k: v for k, v in body_parms.items() if k in ["pose_body", "betas", "pose_hand", "dmpls"]})
    body_trans_root = bm(**{k: v for k, v in body_parms.items()
                            if k in ["pose_body", "betas", "pose_hand", "dmpls", "trans", "root_orient"]})
    for body in (body_pose_beta, body_pose_hand, body_dmpls, body_trans_root):
        assert c2c(body.v).shape == (time_length, bm.v_template.shape[0], 3)
        assert c2c(body.Jtr).shape == (time_length, 52, 3)
    # DMPLs add soft-tissue offsets: the eigenvectors times the coefficients, per frame
    eigvec = np.load(dmpl_fname)["eigvec"].astype(np.float64)
    rest = BodyModel(bm_fname=bm_fname, num_betas=num_betas, num_dmpls=num_dmpls, dmpl_fname=dmpl_fname)
    delta = rest(dmpls=body_parms["dmpls"]).v - rest(dmpls=torch.zeros_like(body_parms["dmpls"])).v
    np.testing.assert_allclose(c2c(delta), np.einsum("tk,vck->tvc", bdata["dmpls"], eigvec), atol=1e-5)
    assert not np.allclose(c2c(body_dmpls.v), c2c(body_pose_hand.v))

    # HumanML3D's raw_pose_processing: joints of the whole take, then its own root handling on top
    with torch.no_grad():
        body = bm(pose_body=body_parms["pose_body"], pose_hand=body_parms["pose_hand"], betas=body_parms["betas"],
                  root_orient=body_parms["root_orient"])
    pose_seq_np = (body.Jtr + body_parms["trans"].unsqueeze(1)).detach().cpu().numpy()
    with_trans = bm(**{k: v for k, v in body_parms.items() if k != "dmpls"})
    np.testing.assert_allclose(pose_seq_np, c2c(with_trans.Jtr), atol=1e-5)
