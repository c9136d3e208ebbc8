"""Adaptive steps for the SDE methods: step doubling on one Brownian path.

Each attempt from ``t`` with step ``h`` takes one step of ``h`` and two of
``h / 2`` with the increments (and Levy areas) of the *same* path, read from
a :class:`~opflow.solvers.sde.BrownianInterval` at ``t``, ``t + h/2`` and
``t + h``: the path does not depend on which steps were tried or rejected.
The difference of the two results is the error estimate; an accepted attempt
keeps the two half steps (the more accurate result), so the adaptive solution
is exactly the fixed-grid solution on the grid of accepted half steps. The
step size follows ``h <- h * clip(0.9 * err**(-1 / (p + 1/2)), 0.2, 5)``
with ``p`` the method's strong order (the local error of a strong-order-``p``
step is ``O(h**(p + 1/2))``) and ``err`` the largest RMS over trajectories
of the difference scaled by ``atol + rtol * max(|u|, |u+|)``. One step size
serves the whole batch (every trajectory shares the time grid).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ...progress import TimeProgress
from ...solution import ReturnCode

__all__ = ["AdaptiveResult", "adaptive_march"]


class AdaptiveResult:
    """What :func:`adaptive_march` found.

    Attributes
    ----------
    times : list of float
        The accepted grid of half steps, ``t0`` first.
    saves : list of int
        For each save time reached, its index in ``times``.
    ys : torch.Tensor or None
        States at the save times reached, ``(K', B, D)``.
    accepted, rejected, attempts : int
    retcode : ReturnCode
    """

    def __init__(self, times, saves, ys, accepted, rejected, attempts, retcode):
        self.times, self.saves, self.ys = times, saves, ys
        self.accepted, self.rejected, self.attempts = accepted, rejected, attempts
        self.retcode = retcode


def _half_increments(bm, t: float, tm: float, t1: float, levy: bool,
                     dtype, device):
    """``(dW, H)`` of ``[t, t1]`` and of its two halves (``H`` None unless ``levy``)."""
    out = bm.on_grid([t, tm, t1], levy_area=levy)
    dw, H = out if levy else (out, None)
    dw = dw.to(dtype=dtype, device=device)
    d1, d2 = dw[0], dw[1]
    if H is None:
        return (d1 + d2, None), (d1, None), (d2, None)
    H = H.to(dtype=dtype, device=device)
    # Levy area of the union of two equal halves
    return (d1 + d2, 0.5 * (H[0] + H[1]) + 0.25 * (d1 - d2)), (d1, H[0]), (d2, H[1])


def _error_ratio(y, y_full, y_two, rtol: float, atol: float) -> float:
    scale = torch.maximum(y.abs(), y_two.abs()).mul_(rtol).add_(atol)
    ratio = ((y_full - y_two) / scale).square().mean(-1).sqrt().max()
    value = float(ratio)
    return value if math.isfinite(value) else math.inf


def adaptive_march(step: Callable, y0: torch.Tensor, t0: float, save_times: list[float],
                   bm, *, dt: float, rtol: float, atol: float, dtmin: float,
                   max_steps: int, order: float, levy: bool, keep_states: bool,
                   progress=False) -> AdaptiveResult:
    """Step-size selection by step doubling; see the module docstring.

    Parameters
    ----------
    step : callable
        ``step(t, t_next, h, y, dW, H) -> y_next`` of the method.
    y0 : torch.Tensor, shape (B, D)
    t0 : float
    save_times : list of float
        Increasing, ``>= t0``; every one is hit exactly.
    bm : BrownianInterval or ReversedBrownian
        The path, covering ``[t0, save_times[-1]]``.
    dt : float
        First step.
    rtol, atol : float
        Tolerances of the error estimate.
    dtmin : float
        Smallest step: an attempt of ``dtmin`` (or less, to reach a save
        time) is accepted whatever its error.
    max_steps : int
        Most attempts (accepted and rejected); reaching it stops the solve
        with ``ReturnCode.MaxIters``.
    order : float
        Strong order of the method.
    levy : bool
        Whether the method takes space-time Levy areas.
    keep_states : bool
        Keep the autograd graph of the accepted steps (direct backprop): the
        saved states are then differentiable. Otherwise the march runs under
        ``no_grad``.
    progress : bool or "always"

    Returns
    -------
    AdaptiveResult
    """
    dtype, device = y0.dtype, y0.device
    times, saves, out = [t0], [], []
    accepted = rejected = attempts = 0
    retcode = ReturnCode.Success
    exponent = -1.0 / (order + 0.5)
    y, t, h = y0, t0, float(dt)
    tiny = 4.0 * torch.finfo(dtype).eps

    def T(x: float) -> torch.Tensor:
        return torch.tensor(x, dtype=dtype, device=device)

    bar = TimeProgress(t0, save_times[-1] if save_times else t0, progress, desc="sde")
    try:
        with torch.set_grad_enabled(keep_states and torch.is_grad_enabled()):
            for ts in save_times:
                while t < ts and retcode == ReturnCode.Success:
                    if attempts >= max_steps:
                        retcode = ReturnCode.MaxIters
                        break
                    h = max(h, dtmin)
                    last = t + h >= ts or ts - (t + h) < tiny * max(1.0, abs(ts))
                    t1 = ts if last else t + h
                    hh = t1 - t
                    tm = t + 0.5 * hh
                    if not (t < tm < t1):  # the step no longer resolves in floating point
                        retcode = ReturnCode.DtLessThanMin
                        break
                    full, first, second = _half_increments(bm, t, tm, t1, levy, dtype, device)
                    tt, tmm, tt1 = T(t), T(tm), T(t1)
                    # the half steps as the grid of accepted times will give them
                    y_full = step(tt, tt1, hh, y, *full)
                    y_half = step(tt, tmm, tm - t, y, *first)
                    y_two = step(tmm, tt1, t1 - tm, y_half, *second)
                    attempts += 1
                    with torch.no_grad():
                        err = _error_ratio(y, y_full, y_two, rtol, atol)
                    if err <= 1.0 or hh <= dtmin:
                        accepted += 1
                        times.extend((tm, t1))
                        y, t = y_two, t1
                        bar.update(t)
                    else:
                        rejected += 1
                    factor = 5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** exponent))
                    h_next = hh * factor
                    # a step clipped to reach a save time does not shrink the next one
                    h = max(h_next, h) if last and err <= 1.0 else h_next
                if t < ts:
                    break
                saves.append(len(times) - 1)
                out.append(y)
    finally:
        bar.close()
    ys = torch.stack(out) if out else None
    return AdaptiveResult(times, saves, ys, accepted, rejected, attempts, retcode)
