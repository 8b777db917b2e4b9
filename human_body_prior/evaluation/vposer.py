"""Measure a trained VPoser on held-out poses and on its own samples.

    python -m human_body_prior.evaluation.vposer --expr-dir support_data/vposer_v1_0_open \\
        --data-dir D [--splits vald test] [--num-samples 1000] [--json out.json]

(D: the ``--out-dir`` of ``python -m human_body_prior.data.prepare_open_mocap``.)

All body quantities use the body model ``--bm-path`` (default: the shipped open SMPL-X neutral) posed
by the 21 body joints only (zero root, shape and hands), all vertices, lengths in millimetres.

Held-out splits, encode -> decode with the posterior mean (eval mode):
  * per-joint error: mean Euclidean distance of body joints 1..21 (the root never moves);
  * per-vertex error: mean Euclidean distance over all mesh vertices;
  * KL: mean over poses of KL(q(z|x) || N(0, I)) summed over the latent dimensions (nats);
  * rotation error: geodesic angle between input and decoded local rotation of each body joint, in
    degrees (the mesh alone does not pin down every joint's rotation, so this is checked too).

Samples (``--num-samples`` codes z ~ N(0, I), fixed seed, decoded in eval mode):
  * non-finite count (NaN/inf in the decoded rotations);
  * knees and elbows bent the anatomical way. For a hinge joint with local rotation R, b is the unit
    rest direction of its child bone (knee -> ankle, elbow -> wrist) and f the unit direction the bone
    moves to when the joint flexes: backward (-z) for knees, forward (+z) for elbows (the model's
    rest pose faces +z with the elbow creases forward). The flexion angle is
    atan2(<R b, f>, <R b, b>) and the side angle is asin(|<R b, b x f>|). A joint counts as bent the
    anatomical way when flexion >= -10 deg (a little hyperextension is human) and side <= 30 deg.
    The same shares are reported for the real held-out poses as a reference;
  * distance to the nearest training pose: for each sample the root-mean-square distance (mm) of body
    joints 1..21 to the closest training pose in that same measure (exact search over all training
    poses); reported as median and mean, with the same numbers for held-out test poses as reference.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from human_body_prior import cli
from human_body_prior.body_model.surface import M_TO_MM, BodySurface
from human_body_prior.data.pose_data import load_pose_split
from human_body_prior.evaluation.hinges import anatomical_share
from human_body_prior.geometry.rotations import axis_angle_to_matrix, geodesic_angle
from human_body_prior.model_types.joints import (
    NUM_BODY_JOINTS,
    NUM_POSE_BODY_JOINTS,
    SMPLX_JOINT_NAMES,
)
from human_body_prior.priors.any_vposer import (
    decode_matrot,
    load_any_vposer,
    model_version,
    sample_matrot,
)
from human_body_prior.priors.sampling import kl_to_standard_normal


def _rotmats(poses: torch.Tensor) -> torch.Tensor:
    """(N, 21, 3) axis-angle -> (N, 21, 3, 3)."""
    return axis_angle_to_matrix(poses).reshape(-1, NUM_POSE_BODY_JOINTS, 3, 3)


@torch.no_grad()
def body_joints(surface: BodySurface, body_rotmats: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(N, 21, 3, 3) -> body joints 1..21 positions (N, 21, 3) in mm."""
    out = [surface(body_rotmats[s:s + chunk])[1][:, 1:NUM_BODY_JOINTS] * M_TO_MM
           for s in range(0, len(body_rotmats), chunk)]
    return torch.cat(out)


@torch.no_grad()
def reconstruction_errors(vp, surface: BodySurface, poses: torch.Tensor, chunk: int = 1024) -> dict:
    """Encode -> decode (posterior mean) errors on (N, 21, 3) axis-angle poses."""
    j_err = v_err = kl = 0.0
    rot_err = torch.zeros(NUM_POSE_BODY_JOINTS, dtype=torch.float64)
    for s in range(0, len(poses), chunk):
        p = poses[s:s + chunk]
        q = vp.encode(p)
        rec = decode_matrot(vp, q.loc)
        R_in = _rotmats(p)
        rot_err += torch.rad2deg(geodesic_angle(R_in.double(), rec.double())).sum(0)
        v_in, j_in = surface(R_in)
        v_rec, j_rec = surface(rec)
        j_err += float((j_rec[:, 1:] - j_in[:, 1:]).norm(dim=-1).mean(-1).sum()) * M_TO_MM
        v_err += float((v_rec - v_in).norm(dim=-1).mean(-1).sum()) * M_TO_MM
        kl += float(kl_to_standard_normal(q.loc, q.scale).sum())
    n = len(poses)
    rot_err = rot_err / n
    return {"poses": n, "per_joint_mm": j_err / n, "per_vertex_mm": v_err / n, "kl_nats": kl / n,
            "rotation_error_deg": float(rot_err.mean()),
            "rotation_error_deg_per_joint": {SMPLX_JOINT_NAMES[j + 1]: float(rot_err[j])
                                             for j in range(NUM_POSE_BODY_JOINTS)}}


