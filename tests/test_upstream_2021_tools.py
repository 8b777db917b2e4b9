"""The 2021 names at the upstream tool paths (rotation_tools' v2 section, tgm_conversion,
angle_continuous_repres) against scipy's Rotation, with finite values and gradients at angle 0, 1e-12 and pi."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.tools import angle_continuous_repres as acr
from human_body_prior.tools import rotation_tools as rt
from human_body_prior.tools import tgm_conversion as tgm

EDGE_ANGLES = (0.0, 1e-12, np.pi)


def _edge_rotvecs() -> np.ndarray:
    """Rotation vectors at the edge angles about several axes, plus random ones."""
    rng = np.random.default_rng(0)
    axes = np.concatenate([np.eye(3), rng.normal(size=(5, 3))])
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    edge = np.concatenate([axes * a for a in EDGE_ANGLES])
    random = Rotation.random(50, random_state=1).as_rotvec()
    return np.concatenate([edge, random])


def _same_rotation(a, b, atol):
    Ra, Rb = Rotation.from_rotvec(np.asarray(a).reshape(-1, 3)), Rotation.from_rotvec(np.asarray(b).reshape(-1, 3))
    return np.abs(Ra.as_matrix() - Rb.as_matrix()).max() < atol


def _finite_grad(fn, x):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    assert torch.isfinite(out).all(), "value not finite"
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all(), "gradient not finite"


def test_v2_aa2matrot_and_matrot2aa_shapes_and_values():
    aa = _edge_rotvecs()
    R = rt.aa2matrot(torch.tensor(aa))
    assert R.shape == (len(aa), 3, 3)
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    back = rt.matrot2aa(R)
    assert back.shape == (len(aa), 3)
    assert _same_rotation(back.numpy(), aa, 1e-10)
    # what AvatarPoser-style code does: index the (N, 3, 3) result
    assert rt.aa2matrot(torch.zeros(4, 3))[:, 2, 2].tolist() == [1.0] * 4
    with pytest.raises(ValueError, match=r"aa2matrot expects axis-angle of shape \(N, 3\)"):
        rt.aa2matrot(torch.zeros(4, 9))


@pytest.mark.parametrize("fn", [
    lambda x: rt.aa2matrot(x), lambda x: rt.matrot2aa(rt.aa2matrot(x)),
    lambda x: tgm.angle_axis_to_rotation_matrix(x), lambda x: tgm.rotation_matrix_to_angle_axis(
        tgm.angle_axis_to_rotation_matrix(x)),
    lambda x: tgm.rotation_matrix_to_quaternion(tgm.angle_axis_to_rotation_matrix(x)[:, :3]),
    lambda x: tgm.quaternion_to_angle_axis(tgm.angle_axis_to_quaternion(x)),
    lambda x: acr.sixd2aa(acr.aa2sixd(x)), lambda x: rt.em2euler(x), lambda x: rt.euler2em(x),
    lambda x: acr.geodesic_loss_R(reduction="none")(rt.aa2matrot(x), torch.eye(3, dtype=x.dtype).expand(len(x), 3, 3)),
    lambda x: acr.geodesic_loss_R(reduction="none")(rt.aa2matrot(x), rt.aa2matrot(x.detach())),
], ids=["aa2matrot", "matrot2aa", "tgm_aa2R", "tgm_R2aa", "tgm_R2q", "tgm_q2aa", "sixd2aa", "em2euler",
        "euler2em", "geodesic_to_identity", "geodesic_to_self"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_values_and_gradients_at_edge_angles(fn, dtype):
    _finite_grad(fn, torch.tensor(_edge_rotvecs(), dtype=dtype))


def test_tgm_names_shapes_and_scipy():
    aa = _edge_rotvecs()
    R = Rotation.from_rotvec(aa).as_matrix()
    T = tgm.angle_axis_to_rotation_matrix(torch.tensor(aa))
    assert T.shape == (len(aa), 4, 4)
    np.testing.assert_allclose(T[:, :3, :3].numpy(), R, atol=1e-12)
    np.testing.assert_allclose(T[:, 3].numpy(), np.tile([0, 0, 0, 1.0], (len(aa), 1)))
    np.testing.assert_allclose(T[:, :3, 3].numpy(), 0)
    for M in (T, T[:, :3], T[:, :3, :3]):  # (N, 4, 4), (N, 3, 4) as v2 code pads it, (N, 3, 3)
        assert _same_rotation(tgm.rotation_matrix_to_angle_axis(M).numpy(), aa, 1e-10)
    q = tgm.rotation_matrix_to_quaternion(T[:, :3])
    q_ref = Rotation.from_matrix(R).as_quat()[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(np.abs((q.numpy() * q_ref).sum(1)), 1.0, atol=1e-12)
    assert _same_rotation(tgm.quaternion_to_angle_axis(q).numpy(), aa, 1e-10)
    q2 = tgm.angle_axis_to_quaternion(torch.tensor(aa))
    np.testing.assert_allclose(np.abs((q2.numpy() * q_ref).sum(1)), 1.0, atol=1e-12)
    rt_vec = torch.cat([torch.tensor(aa), torch.ones(len(aa), 3)], 1)
    P = tgm.rtvec_to_pose(rt_vec)
    np.testing.assert_allclose(P[:, :3, :3].numpy(), R, atol=1e-12)
    np.testing.assert_allclose(P[:, :3, 3].numpy(), 1.0)
    pts = torch.randn(2, 5, 3, dtype=torch.float64)
    np.testing.assert_allclose(tgm.convert_points_from_homogeneous(tgm.convert_points_to_homogeneous(pts) * 2).numpy(),
                               pts.numpy(), atol=1e-12)
    np.testing.assert_allclose(tgm.rad2deg(tgm.pi).item(), 180.0, rtol=1e-6)
    np.testing.assert_allclose(tgm.deg2rad(torch.tensor(90.0)).item(), np.pi / 2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 3, 4\) or \(N, 4, 4\)"):
        tgm.rotation_matrix_to_angle_axis(torch.zeros(2, 4, 3))


def test_six_d_and_geodesic_loss():
    aa = _edge_rotvecs()
    R = Rotation.from_rotvec(aa).as_matrix()
    six = acr.matrot2sixd(torch.tensor(R))
    np.testing.assert_allclose(six.numpy(), np.concatenate([R[:, :, 0], R[:, :, 1]], 1))
    np.testing.assert_allclose(acr.sixd2matrot(six).numpy(), R, atol=1e-12)
    np.testing.assert_allclose(acr.bgs(torch.tensor(R[:, :, :2])).numpy(), R, atol=1e-12)
    # Gram-Schmidt of a skewed, scaled pair: the first column's direction, the plane of the two
    a = torch.tensor([[[2.0, 1.0], [0.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(acr.bgs(a)[0].numpy(), np.eye(3), atol=1e-7)
    assert _same_rotation(acr.sixd2aa(acr.aa2sixd(torch.tensor(aa))).numpy(), aa, 1e-10)
    assert acr.sixd2aa(torch.zeros(2, 4, 6) + torch.tensor([1.0, 0, 0, 0, 1, 0]), batch=True).shape == (2, 4, 3)

    R2 = Rotation.random(len(aa), random_state=3)
    expected = (Rotation.from_matrix(R) * R2.inv()).magnitude()
    loss = acr.geodesic_loss_R(reduction="none")(torch.tensor(R), torch.tensor(R2.as_matrix()))
    np.testing.assert_allclose(loss.numpy(), expected, atol=1e-9)
    for reduction, ref in (("mean", expected.mean()), ("batchmean", expected.mean()), ("sum", expected.sum())):
        value = acr.geodesic_loss_R(reduction)(torch.tensor(R), torch.tensor(R2.as_matrix()))
        np.testing.assert_allclose(value.item(), ref, rtol=1e-9)
    # identical and opposite rotations: exactly 0 and pi
    np.testing.assert_allclose(acr.geodesic_loss_R("none")(torch.tensor(R), torch.tensor(R)).numpy(), 0, atol=1e-7)
    flip = torch.tensor(Rotation.from_rotvec([[np.pi, 0, 0]]).as_matrix())
    np.testing.assert_allclose(acr.geodesic_loss_R("none")(flip, torch.eye(3, dtype=flip.dtype)[None]).item(), np.pi)
    with pytest.raises(ValueError, match="reduction must be one of"):
        acr.geodesic_loss_R("avg")


@pytest.mark.parametrize("axes", ["sxyz", "szyx", "syxz", "rxyz", "rzxy", "ryzx"])
def test_euler_core_against_scipy(axes):
    rng = np.random.default_rng(2)
    angles = np.concatenate([rng.uniform(-np.pi, np.pi, size=(200, 3)) * [1, 0.49, 1], np.zeros((1, 3)),
                             [[np.pi, 0, 0], [0, 0, np.pi], [1e-12, 0, 0]]])
    seq = axes[1:] if axes[0] == "s" else axes[1:].upper()  # scipy: lower case extrinsic, upper intrinsic
    R_ref = Rotation.from_euler(seq, angles).as_matrix()
    R = rt.euler_to_matrix(torch.tensor(angles), axes)
    np.testing.assert_allclose(R.numpy(), R_ref, atol=1e-12)
    back = rt.matrix_to_euler(R, axes).numpy()
    np.testing.assert_allclose(Rotation.from_euler(seq, back).as_matrix(), R_ref, atol=1e-10)
    regular = np.abs(angles[:, 1]) < 1.5
    np.testing.assert_allclose(back[:200][regular[:200]], Rotation.from_matrix(R_ref[:200]).as_euler(seq)[regular[:200]],
                               atol=1e-9)
    # gimbal lock: finite, and still the same rotation
    locked = torch.tensor([[0.3, np.pi / 2, -0.2]], dtype=torch.float64)
    R_locked = rt.euler_to_matrix(locked, axes)
    _finite_grad(lambda m: rt.matrix_to_euler(m, axes), R_locked)
    np.testing.assert_allclose(rt.euler_to_matrix(rt.matrix_to_euler(R_locked, axes), axes).numpy(),
                               R_locked.numpy(), atol=1e-7)
    with pytest.raises(ValueError, match="Euler axes"):
        rt.euler_to_matrix(torch.zeros(1, 3), "xyz")


def test_em2euler_euler2em_remove_and_noisy_zrot():
    aa = _edge_rotvecs()
    euler = rt.em2euler(aa)  # numpy in, numpy out, static xyz (transforms3d's default 'sxyz')
    assert isinstance(euler, np.ndarray)
    np.testing.assert_allclose(Rotation.from_euler("xyz", euler).as_matrix(), Rotation.from_rotvec(aa).as_matrix(),
                               atol=1e-10)
    em = rt.euler2em(euler)
    assert _same_rotation(em, aa, 1e-10) and (np.linalg.norm(em, axis=1) <= np.pi + 1e-9).all()
    assert torch.is_tensor(rt.em2euler(torch.tensor(aa)))
    pose = np.concatenate([Rotation.from_euler("xyz", [0.3, -0.2, 1.1]).as_rotvec(), np.ones(63)])
    out = rt.remove_zrot(pose)
    assert out is pose
    np.testing.assert_allclose(Rotation.from_rotvec(pose[:3]).as_euler("xyz"), [0.3, -0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(pose[3:], 1.0)
    rot = Rotation.from_euler("xyz", [[0.1, 0.2, 0.3], [-0.4, 0.1, 2.0]]).as_rotvec()
    state = np.random.get_state()[1].copy()
    noisy = rt.noisy_zrot(rot, rng=np.random.default_rng(0))
    assert (np.random.get_state()[1] == state).all()  # a given generator leaves the global one alone
    dz = Rotation.from_rotvec(noisy).as_euler("xyz") - Rotation.from_rotvec(rot).as_euler("xyz")
    np.testing.assert_allclose(dz[:, :2], 0, atol=1e-12)
    shift = np.angle(np.exp(1j * dz[:, 2]))
    np.testing.assert_allclose(shift, shift[0], atol=1e-12)  # one angle for every row
    assert rt.noisy_zrot(rot[0]).shape == (1, 3)


def test_rotate_points_tmat_and_batch_rigid_transform():
    rng = np.random.default_rng(3)
    v = rng.normal(size=(4, 10, 3))
    deg = rng.uniform(-180, 180, size=(4, 3))
    out = rt.rotate_points_xyz(v, deg)
    ref = np.stack([Rotation.from_euler("xyz", d, degrees=True).apply(p) for d, p in zip(deg, v)])
    np.testing.assert_allclose(out, ref, atol=1e-12)

    R = torch.tensor(Rotation.random(5, random_state=2).as_matrix())
    t = torch.randn(5, 3, 1, dtype=torch.float64)
    T = rt.tmat(R, t)
    assert T.shape == (5, 4, 4)
    np.testing.assert_allclose(T[:, :3, :3].numpy(), R.numpy())
    np.testing.assert_allclose(T[:, :3, 3:].numpy(), t.numpy())
    np.testing.assert_allclose(T[:, 3].numpy(), np.tile([0, 0, 0, 1.0], (5, 1)))

    import smplx.lbs

    parents = torch.tensor([-1, 0, 0, 1, 2, 3, 4, 5])
    rot = torch.tensor(Rotation.random(3 * 8, random_state=4).as_matrix()).reshape(3, 8, 3, 3)
    joints = torch.randn(3, 8, 3, dtype=torch.float64)
    posed, rel = rt.batch_rigid_transform(rot, joints, parents)
    posed_ref, rel_ref = smplx.lbs.batch_rigid_transform(rot, joints, parents, dtype=torch.float64)
    np.testing.assert_allclose(posed.numpy(), posed_ref.numpy(), atol=1e-12)
    np.testing.assert_allclose(rel.numpy(), rel_ref.numpy(), atol=1e-12)

    glob = rt.local2global_pose(rot, parents)
    for j in range(8):  # global = parent's global times local
        expected = rot[:, j] if j == 0 else glob[:, parents[j]] @ rot[:, j]
        np.testing.assert_allclose(glob[:, j].numpy(), expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(glob[:, :, :3, :3].numpy(), rel_ref[:, :, :3, :3].numpy(), atol=1e-12)
    assert rt.local2global_pose(rot.reshape(3, 72), parents).shape == (3, 8, 3, 3)
