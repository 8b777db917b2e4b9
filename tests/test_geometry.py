"""The geometry core against scipy's Rotation and analytic cases: rotation between directions
(also opposite ones), geodesic angle, slerp (geometry/rotations.py; its Euler conversions are
tested in test_rotation_tools.py), BVH Euler channels, and the one weighted rigid registration
(geometry/rigid.py)."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from human_body_prior.geometry import rotations as rt
from human_body_prior.geometry.rigid import rigid_registration

def _t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_between_is_the_smallest_rotation(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 200, 3)) * rng.uniform(0.1, 5, size=(2, 200, 1))
    if dtype == torch.float32:  # near-opposite directions pin the axis down only to eps / (1 + cos)
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        a, b = a[cos > -0.9], b[cos > -0.9]
    R = rt.rotation_between(_t(a, dtype), _t(b, dtype)).double().numpy()
    ua, ub = a / np.linalg.norm(a, axis=-1, keepdims=True), b / np.linalg.norm(b, axis=-1, keepdims=True)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(np.einsum("nij,nj->ni", R, ua), ub, atol=tol)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=tol)
    # the smallest rotation: its angle is the angle between the directions, its axis a x b
    rot = Rotation.from_matrix(R)
    np.testing.assert_allclose(rot.magnitude(), np.arccos(np.clip((ua * ub).sum(-1), -1, 1)), atol=10 * tol ** 0.5)
    axis = np.cross(ua, ub)
    np.testing.assert_allclose(rot.as_rotvec(), axis / np.linalg.norm(axis, axis=-1, keepdims=True)
                               * rot.magnitude()[:, None], atol=10 * tol ** 0.5)
    # scipy's own minimal rotation for one pair of vectors
    ref = Rotation.align_vectors(ub[:1], ua[:1])[0].as_matrix()
    np.testing.assert_allclose(R[0], ref, atol=10 * tol)


def test_rotation_between_opposite_and_equal_directions():
    a = _t([[1.0, 0, 0], [0, 2.0, 0], [0.3, -0.4, 1.2], [0, 0, 1.0], [1e-3, 0, 0]])
    R = rt.rotation_between(a, -3 * a)
    for Ri, ai in zip(R.numpy(), a.numpy()):
        u = ai / np.linalg.norm(ai)
        np.testing.assert_allclose(Ri @ u, -u, atol=1e-12)
        np.testing.assert_allclose(Ri @ Ri.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(Ri) == pytest.approx(1.0)
        assert Rotation.from_matrix(Ri).magnitude() == pytest.approx(np.pi)
    np.testing.assert_allclose(rt.rotation_between(a, 2 * a).numpy(), np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_align_frames_matches_scipy_with_a_primary_vector(dtype):
    """scipy's align_vectors with an infinite weight on the first pair aligns it exactly and the
    second as well as it can: the same rotation as a main and a secondary direction."""
    rng = np.random.default_rng(7)
    d, lat, d_to, lat_to = rng.normal(size=(4, 50, 3))
    got = rt.align_frames(*(torch.tensor(x, dtype=dtype) for x in (d, lat, d_to, lat_to))).double().numpy()
    for i in range(50):
        ref, _ = Rotation.align_vectors(np.stack([d_to[i], lat_to[i]]), np.stack([d[i], lat[i]]), weights=[np.inf, 1])
        np.testing.assert_allclose(got[i], ref.as_matrix(), atol=1e-5 if dtype == torch.float32 else 1e-10)


def test_geodesic_angle_matches_scipy_also_near_0_and_pi():
    r1 = Rotation.random(300, random_state=1)
    small = Rotation.from_rotvec(Rotation.random(100, random_state=2).as_rotvec() / np.pi * 1e-6)
    axes = Rotation.random(100, random_state=3).as_rotvec()
    near_pi = Rotation.from_rotvec(axes / np.linalg.norm(axes, axis=-1, keepdims=True) * (np.pi - 1e-7))
    r2 = Rotation.concatenate([Rotation.random(100, random_state=4), small, near_pi])
    got = rt.geodesic_angle(_t(r1.as_matrix()), _t((r1 * r2).as_matrix())).numpy()
    np.testing.assert_allclose(got, r2.magnitude(), rtol=1e-7, atol=1e-14)
    cos = rt.geodesic_cos(_t(r1.as_matrix()), _t((r1 * r2).as_matrix())).numpy()
    np.testing.assert_allclose(cos, np.cos(r2.magnitude()), atol=1e-12)
    assert rt.geodesic_angle(_t(np.eye(3))).item() == 0.0


def test_slerp_matches_scipy():
    rng = np.random.default_rng(5)
    r0, r1 = Rotation.random(50, random_state=6), Rotation.random(50, random_state=7)
    t = rng.uniform(0, 1, size=50)
    ref = np.stack([Slerp([0, 1], Rotation.concatenate([r0[i], r1[i]]))(t[i]).as_matrix() for i in range(50)])
    got = rt.slerp(_t(r0.as_matrix()), _t(r1.as_matrix()), _t(t)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-10)
    q = rt.quaternion_slerp(_t(r0.as_quat(scalar_first=True)), _t(r1.as_quat(scalar_first=True)), _t(t)[:, None])
    np.testing.assert_allclose(rt.quaternion_to_matrix(q).numpy(), ref, atol=1e-10)
    # the ends, and equal rotations (the linear branch)
    np.testing.assert_allclose(rt.slerp(_t(r0.as_matrix()), _t(r1.as_matrix()), 1.0).numpy(), r1.as_matrix(), atol=1e-12)
    qa = _t(r0.as_quat(scalar_first=True))
    np.testing.assert_allclose(rt.quaternion_slerp(qa, qa, 0.3).numpy(), qa.numpy(), atol=1e-15)
    # the shorter arc: q and -q are the same rotation
    np.testing.assert_allclose(rt.quaternion_to_matrix(rt.quaternion_slerp(qa, -qa, 0.5)).numpy(), r0.as_matrix(),
                               atol=1e-12)


@pytest.mark.parametrize("order", ["Z", "XY", "YZX", "zx"])
def test_bvh_euler_channels_of_any_count_match_scipy(order):
    from human_body_prior.data.bvh import euler_to_matrix

    ang = np.random.default_rng(8).uniform(-180, 180, size=(40, len(order)))
    ref = Rotation.from_euler(order.upper(), ang, degrees=True).as_matrix()  # upper case: intrinsic
    np.testing.assert_allclose(euler_to_matrix(ang, order), ref, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rigid_registration_matches_scipy_weighted(dtype):
    rng = np.random.default_rng(9)
    src = rng.normal(size=(4, 12, 3))
    R_true = Rotation.random(4, random_state=10).as_matrix()
    t_true = rng.normal(size=(4, 3))
    dst = np.einsum("bij,bnj->bni", R_true, src) + t_true[:, None] + rng.normal(scale=0.05, size=src.shape)
    w = rng.uniform(0.1, 2.0, size=(4, 12))
    R, t = rigid_registration(_t(src, dtype), _t(dst, dtype), _t(w, dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for b in range(4):  # scipy: weighted rotation of centred points (its R maps its second argument onto the first)
        mu_s, mu_d = np.average(src[b], 0, w[b]), np.average(dst[b], 0, w[b])
        ref = Rotation.align_vectors(dst[b] - mu_d, src[b] - mu_s, weights=w[b])[0].as_matrix()
        np.testing.assert_allclose(R[b].double().numpy(), ref, atol=tol)
        np.testing.assert_allclose(t[b].double().numpy(), mu_d - ref @ mu_s, atol=tol)
    # about the origin (vectors): no centroids, t = 0
    R0, t0 = rigid_registration(_t(src[0]), _t(src[0] @ R_true[0].T), translation=False)
    np.testing.assert_allclose(R0.numpy(), R_true[0], atol=1e-12) and np.testing.assert_array_equal(t0.numpy(), 0)


def test_rigid_registration_scale_reflection_and_missing_points():
    rng = np.random.default_rng(11)
    src = _t(rng.normal(size=(3, 10, 3)))
    R_true = _t(Rotation.random(3, random_state=12).as_matrix())
    dst = 2.5 * src @ R_true.transpose(-1, -2) + _t([0.1, -0.2, 0.3])
    w = torch.ones(3, 10, dtype=torch.float64)
    w[:, :4] = 0
    dst[:, :4] = float("nan")  # ignored where the weight is 0
    R, t, s = rigid_registration(src, dst, w, scale=True)
    np.testing.assert_allclose(R.numpy(), R_true.numpy(), atol=1e-12)
    np.testing.assert_allclose(s.numpy(), 2.5, atol=1e-12)
    np.testing.assert_allclose(t.numpy(), np.broadcast_to([0.1, -0.2, 0.3], (3, 3)), atol=1e-12)
    # a mirror image still gets a proper rotation
    Rm, _ = rigid_registration(src, src * _t([-1.0, 1, 1]))
    assert torch.allclose(torch.linalg.det(Rm), torch.ones(3, dtype=torch.float64))
    # too few points: identity and centroid shift
    few = torch.zeros(3, 10, dtype=torch.float64)
    few[:, 0] = 1
    R1, t1 = rigid_registration(src, src + 1.0, few)
    assert torch.equal(R1, torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    np.testing.assert_allclose(t1.numpy(), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        rigid_registration(src, src[:, :5])