def posture(joints_mm: torch.Tensor, pelvis_mm: torch.Tensor) -> dict:
    """Median trunk and thigh lean (deg, + forward) of body joints 1..21 (N, 21, 3) posed with the
    root at zero; pelvis_mm (3,) is the root joint, which does not move."""
    J = joints_mm.double()
    trunk = J[:, 11] - pelvis_mm.double()  # neck (joint 12)
    thighs = torch.cat([J[:, 3] - J[:, 0], J[:, 4] - J[:, 1]])  # knees (4, 5) - hips (1, 2)
    lean = torch.rad2deg(torch.atan2(trunk[:, 2], trunk[:, 1]))
    thigh = torch.rad2deg(torch.atan2(thighs[:, 2], -thighs[:, 1]))
    return {"trunk_lean_deg": float(lean.median()), "thigh_pitch_deg": float(thigh.median())}


@torch.no_grad()
def aggregate_posterior(vp, poses: torch.Tensor, chunk: int = 4096) -> dict:
    """Mean over latent dims of |E[mu]| and of Var[z] for the encoder over (N, 21, 3) poses."""
    mus, var = [], []
    for s in range(0, len(poses), chunk):
        q = vp.encode(poses[s:s + chunk])
        mus.append(q.loc.double())
        var.append(q.scale.double().pow(2))
    mu, var = torch.cat(mus), torch.cat(var)
    total = mu.var(0) + var.mean(0)
    return {"mean_abs_mu": float(mu.mean(0).abs().mean()), "mean_var_z": float(total.mean()),
            "min_var_z": float(total.min()), "max_var_z": float(total.max()),
            "mean_posterior_sigma": float(var.sqrt().mean())}


@torch.no_grad()
def nearest_distances(queries_mm: torch.Tensor, reference_mm: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """RMS joint distance (mm) of each query (Q, 21, 3) to its nearest reference pose (R, 21, 3)."""
    ref = reference_mm.reshape(len(reference_mm), -1).double()
    J = queries_mm.shape[1]
    out = []
    for s in range(0, len(queries_mm), chunk):
        q = queries_mm[s:s + chunk].reshape(-1, ref.shape[1]).double()
        out.append(torch.cdist(q, ref).min(dim=1).values / math.sqrt(J))
    return torch.cat(out)


def evaluate(expr_dir, data_dir, splits=("vald", "test"), num_samples=1000, seed=0, bm_path=None,
             num_threads=None, progress=None) -> dict:
    """The numbers of the module docstring. progress: called with a line before each step (the command
    prints them to stderr)."""
    step = progress or (lambda line: None)
    if num_threads:
        torch.set_num_threads(int(num_threads))
    vp, ps = load_any_vposer(expr_dir)
    vp = vp.float().eval()
    if bm_path is None:
        from human_body_prior import default_body_model_path
        bm_path = default_body_model_path("smplx", "neutral")
    surface = BodySurface(bm_path, num_vertices=0)
    joint_surface = BodySurface(bm_path, num_vertices=1)  # joints do not depend on the vertices: skip the mesh
    data_dir = Path(data_dir)
    result = {"model_version": model_version(vp), "expr_dir": str(expr_dir), "data_dir": str(data_dir),
              "bm_path": str(bm_path), "splits": {}}
    for split in splits:
        poses = load_pose_split(data_dir / split)
        step(f"held-out split {split}: encoding and decoding {len(poses)} poses")
        r = reconstruction_errors(vp, surface, poses)
        r["anatomical_real"] = anatomical_share(_rotmats(poses), surface.joints_rest)
        result["splits"][split] = r

    step(f"{num_samples} samples: decoding, hinges")
    samples = sample_matrot(vp, num_samples, seed=seed)
    finite = torch.isfinite(samples).all(dim=(1, 2, 3))
    s = {"num_samples": num_samples, "seed": seed, "non_finite": int((~finite).sum())}
    s["anatomical"] = anatomical_share(samples[finite], surface.joints_rest)
    train = load_pose_split(data_dir / "train")
    step(f"nearest of {len(train)} training poses to each sample")
    train_j = body_joints(joint_surface, _rotmats(train))
    sample_j = body_joints(joint_surface, samples[finite])
    d = nearest_distances(sample_j, train_j)
    s["nearest_train_rms_joint_mm"] = {"median": float(d.median()), "mean": float(d.mean()),
                                       "p90": float(torch.quantile(d, 0.9))}
    if (data_dir / "test").is_dir():
        test = load_pose_split(data_dir / "test")
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(test), generator=gen)[:num_samples]
        dt = nearest_distances(body_joints(joint_surface, _rotmats(test[pick])), train_j)
        s["reference_test_poses_nearest_train_rms_joint_mm"] = {"median": float(dt.median()), "mean": float(dt.mean()),
                                                               "p90": float(torch.quantile(dt, 0.9))}
    pelvis = joint_surface.joints_rest[0] * M_TO_MM
    s["posture"] = posture(sample_j, pelvis)
    s["posture_train"] = posture(train_j, pelvis)
    s["mean_pose_offset_mm"] = float((sample_j.double().mean(0) - train_j.double().mean(0)).norm(dim=-1).mean())
    with torch.no_grad():
        zero = decode_matrot(vp, torch.zeros(1, vp.latentD))
    s["zero_code_posture"] = posture(body_joints(joint_surface, zero), pelvis)
    result["samples"] = s
    step("aggregate posterior of the training poses")
    result["aggregate_posterior"] = aggregate_posterior(vp, train)
    result["train_poses"] = len(train)
    return result


