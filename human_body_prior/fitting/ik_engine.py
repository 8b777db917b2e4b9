"""IK_Engine: the 2021 (v2) inverse-kinematics API, on the library's fitting engine.

    ik = IK_Engine(vposer_expr_dir, data_loss=torch.nn.MSELoss(reduction="sum"),
                   optimizer_args={"type": "LBFGS", "max_iter": 300, "history_size": 200},
                   stepwise_weights=[{"data": 10.0, "poZ_body": 0.01, "betas": 0.5}])
    body_params = ik(source_kpts_module, target_kpts)   # target_kpts (B, K, 3)

``source_kpts_module(body_params)`` is the caller's module: from a dict with ``root_orient`` (B, 3),
``pose_body`` (B, 63), ``trans`` (B, 3) and ``betas`` (B, num_betas) it returns ``{'source_kpts': (B, K, 3),
...}`` (joints, surface markers, ...). Each stage minimises
    w_data * data_loss(source_kpts, target_kpts) + w_poZ_body * sum |poZ_body|^2 + w_betas * sum |betas|^2
over poZ_body, betas, trans and root_orient, with the fitting engine's pose space (fitting/pose_space.py)
and optimisers (fitting/stages.py). The loss is a sum over frames, so with a data_loss whose
reduction is 'sum' or 'mean' (torch's MSELoss, L1Loss, SmoothL1Loss, ...) every frame is solved by
its own L-BFGS (per-frame history and line search, batched evaluations); any other data_loss is
minimised as one problem (torch's L-BFGS, strong-Wolfe line search).

Differences from upstream, on purpose: defaults are never shared between calls (upstream's mutable
``initial_body_params={}``); betas get the width of the body model inside ``source_kpts_module`` (upstream
always made ``num_betas`` = 10 columns, which broke 16-beta models); targets with NaN/inf are refused
with an error naming the frames, and a result that is not finite raises instead of being returned;
without a given root_orient and trans the body starts rigidly registered onto the targets (upstream
starts at the origin, facing +z); Adam runs ``max_iter`` steps per stage (upstream's single
``step(closure)`` made one).
"""

import contextlib
import copy
import math

import numpy as np
import torch
import torch.nn as nn

from human_body_prior.fitting.pose_space import VPoserLatent
from human_body_prior.fitting.rigid import kabsch
from human_body_prior.fitting.stages import run_stage
from human_body_prior.geometry.rotations import matrix_to_axis_angle
from human_body_prior.model_types.joints import NUM_POSE_BODY_JOINTS
from human_body_prior.priors import PosePrior, load_prior
from human_body_prior.priors.interface import frozen

WEIGHT_KEYS = ("data", "poZ_body", "betas")
FREE_VARIABLES = ("root_orient", "trans", "poZ_body", "betas")
_OPTIMIZER_KEYS = {"lbfgs": {"type", "max_iter", "lr", "tolerance_change", "tolerance_grad", "history_size",
                             "line_search_fn", "max_eval"},
                   "adam": {"type", "max_iter", "lr", "betas", "eps", "weight_decay", "amsgrad"}}
_DEFAULT_ITERATIONS = {"lbfgs": 300, "adam": 300}
_LBFGS_OPTIONS = ("history_size", "lr", "tolerance_grad", "tolerance_change", "max_eval", "line_search_fn")


def _latent_prior(expr_dir=None):
    """A latent PosePrior: one given, or loaded by :func:`human_body_prior.priors.load_prior` from a v1 (2019)
    or v2 (2021) VPoser folder or a shipped prior's name (default: the shipped open v1 prior); frozen, in eval mode."""
    prior = expr_dir if isinstance(expr_dir, PosePrior) else load_prior(expr_dir if expr_dir is not None else "vposer_v1")
    if prior.latentD is None:
        raise ValueError(f"IK_Engine optimises a latent code; the prior {expr_dir} has none (use a VPoser)")
    return frozen(prior)


