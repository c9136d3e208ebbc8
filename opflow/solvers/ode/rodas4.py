"""Rodas4: Hairer and Wanner's stiffly accurate order-4(3) Rosenbrock method."""

from __future__ import annotations

from dataclasses import dataclass

from .rosenbrock import AdaptiveRosenbrock, RosenbrockTableau

__all__ = ["Rodas4"]

# Coefficients of RODAS (Hairer & Wanner, Solving ODEs II, section IV.7), in the
# convention of the shared loop: W k_i = f(Y_i) + sum_j c_ij / h k_j + h gamma_i f_t.
_A = ((), (1.544,), (0.9466785280815826, 0.2557011698983284),
      (3.314825187068521, 2.896124015972201, 0.9986419139977817),
      (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950),
      (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1.0))
_C = ((), (-5.6688,), (-2.430093356833875, -0.2063599157091915),
      (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
      (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
      (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136,
       -6.058818238834054))


@dataclass(frozen=True)
class Rodas4(AdaptiveRosenbrock):
    """A stiffly accurate, L-stable Rosenbrock method of order 4 with an order-3
    error estimate (six stages, one LU per step).

    For stiff problems at moderate to tight tolerances (``rtol`` 1e-5 to
    1e-10), also for problems with a singular mass-like structure where
    stiff accuracy matters. Parameters as
    :class:`~opflow.solvers.ode.implicit.AdaptiveImplicit`.

    References: E. Hairer and G. Wanner, Solving Ordinary Differential
    Equations II, 2nd ed., Springer (1996), section IV.7.
    """

    tableau = RosenbrockTableau(
        a=_A, c=_C,
        m=(1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950,
           1.0, 1.0),
        e=(0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
        alpha=(0.0, 0.386, 0.210, 0.630, 1.0, 1.0),
        gammas=(0.25, -0.1043, 0.1035, -0.0362, 0.0, 0.0),
        gamma=0.25, order=4, error_order=4)