def format_markdown(res: dict) -> str:
    lines = ["| split | poses | per-joint error (mm) | per-vertex error (mm) | KL (nats) | rotation error (deg), mean / worst joint | real poses anatomical (4 hinges) |",
             "|---|---|---|---|---|---|---|"]
    for split, r in res["splits"].items():
        lines.append(f"| {split} | {r['poses']} | {r['per_joint_mm']:.1f} | {r['per_vertex_mm']:.1f} | "
                     f"{r['kl_nats']:.1f} | {r['rotation_error_deg']:.1f} / {max(r['rotation_error_deg_per_joint'].values()):.1f} "
                     f"({max(r['rotation_error_deg_per_joint'], key=r['rotation_error_deg_per_joint'].get)}) | "
                     f"{100 * r['anatomical_real']['all_four']:.1f}% |")
    s = res["samples"]
    a = s["anatomical"]
    lines += ["", f"Samples: {s['num_samples']} (seed {s['seed']}), non-finite: {s['non_finite']}",
              f"Anatomical bending: left knee {100 * a['left_knee']:.1f}%, right knee {100 * a['right_knee']:.1f}%, "
              f"left elbow {100 * a['left_elbow']:.1f}%, right elbow {100 * a['right_elbow']:.1f}%; "
              f"per joint {100 * a['joint_share']:.1f}%, all four at once {100 * a['all_four']:.1f}%",
              f"Nearest training pose (RMS joint distance, mm): median {s['nearest_train_rms_joint_mm']['median']:.1f}, "
              f"mean {s['nearest_train_rms_joint_mm']['mean']:.1f}, 90th percentile {s['nearest_train_rms_joint_mm']['p90']:.1f}"]
    ref = s.get("reference_test_poses_nearest_train_rms_joint_mm")
    if ref:
        lines.append(f"Reference, held-out test poses to nearest training pose: median {ref['median']:.1f}, "
                     f"mean {ref['mean']:.1f}, 90th percentile {ref['p90']:.1f}")
    p, pt, ag = s["posture"], s["posture_train"], res["aggregate_posterior"]
    lines += [f"Posture (root at zero, median lean forward): samples trunk {p['trunk_lean_deg']:.1f} deg, thighs "
              f"{p['thigh_pitch_deg']:.1f} deg; training poses trunk {pt['trunk_lean_deg']:.1f}, thighs "
              f"{pt['thigh_pitch_deg']:.1f}; mean-pose offset {s['mean_pose_offset_mm']:.1f} mm; z = 0 decodes to trunk "
              f"{s['zero_code_posture']['trunk_lean_deg']:.1f} deg, thighs {s['zero_code_posture']['thigh_pitch_deg']:.1f} deg",
              f"Aggregate posterior over the training poses: mean |E[mu]| {ag['mean_abs_mu']:.2f}, Var[z] mean "
              f"{ag['mean_var_z']:.2f} (range {ag['min_var_z']:.2f}-{ag['max_var_z']:.2f}), mean posterior sigma "
              f"{ag['mean_posterior_sigma']:.3f} (N(0, I) has 0 and 1)"]
    return "\n".join(lines)


def save_json(res: dict, path) -> None:
    """Write the numbers of ``evaluate`` to ``path`` atomically."""
    from human_body_prior.files.atomic_io import atomic_write_bytes
    atomic_write_bytes(Path(path), json.dumps(res, indent=1).encode())


def main(argv=None) -> dict:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expr-dir", default=None, help="experiment folder (default: the shipped open VPoser)")
    ap.add_argument("--data-dir", required=True, help="folder with train/ vald/ test/ splits")
    ap.add_argument("--splits", nargs="+", default=["vald", "test"])
    ap.add_argument("--num-samples", type=cli.positive_int, default=1000)
    ap.add_argument("--seed", type=cli.seed, default=0)
    ap.add_argument("--bm-path", default=None)
    ap.add_argument("--num-threads", type=cli.positive_int, default=None)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    expr_dir = args.expr_dir
    if expr_dir is None:
        from human_body_prior import default_vposer_dir
        expr_dir = default_vposer_dir()
    res = evaluate(expr_dir, args.data_dir, args.splits, args.num_samples, args.seed, args.bm_path, args.num_threads,
                   progress=lambda line: print(f"evaluating: {line} ...", file=sys.stderr, flush=True))
    print(format_markdown(res))
    if args.json:
        save_json(res, args.json)
    return res


if __name__ == "__main__":
    sys.exit(cli.run(main))
