"""The stochastic adjoint: gradients by a reverse-time solve on the same Brownian path.

For the Stratonovich SDE ``du = f dt + g o dW`` and a loss on the saved
states, the adjoint ``a = dL/du`` and the parameter gradient solve, backwards
from ``t1`` (Li, Wong, Chen and Duvenaud, 2020)::

    du   = f dt + g o dW                        (the state, reconstructed backwards)
    da   = -a^T (df/du) dt - a^T (dg/du) o dW
    dg_p = -a^T (df/dp) dt - a^T (dg/dp) o dW

with the *same* increments ``dW`` as the forward solve, so the forward path
needs no storage beyond its increments and the save points. Ito problems are
first written in Stratonovich form, ``f_S = f - 1/2 (dg/du) g`` (exact for
scalar and additive noise, and for diagonal noise whose ``g_i`` depends on
``u_i`` only); general noise is supported in Stratonovich form only.

Each reverse step is one stochastic Heun (trapezoidal predictor-corrector)
step of the whole system ``(u, a, g_p)``, which converges to the
Stratonovich solution: with ``Phi(t, u) = f_S(t, u) h + g(t, u) dW``, the
predictor is ``u~ = u - Phi(t_{n+1}, u)``, ``a~ = a + a^T dPhi/du``, and the
step averages the terms at ``(t_{n+1}, u, a)`` and ``(t_n, u~, a~)``. Two
vector-Jacobian products (autograd) per step. The state is reset to the
stored forward value at every save time.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..ode.sensitivity import run_with_adjoint

__all__ = ["sde_backsolve"]


def _vjp(out, inputs, cotangent, retain_graph=False):
    """``cotangent^T d out / d inputs``; None for inputs ``out`` does not depend on."""
    if not out.requires_grad:
        return [None] * len(inputs)
    return torch.autograd.grad(out, inputs, cotangent, retain_graph=retain_graph,
                               allow_unused=True)


def _axpy(acc, x, alpha: float = 1.0):
    if x is None:
        return acc
    return acc.add(x, alpha=alpha)


class _SDEAdjointRunner:
    """Forward solve and reverse-time adjoint of an SDE, run by ``run_with_adjoint``."""

    def __init__(self, system, forward: Callable, times: Sequence[torch.Tensor],
                 hs: Sequence[float], dws: Sequence[torch.Tensor], saves: Sequence[int],
                 params: Sequence[torch.Tensor]):
        self.system, self.forward_fn = system, forward
        self.times, self.hs, self.dws, self.saves = times, hs, dws, saves
        self.params = list(params)

    def forward(self, y0):
        return self.forward_fn(y0)

    def _increment(self, t, y, h, dw):
        """``f_S(t, y) h + g(t, y) dW`` (Stratonovich drift ``f_S``) on a graph from ``y``."""
        system = self.system
        g, c = system.diffusion_and_correction(t, y)
        f = system.F(t, y)
        if c is not None:  # Ito problem: f_S = f - c / 2
            f = f - 0.5 * c
        return torch.add(system.noise_term(g, dw), f, alpha=h)

    def _step(self, n: int, y, a, gp):
        """One reverse Heun step of ``(u, a, g_p)`` from ``t_{n+1}`` to ``t_n``."""
        params = self.params
        t, tn, h, dw = self.times[n], self.times[n + 1], self.hs[n], self.dws[n]
        with torch.enable_grad():
            y1 = y.detach().requires_grad_(True)
            inc1 = self._increment(tn, y1, h, dw)
            v1 = _vjp(inc1, [y1, *params], a)
            y2 = (y - inc1.detach()).requires_grad_(True)  # predictor
            a2 = _axpy(a, v1[0])
            inc2 = self._increment(t, y2, h, dw)
            v2 = _vjp(inc2, [y2, *params], a2)
        y_new = y - 0.5 * (inc1.detach() + inc2.detach())
        a_new = _axpy(_axpy(a, v1[0], 0.5), v2[0], 0.5)
        gp = [_axpy(_axpy(acc, x, 0.5), z, 0.5) for acc, x, z in zip(gp, v1[1:], v2[1:])]
        return y_new, a_new, gp

    def backward(self, ys, grad_ys):
        saves, params = self.saves, self.params
        a = torch.zeros_like(ys[0])
        gp = [torch.zeros_like(q) for q in params]
        k, n = len(saves) - 1, len(self.hs)
        y = ys[-1]
        while k >= 0 and saves[k] == n:
            y, a, k = ys[k], a + grad_ys[k], k - 1
        for n in range(len(self.hs) - 1, -1, -1):
            y, a, gp = self._step(n, y, a, gp)
            while k >= 0 and saves[k] == n:
                y, a, k = ys[k], a + grad_ys[k], k - 1
        return a, [g.to(q.dtype) for g, q in zip(gp, params)]


def sde_backsolve(system, forward: Callable, y0, times, hs, dws, saves, params):
    """``forward(y0) -> ys (K, B, D)`` with gradients by the stochastic adjoint."""
    runner = _SDEAdjointRunner(system, forward, times, hs, dws, saves, params)
    return run_with_adjoint(runner, y0)
