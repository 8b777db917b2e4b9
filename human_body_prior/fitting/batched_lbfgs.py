"""L-BFGS over a batch of independent problems, each with its own history and line search.

A fit of B frames is B separate problems that share nothing (unless betas are shared). Running one
L-BFGS over all of them, as torch.optim.LBFGS does, couples them through a common step length and
a common curvature model, and a batch converges much more slowly than each frame alone. Here every
frame keeps its own (s, y) history, two-loop recursion and backtracking (Armijo) step, while each
function evaluation is still one batched forward/backward pass.
"""

import torch


def _two_loop(g, S, Y, rho):
    """Per-frame L-BFGS direction -H g. g (B, D); S, Y lists of (B, D); rho list of (B,) (0 = unused pair)."""
    q = g.clone()
    alphas = []
    for s, y, r in zip(reversed(S), reversed(Y), reversed(rho)):
        a = r * (s * q).sum(-1)
        q = q - a.unsqueeze(-1) * y
        alphas.append(a)
    if S:
        s, y = S[-1], Y[-1]
        yy = (y * y).sum(-1)
        gamma = torch.where(yy > 0, (s * y).sum(-1) / yy.clamp(min=torch.finfo(g.dtype).tiny), torch.ones_like(yy))
        q = q * gamma.clamp(min=0).unsqueeze(-1)
    for (s, y, r), a in zip(zip(S, Y, rho), reversed(alphas)):
        b = r * (y * q).sum(-1)
        q = q + (a - b).unsqueeze(-1) * s
    return -q


class _Evaluations:
    """Losses and gradients of func (see :func:`batched_lbfgs`), of the whole batch or of some frames."""

    def __init__(self, func, rows: bool):
        self.func, self.rows = func, rows  # rows: cleared when func fails on a subset of the frames

    def __call__(self, x, frames=None):
        """Losses (n,) and gradients (n, D) at x (n, D) of the frames ``frames`` (None: the whole batch)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            f = self.func(x) if frames is None else self.func(x, frames)
            g, = torch.autograd.grad(f.sum(), x)
        return f.detach(), g.detach()

    def pending(self, xt, f, g, pending):
        """Losses and gradients at xt (B, D) for the pending frames; the others keep f and g (never read)."""
        if not self.rows or bool(pending.all()):
            return self(xt)
        frames = pending.nonzero().squeeze(1)
        try:
            f_sub, g_sub = self(xt[frames], frames)
        except (RuntimeError, ValueError, IndexError, TypeError):
            # e.g. a caller's module that keeps batch-sized state, or a loss that takes no rows=; when the
            # whole batch fails too, the error is the trial point's (it raises from here), not the subset's
            out = self(xt)
            self.rows = False
            return out
        return f.index_copy(0, frames, f_sub), g.index_copy(0, frames, g_sub)

    def trial(self, xt, f, g, pending):
        """:meth:`pending`, except that a trial point outside func's domain (func raises ValueError there,
        e.g. a VPoser decoder output that names no rotation after a long step) counts as an infinite loss
        for every pending frame, so that their line searches step back."""
        try:
            return self.pending(xt, f, g, pending)
        except ValueError:
            return torch.where(pending, torch.full_like(f, float("inf")), f), g


def batched_lbfgs(func, x0: torch.Tensor, max_iter: int = 50, history_size: int = 10, c1: float = 1e-4,
                  max_backtracks: int = 12, tolerance_change: float = 1e-12, lr: float = 1.0, rows: bool = False):
    """Minimise B independent functions.

    func(x) -> per-frame losses (B,) for x (B, D); it must be differentiable and frame b's loss may
    depend on x[b] only. rows=True: func(x, frames) -> (n,) also gives the losses of the frames ``frames``
    (n,) long from their x (n, D) alone; then a trial step is evaluated for the frames still searching,
    not the whole batch (if func fails on a subset, the whole batch is evaluated from then on).
    Returns (x (B, D), final losses (B,)). Each iteration: per-frame two-loop direction (steepest
    descent when it is not a descent direction), trial step lr (first iteration: lr / |g|_1 capped at
    lr, as torch.optim.LBFGS) halved per frame until the Armijo condition holds (a trial point where func
    raises ValueError fails for every frame being searched: they step back). A frame stops when its
    step no longer changes its loss by more than tolerance_change (relative).
    """
    evaluate = _Evaluations(func, rows)
    x = x0.detach().clone()
    f, g = evaluate(x)
    B = x.shape[0]
    S, Y, rho = [], [], []
    active = torch.ones(B, dtype=torch.bool, device=x.device)
    for it in range(max_iter):
        d = _two_loop(g, S, Y, rho)
        gd = (g * d).sum(-1)
        bad = ~(gd < 0)
        d = torch.where(bad.unsqueeze(-1), -g, d)
        gd = torch.where(bad, -(g * g).sum(-1), gd)
        if it == 0:
            t = lr * (1.0 / g.abs().sum(-1).clamp(min=1e-12)).clamp(max=1.0)
        else:
            t = torch.full((B,), float(lr), dtype=x.dtype, device=x.device)
        t = torch.where(active, t, torch.zeros_like(t))
        pending = active.clone()
        x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
        for _ in range(max_backtracks):
            xt = x + t.unsqueeze(-1) * d
            ft, gt = evaluate.trial(xt, f, g, pending)
            ok = pending & torch.isfinite(ft) & (ft <= f + c1 * t * gd)
            x_new = torch.where(ok.unsqueeze(-1), xt, x_new)
            f_new = torch.where(ok, ft, f_new)
            g_new = torch.where(ok.unsqueeze(-1), gt, g_new)
            pending = pending & ~ok
            if not pending.any():
                break
            t = torch.where(pending, t * 0.5, t)
        moved = active & ~pending
        s, y = x_new - x, g_new - g
        sy = (s * y).sum(-1)
        use = moved & (sy > 1e-10 * (y * y).sum(-1).clamp(min=1e-30))
        S.append(torch.where(use.unsqueeze(-1), s, torch.zeros_like(s)))
        Y.append(torch.where(use.unsqueeze(-1), y, torch.zeros_like(y)))
        rho.append(torch.where(use, 1.0 / sy.clamp(min=torch.finfo(x.dtype).tiny), torch.zeros_like(sy)))
        if len(S) > history_size:
            S.pop(0), Y.pop(0), rho.pop(0)
        change = (f - f_new).abs() / f.abs().clamp(min=1e-30)
        # frames whose line search failed, or whose loss stalls, are done
        active = active & moved & (change > tolerance_change)
        x, f, g = x_new, f_new, g_new
        if not active.any():
            break
    return x, f
