"""Fit a body's pose, orientation, translation (and optionally shape) to 3D joints and 2D keypoints.

Three pose spaces, same engine:
- 'vposer': the free variable is the VPoser latent code poZ_body (B, latentD), decoded to pose_body;
  the prior is prior_weight * |poZ_body|^2 per frame (the seed's "L2 norm on poZ_body").
- 'l2': pose_body (B, 63) axis-angle directly, with prior_weight * |pose_body|^2.
- 'none': pose_body directly, no pose prior.

The loss is summed over frames, so one optimisation fits a whole batch; frames do not interact
(except through shared betas). Weights are staged: each Stage scales the prior weight, so a strong
prior first keeps the pose natural while the body finds its place, and a relaxed one lets it match.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from human_body_prior.fitting.batched_lbfgs import batched_lbfgs
from human_body_prior.fitting.joints_model import PosedJoints
from human_body_prior.fitting.losses import confidence_weighted_error
from human_body_prior.fitting.observations import JointTargets3D, Keypoints2D, check_joint_ids
from human_body_prior.fitting.rigid import kabsch
from human_body_prior.tools.rotation_tools import axis_angle_to_matrix, matrix_to_axis_angle

POSE_PRIORS = ("vposer", "l2", "none")
# 'lbfgs': L-BFGS per frame (own history and backtracking line search, batched evaluations);
# 'lbfgs_strong_wolfe': torch.optim.LBFGS with strong-Wolfe line search over the whole batch as one
# problem (used by 'lbfgs' too for stages that fit betas shared by the batch); 'adam': torch Adam.
OPTIMIZERS = ("lbfgs", "lbfgs_strong_wolfe", "adam")
# Default prior weights, in units of the data term (m^2 per frame). On noisy (20 mm), incomplete real
# joints of the vald split the VPoser fit is flat within 0.5 mm for weights 1e-5..3e-3 (docs/FITTING.md).
DEFAULT_PRIOR_WEIGHT = {"vposer": 1e-3, "l2": 1e-4, "none": 0.0}
DEFAULT_BETAS_WEIGHT = 1e-4
# Torso joints of the SMPL family (pelvis, hips, spine1-3, neck, collars, shoulders): a near-rigid
# set used to initialise the global orientation.
TORSO_JOINTS = (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17)


@dataclass
class Stage:
    """One optimisation stage. prior_scale multiplies prior_weight; iterations: LBFGS iterations or
    Adam steps; pose: also optimise the pose (False: orientation/translation only); betas: also
    optimise betas (when the fit has fit_betas=True)."""
    prior_scale: float
    iterations: int
    pose: bool = True
    betas: bool = True


def default_stages(optimizer: str, has_2d_only: bool) -> list:
    """Strong prior first, then relaxed. Adam takes more, cheaper steps than LBFGS."""
    n = 300 if optimizer == "adam" else 40
    stages = [Stage(10.0, n), Stage(1.0, n)]
    if has_2d_only:
        stages.insert(0, Stage(10.0, n // 2, pose=False, betas=False))
    return stages


@dataclass
class FitResult:
    """Fitted parameters (tensors on the model's device) and diagnostics.

    root_orient (B, 3), pose_body (B, 63), trans (B, 3), betas (1 or B, num_betas), poZ_body
    (B, latentD) or None, joints (B, J_model, 3) posed joints of the fitted bodies, data_loss (B,)
    final data term per frame, history: total loss after each stage.
    """
    root_orient: torch.Tensor
    pose_body: torch.Tensor
    trans: torch.Tensor
    betas: torch.Tensor
    poZ_body: torch.Tensor
    joints: torch.Tensor
    data_loss: torch.Tensor
    history: list = field(default_factory=list)

    def as_numpy(self) -> dict:
        out = {k: getattr(self, k).detach().cpu().numpy() for k in
               ("root_orient", "pose_body", "trans", "betas", "joints", "data_loss")}
        if self.poZ_body is not None:
            out["poZ_body"] = self.poZ_body.detach().cpu().numpy()
        return out


def _find_vposer(bm, vposer):
    if vposer is not None:
        return vposer
    poser = getattr(bm, "poser_body_pt", None)
    if poser is None:
        raise ValueError("pose_prior='vposer' needs a VPoser: pass vposer=... or a BodyModelWithPoser")
    return poser


class BodyFitter:
    """Fits SMPL-family bodies to observations; see fit() and the module docstring.

    bm: BodyModel or BodyModelWithPoser (SMPL, SMPL-H or SMPL-X; any device and dtype).
    pose_prior: 'vposer' | 'l2' | 'none'. vposer: a VPoser with 21 joints (default: the poser of a
    BodyModelWithPoser). prior_weight: weight of the pose prior (default DEFAULT_PRIOR_WEIGHT).
    optimizer: 'lbfgs' (strong-Wolfe line search) or 'adam'; lr: Adam step size (LBFGS uses 1).
    stages: list of Stage (default: default_stages()). fit_betas: also fit betas, shared by the
    whole batch (shared_betas=True) or per frame, with betas_weight * |betas|^2.
    """

    def __init__(self, bm, pose_prior="vposer", vposer=None, prior_weight=None, optimizer="lbfgs", lr=0.03,
                 stages=None, fit_betas=False, shared_betas=True, betas_weight=DEFAULT_BETAS_WEIGHT):
        if pose_prior not in POSE_PRIORS:
            raise ValueError(f"pose_prior must be one of {POSE_PRIORS}, got {pose_prior!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.bm = bm
        self.joints_model = PosedJoints(bm)
        self.pose_prior = pose_prior
        self.vposer = _find_vposer(bm, vposer) if pose_prior == "vposer" else None
        if self.vposer is not None:
            if self.vposer.num_joints != 21:
                raise ValueError(f"the VPoser outputs {self.vposer.num_joints} joints; body fitting needs a "
                                 "21-joint (pose_body) VPoser")
            self.vposer = self.vposer.to(device=self.device, dtype=self.dtype).eval()
            self.vposer.requires_grad_(False)
        self.prior_weight = DEFAULT_PRIOR_WEIGHT[pose_prior] if prior_weight is None else float(prior_weight)
        if self.prior_weight < 0 or not math.isfinite(self.prior_weight):
            raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight}")
        self.optimizer = optimizer
        self.lr = float(lr)
        self.stages = stages
        self.fit_betas = bool(fit_betas)
        self.shared_betas = bool(shared_betas)
        self.betas_weight = float(betas_weight)

    @property
    def device(self):
        return self.joints_model.device

    @property
    def dtype(self):
        return self.joints_model.dtype

    # ------------------------------------------------------------------ pieces
    def decode(self, pose_var: torch.Tensor) -> torch.Tensor:
        """The free pose variable -> pose_body (B, 63)."""
        if self.pose_prior == "vposer":
            return self.vposer.decode(pose_var, output_type="aa").reshape(pose_var.shape[0], 63)
        return pose_var

    def decode_rotations(self, pose_var: torch.Tensor) -> torch.Tensor:
        """The free pose variable -> local body joint rotations (B, 21, 3, 3), without the round trip
        through axis-angle that decode() makes."""
        B = pose_var.shape[0]
        if self.pose_prior == "vposer":
            return self.vposer.decode(pose_var, output_type="matrot").reshape(B, 21, 3, 3)
        return axis_angle_to_matrix(pose_var.reshape(B, 21, 3))

    def posed_joints(self, root_orient, pose_var, trans, betas, num_joints=None) -> torch.Tensor:
        """Joints (B, n, 3) of the bodies the variables stand for (n: default all model joints)."""
        return self.joints_model.from_rotations(axis_angle_to_matrix(root_orient), self.decode_rotations(pose_var),
                                                trans, betas, num_joints)

    def prior_term(self, pose_var: torch.Tensor) -> torch.Tensor:
        """(B,) per-frame prior before weighting: |poZ_body|^2 or |pose_body|^2 (0 for 'none')."""
        if self.pose_prior == "none":
            return pose_var.new_zeros(pose_var.shape[0])
        return (pose_var * pose_var).sum(-1)

    def _prepare(self, observations):
        if isinstance(observations, (JointTargets3D, Keypoints2D)):
            observations = [observations]
        observations = list(observations)
        if not observations:
            raise ValueError("nothing to fit: give at least one JointTargets3D or Keypoints2D")
        sizes = {o.batch_size for o in observations}
        if len(sizes) != 1:
            raise ValueError(f"observations have different frame counts {sorted(sizes)}")
        prepared = []
        jm = self.joints_model
        for o in observations:
            if not isinstance(o, (JointTargets3D, Keypoints2D)):
                raise TypeError(f"observations must be JointTargets3D or Keypoints2D, got {type(o).__name__}")
            ids = check_joint_ids(o.joint_ids, o.targets.shape[1], jm.num_joints, jm.model_type)
            item = dict(obs=o, ids=torch.as_tensor(ids, device=self.device),
                        target=torch.as_tensor(o.targets, dtype=self.dtype, device=self.device),
                        conf=torch.as_tensor(o.conf, dtype=self.dtype, device=self.device))
            if isinstance(o, Keypoints2D):
                item["camera"] = o.camera.to(device=self.device, dtype=self.dtype)
                item["scale"] = item["camera"].focal_length.mean(-1, keepdim=True)  # (1 or B, 1)
                item["robust"] = None if o.robust_sigma is None else o.robust_sigma
            prepared.append(item)
        return prepared, sizes.pop()

    def data_term(self, prepared, joints: torch.Tensor) -> torch.Tensor:
        """Per-frame weighted data term (B,) of posed joints (B, J_model, 3)."""
        total = joints.new_zeros(joints.shape[0])
        for item in prepared:
            o = item["obs"]
            pred = joints[:, item["ids"]]
            if isinstance(o, Keypoints2D):
                cam = item["camera"]
                pred = cam.project(pred)
                sigma = None if o.robust_sigma is None else o.robust_sigma / float(item["scale"].mean())
                err = confidence_weighted_error(pred, item["target"], item["conf"], sigma, item["scale"].unsqueeze(-1))
            else:
                err = confidence_weighted_error(pred, item["target"], item["conf"], o.robust_sigma)
            total = total + o.weight * err
        return total

    # ------------------------------------------------------------------ initialisation
    def _initial_global(self, prepared, B, pose_body, betas):
        """root_orient (B, 3) and trans (B, 3): Kabsch of the torso onto 3D targets when there are
        any, else a camera-facing body at the depth that matches the 2D torso size."""
        zero3 = pose_body.new_zeros(B, 3)
        with torch.no_grad():
            rest = self.joints_model(zero3, pose_body, zero3, betas)  # root at identity, no translation
            pelvis = rest[:, 0]
            three_d = [it for it in prepared if isinstance(it["obs"], JointTargets3D)]
            if three_d:
                src, dst, w = [], [], []
                for it in three_d:
                    ids = it["ids"]
                    torso = torch.as_tensor([j in TORSO_JOINTS for j in ids.tolist()], device=self.device)
                    wt = it["conf"] * torso.to(self.dtype)
                    # frames without 3 torso joints fall back to all their joints
                    few = ((wt > 0).sum(-1, keepdim=True) < 3)
                    w.append(torch.where(few, it["conf"], wt))
                    src.append(rest[:, ids])
                    dst.append(it["target"])
                R, t = kabsch(torch.cat(src, 1), torch.cat(dst, 1), torch.cat(w, 1))
            else:
                it = prepared[0]
                cam = it["camera"]
                ids = it["ids"]
                R_cam = cam.rotation.expand(B, 3, 3)
                flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=self.dtype, device=self.device))
                R = R_cam.transpose(-1, -2) @ flip  # upright (image y down) and facing the camera
                pts = (R.unsqueeze(1) @ (rest[:, ids] - pelvis.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
                torso = torch.as_tensor([j in TORSO_JOINTS for j in ids.tolist()], device=self.device)
                w = it["conf"] * torso.to(self.dtype)
                w = torch.where((w > 0).sum(-1, keepdim=True) < 2, it["conf"], w)
                wn = w / w.sum(-1, keepdim=True)
                c3 = (wn.unsqueeze(-1) * pts).sum(1)
                c2 = (wn.unsqueeze(-1) * it["target"]).sum(1)
                pts_cam = (R_cam.unsqueeze(1) @ (pts - c3.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
                s3 = (wn * pts_cam[..., :2].norm(dim=-1)).sum(-1)
                s2 = (wn * (it["target"] - c2.unsqueeze(1)).norm(dim=-1)).sum(-1) / it["scale"].reshape(-1)
                depth = (s3 / s2.clamp(min=1e-6)).clamp(min=0.1, max=1e3)
                centre = cam.unproject(c2.unsqueeze(1), depth.unsqueeze(1)).squeeze(1)
                # posed = R (x - pelvis) + pelvis + trans: put the torso centroid at `centre`
                return matrix_to_axis_angle(R), centre - c3 - pelvis
            # posed = R (x - pelvis) + pelvis + trans  ==  R x + t
            trans = t + (R @ pelvis.unsqueeze(-1)).squeeze(-1) - pelvis
            return matrix_to_axis_angle(R), trans

    # ------------------------------------------------------------------ fitting
    def fit(self, observations, init=None, write_back=True, verbose=False) -> FitResult:
        """Fit the batch. observations: a JointTargets3D / Keypoints2D or a list of them (same B).

        init: optional dict of initial values: root_orient (B, 3), trans (B, 3), pose_body (B, 63)
        (for 'l2'/'none'), poZ_body (B, latentD) (for 'vposer'), betas; root_orient and trans given
        together skip the automatic global initialisation. write_back: copy the result into the body
        model's parameters when its batch_size equals B. Returns FitResult.
        """
        prepared, B = self._prepare(observations)
        init = dict(init or {})
        dev, dt = self.device, self.dtype

        def init_value(name, shape):
            if name in init and init[name] is not None:
                v = torch.as_tensor(np.asarray(init[name]) if not torch.is_tensor(init[name]) else init[name],
                                    dtype=dt, device=dev)
                if v.dim() == 1:
                    v = v.unsqueeze(0)
                if v.shape[-1] != shape[-1] or v.shape[0] not in (1, shape[0]):
                    raise ValueError(f"init[{name!r}] must have shape {tuple(shape)}, got {tuple(v.shape)}")
                return v.expand(shape).clone()
            return torch.zeros(shape, dtype=dt, device=dev)

        if self.pose_prior == "vposer":
            pose_var = init_value("poZ_body", (B, self.vposer.latentD))
        else:
            pose_var = init_value("pose_body", (B, 63))
        nb = self.joints_model.num_betas
        betas = init_value("betas", (1 if (self.shared_betas and self.fit_betas) else B, nb))
        with torch.no_grad():
            pose0 = self.decode(pose_var)
        if init.get("root_orient") is not None and init.get("trans") is not None:
            root_orient, trans = init_value("root_orient", (B, 3)), init_value("trans", (B, 3))
        else:
            root_orient, trans = self._initial_global(prepared, B, pose0, betas)
        for v in (pose_var, betas, root_orient, trans):
            v.requires_grad_(True)

        num_needed = 1 + max(int(it["ids"].max()) for it in prepared)
        has_2d_only = not any(isinstance(it["obs"], JointTargets3D) for it in prepared)
        stages = self.stages if self.stages is not None else default_stages(self.optimizer, has_2d_only)
        history = []
        for stage in stages:
            params = [root_orient, trans]
            if stage.pose:
                params.append(pose_var)
            if self.fit_betas and stage.betas:
                params.append(betas)
            weight = self.prior_weight * float(stage.prior_scale)

            def frame_loss(root_orient, trans, pose_var, betas):
                joints = self.posed_joints(root_orient, pose_var, trans, betas, num_needed)
                loss = self.data_term(prepared, joints) + weight * self.prior_term(pose_var)
                if self.fit_betas:
                    loss = loss + self.betas_weight * (betas * betas).sum(-1)
                return loss

            def total_loss():
                return frame_loss(root_orient, trans, pose_var, betas).sum()

            coupled = self.fit_betas and stage.betas and betas.shape[0] != B
            if self.optimizer == "lbfgs" and not coupled:
                self._run_batched_lbfgs(frame_loss, params, [root_orient, trans, pose_var, betas], stage.iterations)
            elif self.optimizer in ("lbfgs", "lbfgs_strong_wolfe"):
                def closure():
                    opt.zero_grad(set_to_none=True)
                    loss = total_loss()
                    loss.backward()
                    return loss
                opt = torch.optim.LBFGS(params, lr=1.0, max_iter=int(stage.iterations),
                                        max_eval=3 * int(stage.iterations), history_size=20,
                                        tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")
                opt.step(closure)
                if coupled:  # then refine each frame with the shared betas fixed
                    self._run_batched_lbfgs(frame_loss, params[:-1], [root_orient, trans, pose_var, betas],
                                            stage.iterations)
            elif self.optimizer == "adam":
                opt = torch.optim.Adam(params, lr=self.lr)
                for _ in range(int(stage.iterations)):
                    opt.zero_grad(set_to_none=True)
                    total_loss().backward()
                    opt.step()
            with torch.no_grad():
                history.append(float(total_loss()))
            if verbose:
                print(f"stage prior x{stage.prior_scale:g} ({stage.iterations} it): loss {history[-1]:.6g}")
            if not math.isfinite(history[-1]):
                raise FloatingPointError(f"the fit diverged (loss {history[-1]}) in stage {stage}")

        with torch.no_grad():
            pose_body = self.decode(pose_var)
            joints = self.joints_model(root_orient, pose_body, trans, betas)
            data_loss = self.data_term(prepared, joints)
        result = FitResult(root_orient=root_orient.detach(), pose_body=pose_body.detach(), trans=trans.detach(),
                           betas=betas.detach(), poZ_body=pose_var.detach() if self.pose_prior == "vposer" else None,
                           joints=joints, data_loss=data_loss, history=history)
        if write_back:
            self._write_back(result, B)
        return result

    @staticmethod
    def _run_batched_lbfgs(frame_loss, params, all_vars, iterations):
        """Optimise `params` (a subset of all_vars, each (B, k)) frame by frame with batched_lbfgs;
        the others stay fixed. Writes the result into the tensors in place."""
        ids = [i for i, v in enumerate(all_vars) if any(v is p for p in params)]
        widths = [all_vars[i].shape[1] for i in ids]
        x0 = torch.cat([all_vars[i].detach() for i in ids], dim=1)

        def func(x):
            vals = list(all_vars)
            for i, part in zip(ids, torch.split(x, widths, dim=1)):
                vals[i] = part
            return frame_loss(*vals)

        x, _ = batched_lbfgs(func, x0, max_iter=int(iterations))
        with torch.no_grad():
            for i, part in zip(ids, torch.split(x, widths, dim=1)):
                all_vars[i].copy_(part)

    def _write_back(self, r: FitResult, B: int):
        bm = self.bm
        if getattr(bm, "batch_size", None) != B:
            return
        with torch.no_grad():
            for name in ("root_orient", "trans", "pose_body"):
                getattr(bm, name).copy_(getattr(r, name))
            bm.betas.copy_(r.betas.expand(B, -1))
            if r.poZ_body is not None and hasattr(bm, "poZ_body") and bm.poZ_body.shape == r.poZ_body.shape:
                bm.poZ_body.copy_(r.poZ_body)


def fit_body(bm, observations, pose_prior="vposer", init=None, write_back=True, verbose=False, **kwargs) -> FitResult:
    """One call: BodyFitter(bm, pose_prior, **kwargs).fit(observations, init, write_back, verbose)."""
    return BodyFitter(bm, pose_prior=pose_prior, **kwargs).fit(observations, init=init, write_back=write_back,
                                                               verbose=verbose)
