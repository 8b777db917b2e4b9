"""Bad-input suite, rotations (the contract in geometry/rotations.py's docstring): a function returns
a rotation or raises ValueError; it never returns a non-rotation, a wrong angle or NaN for finite input.
References: scipy's Rotation."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.geometry import rotations as rt


def _rotations(n, seed=0):
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


def _assert_rotation(R, atol):
    I = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.isfinite(R).all()
    assert torch.allclose(R.transpose(-1, -2) @ R, I, atol=atol)
    assert torch.allclose(torch.linalg.det(R), torch.ones((), dtype=R.dtype), atol=atol)


@pytest.mark.parametrize("fn", [rt.matrix_to_axis_angle, rt.matrix_to_quaternion, rt.geodesic_angle])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_rotations_are_refused(fn, dtype):
    R = _rotations(5).to(dtype)
    for bad, what in ((2 * R, "scaled"), (R * torch.tensor([1.0, 1.0, -1.0], dtype=dtype), "reflection"),
                      (R + 0.05 * torch.ones(3, 3, dtype=dtype), "sheared"),
                      (torch.zeros_like(R), "zero"), (torch.full_like(R, float("nan")), "nan")):
        batch = R.clone()
        batch[3] = bad[3]
        with pytest.raises(ValueError, match=r"\(3,\).*not a rotation"):
            fn(batch)


@pytest.mark.parametrize("dtype,noise", [(torch.float32, 1e-5), (torch.float64, 1e-9)])
def test_rotations_with_round_off_are_accepted(dtype, noise):
    R = _rotations(50, seed=3)
    noisy = R + noise * torch.from_numpy(np.random.default_rng(0).normal(size=R.shape))
    aa = rt.matrix_to_axis_angle(noisy.to(dtype))
    ref = Rotation.from_matrix(R.numpy()).as_rotvec()
    np.testing.assert_allclose(aa.double().numpy(), ref, atol=1e-4 if dtype == torch.float32 else 1e-7)


def test_matrix_input_that_is_a_rotation_to_text_precision_is_accepted():
    R = np.round(Rotation.random(20, random_state=4).as_matrix(), 4)  # 4 decimals, as text files store them
    aa = rt.matrix_to_axis_angle(torch.from_numpy(R))
    np.testing.assert_allclose(Rotation.from_rotvec(aa.numpy()).as_matrix(), R, atol=2e-4)


def test_refusal_keeps_gradients_working():
    R = _rotations(4).requires_grad_(True)
    rt.matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_6d_is_refused(dtype):
    good = rt.matrix_to_cont6d(_rotations(4).to(dtype))
    a = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    for bad in (torch.stack([a, 2 * a], -1).reshape(6),   # collinear columns
                torch.stack([a, -a], -1).reshape(6),      # opposite columns
                torch.stack([torch.zeros(3, dtype=dtype), a], -1).reshape(6),  # zero first column
                torch.stack([a, torch.zeros(3, dtype=dtype)], -1).reshape(6),  # zero second column
                torch.full((6,), float("nan"), dtype=dtype)):
        x = good.clone()
        x[2] = bad
        with pytest.raises(ValueError, match=r"6-D input \(2,\)"):
            rt.cont6d_to_matrix(x)


def test_general_6d_gives_a_rotation():
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1000, 6)))
    _assert_rotation(rt.cont6d_to_matrix(x), 1e-12)
    _assert_rotation(rt.cont6d_to_matrix(x.float()), 1e-5)


@pytest.mark.parametrize("angle", [1e20, 1e30, 3e38, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_angles_give_a_rotation_not_nan(angle, dtype):
    """Past ~1e19 rad the float32 square of the angle overflows (it gave NaN). The angle of such a vector
    is only known to its float spacing (1e12 rad at 1e20), so what is checked is a valid rotation, the
    same one from both conversion paths."""
    aa = torch.tensor(np.array([0.36, -0.48, 0.8]) * angle, dtype=dtype)
    R = rt.axis_angle_to_matrix(aa)
    _assert_rotation(R, 1e-5 if dtype == torch.float32 else 1e-12)
    q = rt.axis_angle_to_quaternion(aa)
    assert torch.isfinite(q).all() and abs(float(q.norm()) - 1) < 1e-5
    torch.testing.assert_close(rt.quaternion_to_matrix(q), R, atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=0)


def test_huge_angle_guard_leaves_ordinary_vectors_bit_identical(monkeypatch):
    """On the CPU a batch without huge angles skips the guard; the branchless path (CUDA, compiling:
    forced here) and a batch that mixes in a huge vector give the ordinary rows bit for bit the same
    rotations and gradients."""
    aa = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def rotations_and_grad(x):
        x = x.clone().requires_grad_(True)
        R = rt.axis_angle_to_matrix(x)
        R[:64].sum().backward()
        return R[:64].detach(), x.grad[:64]

    fast = rotations_and_grad(aa)
    mixed = rotations_and_grad(torch.cat([aa, torch.tensor([[1e20, 0.0, 0.0]], dtype=aa.dtype)]))
    monkeypatch.setattr(rt, "_is_compiling", lambda: True)
    branchless = rotations_and_grad(aa)
    for other in (mixed, branchless):
        assert all(torch.equal(a, b) for a, b in zip(fast, other))
    np.testing.assert_allclose(fast[0].numpy(), Rotation.from_rotvec(aa.numpy()).as_matrix(), atol=1e-12)


@pytest.mark.parametrize("angle", [4.0, 123.456, 12345.678])
def test_large_angles_match_scipy(angle):
    aa = np.array([0.36, -0.48, 0.8]) * angle
    ref = Rotation.from_rotvec(aa).as_matrix()
    np.testing.assert_allclose(rt.axis_angle_to_matrix(torch.from_numpy(aa)).numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(rt.quaternion_to_matrix(rt.axis_angle_to_quaternion(torch.from_numpy(aa))).numpy(),
                               ref, atol=1e-10)


def test_zero_quaternion_is_refused():
    q = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]])
    for fn in (rt.quaternion_to_matrix, rt.quaternion_to_axis_angle):
        with pytest.raises(ValueError, match=r"quaternion \(1,\)"):
            fn(q)


@pytest.mark.parametrize("k", [1e-3, 1e-4])
def test_nearly_collinear_6d_still_gives_a_rotation(k):
    """One Gram-Schmidt pass left b1.b2 = 0.0075 for columns 1e-4 apart in float32 (a non-rotation
    without an error); the result is orthonormal to rounding now."""
    a, d = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.3, -0.2, 0.0333])
    R = rt.cont6d_to_matrix(torch.stack([a, a + k * d], -1).reshape(1, 6))
    _assert_rotation(R, 1e-6)

