"""evaluation/: hinge angles, posture and the aggregate posterior against analytic cases; the old
entry point of the VPoser evaluation still runs."""

import subprocess
import sys

import numpy as np
import pytest
import torch


def test_hinge_angles_analytic():
    from scipy.spatial.transform import Rotation

    from human_body_prior.evaluation.hinges import anatomical_share, hinge_angles

    rest = torch.zeros(55, 3, dtype=torch.float64)
    rest[7] = rest[4] + torch.tensor([0.0, -0.4, 0.0])  # left knee -> ankle straight down
    rest[8] = rest[5] + torch.tensor([0.0, -0.4, 0.0])
    rest[18] = torch.tensor([0.3, 0.4, 0.0])
    rest[20] = rest[18] + torch.tensor([0.25, 0.0, 0.0])  # left forearm along +x (T-pose)
    rest[19] = torch.tensor([-0.3, 0.4, 0.0])
    rest[21] = rest[19] + torch.tensor([-0.25, 0.0, 0.0])
    rest[1], rest[2] = rest[4] + torch.tensor([0.0, 0.4, 0.0]), rest[5] + torch.tensor([0.0, 0.4, 0.0])  # hips above
    rest[16], rest[17] = rest[18] - torch.tensor([0.25, 0.0, 0.0]), rest[19] + torch.tensor([0.25, 0.0, 0.0])
    rots = torch.eye(3, dtype=torch.float64).repeat(3, 21, 1, 1)
    for row, (knee, elbow_l, elbow_r) in enumerate([(40.0, 30.0, 60.0), (-40.0, -30.0, -60.0), (0.0, 0.0, 0.0)]):
        rots[row, 3] = torch.tensor(Rotation.from_euler("x", knee, degrees=True).as_matrix())
        rots[row, 17] = torch.tensor(Rotation.from_euler("y", -elbow_l, degrees=True).as_matrix())
        rots[row, 18] = torch.tensor(Rotation.from_euler("y", elbow_r, degrees=True).as_matrix())
    rots[2, 4] = torch.tensor(Rotation.from_euler("z", 50.0, degrees=True).as_matrix())  # right knee bent sideways
    ang = hinge_angles(rots, rest)
    assert torch.allclose(ang["left_knee"][0], torch.tensor([40.0, -40.0, 0.0], dtype=torch.float64))
    assert torch.allclose(ang["left_elbow"][0], torch.tensor([30.0, -30.0, 0.0], dtype=torch.float64))
    assert torch.allclose(ang["right_elbow"][0], torch.tensor([60.0, -60.0, 0.0], dtype=torch.float64))
    assert torch.allclose(ang["right_knee"][1][2], torch.tensor(50.0, dtype=torch.float64))
    share = anatomical_share(rots, rest)
    assert share["left_knee"] == pytest.approx(2 / 3) and share["right_knee"] == pytest.approx(2 / 3)
    assert share["all_four"] == pytest.approx(1 / 3)
    # flexion is measured from the straight limb: a rest knee bent 5 degrees (SMPL's zero pose) is 5 at
    # zero rotation, and a leg turned 8 degrees straighter than straight is -3, within the tolerance
    bent = rest.clone()
    bent[7] = bent[4] + 0.4 * torch.tensor([0.0, -np.cos(np.radians(5.0)), -np.sin(np.radians(5.0))], dtype=torch.float64)
    rots = torch.eye(3, dtype=torch.float64).repeat(2, 21, 1, 1)
    rots[1, 3] = torch.tensor(Rotation.from_euler("x", -8.0, degrees=True).as_matrix())
    flex, side = hinge_angles(rots, bent)["left_knee"]
    assert torch.allclose(flex, torch.tensor([5.0, -3.0], dtype=torch.float64)) and side.abs().max() < 1e-9


