"""geometry/kinematics.py (the one forward kinematics) against a joint-by-joint loop written here,
and model_types/joints.py (counts, pose layout, hinges, mirror permutation) against the joint tables."""

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.model_types import joints as skeleton
from human_body_prior.geometry.kinematics import KinematicTree, MovingJoints, forward_kinematics, global_transforms


def _loop_fk(local_rot, local_trans, parents):
    """Reference: world rotations and positions, one joint after the other."""
    F, J = local_rot.shape[:2]
    R, p = np.empty((F, J, 3, 3)), np.empty((F, J, 3))
    for j, par in enumerate(parents):
        if par < 0:
            R[:, j], p[:, j] = local_rot[:, j], local_trans[:, j]
        else:
            R[:, j] = R[:, par] @ local_rot[:, j]
            p[:, j] = p[:, par] + np.einsum("fab,fb->fa", R[:, par], local_trans[:, j])
    return R, p


@pytest.mark.parametrize("parents", [skeleton.SMPLX_PARENTS, [-1, 0, 1, 0, 3, 1, 2, 6, 4, 8, 0]])
def test_global_transforms_match_a_joint_by_joint_loop(parents):
    rng = np.random.default_rng(0)
    F, J = 6, len(parents)
    local_rot = Rotation.random(F * J, random_state=1).as_matrix().reshape(F, J, 3, 3)
    local_trans = rng.normal(size=(F, J, 3))
    glob = global_transforms(torch.from_numpy(local_rot), torch.from_numpy(local_trans), KinematicTree(parents)).numpy()
    R_ref, p_ref = _loop_fk(local_rot, local_trans, parents)
    np.testing.assert_allclose(glob[..., :3], R_ref, atol=1e-12)
    np.testing.assert_allclose(glob[..., 3], p_ref, atol=1e-12)


def test_forward_kinematics_poses_rest_joints():
    rng = np.random.default_rng(2)
    parents = skeleton.SMPL_PARENTS
    J = len(parents)
    rest = torch.from_numpy(rng.normal(size=(3, J, 3)))
    rot = torch.from_numpy(Rotation.random(3 * J, random_state=3).as_matrix().reshape(3, J, 3, 3))
    posed, T = forward_kinematics(rot, rest, KinematicTree(parents))
    rel = rest.numpy() - np.concatenate([np.zeros((3, 1, 3)), rest.numpy()[:, parents[1:]]], 1)
    _, p_ref = _loop_fk(rot.numpy(), rel, parents)
    np.testing.assert_allclose(posed.numpy(), p_ref, atol=1e-12)
    # each skinning transform takes its rest joint to the posed joint
    moved = (T[..., :3] @ rest.unsqueeze(-1)).squeeze(-1) + T[..., 3]
    np.testing.assert_allclose(moved.numpy(), posed.numpy(), atol=1e-12)


def test_kinematic_tree_is_frozen_and_selects_closed_subtrees():
    tree = KinematicTree(skeleton.SMPLX_PARENTS)
    with pytest.raises(AttributeError, match="immutable"):
        tree.parents = (-1,)
    body = tree.select(range(skeleton.NUM_BODY_JOINTS))
    assert body == KinematicTree(skeleton.BODY_PARENTS) and len(body) == 22
    leg = tree.select([0, 1, 4, 7, 10])
    assert leg.parents == (-1, 0, 1, 2, 3)
    with pytest.raises(ValueError, match="leave out the parents"):
        tree.select([0, 4, 7])
    with pytest.raises(ValueError, match="increasing"):
        tree.select([1, 4])
    for clone in (pickle.loads(pickle.dumps(tree)), copy.deepcopy(tree)):
        assert clone == tree and torch.equal(clone.order, tree.order)
    with pytest.raises(ValueError, match="parents must start with -1"):
        KinematicTree([-1, 2, 0])


def test_moving_joints_take_every_ancestor():
    tree = KinematicTree(skeleton.SMPLX_PARENTS)
    body = MovingJoints.with_ancestors(tree, range(1, skeleton.NUM_BODY_JOINTS))
    assert body.index.tolist() == list(range(22))
    left_thumb = MovingJoints.with_ancestors(tree, [39])  # the tip, its two parents and the arm to the pelvis
    chain = [0, 3, 6, 9, 13, 16, 18, 20, 37, 38, 39]
    assert left_thumb.index.tolist() == chain


def test_pose_slices_follow_the_model_layout():
    for model_type, parts in skeleton.POSE_PARTS.items():
        sl = skeleton.pose_slices(model_type)
        assert list(sl) == [name for name, _ in parts]
        assert [s.stop - s.start for s in sl.values()] == [w for _, w in parts]
        assert sl[parts[0][0]].start == 0 and all(a.stop == b.start for a, b in zip(list(sl.values()), list(sl.values())[1:]))
        assert list(sl.values())[-1].stop == 3 * skeleton.NUM_JOINTS[model_type]
    assert skeleton.pose_slices("smplx")["pose_body"] == slice(3, 66)
    assert skeleton.pose_slices("smplx")["pose_jaw"] == slice(66, 69)
    assert skeleton.NUM_POSE_BODY_JOINTS == 21 and skeleton.NUM_BODY_JOINTS == 22
    with pytest.raises(ValueError, match="model_type"):
        skeleton.pose_slices("smpl-x")


def test_hinges_are_knees_and_elbows_of_the_tree():
    names, parents = skeleton.BODY_JOINT_NAMES, skeleton.BODY_PARENTS
    assert [h.name for h in skeleton.HINGES] == ["left_knee", "right_knee", "left_elbow", "right_elbow"]
    for h in skeleton.HINGES:
        assert names[h.joint] == h.name and parents[h.joint] == h.upper and parents[h.child] == h.joint
        side = h.name.split("_")[0]
        assert names[h.upper] == f"{side}_{'hip' if 'knee' in h.name else 'shoulder'}"
        assert names[h.child] == f"{side}_{'ankle' if 'knee' in h.name else 'wrist'}"
        assert h.flexion == ((0.0, 0.0, -1.0) if "knee" in h.name else (0.0, 0.0, 1.0))


def test_mirror_permutation():
    for names in (skeleton.BODY_JOINT_NAMES[1:], skeleton.SMPLX_JOINT_NAMES, skeleton.MANO_JOINT_NAMES):
        m = skeleton.mirror_permutation(names)
        assert sorted(m) == list(range(len(names))) and [m[i] for i in m] == list(range(len(names)))
        for i, n in enumerate(names):
            expected = n.replace("left", "#").replace("right", "left").replace("#", "right") if n.startswith(("left", "right")) else n
            assert names[m[i]] == expected
