"""Neural differential-equation layers: ``nn.Module`` s that solve ODEs and SDEs.

* :class:`NeuralODE`: ``dy/dt = f_theta(t, y)`` on any opflow ODE solver, with
  direct or adjoint gradients and per-sample output times.
* :class:`LangevinSDE`, :class:`LinearNoiseSDE`, :class:`GeometricSDE`: the
  stable neural SDEs of Oh, Lim and Kim, driven by a
  :class:`NaturalCubicSpline` of irregularly sampled observations;
  :class:`NeuralSDE` is the naive neural SDE they are compared with.
* :class:`ErrorRegularizer`: the ERNODE penalty (local error estimates of the
  adaptive solver times the step sizes) for cheaper-to-solve neural ODEs;
  :class:`StiffnessRegularizer`: the SRNODE penalty (the solver's stiffness
  estimates) for less stiff learned dynamics.
"""

from .neural_ode import NeuralODE
from .neural_sde import GeometricSDE, LangevinSDE, LinearNoiseSDE, NeuralSDE
from .regularizers import (
    ErrorRegularizer,
    StiffnessRegularizer,
    local_error_estimates,
    stiffness_estimates,
)
from .spline import NaturalCubicSpline

__all__ = ["ErrorRegularizer", "GeometricSDE", "LangevinSDE", "LinearNoiseSDE",
           "NaturalCubicSpline", "NeuralODE", "NeuralSDE", "StiffnessRegularizer",
           "local_error_estimates", "stiffness_estimates"]
