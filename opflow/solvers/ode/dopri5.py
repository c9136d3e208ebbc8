"""Dormand-Prince 5(4): the method behind ode45 and torchdiffeq's ``dopri5``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import AdaptiveRK
from .runge_kutta import ButcherTableau

__all__ = ["Dopri5"]

_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
# Shampine's dense output, as in Hairer's DOPRI5 code.
_D = np.array([-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799,
               -10690763975 / 1880347072, 701980252875 / 199316789632,
               -1453857185 / 822651844, 69997945 / 29380423])


def _dense_output_coefficients() -> np.ndarray:
    """Rewrite Hairer's nested dense-output formula as ``b_i(theta)/theta``
    polynomials ``P0 + P1 theta + P2 theta^2 + P3 theta^3`` per stage."""
    e1, e7 = np.eye(7)[0], np.eye(7)[6]
    r2, r3, r4, r5 = _B, e1 - _B, 2 * _B - e1 - e7, _D
    return np.stack([r2 + r3, -r3 + r4 + r5, -r4 - 2 * r5, r5], axis=1)


DOPRI5_TABLEAU = ButcherTableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        tuple(_B[:6]),
    ),
    b=tuple(_B),
    order=5,
    b_error=(71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40),
    fsal=True,
    interp=_dense_output_coefficients(),
)


@dataclass(frozen=True)
class Dopri5(AdaptiveRK):
    """Dormand-Prince 5(4) with PI step control and 4th-order dense output.

    See :class:`~opflow.solvers.ode.base.AdaptiveRK` for the parameters.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> sol = opflow.solve(prob, opflow.Dopri5(rtol=1e-8, atol=1e-10))
    >>> round(float(sol.u[-1, 0]), 6)
    0.367879
    """

    tableau = DOPRI5_TABLEAU
