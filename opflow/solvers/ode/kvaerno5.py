"""Kvaerno5: Kvaerno's stiffly accurate ESDIRK method of order 5(4)."""

from __future__ import annotations

from dataclasses import dataclass

from .esdirk import AdaptiveESDIRK, ESDIRKTableau

__all__ = ["Kvaerno5"]

_G = 0.26
_A6 = (0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141,
       0.61943039072480676)
_A7 = (0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046,
       0.62993304899016403, 0.06962479448202728)
_A = ((), (_G,), (0.13, 0.84033320996790809),
      (0.22371961478320505, 0.47675532319799699, -0.06470895363112615),
      (0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998),
      _A6, _A7)


@dataclass(frozen=True)
class Kvaerno5(AdaptiveESDIRK):
    """Kvaerno's 7-stage ESDIRK method: order 5 with an embedded order 4,
    L-stable and stiffly accurate (the last stage is the solution).

    For stiff problems at tight tolerances where the Rosenbrock methods'
    exact-Jacobian requirement is a burden or the problem is strongly
    nonlinear. Parameters as :class:`~opflow.solvers.ode.esdirk.AdaptiveESDIRK`.

    References: A. Kvaerno, "Singly diagonally implicit Runge-Kutta methods
    with an explicit first stage", BIT 44 (2004).
    """

    tableau = ESDIRKTableau(
        a=_A, b=(*_A7, _G),
        b_error=tuple(a7 - a6 for a7, a6 in zip(_A7, (*_A6, _G))) + (_G,),
        c=(0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0),
        gamma=_G, order=5, error_order=5)
