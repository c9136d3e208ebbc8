"""Ordinary differential equations: explicit Runge-Kutta solvers and adjoints, and stiff
solvers: Rosenbrock (:class:`Rosenbrock23`, :class:`Rodas4`) and ESDIRK
(:class:`ImplicitEuler`, :class:`Kvaerno5`) and IMEX (:class:`KenCarp4`) methods on one
step loop."""

from .base import AdaptiveRK, FixedStepRK
from .callbacks import ContinuousCallback, DiscreteCallback
from .dopri5 import Dopri5
from .esdirk import AdaptiveESDIRK, ESDIRKTableau
from .euler import Euler
from .implicit import AdaptiveImplicit
from .implicit_euler import ImplicitEuler
from .kencarp4 import KenCarp4
from .kvaerno5 import Kvaerno5
from .rk4 import RK4
from .rodas4 import Rodas4
from .rosenbrock import AdaptiveRosenbrock, RosenbrockTableau
from .rosenbrock23 import Rosenbrock23
from .sensitivity import BacksolveAdjoint, DirectBackprop, InterpolatingAdjoint
from .solve_ode import solve_ode
from .solve_stiff import solve_stiff
from .tsit5 import Tsit5

__all__ = ["AdaptiveESDIRK", "AdaptiveImplicit", "AdaptiveRK", "AdaptiveRosenbrock",
           "BacksolveAdjoint", "ContinuousCallback", "DirectBackprop", "DiscreteCallback",
           "Dopri5", "ESDIRKTableau", "Euler", "FixedStepRK", "ImplicitEuler",
           "InterpolatingAdjoint", "KenCarp4", "Kvaerno5", "RK4", "Rodas4", "Rosenbrock23",
           "RosenbrockTableau", "Tsit5",
           "solve_ode", "solve_stiff"]
