"""The pose prior's weight in fitting (issue 27): the objective is data + w * prior for every pose space,
and the VPoser fit's latent code is pulled towards the origin harder as the weight grows.

References, independent of the fitting engine: joints from BodyModel.forward (tested against smplx
elsewhere), the squared error written out here, |z|^2 / |pose|^2 written out here, and the mixture
energy from scipy's Gaussian log-density.
"""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.stats import multivariate_normal

from human_body_prior.body_model.body_model import BodyModel
from human_body_prior.body_model.synthetic import write_synthetic_model
from human_body_prior.fitting import BodyFitter, JointTargets3D, Stage, fit_body
from human_body_prior.priors.gmm import GMMPosePrior
from fitting_fixtures import tame_vposer

LATENT = 8
B = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small synthetic SMPL-X body (float64) and a VPoser whose decoder gives moderate poses
    (fitting_fixtures.tame_vposer, as in tests/test_fitting.py)."""
    d = tmp_path_factory.mktemp("prior_weight")
    bm_path = write_synthetic_model(d / "SMPLX_SYN.npz", "smplx", num_verts=300, num_shape_columns=20, seed=3)
    vp = tame_vposer(LATENT).double().eval()
    bm = BodyModel(bm_fname=str(bm_path), dtype=torch.float64)
    return bm, vp


def _variables(vp, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, LATENT, generator=g, dtype=torch.float64)
    root = torch.as_tensor(Rotation.random(B, random_state=seed).as_rotvec(), dtype=torch.float64)
    trans = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.5
    with torch.no_grad():
        pose = vp.decode(z, output_type="aa").reshape(B, 63)
    return z, root, trans, pose


def _joints(bm, root, pose, trans):
    with torch.no_grad():
        return BodyModel.forward(bm, root_orient=root, pose_body=pose, trans=trans).Jtr[:, :22]


def _objective_at(fitter, targets, init):
    """The fit's objective (summed over frames) at exactly `init`: one Adam step of size 0 leaves every
    variable where it is, and the fit records the objective after the stage."""
    r = fitter.fit(JointTargets3D(targets), init=init, write_back=False)
    for k in ("root_orient", "trans"):
        torch.testing.assert_close(getattr(r, k), init[k], rtol=0, atol=0)  # really at the given point
    return r.history[0]


def _small_gmm(seed=0, K=3, D=63):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1.5, K)
    w /= w.sum()
    mu = rng.normal(scale=0.3, size=(K, D))
    A = rng.normal(size=(K, D, D)) * 0.05
    cov = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(D)
    return w, mu, cov


def _gmm_energy_reference(w, mu, cov, pose):
    """-log max_k w_k N(x; mu_k, Sigma_k), from scipy."""
    x = pose.detach().numpy()
    logs = np.stack([np.log(w[k]) + multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(len(w))], -1)
    return torch.as_tensor(-logs.max(-1))


class _GMMFitter(BodyFitter):
    """A GMM energy on the axis-angle ('l2') space through the engine's prior_term hook, as the prior
    benchmark fits with the GMM."""

    def __init__(self, bm, gmm, **kwargs):
        super().__init__(bm, pose_prior="l2", **kwargs)
        self._gmm = gmm

    def prior_term(self, pose_var):
        return self._gmm.energy(pose_var)


@pytest.mark.parametrize("space", ["vposer", "l2", "none", "gmm", "gmm_hook"])
def test_objective_is_data_plus_weighted_prior_at_fixed_variables(setup, space):
    bm, vp = setup
    z, root, trans, pose = _variables(vp, seed=11)
    # targets: another body plus noise, so that the data term is far from zero
    z2, root2, trans2, pose2 = _variables(vp, seed=12)
    targets = _joints(bm, root, pose2, trans) + 0.03 * torch.randn(B, 22, 3, generator=torch.Generator().manual_seed(1),
                                                                   dtype=torch.float64)
    if space == "vposer":
        init = dict(root_orient=root, trans=trans, poZ_body=z)
        prior_ref = (z.numpy() ** 2).sum(-1)
    else:
        init = dict(root_orient=root, trans=trans, pose_body=pose)
        prior_ref = {"l2": (pose.numpy() ** 2).sum(-1), "none": np.zeros(B)}.get(space)
    if space.startswith("gmm"):
        w, mu, cov = _small_gmm()
        prior_ref = _gmm_energy_reference(w, mu, cov, pose).numpy()
    data_ref = ((_joints(bm, root, pose, trans) - targets) ** 2).sum((-1, -2)).numpy()
    assert data_ref.sum() > 0.05 and abs(prior_ref).sum() > 0.05 or space == "none"

    seen = []
    for weight, scale in ((0.02, 1.0), (0.5, 3.0)):
        kwargs = dict(prior_weight=weight, optimizer="adam", lr=0.0, stages=[Stage(scale, 1)])
        if space == "gmm":  # a PosePrior without a latent space, through the interface
            fitter = BodyFitter(bm, pose_prior=GMMPosePrior(w, mu, cov, dtype=torch.float64), **kwargs)
        elif space == "gmm_hook":
            fitter = _GMMFitter(bm, GMMPosePrior(w, mu, cov, dtype=torch.float64), **kwargs)
        else:
            fitter = BodyFitter(bm, pose_prior=space, vposer=vp if space == "vposer" else None, **kwargs)
        value = _objective_at(fitter, targets, init)
        expected = data_ref.sum() + weight * scale * prior_ref.sum()
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), (space, weight, scale)
        seen.append(value)
    if space != "none":  # the two weights give different objectives: the prior is really in it
        assert abs(seen[1] - seen[0]) > 0.1 * abs(seen[0])


def test_latent_norm_shrinks_as_the_prior_weight_grows(setup):
    """Fitting known bodies: with a tiny weight the latent code goes where the data puts it (|z|^2 of the
    order of the truth's, ~LATENT); with weight 1 (m^2 per frame per unit |z|^2, far above the data term
    of a few cm) the minimiser of data + w |z|^2 is pulled close to the origin."""
    bm, vp = setup
    g = torch.Generator().manual_seed(1)
    z = torch.randn(B, LATENT, generator=g, dtype=torch.float64)
    root = torch.as_tensor(Rotation.random(B, random_state=1).as_rotvec(), dtype=torch.float64)
    trans = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.5
    with torch.no_grad():
        targets = _joints(bm, root, vp.decode(z, output_type="aa").reshape(B, 63), trans)
    truth_norm = float((z ** 2).sum(-1).mean())
    norms = {}
    for weight in (1e-4, 1e-2, 1.0):
        r = fit_body(bm, JointTargets3D(targets), pose_prior="vposer", vposer=vp, prior_weight=weight,
                     stages=[Stage(10.0, 30), Stage(1.0, 30)], write_back=False)
        norms[weight] = float((r.poZ_body ** 2).sum(-1).mean())
    assert norms[1e-4] > 0.25 * truth_norm, (norms, truth_norm)
    assert norms[1.0] < 0.01, norms
    assert norms[1e-4] > norms[1e-2] > norms[1.0], norms


def test_a_prior_without_a_default_weight_needs_one(setup):
    bm, _ = setup
    w, mu, cov = _small_gmm()
    with pytest.raises(ValueError, match="prior_weight"):
        BodyFitter(bm, pose_prior=GMMPosePrior(w, mu, cov, dtype=torch.float64))
    with pytest.raises(ValueError, match="PosePrior"):
        BodyFitter(bm, pose_prior="gmm")
