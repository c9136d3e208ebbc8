"""ODE solves backwards in time and over an empty span, for every ODE method.

A span ``(t0, t1)`` with ``t1 < t0`` is solved as the forward problem in
``s = -t``: ``dy/ds = -f(-s, y)`` from ``s = -t0`` to ``-t1``, so every
solver, its step control, dense output and adjoints serve unchanged; the
solution's times (and ``sol(t)``) are mapped back. A span with ``t1 == t0``
returns the initial state without a step (as torchdiffeq does).
"""

from __future__ import annotations

from typing import Callable

from ...errors import InvalidArgumentError
from ...problems import SplitODEProblem, remake
from ...solution import Solution
from .._time_reversal import empty_span_solution, reversed_rhs, reversed_saveat

__all__ = ["solve_reversible"]


def solve_reversible(solver: Callable, prob, alg, saveat=None, dense: bool = False,
                     callback=None, **kwargs) -> Solution | None:
    """Solve ``prob`` with ``solver`` when its span is reversed or empty, else None.

    Parameters
    ----------
    solver : callable
        The registered solve function of the pair (called on the reversed
        problem).
    prob : ODEProblem or SplitODEProblem
    alg : algorithm
    saveat : float, sequence of float or torch.Tensor, optional
        Save interval, or save times between ``t1`` and ``t0``.
    dense : bool
        Keep the dense output (``sol(t)`` for ``t`` in the span).
    callback : optional
        Refused with a reversed span.
    **kwargs
        Passed to ``solver``.

    Returns
    -------
    Solution or None
        None when the span runs forward (the caller solves it).
    """
    t0, t1 = prob.tspan
    if t1 > t0:
        return None
    if callback is not None:
        raise InvalidArgumentError("callback", "no callback when tspan runs backwards or is "
                                   "empty", callback)
    if t1 == t0:
        return empty_span_solution(prob, alg)
    if isinstance(prob, SplitODEProblem):
        flipped = remake(prob, f_stiff=reversed_rhs(prob.f_stiff),
                         f_nonstiff=reversed_rhs(prob.f_nonstiff), tspan=(-t0, -t1))
    else:
        flipped = remake(prob, f=reversed_rhs(prob.f), tspan=(-t0, -t1))
    sol = solver(flipped, alg, saveat=reversed_saveat(saveat), dense=dense, **kwargs)
    interpolant = None
    if sol.interpolant is not None:
        inner = sol.interpolant

        def interpolant(tq):
            return inner(-tq)

    return Solution(t=-sol.t, u=sol.u, retcode=sol.retcode, stats=sol.stats, problem=prob,
                    alg=alg, interpolant=interpolant, record=sol.record)
