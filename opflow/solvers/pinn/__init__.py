"""Physics-informed neural networks: derivatives of networks, domains, samplers,
conditions, :class:`PINNProblem` and the :class:`PINN` algorithm for :func:`opflow.solve`;
:class:`LPINN` (Lagrangian PINN) for :class:`ConvectionProblem` and
:class:`ViscousBurgersProblem`; residual-based adaptive refinement (:class:`RAR`),
domains from a mask on a Grid (:class:`MaskDomain`), and Taylor-mode derivatives of
MLPs (:class:`MLPJet`, used compiled by ``PINN(compile=True)``)."""

from .algorithm import PINN, PINNFunction, solve_pinn
from .conditions import Condition, Dirichlet, Initial, Neumann, Observation, Periodic
from .derivatives import Coordinates, GridCoordinates, d, gradient, laplacian
from .domains import Box, Disk, Domain, Interval, PointCloud, Rectangle, TimeSpace
from .jet import MLPJet
from .lpinn import (
    LPINN,
    ConvectionProblem,
    LagrangianFunction,
    ViscousBurgersProblem,
    solve_lpinn,
)
from .mask import MaskDomain
from .problem import PINNProblem, hard_dirichlet
from .refinement import RAR, rar_select
from .sampling import SAMPLERS, latin_hypercube, sample_unit, sobol, uniform

__all__ = [
    "Coordinates", "GridCoordinates", "d", "gradient", "laplacian", "MLPJet",
    "Domain", "Interval", "Box", "Rectangle", "Disk", "PointCloud", "TimeSpace", "MaskDomain",
    "SAMPLERS", "uniform", "latin_hypercube", "sobol", "sample_unit",
    "Condition", "Dirichlet", "Neumann", "Periodic", "Initial", "Observation",
    "PINNProblem", "hard_dirichlet", "RAR", "rar_select",
    "PINN", "PINNFunction", "solve_pinn",
    "ConvectionProblem", "ViscousBurgersProblem", "LPINN", "LagrangianFunction", "solve_lpinn",
]
