"""``solve`` for the periodic PDE problems with :class:`PseudoSpectral`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from ....solution import Solution
from ....solve import register
from ...saving import save_times
from .algorithm import SCHEMES, PseudoSpectral
from .stepping import march
from .system import SemilinearSystem

__all__ = ["register_spectral", "solve_spectral"]

SystemBuilder = Callable[[Any, bool], SemilinearSystem]
_SYSTEMS: dict[type, tuple[SystemBuilder, str]] = {}


def register_spectral(problem_type: type, state: str):
    """Decorator: ``build(prob, dealias) -> SemilinearSystem`` makes ``problem_type``
    solvable by ``solve(prob, PseudoSpectral(...))``.

    Parameters
    ----------
    problem_type : type
        A frozen problem dataclass with a ``tspan``.
    state : str
        The attribute holding the initial state Field (``"u0"``, ``"w0"``).
    """

    def deco(build: SystemBuilder) -> SystemBuilder:
        _SYSTEMS[problem_type] = (build, state)
        register(problem_type, PseudoSpectral)(solve_spectral)
        return build

    return deco


def _system_of(prob) -> tuple[SystemBuilder, str]:
    for ptype in type(prob).__mro__:
        if ptype in _SYSTEMS:
            return _SYSTEMS[ptype]
    raise TypeError(f"no spectral system for {type(prob).__name__}")  # unreachable via solve


def solve_spectral(prob, alg: PseudoSpectral, saveat=None,
                   progress: bool | str = False) -> Solution:
    """Solve a periodic problem registered with :func:`register_spectral`.

    Parameters
    ----------
    prob : BurgersProblem, NavierStokes2DProblem, HeatProblem, ...
    alg : PseudoSpectral
    saveat : None, float or sequence of float
        ``None``: ``(t0, t1)``; a number ``s``: every ``s`` from ``t0`` (and
        ``t1``); a sequence: those times, non-decreasing, within ``tspan``.
        Every save time is reached exactly (steps are shortened to fit).
    progress : bool or "always"
        Progress bar over simulated time when stderr is a terminal
        (``"always"``: anywhere).

    Returns
    -------
    Solution
        ``t`` of shape ``(K,)``; ``u`` a Field like the initial state with
        batch dimensions ``(K, *batch)``; ``retcode`` ``Success`` or
        ``Unstable`` (NaN/Inf state; save times not reached hold NaN);
        ``stats`` with ``steps``, ``nfe`` (evaluations of the explicit part,
        each over the whole batch) and ``wall_time``.

    Notes
    -----
    Gradients flow by direct backpropagation through every step (to the
    initial state, the forcing and the closure's parameters); other solve
    options (``dense``, ``sensealg``, ...) are refused with an
    :class:`~opflow.errors.InvalidArgumentError`.
    """
    build, state = _system_of(prob)
    state0 = getattr(prob, state)
    t0, t1 = prob.tspan
    ts = save_times(saveat, t0, t1, state0.values.numel())
    system = build(prob, alg.dealias)
    stepper = SCHEMES[alg.scheme](system)
    u0 = state0.values
    check_every = alg.check_every or (10 if u0.device.type == "cpu" else 100)
    states, stats, retcode = march(stepper, system.basis.forward(u0), t0, ts, alg.dt,
                                   check_every, progress, desc=f"PseudoSpectral/{alg.scheme}",
                                   max_seconds=alg.max_seconds)
    missing = torch.full_like(u0, math.nan)
    observe = system.observe or (lambda t, v: v)
    values = [u0 if t == t0 else (missing if v is None else system.basis.inverse(observe(t, v)))
              for t, v in zip(ts, states)]
    t = torch.tensor(ts, dtype=u0.dtype, device=u0.device)
    return Solution(t=t, u=state0.with_values(torch.stack(values)), retcode=retcode,
                    stats=stats, problem=prob, alg=alg)


# The built-in problems register here (their modules import this one).
from . import burgers, heat, navier_stokes  # noqa: E402,F401
