"""Limits shared by the time-marching solvers."""

from __future__ import annotations

from ..errors import InvalidArgumentError

__all__ = ["MAX_FIXED_STEPS", "check_step_count"]

# A fixed-step march longer than this is a mistake (dt far too small or the time span far
# too long): refuse it up front instead of running for days.
MAX_FIXED_STEPS = 100_000_000


def check_step_count(t0: float, ts, dt: float) -> None:
    """Raise ``InvalidArgumentError("dt")`` if marching to ``max(ts)`` needs > MAX_FIXED_STEPS."""
    t_end = max([float(t) for t in ts], default=t0)
    steps = (t_end - t0) / dt
    if not steps <= MAX_FIXED_STEPS:
        raise InvalidArgumentError(
            "dt", f"a step with at most {MAX_FIXED_STEPS} steps from t0={t0} to t={t_end}",
            dt)
