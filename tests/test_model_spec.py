"""ModelSpec against facts written down independently of it (the official files' joint counts and
kintree tables, the pose layouts of AMASS), and the identification of a model file's type."""

import numpy as np
import pytest

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.model_io import load_model_file
from human_body_prior.body_model.synthetic import synthetic_model_arrays, write_synthetic_model
from human_body_prior.model_types import (
    MODEL_TYPES,
    SPECS,
    identify_model_type,
    model_spec,
    spec_for_joint_count,
)
from human_body_prior.support_paths import model_file_gender

# First row of kintree_table in the official files (root's parent written as -1).
_BODY = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
OFFICIAL_PARENTS = {
    "smpl": _BODY + [20, 21],
    "smplh": _BODY + [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35,
                      21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50],
    "smplx": _BODY + [15, 15, 15, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
                      21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53],
    "mano": [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14],
}
NUM_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55, "mano": 16}
# Pose parts and widths: AMASS's SMPL-H poses are 156 wide, SMPL-X's 165, SMPL's 72; MANO 3 + 45.
POSE_PARTS = {
    "smpl": [("root_orient", 3), ("pose_body", 63), ("pose_hand", 6)],
    "smplh": [("root_orient", 3), ("pose_body", 63), ("pose_hand", 90)],
    "smplx": [("root_orient", 3), ("pose_body", 63), ("pose_jaw", 3), ("pose_eye", 6), ("pose_hand", 90)],
    "mano": [("root_orient", 3), ("pose_hand", 45)],
}
POSE_WIDTH = {"smpl": 72, "smplh": 156, "smplx": 165, "mano": 48}
# The torso the fits are placed by, as fitting/initialisation.py listed it by index before the spec.
TORSO_INDICES = (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17)


def test_the_four_types():
    assert MODEL_TYPES == ("smpl", "smplh", "smplx", "mano") and set(SPECS) == set(MODEL_TYPES)
    assert [SPECS[t].title for t in MODEL_TYPES] == ["SMPL", "SMPL-H", "SMPL-X", "MANO"]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_joints_and_parents_are_the_official_ones(model_type):
    spec = SPECS[model_type]
    assert spec.num_joints == NUM_JOINTS[model_type] == len(spec.joint_names)
    assert list(spec.parents) == OFFICIAL_PARENTS[model_type]
    assert len(set(spec.joint_names)) == spec.num_joints
    assert spec.posedirs_width == 9 * (NUM_JOINTS[model_type] - 1)


def test_joint_names_at_known_places():
    for t in ("smpl", "smplh", "smplx"):
        names = SPECS[t].joint_names
        assert (names[0], names[4], names[15], names[20], names[21]) == (
            "pelvis", "left_knee", "head", "left_wrist", "right_wrist")
    assert SPECS["smpl"].joint_names[22:] == ("left_hand", "right_hand")
    assert SPECS["smplx"].joint_names[22:25] == ("jaw", "left_eye_smplhf", "right_eye_smplhf")
    assert SPECS["smplx"].joint_names[25] == SPECS["smplh"].joint_names[22] == "left_index1"
    assert SPECS["mano"].joint_names[0] == "wrist" and SPECS["mano"].joint_names[-1] == "thumb3"


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_pose_parts_and_widths(model_type):
    spec = SPECS[model_type]
    assert [tuple(p) for p in spec.pose_parts] == [tuple(p) for p in POSE_PARTS[model_type]]
    assert spec.pose_width == POSE_WIDTH[model_type] == 3 * spec.num_joints
    slices = spec.pose_slices()
    assert list(slices) == [name for name, _ in POSE_PARTS[model_type]]
    assert slices["root_orient"] == slice(0, 3) and slices["pose_hand"].stop == POSE_WIDTH[model_type]
    assert 3 * len(spec.hand_joints) == dict(spec.pose_parts)["pose_hand"]
    assert set(spec.hand_joints) <= set(spec.joint_names)


def test_shape_spaces():
    assert [t for t in MODEL_TYPES if SPECS[t].has_expression] == ["smplx"]
    assert [t for t in MODEL_TYPES if SPECS[t].has_dmpls] == ["smpl", "smplh"]
    smplx = SPECS["smplx"]
    assert [smplx.expression_start(k) for k in (400, 310, 300, 20, 10)] == [300, 300, 10, 10, 10]
    assert list(smplx.parameter_widths(16, 10)) == ["trans", "root_orient", "pose_body", "pose_jaw", "pose_eye",
                                                   "pose_hand", "betas", "expression"]
    assert SPECS["smplh"].parameter_widths(10, 0, 8) == {"trans": 3, "root_orient": 3, "pose_body": 63,
                                                          "pose_hand": 90, "betas": 10, "dmpls": 8}


