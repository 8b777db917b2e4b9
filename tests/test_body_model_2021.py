"""BodyModel's 2021 (v2) keywords, attributes and forward arguments, beside the 2019 ones."""

import pickle

import numpy as np
import pytest
import smplx.lbs
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.body_model.body_model import BodyModel


@pytest.fixture(scope="module")
def dmpl_file(tmp_path_factory):
    """A DMPL file as AMASS ships it: dmpls/<gender>/model.npz with eigvec (6890, 3, 8)."""
    path = tmp_path_factory.mktemp("amass") / "dmpls" / "male" / "model.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, eigvec=np.random.default_rng(0).normal(scale=0.01, size=(6890, 3, 8)).astype(np.float32))
    return path


def test_2021_keywords_and_positional_orders(small_smplx):
    bm = BodyModel(bm_fname=small_smplx, num_betas=10, num_expressions=None, use_posedirs=True, model_type="smplx",
                   dtype=torch.float64, persistant_buffer=False)
    assert bm.num_betas == 10 and bm.num_expressions == 10 and bm.model_type == "smplx"
    assert BodyModel(small_smplx, 8).num_betas == 8  # 2021: num_betas second
    assert BodyModel(small_smplx, "smplx").model_type == "smplx"  # 2019: model_type second (the seed's call)
    legacy = BodyModel(small_smplx, "smplx", None, 6, 3)  # 2019 order: params, num_betas, batch_size
    assert legacy.num_betas == 6 and legacy.batch_size == 3
    assert BodyModel(bm_path=small_smplx, batch_size=2).betas.shape == (2, 10)
    np.testing.assert_allclose(bm(return_dict=True)["v"].detach().numpy(),
                               BodyModel(small_smplx, dtype=torch.float64)().v.detach().numpy())


def test_both_spellings_and_unknown_keywords_are_errors(small_smplx, dmpl_file):
    with pytest.raises(TypeError, match="both bm_fname= and bm_path="):
        BodyModel(bm_fname=small_smplx, bm_path=small_smplx)
    with pytest.raises(TypeError, match="both bm_fname= and bm_path="):
        BodyModel(small_smplx, bm_path=small_smplx)
    with pytest.raises(TypeError, match="both dmpl_fname= and path_dmpl="):
        BodyModel(small_smplx, num_dmpls=8, dmpl_fname=dmpl_file, path_dmpl=dmpl_file)
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_beta'"):
        BodyModel(small_smplx, num_beta=10)
    with pytest.raises(TypeError, match="needs the model file"):
        BodyModel(num_betas=10)
    with pytest.raises(TypeError, match=r"unexpected arguments \['pose_bdy'\]"):
        BodyModel(small_smplx)(pose_bdy=torch.zeros(1, 63))


def test_fractional_sizes_are_refused(small_smplx):
    """(negative sizes and zero batches: tests/test_bad_inputs_fitting.py)"""
    with pytest.raises(ValueError, match="num_betas must be an integer"):
        BodyModel(small_smplx, num_betas=2.5)
    with pytest.raises(ValueError, match="num_expressions must be an integer >= 0, got -2"):
        BodyModel(small_smplx, num_expressions=-2)


def test_attributes_v2_code_reads(small_smplx):
    bm = BodyModel(bm_fname=small_smplx, num_betas=10)
    data = np.load(small_smplx)
    kt = bm.kintree_table
    assert kt.shape == (2, 55) and kt.dtype == torch.int64
    assert kt[0, 0] == -1 and kt[0, 1:].tolist() == data["kintree_table"][0, 1:].tolist()
    assert kt[0].long().tolist() == [-1] + bm.parents[1:]
    np.testing.assert_array_equal(bm.f.numpy(), data["f"])
    assert bm.num_betas == 10 and bm.r().shape == (1, 500, 3)
    out = bm()
    assert {"v", "f", "Jtr", "full_pose"} <= set(out) and out.full_pose.shape == (1, 165)
    # persistant_buffer: False keeps the model arrays out of state_dict (upstream's default), True puts them in
    assert set(bm.state_dict()) == {name for name, _ in bm.named_parameters()}
    full = BodyModel(small_smplx, persistant_buffer=True).state_dict()
    assert {"v_template", "shapedirs", "J_regressor", "weights", "f", "kintree_table"} <= set(full)
    assert bm.to(torch.float64).kintree_table.dtype == torch.int64


