"""The shipped open VPoser generates natural poses: checks on its samples that need no mocap data.

Held-out reconstruction is measured by ``human_body_prior.evaluation.vposer`` on the prepared
mocap splits (MODEL_CARD.md); these checks run on every clone.
"""

import pytest
import torch

from human_body_prior import default_body_model_path, default_vposer_dir
from human_body_prior.evaluation.hinges import anatomical_share
from human_body_prior.evaluation.vposer import body_joints, posture
from human_body_prior.priors.experiment import load_vposer
from human_body_prior.body_model.surface import M_TO_MM, BodySurface


@pytest.fixture(scope="module")
def shipped():
    vp, _ = load_vposer(default_vposer_dir(), verbose=False)
    surface = BodySurface(default_body_model_path("smplx", "neutral"), num_vertices=1, dtype=torch.float64)
    return vp.eval(), surface


def test_samples_bend_knees_and_elbows_the_anatomical_way(shipped):
    vp, surface = shipped
    rot = vp.sample_poses(1000, output_type="matrot", seed=0).reshape(-1, 21, 3, 3).double()
    assert torch.isfinite(rot).all()
    share = anatomical_share(rot, surface.joints_rest)
    for hinge in ("left_knee", "right_knee", "left_elbow", "right_elbow"):
        assert share[hinge] >= 0.99, share


def test_samples_and_mean_code_stand_upright(shipped):
    """With the root at zero, a standing body's trunk is near vertical. A prior whose aggregate
    posterior does not match N(0, I) decodes z = 0 and typical samples into a backward lean
    (an earlier shipped prior: -18 and -22 degrees)."""
    vp, surface = shipped
    pelvis = surface.joints_rest[0] * M_TO_MM
    with torch.no_grad():
        samples = vp.sample_poses(1000, output_type="matrot", seed=1).reshape(-1, 21, 3, 3).double()
        mean_code = vp.decode(torch.zeros(1, vp.latentD), output_type="matrot").reshape(-1, 21, 3, 3).double()
    for rot in (samples, mean_code):
        lean = posture(body_joints(surface, rot), pelvis)["trunk_lean_deg"]
        assert abs(lean) < 8.0, lean