def test_torso_and_trunk_joints_by_name():
    for t in ("smpl", "smplh", "smplx"):
        spec = SPECS[t]
        assert spec.torso_indices == TORSO_INDICES
        assert spec.torso_joints[:4] == ("pelvis", "left_hip", "right_hip", "spine1")
        assert set(spec.trunk_joints) <= set(spec.joint_names) and "head" in spec.trunk_joints
    assert "jaw" in SPECS["smplx"].trunk_joints and "jaw" not in SPECS["smpl"].trunk_joints
    assert SPECS["mano"].torso_joints == () and SPECS["mano"].torso_indices == ()
    assert SPECS["smplx"].joint_indices(["neck", "pelvis"]) == (12, 0)
    with pytest.raises(ValueError, match=r"mano model has no joint\(s\) \['pelvis'\]"):
        SPECS["mano"].joint_indices(["pelvis"])


def test_initialisation_places_bodies_by_the_spec_torso():
    from human_body_prior.fitting.initialisation import TORSO_JOINTS

    assert TORSO_JOINTS == TORSO_INDICES


def test_lookups():
    assert model_spec("SMPLX") is SPECS["smplx"]
    with pytest.raises(ValueError, match="model_type must be one of"):
        model_spec("smplxx")
    for t, n in NUM_JOINTS.items():
        assert spec_for_joint_count(n) is SPECS[t]
    assert spec_for_joint_count(22) is None and spec_for_joint_count(53) is None


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_identify_each_synthetic_layout(tmp_path, model_type, suffix):
    assert identify_model_type(synthetic_model_arrays(model_type, num_verts=240)) == model_type
    assert identify_model_type(synthetic_model_arrays(model_type, num_verts=240, posedirs=False)) == model_type
    path = write_synthetic_model(tmp_path / f"m{suffix}", model_type, num_verts=240)
    assert identify_model_type(load_model_file(path), path) == model_type
    assert BodyModel(path).model_type == model_type


def _without_last_joint(arrays: dict) -> dict:
    """An SMPL layout cut to 23 joints, consistent in itself: a tree of no known type."""
    out = dict(arrays)
    out["kintree_table"] = arrays["kintree_table"][:, :-1]
    out["weights"] = arrays["weights"][:, :-1] / arrays["weights"][:, :-1].sum(1, keepdims=True)
    out["J_regressor"] = arrays["J_regressor"][:-1]
    out["posedirs"] = arrays["posedirs"][..., :9 * 22]
    return out


def test_unknown_layout_is_a_one_line_error_naming_the_file(tmp_path):
    arrays = _without_last_joint(synthetic_model_arrays("smpl", num_verts=200))
    with pytest.raises(ValueError) as err:
        identify_model_type(arrays, "odd_model.npz")
    message = str(err.value)
    assert "\n" not in message and message.startswith("odd_model.npz: kintree_table has 23 joints")
    assert "SMPL 24" in message and "MANO 16" in message

    path = tmp_path / "ODD_MODEL.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"ODD_MODEL\.npz: kintree_table has 23 joints") as err:
        BodyModel(str(path))
    assert "\n" not in str(err.value)


def test_posedirs_of_another_type_is_an_error_naming_the_file():
    arrays = synthetic_model_arrays("smplh", num_verts=300)
    arrays["posedirs"] = arrays["posedirs"][..., :9 * 23]
    with pytest.raises(ValueError, match=r"^m\.pkl: posedirs has 207 columns but kintree_table has 52 joints"):
        identify_model_type(arrays, "m.pkl")


def test_model_file_gender_from_official_names():
    assert model_file_gender("/x/smplx/SMPLX_FEMALE.npz") == "female"
    assert model_file_gender("SMPLH_NEUTRAL.pkl") == "neutral"
    assert model_file_gender("mano/MANO_LEFT.pkl") == "left"
    assert model_file_gender("/amass/smplh/male/model.npz") == "male"
    for unnamed in ("model.npz", "SMPLX_SMALL.npz", "MANO_FEMALE.npz", "/x/left/model.npz"):
        assert model_file_gender(unnamed) is None