def test_joints_and_v_shaped_are_honoured(small_smplx):
    """Against smplx's own chain (batch_rigid_transform) and lbs, on the same overrides."""
    bm = BodyModel(small_smplx, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(3, 63, generator=g, dtype=torch.float64) * 0.4
    root = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.4
    rest = torch.randn(3, 55, 3, generator=g, dtype=torch.float64) * 0.3
    parents = torch.tensor(bm.parents)

    out = bm(pose_body=pose, root_orient=root, joints=rest)
    rot = torch.tensor(Rotation.from_rotvec(out.full_pose.detach().reshape(-1, 3).numpy()).as_matrix()).reshape(3, 55, 3, 3)
    posed_ref, _ = smplx.lbs.batch_rigid_transform(rot, rest, parents, dtype=torch.float64)
    np.testing.assert_allclose(out.Jtr.detach().numpy(), posed_ref.numpy(), atol=1e-10)
    # zero pose: the posed joints are the given rest joints (one set for the whole batch)
    np.testing.assert_allclose(bm(joints=rest[0]).Jtr[0].detach().numpy(), rest[0].numpy(), atol=1e-12)

    # v_shaped: the shaped rest mesh; betas are ignored (smplx's lbs with zero betas on that mesh)
    betas = torch.randn(3, 10, generator=g, dtype=torch.float64)
    v_shaped = (bm.v_template + torch.einsum("bk,vck->bvc", betas, bm.shapedirs[..., :10])).detach()
    mine = bm(pose_body=pose, root_orient=root, v_shaped=v_shaped, betas=5 * betas)
    with torch.no_grad():
        ref_v, ref_j = smplx.lbs.lbs(torch.zeros(3, 10, dtype=torch.float64), rot, v_shaped, bm.shapedirs[..., :10],
                                     bm.posedirs, bm.J_regressor, parents, bm.weights, pose2rot=False)
    np.testing.assert_allclose(mine.v.detach().numpy(), ref_v.numpy(), atol=1e-10)
    np.testing.assert_allclose(mine.Jtr.detach().numpy(), ref_j.numpy(), atol=1e-10)
    assert not np.allclose(mine.v.detach().numpy(), bm(pose_body=pose, root_orient=root).v.detach().numpy(), atol=1e-3)
    with pytest.raises(ValueError, match=r"v_shaped must have shape \(500, 3\)"):
        bm(v_shaped=torch.zeros(400, 3))
    with pytest.raises(ValueError, match=r"joints must have shape \(55, 3\)"):
        bm(joints=torch.zeros(3, 54, 3))
    with pytest.raises(ValueError, match="v_template or v_shaped, not both"):
        bm(v_shaped=v_shaped, v_template=v_shaped)


def test_amass_dmpls_from_either_keyword(model_files, dmpl_file):
    eigvec = np.load(dmpl_file)["eigvec"].astype(np.float64)
    d = torch.tensor(np.random.default_rng(1).normal(size=(2, 8)))
    for kw in (dict(dmpl_fname=dmpl_file), dict(path_dmpl=dmpl_file)):
        bm = BodyModel(bm_fname=model_files["smplh"], num_betas=16, num_dmpls=8, dtype=torch.float64, **kw)
        assert bm.num_dmpls == 8 and bm.use_dmpl
        delta = bm(dmpls=d).v - bm(dmpls=torch.zeros(2, 8, dtype=torch.float64)).v
        np.testing.assert_allclose(delta.detach().numpy(), np.einsum("bk,vck->bvc", d.numpy(), eigvec), atol=1e-10)
    assert BodyModel(model_files["smplh"], num_dmpls=4, dmpl_fname=dmpl_file).dmpls.shape == (1, 4)
    with pytest.raises(ValueError, match="without dmpl_fname"):
        BodyModel(model_files["smplh"], num_dmpls=8)


def test_bad_dmpl_files_get_the_model_file_errors(model_files, tmp_path):
    smplh = model_files["smplh"]
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        BodyModel(smplh, num_dmpls=8, dmpl_fname=tmp_path / "nowhere.npz")
    odd = tmp_path / "model.obj"
    odd.write_text("v 0 0 0\n")
    with pytest.raises(ValueError, match="unknown body model file extension"):
        BodyModel(smplh, num_dmpls=8, dmpl_fname=odd)
    no_key = tmp_path / "nokey.npz"
    np.savez(no_key, eigvecs=np.zeros((6890, 3, 8)))
    with pytest.raises(ValueError, match=r"nokey.npz: missing key\(s\) \['eigvec'\]"):
        BodyModel(smplh, num_dmpls=8, dmpl_fname=no_key)
    short = tmp_path / "short.npz"
    np.savez(short, eigvec=np.zeros((6890, 3, 4)))
    with pytest.raises(ValueError, match=r"short.npz: eigvec must have shape \(6890, 3, >=8\)"):
        BodyModel(smplh, num_dmpls=8, dmpl_fname=short)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"eigvec": Evil()}))
    with pytest.raises(ValueError, match="refusing to load global builtins.print"):
        BodyModel(smplh, num_dmpls=8, dmpl_fname=evil)


