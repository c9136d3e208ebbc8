"""Euler-Maruyama (Ito) and Euler-Heun (Stratonovich): the basic fixed-step SDE method."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .solve_sde import SDEAlgorithm, SDESystem, Step

__all__ = ["EulerMaruyama"]


@dataclass(frozen=True)
class EulerMaruyama(SDEAlgorithm):
    """Euler-Maruyama with step ``dt``: strong order 0.5 (1.0 for additive
    noise), weak order 1.

    Ito problems: ``u+ = u + f(t, u) h + g(t, u) dW``.
    Stratonovich problems use the Euler-Heun variant, which evaluates ``g``
    once more at the predictor ``u~ = u + g(t, u) dW``:
    ``u+ = u + f(t, u) h + (g(t, u) + g(t, u~)) dW / 2``.
    Any noise type.

    With ``adaptive=True`` on an Ito problem whose noise is not additive,
    ``solve`` warns (as torchsde does): the accepted steps depend on the
    Brownian increments they take, and Euler-Maruyama's left-point sums over
    such a grid need not converge to the Ito solution (Gaines and Lyons,
    1997). Measured on geometric Brownian motion, the pathwise error stops
    falling near 1e-2 as ``rtol`` tightens (every path biased the same way),
    while adaptive Milstein, the Euler-Heun steps of the Stratonovich form
    and additive noise keep converging.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * u, torch.ones(16, 1),
    ...                          tspan=(0.0, 1.0))
    >>> opflow.solve(prob, opflow.EulerMaruyama(dt=0.01), seed=0).success
    True
    """

    def check(self, system: SDESystem) -> None:
        """Warn where adaptive steps need not converge (Ito, state-dependent noise).

        Parameters
        ----------
        system : SDESystem
            The problem about to be solved.
        """
        if self.adaptive and system.sde_type == "ito" and system.state_dependent_noise:
            warnings.warn("EulerMaruyama with adaptive steps on an Ito problem with "
                          f"{system.noise} noise need not converge to the Ito solution (the "
                          "accepted steps depend on the increments they take): use Milstein "
                          "or RKMil (diagonal, scalar noise), the Stratonovich form, or "
                          "fixed steps", UserWarning, stacklevel=4)

    def evals_per_step(self, system: SDESystem) -> int:
        heun = system.sde_type == "stratonovich" and system.state_dependent_noise
        return 3 if heun else 2

    def stepper(self, system: SDESystem) -> Step:
        F, G, term = system.F, system.G, system.noise_term
        heun = system.sde_type == "stratonovich" and system.state_dependent_noise
        if heun:
            def step(t, tn, h, y, dw, H):
                gdw = term(G(t, y), dw)
                gdw2 = term(G(t, y + gdw), dw)
                return torch.add(y, F(t, y), alpha=h).add_(gdw.add_(gdw2), alpha=0.5)
        elif system.matrix:
            def step(t, tn, h, y, dw, H):
                return torch.add(y, F(t, y), alpha=h).add_(term(G(t, y), dw))
        else:
            def step(t, tn, h, y, dw, H):
                return torch.addcmul(torch.add(y, F(t, y), alpha=h), G(t, y), dw)
        return step
