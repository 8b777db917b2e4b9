"""A smplify-x-style 2D fit with stock smplx on the open SMPL-X model: how well it recovers held-out poses.

Truth: held-out mocap poses (``--data-dir``/test) on the open neutral SMPL-X model, with the OpenPose-25 body,
2 x 21 hand and 51 face keypoints at their anatomical places (kinematic joints, the file's own
``keypoint_vertex_ids`` and face landmarks), projected by a known pinhole camera (focal 5000 px, body ~10 m
away, as smplify-x's default camera). Fit: stock ``smplx.SMPLX`` on a model file (its own fixed vertex-id
table; a caller cannot pass another), smplify-x's OpenPose mapping of smplx joints, a robust (Geman-McClure,
rho = 100 px) reprojection loss, an L2 pose prior, L-BFGS in two stages (global orientation and translation
on the torso, then everything), zero-pose start. Error: mean per-joint position error of the 22 body joints
after aligning the pelvis (mm).

    python benchmarks/smplifyx_2d_fit.py --data-dir D --model FILE [--ids stock|file]

``--ids file`` replaces smplx's table by the file's ``keypoint_vertex_ids`` (the corrected-ids reference).
"""

import argparse
import json
import time

import numpy as np
import torch

# smplify-x's mapping of smplx output joints to OpenPose (coco25 body, hands, 51 face landmarks), as indices
# into smplx's SMPLX joints: 55 kinematic, 21 extra vertex joints (table order), 51 landmarks.
BODY = [55, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65]
LHAND = [20, 37, 38, 39, 66, 25, 26, 27, 67, 28, 29, 30, 68, 34, 35, 36, 69, 31, 32, 33, 70]
RHAND = [21, 52, 53, 54, 71, 40, 41, 42, 72, 43, 44, 45, 73, 49, 50, 51, 74, 46, 47, 48, 75]
FACE = list(range(76, 127))
OPENPOSE = BODY + LHAND + RHAND + FACE
TORSO = [2, 5, 9, 12]  # OpenPose shoulders and hips
# smplx's VertexJointSelector order of the 21 extra joints, by keypoint name
EXTRA_ORDER = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
               "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
               "rpinky"]
FOCAL, CAM_Z = 5000.0, 10.0


def make_model(path, ids, batch):
    import smplx

    model = smplx.SMPLX(path, ext="npz", batch_size=batch, use_pca=False, flat_hand_mean=True,
                        use_face_contour=False, dtype=torch.float32)
    if ids is not None:  # corrected ids: what a caller would need to patch into smplx by hand
        model.vertex_joint_selector.extra_joints_idxs = torch.as_tensor(ids, dtype=torch.long)
    return model


def file_keypoint_ids(path):
    from human_body_prior.body_model.model_io import load_model_file
    from human_body_prior.open_model.landmarks import KEYPOINT_NAMES

    kp = dict(zip(KEYPOINT_NAMES, load_model_file(path)["keypoint_vertex_ids"].tolist()))
    return [kp[n] for n in EXTRA_ORDER]


def project(points):
    return FOCAL * points[..., :2] / (points[..., 2:3] + CAM_Z)


def forward(model, p, vposer=None):
    body = p["body"] if vposer is None else vposer.decode(p["z"], output_type="aa").reshape(-1, 63)
    out = model(global_orient=p["orient"], body_pose=body, left_hand_pose=p["lhand"],
                right_hand_pose=p["rhand"], transl=p["transl"], return_verts=False)
    return out.joints


