"""Ordinary differential equations: explicit Runge-Kutta solvers and adjoints."""

from .base import AdaptiveRK, FixedStepRK
from .dopri5 import Dopri5
from .euler import Euler
from .rk4 import RK4
from .sensitivity import BacksolveAdjoint, DirectBackprop, InterpolatingAdjoint
from .solve_ode import solve_ode
from .tsit5 import Tsit5

__all__ = ["AdaptiveRK", "BacksolveAdjoint", "DirectBackprop", "Dopri5", "Euler", "FixedStepRK",
           "InterpolatingAdjoint", "RK4", "Tsit5", "solve_ode"]
