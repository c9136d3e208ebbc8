"""Classical differentiable solvers, registered with :func:`opflow.solve`."""

from . import linear, nonlinear, ode, pde, pinn, sde

__all__ = ["linear", "nonlinear", "ode", "pde", "pinn", "sde"]
