"""The step loop of the stiff (Jacobian-using) one-step methods.

Every stiff method (Rosenbrock: :mod:`.rosenbrock23`, :mod:`.rodas4`; ESDIRK:
:mod:`.implicit_euler`, :mod:`.kvaerno5`) is an :class:`AdaptiveImplicit`
with a ``step(F, t, y, f0, h, J, dfdt) -> (y_new, err, f_new or None)``; the
loop here does the rest:

* ``(B, D)`` states with per-sample step control (each trajectory of a
  batched problem its own steps), steps shortened to land on save times;
* per-sample dense Jacobians from one forward-mode derivative (``torch.func``)
  of ``sum_b f_b`` and ``df/dt`` from one Jacobian-vector product; a
  rejected step reuses the Jacobian of its start point;
* dense output by cubic Hermite interpolation between accepted steps;
* gradients by direct backpropagation (the Jacobian stays in the graph, so
  the gradient is that of the discrete solution).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import torch

from ...errors import InvalidArgumentError
from ...progress import TimeProgress
from ...solution import ReturnCode, SolverStats
from ...solve import AbstractAlgorithm
from ..jacobians import jacobian_rows
from .base import check_step, check_tolerance

__all__ = ["AdaptiveImplicit", "HermiteRecord", "integrate_implicit", "jacobians"]

RHS = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AdaptiveImplicit(AbstractAlgorithm):
    """Base of the adaptive stiff methods (Rosenbrock and ESDIRK).

    Parameters
    ----------
    rtol, atol : float
        Local error tolerances (RMS norm per trajectory), finite,
        non-negative, not both zero.
    dt0 : float, optional
        First step (default: ``1e-6`` of the span, grown by the controller).
    dtmin, dtmax : float, optional
        Bounds on the step; a step below ``dtmin`` ends that trajectory with
        ``DtLessThanMin``.
    max_steps : int
        Most step attempts; more gives ``MaxIters``.
    dt : float, optional
        A fixed step instead of adaptive control (for convergence studies):
        every interval between save times is split into equal steps no
        longer than ``dt``.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    dt0: Optional[float] = None
    dtmin: Optional[float] = None
    dtmax: Optional[float] = None
    max_steps: int = 100_000
    dt: Optional[float] = None
    imex: ClassVar[bool] = False  # the Jacobian of F.stiff only (implicit-explicit)

    @property
    def matrix_free(self) -> bool:
        """True when the method forms no Jacobian (its stages use Krylov solves)."""
        return False
    order: ClassVar[int]        # of the solution
    error_order: ClassVar[int]  # of the error estimate plus one (the controller's exponent)
    stages: ClassVar[int]       # right-hand-side evaluations per step, about

    def step(self, F: RHS, t, y, f0, h, J, dfdt):
        """One step of every trajectory: ``(y_new, err, f_new or None)``.

        ``t, h (B,)``, ``y, f0 = f(t, y) (B, D)``, ``J = df/dy (B, D, D)``,
        ``dfdt (B, D)``; ``err (B, D)`` the local error estimate (``inf`` for a
        trajectory whose step failed, e.g. a stage solve that did not
        converge); ``f_new = f(t + h, y_new)`` when the method has it at hand.

        Parameters
        ----------
        F : callable
            The flat right-hand side ``(t (B,), y (B, D)) -> (B, D)``.
        t, h : torch.Tensor, shape (B,)
        y, f0 : torch.Tensor, shape (B, D)
            The states and their slopes.
        J : torch.Tensor, shape (B, D, D), or None
        dfdt : torch.Tensor, shape (B, D), or None

        Returns
        -------
        tuple
            ``(y_new, err, f_new or None)``.
        """
        raise NotImplementedError

    def __post_init__(self):
        check_tolerance(self.rtol, "rtol")
        check_tolerance(self.atol, "atol")
        if self.rtol == 0 and self.atol == 0:
            raise InvalidArgumentError("atol", "rtol or atol positive", self.atol)
        for name in ("dt0", "dtmax", "dt"):
            if getattr(self, name) is not None:
                check_step(getattr(self, name), name)
        check_tolerance(self.dtmin, "dtmin", optional=True)
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or \
                self.max_steps < 1:
            raise InvalidArgumentError("max_steps", "a positive integer", self.max_steps)


