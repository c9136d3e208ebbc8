"""Rosenbrock23: the L-stable order-2(3) Rosenbrock pair of MATLAB's ode23s."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..linear import DenseLU
from .implicit import AdaptiveImplicit

__all__ = ["Rosenbrock23"]

_D = 1.0 / (2.0 + math.sqrt(2.0))
_E32 = 6.0 + math.sqrt(2.0)


@dataclass(frozen=True)
class Rosenbrock23(AdaptiveImplicit):
    """Shampine and Reichelt's L-stable Rosenbrock pair of orders 2 and 3 (``ode23s``).

    Three stages, one LU per step, the last slope reused by the next step.
    Suits stiff problems at loose to moderate tolerances (``rtol`` 1e-2 to
    1e-6); for tight ones prefer :class:`Rodas4`. Parameters as
    :class:`~opflow.solvers.ode.implicit.AdaptiveImplicit`.

    References: L. F. Shampine and M. W. Reichelt, "The MATLAB ODE Suite",
    SIAM J. Sci. Comput. 18 (1997).
    """

    order = 2
    error_order = 3
    stages = 3

    def step(self, F, t, y, f0, h, J, dfdt):
        # W = I - h d J; three slopes; err = h/6 (k1 - 2 k2 + k3) (AdaptiveImplicit.step)
        D = y.shape[1]
        hc = h[:, None]
        lu = DenseLU(torch.eye(D, dtype=y.dtype, device=y.device) - (h * _D)[:, None, None] * J)
        k1 = lu.solve(f0 + _D * hc * dfdt)
        f1 = F(t + 0.5 * h, y + 0.5 * hc * k1)
        k2 = lu.solve(f1 - k1) + k1
        y_new = y + hc * k2
        f2 = F(t + h, y_new)
        k3 = lu.solve(f2 - _E32 * (k2 - f1) - 2.0 * (k1 - f0) + _D * hc * dfdt)
        return y_new, hc / 6.0 * (k1 - 2.0 * k2 + k3), f2
