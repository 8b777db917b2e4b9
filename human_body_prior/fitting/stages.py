"""Optimisation stages and the optimisers that run them.

A stage minimises the fit's objective over some of its variables for a number of iterations. Three
optimisers:
- 'lbfgs': L-BFGS per frame (batched_lbfgs: each frame its own history and Armijo backtracking, one
  batched evaluation per step). A stage that also fits betas shared by the batch couples the frames:
  it runs torch.optim.LBFGS with strong-Wolfe line search over the whole batch as one problem, then
  refines each frame per frame with those betas fixed.
- 'lbfgs_strong_wolfe': torch.optim.LBFGS with strong-Wolfe line search over the whole batch.
- 'adam': torch.optim.Adam, a fixed step size, ``iterations`` steps.
"""

from dataclasses import dataclass

import torch

from human_body_prior.fitting.batched_lbfgs import batched_lbfgs

OPTIMIZERS = ("lbfgs", "lbfgs_strong_wolfe", "adam")


@dataclass
class Stage:
    """One optimisation stage. prior_scale multiplies prior_weight; iterations: LBFGS iterations or
    Adam steps (>= 1); pose: also optimise the pose (False: orientation/translation only); betas:
    also optimise betas (when the fit has fit_betas=True)."""
    prior_scale: float
    iterations: int
    pose: bool = True
    betas: bool = True

    def __post_init__(self):
        if isinstance(self.iterations, bool) or int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f"Stage iterations must be an integer >= 1, got {self.iterations!r}")
        if not float(self.prior_scale) >= 0:
            raise ValueError(f"Stage prior_scale must be >= 0, got {self.prior_scale!r}")


def default_stages(optimizer: str, has_2d_only: bool) -> list:
    """Strong prior first, then relaxed (Adam takes more, cheaper steps than LBFGS); with 2D keypoints
    only, a first stage places the body (orientation and translation) before any pose changes."""
    n = 300 if optimizer == "adam" else 40
    stages = [Stage(10.0, n), Stage(1.0, n)]
    if has_2d_only:
        stages.insert(0, Stage(10.0, n // 2, pose=False, betas=False))
    return stages


def per_frame_lbfgs(frame_loss, variables: list, free: list, iterations: int, history_size: int = 10,
                    lr: float = 1.0, rows: bool = False) -> None:
    """L-BFGS per frame over the tensors ``free`` (a subset of ``variables``, each (B, k)); the others
    stay fixed. frame_loss(*variables) -> (B,). lr scales the trial step as in torch.optim.LBFGS.
    rows=True: frame_loss(*variables, rows=frames) also evaluates a subset of the frames (the variables
    then hold those frames' rows only), so that a line search steps only the frames still searching; a
    frame_loss without ``rows`` falls back to whole-batch evaluations.
    Updates the free tensors in place."""
    ids = [i for i, v in enumerate(variables) if any(v is f for f in free)]
    widths = [variables[i].shape[1] for i in ids]
    x0 = torch.cat([variables[i].detach() for i in ids], dim=1)
    B = x0.shape[0]  # a variable with one row (betas shared by the batch) is not split by frame

    def func(x, frames=None):
        values = list(variables) if frames is None else [v[frames] if v.shape[0] == B else v for v in variables]
        for i, part in zip(ids, torch.split(x, widths, dim=1)):
            values[i] = part
        return frame_loss(*values) if frames is None else frame_loss(*values, rows=frames)

    x, _ = batched_lbfgs(func, x0, max_iter=int(iterations), history_size=int(history_size), lr=float(lr), rows=rows)
    with torch.no_grad():
        for i, part in zip(ids, torch.split(x, widths, dim=1)):
            variables[i].copy_(part)


def whole_batch_lbfgs(total_loss, free: list, iterations: int, history_size: int = 20, lr: float = 1.0,
                      tolerance_grad: float = 1e-10, tolerance_change: float = 1e-12, max_eval=None,
                      line_search_fn="strong_wolfe") -> None:
    """torch.optim.LBFGS (by default with strong-Wolfe line search and at most 3 evaluations per
    iteration) on total_loss() (a scalar) over ``free``; the options are torch's."""
    opt = torch.optim.LBFGS(free, lr=float(lr), max_iter=int(iterations),
                            max_eval=3 * int(iterations) if max_eval is None else int(max_eval),
                            history_size=int(history_size), tolerance_grad=float(tolerance_grad),
                            tolerance_change=float(tolerance_change), line_search_fn=line_search_fn)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = total_loss()
        loss.backward()
        return loss

    opt.step(closure)


def adam(total_loss, free: list, iterations: int, lr: float) -> None:
    """``iterations`` Adam steps of size lr on total_loss() over ``free``."""
    opt = torch.optim.Adam(free, lr=lr)
    for _ in range(int(iterations)):
        opt.zero_grad(set_to_none=True)
        total_loss().backward()
        opt.step()


def run_stage(optimizer: str, frame_loss, variables: list, free: list, iterations: int, lr: float,
              coupled: bool, lbfgs_options=None, rows: bool = False) -> None:
    """Minimise sum(frame_loss(*variables)) over ``free`` with ``optimizer`` (see the module docstring).
    coupled: the frames' problems are not separate (a free variable shared by the frames, e.g. one betas
    row for the batch, or a loss that is not a sum over frames). lbfgs_options: torch.optim.LBFGS's
    history_size and lr (both L-BFGS kinds); tolerance_grad, tolerance_change, max_eval and
    line_search_fn apply to the whole-batch L-BFGS only: torch's absolute tolerances, chosen for a
    batch's summed loss, would stop each frame of the per-frame solver far too early (measured in
    docs/FITTING.md). There a frame stops when its line search fails, its loss stalls (relative change
    1e-12) or after ``iterations``. rows: frame_loss takes ``rows=`` (see per_frame_lbfgs)."""
    options = dict(lbfgs_options or {})
    frame_options = {k: v for k, v in options.items() if k in ("history_size", "lr")}

    def total_loss():
        return frame_loss(*variables).sum()

    if optimizer == "adam":
        adam(total_loss, free, iterations, lr)
    elif optimizer == "lbfgs" and not coupled:
        per_frame_lbfgs(frame_loss, variables, free, iterations, rows=rows, **frame_options)
    elif optimizer in ("lbfgs", "lbfgs_strong_wolfe"):
        whole_batch_lbfgs(total_loss, free, iterations, **options)
        shared = [v for v in free if v.shape[0] != variables[0].shape[0]]
        if optimizer == "lbfgs" and shared:  # then refine each frame with the shared variables fixed
            per_frame_lbfgs(frame_loss, variables, [v for v in free if all(v is not s for s in shared)], iterations,
                            **frame_options)
    else:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
