"""ImplicitEuler: the backward Euler method with an error estimate."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .esdirk import AdaptiveESDIRK, ESDIRKTableau

__all__ = ["ImplicitEuler"]


@dataclass(frozen=True)
class ImplicitEuler(AdaptiveESDIRK):
    """Backward Euler, ``y_new = y + h f(t + h, y_new)``: order 1, L-stable.

    The error estimate is the difference to the trapezoidal rule,
    ``h/2 (f(t, y) - f(t + h, y_new))``. The most robust and the least
    accurate of the stiff methods: for a first look at a very stiff or
    discontinuous problem, or as a building block. Parameters as
    :class:`~opflow.solvers.ode.esdirk.AdaptiveESDIRK`.
    """

    tableau = ESDIRKTableau(a=((),), b=(1.0,), b_error=(0.0,), c=(1.0,), gamma=1.0,
                            order=1, error_order=2, explicit_first=False)

    def step(self, F, t, y, f0, h, J, dfdt):
        # backward Euler; err = h/2 (f0 - f1) (AdaptiveImplicit.step)
        y_new, err, f1 = super().step(F, t, y, f0, h, J, dfdt)
        estimate = 0.5 * h[:, None] * (f0 - f1)
        return y_new, torch.where(torch.isfinite(err), estimate, err), f1  # inf: stage failed
