"""Physics-informed neural networks: derivatives of networks, domains, samplers,
conditions, :class:`PINNProblem` and the :class:`PINN` algorithm for :func:`opflow.solve`;
:class:`LPINN` (Lagrangian PINN) for :class:`ConvectionProblem`."""

from .algorithm import PINN, PINNFunction, solve_pinn
from .conditions import Condition, Dirichlet, Initial, Neumann, Periodic
from .derivatives import Coordinates, d, gradient, laplacian
from .domains import Box, Disk, Domain, Interval, Rectangle, TimeSpace
from .lpinn import LPINN, ConvectionProblem, LagrangianFunction, solve_lpinn
from .problem import PINNProblem, hard_dirichlet
from .sampling import SAMPLERS, latin_hypercube, sample_unit, sobol, uniform

__all__ = [
    "Coordinates", "d", "gradient", "laplacian",
    "Domain", "Interval", "Box", "Rectangle", "Disk", "TimeSpace",
    "SAMPLERS", "uniform", "latin_hypercube", "sobol", "sample_unit",
    "Condition", "Dirichlet", "Neumann", "Periodic", "Initial",
    "PINNProblem", "hard_dirichlet",
    "PINN", "PINNFunction", "solve_pinn",
    "ConvectionProblem", "LPINN", "LagrangianFunction", "solve_lpinn",
]
