"""Do knees and elbows bend the anatomical way? (Measured on local body-joint rotations.)

For a hinge joint with local rotation R, b is the unit rest direction of its child bone (knee ->
ankle, elbow -> wrist), a the unit rest direction of the upper bone (hip -> knee, shoulder -> elbow)
and f the direction the bone moves to when the joint flexes: backward (-z) for knees, forward (+z)
for elbows (the model's rest pose faces +z with the elbow creases forward). The flexion angle is
measured from the straight limb, atan2(<R b, f_a>, <R b, a>) with f_a the part of f perpendicular to
a (SMPL's zero pose bends the knee 5 degrees: a straight leg is flexion 0, not -5); the side angle
asin(|<R b, b x f_b>|) with f_b perpendicular to b. A joint bends the anatomical way when flexion >=
-STRAIGHT_TOL_DEG (15 deg; within it of straight a hinge's direction is undecided, and a little
hyperextension is human: the package's one threshold, :mod:`human_body_prior.data.hinge_bend`) and
side <= 30 deg.
"""

import numpy as np
import torch

from human_body_prior.data.hinge_bend import STRAIGHT_TOL_DEG
from human_body_prior.model_types.joints import HINGES

SIDE_TOL_DEG = 30.0


def hinge_angles(body_rotmats: torch.Tensor, joints_rest: torch.Tensor) -> dict:
    """(N, 21, 3, 3) local body rotations -> {hinge name: (flexion_deg (N,), side_deg (N,))}."""
    out = {}
    for name, upper, j, child, flex_dir in HINGES:
        b = joints_rest[child] - joints_rest[j]
        b = b / b.norm()
        a = joints_rest[j] - joints_rest[upper]
        a = a / a.norm()
        f = torch.tensor(flex_dir, dtype=b.dtype, device=b.device)
        f_a = f - (f @ a) * a  # flexion direction perpendicular to the upper bone
        f_a = f_a / f_a.norm()
        f_b = f - (f @ b) * b  # and to the lower bone's rest direction
        s = torch.linalg.cross(b, f_b / f_b.norm(), dim=-1)
        rb = body_rotmats[:, j - 1].to(b.dtype) @ b
        flex = torch.rad2deg(torch.atan2(rb @ f_a, rb @ a))
        side = torch.rad2deg(torch.asin((rb @ s).abs().clamp(max=1.0)))
        out[name] = (flex, side)
    return out


def anatomical_share(body_rotmats: torch.Tensor, joints_rest: torch.Tensor) -> dict:
    """Share (0..1) of poses whose knees/elbows bend the anatomical way, per hinge and for all four together."""
    res, all_ok = {}, None
    for name, (flex, side) in hinge_angles(body_rotmats, joints_rest).items():
        ok = (flex >= -STRAIGHT_TOL_DEG) & (side <= SIDE_TOL_DEG)
        res[name] = float(ok.double().mean())
        all_ok = ok if all_ok is None else all_ok & ok
    res["all_four"] = float(all_ok.double().mean())
    res["joint_share"] = float(np.mean([res[h.name] for h in HINGES]))
    return res
