"""What the ODE and SDE solvers share to solve backwards in time, in ``s = -t``:
negated right-hand sides, negated save times, and the state of an empty span."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..field import Field
from ..solution import ReturnCode, Solution, SolverStats

__all__ = ["empty_span_solution", "negate", "reversed_rhs", "reversed_saveat", "stacked"]


def negate(x: Any) -> Any:
    """``-x`` for a tensor, a Field, or a (nested) tuple or list of them."""
    if isinstance(x, (tuple, list)):
        return type(x)(negate(v) for v in x)
    return -x


def reversed_rhs(f: Callable) -> Callable:
    """``g(s, u) = -f(-s, u)``: the right-hand side in ``s = -t``."""
    def g(t, u, *args):
        return negate(f(-t, u, *args))

    return g


def reversed_saveat(saveat):
    """Save times in ``s = -t`` (an interval or the default stays as it is)."""
    if saveat is None or isinstance(saveat, (int, float)) and not isinstance(saveat, bool):
        return saveat  # the default (t0, t1), or an interval: the same in s = -t
    if isinstance(saveat, torch.Tensor):
        return -saveat if saveat.ndim else saveat
    try:
        return [-float(t) for t in saveat]
    except (TypeError, ValueError):
        return saveat  # let the solver's checker name what is wrong


def stacked(u0: Any) -> Any:
    """``u0`` with a leading time axis of length 1 (the solution of an empty span)."""
    if isinstance(u0, (tuple, list)):
        return type(u0)(stacked(v) for v in u0)
    if isinstance(u0, Field):
        return u0.with_values(u0.values[None])
    return torch.as_tensor(u0)[None]


def empty_span_solution(prob: Any, alg: Any) -> Solution:
    """The solution over an empty span ``t1 == t0``: ``u0`` at ``t0``, without a step."""
    t0 = prob.tspan[0]
    dtype = _first_tensor(prob.u0).dtype
    return Solution(t=torch.tensor([t0], dtype=dtype), u=stacked(prob.u0),
                    retcode=ReturnCode.Success, stats=SolverStats(), problem=prob, alg=alg)


def _first_tensor(u0: Any) -> torch.Tensor:
    if isinstance(u0, (tuple, list)):
        return _first_tensor(u0[0])
    return u0.values if isinstance(u0, Field) else torch.as_tensor(u0)
