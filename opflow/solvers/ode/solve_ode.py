"""``solve`` for :class:`~opflow.ODEProblem` with the Runge-Kutta algorithms.

Three integration paths, chosen from the problem:

* fixed-step methods march ``(B, D)`` states (:func:`integrate_fixed`);
* adaptive methods on a ``batched`` problem give every trajectory its own
  step (:func:`integrate_adaptive`);
* adaptive methods on an unbatched problem take one step for the whole
  state, on the user's tensor directly (:func:`integrate_adaptive_shared`).

Every path hands the integrator ``F(t, y)``; the adjoint sees a version of it
that takes a 0-dim time.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ...errors import InvalidArgumentError
from ...problems import ODEProblem
from ...solution import ReturnCode, Solution, SolverStats
from ...solve import register
from ..saving import save_times_tensor
from .backwards import solve_reversible
from .base import AdaptiveRK, FixedStepRK
from .callbacks import solve_with_callbacks
from .runge_kutta import (
    _Coefficients,
    evaluate_record,
    integrate_adaptive,
    integrate_adaptive_shared,
    integrate_fixed,
    rk_step,
)
from .sensitivity import (
    BacksolveAdjoint,
    DirectBackprop,
    InterpolatingAdjoint,
    backsolve,
    collect_parameters,
    interpolating_adjoint,
)
from .state import DirectState, StateLayout

__all__ = ["solve_ode", "with_callbacks"]


class _Plan:
    """The integrator, the state representation and the right-hand side of a solve."""

    def __init__(self, prob: ODEProblem, alg):
        self.shared = isinstance(alg, AdaptiveRK) and not prob.batched
        self.to_user: Callable[[torch.Tensor], Any]  # solver states -> the user's u values
        if self.shared and DirectState.supports(prob.u0, prob.batched):
            state = DirectState(prob.u0)
            self.y0, self.to_user = state.y0, state.to_user
            self.F = state.wrap(prob.f, prob.p)
            self.shape = state.shape
        else:
            layout = StateLayout(prob.u0, prob.batched)
            self.y0 = layout.flatten(prob.u0, "u0")
            self.to_user = layout.unflatten
            self.F = layout.wrap(prob.f, prob.p)
            self.shape = tuple(self.y0.shape)

    def scalar_time_rhs(self):
        """``F`` taking a 0-dim time (what the adjoint calls)."""
        if self.shared:
            return self.F
        B, F = self.shape[0], self.F
        return lambda t, y: F(t.reshape(1).expand(B), y)


def _forward_runner(alg, plan: _Plan, t0, t1, ts, max_steps, record, progress):
    """Closure ``y0 -> ys`` for ``alg`` plus a holder of stats, retcode, record."""
    info: dict[str, Any] = {}

    def run(y0):
        if isinstance(alg, FixedStepRK):
            ys, stats, rec = integrate_fixed(plan.F, alg.tableau, y0, t0, ts, alg.dt, record)
            # a fixed step never rejects, so a NaN/Inf state is only seen here
            finite = bool(torch.isfinite(ys.detach()).all())
            info.update(stats=stats, retcode=ReturnCode.Success if finite
                        else ReturnCode.Unstable, record=rec)
            return ys
        integrate = integrate_adaptive_shared if plan.shared else integrate_adaptive
        opts = alg.options(max_steps=max_steps, progress=progress)
        ys, stats, retcode, rec = integrate(plan.F, alg.tableau, y0, t0, t1, ts, opts, record)
        info.update(stats=stats, retcode=retcode, record=rec)
        return ys

    return run, info


def _resolver(alg, plan: _Plan, max_steps):
    """``resolve(y, t_from, times, record) -> (ys, record)``: forward re-solves."""
    integrate = integrate_adaptive_shared if plan.shared else integrate_adaptive

    def resolve(y, t_from, times, record):
        opts = alg.options(max_steps=max_steps)
        ys, _, _, rec = integrate(plan.F, alg.tableau, y, t_from, float(times[-1]), times, opts,
                                  record)
        return ys, rec

    def interp(rec, t):
        return evaluate_record(alg.tableau, rec, t.reshape(1))[0].reshape(plan.shape)

    return resolve, interp


def _reverse_stepper(alg):
    """``step(G, z, s0, s1)``: one step of the method from ``s0`` to ``s1`` on a 1-D state.

    The interpolating adjoint crosses each recorded forward step with one step
    of the same method: the forward controller already sized the steps to the
    tolerance, and the state's dense output is smooth only inside a step.
    """
    cache: dict = {}

    def step(G, z, s0, s1):
        key = (z.dtype, z.device)
        if key not in cache:
            cache[key] = _Coefficients(alg.tableau, z.dtype, z.device)
        t = torch.tensor([s0], dtype=z.dtype, device=z.device)
        h = torch.tensor([s1 - s0], dtype=z.dtype, device=z.device)

        def F(s, v):
            return G(s[0], v[0])[None]

        y_new, _ = rk_step(F, alg.tableau, cache[key], t, z[None], h, F(t, z[None]))
        return y_new[0]

    return step


def _reverse_integrator(alg, sensealg, max_steps):
    """``integrate(G, z, s0, s1)`` on 1-D states, used by the adjoint's backward pass."""

    def integrate(G, z, s0, s1):
        ts = torch.tensor([s1], dtype=z.dtype, device=z.device)
        if isinstance(alg, FixedStepRK):
            ys, _, _ = integrate_fixed(lambda s, v: G(s[0], v[0])[None], alg.tableau, z[None],
                                       s0, ts, alg.dt)
            return ys[-1, 0]
        opts = alg.options(max_steps=max_steps, rtol=sensealg.rtol, atol=sensealg.atol)
        opts.dt0 = None
        ys, _, _, _ = integrate_adaptive_shared(G, alg.tableau, z, s0, s1, ts, opts)
        return ys[-1]

    return integrate


