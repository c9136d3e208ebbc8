"""Geometric multigrid for elliptic problems (Poisson, Darcy), behind :func:`opflow.solve`.

* problems: :class:`PoissonProblem` (``-Laplacian u = f``),
  :class:`DarcyProblem` (``-div(a grad u) = f``), Dirichlet / Neumann /
  periodic conditions and masked (irregular) domains;
* algorithm: :class:`Multigrid` (V/W/F cycles, red-black Gauss-Seidel or
  weighted Jacobi, dense coarsest solve), batched over samples, gradients by
  one adjoint solve;
* :func:`discrete_residual` (``f - A u`` of the discretisation);
* :func:`multigrid_preconditioner` (a few cycles as ``(-c Laplacian)^-1`` for
  Krylov solves of implicit diffusion steps).

Modules: :mod:`.problems`, :mod:`.operators` (stencil, transfers, smoothers),
:mod:`.hierarchy` (levels, coarsest solve), :mod:`.cycles`, :mod:`.adjoint`,
:mod:`.solver`.
"""

from .preconditioner import multigrid_preconditioner
from .problems import DarcyProblem, PoissonProblem
from .solver import Multigrid, discrete_residual, solve_elliptic

__all__ = ["DarcyProblem", "Multigrid", "PoissonProblem", "discrete_residual",
           "multigrid_preconditioner", "solve_elliptic"]
