"""Classical differentiable solvers, registered with :func:`opflow.solve`."""

from . import ode, pde, sde

__all__ = ["ode", "pde", "sde"]
