"""Pseudo-spectral solvers for periodic PDEs, registered with :func:`opflow.solve`.

* problems: :class:`BurgersProblem` (1-D viscous Burgers),
  :class:`NavierStokes2DProblem` (2-D vorticity form), :class:`HeatProblem`
  (any dimension), :class:`KuramotoSivashinskyProblem` (1-D); more register
  with :func:`register_spectral`;
* algorithm: :class:`PseudoSpectral` (CNAB2, CN-Heun or ETDRK4 in time,
  2/3-rule dealiasing);
* :func:`velocity_from_vorticity` (the velocity convention of the 2-D solver);
* data recipes :func:`burgers_recipe_solve`, :func:`navier_stokes_recipe_solve`.
"""

from .algorithm import PseudoSpectral
from .etdrk4 import etdrk4_coefficients
from .kuramoto_sivashinsky import KuramotoSivashinskyProblem
from .navier_stokes import velocity_from_vorticity
from .problems import BurgersProblem, HeatProblem, NavierStokes2DProblem
from .recipes import burgers_recipe_solve, navier_stokes_forcing, navier_stokes_recipe_solve
from .solve_spectral import register_spectral, solve_spectral

__all__ = ["BurgersProblem", "HeatProblem", "KuramotoSivashinskyProblem",
           "NavierStokes2DProblem", "PseudoSpectral",
           "burgers_recipe_solve", "etdrk4_coefficients", "navier_stokes_forcing",
           "navier_stokes_recipe_solve", "register_spectral", "solve_spectral",
           "velocity_from_vorticity"]
