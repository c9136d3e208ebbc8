"""Adjoint sensitivities of the stiff methods: the adjoint solved by the same stiff method.

The adjoint ``a(t) = dL/dy(t)`` of a stiff problem obeys ``a' = -J(t)^T a``,
which is as stiff as the forward problem (the same eigenvalues), so it is
integrated backwards with the same implicit method: in reversed time
``s = -t`` the dynamics ``da/ds = J^T a`` go forward through
:func:`~opflow.solvers.ode.implicit.integrate_implicit`, per trajectory,
with Jacobians ``J^T`` taken by differentiating the vector-Jacobian product.

The parameter gradient ``dL/dp = int a^T df/dp dt`` does not feed back into
the adjoint, so it is not carried in the stiff state (that would make its
Jacobian as wide as the parameters): it is a quadrature, three Gauss-Legendre
nodes on every accepted backward step, over the steps' cubic Hermite dense
output (SciMLSensitivity calls this the quadrature adjoint).

Where the forward state comes from is what tells the two adjoints apart:

- :class:`~opflow.solvers.ode.sensitivity.InterpolatingAdjoint`: each save
  interval is re-solved forward from its saved state with its steps recorded,
  and ``y(t)`` is that record's dense output. Memory: one save interval's
  steps.
- :class:`~opflow.solvers.ode.sensitivity.BacksolveAdjoint`: ``y`` is solved
  backwards together with ``a`` (state ``[y, a]``). Memory does not grow with
  the steps, but a stiff problem run backwards is unstable: its decaying
  modes grow in reverse, so this suits only mildly stiff problems; prefer the
  interpolating adjoint.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import torch

from ...errors import SolverError
from ...solution import ReturnCode
from .implicit import AdaptiveImplicit, HermiteRecord, integrate_implicit
from .sensitivity import BacksolveAdjoint, InterpolatingAdjoint, _param_grads, run_with_adjoint

__all__ = ["stiff_adjoint"]

RHS = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Gauss-Legendre nodes and weights on [0, 1] (exact for polynomials of degree 5)
_NODES = (0.5 - math.sqrt(15) / 10, 0.5, 0.5 + math.sqrt(15) / 10)
_WEIGHTS = (5 / 18, 8 / 18, 5 / 18)


class _ReverseRHS:
    """Adjoint dynamics of ``f`` in reversed time ``s = -t``, on flat ``(B, ...)`` states.

    With ``state`` (a callable ``t (B,) -> y (B, D)``) the adjoint state is
    ``a`` and the slope ``J^T a``; without it the state is ``[y, a]`` and the
    slope ``[-f, J^T a]``.
    """

    def __init__(self, f: RHS, dim: int, state: Callable | None = None):
        self.f, self.dim, self.state = f, dim, state

    def __call__(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        t, D = -s, self.dim
        graph = z.requires_grad or s.requires_grad  # a Jacobian of this slope is being taken
        with torch.enable_grad():
            if self.state is None:
                y, a = z[:, :D], z[:, D:]
            else:
                y, a = self.state(t), z
            if not y.requires_grad:
                y = y.detach().requires_grad_(True)
            fy = self.f(t, y)
            vjp = None
            if fy.requires_grad:  # else f does not depend on the state
                (vjp,) = torch.autograd.grad(fy, y, a, create_graph=graph, allow_unused=True)
        vjp = torch.zeros_like(a) if vjp is None else vjp
        if self.state is not None:
            return vjp
        return torch.cat([-fy if graph else -fy.detach(), vjp], 1)


class _SplitReverseRHS:
    """The reversed adjoint of a split problem: its stiff and non-stiff parts (for IMEX)."""

    def __init__(self, f, dim: int, state: Callable | None = None):
        self.stiff = _ReverseRHS(f.stiff, dim, state)
        self.nonstiff = _ReverseRHS(f.nonstiff, dim, state)

    def __call__(self, s, z):
        return self.stiff(s, z) + self.nonstiff(s, z)


def _reverse_rhs(F, dim: int, state=None):
    split = hasattr(F, "stiff") and hasattr(F, "nonstiff")
    return (_SplitReverseRHS if split else _ReverseRHS)(F, dim, state)


class _StiffAdjointRunner:
    """Forward and backward passes of a stiff adjoint (the interface of ``run_with_adjoint``).

    ``F(t (B,), y (B, D))`` is the flat right-hand side; ``forward_solve(y0)``
    the forward solve to the save times ``ts``; ``alg`` the stiff method
    used backwards (with the sensitivity's tolerances).
    """

    def __init__(self, F, params, t0: float, ts: torch.Tensor, forward_solve: Callable,
                 alg: AdaptiveImplicit, max_steps, interpolating: bool):
        self.F, self.params, self.t0, self.ts = F, list(params), t0, ts
        self.forward_solve, self.alg, self.max_steps = forward_solve, alg, max_steps
        self.interpolating = interpolating

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        self.y0 = y0.detach()
        return self.forward_solve(y0)

    def _solve(self, F, z0: torch.Tensor, s0: float, s1: float, what: str,
               interval: tuple[float, float], require_success: bool = True):
        """Integrate ``z0`` from ``s0`` to ``s1`` with its steps recorded; ``interval``
        (in the problem's time) names the span in the error."""
        ts = torch.tensor([s1], dtype=z0.dtype, device=z0.device)
        zs, _, code, rec = integrate_implicit(F, self.alg, z0, s0, ts, record=True,
                                              max_steps=self.max_steps)
        if rec is None or (require_success and code != ReturnCode.Success):
            raise SolverError(f"the adjoint's {what} over t in [{interval[0]:g}, "
                              f"{interval[1]:g}] stopped with {code}; loosen the tolerances, "
                              "raise max_steps or use InterpolatingAdjoint / DirectBackprop")
        return zs[-1], rec

    def _interval(self, y_from: torch.Tensor, y_to: torch.Tensor, a: torch.Tensor,
                  t_from: float, t_to: float, g: list[torch.Tensor]):
        """Carry ``a`` from ``t_to`` back to ``t_from``; add the interval's parameter gradients."""
        D = a.shape[1]
        if self.interpolating:
            with torch.no_grad():  # a failed re-solve is the forward solve's failure, reported
                _, yrec = self._solve(self.F, y_from, t_from, t_to, "forward re-solve",
                                      (t_from, t_to), require_success=False)
            G = _reverse_rhs(self.F, D, yrec.at)
            a_new, arec = self._solve(G, a, -t_to, -t_from, "backward solve", (t_from, t_to))
            return a_new, self._quadrature(arec, lambda t, idx, b, xi: yrec.at(t), slice(None), g)
        G = _reverse_rhs(self.F, D)
        z, zrec = self._solve(G, torch.cat([y_to, a], 1), -t_to, -t_from, "backward solve",
                              (t_from, t_to))

        def state(t, idx, b, s):
            return zrec.piece(idx, b, s)[:, :D]

        return z[:, D:], self._quadrature(zrec, state, slice(D, None), g)

    def _quadrature(self, rec: HermiteRecord, state: Callable, part: slice,
                    g: list[torch.Tensor]) -> list[torch.Tensor]:
        """``g + int a^T df/dp dt`` over the accepted steps of the backward record ``rec``."""
        if not self.params:
            return g
        B = rec.t.shape[1]
        b = torch.arange(B, device=rec.t.device)
        for j in range(rec.t.shape[0]):
            h = rec.h[j]
            if not bool((h > 0).any()):
                continue
            idx = torch.full_like(b, j)
            for xi, w in zip(_NODES, _WEIGHTS):
                s = rec.t[j] + xi * h
                a = rec.piece(idx, b, s)[:, part]
                y = state(-s, idx, b, s).detach()
                with torch.enable_grad():
                    fy = self.F(-s, y)
                    # f using no parameter (or nothing that requires grad): no term
                    grads = (torch.autograd.grad(fy, self.params, a * (w * h)[:, None],
                                                 allow_unused=True) if fy.requires_grad
                             else (None,) * len(self.params))
                g = [gi + d for gi, d in zip(g, _param_grads(grads, self.params, a))]
        return g

    def backward(self, ys: torch.Tensor, grad_ys: torch.Tensor):
        a = grad_ys[-1]
        g = [torch.zeros(q.numel(), dtype=ys.dtype, device=ys.device) for q in self.params]
        ts = self.ts.tolist()
        for k in range(len(ts) - 1, -1, -1):
            t_prev, y_prev = (ts[k - 1], ys[k - 1]) if k > 0 else (self.t0, self.y0)
            if ts[k] > t_prev:
                a, g = self._interval(y_prev, ys[k], a, t_prev, ts[k], g)
            if k > 0:
                a = a + grad_ys[k - 1]
        return a, [gi.view_as(q).to(q.dtype) for gi, q in zip(g, self.params)]


def stiff_adjoint(F, y0: torch.Tensor, t0: float, ts: torch.Tensor, params, forward_solve,
                  alg: AdaptiveImplicit, sensealg, max_steps=None) -> torch.Tensor:
    """Run ``forward_solve`` under a stiff adjoint; returns ``ys (K, B, D)``.

    Parameters
    ----------
    F : callable
        The flat right-hand side ``(t (B,), y (B, D)) -> (B, D)`` (with
        ``stiff`` and ``nonstiff`` parts for a split problem).
    y0 : torch.Tensor, shape (B, D)
    t0 : float
    ts : torch.Tensor, shape (K,)
        Save times.
    params : list of torch.Tensor
        What to differentiate besides ``y0``.
    forward_solve : callable
        ``y0 -> ys``, run without a graph.
    alg : AdaptiveImplicit
        The forward method, also used backwards.
    sensealg : BacksolveAdjoint or InterpolatingAdjoint
        Which adjoint; its ``rtol``/``atol`` override the method's backwards.
    max_steps : int, optional
        Most steps of each backward solve.

    Returns
    -------
    torch.Tensor, shape (K, B, D)
    """
    tolerances = {k: v for k, v in (("rtol", sensealg.rtol), ("atol", sensealg.atol))
                  if v is not None}
    backward_alg = replace(alg, dt0=None, **tolerances)
    if not isinstance(sensealg, (BacksolveAdjoint, InterpolatingAdjoint)):
        raise TypeError(f"sensealg must be an adjoint, got {sensealg!r}")
    runner = _StiffAdjointRunner(F, params, t0, ts, forward_solve, backward_alg, max_steps,
                                 isinstance(sensealg, InterpolatingAdjoint))
    return run_with_adjoint(runner, y0)
