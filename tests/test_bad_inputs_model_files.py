"""Bad model files (#16): each gets a clear error naming the file and key, or a named warning for damaged
optional metadata; nothing is dropped silently and nothing large is allocated on the file's word."""

import resource
import warnings

import numpy as np
import pytest

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.model_io import ModelFileError, load_model_file
from official_layouts import npz_member_cut_short, truncated_copy, write_release


@pytest.fixture(scope="module")
def smplx_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad_inputs") / "SMPLX_NEUTRAL.npz"
    write_release(path, "smplx_2019_npz", num_verts=400)
    return path


@pytest.fixture(scope="module")
def smpl_pkl(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad_inputs") / "SMPL_NEUTRAL.pkl"
    write_release(path, "smpl_v1.0.0_pkl", num_verts=300)
    return path


def _variant(smplx_file, tmp_path, name, **changes):
    data = dict(np.load(smplx_file, allow_pickle=True))
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **data)
    return path


def test_damaged_posedirs_is_an_error_not_dropped(smplx_file, tmp_path):
    path = npz_member_cut_short(smplx_file, tmp_path / "short_posedirs.npz", "posedirs")
    with pytest.raises(ModelFileError, match=r"short_posedirs.npz: key 'posedirs' cannot be read.*truncated"):
        BodyModel(path)


def test_damaged_optional_metadata_is_skipped_with_a_warning(smplx_file, tmp_path):
    path = npz_member_cut_short(smplx_file, tmp_path / "short_vt.npz", "vt")
    with pytest.warns(UserWarning, match=r"short_vt.npz: key 'vt' cannot be read.*optional metadata, skipped"):
        data = load_model_file(path)
    assert "vt" not in data and "posedirs" in data


def test_required_key_as_object_array_is_named_as_such(smplx_file, tmp_path):
    v = np.load(smplx_file)["v_template"]
    obj = np.empty(v.shape[0], dtype=object)
    obj[:] = [tuple(row) for row in v]
    path = _variant(smplx_file, tmp_path, "obj.npz", v_template=obj)
    with pytest.raises(ModelFileError, match=r"obj.npz: v_template holds an object array.*expected a numeric"):
        BodyModel(path)


@pytest.mark.parametrize("key,index,value", [("shapedirs", (3, 1, 2), np.nan), ("v_template", (7, 0), np.inf),
                                             ("J_regressor", (2, 5), -np.inf), ("weights", (0, 0), np.nan)])
def test_non_finite_values(smplx_file, tmp_path, key, index, value):
    arr = np.load(smplx_file)[key].copy()
    arr[index] = value
    path = _variant(smplx_file, tmp_path, f"nonfinite_{key}.npz", **{key: arr})
    with pytest.raises(ModelFileError, match=rf"nonfinite_{key}.npz: {key} has 1 non-finite value.*{index}"):
        BodyModel(path)


def test_faces_out_of_range_or_wrong_shape(smplx_file, tmp_path):
    f = np.load(smplx_file)["f"].copy()
    f[10, 1] = 400
    with pytest.raises(ModelFileError, match=r"faces_range.npz: f \(faces\) has indices 0..400 .* 400 vertices"):
        BodyModel(_variant(smplx_file, tmp_path, "faces_range.npz", f=f))
    f[10, 1] = -1
    with pytest.raises(ModelFileError, match=r"faces_neg.npz: f \(faces\) has indices -1"):
        BodyModel(_variant(smplx_file, tmp_path, "faces_neg.npz", f=f))
    with pytest.raises(ModelFileError, match=r"faces_2.npz: f \(faces\) must have shape \(F, 3\), got \(\d+, 2\)"):
        BodyModel(_variant(smplx_file, tmp_path, "faces_2.npz", f=np.load(smplx_file)["f"][:, :2]))


def test_kintree_rows_that_contradict_each_other(smplx_file, tmp_path):
    kt = np.load(smplx_file)["kintree_table"].copy()
    swapped = kt.copy()
    swapped[1, [3, 4]] = swapped[1, [4, 3]]
    with pytest.raises(ModelFileError, match=r"kt_ids.npz: kintree_table row 1 must list the joints 0..54 in order"):
        BodyModel(_variant(smplx_file, tmp_path, "kt_ids.npz", kintree_table=swapped))
    later = kt.copy()
    later[0, 4] = 30
    with pytest.raises(ModelFileError, match=r"kt_parent.npz: kintree_table row 0 gives joint 4 the parent 30"):
        BodyModel(_variant(smplx_file, tmp_path, "kt_parent.npz", kintree_table=later))
    rootless = kt.copy()
    rootless[0, 0] = 3
    with pytest.raises(ModelFileError, match=r"kt_root.npz: kintree_table row 0 must start with the root"):
        BodyModel(_variant(smplx_file, tmp_path, "kt_root.npz", kintree_table=rootless))


