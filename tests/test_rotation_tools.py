"""Rotation tools against scipy's Rotation and finite differences."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.tools import rotation_tools as rt


def _rotvecs(n: int, seed: int = 0) -> np.ndarray:
    """Random rotation vectors plus edge cases: zero, tiny, pi and pi -+ 1e-6 about many axes."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi, size=n)
    special = np.array([0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-3, 0.5, np.pi - 1e-6, np.pi, np.pi + 1e-6])
    edge = np.repeat(special, 20)[:n]
    angles[:len(edge)] = edge
    aa = axes * angles[:, None]
    aa[:3] = [[np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi]]
    return aa


def _same_rotvec(a: np.ndarray, b: np.ndarray, atol: float) -> np.ndarray:
    """Compare axis-angles modulo the pi ambiguity (aa and -aa are the same rotation at angle pi)."""
    ra = Rotation.from_rotvec(a).as_matrix()
    rb = Rotation.from_rotvec(b).as_matrix()
    return np.abs(ra - rb).max(axis=(1, 2)) < atol


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_axis_angle_to_matrix_matches_scipy(dtype, tol):
    aa = _rotvecs(4000)
    R = rt.axis_angle_to_matrix(torch.tensor(aa, dtype=dtype)).numpy()
    np.testing.assert_allclose(R, Rotation.from_rotvec(aa).as_matrix(), atol=tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-3)])
def test_matrix_to_axis_angle_matches_scipy(dtype, tol):
    aa = _rotvecs(4000, seed=1)
    R = Rotation.from_rotvec(aa).as_matrix()
    ours = rt.matrix_to_axis_angle(torch.tensor(R, dtype=dtype)).numpy().astype(np.float64)
    ref = Rotation.from_matrix(R).as_rotvec()
    angle = np.linalg.norm(ref, axis=1)
    far_from_pi = angle < np.pi - 1e-3
    np.testing.assert_allclose(ours[far_from_pi], ref[far_from_pi], atol=tol)
    # near pi the sign of the axis is arbitrary: compare the rotations they represent
    assert _same_rotvec(ours, ref, 10 * tol).all()
    assert (np.linalg.norm(ours, axis=1) <= np.pi + 1e-6).all()


def test_matrix_to_axis_angle_accurate_near_pi():
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(500, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    for angle in (np.pi, np.pi - 1e-6, np.pi - 1e-9):
        R = Rotation.from_rotvec(axes * angle).as_matrix()
        ours = rt.matrix_to_axis_angle(torch.tensor(R)).numpy()
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), angle, atol=1e-9)
        cos = np.abs((ours / np.linalg.norm(ours, axis=1, keepdims=True) * axes).sum(1))
        np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_quaternions_match_scipy():
    aa = _rotvecs(3000, seed=2)
    q_ref = Rotation.from_rotvec(aa).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    q_ref *= np.where(q_ref[:, :1] < 0, -1, 1)
    R = Rotation.from_rotvec(aa).as_matrix()
    q_from_R = rt.matrix_to_quaternion(torch.tensor(R)).numpy()
    q_from_aa = rt.axis_angle_to_quaternion(torch.tensor(aa)).numpy()
    not_pi = np.abs(q_ref[:, 0]) > 1e-5  # at pi, q and -q both have w = 0
    np.testing.assert_allclose(q_from_R[not_pi], q_ref[not_pi], atol=1e-12)
    np.testing.assert_allclose(np.abs((q_from_R * q_ref).sum(1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.abs((q_from_aa * q_ref).sum(1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(rt.quaternion_to_matrix(torch.tensor(q_ref)).numpy(), R, atol=1e-12)
    assert _same_rotvec(rt.quaternion_to_axis_angle(torch.tensor(q_ref)).numpy(), aa, 1e-10).all()


def test_batch_shapes_and_2019_helpers():
    """The 2019 (N, 1, J, 9) helpers are VPoser's static methods; rotation_tools' upstream names have the
    2021 meanings (tested in test_upstream_2021_tools.py)."""
    from human_body_prior.priors.vposer import VPoser

    aa = torch.tensor(_rotvecs(5 * 21, seed=3)).reshape(5, 1, 21, 3)
    matrot = VPoser.aa2matrot(aa)
    assert matrot.shape == (5, 1, 21, 9)
    np.testing.assert_allclose(matrot.reshape(-1, 3, 3).numpy(),
                               Rotation.from_rotvec(aa.reshape(-1, 3).numpy()).as_matrix(), atol=1e-12)
    back = VPoser.matrot2aa(matrot)
    assert back.shape == (5, 1, 21, 3)
    assert _same_rotvec(back.reshape(-1, 3).numpy(), aa.reshape(-1, 3).numpy(), 1e-10).all()
    assert VPoser.matrot2aa(matrot.reshape(5, 1, 21, 3, 3)).shape == (5, 1, 21, 3)
    with pytest.raises(ValueError, match="matrot2aa expects"):
        rt.matrot2aa(torch.zeros(2, 4))


def test_cont6d_gram_schmidt():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(1000, 6)))
    R = rt.cont6d_to_matrix(x).numpy()
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    a = x.numpy().reshape(-1, 3, 2)
    b1 = a[:, :, 0] / np.linalg.norm(a[:, :, 0], axis=1, keepdims=True)
    np.testing.assert_allclose(R[:, :, 0], b1, atol=1e-12)
    # the second column lies in the plane of a1 and a2, on a2's side
    assert ((R[:, :, 1] * a[:, :, 1]).sum(1) > 0).all()
    Rr = Rotation.random(100, random_state=0).as_matrix()
    np.testing.assert_allclose(rt.cont6d_to_matrix(rt.matrix_to_cont6d(torch.tensor(Rr))).numpy(), Rr, atol=1e-12)


def _edge_inputs() -> torch.Tensor:
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    axis = axis / axis.norm()
    angles = [0.0, 1e-9, 1e-5, 1e-3, 1.0, np.pi - 1e-6, np.pi, np.pi + 1e-6]
    return torch.stack([axis * a for a in angles])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_at_edges(dtype):
    aa = _edge_inputs().to(dtype).requires_grad_(True)
    for fn in (rt.axis_angle_to_matrix, rt.axis_angle_to_quaternion,
               lambda a: rt.matrix_to_axis_angle(rt.axis_angle_to_matrix(a)),
               lambda a: rt.quaternion_to_axis_angle(rt.axis_angle_to_quaternion(a))):
        out = fn(aa)
        (g,) = torch.autograd.grad(out.sum() + (out ** 2).sum(), aa)
        assert torch.isfinite(out).all() and torch.isfinite(g).all()
    x = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    (g,) = torch.autograd.grad(rt.cont6d_to_matrix(x).sum(), x)
    assert torch.isfinite(g).all()


def test_gradients_match_finite_differences():
    aa = _edge_inputs()[[0, 1, 3, 4, 5, 6]].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(rt.axis_angle_to_matrix, (aa,), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(rt.axis_angle_to_quaternion, (aa,), eps=1e-7, atol=1e-6)
    away_from_pi = _edge_inputs()[[0, 2, 3, 4]].clone().requires_grad_(True)
    R = rt.axis_angle_to_matrix(away_from_pi).detach().requires_grad_(True)
    # matrix_to_axis_angle is defined on rotation matrices: perturb within SO(3) via a left rotation
    def through_so3(delta):
        return rt.matrix_to_axis_angle(rt.axis_angle_to_matrix(delta) @ R)
    delta = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(through_so3, (delta,), eps=1e-7, atol=1e-6)
    x = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rt.cont6d_to_matrix, (x,), eps=1e-7, atol=1e-6)
