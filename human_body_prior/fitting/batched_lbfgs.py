"""L-BFGS over a batch of independent problems, each with its own history and line search.

A fit of B frames is B separate problems that share nothing (unless betas are shared). Running one
L-BFGS over all of them, as torch.optim.LBFGS does, couples them through a common step length and
a common curvature model, and a batch converges much more slowly than each frame alone. Here every
frame keeps its own (s, y) history, two-loop recursion and backtracking (Armijo) step, while each
function evaluation is still one batched forward/backward pass.

The frames are not kept in step: each call of the function evaluates every frame still running at
its own next trial point, whether that is the first step of a new iteration or a shorter step of a
line search that failed its test. A frame's sequence of trial points is that of L-BFGS run on the
frame alone, and the number of calls is the largest number of evaluations one frame needs, not
the number of iterations times the longest line search of each iteration.
"""

import torch


def _two_loop(g, S, Y, rho):
    """Per-frame L-BFGS direction -H g. g (B, D); S, Y (m, B, D) and rho (m, B), oldest pair first
    (rho 0: an unused pair, which changes nothing)."""
    q = g.clone()
    alphas = []
    for k in reversed(range(S.shape[0])):
        a = rho[k] * (S[k] * q).sum(-1)
        q = q - a.unsqueeze(-1) * Y[k]
        alphas.append(a)
    if S.shape[0]:
        s, y = S[-1], Y[-1]
        yy = (y * y).sum(-1)
        gamma = torch.where(yy > 0, (s * y).sum(-1) / yy.clamp(min=torch.finfo(g.dtype).tiny), torch.ones_like(yy))
        q = q * gamma.clamp(min=0).unsqueeze(-1)
    for k, a in zip(range(S.shape[0]), reversed(alphas)):
        b = rho[k] * (Y[k] * q).sum(-1)
        q = q + (a - b).unsqueeze(-1) * S[k]
    return -q


def _descent(g, S, Y, rho):
    """The two-loop direction d (B, D) and g.d (B,); steepest descent where it is not a descent direction."""
    d = _two_loop(g, S, Y, rho)
    gd = (g * d).sum(-1)
    bad = ~(gd < 0)
    return torch.where(bad.unsqueeze(-1), -g, d), torch.where(bad, -(g * g).sum(-1), gd)


def _push(history, new, rows):
    """history (m, B, ...) with ``new`` (B, ...) appended as the newest entry of the frames ``rows`` (B,) bool
    (their oldest entry drops out); other frames keep theirs."""
    shifted = torch.cat([history[1:], new.unsqueeze(0)])
    return torch.where(rows.reshape((1, -1) + (1,) * (new.dim() - 1)), shifted, history)


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
    (n,) long from their x (n, D) alone; then each call evaluates only the frames still running, not
    the whole batch (if func fails on a subset, the whole batch is evaluated from then on).
    Returns (x (B, D), final losses (B,)). Per frame, up to max_iter iterations: the two-loop direction
    (steepest descent when it is not a descent direction), trial step lr (first iteration: lr / |g|_1
    capped at lr, as torch.optim.LBFGS) halved until the Armijo condition holds, at most max_backtracks
    trials (a trial point where func raises ValueError fails for every frame being tried: they step
    back). A frame stops when a line search fails or its step no longer changes its loss by more than
    tolerance_change (relative).
    """
    evaluate = _Evaluations(func, rows)
    x = x0.detach().clone()
    f, g = evaluate(x)
    B = x.shape[0]
    S = x.new_zeros((int(history_size), B, x.shape[1]))
    Y, rho = torch.zeros_like(S), x.new_zeros((int(history_size), B))
    d, gd = _descent(g, S, Y, rho)
    t = lr * (1.0 / g.abs().sum(-1).clamp(min=1e-12)).clamp(max=1.0)
    tries = torch.zeros(B, dtype=torch.long, device=x.device)  # trials of the current line search
    iterations = torch.zeros_like(tries)
    active = torch.full((B,), max_iter > 0, dtype=torch.bool, device=x.device)
    while active.any():
        t = torch.where(active, t, torch.zeros_like(t))
        xt = x + t.unsqueeze(-1) * d
        ft, gt = evaluate.trial(xt, f, g, active)
        ok = active & torch.isfinite(ft) & (ft <= f + c1 * t * gd)
        tries = tries + active.long()
        # a frame whose step was accepted ends its iteration: history, then the next direction
        s, y = xt - x, gt - g
        sy = (s * y).sum(-1)
        use = ok & (sy > 1e-10 * (y * y).sum(-1).clamp(min=1e-30))
        S = _push(S, torch.where(use.unsqueeze(-1), s, torch.zeros_like(s)), ok)
        Y = _push(Y, torch.where(use.unsqueeze(-1), y, torch.zeros_like(y)), ok)
        rho = _push(rho, torch.where(use, 1.0 / sy.clamp(min=torch.finfo(x.dtype).tiny), torch.zeros_like(sy)), ok)
        change = (f - ft).abs() / f.abs().clamp(min=1e-30)
        x = torch.where(ok.unsqueeze(-1), xt, x)
        f, g = torch.where(ok, ft, f), torch.where(ok.unsqueeze(-1), gt, g)
        iterations = iterations + ok.long()
        # frames whose line search failed, or whose loss stalls, are done
        active = active & ~(ok & ((change <= tolerance_change) | (iterations >= max_iter)))
        active = active & (ok | (tries < max_backtracks))
        if ok.any():
            d_new, gd_new = _descent(g, S, Y, rho)
            d, gd = torch.where(ok.unsqueeze(-1), d_new, d), torch.where(ok, gd_new, gd)
        t = torch.where(ok, torch.full_like(t, float(lr)), t * 0.5)
        tries = torch.where(ok, torch.zeros_like(tries), tries)
    return x, f
