"""Multigrid cycles (V, W, F) and the outer iteration to a residual tolerance.

One cycle on level ``l`` (``u`` and ``f`` of shape ``(B, *shape_l)``):

1. ``pre`` smoothing sweeps on ``A u = f``;
2. restrict the residual (full weighting) to level ``l + 1``;
3. solve the coarse correction equation ``A_c e = r_c`` from ``e = 0`` by
   recursion: once (V), twice (W), or an F-cycle followed by a V-cycle (F);
   on the coarsest level, exactly (dense LU);
4. ``u += P e`` (linear interpolation);
5. ``post`` smoothing sweeps (colours in reverse order for red-black
   Gauss-Seidel, so that the V-cycle is a symmetric operator).

The outer iteration works in correction form: ``r = f - A u`` on the finest
grid in the problem's dtype (this residual is also the convergence test),
one cycle on ``A e = r`` from ``e = 0`` in the hierarchy's cycle dtype, then
``u += e`` (mixed-precision iterative refinement when the two dtypes
differ). :func:`iterate` repeats this; :func:`iterate_cg` uses the same
correction as the preconditioner of conjugate gradients.
"""

from __future__ import annotations

import torch

from ....progress import Progress
from .hierarchy import Hierarchy

__all__ = ["CYCLES", "STALL_WINDOW", "STALL_FACTOR", "cycle", "correction", "iterate",
           "iterate_cg", "relative_residual"]

CYCLES = ("V", "W", "F")

STALL_WINDOW, STALL_FACTOR = 5, 0.9
"""After ``2 * STALL_WINDOW`` cycles, the iteration stops as stalled when the
worst relative residual has not dropped below ``STALL_FACTOR`` times its
value ``STALL_WINDOW`` cycles ago (rounding level reached, typically float32
with a tight ``rtol``, or a diverging iteration)."""


def cycle(hier: Hierarchy, level: int, u: torch.Tensor, f: torch.Tensor, kind: str,
          pre: int, post: int) -> torch.Tensor:
    """One ``kind`` cycle on ``level``; updates ``u`` in place and returns it."""
    if level == hier.depth - 1:  # exact: u += A^-1 (f - A u)
        return u.add_(hier.coarse_solve(hier.residual(level, u, f)))
    hier.smooth(level, u, f, pre, post=False)
    rc = hier.restrict(level, hier.residual(level, u, f))
    coarse = level + 1
    last = coarse == hier.depth - 1
    ec = cycle(hier, coarse, torch.zeros_like(rc), rc, kind, pre, post)
    if kind == "W" and not last:
        ec = cycle(hier, coarse, ec, rc, "W", pre, post)
    elif kind == "F" and not last:
        ec = cycle(hier, coarse, ec, rc, "V", pre, post)
    hier.correct(level, u, ec)
    hier.smooth(level, u, f, post, post=True)
    return u


