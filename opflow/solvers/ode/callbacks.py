"""Events: callbacks that find when a condition crosses zero, act on the state, or stop.

``solve(prob, alg, callback=...)`` takes a :class:`ContinuousCallback`, a
:class:`DiscreteCallback` or a list of them, with every adaptive ODE method
(explicit and stiff) through the same mechanism: the problem is solved in
segments with dense output; in each segment the step ends (and three points
inside every step) are scanned for the first event, a continuous event is
located by Illinois-type regula falsi on the dense output to the solver's
resolution, the segment is cut there, ``affect`` changes the state, and the
solve goes on from the event (or stops, with ``terminate=True``).

The event time of a :class:`ContinuousCallback` is differentiable (as
torchdiffeq's ``odeint_event``): the located time gets one Newton correction
``t* - g(t*, u(t*)) / (dg/dt)`` evaluated with autograd, which carries the
implicit-function-theorem gradient ``dt*/dtheta = -(dg/dtheta) / (dg/dt)``.

Only unbatched problems take callbacks (each trajectory of a batch would need
its own segments); two sign changes inside one sub-step are not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from ...errors import InvalidArgumentError, ShapeError
from ...field import Field
from ...problems import remake
from ...solution import ReturnCode, Solution, SolverStats

__all__ = ["ContinuousCallback", "DiscreteCallback", "Event", "solve_with_callbacks"]

_SUBSTEPS = 4          # points per step scanned for a sign change
_MAX_EVENTS = 10_000   # a Zeno-like cascade ends the solve instead of running forever


@dataclass(frozen=True)
class ContinuousCallback:
    """An event where ``condition(t, u)`` crosses zero.

    Parameters
    ----------
    condition : callable ``(t, u) -> scalar``
        ``t`` a 0-dim tensor, ``u`` the state (like ``u0``); returns a number or
        a 0-dim tensor.
    affect : callable ``(t, u) -> u``, optional
        The state after the event (default: unchanged).
    direction : {0, 1, -1}
        Any crossing, only upward (from negative to positive), only downward.
    terminate : bool
        End the solve at the event.
    """

    condition: Callable[[torch.Tensor, Any], Any]
    affect: Optional[Callable[[torch.Tensor, Any], Any]] = None
    direction: int = 0
    terminate: bool = False

    def __post_init__(self):
        _check_callable(self.condition, "condition")
        if self.affect is not None:
            _check_callable(self.affect, "affect")
        if self.direction not in (0, 1, -1):
            raise InvalidArgumentError("direction", "0, 1 or -1", self.direction)
        if not isinstance(self.terminate, bool):
            raise InvalidArgumentError("terminate", "True or False", self.terminate)


@dataclass(frozen=True)
class DiscreteCallback:
    """An event at the first step end where ``condition(t, u)`` becomes true.

    The condition is checked at the solver's step ends; the event fires where
    it is true and was false at the step end before (an edge, so a condition
    that stays true after its ``affect`` does not fire again at every step).

    Parameters
    ----------
    condition : callable ``(t, u) -> bool``
    affect : callable ``(t, u) -> u``, optional
    terminate : bool
    """

    condition: Callable[[torch.Tensor, Any], Any]
    affect: Optional[Callable[[torch.Tensor, Any], Any]] = None
    terminate: bool = False

    def __post_init__(self):
        _check_callable(self.condition, "condition")
        if self.affect is not None:
            _check_callable(self.affect, "affect")


@dataclass
class Event:
    """One event of a solve: which callback (index), when, the state before ``affect``."""

    index: int
    t: torch.Tensor
    u: Any


def _check_callable(fn, name: str) -> None:
    if not callable(fn):
        raise InvalidArgumentError(name, f"a callable {name}(t, u)", fn)


def _callbacks(callback) -> list:
    items = list(callback) if isinstance(callback, (list, tuple)) else [callback]
    if not items or not all(isinstance(c, (ContinuousCallback, DiscreteCallback))
                            for c in items):
        raise InvalidArgumentError("callback", "a ContinuousCallback, a DiscreteCallback or a "
                                   "list of them", callback)
    return items


def _scalar(value, name: str = "condition(t, u)") -> torch.Tensor:
    v = value.values if isinstance(value, Field) else value
    v = torch.as_tensor(v)
    if v.numel() != 1:
        raise ShapeError(name, "one number per call (a scalar or a 0-dim tensor)", v)
    return v.reshape(())


def _step_ends(sol: Solution) -> list[float]:
    rec = sol.record
    t = rec.t.reshape(rec.t.shape[0], -1)[:, 0]
    h = rec.h.reshape(rec.h.shape[0], -1)[:, 0]
    ends = sorted({float(a + b) for a, b in zip(t.tolist(), h.tolist()) if b > 0})
    t0 = float(sol.t[0]) if sol.t.numel() else float(sol.problem.tspan[0])
    return [t0] + [e for e in ends if e > t0]


def _scan_points(ends: Sequence[float]) -> list[float]:
    points = [ends[0]]
    for a, b in zip(ends, ends[1:]):
        points += [a + (b - a) * k / _SUBSTEPS for k in range(1, _SUBSTEPS + 1)]
    return points


def _crossed(g0: float, g1: float, direction: int) -> bool:
    if direction >= 0 and g0 < 0 <= g1:
        return True
    return direction <= 0 and g0 > 0 >= g1


def _locate(g: Callable[[float], float], a: float, b: float, ga: float, gb: float) -> float:
    """A root of ``g`` in ``[a, b]`` (``ga``, ``gb`` of opposite signs) by Illinois regula falsi."""
    side = 0
    for _ in range(100):
        if gb == ga:
            break
        c = b - gb * (b - a) / (gb - ga)
        gc = g(c)
        if gc == 0.0 or abs(b - a) <= 1e-14 * max(1.0, abs(b)):
            return c
        if (gc > 0) == (gb > 0):
            b, gb = c, gc
            if side == 1:
                ga *= 0.5
            side = 1
        else:
            a, ga = c, gc
            if side == -1:
                gb *= 0.5
            side = -1
    return b


def _first_event(sol: Solution, callbacks, t_start: float):
    """(index, time) of the earliest event after ``t_start`` in the segment, or None."""
    ends = [p for p in _step_ends(sol) if p >= t_start]
    dtype = sol.t.dtype
    best = None
    for i, cb in enumerate(callbacks):
        points = ends if isinstance(cb, DiscreteCallback) else _scan_points(ends)

        def cond(s: float, cb=cb) -> Any:
            with torch.no_grad():
                return cb.condition(torch.tensor(s, dtype=dtype), sol(s))

        values = [cond(p) for p in points]
        if isinstance(cb, DiscreteCallback):
            flags = [bool(_scalar(v)) for v in values]
            hit = next((points[k] for k in range(1, len(points))
                        if flags[k] and not flags[k - 1]), None)
        else:
            g = [float(_scalar(v)) for v in values]
            hit = None
            for k in range(1, len(points)):
                if _crossed(g[k - 1], g[k], cb.direction):
                    hit = _locate(lambda s: float(_scalar(cond(s))), points[k - 1], points[k],
                                  g[k - 1], g[k])
                    break
        if hit is not None and hit > t_start and (best is None or hit < best[1]):
            best = (i, hit)
    return best


def _differentiable_time(cb: ContinuousCallback, sol: Solution, t_hit: float) -> torch.Tensor:
    """``t*`` with the implicit gradient: one Newton correction evaluated with autograd."""
    dtype = sol.t.dtype
    t = torch.tensor(t_hit, dtype=dtype)
    g = _scalar(cb.condition(t, sol(t_hit)))
    if not g.requires_grad:
        return t
    eps = 1e-7 * max(1.0, abs(t_hit))
    with torch.no_grad():
        lo = _scalar(cb.condition(torch.tensor(t_hit - eps, dtype=dtype), sol(t_hit - eps)))
        hi = _scalar(cb.condition(torch.tensor(t_hit + eps, dtype=dtype), sol(t_hit + eps)))
        slope = (hi - lo) / (2 * eps)
    if not bool(torch.isfinite(slope)) or float(slope) == 0.0:
        return t
    return t - g / slope.to(g.dtype)


def solve_with_callbacks(solve_segment: Callable[..., Solution], prob, callback, saveat,
                         **kwargs) -> Solution:
    """Solve ``prob`` in segments between events (see the module notes).

    ``solve_segment(prob, saveat=..., dense=True, **kwargs)`` solves one segment
    without callbacks. Returns a Solution whose ``t`` holds the save times
    reached (and every event time), ``u`` the states there (before an
    ``affect``) and ``record["events"]`` the list of :class:`Event`.
    """
    if getattr(prob, "batched", False):
        raise InvalidArgumentError("callback", "an unbatched problem (events of a batch need "
                                   "one solve per trajectory)", callback)
    callbacks = _callbacks(callback)
    t0, t1 = prob.tspan
    save_list = _requested_saves(saveat, t0, t1)
    times: list[torch.Tensor] = []
    states: list[Any] = []
    events: list[Event] = []
    stats = SolverStats()
    current, t_now, retcode, last = prob, t0, ReturnCode.Success, None
    while True:
        seg = solve_segment(current, saveat=[t_now, t1], dense=True, **kwargs)
        _add_stats(stats, seg.stats)
        last = seg
        if not seg.success:
            retcode = seg.retcode
            break
        found = _first_event(seg, callbacks, t_now)
        t_end = t1 if found is None else found[1]
        for s in save_list:
            if t_now <= s < t_end or (found is None and s == t1) or \
                    (s == t_now and not times):
                times.append(torch.tensor(s, dtype=seg.t.dtype))
                states.append(seg(s))
        if found is None:
            break
        i, t_hit = found
        cb = callbacks[i]
        t_event = _differentiable_time(cb, seg, t_hit) if isinstance(cb, ContinuousCallback) \
            else torch.tensor(t_hit, dtype=seg.t.dtype)
        u_event = seg(t_hit)
        events.append(Event(i, t_event, u_event))
        times.append(t_event)
        states.append(u_event)
        if cb.terminate or len(events) >= _MAX_EVENTS or t_hit >= t1:
            if len(events) >= _MAX_EVENTS:
                retcode = ReturnCode.MaxIters
            break
        u_new = cb.affect(t_event, u_event) if cb.affect is not None else u_event
        t_now = t_hit
        current = remake(prob, u0=u_new, tspan=(t_hit, t1))
    t_all = torch.stack(times) if times else torch.empty(0)
    u_all = _stack_states(states)
    return Solution(t=t_all, u=u_all, retcode=retcode, stats=stats, problem=prob,
                    alg=last.alg if last is not None else None,
                    record={"events": events})


def _requested_saves(saveat, t0: float, t1: float) -> list[float]:
    from ..saving import save_times

    return save_times(saveat, t0, t1)


def _add_stats(total: SolverStats, part: SolverStats) -> None:
    for name in ("steps", "rejects", "nfe", "iterations", "jacobians", "linear_iterations"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.wall_time += part.wall_time


def _stack_states(states: list) -> Any:
    if not states:
        return None
    first = states[0]
    if isinstance(first, Field):
        return first.with_values(torch.stack([s.values for s in states]))
    if isinstance(first, tuple):
        return tuple(torch.stack([s[k] for s in states]) for k in range(len(first)))
    return torch.stack(states)


def event_times(sol: Solution) -> list[float]:
    """The event times of a solve with callbacks, as floats (empty without events)."""
    events = (sol.record or {}).get("events", []) if isinstance(sol.record, dict) else []
    return [float(e.t) for e in events if math.isfinite(float(e.t))]
