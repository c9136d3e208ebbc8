"""Explicit Runge-Kutta machinery shared by every ODE algorithm.

A method is a :class:`ButcherTableau`; :func:`integrate_fixed` and
:func:`integrate_adaptive` march any tableau. States are ``(B, D)`` tensors
(see :mod:`.state`); times are ``(B,)`` tensors so that every trajectory of a
batch can take its own adaptive steps in the same call. The adaptive loop
uses only tensor operations per step (``torch.where`` masks, no ``.item()``),
and asks the host whether all trajectories are done only every
``check_every`` steps, so it does not stall a GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ...progress import TimeProgress
from ...solution import ReturnCode, SolverStats
from .._limits import check_step_count

__all__ = ["ButcherTableau", "StepRecord", "integrate_fixed", "integrate_adaptive",
           "integrate_adaptive_shared", "evaluate_record"]

RHS = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ButcherTableau:
    """Coefficients of an explicit Runge-Kutta method.

    Parameters
    ----------
    c : tuple of float, length S
        Nodes.
    a : tuple of tuples
        Lower-triangular stage matrix; row ``i`` has ``i`` entries.
    b : tuple of float, length S
        Weights of the propagated solution.
    order : int
        Order of the propagated solution.
    b_error : tuple of float, optional
        ``b - b_embedded``: weights of the local error estimate.
    fsal : bool
        First same as last: the last stage is ``f(t + h, y_new)``.
    interp : numpy.ndarray, shape (S, P), optional
        Dense output: ``y(t + theta h) = y + h sum_i b_i(theta) k_i`` with
        ``b_i(theta) = theta * sum_j interp[i, j] theta**j``.
    """

    c: tuple
    a: tuple
    b: tuple
    order: int
    b_error: Optional[tuple] = None
    fsal: bool = False
    interp: Optional[np.ndarray] = field(default=None, compare=False)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None


class _Coefficients:
    """The tableau as tensors on one dtype/device, cached (built once per solve)."""

    def __init__(self, tab: ButcherTableau, dtype, device):
        S = tab.stages
        A = np.zeros((S, S))
        for i, row in enumerate(tab.a, start=1):
            A[i, : len(row)] = row
        self.a = [torch.tensor(A[i, :i], dtype=dtype, device=device) for i in range(S)]
        self.b = torch.tensor(tab.b, dtype=dtype, device=device)
        self.b_error = (None if tab.b_error is None
                        else torch.tensor(tab.b_error, dtype=dtype, device=device))
        self.interp_t = (None if tab.interp is None
                         else torch.tensor(tab.interp.T.copy(), dtype=dtype, device=device))




def _combine(y, h, coeffs, ks):
    """``y + h * sum_j coeffs[j] * ks[j]`` with ``h`` of shape (B,), ``coeffs`` a tensor.

    One matrix-vector product over the stacked slopes instead of a chain of
    axpys: three torch operations whatever the number of stages.
    """
    if len(ks) == 1:
        return torch.addcmul(y, h[:, None], ks[0] * coeffs[0])
    acc = torch.tensordot(coeffs, torch.stack(ks), dims=1)
    return torch.addcmul(y, h[:, None], acc)


def rk_step(F: RHS, tab: ButcherTableau, coef: _Coefficients, t, y, h, k1):
    """One step of ``tab``; returns ``(y_new, ks)`` with all stage slopes."""
    ks = [k1]
    S = tab.stages
    for i in range(1, S):
        if tab.fsal and i == S - 1:
            y_new = _combine(y, h, coef.a[i], ks)  # last row of a == b
            ks.append(F(t + h, y_new))
            return y_new, ks
        yi = _combine(y, h, coef.a[i], ks)
        ks.append(F(torch.add(t, h, alpha=tab.c[i]), yi))
    return _combine(y, h, coef.b, ks), ks


# --------------------------------------------------------------------- fixed
def integrate_fixed(F: RHS, tab: ButcherTableau, y0, t0: float, ts, dt: float,
                    record: bool = False):
    """March ``tab`` with step <= ``dt`` to every save time in ``ts`` (sorted).

    Between two save times the interval is split into equal steps, so every
    save time is hit exactly and the method keeps its order there.
    Returns ``(ys (K, B, D), stats, record or None)``.
    """
    check_step_count(t0, ts.tolist(), dt)
    start = time.perf_counter()
    B, dtype, device = y0.shape[0], y0.dtype, y0.device
    out, y, t, steps, nfe = [], y0, t0, 0, 0
    records = []
    coef = _Coefficients(tab, dtype, device)
    for tk in ts.tolist():
        n = max(int(math.ceil((tk - t) / dt - 1e-9)), 0)
        h = (tk - t) / n if n else 0.0
        hv = torch.full((B,), h, dtype=dtype, device=device)
        for j in range(n):
            tv = torch.full((B,), t + j * h, dtype=dtype, device=device)
            y_new, ks = rk_step(F, tab, coef, tv, y, hv, F(tv, y))
            if record:
                records.append((tv, hv, y, torch.stack(ks)))
            y = y_new
            nfe += tab.stages
        steps += n
        t = tk
        out.append(y)
    stats = SolverStats(steps=steps, rejects=0, nfe=nfe, iterations=steps,
                        wall_time=time.perf_counter() - start)
    return torch.stack(out), stats, _stack_records(records) if record else None


def _out_of_time(start: float, opts: "AdaptiveOptions") -> bool:
    return opts.max_seconds is not None and time.perf_counter() - start > opts.max_seconds


def _stack_records(records) -> "StepRecord":
    return StepRecord(*(torch.stack([r[i] for r in records]) for i in range(4)))


# ------------------------------------------------------------------ adaptive
@dataclass
class AdaptiveOptions:
    rtol: float
    atol: float
    dt0: Optional[float] = None
    dtmin: Optional[float] = None
    dtmax: Optional[float] = None
    max_steps: int = 10_000
    max_seconds: Optional[float] = None
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0
    beta: float = 0.04  # PI control: weight of the previous error
    check_every: Optional[int] = None
    progress: bool | str = False


@dataclass
class StepRecord:
    """Per-step data kept for dense output: times ``(S, B)``, steps ``(S, B)``
    (0 for rejected steps), start states ``(S, B, D)``, slopes ``(S, stages, B, D)``."""

    t: torch.Tensor
    h: torch.Tensor
    y: torch.Tensor
    k: torch.Tensor


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.mean(x * x, dim=-1))


def _initial_step(F, y0, f0, t0, order, opts, direction_len):
    scale = opts.atol + opts.rtol * y0.abs()
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    y1 = y0 + h0[:, None] * f0
    f1 = F(t0 + h0, y1)
    d2 = _rms((f1 - f0) / scale) / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(
        dmax <= 1e-15,
        torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
        (0.01 / dmax) ** (1.0 / (order + 1)),
    )
    return torch.minimum(torch.minimum(100 * h0, h1), torch.full_like(h0, direction_len))


def _initial_step_shared(F, y0, f0, t0: float, time_of, order: int, opts, span: float) -> float:
    """:func:`_initial_step` for one trajectory, with Python-float norms."""
    scale = y0.abs().mul_(opts.rtol).add_(opts.atol)
    d0 = float((y0 / scale).square_().mean().sqrt_())
    d1 = float((f0 / scale).square_().mean().sqrt_())
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    f1 = F(time_of(t0 + h0), torch.add(y0, f0, alpha=h0))
    d2 = float((f1 - f0).div_(scale).square_().mean().sqrt_()) / h0
    dmax = max(d1, d2)
    h1 = max(1e-6, h0 * 1e-3) if dmax <= 1e-15 else (0.01 / dmax) ** (1.0 / (order + 1))
    return min(100 * h0, h1, span)


def _interp_weights(coef: _Coefficients, theta: torch.Tensor) -> torch.Tensor:
    """``b_i(theta)`` for every stage: ``(..., S)`` from ``theta`` of shape ``(...)``."""
    P = coef.interp_t  # (J, S): row j multiplies theta**(j + 1)
    assert P is not None  # adaptive tableaus have dense output
    th = theta[..., None]
    w = P[-1]
    for j in range(P.shape[0] - 2, -1, -1):  # Horner
        w = torch.addcmul(P[j], w, th)
    return w * th


def integrate_adaptive(F: RHS, tab: ButcherTableau, y0, t0: float, t1: float, ts,
                       opts: AdaptiveOptions, record: bool = False):
    """Adaptive integration of ``(B, D)`` states from ``t0`` to ``t1``.

    Every trajectory has its own time, step and error history; a step is
    accepted or rejected per trajectory. Values at the save times ``ts``
    (sorted, within ``[t0, t1]``) come from the method's dense output.
    Gradients flow through the states; the step-size control is not
    differentiated (times and steps are computed without autograd).

    Returns
    -------
    ys : torch.Tensor, shape (K, B, D)
    stats : SolverStats
    retcode : ReturnCode
    record : StepRecord or None
    """
    start = time.perf_counter()
    B, dtype, device = y0.shape[0], y0.dtype, y0.device
    coef = _Coefficients(tab, dtype, device)
    b_error = coef.b_error
    assert b_error is not None  # adaptive tableaus have an error estimate
    ts = ts.to(dtype=dtype, device=device)
    t = torch.full((B,), t0, dtype=dtype, device=device)
    t_end = torch.full((B,), t1, dtype=dtype, device=device)
    y = y0
    k1 = F(t, y)
    nfe = 1
    with torch.no_grad():
        if opts.dt0 is not None:
            h = torch.full((B,), float(opts.dt0), dtype=dtype, device=device)
        else:
            h = _initial_step(F, y.detach(), k1.detach(), t, tab.order, opts, t1 - t0)
            nfe += 1
        if opts.dtmax is not None:
            h = h.clamp(max=opts.dtmax)
    dtmin = opts.dtmin if opts.dtmin is not None else 1e3 * torch.finfo(dtype).eps * max(
        abs(t0), abs(t1), 1.0)
    err_prev = torch.ones((B,), dtype=dtype, device=device)
    # Save points never reached (a failed solve) stay NaN rather than a silent zero.
    at_start = (ts <= t0)[:, None, None]
    ys = torch.where(at_start, y0[None], torch.full((), math.nan, dtype=dtype, device=device))
    done = t >= t_end
    expo = 1.0 / tab.order  # the embedded error estimate scales like h^order
    grow_expo = -(expo - 0.75 * opts.beta)
    check_every = opts.check_every or (1 if device.type == "cpu" else 8)
    n_accepted = torch.zeros(B, dtype=torch.long, device=device)
    n_rejected = torch.zeros(B, dtype=torch.long, device=device)
    zero = torch.zeros((), dtype=dtype, device=device)
    one = torch.ones((), dtype=dtype, device=device)
    retcode = ReturnCode.Success
    records: list[tuple] | None = [] if record else None
    bar = TimeProgress(t0, t1, opts.progress)
    it = 0
    while True:
        it += 1
        with torch.no_grad():
            last = t + h >= t_end
            h_eff = torch.where(done, zero, torch.where(last, t_end - t, h))
            t_new = torch.where(last, t_end, t + h_eff)
        y_new, ks = rk_step(F, tab, coef, t, y, h_eff, k1)
        nfe += tab.stages - (1 if tab.fsal else 0)
        slopes = torch.stack(ks, dim=1)  # (B, S, D)
        with torch.no_grad():
            err = torch.matmul(b_error, slopes.detach()).mul_(h_eff[:, None])
            scale = torch.maximum(y.detach().abs(), y_new.detach().abs())
            scale.mul_(opts.rtol).add_(opts.atol)
            err_norm = err.div_(scale).square_().mean(dim=-1).sqrt_()
            err_norm = torch.nan_to_num_(err_norm, nan=math.inf)
            accept = (err_norm <= 1.0) & ~done
        if len(ts):
            with torch.no_grad():
                inside = accept & (ts[:, None] > t) & (ts[:, None] <= t_new)  # (K, B)
                theta = ((ts[:, None] - t) / torch.where(h_eff > 0, h_eff, one)).clamp_(0, 1)
                weights = _interp_weights(coef, theta).mul_(h_eff[:, None])  # (K, B, S)
            incr = torch.bmm(weights.transpose(0, 1), slopes).transpose(0, 1)  # (K, B, D)
            ys = torch.where(inside[..., None], y + incr, ys)
        if records is not None:
            records.append((t, torch.where(accept, h_eff, zero), y, slopes.transpose(0, 1)))
        with torch.no_grad():
            # PI step-size control on the error ratio.
            safe_err = err_norm.clamp(1e-10, 1e10)
            grow = safe_err.pow(grow_expo).mul_(err_prev.pow(opts.beta)).mul_(opts.safety)
            shrink = safe_err.pow(-expo).mul_(opts.safety).clamp_(max=1.0)
            factor = torch.where(accept, grow, shrink).clamp_(opts.factor_min, opts.factor_max)
            keep = done | (accept & last)
            h = torch.where(keep, h, h_eff * factor)
            if opts.dtmax is not None:
                h = h.clamp(max=opts.dtmax)
            n_accepted += accept
            n_rejected += ~accept & ~done
            err_prev = torch.where(accept, err_norm.clamp(min=1e-4), err_prev)
            t = torch.where(accept, t_new, t)
            done = done | (accept & last)
        acc2 = accept[:, None]
        y = torch.where(acc2, y_new, y)
        if tab.fsal:
            k1 = torch.where(acc2, ks[-1], k1)
        else:
            k1 = F(t, y)
            nfe += 1
        if it % check_every == 0 or it >= opts.max_steps:
            bar.update(float(t.min()), iterations=it)
            if bool(done.all()):
                break
            active = ~done
            if not bool(torch.isfinite(y[active]).all()):
                retcode = ReturnCode.Unstable
                break
            if bool((h[active] < dtmin).any()):
                retcode = ReturnCode.DtLessThanMin
                break
            if it >= opts.max_steps:
                retcode = ReturnCode.MaxIters
                break
            if _out_of_time(start, opts):
                retcode = ReturnCode.MaxTime
                break
    bar.close()
    stats = SolverStats(steps=int(n_accepted.max()), rejects=int(n_rejected.sum()), nfe=nfe,
                        iterations=it, wall_time=time.perf_counter() - start)
    return ys, stats, retcode, _stack_records(records) if record else None


def _scalar_combine(y, h: float, coeffs: tuple, ks):
    """``y + h * sum_j coeffs[j] ks[j]`` for a Python-float step ``h``.

    A chain of fused ``add(alpha=...)`` calls: for the few stages of these
    methods it is cheaper, forward and backward, than stacking the slopes.
    """
    out = y
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            out = torch.add(out, k, alpha=h * c)
    return out


def integrate_adaptive_shared(F: RHS, tab: ButcherTableau, y0, t0: float, t1: float, ts,
                              opts: AdaptiveOptions, record: bool = False):
    """Adaptive integration with one step size for the whole state.

    Same method and controller as :func:`integrate_adaptive`, for a single
    trajectory: ``y0`` may have any shape (the user's own tensor, no
    flattening) and ``F(t, y)`` receives a 0-dim time. Times and steps are
    Python floats, so a step needs far fewer torch operations than the
    per-trajectory loop; the price is one host synchronisation per step
    (reading the error norm), as in torchdiffeq.

    Returns
    -------
    ys : torch.Tensor, shape (K, *y0.shape)
    stats, retcode, record : as :func:`integrate_adaptive` (the record holds
        states flattened to ``(1, y0.numel())``).
    """
    start = time.perf_counter()
    dtype, device = y0.dtype, y0.device
    save = ts.tolist()
    K = len(save)
    b_weights, interp = tab.b_error, tab.interp
    assert b_weights is not None and interp is not None  # adaptive tableaus have both

    def time_of(v: float) -> torch.Tensor:
        return torch.full((), v, dtype=dtype, device=device)

    y = y0
    k1 = F(time_of(t0), y)
    nfe = 1
    if opts.dt0 is not None:
        h = float(opts.dt0)
    else:
        with torch.no_grad():
            h = _initial_step_shared(F, y, k1, t0, time_of, tab.order, opts, t1 - t0)
        nfe += 1
    if opts.dtmax is not None:
        h = min(h, opts.dtmax)
    dtmin = opts.dtmin if opts.dtmin is not None else 1e3 * torch.finfo(dtype).eps * max(
        abs(t0), abs(t1), 1.0)
    chunks: list = []  # saved states, one (m, *shape) block per step with save points
    nxt = 0
    while nxt < K and save[nxt] <= t0:
        nxt += 1
    if nxt:
        chunks.append(y0.unsqueeze(0).expand(nxt, *y0.shape))
    expo = 1.0 / tab.order
    grow_expo = -(expo - 0.75 * opts.beta)
    t, err_prev, steps, rejects, it = t0, 1.0, 0, 0, 0
    retcode = ReturnCode.Success
    records: list[tuple] | None = [] if record else None
    bar = TimeProgress(t0, t1, opts.progress)
    while t < t1:
        if it >= opts.max_steps:
            retcode = ReturnCode.MaxIters
            break
        if _out_of_time(start, opts):
            retcode = ReturnCode.MaxTime
            break
        it += 1
        last = t + h >= t1
        h_eff = t1 - t if last else h
        ks = [k1]
        for i in range(1, tab.stages):
            yi = _scalar_combine(y, h_eff, tab.a[i - 1], ks)
            ks.append(F(time_of(t + tab.c[i] * h_eff), yi))
        nfe += tab.stages - 1
        y_new = yi if tab.fsal else _scalar_combine(y, h_eff, tab.b, ks)
        with torch.no_grad():  # no graph: plain tensors, in-place where possible
            err = torch.mul(ks[0], h_eff * b_weights[0])
            for c, k in zip(b_weights[1:], ks[1:]):
                if c != 0.0:
                    err.add_(k, alpha=h_eff * c)
            scale = torch.maximum(y.abs(), y_new.abs()).mul_(opts.rtol).add_(opts.atol)
            err_norm = float(err.div_(scale).square_().mean().sqrt_())
        if not math.isfinite(err_norm):
            err_norm = math.inf
        if err_norm <= 1.0:
            t_new = t1 if last else t + h_eff
            first = nxt
            while nxt < K and save[nxt] <= t_new:
                nxt += 1
            if nxt > first or record:
                slopes = torch.stack(ks)  # (S, *shape)
            if nxt > first:
                theta = (np.asarray(save[first:nxt]) - t) / h_eff
                w = torch.as_tensor(_interp_weights_np(interp, theta) * h_eff,  # (m, S)
                                    dtype=dtype, device=device)
                y_rows = y.reshape(1, -1).expand(nxt - first, -1)
                block = torch.addmm(y_rows, w, slopes.reshape(tab.stages, -1))
                chunks.append(block.view(nxt - first, *y0.shape))
            if records is not None:
                records.append((time_of(t).reshape(1), time_of(h_eff).reshape(1),
                                y.reshape(1, -1), slopes.reshape(tab.stages, 1, -1)))
            y, t, steps = y_new, t_new, steps + 1
            bar.update(t, steps=steps)
            if tab.fsal:
                k1 = ks[-1]
            else:
                k1 = F(time_of(t), y)
                nfe += 1
            factor = opts.safety * max(err_norm, 1e-10) ** grow_expo * err_prev ** opts.beta
            h = h_eff * min(max(factor, opts.factor_min), opts.factor_max)
            err_prev = max(err_norm, 1e-4)
        else:
            rejects += 1
            factor = opts.safety * err_norm ** (-expo) if err_norm < math.inf else 0.0
            h = h_eff * min(max(factor, opts.factor_min), 1.0)
            if h < dtmin:
                finite = bool(torch.isfinite(y_new.detach()).all())
                retcode = ReturnCode.DtLessThanMin if finite else ReturnCode.Unstable
                break
        if opts.dtmax is not None:
            h = min(h, opts.dtmax)
        if opts.dtmin is not None and h < dtmin and t < t1:
            # a user's dtmin also bounds the step wanted after an accepted one (as the
            # batched loop); the default floor only ends a cascade of rejections
            retcode = ReturnCode.DtLessThanMin
            break
    bar.close()
    if nxt < K:  # save points never reached (a failed solve) are NaN, not a silent value
        chunks.append(torch.full((K - nxt, *y0.shape), math.nan, dtype=dtype, device=device))
    ys = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
    stats = SolverStats(steps=steps, rejects=rejects, nfe=nfe, iterations=it,
                        wall_time=time.perf_counter() - start)
    return ys, stats, retcode, _stack_records(records) if record else None


def _interp_weights_np(interp: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`_interp_weights`: ``(m, S)`` from ``theta`` (m,)."""
    powers = theta[:, None] ** np.arange(1, interp.shape[1] + 1)  # theta^1 .. theta^J
    return powers @ interp.T