def test_posture_angles_analytic():
    from human_body_prior.evaluation.vposer import posture

    pelvis = torch.tensor([0.0, 100.0, 0.0])
    J = torch.zeros(3, 21, 3, dtype=torch.float64)
    lean = torch.tensor([10.0, -20.0, 0.0])
    J[:, 11] = pelvis + 300 * torch.stack([torch.zeros(3), torch.cos(torch.deg2rad(lean)),
                                           torch.sin(torch.deg2rad(lean))], dim=-1)  # neck
    J[:, 0] = pelvis + torch.tensor([80.0, -50.0, 0.0])  # left hip; its knee 30 deg forward of straight down
    J[:, 3] = J[:, 0] + 400 * torch.tensor([0.0, -np.cos(np.pi / 6), np.sin(np.pi / 6)])
    J[:, 1] = pelvis + torch.tensor([-80.0, -50.0, 0.0])  # right thigh straight down
    J[:, 4] = J[:, 1] + torch.tensor([0.0, -400.0, 0.0])
    p = posture(J, pelvis)
    assert p["trunk_lean_deg"] == pytest.approx(0.0, abs=1e-9)  # median of 10, -20, 0
    assert p["thigh_pitch_deg"] == pytest.approx(0.0, abs=1e-9)  # lower median of 30 x3, 0 x3
    p1 = posture(J[:1], pelvis)
    assert p1["trunk_lean_deg"] == pytest.approx(10.0) and p1["thigh_pitch_deg"] == pytest.approx(0.0, abs=1e-9)


def test_aggregate_posterior_analytic():
    """Var[z] of the mixture of posteriors = Var over poses of mu + mean of sigma^2 (law of total variance)."""
    from human_body_prior.evaluation.vposer import aggregate_posterior

    class FixedEncoder:  # posterior N(mu_i, sigma_i^2) read off the pose itself
        def encode(self, p):
            flat = p.reshape(len(p), -1)
            return torch.distributions.Normal(flat[:, :2], flat[:, 2:4].abs() + 0.1)

    gen = torch.Generator().manual_seed(0)
    poses = torch.randn(5000, 21, 3, generator=gen, dtype=torch.float64)
    res = aggregate_posterior(FixedEncoder(), poses, chunk=700)
    flat = poses.reshape(len(poses), -1)
    mu, sd = flat[:, :2], flat[:, 2:4].abs() + 0.1
    var = mu.var(0) + sd.pow(2).mean(0)
    assert res["mean_abs_mu"] == pytest.approx(float(mu.mean(0).abs().mean()), rel=1e-12)
    assert res["mean_var_z"] == pytest.approx(float(var.mean()), rel=1e-12)
    assert res["min_var_z"] == pytest.approx(float(var.min()), rel=1e-12)
    # standard normal codes with sigma ~ |N(0,1)| + 0.1: Var[z] = 1 + E[(|x| + 0.1)^2] = 2.1596...
    expected = 1 + 1 + 0.2 * (2 / np.pi) ** 0.5 + 0.01
    assert res["mean_var_z"] == pytest.approx(expected, abs=0.06)


def test_old_evaluate_vposer_entry_point_runs():
    from human_body_prior.evaluation import vposer
    from human_body_prior.train import evaluate_vposer

    assert evaluate_vposer.evaluate is vposer.evaluate and evaluate_vposer.main is vposer.main
    res = subprocess.run([sys.executable, "-m", "human_body_prior.train.evaluate_vposer", "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--data-dir" in res.stdout


def test_evaluation_command_reports_progress(tmp_path, capsys):
    """`python -m human_body_prior.evaluation.vposer` was silent for 45 s; each step is now announced."""
    import torch

    from human_body_prior.body_model.synthetic import write_synthetic_model
    from human_body_prior.evaluation import vposer
    from human_body_prior.priors.experiment import write_vposer_experiment
    from human_body_prior.priors.vposer import VPoser

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 40), ("vald", 8), ("test", 8)):
        (tmp_path / "data" / split).mkdir(parents=True)
        torch.save(0.2 * torch.randn(n, 63, generator=g), tmp_path / "data" / split / "pose_body.pt")
    bm = write_synthetic_model(tmp_path / "model.npz", "smplx", num_verts=300, num_shape_columns=20)
    torch.manual_seed(0)
    write_vposer_experiment(tmp_path / "expr", VPoser(num_neurons=16, latentD=4, data_shape=[1, 21, 3]))
    vposer.main(["--expr-dir", str(tmp_path / "expr"), "--data-dir", str(tmp_path / "data"), "--bm-path", str(bm),
                 "--num-samples", "8", "--splits", "vald"])
    err = capsys.readouterr().err.splitlines()
    steps = [ln for ln in err if ln.startswith("evaluating: ")]
    assert len(steps) == 4 and "split vald: encoding and decoding 8 poses" in steps[0], err
    assert "40 training poses" in steps[2]
