"""``solve`` for :class:`~opflow.ODEProblem` with the stiff methods (Rosenbrock, ESDIRK)."""

from __future__ import annotations

from typing import Optional

import torch

from ...errors import InvalidArgumentError
from ...problems import ODEProblem, SplitODEProblem
from ...solution import Solution
from ...solve import register
from ..saving import save_times_tensor
from .implicit import AdaptiveImplicit, integrate_implicit
from .sensitivity import DirectBackprop, collect_parameters
from .solve_ode import with_callbacks
from .state import StateLayout

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
    sensealg : DirectBackprop, optional
        Gradients by backpropagation through the steps (the Jacobians stay in
        the graph, so they are the exact gradients of the discrete solution).
        The adjoint methods are not available for these solvers yet. ESDIRK
        stages are differentiated through their last chord iterations (the
        chord matrix held fixed), which at convergence is the implicit
        gradient of the stage to the iteration's tolerance.
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
    if callback is not None:
        return with_callbacks(solve_stiff, prob, alg, callback, saveat, sensealg, max_steps,
                              progress)
    if sensealg is not None and not isinstance(sensealg, DirectBackprop):
        raise InvalidArgumentError("sensealg", f"DirectBackprop() (or None) with "
                                   f"{type(alg).__name__}: adjoint sensitivities of the "
                                   "stiff methods are not implemented yet", sensealg)
    if max_steps is not None and not (isinstance(max_steps, int) and max_steps > 0):
        raise InvalidArgumentError("max_steps", "a positive integer", max_steps)
    layout = StateLayout(prob.u0, prob.batched)
    y0 = layout.flatten(prob.u0, "u0")
    F = _rhs(prob, layout, alg)
    t0, t1 = prob.tspan
    ts = save_times_tensor(saveat, t0, t1, y0.dtype, y0.device, y0.numel())
    differentiable = torch.is_grad_enabled() and (
        y0.requires_grad or bool(collect_parameters(_functions(prob), prob.p)))
    if differentiable and alg.matrix_free:
        raise InvalidArgumentError("sensealg", "no gradients through matrix-free stages (run "
                                   "under torch.no_grad(), or use dense stages)", alg)
    ys, stats, retcode, record = integrate_implicit(F, alg, y0, t0, ts, record=dense,
                                                    progress=progress, max_steps=max_steps,
                                                    differentiable=differentiable)
    interpolant = None
    if dense and record is not None:
        def interpolant(tq):
            return layout.unflatten(record(tq))

    return Solution(t=ts, u=layout.unflatten(ys), retcode=retcode, stats=stats, problem=prob,
                    alg=alg, interpolant=interpolant, record=record)


def _functions(prob):
    return (prob.f_stiff, prob.f_nonstiff) if isinstance(prob, SplitODEProblem) else prob.f
