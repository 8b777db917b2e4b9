"""Training-time pose jitter (priors/augmentation.py): each joint turned by exp([e]), e ~ N(0, sigma^2 I),
checked against scipy's rotation composition and the size of the turns; off at 0; no global RNG use."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from human_body_prior.priors.augmentation import jitter_poses


def _poses(n=64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(scale=0.8, size=(n, 21, 3)))


def test_jitter_composes_the_drawn_turn_on_the_right():
    pose = _poses()
    out = jitter_poses(pose, 7.0, torch.Generator().manual_seed(3))
    e = torch.randn(pose.shape, generator=torch.Generator().manual_seed(3), dtype=pose.dtype) * math.radians(7.0)
    expect = Rotation.from_rotvec(pose.reshape(-1, 3).numpy()) * Rotation.from_rotvec(e.reshape(-1, 3).numpy())
    got = Rotation.from_rotvec(out.reshape(-1, 3).numpy())
    np.testing.assert_allclose(got.as_matrix(), expect.as_matrix(), atol=1e-9)


def test_turn_sizes_follow_sigma():
    pose = _poses(4000, seed=1)
    out = jitter_poses(pose, 5.0, torch.Generator().manual_seed(0))
    turn = Rotation.from_rotvec(pose.reshape(-1, 3).numpy()).inv() * Rotation.from_rotvec(out.reshape(-1, 3).numpy())
    rms = np.sqrt(np.mean(turn.magnitude() ** 2))
    assert rms == pytest.approx(math.radians(5.0) * math.sqrt(3.0), rel=0.02)  # |e| of a 3-D normal


def test_zero_is_off_and_bad_sigma_is_refused():
    pose = _poses(8)
    assert jitter_poses(pose, 0.0, torch.Generator().manual_seed(0)) is pose
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="pose jitter"):
            jitter_poses(pose, bad, torch.Generator())


def test_global_generators_untouched():
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    jitter_poses(_poses(8), 5.0, torch.Generator().manual_seed(1))
    assert torch.equal(torch.random.get_rng_state(), before)
