"""Save times: the one reading of ``saveat`` shared by the ODE, SDE and spectral solvers.

``saveat`` is ``None`` (the two ends of the span), a positive interval, or a
sequence of times. Every time-marching solver turns it into times here, so
the rules (finite, non-decreasing, within ``tspan``, a size that fits in
memory) are the same whichever solver is asked.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import torch

from ..errors import InvalidArgumentError

__all__ = ["MAX_SAVED_ELEMENTS", "save_times", "save_times_tensor"]

# More saved numbers than this (16 GiB in float32) is a mistake in ``saveat``
# (an interval far too small for the span): refuse it before allocating.
MAX_SAVED_ELEMENTS = 2**32


def _interval_times(s: float, t0: float, t1: float, tol: float,
                    state_numel: int) -> list[float]:
    count = math.floor((t1 - t0) / s + 1e-9) + 1
    if count * max(state_numel, 1) > MAX_SAVED_ELEMENTS:
        raise InvalidArgumentError(
            "saveat", f"an interval giving at most {MAX_SAVED_ELEMENTS} saved numbers "
            f"({count} saves of {state_numel} numbers asked)", s)
    ts = [t0 + i * s for i in range(count)]
    if ts[-1] < t1 - tol:
        ts.append(t1)
    return [min(t, t1) for t in ts]


def _as_floats(saveat) -> list[float]:
    if isinstance(saveat, torch.Tensor) and saveat.requires_grad:
        raise InvalidArgumentError(
            "saveat", "save times that do not require grad (gradients with respect to "
            "save times are not supported: pass saveat.detach())", "a tensor requiring grad")
    try:
        return [float(t) for t in torch.as_tensor(saveat, dtype=torch.float64).reshape(-1)]
    except (TypeError, ValueError, RuntimeError):
        raise InvalidArgumentError("saveat", "None, a positive interval or a sequence of times",
                                   saveat) from None


def save_times(saveat, t0: float, t1: float, state_numel: int = 1) -> list[float]:
    """Save times from ``saveat``, checked, as Python floats.

    Parameters
    ----------
    saveat : None, float or sequence of float
        ``None`` gives ``[t0, t1]``; a positive number ``s`` gives ``t0, t0 +
        s, ...`` up to ``t1``, with ``t1`` appended when ``s`` does not divide
        the span; a sequence must be finite, non-decreasing and within
        ``[t0, t1]``.
    t0, t1 : float
        The solved span.
    state_numel : int
        Numbers in one saved state, to refuse a ``saveat`` whose states
        would not fit in memory (more than :data:`MAX_SAVED_ELEMENTS`).

    Returns
    -------
    list of float, length K >= 1

    Raises
    ------
    InvalidArgumentError
        Naming ``saveat``: not a number or sequence, a non-positive or
        non-finite interval, NaN/Inf, decreasing or out-of-span times, a
        tensor that requires grad, or too many saved numbers.
    """
    if saveat is None:
        return [t0, t1]
    tol = 1e-12 * max(1.0, abs(t0), abs(t1))
    if isinstance(saveat, numbers.Real) and not isinstance(saveat, bool):
        s = float(saveat)
        if not (math.isfinite(s) and s > 0):
            raise InvalidArgumentError("saveat", "a positive interval or a sequence of times",
                                       saveat)
        return _interval_times(s, t0, t1, tol, state_numel)
    ts = _as_floats(saveat)
    if not ts:
        raise InvalidArgumentError("saveat", "at least one save time", saveat)
    if len(ts) * max(state_numel, 1) > MAX_SAVED_ELEMENTS:
        raise InvalidArgumentError("saveat", f"at most {MAX_SAVED_ELEMENTS} saved numbers",
                                   f"{len(ts)} save times")
    if not all(math.isfinite(t) for t in ts):
        raise InvalidArgumentError("saveat", "finite save times", saveat)
    if any(b < a for a, b in zip(ts, ts[1:])):
        raise InvalidArgumentError("saveat", "non-decreasing save times", saveat)
    if ts[0] < t0 - tol or ts[-1] > t1 + tol:
        raise InvalidArgumentError("saveat", f"save times within tspan [{t0}, {t1}]", saveat)
    return [min(max(t, t0), t1) for t in ts]


def save_times_tensor(saveat, t0: float, t1: float, dtype: torch.dtype,
                      device: Optional[torch.device | str] = None,
                      state_numel: int = 1) -> torch.Tensor:
    """:func:`save_times` as a 1-D tensor of ``dtype`` on ``device``, shape ``(K,)``."""
    ts: Sequence[float] = save_times(saveat, t0, t1, state_numel)
    return torch.tensor(ts, dtype=dtype, device=device)
