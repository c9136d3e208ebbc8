"""Limits shared by the time-marching solvers."""

from __future__ import annotations

import math
import os

import torch

from ..errors import InvalidArgumentError

__all__ = ["MAX_FIXED_STEPS", "check_step_count", "memory_bytes", "check_saved_size"]

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


def memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` (the GPU's, or the machine's RAM); None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_saved_size(saveat, t0: float, t1: float, y0: torch.Tensor) -> None:
    """Raise ``InvalidArgumentError("saveat")`` if a save interval asks for more saved
    states than the device's whole memory, before anything is allocated.

    Only a numeric interval is checked: a sequence of save times already exists in memory.
    """
    if isinstance(saveat, bool) or not isinstance(saveat, (int, float)) \
            or not (math.isfinite(saveat) and saveat > 0):
        return  # the save-time checker reports the bad values
    count = (t1 - t0) / saveat + 2
    need = count * (y0.numel() * y0.element_size() + 8)  # states and times
    have = memory_bytes(y0.device)
    if have is not None and need > have:
        raise InvalidArgumentError(
            "saveat", f"a save interval whose {count:.3g} saved states fit in memory "
            f"({need / 2**30:.3g} GiB needed, the {y0.device.type} device has "
            f"{have / 2**30:.3g} GiB)", saveat)
