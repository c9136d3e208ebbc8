"""Forward Euler: first order, one function evaluation per step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import FixedStepRK
from .runge_kutta import ButcherTableau

__all__ = ["Euler"]

EULER_TABLEAU = ButcherTableau(c=(0.0,), a=(), b=(1.0,), order=1, interp=np.array([[1.0]]))


@dataclass(frozen=True)
class Euler(FixedStepRK):
    """Forward Euler with step ``dt`` (order 1). Dense output is linear.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> round(float(opflow.solve(prob, opflow.Euler(dt=0.001)).u[-1, 0]), 3)
    0.368
    """

    tableau = EULER_TABLEAU
