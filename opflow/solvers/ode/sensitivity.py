"""How gradients flow through an ODE solve (``solve(..., sensealg=...)``).

* :class:`DirectBackprop` (default): autograd records every step. Exact
  gradients of the discrete solution; memory grows with the number of steps.
* :class:`BacksolveAdjoint`: the continuous adjoint, solved backwards in time
  together with the state. Memory does not grow with the number of steps
  (O(1) in steps, O(K) in save points); gradients match the true ones to the
  tolerance of the backward solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

__all__ = ["DirectBackprop", "BacksolveAdjoint", "collect_parameters", "backsolve"]


@dataclass(frozen=True)
class DirectBackprop:
    """Differentiate through the solver's operations with autograd."""


@dataclass(frozen=True)
class BacksolveAdjoint:
    """Continuous adjoint solved backwards in time (O(1) memory in steps).

    Parameters
    ----------
    rtol, atol : float, optional
        Tolerances of the backward solve (default: those of the algorithm).
    params : sequence of torch.Tensor, optional
        Tensors to differentiate with respect to. Default: the parameters of
        ``f`` when it is an ``nn.Module`` and the tensors in ``p`` that
        require grad.
    """

    rtol: Optional[float] = None
    atol: Optional[float] = None
    params: Optional[Sequence[torch.Tensor]] = None


def collect_parameters(f: Any, p: Any) -> list[torch.Tensor]:
    """Tensors requiring grad in ``f`` (an ``nn.Module``) and ``p`` (nested)."""
    found: list[torch.Tensor] = []

    def visit(obj):
        if isinstance(obj, nn.Module):
            found.extend(q for q in obj.parameters() if q.requires_grad)
        elif isinstance(obj, torch.Tensor):
            if obj.requires_grad:
                found.append(obj)
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v)

    visit(f)
    visit(p)
    unique, seen = [], set()
    for q in found:
        if id(q) not in seen:
            seen.add(id(q))
            unique.append(q)
    return unique


class _Backsolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner, y0, *params):
        with torch.no_grad():
            ys = runner.forward(y0)
        ctx.runner = runner
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    def backward(ctx, grad_ys):
        (ys,) = ctx.saved_tensors
        grad_y0, grad_params = ctx.runner.backward(ys, grad_ys)
        return (None, grad_y0, *grad_params)


class _AdjointRunner:
    """Holds what the forward and backward passes of :class:`_Backsolve` share.

    ``F(t, y)`` takes a 0-dim time and a state of any shape.
    ``forward_solve(y0) -> ys`` runs the forward problem to all save times;
    ``integrate(G, z, t_from, t_to) -> z`` integrates 1-D augmented states
    (the backward pass reverses time itself, so ``t_from < t_to``).
    """

    def __init__(self, F, params, t0: float, ts, forward_solve: Callable, integrate: Callable):
        self.F, self.params, self.t0, self.ts = F, list(params), t0, ts
        self.forward_solve, self.integrate = forward_solve, integrate

    def forward(self, y0):
        return self.forward_solve(y0)

    def _augmented(self, shape):
        """Time-reversed adjoint dynamics on the flat state ``[y, a, g]``."""
        params, F = self.params, self.F
        n = math.prod(shape)

        def G(s, z):
            y, a = z[:n].view(shape), z[n: 2 * n].view(shape)
            with torch.enable_grad():
                y_ = y.detach().requires_grad_(True)
                fy = F(-s, y_)
                grads = torch.autograd.grad(fy, (y_, *params), a, allow_unused=True)
            parts = [-fy.reshape(-1), grads[0].reshape(-1)]
            parts += [torch.zeros(q.numel(), dtype=z.dtype, device=z.device) if g is None
                      else g.reshape(-1).to(z.dtype) for q, g in zip(params, grads[1:])]
            return torch.cat(parts)

        return G, n

    def backward(self, ys, grad_ys):
        shape = tuple(ys.shape[1:])
        G, n = self._augmented(shape)
        sizes = [q.numel() for q in self.params]
        a = grad_ys[-1]
        g = [torch.zeros(q.numel(), dtype=ys.dtype, device=ys.device) for q in self.params]
        ts = self.ts.tolist()
        # Walk back through the save times, then from the first one to t0.
        for k in range(len(ts) - 1, -1, -1):
            t_prev = ts[k - 1] if k > 0 else self.t0
            if ts[k] > t_prev:
                z = torch.cat([ys[k].reshape(-1), a.reshape(-1), *g])
                z = self.integrate(G, z, -ts[k], -t_prev)
                a = z[n: 2 * n].view(shape)
                g = list(torch.split(z[2 * n:], sizes)) if self.params else []
            if k > 0:
                a = a + grad_ys[k - 1]
        grad_params = [gi.view_as(q).to(q.dtype) for gi, q in zip(g, self.params)]
        return a, grad_params


def backsolve(F, y0, t0: float, ts, params, forward_solve, integrate):
    """Run ``forward_solve`` under the backsolve adjoint; returns ``ys (K, *y0.shape)``."""
    runner = _AdjointRunner(F, params, t0, ts, forward_solve, integrate)
    return _Backsolve.apply(runner, y0, *runner.params)
