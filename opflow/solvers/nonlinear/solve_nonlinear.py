"""``solve`` for nonlinear problems: run an algorithm, attach the gradient, build the Solution."""

from __future__ import annotations

import time

import torch

from ...errors import InvalidArgumentError
from ...solution import Solution, SolverStats
from ...solve import register
from ..ode.sensitivity import DirectBackprop, collect_parameters
from .adjoint import ImplicitAdjoint, check_dependence, implicit_solution
from .base import NonlinearAlgorithm
from .gauss_newton import GaussNewton
from .levenberg_marquardt import LevenbergMarquardt
from .newton_krylov import NewtonKrylov
from .newton_raphson import NewtonRaphson
from .problems import NonlinearLeastSquaresProblem, NonlinearProblem
from .system import ResidualSystem

__all__ = ["solve_nonlinear"]


@register(NonlinearProblem, NewtonRaphson)
@register(NonlinearProblem, NewtonKrylov)
@register(NonlinearProblem, GaussNewton)
@register(NonlinearProblem, LevenbergMarquardt)
@register(NonlinearLeastSquaresProblem, GaussNewton)
@register(NonlinearLeastSquaresProblem, LevenbergMarquardt)
def solve_nonlinear(prob, alg: NonlinearAlgorithm, sensealg=None) -> Solution:
    """Solve a :class:`NonlinearProblem` or :class:`NonlinearLeastSquaresProblem`.

    Parameters
    ----------
    prob : NonlinearProblem or NonlinearLeastSquaresProblem
    alg : NewtonRaphson, NewtonKrylov, GaussNewton or LevenbergMarquardt
        (the last two also solve root problems, as ``min ||f||^2``).
    sensealg : ImplicitAdjoint (default) or DirectBackprop
        ``ImplicitAdjoint``: the iterations run without autograd and the
        gradient with respect to ``p`` and the parameters of ``f`` comes from
        the implicit function theorem (one transposed linear solve per
        backward pass). ``DirectBackprop``: autograd records the iterations
        (memory grows with them; the Jacobians are held fixed, so at
        convergence the result is the implicit gradient again).

    Returns
    -------
    Solution
        A steady solution (``sol.kind == "steady"``): ``u`` like ``u0``, ``t``
        empty; ``retcode`` Success only if every sample converged (else the
        worst of Unstable, Stalled, MaxIters); ``record["retcodes"]`` per
        sample, ``record["residual"]`` the final residual (gradient for least
        squares) max norms ``(B,)``, ``record["history"]`` the worst residual
        per iteration; ``stats``: ``iterations``, ``nfe``, ``jacobians``,
        ``linear_iterations``, ``wall_time``.
    """
    start = time.perf_counter()
    sensealg = ImplicitAdjoint() if sensealg is None else sensealg
    if not isinstance(sensealg, (ImplicitAdjoint, DirectBackprop)):
        raise InvalidArgumentError("sensealg", "ImplicitAdjoint() or DirectBackprop()", sensealg)
    system = ResidualSystem(prob)
    fn = prob.r if system.least_squares else prob.f
    if isinstance(sensealg, DirectBackprop):
        outcome = alg.iterate(system, system.y0)
        y = outcome.y
    else:
        params = list(sensealg.params) if sensealg.params is not None else \
            collect_parameters(fn, prob.p)
        if params:
            check_dependence(system, params)
        with torch.no_grad():
            outcome = alg.iterate(system, system.y0.detach())
        y = implicit_solution(system, sensealg, outcome.y, params)
    stats = SolverStats(iterations=outcome.iterations, nfe=system.nfe,
                        jacobians=system.jacobians,
                        linear_iterations=outcome.linear_iterations,
                        wall_time=time.perf_counter() - start)
    record = {"retcodes": outcome.retcodes(), "residual": outcome.residual,
              "history": outcome.history}
    return Solution(t=torch.empty(0, dtype=y.dtype), u=system.to_user(y),
                    retcode=outcome.retcode(), stats=stats, problem=prob, alg=alg, record=record)
