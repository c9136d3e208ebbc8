"""How gradients flow through an ODE solve (``solve(..., sensealg=...)``).

* :class:`DirectBackprop` (default): autograd records every step. Exact
  gradients of the discrete solution; memory grows with the number of steps.
* :class:`BacksolveAdjoint`: the continuous adjoint, solved backwards in time
  together with the state. Memory does not grow with the number of steps
  (O(1) in steps, O(K) in save points); gradients match the true ones to the
  tolerance of the backward solve.
* :class:`InterpolatingAdjoint`: the continuous adjoint of the cost state
  only, with the forward state read from the dense output of forward
  re-solves between checkpoints. Memory is bounded by the checkpoints and
  the recorded steps of one short segment, not the whole solve; unlike the
  backsolve it never integrates the state backwards (which is unstable for
  dissipative dynamics).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from ...errors import InvalidArgumentError
from .base import check_tolerance

__all__ = ["DirectBackprop", "BacksolveAdjoint", "InterpolatingAdjoint", "collect_parameters",
           "backsolve", "interpolating_adjoint", "run_with_adjoint"]


@dataclass(frozen=True)
class DirectBackprop:
    """Differentiate through the solver's operations with autograd.

    Examples
    --------
    >>> import torch, opflow
    >>> w = torch.tensor(0.5, requires_grad=True)
    >>> prob = opflow.ODEProblem(lambda t, u, p: -p * u, torch.ones(3), tspan=(0.0, 1.0), p=w)
    >>> sol = opflow.solve(prob, opflow.Tsit5(), sensealg=opflow.DirectBackprop())
    >>> (grad,) = torch.autograd.grad(sol.u[-1].sum(), w)
    >>> round(float(grad), 3)  # d/dw of 3 exp(-w)
    -1.82
    """


@dataclass(frozen=True)
class BacksolveAdjoint:
    """Continuous adjoint solved backwards in time (O(1) memory in steps).

    Parameters
    ----------
    rtol, atol : float, optional
        Tolerances of the backward solve (default: those of the algorithm).
    params : sequence of torch.Tensor, optional
        Tensors to differentiate with respect to. Default: the parameters of
        ``f`` when it is an ``nn.Module`` and the tensors in ``p`` that
        require grad.

    Examples
    --------
    >>> import torch, opflow
    >>> w = torch.tensor(0.5, requires_grad=True)
    >>> prob = opflow.ODEProblem(lambda t, u, p: -p * u, torch.ones(3), tspan=(0.0, 1.0), p=w)
    >>> sol = opflow.solve(prob, opflow.Tsit5(), sensealg=opflow.BacksolveAdjoint())
    >>> (grad,) = torch.autograd.grad(sol.u[-1].sum(), w)
    >>> round(float(grad), 3)  # d/dw of 3 exp(-w)
    -1.82
    """

    rtol: Optional[float] = None
    atol: Optional[float] = None
    params: Optional[Sequence[torch.Tensor]] = None

    def __post_init__(self):
        check_tolerance(self.rtol, "rtol", optional=True)
        check_tolerance(self.atol, "atol", optional=True)


@dataclass(frozen=True)
class InterpolatingAdjoint:
    """Continuous adjoint with the state interpolated from checkpointed re-solves.

    The forward pass keeps only the states at the save times. The backward
    pass walks the save intervals in reverse; each is split into segments of
    about ``steps_per_checkpoint`` solver steps (estimated from the forward
    step count), whose start states are recomputed without a graph; each
    segment is then re-solved with its steps recorded, and the adjoint is
    integrated back across it with the state taken from that dense output.

    Parameters
    ----------
    steps_per_checkpoint : int
        Steps recorded at once in the backward pass (memory: one segment's
        stages, plus one state per checkpoint).
    rtol, atol : float, optional
        Tolerances of the backward adjoint solve (default: the algorithm's).
    params : sequence of torch.Tensor, optional
        As for :class:`BacksolveAdjoint`.

    Notes
    -----
    Adaptive methods only (the dense output is the method's interpolant).
    Costs about three forward solves plus the adjoint solve.

    Examples
    --------
    >>> import torch, opflow
    >>> w = torch.tensor(0.5, requires_grad=True)
    >>> prob = opflow.ODEProblem(lambda t, u, p: -p * u, torch.ones(3), tspan=(0.0, 1.0), p=w)
    >>> sol = opflow.solve(prob, opflow.Tsit5(), sensealg=opflow.InterpolatingAdjoint())
    >>> (grad,) = torch.autograd.grad(sol.u[-1].sum(), w)
    >>> round(float(grad), 3)  # d/dw of 3 exp(-w)
    -1.82
    """

    steps_per_checkpoint: int = 32
    rtol: Optional[float] = None
    atol: Optional[float] = None
    params: Optional[Sequence[torch.Tensor]] = None

    def __post_init__(self):
        n = self.steps_per_checkpoint
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("steps_per_checkpoint", "a positive integer", n)
        check_tolerance(self.rtol, "rtol", optional=True)
        check_tolerance(self.atol, "atol", optional=True)


def collect_parameters(f: Any, p: Any) -> list[torch.Tensor]:
    """Tensors requiring grad that ``f`` and ``p`` hold: what an adjoint differentiates.

    Found, in order, without duplicates: the parameters of ``f`` when it is an
    ``nn.Module`` or a bound method of one (``module.drift``); for a plain
    function, the modules and tensors its closure captures (two levels of
    nested functions); the tensors in ``p`` (nested in dicts, lists and
    tuples) and the parameters of modules there. Anything else (a global, an
    attribute of another object) is not found: pass such tensors explicitly
    (``sensealg=...(params=[...])``) or through ``p``.
    """
    found: list[torch.Tensor] = []

    def visit(obj, depth: int = 0):
        if isinstance(obj, nn.Module):
            found.extend(q for q in obj.parameters() if q.requires_grad)
        elif isinstance(obj, torch.Tensor):
            if obj.requires_grad:
                found.append(obj)
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v, depth)
        elif inspect.ismethod(obj):
            visit(obj.__self__, depth)
        elif inspect.isfunction(obj) and depth < 3:
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    pass

    visit(f)
    visit(p)
    unique, seen = [], set()
    for q in found:
        if id(q) not in seen:
            seen.add(id(q))
            unique.append(q)
    return unique


def _vjp(fy: torch.Tensor, inputs: tuple, a: torch.Tensor) -> tuple:
    """``a^T d fy / d inputs``, None for inputs ``fy`` does not use (all of them when ``f``
    depends on neither the state nor a parameter, e.g. ``y' = g(t)``)."""
    if not fy.requires_grad:
        return (None,) * len(inputs)
    return torch.autograd.grad(fy, inputs, a, allow_unused=True)


def _state_grad(grad, y: torch.Tensor) -> torch.Tensor:
    """The adjoint's state part of a vector-Jacobian product: zero when ``f`` does not
    depend on the state (autograd returns None then)."""
    return torch.zeros_like(y) if grad is None else grad


class _Backsolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner, y0, *params):
        with torch.no_grad():
            ys = runner.forward(y0)
        ctx.runner = runner
        ctx.save_for_backward(ys)
        return ys

    @staticmethod
    def backward(ctx, grad_ys):
        (ys,) = ctx.saved_tensors
        grad_y0, grad_params = ctx.runner.backward(ys, grad_ys)
        return (None, grad_y0, *grad_params)


def run_with_adjoint(runner: Any, y0: torch.Tensor) -> torch.Tensor:
    """Run a solve without a graph; its gradients come from the runner's adjoint.

    The one entry point of every adjoint in opflow (ODE, stiff, SDE): the
    forward pass runs under ``no_grad``; on the backward pass autograd calls
    ``runner.backward``.

    Parameters
    ----------
    runner : object
        Has ``forward(y0) -> ys``, ``backward(ys, grad_ys) -> (grad_y0,
        grad_params)`` and ``params`` (the tensors that get gradients, in the
        order of ``grad_params``).
    y0 : torch.Tensor
        Initial state.

    Returns
    -------
    torch.Tensor
        ``ys``, the saved states, differentiable in ``y0`` and ``runner.params``.
    """
    return _Backsolve.apply(runner, y0, *runner.params)


class _AdjointRunner:
    """Holds what the forward and backward passes of :class:`_Backsolve` share.

    ``F(t, y)`` takes a 0-dim time and a state of any shape.
    ``forward_solve(y0) -> ys`` runs the forward problem to all save times;
    ``integrate(G, z, t_from, t_to) -> z`` integrates 1-D augmented states
    (the backward pass reverses time itself, so ``t_from < t_to``).
    """

    def __init__(self, F, params, t0: float, ts, forward_solve: Callable, integrate: Callable):
        self.F, self.params, self.t0, self.ts = F, list(params), t0, ts
        self.forward_solve, self.integrate = forward_solve, integrate

    def forward(self, y0):
        self.y0 = y0.detach()
        return self.forward_solve(y0)

    def _augmented(self, shape):
        """Time-reversed adjoint dynamics on the flat state ``[y, a, g]``."""
        params, F = self.params, self.F
        n = math.prod(shape)

        def G(s, z):
            y, a = z[:n].view(shape), z[n: 2 * n].view(shape)
            with torch.enable_grad():
                y_ = y.detach().requires_grad_(True)
                fy = F(-s, y_)
                grads = _vjp(fy, (y_, *params), a)
            parts = [-fy.reshape(-1), _state_grad(grads[0], y_).reshape(-1)]
            return torch.cat(parts + _param_grads(grads[1:], params, z))

        return G, n

    def backward(self, ys, grad_ys):
        shape = tuple(ys.shape[1:])
        G, n = self._augmented(shape)
        sizes = [q.numel() for q in self.params]
        a = grad_ys[-1]
        g = [torch.zeros(q.numel(), dtype=ys.dtype, device=ys.device) for q in self.params]
        ts = self.ts.tolist()
        # Walk back through the save times, then from the first one to t0.
        for k in range(len(ts) - 1, -1, -1):
            t_prev = ts[k - 1] if k > 0 else self.t0
            if ts[k] > t_prev:
                z = torch.cat([ys[k].reshape(-1), a.reshape(-1), *g])
                z = self.integrate(G, z, -ts[k], -t_prev)
                a = z[n: 2 * n].view(shape)
                g = list(torch.split(z[2 * n:], sizes)) if self.params else []
            if k > 0:
                a = a + grad_ys[k - 1]
        grad_params = [gi.view_as(q).to(q.dtype) for gi, q in zip(g, self.params)]
        return a, grad_params


def backsolve(F, y0, t0: float, ts, params, forward_solve, integrate):
    """Run ``forward_solve`` under the backsolve adjoint; returns ``ys (K, *y0.shape)``."""
    runner = _AdjointRunner(F, params, t0, ts, forward_solve, integrate)
    return run_with_adjoint(runner, y0)


def _param_grads(grads, params, like: torch.Tensor) -> list[torch.Tensor]:
    return [torch.zeros(q.numel(), dtype=like.dtype, device=like.device) if g is None
            else g.reshape(-1).to(like.dtype) for q, g in zip(params, grads)]


def _step_boundaries(rec, t_from: float, t_to: float, per_segment: int) -> list[float] | None:
    """Times from ``t_from`` to ``t_to`` at which the recorded forward steps start or end.

    The dense output is a polynomial inside each step but only continuous
    across steps; an adaptive adjoint solve that steps across those kinks
    rejects steps around every one. Stopping at them (starting each piece
    with the forward step as its first step) keeps the right-hand side
    smooth. Per-sample steps of a batched solve give too many distinct
    boundaries: beyond ``8 * per_segment`` this returns None.
    """
    ends = torch.cat([rec.t[rec.h > 0], (rec.t + rec.h)[rec.h > 0]]).detach()
    inner = torch.unique(ends[(ends > t_from) & (ends < t_to)]).tolist()
    if len(inner) > 8 * per_segment:
        return None
    return [t_from, *inner, t_to]


class _InterpolatingRunner(_AdjointRunner):
    """Backward pass of :class:`InterpolatingAdjoint` (see its notes).

    ``resolve(y, t_from, times, record) -> (ys, record)`` re-solves forward
    from ``y`` at ``t_from`` to the times ``times`` (1-D tensor);
    ``interp(record, t) -> y`` evaluates a recorded segment's dense output;
    ``total_steps()`` is the forward solve's step count.
    """

    def __init__(self, F, params, t0, ts, forward_solve, integrate, step, resolve, interp,
                 total_steps, steps_per_checkpoint: int):
        super().__init__(F, params, t0, ts, forward_solve, integrate)
        self.step = step
        self.resolve, self.interp, self.total_steps = resolve, interp, total_steps
        self.per_segment = steps_per_checkpoint

    def _cost_dynamics(self, rec, shape):
        """Time-reversed adjoint dynamics on ``[a, g]`` with ``y`` from the record."""
        params, F, n = self.params, self.F, math.prod(shape)

        def G(s, z):
            a = z[:n].view(shape)
            with torch.enable_grad():
                y_ = self.interp(rec, -s).detach().requires_grad_(True)
                fy = F(-s, y_)
                grads = _vjp(fy, (y_, *params), a)
            return torch.cat([_state_grad(grads[0], y_).reshape(-1),
                              *_param_grads(grads[1:], params, z)])

        return G

    def _segments(self, y_from, t_from: float, t_to: float):
        """Checkpoint times and start states splitting ``[t_from, t_to]``."""
        span = float(self.ts[-1]) - self.t0
        steps = self.total_steps() * (t_to - t_from) / span if span > 0 else 1
        m = max(1, math.ceil(steps / self.per_segment))
        knots = torch.linspace(t_from, t_to, m + 1, dtype=y_from.dtype, device=y_from.device)
        starts = [y_from]
        if m > 1:
            with torch.no_grad():
                ys, _ = self.resolve(y_from, t_from, knots[1:-1], False)
            starts += list(ys)
        return knots.tolist(), starts

    def backward(self, ys, grad_ys):
        shape = tuple(ys.shape[1:])
        n, sizes = math.prod(shape), [q.numel() for q in self.params]
        a = grad_ys[-1]
        g = [torch.zeros(q.numel(), dtype=ys.dtype, device=ys.device) for q in self.params]
        ts = self.ts.tolist()
        for k in range(len(ts) - 1, -1, -1):
            t_prev, y_prev = (ts[k - 1], ys[k - 1]) if k > 0 else (self.t0, self.y0)
            if ts[k] > t_prev:
                knots, starts = self._segments(y_prev, t_prev, ts[k])
                for j in range(len(starts) - 1, -1, -1):
                    end = torch.tensor([knots[j + 1]], dtype=ys.dtype, device=ys.device)
                    with torch.no_grad():
                        _, rec = self.resolve(starts[j], knots[j], end, True)
                    z = torch.cat([a.reshape(-1), *g])
                    G = self._cost_dynamics(rec, shape)
                    stops = _step_boundaries(rec, knots[j], knots[j + 1], self.per_segment)
                    if stops is None:  # too many per-sample boundaries: adaptive solve
                        z = self.integrate(G, z, -knots[j + 1], -knots[j])
                    for lo, hi in zip(stops[-2::-1], stops[:0:-1]) if stops else ():
                        z = self.step(G, z, -hi, -lo)
                    a = z[:n].view(shape)
                    g = list(torch.split(z[n:], sizes)) if self.params else []
            if k > 0:
                a = a + grad_ys[k - 1]
        return a, [gi.view_as(q).to(q.dtype) for gi, q in zip(g, self.params)]


def interpolating_adjoint(F, y0, t0: float, ts, params, forward_solve, integrate, step,
                          resolve, interp, total_steps, steps_per_checkpoint: int = 32):
    """Run ``forward_solve`` under :class:`InterpolatingAdjoint`; returns ``ys``.

    ``step(G, z, s0, s1)`` takes one step of the forward method (used across
    each recorded forward step); ``integrate`` is the adaptive fallback.
    """
    runner = _InterpolatingRunner(F, params, t0, ts, forward_solve, integrate, step, resolve,
                                  interp, total_steps, steps_per_checkpoint)
    return run_with_adjoint(runner, y0)
