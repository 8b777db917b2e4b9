"""Model files in the layouts of each official release load, and agree with smplx where smplx reads them.

smplx reads the official chumpy pickles only with chumpy installed (it unpickles them for real); for those
it is given a plain-numpy pickle of the same arrays, so the comparison still checks what we read from the
chumpy/scipy/Python-2 layout against an independent implementation.
"""

import pickle
import pickletools

import numpy as np
import pytest
import smplx
import torch

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.model_io import load_model_file, restricted_unpickle
from official_layouts import OldScipyCsc, Py2Pickler, py2_pickle, write_release

TOL = {torch.float32: 1e-5, torch.float64: 1e-6}
# release -> (smplx class, file name smplx looks for, whether smplx can read the release file itself)
RELEASES = {
    "smpl_v1.0.0_pkl": ("smpl", "SMPL_NEUTRAL.pkl", False),
    "smpl_v1.1.0_pkl": ("smpl", "SMPL_NEUTRAL.pkl", False),
    "smplh_mano_pkl": ("smplh", "SMPLH_FEMALE.pkl", False),
    "smplh_amass_npz": ("smplh", "SMPLH_MALE.npz", True),
    "mano_pkl": ("mano", "MANO_RIGHT.pkl", False),
    "smplx_2019_npz": ("smplx", "SMPLX_NEUTRAL.npz", True),
    "smplx_2019_pkl": ("smplx", "SMPLX_NEUTRAL.pkl", True),
    "smplx_2020_npz": ("smplx", "SMPLX_NEUTRAL.npz", True),
}


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("official_layouts")
    cache = {}

    def get(release):
        if release not in cache:
            model_type, name, _ = RELEASES[release]
            path = root / release / name
            cache[release] = path, write_release(path, release, seed=len(cache))
        return cache[release]

    return get


def _smplx_model(model_type, path, ext, dtype, num_betas, num_expr):
    common = dict(batch_size=1, dtype=dtype)
    if model_type == "smpl":
        return smplx.SMPL(str(path), num_betas=num_betas, **common)
    if model_type == "smplh":
        return smplx.SMPLH(str(path), ext=ext, num_betas=num_betas, use_pca=False, flat_hand_mean=True, **common)
    if model_type == "mano":
        return smplx.MANO(str(path), ext=ext, is_rhand=True, use_pca=False, flat_hand_mean=True, **common)
    return smplx.SMPLX(str(path), ext=ext, num_betas=num_betas, num_expression_coeffs=num_expr, use_pca=False,
                       flat_hand_mean=True, **common)


def _inputs(model_type, num_betas, num_expr, dtype, seed=0, batch=4):
    g = torch.Generator().manual_seed(seed)

    def r(width, scale):
        return (torch.randn(batch, width, generator=g, dtype=torch.float64) * scale).to(dtype)

    x = dict(root_orient=r(3, 1.0), betas=r(num_betas, 1.0), trans=r(3, 0.5),
             pose_hand=r({"smpl": 6, "mano": 45}.get(model_type, 90), 0.5))
    if model_type != "mano":
        x["pose_body"] = r(63, 0.5)
    if model_type == "smplx":
        x.update(pose_jaw=r(3, 0.3), pose_eye=r(6, 0.3), expression=r(num_expr, 1.0))
    return x


def _smplx_forward(ref, model_type, x):
    kw = dict(global_orient=x["root_orient"], betas=x["betas"], transl=x["trans"])
    if model_type == "smpl":
        return ref(body_pose=torch.cat([x["pose_body"], x["pose_hand"]], 1), **kw)
    if model_type == "mano":
        return ref(hand_pose=x["pose_hand"], **kw)
    kw.update(body_pose=x["pose_body"], left_hand_pose=x["pose_hand"][:, :45], right_hand_pose=x["pose_hand"][:, 45:])
    if model_type == "smplx":
        kw.update(jaw_pose=x["pose_jaw"], leye_pose=x["pose_eye"][:, :3], reye_pose=x["pose_eye"][:, 3:],
                  expression=x["expression"])
    return ref(**kw)


