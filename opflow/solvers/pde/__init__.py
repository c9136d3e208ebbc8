"""Partial differential equation solvers, registered with :func:`opflow.solve`.

* :class:`Multigrid` for elliptic problems (:class:`PoissonProblem`,
  :class:`DarcyProblem`);
* :class:`PseudoSpectral` for periodic evolution problems
  (:class:`BurgersProblem`, :class:`NavierStokes2DProblem`, :class:`HeatProblem`,
  :class:`KuramotoSivashinskyProblem`).
"""

from .multigrid import DarcyProblem, Multigrid, PoissonProblem, multigrid_preconditioner
from .spectral import (
    BurgersProblem,
    HeatProblem,
    KuramotoSivashinskyProblem,
    NavierStokes2DProblem,
    PseudoSpectral,
)

__all__ = ["BurgersProblem", "DarcyProblem", "HeatProblem", "KuramotoSivashinskyProblem",
           "Multigrid", "NavierStokes2DProblem",
           "PoissonProblem", "PseudoSpectral", "multigrid_preconditioner"]