def fit(model, target_2d, batch, iters=(30, 120), prior=1e-2, rho=100.0, vposer=None):
    """Stage 1: orientation and translation on the torso; stage 2: everything. The body pose is either free
    axis-angle with an L2 prior or, like smplify-x with VPoser, decoded from a latent z with prior |z|^2."""
    p = {k: torch.zeros(batch, n, requires_grad=True) for k, n in
         (("orient", 3), ("body" if vposer is None else "z", 63 if vposer is None else 32), ("lhand", 45),
          ("rhand", 45), ("transl", 3))}

    def gmof(residual):
        sq = (residual ** 2).sum(-1)
        return rho ** 2 * sq / (sq + rho ** 2)

    for stage, (names, sel) in enumerate(((("orient", "transl"), TORSO), (tuple(p), list(range(len(OPENPOSE)))))):
        opt = torch.optim.LBFGS([p[n] for n in names], lr=1.0, max_iter=iters[stage], line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            pred = project(forward(model, p, vposer)[:, OPENPOSE])[:, sel]
            loss = gmof(pred - target_2d[:, sel]).sum()
            if stage:
                body = p["body"] if vposer is None else p["z"]
                loss = loss + prior * 1e4 * ((body ** 2).sum() + 0.1 * (p["lhand"] ** 2 + p["rhand"] ** 2).sum())
            loss.backward()
            return loss

        opt.step(closure)
    return p


def run(data_dir, model_path, ids, num_poses=16, seed=0, threads=1, prior=1e-2, iters=(30, 120), use_vposer=False):
    torch.set_num_threads(threads)
    poses = torch.load(f"{data_dir}/test/pose.pt")
    rng = np.random.default_rng(seed)
    idx = torch.as_tensor(rng.choice(len(poses), size=num_poses, replace=False))
    truth_pose = poses[idx].float()
    B = num_poses
    # truth: the file with its anatomical keypoint vertices
    truth_model = make_model(model_path, file_keypoint_ids(model_path), B)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        truth_p = {"orient": 0.2 * torch.randn(B, 3, generator=g), "body": truth_pose,
                   "lhand": 0.3 * torch.randn(B, 45, generator=g), "rhand": 0.3 * torch.randn(B, 45, generator=g),
                   "transl": torch.zeros(B, 3)}
        truth_joints = forward(truth_model, truth_p)
        target = project(truth_joints[:, OPENPOSE])
    model = make_model(model_path, None if ids == "stock" else file_keypoint_ids(model_path), B)
    t0 = time.perf_counter()
    vposer = None
    if use_vposer:  # the shipped open VPoser v1, frozen
        from human_body_prior import default_vposer_dir
        from human_body_prior.tools.model_loader import load_vposer

        vposer = load_vposer(default_vposer_dir())[0].eval()
        for q in vposer.parameters():
            q.requires_grad_(False)
    p = fit(model, target, B, iters=iters, prior=prior, vposer=vposer)
    with torch.no_grad():
        est = forward(model, p, vposer)
        est_kin = est[:, :22] - est[:, :1]
        tru_kin = truth_joints[:, :22] - truth_joints[:, :1]
        mpjpe = 1000 * (est_kin - tru_kin).norm(dim=-1).mean(1)
        reproj = (project(est[:, OPENPOSE]) - target).norm(dim=-1).mean(1)
    return {"model": str(model_path), "ids": ids, "prior": ("vposer |z|^2 x " if use_vposer else "L2 x ") + str(prior),
            "iterations": list(iters), "poses": B, "seconds": round(time.perf_counter() - t0, 1),
            "mpjpe_mm_mean": round(float(mpjpe.mean()), 1), "mpjpe_mm_median": round(float(mpjpe.median()), 1),
            "mpjpe_mm_range": [round(float(mpjpe.min()), 1), round(float(mpjpe.max()), 1)],
            "reprojection_px_mean": round(float(reproj.mean()), 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--model", required=True, help="SMPL-X .npz model file")
    ap.add_argument("--ids", choices=["stock", "file"], default="stock")
    ap.add_argument("--num-poses", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", type=float, default=1e-2, help="weight of the L2 pose prior")
    ap.add_argument("--iters", type=int, nargs=2, default=[30, 120], help="L-BFGS iterations of the two stages")
    ap.add_argument("--vposer", action="store_true", help="body pose through the shipped VPoser (as smplify-x)")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.data_dir, args.model, args.ids, args.num_poses, args.seed, prior=args.prior,
                         iters=tuple(args.iters), use_vposer=args.vposer)))


if __name__ == "__main__":
    main()
