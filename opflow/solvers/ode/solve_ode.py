"""``solve`` for :class:`~opflow.ODEProblem` with the Runge-Kutta algorithms."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ...errors import InvalidArgumentError
from ...problems import ODEProblem
from ...solution import ReturnCode, Solution, SolverStats
from ...solve import register
from .base import AdaptiveRK, FixedStepRK
from .runge_kutta import evaluate_record, integrate_adaptive, integrate_fixed
from .sensitivity import BacksolveAdjoint, DirectBackprop, backsolve, collect_parameters
from .state import StateLayout

__all__ = ["solve_ode"]


def _save_times(saveat, t0: float, t1: float, dtype, device) -> torch.Tensor:
    if saveat is None:
        return torch.tensor([t0, t1], dtype=dtype, device=device)
    if isinstance(saveat, (int, float)) and not isinstance(saveat, bool):
        if not saveat > 0:
            raise InvalidArgumentError("saveat", "a positive interval or a sequence of times",
                                       saveat)
        n = int(round((t1 - t0) / saveat))
        ts = torch.linspace(t0, t0 + n * saveat, n + 1, dtype=dtype, device=device)
        ts = ts[ts <= t1 + 1e-12 * max(1.0, abs(t1))]
        if ts[-1] < t1 - 1e-12 * max(1.0, abs(t1)):
            ts = torch.cat([ts, torch.tensor([t1], dtype=dtype, device=device)])
        return ts.clamp(max=t1)
    ts = torch.as_tensor(saveat, dtype=dtype, device=device).reshape(-1)
    if ts.numel() == 0:
        raise InvalidArgumentError("saveat", "at least one save time", saveat)
    if bool((ts[1:] < ts[:-1]).any()):
        raise InvalidArgumentError("saveat", "non-decreasing save times", saveat)
    if bool(ts[0] < t0) or bool(ts[-1] > t1):
        raise InvalidArgumentError("saveat", f"save times within tspan [{t0}, {t1}]", saveat)
    return ts


def _forward_runner(alg, F, t0, t1, ts, max_steps, record):
    """Closure ``y0 -> ys`` for ``alg`` plus a holder of stats and retcode."""
    info: dict[str, Any] = {}

    def run(y0):
        if isinstance(alg, FixedStepRK):
            ys, stats, rec = integrate_fixed(F, alg.tableau, y0, t0, ts, alg.dt, record)
            info.update(stats=stats, retcode=ReturnCode.Success, record=rec)
        else:
            opts = alg.options(max_steps=max_steps)
            ys, stats, retcode, rec = integrate_adaptive(F, alg.tableau, y0, t0, t1, ts, opts,
                                                         record)
            info.update(stats=stats, retcode=retcode, record=rec)
        if not bool(torch.isfinite(ys.detach()).all()) and info["retcode"] == ReturnCode.Success:
            info["retcode"] = ReturnCode.Unstable
        return ys

    return run, info


def _reverse_integrator(alg, sensealg: BacksolveAdjoint, max_steps):
    """``integrate(G, z, s0, s1)`` used by the adjoint's backward pass."""

    def integrate(G, z, s0, s1):
        ts = torch.tensor([s1], dtype=z.dtype, device=z.device)
        if isinstance(alg, FixedStepRK):
            ys, _, _ = integrate_fixed(G, alg.tableau, z, s0, ts, alg.dt)
        else:
            opts = alg.options(max_steps=max_steps, rtol=sensealg.rtol, atol=sensealg.atol)
            opts.dt0 = None
            ys, _, _, _ = integrate_adaptive(G, alg.tableau, z, s0, s1, ts, opts)
        return ys[-1]

    return integrate


@register(ODEProblem, FixedStepRK)
@register(ODEProblem, AdaptiveRK)
def solve_ode(prob: ODEProblem, alg, saveat=None, dense: bool = False, sensealg=None,
              max_steps: Optional[int] = None) -> Solution:
    """Solve an :class:`~opflow.ODEProblem` with a Runge-Kutta algorithm.

    Parameters
    ----------
    prob : ODEProblem
    alg : Euler, RK4, Tsit5 or Dopri5
    saveat : float or sequence of float, optional
        Save interval or save times (within ``tspan``); default ``(t0, t1)``.
    dense : bool
        Keep every step so that ``sol(t)`` interpolates with the method's
        dense output (memory grows with the number of steps).
    sensealg : DirectBackprop or BacksolveAdjoint, optional
        How gradients flow back (default: direct backprop).
    max_steps : int, optional
        Overrides ``alg.max_steps``.

    Returns
    -------
    Solution
        ``sol.u`` stacks the states at ``sol.t`` along a new first dimension.
    """
    sensealg = DirectBackprop() if sensealg is None else sensealg
    if not isinstance(sensealg, (DirectBackprop, BacksolveAdjoint)):
        raise InvalidArgumentError("sensealg", "DirectBackprop() or BacksolveAdjoint()", sensealg)
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InvalidArgumentError("max_steps", "a positive integer", max_steps)
    layout = StateLayout(prob.u0, prob.batched)
    y0 = layout.flatten(prob.u0, "u0")
    t0, t1 = prob.tspan
    ts = _save_times(saveat, t0, t1, y0.dtype, y0.device)
    F = layout.wrap(prob.f, prob.p)
    run, info = _forward_runner(alg, F, t0, t1, ts, max_steps, dense)
    if isinstance(sensealg, BacksolveAdjoint):
        params = list(sensealg.params) if sensealg.params is not None else collect_parameters(
            prob.f, prob.p)
        ys = backsolve(F, y0, t0, ts, params, run, _reverse_integrator(alg, sensealg, max_steps))
    else:
        ys = run(y0)
    interpolant = None
    if dense:
        rec, tab = info["record"], alg.tableau

        def interpolant(tq):
            return layout.unflatten(evaluate_record(tab, rec, tq))

    return Solution(t=ts, u=layout.unflatten(ys), retcode=info["retcode"],
                    stats=info.get("stats", SolverStats()), problem=prob, alg=alg,
                    interpolant=interpolant)
