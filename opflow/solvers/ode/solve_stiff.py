"""``solve`` for :class:`~opflow.ODEProblem` with the stiff methods (Rosenbrock, ESDIRK)."""

from __future__ import annotations

from typing import Optional

import torch

from ...errors import InvalidArgumentError
from ...problems import ODEProblem, SplitODEProblem
from ...solution import Solution
from ...solve import register
from ..saving import save_times_tensor
from .backwards import solve_reversible
from .implicit import AdaptiveImplicit, integrate_implicit
from .sensitivity import BacksolveAdjoint, DirectBackprop, InterpolatingAdjoint, collect_parameters
from .solve_ode import with_callbacks
from .state import StateLayout
from .stiff_adjoint import stiff_adjoint

__all__ = ["solve_stiff"]


class _SplitRHS:
    """The flat right-hand side of a split problem: the sum, with its two parts."""

    def __init__(self, stiff, nonstiff, layout: StateLayout):
        self.stiff, self.nonstiff, self.layout = stiff, nonstiff, layout

    def __call__(self, t, y):
        return self.stiff(t, y) + self.nonstiff(t, y)


def _rhs(prob, layout: StateLayout, alg):
    if isinstance(prob, SplitODEProblem):
        return _SplitRHS(layout.wrap(prob.f_stiff, prob.p), layout.wrap(prob.f_nonstiff, prob.p),
                         layout)
    if alg.imex:
        raise InvalidArgumentError("prob", f"a SplitODEProblem (f_stiff, f_nonstiff) for the "
                                   f"IMEX method {type(alg).__name__}", prob)
    return layout.wrap(prob.f, prob.p)


_SENSEALGS = (DirectBackprop, BacksolveAdjoint, InterpolatingAdjoint)


@register(ODEProblem, AdaptiveImplicit)
@register(SplitODEProblem, AdaptiveImplicit)
def solve_stiff(prob: ODEProblem, alg: AdaptiveImplicit, saveat=None, dense: bool = False,
                sensealg=None, max_steps: Optional[int] = None,
                progress: bool | str = False, callback=None) -> Solution:
    """Solve an :class:`~opflow.ODEProblem` with a stiff method.

    Parameters
    ----------
    prob : ODEProblem
        ``batched=True``: every trajectory takes its own steps.
    alg : Rosenbrock23, Rodas4, ImplicitEuler, Kvaerno5 or KenCarp4
        (``KenCarp4`` needs a :class:`~opflow.problems.SplitODEProblem`; the
        others solve a split problem's sum).
    saveat : float or sequence of float, optional
        Save interval or times within ``tspan``; default ``(t0, t1)``. Steps
        are shortened to land on save times exactly.
    dense : bool
        Keep every accepted step so that ``sol(t)`` interpolates (cubic
        Hermite between steps, third order).
    sensealg : DirectBackprop, InterpolatingAdjoint or BacksolveAdjoint, optional
        ``DirectBackprop`` (default) backpropagates through the steps (the
        Jacobians stay in the graph, so they are the exact gradients of the
        discrete solution; ESDIRK stages are differentiated through their
        last chord iterations, which at convergence is the implicit gradient
        of the stage). The adjoints solve ``a' = -J^T a`` backwards with the
        same stiff method and the parameter gradient by quadrature
        (:mod:`opflow.solvers.ode.stiff_adjoint`): memory does not grow with
        the steps. ``InterpolatingAdjoint`` takes the state from a re-solve
        of each save interval; ``BacksolveAdjoint`` solves the state
        backwards too, which is unstable for strongly stiff problems.
    max_steps : int, optional
        Overrides ``alg.max_steps``.
    progress : bool or "always"
        Progress bar over simulated time (on a terminal).
    callback : ContinuousCallback, DiscreteCallback or list, optional
        Events, as for the explicit solvers (:mod:`opflow.solvers.ode.callbacks`).

    Returns
    -------
    Solution
        ``u`` stacks the states at ``t``; ``retcode`` Success, MaxIters,
        DtLessThanMin or Unstable (the first failing trajectory's); ``stats``
        with steps (attempts), rejects, nfe (each evaluates the batch).
    """
    backwards = solve_reversible(solve_stiff, prob, alg, saveat, dense, callback, sensealg=sensealg,
                                 max_steps=max_steps, progress=progress)
    if backwards is not None:
        return backwards
    if callback is not None:
        return with_callbacks(solve_stiff, prob, alg, callback, saveat, sensealg, max_steps,
                              progress)
    if sensealg is not None and not isinstance(sensealg, _SENSEALGS):
        raise InvalidArgumentError("sensealg", "DirectBackprop(), InterpolatingAdjoint() or "
                                   "BacksolveAdjoint()", sensealg)
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InvalidArgumentError("max_steps", "a positive integer", max_steps)
    layout = StateLayout(prob.u0, prob.batched)
    y0 = layout.flatten(prob.u0, "u0")
    F = _rhs(prob, layout, alg)
    t0, t1 = prob.tspan
    ts = save_times_tensor(saveat, t0, t1, y0.dtype, y0.device, y0.numel())
    adjoint = isinstance(sensealg, (BacksolveAdjoint, InterpolatingAdjoint))
    params: list = []
    if isinstance(sensealg, (BacksolveAdjoint, InterpolatingAdjoint)):
        params = list(sensealg.params) if sensealg.params is not None else \
            collect_parameters(_functions(prob), prob.p)
    differentiable = torch.is_grad_enabled() and not adjoint and (
        y0.requires_grad or bool(collect_parameters(_functions(prob), prob.p)))
    if differentiable and alg.matrix_free:
        raise InvalidArgumentError("sensealg", "no gradients through matrix-free stages by "
                                   "direct backpropagation (use InterpolatingAdjoint(), or "
                                   "dense stages)", alg)
    info: dict = {}

    def forward(y_start):
        ys, info["stats"], info["retcode"], info["record"] = integrate_implicit(
            F, alg, y_start, t0, ts, record=dense, progress=progress, max_steps=max_steps,
            differentiable=differentiable)
        return ys

    # under an adjoint the forward pass never records a graph (a parameter the adjoint did
    # not find gets no gradient, rather than a silently partial one)
    ys = stiff_adjoint(F, y0, t0, ts, params, forward, alg, sensealg, max_steps) \
        if adjoint else forward(y0)
    stats, retcode, record = info["stats"], info["retcode"], info["record"]
    interpolant = None
    if dense and record is not None:
        def interpolant(tq):
            return layout.unflatten(record(tq))

    return Solution(t=ts, u=layout.unflatten(ys), retcode=retcode, stats=stats, problem=prob,
                    alg=alg, interpolant=interpolant, record=record)


def _functions(prob):
    return (prob.f_stiff, prob.f_nonstiff) if isinstance(prob, SplitODEProblem) else prob.f
