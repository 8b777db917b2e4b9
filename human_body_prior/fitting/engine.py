"""Fit a body's pose, orientation, translation (and optionally shape) to 3D joints and 2D keypoints.

The method, as BodyFitter.fit runs it:
1. Observations (JointTargets3D, Keypoints2D) are prepared once on the fit's device (prepared.py).
2. The pose starts at the given value or at the pose space's origin (the VPoser mean pose, or zero
   rotations); the body's orientation and translation are initialised from the torso (initialisation.py).
3. Stages (stages.py) minimise, per frame b and summed over the batch,
       E_b = sum_o w_o sum_j c_bj rho(|P_o(J_bj) - t_bj|^2) + lambda_s prior(x_b) [+ beta_w |betas|^2]
   over the pose variable x (pose_space.py), root orientation and translation (and betas), where
   lambda_s = prior_weight * stage.prior_scale: a strong prior first keeps the pose natural while the
   body finds its place, a relaxed one lets it match.
4. With smooth_weight > 0 the batch is one clip, frames in time order: a last stage refines the
   whole clip at once (torch's L-BFGS, smooth_iterations iterations, the last stage's prior scale), each
   frame b also carrying smooth_weight * sum_j |J_(b-1)j - 2 J_bj + J_(b+1)j|^2 (the squared
   acceleration of its joints, m^2 per frame^2; interior frames only). Starting it from the per-frame
   fits matters: from the initial poses, the coupled problem does not converge in a useful budget.
Frames do not interact, except through betas shared by the batch and the smoothness stage.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from human_body_prior.fitting.initialisation import (  # noqa: F401 (re-export)
    TORSO_JOINTS,
    initial_global,
)
from human_body_prior.fitting.joints_model import PosedJoints
from human_body_prior.fitting.losses import acceleration_term
from human_body_prior.fitting.pose_space import make_pose_space
from human_body_prior.fitting.prepared import data_term, prepare_observations
from human_body_prior.fitting.stages import OPTIMIZERS, Stage, default_stages, run_stage
from human_body_prior.geometry.rotations import axis_angle_to_matrix
from human_body_prior.priors import PosePrior

POSE_PRIORS = ("vposer", "l2", "none")
# Default prior weights, in units of the data term (m^2 per frame). On noisy (20 mm), incomplete real
# joints of the vald split the VPoser fit is flat within 0.5 mm for weights 1e-5..3e-3 (docs/FITTING.md).
DEFAULT_PRIOR_WEIGHT = {"vposer": 1e-3, "l2": 1e-4, "none": 0.0}
DEFAULT_BETAS_WEIGHT = 1e-4

__all__ = ["BodyFitter", "FitResult", "Stage", "fit_body", "default_stages", "POSE_PRIORS", "OPTIMIZERS",
           "DEFAULT_PRIOR_WEIGHT", "DEFAULT_BETAS_WEIGHT"]


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


@dataclass
class FitVariables:
    """The free variables of a fit, each (B, k) (betas (1, k) when shared by the batch)."""
    root_orient: torch.Tensor
    trans: torch.Tensor
    pose: torch.Tensor
    betas: torch.Tensor

    def as_list(self) -> list:
        return [self.root_orient, self.trans, self.pose, self.betas]

    def free(self, stage: Stage, fit_betas: bool) -> list:
        """The variables a stage optimises: orientation and translation always, pose and betas if it says so."""
        free = [self.root_orient, self.trans]
        if stage.pose:
            free.append(self.pose)
        if fit_betas and stage.betas:
            free.append(self.betas)
        return free


class BodyFitter:
    """Fits SMPL-family bodies to observations; see fit() and the module docstring.

    bm: BodyModel or BodyModelWithPoser (SMPL, SMPL-H or SMPL-X; any device and dtype).
    pose_prior: 'vposer' | 'l2' | 'none', or a PosePrior object (fitted in its latent space if it has one,
    else by its energy of pose_body; then prior_weight is required). vposer: a 21-joint latent PosePrior,
    e.g. VPoser v1 or v2 (default: the poser of a BodyModelWithPoser). prior_weight: weight of the pose
    prior (default DEFAULT_PRIOR_WEIGHT).
    optimizer: 'lbfgs' (per-frame L-BFGS with backtracking), 'lbfgs_strong_wolfe' (torch's L-BFGS with
    strong-Wolfe line search over the whole batch) or 'adam' (see stages.py); lr: Adam's step size.
    stages: list of Stage (default: default_stages()). fit_betas: also fit betas, shared by the whole
    batch (shared_betas=True) or per frame, with betas_weight * |betas|^2. smooth_weight: weight of the
    joints' squared acceleration over consecutive frames (0: frames are independent; > 0: the batch is
    one clip in time order, refined as a whole after the stages for smooth_iterations L-BFGS iterations).
    """

    def __init__(self, bm, pose_prior="vposer", vposer=None, prior_weight=None, optimizer="lbfgs", lr=0.03,
                 stages=None, fit_betas=False, shared_betas=True, betas_weight=DEFAULT_BETAS_WEIGHT,
                 smooth_weight=0.0, smooth_iterations=400):
        if not isinstance(pose_prior, PosePrior) and pose_prior not in POSE_PRIORS:
            raise ValueError(f"pose_prior must be one of {POSE_PRIORS} or a PosePrior, got {pose_prior!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.bm = bm
        self.joints_model = PosedJoints(bm)
        if pose_prior == "vposer" and vposer is None:
            vposer = getattr(bm, "poser_body_pt", None)
        self.pose_space = make_pose_space(pose_prior, vposer, self.device, self.dtype)
        self.pose_prior = self.pose_space.name
        self.vposer = getattr(self.pose_space, "vposer", None)
        if prior_weight is None and self.pose_prior not in DEFAULT_PRIOR_WEIGHT:
            raise ValueError(f"a {type(pose_prior).__name__} prior has no default weight; pass prior_weight=...")
        self.prior_weight = DEFAULT_PRIOR_WEIGHT[self.pose_prior] if prior_weight is None else float(prior_weight)
        if self.prior_weight < 0 or not math.isfinite(self.prior_weight):
            raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight}")
        self.optimizer = optimizer
        self.lr = float(lr)
        self.stages = None if stages is None else list(stages)
        self.fit_betas = bool(fit_betas)
        self.shared_betas = bool(shared_betas)
        self.betas_weight = float(betas_weight)
        self.smooth_weight = float(smooth_weight)
        if self.smooth_weight < 0 or not math.isfinite(self.smooth_weight):
            raise ValueError(f"smooth_weight must be a finite number >= 0, got {smooth_weight}")
        if isinstance(smooth_iterations, bool) or int(smooth_iterations) != smooth_iterations or smooth_iterations < 1:
            raise ValueError(f"smooth_iterations must be an integer >= 1, got {smooth_iterations!r}")
        self.smooth_iterations = int(smooth_iterations)

    @property
    def device(self):
        return self.joints_model.device

    @property
    def dtype(self):
        return self.joints_model.dtype

    # ------------------------------------------------------------------ the model of the observations
    def decode(self, pose_var: torch.Tensor) -> torch.Tensor:
        """The free pose variable -> pose_body (B, 63)."""
        return self.pose_space.decode(pose_var)

    def posed_joints(self, root_orient, pose_var, trans, betas, num_joints=None) -> torch.Tensor:
        """Joints (B, n, 3) of the bodies the variables stand for (n: default all model joints)."""
        return self.joints_model.from_rotations(axis_angle_to_matrix(root_orient),
                                                self.pose_space.decode_rotations(pose_var), trans, betas, num_joints)

    def prior_term(self, pose_var: torch.Tensor) -> torch.Tensor:
        """(B,) per-frame prior before weighting: the pose space's (|poZ_body|^2, |pose_body|^2 or 0).
        A subclass may replace it, e.g. with another prior's energy of pose_body on the 'l2' space."""
        return self.pose_space.prior(pose_var)

    def frame_loss(self, prepared, prior_weight: float, num_joints: int, smooth_weight: float = 0.0):
        """The objective E_b of the module docstring as a function of (root_orient, trans, pose, betas) -> (B,);
        with rows=frames (n,) the variables hold those frames only and it returns their (n,) objectives."""
        def loss(root_orient, trans, pose_var, betas, rows=None):
            observed = prepared if rows is None else [item.select(rows) for item in prepared]
            joints = self.posed_joints(root_orient, pose_var, trans, betas, num_joints)
            value = data_term(observed, joints) + prior_weight * self.prior_term(pose_var)
            if self.fit_betas:
                value = value + self.betas_weight * (betas * betas).sum(-1)
            if smooth_weight > 0:
                value = value + smooth_weight * acceleration_term(joints)
            return value
        return loss

    # ------------------------------------------------------------------ the method
    def fit(self, observations, init=None, write_back=True, verbose=False) -> FitResult:
        """Fit the batch. observations: a JointTargets3D / Keypoints2D or a list of them (same B).

        init: optional dict of initial values: root_orient (B, 3), trans (B, 3), pose_body (B, 63)
        (for 'l2'/'none'), poZ_body (B, latentD) (for 'vposer'), betas; root_orient and trans given
        together skip the automatic global initialisation. write_back: copy the result into the body
        model's parameters when its batch_size equals B. Returns FitResult.
        """
        jm = self.joints_model
        prepared, B = prepare_observations(observations, jm.num_joints, jm.model_type, self.device, self.dtype)
        x = self.initial_variables(prepared, B, dict(init or {}))
        num_needed = 1 + max(int(item.joint_ids.max()) for item in prepared)
        stages = self.stages if self.stages is not None else default_stages(
            self.optimizer, has_2d_only=not any(item.is_3d for item in prepared))
        history = []
        for stage in stages:
            loss = self.frame_loss(prepared, self.prior_weight * float(stage.prior_scale), num_needed)
            coupled = self.fit_betas and stage.betas and x.betas.shape[0] != B
            run_stage(self.optimizer, loss, x.as_list(), x.free(stage, self.fit_betas), stage.iterations, self.lr,
                      coupled, rows=True)
            self._record(history, loss, x, stage, verbose)
        if self.smooth_weight > 0 and B > 2:
            stage = Stage(stages[-1].prior_scale, self.smooth_iterations)
            loss = self.frame_loss(prepared, self.prior_weight * float(stage.prior_scale), num_needed,
                                   self.smooth_weight)
            run_stage("lbfgs_strong_wolfe", loss, x.as_list(), x.free(stage, self.fit_betas), stage.iterations,
                      self.lr, coupled=True)
            self._record(history, loss, x, stage, verbose)
        result = self.result(prepared, x, history)
        if write_back:
            self._write_back(result, B)
        return result

    @staticmethod
    def _record(history: list, loss, x: FitVariables, stage: Stage, verbose: bool) -> None:
        with torch.no_grad():
            history.append(float(loss(*x.as_list()).sum()))
        if verbose:
            print(f"stage prior x{stage.prior_scale:g} ({stage.iterations} it): loss {history[-1]:.6g}")
        if not math.isfinite(history[-1]):
            raise FloatingPointError(f"the fit diverged (loss {history[-1]}) in stage {stage}")

    def initial_variables(self, prepared, B: int, init: dict) -> FitVariables:
        """Step 2 of the method: the given initial values, else the pose space's origin and a body
        placed on the observations' torso."""
        def given(name, shape):
            value = init.get(name)
            if value is None:
                return torch.zeros(shape, dtype=self.dtype, device=self.device)
            v = torch.as_tensor(value if torch.is_tensor(value) else np.asarray(value), dtype=self.dtype,
                                device=self.device)
            v = v.unsqueeze(0) if v.dim() == 1 else v
            if v.shape[-1] != shape[-1] or v.shape[0] not in (1, shape[0]):
                raise ValueError(f"init[{name!r}] must have shape {tuple(shape)}, got {tuple(v.shape)}")
            return v.expand(shape).clone()

        pose = given(self.pose_space.init_key, (B, self.pose_space.width))
        betas = given("betas", (1 if (self.shared_betas and self.fit_betas) else B, self.joints_model.num_betas))
        if init.get("root_orient") is not None and init.get("trans") is not None:
            root_orient, trans = given("root_orient", (B, 3)), given("trans", (B, 3))
        else:
            with torch.no_grad():
                zero = pose.new_zeros(B, 3)
                rest = self.joints_model(zero, self.decode(pose), zero, betas)  # root at identity, no translation
            root_orient, trans = initial_global(prepared, rest)
        x = FitVariables(root_orient=root_orient, trans=trans, pose=pose, betas=betas)
        for v in x.as_list():
            v.requires_grad_(True)
        return x

    def result(self, prepared, x: FitVariables, history: list) -> FitResult:
        with torch.no_grad():
            pose_body = self.decode(x.pose)
            joints = self.joints_model(x.root_orient, pose_body, x.trans, x.betas)
            return FitResult(root_orient=x.root_orient.detach(), pose_body=pose_body.detach(), trans=x.trans.detach(),
                             betas=x.betas.detach(), poZ_body=x.pose.detach() if self.pose_prior == "vposer" else None,
                             joints=joints, data_loss=data_term(prepared, joints), history=history)

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
