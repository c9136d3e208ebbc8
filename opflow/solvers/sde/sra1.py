"""Roessler's SRA1: strong order 1.5 for additive noise, two drift stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ...errors import SolverError
from .solve_sde import SDEAlgorithm, SDESystem, Step

__all__ = ["SRA1"]


@dataclass(frozen=True)
class SRA1(SDEAlgorithm):
    """Roessler's (2010) SRA1 stochastic Runge-Kutta method for additive noise.

    Strong order 1.5, weak order 2, with two drift evaluations per step and
    the diffusion at ``t`` and ``t + h`` (reused by the next step). With
    ``dW`` the increment and ``I = dW / 2 + H`` (``H`` the space-time Levy
    area, so that ``h I = int (W(s) - W(t)) ds``)::

        k1 = f(t, u)
        k2 = f(t + 3h/4, u + 3/4 h k1 + 3/2 g(t + h) I)
        u+ = u + h (k1 + 2 k2) / 3 + g(t + h) dW + (g(t) - g(t + h)) I

    ``noise`` must be ``"additive"`` (``g`` independent of ``u``; diagonal
    ``(B, D)`` or matrix ``(B, D, m)`` layout). The Ito and Stratonovich
    forms coincide for additive noise. Levy areas come from the same draw as
    the increments (or from the ``BrownianInterval`` given to ``solve``).

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * torch.ones_like(u),
    ...                          torch.ones(16, 1), tspan=(0.0, 1.0), noise="additive")
    >>> opflow.solve(prob, opflow.SRA1(dt=0.01), seed=0).success
    True
    """

    levy_area: ClassVar[bool] = True
    order: ClassVar[float] = 1.5

    def check(self, system: SDESystem) -> None:
        if system.state_dependent_noise:
            raise SolverError(f"SRA1 needs noise='additive', got noise={system.noise!r}; "
                              "use EulerMaruyama or Milstein")

    def evals_per_step(self, system: SDESystem) -> int:
        return 3

    def stepper(self, system: SDESystem) -> Step:
        F, G, term = system.F, system.G, system.noise_term
        cache: dict = {}

        def step(t, tn, h, y, dw, H):
            # g depends on t only: g(t_{n+1}) of this step is g(t_n) of the next.
            g0 = cache["g"] if cache.get("t") is t else G(t, y)
            g1 = G(tn, y)
            cache["t"], cache["g"] = tn, g1
            ii = torch.add(H, dw, alpha=0.5)
            k1 = F(t, y)
            y2 = torch.add(y, k1, alpha=0.75 * h).add_(term(g1, ii), alpha=1.5)
            k2 = F(t + 0.75 * h, y2)
            y_new = torch.add(y, k1.add(k2, alpha=2.0), alpha=h / 3.0)
            return y_new.add_(term(g1, dw)).add_(term(g0 - g1, ii))

        return step