def test_posedirs_of_the_wrong_vertex_count(smplx_file, tmp_path):
    pd = np.load(smplx_file)["posedirs"][:-1]
    with pytest.raises(ModelFileError, match=r"pd_verts.npz: posedirs must have shape \(400, 3, K\).*\(399, 3, 486\)"):
        BodyModel(_variant(smplx_file, tmp_path, "pd_verts.npz", posedirs=pd))


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.999])
@pytest.mark.parametrize("kind", ["npz", "pkl"])
def test_truncated_and_empty_files_name_the_file(smplx_file, smpl_pkl, tmp_path, kind, fraction):
    src = smplx_file if kind == "npz" else smpl_pkl
    path = truncated_copy(src, tmp_path / f"cut.{kind}", fraction)
    with pytest.raises(ModelFileError, match=rf"cut.{kind}: .*(empty|truncated|damaged)"):
        BodyModel(path)


def _limit_memory(max_bytes):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, hard))
    return soft, hard


@pytest.mark.parametrize("payload,what", [
    (b"\x80\x03cbuiltins\nbytearray\n\x8a\x05\x00\x00\x00\x80\x00\x85R.", "bytearray"),
    (b"\x80\x03ccopyreg\n_reconstructor\n(cbuiltins\nbytearray\ncbuiltins\nbytearray\n"
     b"\x8a\x05\x00\x00\x00\x80\x00tR.", "_reconstructor"),
    (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05\x00\x00\x00\x80\x00\x85U\x01b\x87R.",
     "_reconstruct"),
    (b"\x80\x02}U\x0bJ_regressorcscipy.sparse.csc\ncsc_matrix\n)\x81}(U\x06_shapeJ\x00\x00\x01\x00J\x00\x00\x01\x00\x86"
     b"U\x04data]U\x06indptr]U\x07indices]ubs.", "sparse"),
])
def test_tiny_pickles_cannot_allocate_gigabytes(tmp_path, payload, what):
    """Each payload asks for >= 2 GiB from a few dozen bytes; with a 1 GiB address-space margin the load
    must fail with a named error, not MemoryError (or a swapping machine)."""
    path = tmp_path / "bomb.pkl"
    path.write_bytes(payload)
    assert len(payload) < 120
    vm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:"))
    old = _limit_memory(vm_kb * 1024 + 2 ** 30)
    try:
        with pytest.raises(ModelFileError, match=r"bomb.pkl: .*(refusing|out of proportion)"):
            load_model_file(path, required=())
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def test_npz_header_claiming_more_than_is_stored(tmp_path):
    import zipfile

    header = {"descr": "<f8", "fortran_order": False, "shape": (10 ** 6, 10 ** 4)}  # 80 GB announced
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("v_template.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(ModelFileError, match=r"huge.npz: key 'v_template' .*header announces"):
        load_model_file(tmp_path / "huge.npz")


def test_disallowed_global_in_an_object_member_is_refused(smplx_file, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("must not run",))

    path = _variant(smplx_file, tmp_path, "evil.npz", part2num=np.array(Evil(), dtype=object))
    with pytest.raises(ModelFileError, match=r"evil.npz: key 'part2num': refusing to load global builtins.print"):
        load_model_file(path)


def test_good_files_load_without_warnings(smplx_file, smpl_pkl):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model_file(smplx_file)
        load_model_file(smpl_pkl)


# ---------------------------------------------------------------------------------------------- issue 24
@pytest.mark.parametrize("scale", [0.0, 0.5])
def test_skinning_weights_whose_rows_do_not_sum_to_one(smplx_file, tmp_path, scale):
    """All-zero weights put every vertex at the origin; half weights shrink the body. Both are refused."""
    weights = np.load(smplx_file)["weights"] * scale
    path = _variant(smplx_file, tmp_path, f"w{scale}.npz", weights=weights)
    with pytest.raises(ModelFileError, match=rf"w{scale}.npz: weights rows must sum to 1.*vertex 0 sums to {scale:g}"):
        BodyModel(path)


def test_weights_within_round_off_of_one_still_load(smplx_file, tmp_path):
    weights = np.load(smplx_file)["weights"].astype(np.float32) * np.float32(1 + 1e-6)
    BodyModel(_variant(smplx_file, tmp_path, "roundoff.npz", weights=weights))


def test_kintree_with_more_joints_than_weight_columns_names_both(smplx_file, tmp_path):
    kintree = np.load(smplx_file)["kintree_table"]
    J = kintree.shape[1]
    longer = np.concatenate([kintree, [[0], [J]]], axis=1)
    path = _variant(smplx_file, tmp_path, "kt.npz", kintree_table=longer)
    with pytest.raises(ModelFileError, match=rf"kt.npz: weights has {J} joint columns .* kintree_table has "
                                             rf"{J + 1} joints; the two must agree"):
        BodyModel(path)


def test_pickled_dtype_with_a_bad_build_state_is_a_damaged_file(tmp_path):
    """numpy raises SystemError for BUILD on a dtype with a state it does not expect."""
    path = tmp_path / "dtype_build.pkl"
    path.write_bytes(b"cnumpy\ndtype\n(VV8\ntRI1\nb.")
    with pytest.raises(ModelFileError, match=r"dtype_build.pkl: not a readable pickle.*SystemError"):
        load_model_file(path)
