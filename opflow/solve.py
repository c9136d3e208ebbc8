"""``solve(problem, algorithm)``: one entry point, dispatched through a registry.

Each solver module registers the (problem type, algorithm type) pairs it
handles with :func:`register`; adding a solver is one file plus one call.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .errors import InvalidArgumentError, SolverError

__all__ = ["AbstractAlgorithm", "register", "registered_pairs", "solve", "solver_keywords"]

_REGISTRY: dict[tuple[type, type], Callable[..., Any]] = {}


class AbstractAlgorithm:
    """Base class of every algorithm object (``Tsit5()``, ``Multigrid()``, ...)."""


def register(problem_type: type, algorithm_type: type):
    """Decorator registering ``fn(prob, alg, **kw) -> Solution`` for a pair of types.

    Parameters
    ----------
    problem_type : type
        The problem class (subclasses are covered too).
    algorithm_type : type
        The algorithm class, a subclass of :class:`AbstractAlgorithm`.

    Returns
    -------
    callable
        The decorator; it returns ``fn`` unchanged. The keywords ``fn`` takes
        after ``(prob, alg)`` are those :func:`solve` accepts for the pair.
    """

    def deco(fn):
        _REGISTRY[(problem_type, algorithm_type)] = fn
        return fn

    return deco


def registered_pairs() -> list[tuple[type, type]]:
    """The (problem type, algorithm type) pairs :func:`solve` handles, sorted by name.

    A pair also covers subclasses of either type.
    """
    return sorted(_REGISTRY, key=lambda k: (k[0].__name__, k[1].__name__))


def _keywords(fn) -> tuple[str, ...] | None:
    """Keywords a registered solver takes after ``(prob, alg)``; None if it takes any."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               inspect.Parameter.KEYWORD_ONLY))


def _check_keywords(fn, prob, alg, kwargs: dict) -> None:
    accepted = _keywords(fn)
    if accepted is None:
        return
    for name, value in kwargs.items():
        if name not in accepted:
            raise InvalidArgumentError(
                name, f"a keyword that solve accepts for {type(prob).__name__} with "
                f"{type(alg).__name__} ({', '.join(accepted) or 'none'})", value)


def solver_keywords(prob, alg) -> tuple[str, ...] | None:
    """The keywords ``solve(prob, alg, ...)`` accepts (None: any, or no solver registered).

    Parameters
    ----------
    prob : problem object
        Only its type matters.
    alg : algorithm object
        Only its type matters.

    Returns
    -------
    tuple of str or None

    Examples
    --------
    >>> from opflow.solve import solver_keywords
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2), tspan=(0.0, 1.0))
    >>> "saveat" in solver_keywords(prob, opflow.Tsit5())
    True
    """
    fn = _lookup(prob, alg)
    return None if fn is None else _keywords(fn)


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

    Raises
    ------
    InvalidArgumentError
        ``alg`` is not an algorithm, or a keyword is not one the registered
        solver takes (the message lists those it takes).
    SolverError
        No solver is registered for the pair (the message lists the pairs).

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> sol = opflow.solve(prob, opflow.Tsit5(rtol=1e-8, atol=1e-10), saveat=[0.5, 1.0])
    >>> sol.retcode, tuple(sol.u.shape)
    (<ReturnCode.Success: 'Success'>, (2, 2))
    """
    if not isinstance(alg, AbstractAlgorithm):
        raise InvalidArgumentError("alg", "an opflow algorithm object such as Tsit5()", alg)
    fn = _lookup(prob, alg)
    if fn is None:
        pairs = [f"{p.__name__} + {a.__name__}" for p, a in registered_pairs()]
        raise SolverError(
            f"no solver for {type(prob).__name__} with {type(alg).__name__}; "
            f"registered pairs: {', '.join(pairs)}"
        )
    _check_keywords(fn, prob, alg, kwargs)
    return fn(prob, alg, **kwargs)
