"""The classical fourth-order Runge-Kutta method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FixedStepRK
from .runge_kutta import ButcherTableau

__all__ = ["RK4"]

RK4_TABLEAU = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
    # Third-order continuous extension: b_i(theta) / theta.
    interp=np.array([
        [1.0, -1.5, 2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, 1.0, -2 / 3],
        [0.0, -0.5, 2 / 3],
    ]),
)


@dataclass(frozen=True)
class RK4(FixedStepRK):
    """Classical RK4 with step ``dt`` (order 4, 4 evaluations per step).

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> round(float(opflow.solve(prob, opflow.RK4(dt=0.01)).u[-1, 0]), 6)
    0.367879
    """

    tableau = RK4_TABLEAU