def evaluate_record(tab: ButcherTableau, rec: StepRecord, t_query: torch.Tensor) -> torch.Tensor:
    """Dense output from a :class:`StepRecord` at times ``t_query`` (M,): ``(M, B, D)``."""
    t_query = t_query.to(rec.t)
    ends = (rec.t + rec.h).T.contiguous()  # (B, S), non-decreasing along S
    M, B = t_query.numel(), ends.shape[0]
    q = t_query.reshape(1, M).expand(B, M).contiguous()
    idx = torch.searchsorted(ends, q).clamp(max=ends.shape[1] - 1)  # (B, M)
    b = torch.arange(B, device=idx.device)[:, None].expand(B, M)
    t0, h = rec.t.T[b, idx], rec.h.T[b, idx]
    y0 = rec.y.permute(1, 0, 2)[b, idx]  # (B, M, D)
    k = rec.k.permute(2, 0, 1, 3)[b, idx]  # (B, M, S, D)
    positive = h > 0
    theta = torch.where(positive, (q - t0) / torch.where(positive, h, 1.0), 0.0)
    weights = _interp_weights(_Coefficients(tab, y0.dtype, y0.device), theta)  # (B, M, S)
    out = y0 + h[..., None] * torch.einsum("bms,bmsd->bmd", weights, k)
    return out.permute(1, 0, 2)
