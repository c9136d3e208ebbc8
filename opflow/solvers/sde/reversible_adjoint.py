"""Exact gradients of the reversible Heun method by running it backwards.

The forward pass keeps no graph, only the Brownian increments, the saved
states and the final carried state ``(z, z^, mu, sigma)`` of
:class:`~opflow.solvers.sde.ReversibleHeun`. The backward pass walks the
steps in reverse: each reconstructs the previous carried state from the next
one by the method's algebraic inverse (one drift and one diffusion
evaluation, whose graph is kept for the following reverse step) and pulls the
cotangents of ``(z, z^, mu, sigma)`` back through the forward step (one
vector-Jacobian product through ``f`` and ``g``). The result is the gradient
of the discrete forward solve, as direct backprop computes it, up to the
rounding of the reconstruction (Kidger, Foster, Li and Lyons, 2021).

With ``T(s, dW)`` the noise term ``s dW`` and output cotangents
``(A_z, A_z^, A_mu, A_sigma)`` of step ``n``, the step's inputs get::

    C      = A_z^ + [(A_mu + h A_z / 2, A_sigma + T^T(A_z / 2)) through (f, g) at z^+]
    A_z    <- A_z + 2 C,    A_z^ <- -C
    A_mu   <- h (C + A_z / 2),    A_sigma <- T^T(C + A_z / 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from ..ode.sensitivity import run_with_adjoint

__all__ = ["ReversibleAdjoint", "reversible_adjoint"]


@dataclass(frozen=True)
class ReversibleAdjoint:
    """Gradients of :class:`~opflow.solvers.sde.ReversibleHeun` solves by
    reconstructing the forward states backwards: exact, ``O(1)`` memory in steps.

    The forward solve records no graph; the backward pass runs the reversible
    Heun method backwards on the same Brownian increments, recovering each
    forward state (to rounding), and backpropagates through each step as it
    goes. The gradients equal direct backprop's through the same
    discretisation (to rounding, in float64 about ``1e-12`` relative), unlike
    :class:`~opflow.BacksolveAdjoint`, whose gradients are those of the
    continuous SDE and approach them only as ``dt -> 0``. Cost: two drift and
    two diffusion evaluations and one vector-Jacobian product per step
    backwards. Only with ``ReversibleHeun``.

    Parameters
    ----------
    params : sequence of torch.Tensor, optional
        Tensors to differentiate with respect to. Default: the parameters of
        ``drift``/``diffusion`` modules (or of the module a bound method
        belongs to), the tensors and modules their closures capture, and the
        tensors in ``p`` that require grad.

    Examples
    --------
    >>> import torch, opflow
    >>> w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    >>> prob = opflow.SDEProblem(lambda t, u, p: -p * u, lambda t, u, p: 0.2 * u,
    ...                          torch.ones(4, 1, dtype=torch.float64), (0.0, 1.0), p=w,
    ...                          sde_type="stratonovich")
    >>> alg = opflow.ReversibleHeun(dt=0.1)
    >>> loss = opflow.solve(prob, alg, seed=1, sensealg=opflow.ReversibleAdjoint()).u[-1].sum()
    >>> direct = opflow.solve(prob, alg, seed=1).u[-1].sum()
    >>> g1, g2 = torch.autograd.grad(loss, w)[0], torch.autograd.grad(direct, w)[0]
    >>> bool(torch.allclose(g1, g2, rtol=1e-12))
    True
    """

    params: Optional[Sequence[torch.Tensor]] = None


def _vjp(outs, inputs, cotangents):
    """``sum_k cotangent_k^T d out_k / d inputs``; None where independent."""
    pairs = [(o, c) for o, c in zip(outs, cotangents) if o.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    return torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs],
                               allow_unused=True)


def _add(acc, x, alpha: float = 1.0):
    return acc if x is None else acc.add(x, alpha=alpha)


class _ReversibleRunner:
    def __init__(self, system, forward: Callable, stepper: Any, times, hs, dws, saves, params):
        self.system, self.forward_fn, self.stepper = system, forward, stepper
        self.times, self.hs, self.dws, self.saves = times, hs, dws, saves
        self.params = list(params)

    def forward(self, y0):
        self.y0 = y0.detach()
        ys = self.forward_fn(y0)
        self.final = self.stepper.last
        return ys

    def _noise_cotangent(self, c, dw):
        """``T^T(c)``: the cotangent of ``sigma`` in ``T(sigma, dW)`` for cotangent ``c``."""
        if self.system.matrix:
            return c.unsqueeze(-1) * dw.unsqueeze(-2)
        return c * dw

    def _evaluate(self, t, zh):
        """``(leaf, f(t, leaf), g(t, leaf))`` on a graph from a leaf copy of ``zh``."""
        leaf = zh.detach().requires_grad_(True)
        with torch.enable_grad():
            return leaf, self.system.F(t, leaf), self.system.G(t, leaf)

    def backward(self, ys, grad_ys):
        system, params, saves = self.system, self.params, self.saves
        term, times, hs, dws = system.noise_term, self.times, self.hs, self.dws
        N = len(hs)
        gp = [torch.zeros_like(q) for q in params]
        if N == 0:
            z = zh = self.y0
        else:
            z, zh = (x.detach() for x in self.final[:2])
        leaf, mu, sigma = self._evaluate(times[N], zh)
        a_z = torch.zeros_like(z)
        a_zh = torch.zeros_like(z)
        a_mu = torch.zeros_like(mu)
        a_sigma = torch.zeros_like(sigma)
        k = len(saves) - 1
        while k >= 0 and saves[k] == N:
            a_z, k = a_z + grad_ys[k], k - 1
        for n in range(N - 1, -1, -1):
            h, dw = hs[n], dws[n]
            half = 0.5 * a_z
            v = _vjp((mu, sigma), [leaf, *params],
                     (a_mu.add(a_z, alpha=0.5 * h), a_sigma + self._noise_cotangent(half, dw)))
            c = _add(a_zh, v[0])
            gp = [_add(acc, x) for acc, x in zip(gp, v[1:])]
            mu_d, sigma_d = mu.detach(), sigma.detach()
            # the previous carried state, by the inverse of the step (z^_0 = z_0 exactly)
            zh_prev = self.y0 if n == 0 else (
                torch.add(2.0 * z - zh, mu_d, alpha=-h).sub_(term(sigma_d, dw)))
            leaf, mu, sigma = self._evaluate(times[n], zh_prev)
            z = torch.add(z, mu.detach() + mu_d, alpha=-0.5 * h).sub_(
                term(sigma.detach() + sigma_d, dw), alpha=0.5)
            zh = zh_prev
            a_mu = (c + half) * h
            a_sigma = self._noise_cotangent(c + half, dw)
            a_z, a_zh = a_z + 2.0 * c, -c
            while k >= 0 and saves[k] == n:
                a_z, k = a_z + grad_ys[k], k - 1
        v = _vjp((mu, sigma), [leaf, *params], (a_mu, a_sigma))
        grad_y0 = _add(a_z + a_zh, v[0])
        gp = [_add(acc, x) for acc, x in zip(gp, v[1:])]
        return grad_y0, [g.to(q.dtype) for g, q in zip(gp, params)]


def reversible_adjoint(system, forward: Callable, stepper: Any, y0, times, hs, dws, saves,
                       params) -> torch.Tensor:
    """``forward(y0) -> ys (K, B, D)`` with gradients by the reversible adjoint.

    Parameters
    ----------
    system : SDESystem
    forward : callable
        The forward march with ``stepper`` (a :class:`ReversibleHeunStepper`).
    stepper : ReversibleHeunStepper
        Its ``last`` carried state seeds the backward pass.
    y0 : torch.Tensor, shape (B, D)
    times, hs, dws, saves : sequences
        The grid, step sizes, Brownian increments and save step counts.
    params : sequence of torch.Tensor

    Returns
    -------
    torch.Tensor, shape (K, B, D)
    """
    runner = _ReversibleRunner(system, forward, stepper, times, hs, dws, saves, params)
    return run_with_adjoint(runner, y0)
