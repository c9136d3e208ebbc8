"""Classical differentiable solvers, registered with :func:`opflow.solve`."""

from . import ode, pde, pinn, sde

__all__ = ["ode", "pde", "pinn", "sde"]
