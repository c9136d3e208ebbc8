"""Nonlinear solves with implicit gradients, registered with :func:`opflow.solve`.

* problems: :class:`NonlinearProblem` (``f(u, p) = 0``),
  :class:`NonlinearLeastSquaresProblem` (``min 1/2 ||r(u, p)||^2``); batched;
* algorithms, one file each: :class:`NewtonRaphson` (dense Jacobian, line
  search), :class:`NewtonKrylov` (matrix-free GMRES/CG with a preconditioner
  slot), :class:`GaussNewton`, :class:`LevenbergMarquardt`;
* gradients: :class:`ImplicitAdjoint` (default; the implicit function
  theorem, one transposed linear solve) or ``DirectBackprop``.

The linear solves live in :mod:`opflow.solvers.linear`; :func:`chord_solve`
(Newton with a fixed factored matrix) serves the implicit time steppers.

Examples
--------
>>> import torch, opflow
>>> from opflow.solvers.nonlinear import NonlinearProblem, NewtonRaphson
>>> p = torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
>>> prob = NonlinearProblem(lambda u, p: u ** 2 - p, torch.ones(2, dtype=torch.float64), p)
>>> sol = opflow.solve(prob, NewtonRaphson())
>>> sol.u.sum().backward()                 # d sqrt(p) / dp = 1 / (2 sqrt(p))
>>> torch.allclose(p.grad, 0.5 / p.detach().sqrt())
True
"""

from .adjoint import ImplicitAdjoint
from .base import NonlinearAlgorithm
from .chord import chord_solve
from .gauss_newton import GaussNewton
from .levenberg_marquardt import LevenbergMarquardt
from .newton_krylov import NewtonKrylov
from .newton_raphson import NewtonRaphson
from .problems import NonlinearLeastSquaresProblem, NonlinearProblem
from .solve_nonlinear import solve_nonlinear

__all__ = ["GaussNewton", "ImplicitAdjoint", "LevenbergMarquardt", "NewtonKrylov",
           "NewtonRaphson", "NonlinearAlgorithm", "NonlinearLeastSquaresProblem",
           "NonlinearProblem", "chord_solve", "solve_nonlinear"]
