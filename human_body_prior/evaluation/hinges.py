"""Do knees and elbows bend the anatomical way? (Measured on local body-joint rotations.)

For a hinge joint with local rotation R, b is the unit rest direction of its child bone (knee ->
ankle, elbow -> wrist) and f the unit direction the bone moves to when the joint flexes: backward
(-z) for knees, forward (+z) for elbows (the model's rest pose faces +z with the elbow creases
forward). The flexion angle is atan2(<R b, f>, <R b, b>) and the side angle asin(|<R b, b x f>|).
A joint bends the anatomical way when flexion >= -10 deg (a little hyperextension is human) and
side <= 30 deg.
"""

import numpy as np
import torch

from human_body_prior.body_model.skeleton import HINGES
HYPEREXTENSION_TOL_DEG = 10.0
SIDE_TOL_DEG = 30.0


def hinge_angles(body_rotmats: torch.Tensor, joints_rest: torch.Tensor) -> dict:
    """(N, 21, 3, 3) local body rotations -> {hinge name: (flexion_deg (N,), side_deg (N,))}."""
    out = {}
    for name, _, j, child, flex_dir in HINGES:
        b = joints_rest[child] - joints_rest[j]
        b = b / b.norm()
        f = torch.tensor(flex_dir, dtype=b.dtype, device=b.device)
        f = f - (f @ b) * b  # make the flexion direction exactly perpendicular to the bone
        f = f / f.norm()
        s = torch.linalg.cross(b, f, dim=-1)
        rb = body_rotmats[:, j - 1].to(b.dtype) @ b
        flex = torch.rad2deg(torch.atan2(rb @ f, rb @ b))
        side = torch.rad2deg(torch.asin((rb @ s).abs().clamp(max=1.0)))
        out[name] = (flex, side)
    return out


def anatomical_share(body_rotmats: torch.Tensor, joints_rest: torch.Tensor) -> dict:
    """Share (0..1) of poses whose knees/elbows bend the anatomical way, per hinge and for all four together."""
    res, all_ok = {}, None
    for name, (flex, side) in hinge_angles(body_rotmats, joints_rest).items():
        ok = (flex >= -HYPEREXTENSION_TOL_DEG) & (side <= SIDE_TOL_DEG)
        res[name] = float(ok.double().mean())
        all_ok = ok if all_ok is None else all_ok & ok
    res["all_four"] = float(all_ok.double().mean())
    res["joint_share"] = float(np.mean([res[h.name] for h in HINGES]))
    return res