def with_callbacks(solver, prob, alg, callback, saveat, sensealg, max_steps, progress):
    """``solver`` run segment by segment between the events of ``callback``."""
    if sensealg is not None and not isinstance(sensealg, DirectBackprop):
        raise InvalidArgumentError("sensealg", "DirectBackprop() (or None) with callbacks",
                                   sensealg)

    def segment(p, saveat, dense):
        return solver(p, alg, saveat=saveat, dense=dense, max_steps=max_steps,
                      progress=progress)

    return solve_with_callbacks(segment, prob, callback, saveat)


@register(ODEProblem, FixedStepRK)
@register(ODEProblem, AdaptiveRK)
def solve_ode(prob: ODEProblem, alg, saveat=None, dense: bool = False, sensealg=None,
              max_steps: Optional[int] = None, progress: bool | str = False,
              callback=None) -> Solution:
    """Solve an :class:`~opflow.ODEProblem` with a Runge-Kutta algorithm.

    Parameters
    ----------
    prob : ODEProblem
    alg : Euler, RK4, Tsit5 or Dopri5
    saveat : float or sequence of float, optional
        Save interval or save times (within ``tspan``); default ``(t0, t1)``.
        An interval whose saved states would not fit in the device's memory
        is refused before anything is allocated.
    dense : bool
        Keep every step so that ``sol(t)`` interpolates with the method's
        dense output (memory grows with the number of steps).
    sensealg : DirectBackprop, BacksolveAdjoint or InterpolatingAdjoint, optional
        How gradients flow back (default: direct backprop).
    max_steps : int, optional
        Overrides ``alg.max_steps``.
    progress : bool or "always"
        Show a progress bar over simulated time (adaptive methods) when
        stderr is a terminal; ``"always"`` shows it anywhere.
    callback : ContinuousCallback, DiscreteCallback or list, optional
        Events (see :mod:`opflow.solvers.ode.callbacks`): ``sol.t`` then holds
        the save times reached and the event times, ``sol.record["events"]``
        the events. Unbatched problems, direct backprop.

    Returns
    -------
    Solution
        ``sol.u`` stacks the states at ``sol.t`` along a new first dimension.
    """
    backwards = solve_reversible(solve_ode, prob, alg, saveat, dense, callback, sensealg=sensealg,
                                 max_steps=max_steps, progress=progress)
    if backwards is not None:
        return backwards
    if callback is not None:
        return with_callbacks(solve_ode, prob, alg, callback, saveat, sensealg, max_steps,
                               progress)
    sensealg = DirectBackprop() if sensealg is None else sensealg
    if not isinstance(sensealg, (DirectBackprop, BacksolveAdjoint, InterpolatingAdjoint)):
        raise InvalidArgumentError("sensealg", "DirectBackprop(), BacksolveAdjoint() or "
                                   "InterpolatingAdjoint()", sensealg)
    if isinstance(sensealg, InterpolatingAdjoint) and not isinstance(alg, AdaptiveRK):
        raise InvalidArgumentError("sensealg", "BacksolveAdjoint() or DirectBackprop() with a "
                                   "fixed-step method (InterpolatingAdjoint needs the dense "
                                   "output of an adaptive one)", sensealg)
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InvalidArgumentError("max_steps", "a positive integer", max_steps)
    plan = _Plan(prob, alg)
    t0, t1 = prob.tspan
    ts = save_times_tensor(saveat, t0, t1, plan.y0.dtype, plan.y0.device, plan.y0.numel())
    run, info = _forward_runner(alg, plan, t0, t1, ts, max_steps, dense, progress)
    if isinstance(sensealg, (BacksolveAdjoint, InterpolatingAdjoint)):
        params = list(sensealg.params) if sensealg.params is not None else collect_parameters(
            prob.f, prob.p)
        reverse = _reverse_integrator(alg, sensealg, max_steps)
        if isinstance(sensealg, BacksolveAdjoint):
            ys = backsolve(plan.scalar_time_rhs(), plan.y0, t0, ts, params, run, reverse)
        else:
            resolve, interp = _resolver(alg, plan, max_steps)
            ys = interpolating_adjoint(plan.scalar_time_rhs(), plan.y0, t0, ts, params, run,
                                       reverse, _reverse_stepper(alg), resolve, interp,
                                       lambda: info["stats"].steps,
                                       sensealg.steps_per_checkpoint)
    else:
        ys = run(plan.y0)
    interpolant = None
    if dense:
        rec, tab, shape = info["record"], alg.tableau, plan.shape

        def interpolant(tq):
            values = evaluate_record(tab, rec, tq)  # (M, B, D) or (M, 1, numel)
            return plan.to_user(values.reshape(values.shape[0], *shape))

    return Solution(t=ts, u=plan.to_user(ys), retcode=info["retcode"],
                    stats=info.get("stats", SolverStats()), problem=prob, alg=alg,
                    interpolant=interpolant, record=info.get("record"))
