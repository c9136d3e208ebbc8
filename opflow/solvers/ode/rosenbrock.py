"""Rosenbrock (linearly implicit) methods: the tableau form and its step.

A Rosenbrock method replaces the nonlinear stage equations of an implicit
Runge-Kutta method by linear ones with the Jacobian ``J = df/dy``. With
``W = I / (h gamma) - J`` (one LU per step and sample), stage ``i`` solves::

    W k_i = f(t + alpha_i h, y + sum_j a_ij k_j) + sum_j c_ij / h k_j + h gamma_i df/dt

and ``y_new = y + sum_i m_i k_i``, ``err = sum_i e_i k_i`` (the tableau
convention of Hairer and Wanner's RODAS code). The step loop is
:func:`~.implicit.integrate_implicit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..linear import DenseLU
from .implicit import AdaptiveImplicit

__all__ = ["AdaptiveRosenbrock", "RosenbrockTableau", "tableau_step"]


@dataclass(frozen=True)
class RosenbrockTableau:
    """Coefficients of an ``s``-stage Rosenbrock method (lists of rows).

    Parameters
    ----------
    a, c : tuple of tuple of float
        Strictly lower triangular (``a[i][j]`` for ``j < i``).
    m, e : tuple of float
        Solution and error weights.
    alpha : tuple of float
        Stage time fractions.
    gammas : tuple of float
        The ``gamma_i`` of the time derivative.
    gamma : float
        The diagonal.
    order, error_order : int
        Order of the solution; of the error estimate plus one (the step
        controller's exponent).
    """

    a: tuple[tuple[float, ...], ...]
    c: tuple[tuple[float, ...], ...]
    m: tuple[float, ...]
    e: tuple[float, ...]
    alpha: tuple[float, ...]
    gammas: tuple[float, ...]
    gamma: float
    order: int
    error_order: int

    @property
    def stages(self) -> int:
        return len(self.m)


def tableau_step(F, tab: RosenbrockTableau, t, y, f0, h, J, dfdt):
    """One step of size ``h (B,)`` with the stages of ``tab``.

    Returns the new states, the error estimates ``(B, D)`` and None (the
    slope at the new state is not a by-product here).
    """
    D = y.shape[1]
    eye = torch.eye(D, dtype=y.dtype, device=y.device)
    lu = DenseLU(eye / (h * tab.gamma)[:, None, None] - J)
    ks: list[torch.Tensor] = []
    for i in range(tab.stages):
        if i == 0:
            f = f0
        else:
            yi = y + sum(tab.a[i][j] * ks[j] for j in range(i) if tab.a[i][j] != 0.0)
            f = F(t + tab.alpha[i] * h, yi)
        rhs = f + (h * tab.gammas[i])[:, None] * dfdt
        coupling = [tab.c[i][j] * ks[j] for j in range(i) if tab.c[i][j] != 0.0]
        if coupling:
            rhs = rhs + sum(coupling) / h[:, None]
        ks.append(lu.solve(rhs))
    y_new = y + sum(w * k for w, k in zip(tab.m, ks) if w != 0.0)
    err = sum(w * k for w, k in zip(tab.e, ks) if w != 0.0)
    return y_new, err, None


@dataclass(frozen=True)
class AdaptiveRosenbrock(AdaptiveImplicit):
    """A Rosenbrock method given by a :class:`RosenbrockTableau` (parameters as
    :class:`~.implicit.AdaptiveImplicit`)."""

    tableau: ClassVar[RosenbrockTableau]

    @property
    def order(self) -> int:  # type: ignore[override]
        return self.tableau.order

    @property
    def error_order(self) -> int:  # type: ignore[override]
        return self.tableau.error_order

    @property
    def stages(self) -> int:  # type: ignore[override]
        return self.tableau.stages

    def step(self, F, t, y, f0, h, J, dfdt):
        # the stages of the tableau (see tableau_step); documented on AdaptiveImplicit.step
        return tableau_step(F, self.tableau, t, y, f0, h, J, dfdt)