@pytest.mark.parametrize("release", list(RELEASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_release_layout_loads_and_matches_smplx(release, dtype, release_files, tmp_path):
    model_type, name, smplx_reads_it = RELEASES[release]
    path, arrays = release_files(release)
    ext = path.suffix[1:]
    num_betas = 16 if release == "smplx_2020_npz" else 10
    num_expr = 10 if model_type == "smplx" else 0
    ours = BodyModel(path, num_betas=num_betas, num_expressions=num_expr or 10, dtype=dtype)
    if smplx_reads_it:
        ref_path = path
    else:  # the same arrays as a plain-numpy pickle, which smplx reads without chumpy
        ref_path = tmp_path / name
        ref_path.write_bytes(pickle.dumps(arrays, protocol=2))
    ref = _smplx_model(model_type, ref_path, ext, dtype, num_betas, num_expr)
    x = _inputs(model_type, num_betas, num_expr, dtype, seed=hash(release) % 1000)
    with torch.no_grad():
        out, expected = ours(**x), _smplx_forward(ref, model_type, x)
    np.testing.assert_allclose(out.v.numpy(), expected.vertices.numpy(), atol=TOL[dtype], rtol=0)
    np.testing.assert_allclose(out.Jtr.numpy(), expected.joints[:, :ours.num_joints].numpy(), atol=TOL[dtype], rtol=0)


def test_chumpy_pickle_is_what_python2_wrote(release_files):
    """The SMPL v1.0.0 layout is a protocol-2 pickle with Python 2 globals and chumpy's full state, which
    Python 3's own unpickler cannot read without chumpy; ours reads it and keeps the chumpy values."""
    path, arrays = release_files("smpl_v1.0.0_pkl")
    raw = path.read_bytes()
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert raw[:2] == b"\x80\x02" and {"SHORT_BINSTRING", "BINSTRING", "NEWOBJ", "BUILD"} <= ops
    for marker in (b"c__builtin__\nset\n", b"cchumpy.ch\nCh\n", b"cscipy.sparse.csc\ncsc_matrix\n",
                   b"cnumpy.core.multiarray\n_reconstruct\n", b"_dirty_vars", b"_depends_on_deps", b"_make_sparse"):
        assert marker in raw
    with pytest.raises(ModuleNotFoundError, match="chumpy"):
        pickle.loads(raw, encoding="latin1")
    data = load_model_file(path)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J_regressor"):
        np.testing.assert_array_equal(data[key], arrays[key])
    assert data["bs_style"] == "lbs" and data["kintree_table"][0, 0] == 2 ** 32 - 1


def test_object_members_of_official_npz_read_without_allow_pickle(release_files):
    path, _ = release_files("smplx_2019_npz")
    data = load_model_file(path)
    expected = np.load(path, allow_pickle=True)
    assert data["joint2num"].item() == expected["joint2num"].item()
    assert data["joint2num"].item()["right_thumb3"] == 54
    assert data["part2num"].item() == expected["part2num"].item()


def test_python2_names_are_mapped_without_widening_the_allowlist():
    # protocol 1 new-style object: copy_reg._reconstructor(chumpy.ch.Ch, __builtin__.object, None)
    p = Py2Pickler()
    p.out.write(b"ccopy_reg\n_reconstructor\n(cchumpy.ch\nCh\nc__builtin__\nobject\nNtR")
    p.save({"x": np.arange(3.0)})
    p.out.write(b"b.")
    obj = restricted_unpickle(p.out.getvalue())
    assert obj.source == "chumpy.ch.Ch" and obj.state["x"].tolist() == [0, 1, 2]
    for module, name in (("__builtin__", "eval"), ("__builtin__", "getattr"), ("copy_reg", "__newobj__"),
                         ("__builtin__", "file"), ("exceptions", "Exception"), ("os", "system")):
        with pytest.raises(pickle.UnpicklingError, match=f"refusing to load global {module}.{name}"):
            restricted_unpickle(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b".")


def _sparse_pickle(module, cls, state):
    p = Py2Pickler()
    p.out.write(b"\x80\x02")
    p.save_newobj(module, cls, state)
    p.out.write(b".")
    return p.out.getvalue()


def test_sparse_matrices_of_old_and_new_scipy(tmp_path):
    import scipy
    import scipy.sparse as sp

    base = write_release(tmp_path / "m.pkl", "mano_pkl", num_verts=80)
    dense = base["J_regressor"]
    variants = {"old csc": OldScipyCsc(dense)}
    for name, make in (("csc_matrix", sp.csc_matrix), ("csr_matrix", sp.csr_matrix), ("coo_matrix", sp.coo_matrix),
                       ("csc_array", getattr(sp, "csc_array", None)), ("coo_array", getattr(sp, "coo_array", None))):
        if make is not None:
            variants[f"scipy {scipy.__version__} {name}"] = make(dense)
    coo = sp.coo_matrix(dense)
    old_coo = {"_shape": dense.shape, "maxprint": 50, "format": "coo", "row": coo.row.astype(np.int32),
               "col": coo.col.astype(np.int32), "data": coo.data, "has_canonical_format": False}
    for label, value in variants.items():
        data = dict(base, J_regressor=value)
        path = tmp_path / "sparse.pkl"
        if isinstance(value, OldScipyCsc):
            path.write_bytes(py2_pickle({k: value if k == "J_regressor" else v for k, v in data.items()}))
        else:
            path.write_bytes(pickle.dumps(data, protocol=2))
        np.testing.assert_array_equal(load_model_file(path)["J_regressor"], dense, err_msg=label)
    obj = restricted_unpickle(_sparse_pickle("scipy.sparse.coo", "coo_matrix", old_coo))
    from human_body_prior.body_model.model_io import _sparse_to_dense
    np.testing.assert_array_equal(_sparse_to_dense(obj, "f", "k", 2 ** 24), dense)
    if "coords" in sp.coo_matrix(dense).__dict__:  # scipy >= 1.13 writes coords instead of row/col
        assert b"coords" in pickle.dumps(sp.coo_matrix(dense))


def test_dmpl_layout_adds_soft_tissue_linearly(tmp_path, release_files):
    path, _ = release_files("smplh_amass_npz")
    dmpl = tmp_path / "dmpls" / "model.npz"
    eig = write_release(dmpl, "dmpl_amass_npz")["eigvec"]
    bm = BodyModel(path, num_betas=16, num_dmpls=8, path_dmpl=dmpl, dtype=torch.float64)
    d = torch.randn(2, 8, dtype=torch.float64)
    with torch.no_grad():
        delta = bm(dmpls=d).v - bm(dmpls=torch.zeros(2, 8, dtype=torch.float64)).v
    np.testing.assert_allclose(delta.numpy(), np.einsum("vck,bk->bvc", eig, d.numpy()), atol=1e-10)


def test_amass_layout_is_found_by_the_default_path(tmp_path, monkeypatch):
    """AMASS ships body models as body_models/<type>/<gender>/model.npz; default_body_model_path found only
    the official names (a FileNotFoundError) (issue 24)."""
    from human_body_prior import default_body_model_path
    from human_body_prior.body_model.body_model import BodyModel

    amass = tmp_path / "body_models" / "smplx" / "neutral" / "model.npz"
    amass.parent.mkdir(parents=True)
    write_release(amass, "smplx_2019_npz", num_verts=400)
    monkeypatch.setenv("HUMAN_BODY_PRIOR_SUPPORT_DATA", str(tmp_path))
    assert default_body_model_path("smplx", "neutral") == str(amass)
    assert BodyModel(default_body_model_path()).v_template.shape == (400, 3)
    with pytest.raises(FileNotFoundError, match=r"SMPLX_MALE.npz is missing \(nor is AMASS's .*male/model.npz"):
        default_body_model_path("smplx", "male")
    official = tmp_path / "body_models" / "smplx" / "SMPLX_NEUTRAL.npz"
    write_release(official, "smplx_2019_npz", num_verts=300)
    assert default_body_model_path() == str(official)  # the official name first