@dataclass
class HermiteRecord:
    """Accepted steps of every trajectory for dense output: step starts ``t (S, B)``,
    sizes ``h (S, B)`` (0 where a trajectory did not step), states and slopes at
    both ends ``(S, B, D)``."""

    t: torch.Tensor
    h: torch.Tensor
    y0: torch.Tensor
    y1: torch.Tensor
    f0: torch.Tensor
    f1: torch.Tensor

    def __call__(self, tq: torch.Tensor) -> torch.Tensor:
        """States at times ``tq (M,)``: ``(M, B, D)`` by cubic Hermite interpolation."""
        B = self.t.shape[1]
        return torch.stack([self.at(torch.full((B,), t, dtype=self.t.dtype, device=self.t.device))
                            for t in tq.tolist()])

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """Each trajectory's state at its own time ``t (B,)``: ``(B, D)``.

        Differentiable in ``t`` (the adjoint's Jacobians need ``dy/dt``).
        """
        ends = torch.where(self.h > 0, self.t + self.h, torch.full_like(self.t, -math.inf))
        tq = t.detach()[None]
        # the accepted step of each trajectory that contains t (the first one; steps are in
        # time order per trajectory)
        inside = (self.t <= tq) & (ends >= tq)
        idx = torch.where(inside.any(0), inside.float().argmax(0),
                          torch.zeros_like(inside[0], dtype=torch.long))
        b = torch.arange(self.t.shape[1], device=self.t.device)
        return self.piece(idx, b, t)

    def piece(self, idx: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The cubic of step ``idx[i]`` of trajectory ``b[i]`` at time ``t[i]``."""
        hh = self.h[idx, b]
        safe = torch.where(hh > 0, hh, torch.ones_like(hh))
        s = ((t - self.t[idx, b]) / safe).clamp(0, 1)[:, None]
        y0, y1, f0, f1 = (x[idx, b] for x in (self.y0, self.y1, self.f0, self.f1))
        hh = hh[:, None]
        h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
        h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
        return h00 * y0 + h10 * hh * f0 + h01 * y1 + h11 * hh * f1


def jacobians(F: RHS, t: torch.Tensor, y: torch.Tensor,
              keep_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``df/dy (B, D, D)`` and ``df/dt (B, D)`` at ``(t (B,), y (B, D))``.

    Sample ``b``'s slope depends on ``y_b`` only, so row ``i`` of every
    sample's Jacobian is the gradient of ``sum_b f_b,i``: for few unknowns one
    reverse pass per row (the cheapest here, measured), else one vectorised
    forward-mode ``torch.func.jacfwd``. With ``keep_graph`` the Jacobians
    stay in the autograd graph (direct backpropagation then differentiates
    through them; this costs a double-backward graph per step).
    """
    if y.shape[1] > _ROW_LIMIT or (keep_graph and y.requires_grad):
        # kept graphs: functorch's transforms, because a reverse pass from a state that
        # carries the whole solve's history walks all of it (quadratic in the steps)
        try:
            J = torch.func.jacfwd(lambda z: F(t, z).sum(0))(y).permute(1, 0, 2)
            dfdt = torch.func.jvp(lambda tt: F(tt, y), (t,), (torch.ones_like(t),))[1]
            # forward mode may promote a tangent that the primal keeps in the state's
            # dtype (torch 2.x: a Python scalar times 0-dim tensors gives a float64
            # tangent of a float32 f); the linear solves need one dtype
            return J.to(y.dtype), dfdt.to(y.dtype)
        except (RuntimeError, NotImplementedError, TypeError):  # ops without forward AD
            pass
    return _jacobians_by_rows(F, t, y, keep_graph)


_ROW_LIMIT = 32


def _jacobians_by_rows(F: RHS, t, y, keep: bool = False):
    with torch.enable_grad():
        z = y if (keep and y.requires_grad) else y.detach().requires_grad_(True)
        tt = t.detach().requires_grad_(True)
        J, dfdt = jacobian_rows(F(tt, z), (z, tt), create_graph=keep)
    return J, dfdt


@dataclass
class _Trajectories:
    """Per-trajectory loop state."""

    t: torch.Tensor         # (B,) current times
    h: torch.Tensor         # (B,) next step
    y: torch.Tensor         # (B, D)
    f: torch.Tensor         # (B, D) slope at (t, y)
    save: torch.Tensor      # (B,) index of the next save time
    code: list              # per trajectory: None (running) or a ReturnCode


def integrate_implicit(F: RHS, alg: AdaptiveImplicit, y0: torch.Tensor, t0: float,
                         ts: torch.Tensor, record: bool = False, progress: bool | str = False,
                         max_steps: Optional[int] = None, differentiable: bool = False):
    """Integrate ``(B, D)`` states from ``t0`` through the save times ``ts (K,)``.

    Returns
    -------
    ys : torch.Tensor, shape (K, B, D)
        States at the save times (NaN where a trajectory stopped early).
    stats : SolverStats
    retcode : ReturnCode
        ``Success`` if every trajectory reached the end, else the first failure.
    record : HermiteRecord or None

    ``differentiable``: keep the Jacobians in the autograd graph (set when
    something upstream requires grad).
    """
    B, D = y0.shape
    K = ts.shape[0]
    t_end = float(ts[-1])
    span = max(t_end - t0, 1e-300)
    dtype, device = y0.dtype, y0.device
    tvec = torch.full((B,), float(t0), dtype=dtype, device=device)
    f0 = F(tvec, y0)
    h0 = alg.dt if alg.dt is not None else (alg.dt0 or 1e-6 * span)
    state = _Trajectories(tvec, torch.full((B,), float(h0), dtype=dtype, device=device), y0, f0,
                          torch.zeros(B, dtype=torch.long, device=device), [None] * B)
    saved = [[None] * B for _ in range(K)]
    _save_reached(state, ts, saved)
    stats = SolverStats(nfe=1)
    rec: list = []
    limit = max_steps or alg.max_steps
    bar = TimeProgress(t0, t_end, progress, desc=type(alg).__name__)
    start = time.perf_counter()
    J = dfdt = None
    fresh = torch.ones(B, dtype=torch.bool, device=device)  # needs a new Jacobian
    jacobian_of = getattr(F, "stiff", F) if alg.imex else F  # IMEX: the stiff part only
    try:
        while any(c is None for c in state.code):
            if stats.iterations >= limit:
                state.code = [ReturnCode.MaxIters if c is None else c for c in state.code]
                break
            running = torch.tensor([c is None for c in state.code], device=device)
            target = ts[state.save.clamp(max=K - 1)]
            h = _step_size(alg, state, target, running)
            if alg.matrix_free:
                J = dfdt = None
            elif J is None or bool(fresh.any()):
                J_new, dfdt_new = jacobians(jacobian_of, state.t, state.y, differentiable)
                J = J_new if J is None else torch.where(fresh[:, None, None], J_new, J)
                dfdt = dfdt_new if dfdt is None else torch.where(fresh[:, None], dfdt_new, dfdt)
                stats.nfe += 2
                stats.jacobians += 1
            y_new, err, f_new = alg.step(F, state.t, state.y, state.f, h, J, dfdt)
            stats.nfe += alg.stages - 1
            stats.iterations += 1
            stats.linear_iterations += alg.stages  # about one triangular solve pair per stage
            accept, ratio = _accept(alg, state, y_new, err, running)
            if f_new is None:
                f_new = F(state.t + h, y_new)
                stats.nfe += 1
            accept = accept & torch.isfinite(f_new).all(1)
            if record:
                rec.append((state.t.clone(), torch.where(accept, h, torch.zeros_like(h)),
                            state.y, y_new, state.f, f_new))
            _advance(state, accept, h, y_new, f_new)
            stats.rejects += int((running & ~accept).sum())
            stats.steps = max(stats.steps, stats.iterations)
            fresh = accept
            _next_step(alg, state, h, ratio, accept, running)
            _save_reached(state, ts, saved)
            _check_failures(alg, state, y_new, running, accept)
            bar.update(float(state.t.min()))
    finally:
        bar.close()
    stats.wall_time = time.perf_counter() - start
    nan = torch.full((D,), math.nan, dtype=dtype, device=device)
    ys = torch.stack([torch.stack([v if v is not None else nan for v in row]) for row in saved])
    failures = [c for c in state.code if c != ReturnCode.Success]
    hermite = HermiteRecord(*(torch.stack([r[i] for r in rec]) for i in range(6))) \
        if record and rec else None
    return ys, stats, (failures[0] if failures else ReturnCode.Success), hermite


def _step_size(alg, state: _Trajectories, target: torch.Tensor, running) -> torch.Tensor:
    """The step each trajectory takes now: its proposal, cut to land on its next save time."""
    room = target - state.t
    h = torch.minimum(state.h, room)
    if alg.dtmax is not None:
        h = h.clamp(max=alg.dtmax)
    # a step within a hair of the save time would leave a sliver: take the whole room
    h = torch.where(room - h < 1e-10 * room.abs().clamp(min=1e-300), room, h)
    return torch.where(running, h.clamp(min=1e-300), torch.ones_like(h))


def _accept(alg, state: _Trajectories, y_new, err, running):
    scale = alg.atol + alg.rtol * torch.maximum(state.y.abs(), y_new.abs())
    ratio = torch.sqrt(torch.mean((err / scale) ** 2, dim=1)).detach()
    ok = running & torch.isfinite(ratio) & torch.isfinite(y_new).all(1)
    if alg.dt is None:
        ok = ok & (ratio <= 1.0)
    return ok, ratio


def _advance(state: _Trajectories, accept, h, y_new, f_new) -> None:
    state.t = torch.where(accept, state.t + h, state.t)
    state.y = torch.where(accept[:, None], y_new, state.y)
    state.f = torch.where(accept[:, None], f_new, state.f)


def _next_step(alg, state: _Trajectories, h, ratio, accept, running) -> None:
    if alg.dt is not None:
        state.h = torch.full_like(state.h, alg.dt)
        return
    factor = 0.9 * torch.clamp(ratio, min=1e-10) ** (-1.0 / alg.error_order)
    factor = torch.where(accept, factor.clamp(0.2, 6.0), factor.clamp(0.1, 0.9))
    factor = torch.where(torch.isfinite(factor), factor, torch.full_like(factor, 0.1))
    state.h = torch.where(running, h * factor, state.h).detach()


def _save_reached(state: _Trajectories, ts, saved) -> None:
    """Record the states of trajectories that reached their next save time (a vectorised
    test first: most steps reach none)."""
    K = ts.shape[0]
    while True:
        pending = state.save < K
        target = ts[state.save.clamp(max=K - 1)]
        reached = pending & (state.t >= target - 1e-12 * target.abs().clamp(min=1.0))
        if not bool(reached.any()):
            break
        for b in torch.nonzero(reached).flatten().tolist():
            saved[int(state.save[b])][b] = state.y[b]
        state.save = state.save + reached.long()
    for b in torch.nonzero(state.save >= K).flatten().tolist():
        if state.code[b] is None:
            state.code[b] = ReturnCode.Success


def _check_failures(alg, state: _Trajectories, y_new, running, accept) -> None:
    for b in torch.nonzero(running & ~accept).flatten().tolist():
        if state.code[b] is not None:
            continue
        if not bool(torch.isfinite(y_new[b]).all()) and alg.dt is not None:
            state.code[b] = ReturnCode.Unstable
        elif alg.dtmin is not None and float(state.h[b]) < alg.dtmin:
            state.code[b] = ReturnCode.DtLessThanMin
        elif float(state.h[b]) < 1e-14 * max(1.0, abs(float(state.t[b]))):
            state.code[b] = ReturnCode.Unstable  # the step collapsed: no finite solution
