"""Crank-Nicolson / Heun (CN-RK2) for ``v' = L v + N(t, v)``.

A predictor-corrector pair, self-starting; the scheme of the FNO
Navier-Stokes data recipe (Crank-Nicolson in the viscous term):

    predictor  (1 - h L / 2) v*      = (1 + h L / 2) v_n + h N(t_n, v_n)
    corrector  (1 - h L / 2) v_{n+1} = (1 + h L / 2) v_n
                                       + (h / 2) [N(t_n, v_n) + N(t_n + h, v*)]

Second order, two evaluations of ``N`` per step, unconditionally stable in
``L``; the explicit part has Heun's stability region (about twice the
AB2 limit per step).
"""

from __future__ import annotations

import torch

from .cnab2 import crank_nicolson_coefficients
from .stepping import Stepper

__all__ = ["CNHeunStepper"]


class CNHeunStepper(Stepper):
    """Crank-Nicolson with a Heun predictor-corrector for the explicit part."""

    order = 2
    evaluations = 2

    def _coefficients(self, h: float):
        growth_m1, gain = crank_nicolson_coefficients(self.system.linear, h)
        return growth_m1, gain, 0.5 * gain

    def step(self, t: float, v: torch.Tensor, h: float) -> torch.Tensor:
        growth_m1, gain, half_gain = self.coefficients(h)
        explicit = self.system.explicit
        n0 = explicit(t, v)
        decay = growth_m1 * v
        predicted = v + (decay + gain * n0)
        n1 = explicit(t + h, predicted)
        return v + (decay + half_gain * (n0 + n1))
