"""smplx's stock keypoint vertex ids land on the matching anatomy of the shipped open models, and the
vertex reorder that puts them there changes no posed surface point, joint or face landmark."""

import numpy as np
import pytest
import torch

from human_body_prior import default_body_model_path
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.model_types.joints import JOINT_NAMES
from human_body_prior.body_model.synthetic import synthetic_model_arrays
from human_body_prior.open_model.vertex_order import permute_vertices, swap_permutation

smplx = pytest.importorskip("smplx")
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS  # noqa: E402

GENDERS = ("neutral", "female", "male")
NAME_TABLES = ("joint2num", "part2num")  # pickled dicts (object arrays), as in the official SMPL-X files


def _load(model_type, gender):
    with np.load(default_body_model_path(model_type, gender), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k not in NAME_TABLES}


def _expected_part(name, model_type):
    """Joints whose skin the keypoint must lie on (largest skinning weight), by smplx's keypoint name."""
    side = {"l": "left", "r": "right", "L": "left", "R": "right"}[name[0]] if name != "nose" else None
    base = name[1:] if name != "nose" else name
    head = {"head", "jaw", "left_eye_smplhf", "right_eye_smplhf"}
    if base in ("nose", "eye", "ear"):
        return head
    if base in ("thumb", "index", "middle", "ring", "pinky"):
        return {f"{side}_{base}3"} if model_type != "smpl" else {f"{side}_hand"}
    if base in ("BigToe", "SmallToe"):
        return {f"{side}_foot"}
    if base == "Heel":
        return {f"{side}_ankle", f"{side}_foot"}
    raise KeyError(name)


@pytest.mark.parametrize("model_type", ["smplx", "smplh", "smpl"])
@pytest.mark.parametrize("gender", GENDERS)
def test_stock_smplx_table_ids_sit_on_the_right_body_part(model_type, gender):
    d = _load(model_type, gender)
    table = SMPLX_VERTEX_IDS["smplx" if model_type == "smplx" else "smplh"]
    names = JOINT_NAMES[model_type]
    v = d["v_template"]
    joints = d["J_regressor"] @ v
    owner = np.argmax(d["weights"], axis=1)
    for name, vid in table.items():
        part = names[owner[vid]]
        assert part in _expected_part(name, model_type), (name, vid, part)
        if name != "nose":  # the body's left is +X
            side = 1 if name[0] in "lL" else -1
            assert side * v[vid, 0] > 0.01, (name, v[vid])
    # anatomical order: nose in front of the head, toes in front of heels, fingertips beyond the wrists
    head = joints[names.index("head")]
    assert v[table["nose"], 2] > head[2] + 0.05
    for s, side in (("L", "left"), ("R", "right")):
        assert v[table[f"{s}BigToe"], 2] > v[table[f"{s}Heel"], 2] + 0.15
        wrist = joints[names.index(f"{side}_wrist")]
        for f in ("thumb", "index", "middle", "ring", "pinky"):
            assert abs(v[table[s.lower() + f], 0]) > abs(wrist[0]) + 0.05
    if "keypoint_vertex_ids" in d:
        assert d["keypoint_vertex_ids"].tolist() == list(table.values())


@pytest.mark.parametrize("side", ["left", "right"])
def test_mano_table_ids_are_the_fingertips(side):
    d = _load("mano", side)
    v, joints = d["v_template"], d["J_regressor"] @ d["v_template"]
    owner = np.argmax(d["weights"], axis=1)
    names = JOINT_NAMES["mano"]
    for finger, vid in SMPLX_VERTEX_IDS["mano"].items():
        assert names[owner[vid]] == f"{finger}3"
        j3, j2 = joints[names.index(f"{finger}3")], joints[names.index(f"{finger}2")]
        assert (v[vid] - j3) @ (j3 - j2) > 0  # beyond the last joint, along the finger
        mine = owner == names.index(f"{finger}3")
        assert (v[vid] - j3) @ (j3 - j2) >= 0.95 * ((v[mine] - j3) @ (j3 - j2)).max()


def test_stock_smplx_extra_joints_use_those_vertices():
    """SMPLX passes its own table (a caller cannot override it): its extra joints are our keypoints."""
    path = default_body_model_path("smplx", "neutral")
    d = _load("smplx", "neutral")
    model = smplx.SMPLX(path, ext="npz", use_pca=False, flat_hand_mean=True, use_face_contour=False)
    with torch.no_grad():
        joints = model().joints[0].numpy()
    extra = joints[55:55 + 21]
    names = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
             "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
             "rpinky"]  # smplx's VertexJointSelector order: face, feet, left then right fingertips
    kp = dict(zip(["nose", "reye", "leye", "rear", "lear", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
                   "lthumb", "lindex", "lmiddle", "lring", "lpinky", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
                   "RSmallToe", "RHeel"], d["keypoint_vertex_ids"]))
    np.testing.assert_allclose(extra, d["v_template"][[kp[n] for n in names]], atol=1e-6)


def test_reorder_keeps_every_surface_point_joint_and_landmark(tmp_path):
    arrays = synthetic_model_arrays("smplx", num_verts=600, num_shape_columns=20, seed=3)
    rng = np.random.default_rng(0)
    sources = rng.choice(600, size=21, replace=False)
    targets = rng.choice(600, size=21, replace=False)
    perm = swap_permutation(600, sources, targets)
    assert sorted(perm.tolist()) == list(range(600)) and np.all(perm[targets] == sources)
    assert np.count_nonzero(perm != np.arange(600)) <= 42
    arrays["keypoint_vertex_ids"] = sources
    moved = permute_vertices(arrays, perm)
    assert moved["keypoint_vertex_ids"].tolist() == targets.tolist()
    paths = []
    for name, a in (("a.npz", arrays), ("b.npz", moved)):
        np.savez(tmp_path / name, **a)
        paths.append(tmp_path / name)
    a, b = (BodyModel(p, num_betas=10, dtype=torch.float64) for p in paths)
    g = torch.Generator().manual_seed(0)
    x = dict(pose_body=0.4 * torch.randn(2, 63, generator=g, dtype=torch.float64),
             betas=torch.randn(2, 10, generator=g, dtype=torch.float64))
    with torch.no_grad():
        out_a, out_b = a(**x), b(**x)
    np.testing.assert_allclose(out_b.v.numpy(), out_a.v.numpy()[:, perm], atol=1e-12)
    np.testing.assert_allclose(out_b.Jtr.numpy(), out_a.Jtr.numpy(), atol=1e-12)
    for o, m in ((out_a, arrays), (out_b, moved)):  # face landmarks: same faces, same barycentrics
        lmk = np.einsum("bfkc,fk->bfc", o.v.numpy()[:, m["f"][m["lmk_faces_idx"]].astype(np.int64)],
                        m["lmk_bary_coords"])
        if m is arrays:
            first = lmk
    np.testing.assert_allclose(lmk, first, atol=1e-12)
