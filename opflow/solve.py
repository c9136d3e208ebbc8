"""``solve(problem, algorithm)``: one entry point, dispatched through a registry.

Each solver module registers the (problem type, algorithm type) pairs it
handles with :func:`register`; adding a solver is one file plus one call.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import InvalidArgumentError, SolverError

__all__ = ["AbstractAlgorithm", "register", "solve"]

_REGISTRY: dict[tuple[type, type], Callable[..., Any]] = {}


class AbstractAlgorithm:
    """Base class of every algorithm object (``Tsit5()``, ``Multigrid()``, ...)."""


def register(problem_type: type, algorithm_type: type):
    """Decorator registering ``fn(prob, alg, **kw) -> Solution`` for a pair of types."""

    def deco(fn):
        _REGISTRY[(problem_type, algorithm_type)] = fn
        return fn

    return deco


def _lookup(prob, alg):
    for ptype in type(prob).__mro__:
        for atype in type(alg).__mro__:
            fn = _REGISTRY.get((ptype, atype))
            if fn is not None:
                return fn
    return None


def solve(prob, alg, **kwargs):
    """Solve ``prob`` with ``alg``.

    Parameters
    ----------
    prob : problem dataclass (e.g. :class:`~opflow.ODEProblem`)
    alg : algorithm object (e.g. :class:`~opflow.Tsit5`)
    **kwargs
        Passed to the registered solver: for ODEs ``saveat``, ``dense``,
        ``sensealg``, ``max_steps``, ``progress``; for SDEs also ``seed`` and
        ``brownian``; for multigrid ``u0``. See each solver's documentation.

    Returns
    -------
    Solution
    """
    if not isinstance(alg, AbstractAlgorithm):
        raise InvalidArgumentError("alg", "an opflow algorithm object such as Tsit5()", alg)
    fn = _lookup(prob, alg)
    if fn is None:
        pairs = sorted(f"{p.__name__} + {a.__name__}" for p, a in _REGISTRY)
        raise SolverError(
            f"no solver for {type(prob).__name__} with {type(alg).__name__}; "
            f"registered pairs: {', '.join(pairs)}"
        )
    return fn(prob, alg, **kwargs)
