"""``solve`` for the periodic PDE problems with :class:`PseudoSpectral`."""

from __future__ import annotations

import math

import torch

from ....solution import Solution
from ....solve import register
from ...saving import save_times
from .algorithm import SCHEMES, PseudoSpectral
from .burgers import burgers_system
from .navier_stokes import navier_stokes_system
from .problems import BurgersProblem, NavierStokes2DProblem
from .stepping import march

__all__ = ["solve_spectral"]

_SYSTEMS = {BurgersProblem: burgers_system, NavierStokes2DProblem: navier_stokes_system}


def _system_of(prob, dealias: bool):
    for ptype in type(prob).__mro__:
        build = _SYSTEMS.get(ptype)
        if build is not None:
            return build(prob, dealias)
    raise TypeError(f"no spectral system for {type(prob).__name__}")  # unreachable via solve


@register(BurgersProblem, PseudoSpectral)
@register(NavierStokes2DProblem, PseudoSpectral)
def solve_spectral(prob, alg: PseudoSpectral, saveat=None,
                   progress: bool | str = False) -> Solution:
    """Solve a :class:`BurgersProblem` or :class:`NavierStokes2DProblem`.

    Parameters
    ----------
    prob : BurgersProblem or NavierStokes2DProblem
    alg : PseudoSpectral
    saveat : None, float or sequence of float
        ``None``: ``(t0, t1)``; a number ``s``: every ``s`` from ``t0`` (and
        ``t1``); a sequence: those times, non-decreasing, within ``tspan``.
        Every save time is reached exactly (steps are shortened to fit).
    progress : bool or "always"
        Progress bar over simulated time when stderr is a terminal
        (``"always"``: anywhere).

    Gradients flow by direct backpropagation through every step (to the
    initial state, the forcing and the closure's parameters); other solve
    options (``dense``, ``sensealg``, ...) are refused with an
    :class:`~opflow.errors.InvalidArgumentError`.

    Returns
    -------
    Solution
        ``t`` of shape ``(K,)``; ``u`` a Field like the initial state with
        batch dimensions ``(K, *batch)``; ``retcode`` ``Success`` or
        ``Unstable`` (NaN/Inf state; save times not reached hold NaN);
        ``stats`` with ``steps``, ``nfe`` (evaluations of the explicit part,
        each over the whole batch) and ``wall_time``.
    """
    state0 = prob.u0 if isinstance(prob, BurgersProblem) else prob.w0
    t0, t1 = prob.tspan
    ts = save_times(saveat, t0, t1, state0.values.numel())
    system = _system_of(prob, alg.dealias)
    stepper = SCHEMES[alg.scheme](system)
    u0 = state0.values
    check_every = alg.check_every or (10 if u0.device.type == "cpu" else 100)
    states, stats, retcode = march(stepper, system.basis.forward(u0), t0, ts, alg.dt,
                                   check_every, progress, desc=f"PseudoSpectral/{alg.scheme}",
                                   max_seconds=alg.max_seconds)
    missing = torch.full_like(u0, math.nan)
    values = [u0 if t == t0 else (missing if v is None else system.basis.inverse(v))
              for t, v in zip(ts, states)]
    t = torch.tensor(ts, dtype=u0.dtype, device=u0.device)
    return Solution(t=t, u=state0.with_values(torch.stack(values)), retcode=retcode,
                    stats=stats, problem=prob, alg=alg)
