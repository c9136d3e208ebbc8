"""Classical differentiable solvers, registered with :func:`opflow.solve`."""

from . import ode

__all__ = ["ode"]