def _per_frame(data_loss):
    """The per-frame form (B, K, 3), (B, K, 3) -> (B,) of a torch loss with reduction 'sum' or 'mean',
    whose batch total equals data_loss; None when data_loss is anything else."""
    reduction = getattr(data_loss, "reduction", None)
    if not isinstance(data_loss, nn.modules.loss._Loss) or reduction not in ("sum", "mean"):
        return None
    elementwise = copy.copy(data_loss)
    elementwise.reduction = "none"

    def loss(pred, target):
        per_element = elementwise(pred, target)
        if per_element.shape != pred.shape:
            return None
        per_frame = per_element.reshape(pred.shape[0], -1).sum(-1)
        return per_frame / pred.numel() if reduction == "mean" else per_frame

    return loss


def _find_body_model(module):
    from human_body_prior.body_model.body_model import BodyModel

    return next((m for m in module.modules() if isinstance(m, BodyModel)), None) if isinstance(module, nn.Module) else None


@contextlib.contextmanager
def _constant_parameters(module):
    """The parameters of the caller's module (e.g. a BodyModel's stored hand and face poses) are constants
    of the fit: gradients are taken with respect to the fit's own variables only, so nothing is lost by
    turning theirs off for its duration, and a BodyModel then knows that its unposed parts stay at rest
    (it chains only the joints that move)."""
    params = [p for p in module.parameters() if p.requires_grad] if isinstance(module, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class IK_Engine(nn.Module):
    """Fit body parameters so that ``source_kpts_module`` matches target keypoints; see the module docstring.

    vposer_expr_dir: VPoser folder, v1 or v2, a shipped prior's name or a latent PosePrior (default: the
    shipped open prior). data_loss: a loss module
    or function of (source_kpts, target_kpts) -> scalar (default: SmoothL1Loss(reduction='mean'), as upstream).
    optimizer_args: {'type': 'LBFGS' | 'Adam', 'max_iter': iterations (Adam: steps) per stage (default 300),
    'lr': step size (Adam) or step scale (L-BFGS, default 1); L-BFGS also takes torch.optim.LBFGS's
    'history_size' (default 10), and 'tolerance_grad', 'tolerance_change', 'max_eval' and
    'line_search_fn', which apply when the batch is solved as one problem (see fitting/stages.run_stage
    for why frames solved separately stop by their own tests)}. stepwise_weights: list of {'data',
    'poZ_body', 'betas'} weights, one dict per stage (a missing key weighs 0). num_betas: betas width when source_kpts_module
    holds no BodyModel (default 10); it must agree with the one it holds. display_rc, verbosity, logger:
    upstream's reporting options (verbosity > 0 logs each stage's loss; nothing is rendered).
    """

    def __init__(self, vposer_expr_dir=None, data_loss=None, optimizer_args=None, stepwise_weights=None,
                 display_rc=(2, 1), verbosity=1, num_betas=None, logger=None):
        super().__init__()
        self.vp_model = _latent_prior(vposer_expr_dir)
        self.data_loss = data_loss if data_loss is not None else nn.SmoothL1Loss(reduction="mean")
        if not callable(self.data_loss):
            raise TypeError(f"data_loss must be callable (a loss module or function), got {type(data_loss).__name__}")
        self.optimizer_args = self._check_optimizer_args(optimizer_args)
        self.stepwise_weights = self._check_weights(stepwise_weights)
        self.num_betas = None if num_betas is None else int(num_betas)
        self.display_rc = tuple(display_rc)
        self.verbosity = int(verbosity)
        self.logger = logger

    @staticmethod
    def _check_optimizer_args(args):
        args = dict(args if args is not None else {"type": "LBFGS"})
        kind = str(args.get("type", "LBFGS")).lower()
        if kind not in _OPTIMIZER_KEYS:
            raise ValueError(f"optimizer_args['type'] must be 'LBFGS' or 'Adam', got {args.get('type')!r}")
        unknown = set(args) - _OPTIMIZER_KEYS[kind]
        if unknown:
            raise ValueError(f"optimizer_args has unknown keys {sorted(unknown)} for {kind}; "
                             f"known: {sorted(_OPTIMIZER_KEYS[kind])}")
        iterations = args.get("max_iter", _DEFAULT_ITERATIONS[kind])
        if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 1:
            raise ValueError(f"optimizer_args['max_iter'] must be an integer >= 1, got {iterations!r}")
        return {**args, "type": kind, "max_iter": int(iterations)}

    @staticmethod
    def _check_weights(stepwise_weights):
        stages = [dict(w) for w in (stepwise_weights if stepwise_weights is not None
                                    else [{"data": 10.0, "poZ_body": 0.01, "betas": 0.5}])]
        if not stages:
            raise ValueError("stepwise_weights must hold at least one stage, e.g. [{'data': 10.0, 'poZ_body': 0.01}]")
        for i, w in enumerate(stages):
            unknown = set(w) - set(WEIGHT_KEYS)
            if unknown:
                raise ValueError(f"stepwise_weights[{i}] has unknown keys {sorted(unknown)}; known: {list(WEIGHT_KEYS)}")
            bad = {k: v for k, v in w.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)}
            if bad:
                raise ValueError(f"stepwise_weights[{i}]: weights must be finite numbers >= 0, got {bad}")
        return stages

    def _log(self, text):
        if self.verbosity > 0:
            (self.logger or print)(text)

    # ------------------------------------------------------------------ fitting
    def forward(self, source_kpts_model, target_kpts, initial_body_params=None) -> dict:
        """target_kpts (B, K, 3) -> dict of detached tensors: pose_body (B, 63), root_orient (B, 3),
        trans (B, 3), betas (B, num_betas), poZ_body (B, latentD), and data_loss (B,) (the final
        per-frame data term, unweighted, when data_loss is a 'sum'/'mean' torch loss)."""
        target = torch.as_tensor(target_kpts)
        if target.dim() != 3 or target.shape[-1] != 3 or target.shape[0] == 0:
            raise ValueError(f"target_kpts must have shape (B, K, 3) with B >= 1, got {tuple(target.shape)}")
        if not target.is_floating_point():
            target = target.to(torch.get_default_dtype())
        bad = ~torch.isfinite(target).reshape(target.shape[0], -1).all(-1)
        if bad.any():
            frames = bad.nonzero().flatten().tolist()
            raise ValueError(f"target_kpts has NaN or infinite values in frame(s) {frames[:10]}"
                             f"{' ...' if len(frames) > 10 else ''}; IK needs every target point")
        space = VPoserLatent(self.vp_model, target.device, target.dtype)
        x = self._initial_variables(source_kpts_model, target, dict(initial_body_params or {}), space)
        per_frame = _per_frame(self.data_loss)

        def body_params(root_orient, trans, poZ_body, betas):
            return {"root_orient": root_orient, "pose_body": space.decode(poZ_body), "trans": trans, "betas": betas}

        def source(params, goal=target):
            out = source_kpts_model(params)
            kpts = out["source_kpts"] if isinstance(out, dict) else out
            if kpts.shape != goal.shape:
                raise ValueError(f"source_kpts_module returned source_kpts of shape {tuple(kpts.shape)}; "
                                 f"the targets have shape {tuple(goal.shape)}")
            return kpts

        variables = [x[k] for k in FREE_VARIABLES]
        kind = self.optimizer_args["type"]
        optimizer = "adam" if kind == "adam" else "lbfgs" if per_frame is not None else "lbfgs_strong_wolfe"
        lbfgs_options = {k: self.optimizer_args[k] for k in _LBFGS_OPTIONS if k in self.optimizer_args}
        lbfgs_options.setdefault("history_size", 10)
        with _constant_parameters(source_kpts_model):
            for i, w in enumerate(self.stepwise_weights):
                w_data, w_z, w_b = (float(w.get(k, 0.0)) for k in WEIGHT_KEYS)

                def frame_loss(root_orient, trans, poZ_body, betas, rows=None):
                    goal = target if rows is None else target[rows]
                    kpts = source(body_params(root_orient, trans, poZ_body, betas), goal)
                    priors = w_z * (poZ_body * poZ_body).sum(-1) + w_b * (betas * betas).sum(-1)
                    if per_frame is not None:
                        return w_data * per_frame(kpts, goal) + priors
                    return (w_data * self.data_loss(kpts, goal) + priors.sum()).reshape(1)

                run_stage(optimizer, frame_loss, variables, variables, self.optimizer_args["max_iter"],
                          float(self.optimizer_args.get("lr", 1e-2)), coupled=per_frame is None,
                          lbfgs_options=lbfgs_options, rows=True)
                with torch.no_grad():
                    total = float(frame_loss(*variables).sum())
                self._log(f"IK stage {i + 1}/{len(self.stepwise_weights)} {w}: loss {total:.6g}")

        with torch.no_grad():
            result = body_params(*variables)
            if per_frame is not None:
                result["data_loss"] = per_frame(source(result), target)
            result["poZ_body"] = variables[2]
        result = {k: v.detach() for k, v in result.items()}
        not_finite = [k for k, v in result.items() if not torch.isfinite(v).all()]
        if not_finite:
            raise FloatingPointError(f"IK produced non-finite {not_finite}; check source_kpts_module and the weights")
        return result

    def _initial_variables(self, source_kpts_model, target, init: dict, space: VPoserLatent) -> dict:
        B, device, dtype = target.shape[0], target.device, target.dtype
        unknown = set(init) - {"pose_body", "root_orient", "trans", "betas", "poZ_body"}
        if unknown:
            raise ValueError(f"initial_body_params has unknown keys {sorted(unknown)}; "
                             "known: pose_body, root_orient, trans, betas, poZ_body")
        bm = _find_body_model(source_kpts_model)
        num_betas = self.num_betas if self.num_betas is not None else (bm.num_betas if bm is not None else 10)
        if bm is not None and num_betas != bm.num_betas:
            raise ValueError(f"IK_Engine(num_betas={num_betas}) but the body model in source_kpts_module has "
                             f"{bm.num_betas} betas; leave num_betas out to use the model's")

        def value(name, width):
            v = init.get(name)
            if v is None:
                return None
            v = torch.as_tensor(v if torch.is_tensor(v) else np.asarray(v)).to(device=device, dtype=dtype)
            v = v.reshape(1, -1) if v.dim() == 1 else v.reshape(v.shape[0], -1)
            if v.shape[-1] != width or v.shape[0] not in (1, B):
                raise ValueError(f"initial_body_params[{name!r}] must have shape ({B}, {width}), got {tuple(v.shape)}")
            return v.expand(B, width).clone()

        x = {"betas": value("betas", num_betas), "trans": value("trans", 3), "root_orient": value("root_orient", 3)}
        if x["betas"] is None:
            x["betas"] = target.new_zeros(B, num_betas)
        poZ = value("poZ_body", space.width)
        if poZ is None:
            pose_body = value("pose_body", 3 * NUM_POSE_BODY_JOINTS)
            with torch.no_grad():
                poZ = space.encode(pose_body if pose_body is not None else target.new_zeros(B, 3 * NUM_POSE_BODY_JOINTS))
        x["poZ_body"] = poZ.detach().clone()
        if x["root_orient"] is None or x["trans"] is None:
            x["root_orient"], x["trans"] = self._register(source_kpts_model, target, x, space)
        for v in x.values():
            v.requires_grad_(True)
        return x

    @staticmethod
    def _register(source_kpts_model, target, x, space):
        """Root orientation and translation that rigidly move the initial body's keypoints onto the
        targets (the given one of root_orient / trans is kept where only one was given)."""
        B = target.shape[0]
        with torch.no_grad():
            root = x["root_orient"] if x["root_orient"] is not None else target.new_zeros(B, 3)
            params = {"root_orient": target.new_zeros(B, 3), "pose_body": space.decode(x["poZ_body"]),
                      "trans": target.new_zeros(B, 3), "betas": x["betas"]}
            if x["root_orient"] is None:
                kpts = source_kpts_model(params)["source_kpts"]
                R, _ = kabsch(kpts, target, torch.ones(target.shape[:2], dtype=target.dtype, device=target.device))
                root = matrix_to_axis_angle(R)
            if x["trans"] is not None:
                return root, x["trans"]
            kpts = source_kpts_model({**params, "root_orient": root})["source_kpts"]
            return root, (target - kpts).mean(1)