def relative_residual(hier: Hierarchy, u: torch.Tensor, f: torch.Tensor,
                      scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The finest-level residual ``r = free * (f - A u)`` (problem dtype) and
    ``||r||_2 / scale`` per sample, shape ``(B,)``."""
    r = hier.exact_residual(u, f)
    return r, torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1) / scale


def correction(hier: Hierarchy, r: torch.Tensor, kind: str, pre: int, post: int) -> torch.Tensor:
    """One cycle on ``A e = r`` from ``e = 0``, run in the hierarchy's cycle
    dtype and returned in the dtype of ``r`` (mixed-precision refinement when
    they differ)."""
    rc = r.to(hier.cycle_dtype)
    e = cycle(hier, 0, torch.zeros_like(rc), rc, kind, pre, post)
    return hier.project_exact(e.to(r.dtype))


def iterate(hier: Hierarchy, u: torch.Tensor, f: torch.Tensor, scale: torch.Tensor, kind: str,
            pre: int, post: int, rtol: float, max_cycles: int,
            progress=False, desc: str = "multigrid") -> tuple[torch.Tensor, list, int, bool]:
    """Cycle until every sample's relative residual is at most ``rtol``.

    Parameters
    ----------
    hier : Hierarchy
    u : torch.Tensor, shape (B, *shape)
        Initial guess with the boundary values in place (modified in place).
    f : torch.Tensor, shape (B, *shape)
        Right-hand side (already projected for singular problems).
    scale : torch.Tensor, shape (B,)
        Norm the residual is divided by (``||b||``, positive).
    kind, pre, post, rtol, max_cycles
        See :class:`~opflow.solvers.pde.Multigrid`.
    progress : bool or "always"

    Returns
    -------
    u : torch.Tensor, shape (B, *shape)
    history : list of torch.Tensor
        Relative residual per sample ``(B,)`` before the first cycle and after
        each one.
    cycles : int
        Number of cycles run. The only host synchronisation is the
        convergence test, once per cycle.
    stalled : bool
        Stopped because the residual stopped decreasing (see
        :data:`STALL_FACTOR`) before reaching ``rtol``.
    """
    r, res = relative_residual(hier, u, f, scale)
    history = [res]
    bar = Progress(max_cycles, desc, progress, unit="cycle", leave=False)
    cycles, stalled = 0, False
    worsts = [float(res.max())]
    try:
        while cycles < max_cycles and worsts[-1] > rtol:  # a NaN residual stops too
            u.add_(correction(hier, r, kind, pre, post))
            cycles += 1
            r, res = relative_residual(hier, u, f, scale)
            history.append(res)
            worsts.append(float(res.max()))
            bar.update(1, residual=worsts[-1])
            if _stalled(worsts, rtol):
                stalled = True
                break
    finally:
        bar.close()
    return u, history, cycles, stalled


def _stalled(worsts: list, rtol: float) -> bool:
    """No 10% decrease over the last window, after at least two windows."""
    return (len(worsts) > 2 * STALL_WINDOW and worsts[-1] > rtol
            and not worsts[-1] < STALL_FACTOR * worsts[-1 - STALL_WINDOW])


def iterate_cg(hier: Hierarchy, u: torch.Tensor, f: torch.Tensor, scale: torch.Tensor,
               kind: str, pre: int, post: int, rtol: float, max_cycles: int,
               progress=False, desc: str = "multigrid-cg") -> tuple[torch.Tensor, list, int, bool]:
    """Conjugate gradients preconditioned by one multigrid cycle per iteration.

    Same arguments and results as :func:`iterate` (``cycles`` counts CG
    iterations, one cycle each). Flexible (Polak-Ribiere) CG with one step
    length per sample, in the inner product ``<x, y> = sum(w x y)`` in which
    the operator (``W^-1 S``) and the cycle are self-adjoint; the
    recursively updated residual drives the iteration and the true residual
    is checked at the end (and the iteration restarted from it should the
    two disagree).
    """
    weights = hier.exact_weights
    dims = tuple(range(1, u.ndim))

    def dot(x, y):
        return (x * y * weights).sum(dims)

    def expand(s):
        return s.reshape(-1, *([1] * (u.ndim - 1)))

    def precondition(r):
        return correction(hier, r, kind, pre, post)

    zero = torch.zeros_like(f)
    r, res = relative_residual(hier, u, f, scale)
    history, worsts = [res], [float(res.max())]
    bar = Progress(max_cycles, desc, progress, unit="cycle", leave=False)
    cycles, stalled, restart = 0, False, True
    try:
        while cycles < max_cycles and worsts[-1] > rtol:
            if restart:
                z = precondition(r)
                p, rz = z.clone(), dot(r, z)
                restart = False
            q = hier.exact_residual(p, zero).neg_()       # free * (A p)
            pq = dot(p, q)
            alpha = torch.where(pq > 0, rz / pq, torch.zeros_like(pq))
            u.addcmul_(p, expand(alpha))
            r.addcmul_(q, expand(alpha), value=-1.0)
            cycles += 1
            res = torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1) / scale
            worst = float(res.max())
            if not worst > rtol:  # confirm with the true residual
                r, res = relative_residual(hier, u, f, scale)
                worst, restart = float(res.max()), True
            history.append(res)
            worsts.append(worst)
            bar.update(1, residual=worst)
            if _stalled(worsts, rtol):
                stalled = True
                break
            if worst > rtol and not restart:
                z_new = precondition(r)
                rz_new = dot(r, z_new)
                beta = torch.where(rz > 0, (rz_new - dot(r, z)) / rz, torch.zeros_like(rz))
                beta = beta.clamp_min(0)
                p = torch.addcmul(z_new, p, expand(beta))
                z, rz = z_new, rz_new
    finally:
        bar.close()
    return u, history, cycles, stalled
