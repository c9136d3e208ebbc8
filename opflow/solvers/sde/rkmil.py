"""The derivative-free Runge-Kutta Milstein method: strong order 1 without ``dg/du``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...errors import SolverError
from .solve_sde import SDEAlgorithm, SDESystem, Step

__all__ = ["RKMil"]


@dataclass(frozen=True)
class RKMil(SDEAlgorithm):
    """Stochastic Runge-Kutta Milstein scheme with step ``dt``: strong order 1
    for diagonal and scalar noise, with no derivative of the diffusion.

    Milstein's correction ``1/2 (g' g)`` is replaced by differences of ``g``
    at stage values a distance ``g sqrt(h)`` away (Kloeden and Platen,
    *Numerical Solution of Stochastic Differential Equations*, 1992, section
    11.1; DifferentialEquations.jl's ``RKMil``). With ``f = f(t, u)``,
    ``g = g(t, u)``, ``s = sqrt(h)`` and ``dW`` the increment (shape ``(B, D)``
    for diagonal noise, ``(B, 1)`` for scalar noise, elementwise products)::

        Ito:           u~ = u + f h + g s
                       u+ = u + f h + g dW + (g(t, u~) - g) (dW^2 - h) / (2 s)
        Stratonovich:  u+ = u + f h + g dW + (g(t, u + g s) - g(t, u - g s)) dW^2 / (4 s)

    The Stratonovich form takes a central difference: the forward one's
    ``O(sqrt(h))`` error, multiplied by ``dW^2`` (of mean ``h``, not zero as
    ``dW^2 - h``), would bias every step and leave strong order 0.5.
    Evaluations per step: one drift and two (Ito) or three (Stratonovich)
    diffusions.

    Noise: ``diagonal`` (``g_i`` depending on ``u_i`` only), ``scalar`` and
    ``additive`` (where the correction vanishes and the step is
    Euler-Maruyama's). General noise needs Levy areas: refused.

    Parameters
    ----------
    dt : float
        Step.
    adaptive, rtol, atol, dtmin, max_steps : bool, float, float, float, int
        Keyword only: adaptive steps by step doubling on one Brownian path
        (``dt`` is then the first step), as for every
        :class:`~opflow.solvers.sde.solve_sde.SDEAlgorithm`.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * u, torch.ones(16, 1),
    ...                          tspan=(0.0, 1.0))  # diagonal noise, Ito
    >>> sol = opflow.solve(prob, opflow.RKMil(dt=0.01), seed=0)
    >>> sol.success, sol.stats.nfe  # 100 steps, one drift and two diffusions each
    (True, 300)
    """

    order: ClassVar[float] = 1.0

    def check(self, system: SDESystem) -> None:
        if system.matrix and system.state_dependent_noise:
            raise SolverError("RKMil supports noise='diagonal', 'scalar' or 'additive' "
                              "(general noise needs Levy areas); use EulerMaruyama")

    def evals_per_step(self, system: SDESystem) -> int:
        if not system.state_dependent_noise:
            return 2
        return 3 if system.sde_type == "ito" else 4

    def stepper(self, system: SDESystem) -> Step:
        F, G, term = system.F, system.G, system.noise_term
        if not system.state_dependent_noise:  # g' = 0: Euler-Maruyama
            def step(t, tn, h, y, dw, H):
                return torch.add(y, F(t, y), alpha=h).add_(term(G(t, y), dw))
            return step
        if system.sde_type == "ito":
            def step(t, tn, h, y, dw, H):  # type: ignore[no-redef]
                s = math.sqrt(h)
                g = G(t, y)
                k = torch.add(y, F(t, y), alpha=h)
                g_tilde = G(t, torch.add(k, g, alpha=s))
                y_new = torch.addcmul(k, g, dw)
                return y_new.addcmul_(g_tilde - g, dw * dw - h, value=0.5 / s)
            return step

        def step(t, tn, h, y, dw, H):  # type: ignore[no-redef]
            s = math.sqrt(h)
            g = G(t, y)
            diff = G(t, torch.add(y, g, alpha=s)) - G(t, torch.add(y, g, alpha=-s))
            y_new = torch.add(y, F(t, y), alpha=h).addcmul_(g, dw)
            return y_new.addcmul_(diff, dw * dw, value=0.25 / s)

        return step
