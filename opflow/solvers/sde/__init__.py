"""Stochastic differential equations: fixed-step solvers, Brownian paths, stochastic adjoint.

``solve(SDEProblem(...), EulerMaruyama(dt=...), saveat=..., seed=...)``; see
:func:`~opflow.solvers.sde.solve_sde.solve_sde` for the options.
"""

from .brownian import BrownianInterval
from .euler_maruyama import EulerMaruyama
from .milstein import Milstein
from .problem import SDEProblem
from .reversible_adjoint import ReversibleAdjoint
from .reversible_heun import ReversibleHeun
from .rkmil import RKMil
from .solve_sde import SDEAlgorithm, solve_sde
from .sra1 import SRA1

__all__ = ["BrownianInterval", "EulerMaruyama", "Milstein", "RKMil", "ReversibleAdjoint",
           "ReversibleHeun", "SDEAlgorithm", "SDEProblem", "SRA1", "solve_sde"]