# ---------------------------------------------------------------------------------------------- issue 24
def test_seed_era_positional_order_params_second(small_smplx):
    """The 2019 seed signature: BodyModel(bm_path, params=None, num_betas=10, batch_size=1, v_template=None,
    ...): a None or dict second argument is params, told apart from 2021's BodyModel(bm_fname, 16)."""
    bm = BodyModel(small_smplx, None, 10, 2)
    assert bm.num_betas == 10 and bm.batch_size == 2 and bm.betas.shape == (2, 10)
    trans = torch.tensor([[0.1, 0.2, 0.3]])
    with_params = BodyModel(small_smplx, {"trans": trans}, 4, 3)
    assert with_params.num_betas == 4 and torch.equal(with_params.trans.data, trans.expand(3, 3))
    assert BodyModel(small_smplx, 8).num_betas == 8  # 2021 order unchanged


def test_seed_era_v_template_replaces_the_template(small_smplx):
    """v_template= (positional 5th in the seed order, or a keyword as MOJO/LEMO-era code passes it): a
    custom template, from which the joints are regressed."""
    ref = BodyModel(small_smplx, dtype=torch.float64)
    custom = ref.v_template * 1.1 + 0.05
    for bm in (BodyModel(small_smplx, v_template=custom.numpy(), dtype=torch.float64),
               BodyModel(small_smplx, None, 10, 1, custom, dtype=torch.float64)):
        assert torch.equal(bm.v_template, custom)
        pose = torch.full((1, 63), 0.2, dtype=torch.float64)
        expected = ref(pose_body=pose, v_template=custom)  # the per-call override, tested against smplx
        got = bm(pose_body=pose)
        assert (got.v - expected.v).abs().max() < 1e-12 and (got.Jtr - expected.Jtr).abs().max() < 1e-12


def test_init_v_template_buffer_of_2021_code(small_smplx):
    bm = BodyModel(bm_fname=small_smplx)
    assert bm.init_v_template.shape == (1, 500, 3)
    assert torch.equal(bm.init_v_template[0], bm.v_template)
    assert torch.equal(bm.init_v_template.expand(2, -1, -1)[1], torch.as_tensor(np.load(small_smplx)["v_template"]))
