"""Fixed-step time marching of a :class:`~.system.SemilinearSystem` to save times.

Step-size rule
--------------
Each interval between consecutive save times ``[t_{k-1}, t_k]`` (starting
at ``t0``) is split into ``n = ceil((t_k - t_{k-1}) / dt)`` equal steps of
``h = (t_k - t_{k-1}) / n <= dt``: every save time is hit exactly, no step
exceeds ``dt`` and a scheme keeps its order. When ``dt`` divides the save
interval all steps equal ``dt``. The schemes cache their coefficients per
distinct ``h`` (at most a few per solve).

Failure detection
-----------------
A state that becomes NaN or Inf (an explicit step beyond its stability
limit, say) is detected without a host synchronisation on every step: the
state is checked every ``check_every`` steps and after the last one. The
march then stops with :attr:`~opflow.ReturnCode.Unstable`; save times not
reached hold NaN (as in the ODE solvers).
"""

from __future__ import annotations

import math
import time
from typing import ClassVar, Sequence

import torch

from ....progress import TimeProgress
from ....solution import ReturnCode, SolverStats
from ..._limits import check_step_count
from .system import SemilinearSystem

__all__ = ["Stepper", "march"]


class Stepper:
    """A time-stepping scheme bound to one system for one solve.

    Subclasses set ``order`` and ``evaluations`` (right-hand-side
    evaluations per step) and implement :meth:`_coefficients` (the
    ``h``-dependent operators, cached here) and :meth:`step`.
    """

    order: ClassVar[int]
    evaluations: ClassVar[int]

    def __init__(self, system: SemilinearSystem):
        self.system = system
        self._cache: dict[float, tuple] = {}

    def coefficients(self, h: float) -> tuple:
        """The scheme's operators for step ``h`` (computed once per distinct ``h``)."""
        c = self._cache.get(h)
        if c is None:
            c = self._cache[h] = self._coefficients(h)
        return c

    def _coefficients(self, h: float) -> tuple:
        raise NotImplementedError

    def step(self, t: float, v: torch.Tensor, h: float) -> torch.Tensor:
        """State at ``t + h`` from state ``v`` at ``t``."""
        raise NotImplementedError




def _finite(v: torch.Tensor) -> bool:
    return bool(torch.isfinite(v.detach()).all())


def march(stepper: Stepper, v0: torch.Tensor, t0: float, ts: Sequence[float], dt: float,
          check_every: int, progress: bool | str = False, desc: str = "PseudoSpectral",
          max_seconds: float | None = None):
    """March ``v0`` from ``t0`` through the sorted save times ``ts``.

    Parameters
    ----------
    stepper : Stepper
    v0 : torch.Tensor, complex, shape (*batch, 1, *spectral_shape)
        Initial spectral state at ``t0``.
    t0 : float
    ts : sequence of float
        Save times, sorted, ``>= t0``, not empty; the march ends at the last.
    dt : float
        Largest step (see the module notes for the step-size rule).
    check_every : int
        Steps between two finiteness checks of the state.
    progress : bool or "always"
        Progress bar over simulated time.
    max_seconds : float, optional
        Wall-clock limit, checked with the finiteness test (``ReturnCode.MaxTime``).

    Returns
    -------
    states : list of torch.Tensor or None
        Spectral state at each save time; None where not reached.
    stats : SolverStats
    retcode : ReturnCode
    """
    check_step_count(t0, list(ts), dt)
    start = time.perf_counter()
    bar = TimeProgress(t0, max(ts[-1], t0 + dt), progress, desc)
    states: list = [None] * len(ts)
    v, t, steps, retcode = v0, t0, 0, ReturnCode.Success
    try:
        for k, tk in enumerate(ts):
            n = max(int(math.ceil((tk - t) / dt - 1e-9)), 0)
            h = (tk - t) / n if n else 0.0
            for j in range(n):
                v = stepper.step(t + j * h, v, h)
                steps += 1
                if steps % check_every == 0:
                    bar.update(t + (j + 1) * h)
                    if not _finite(v):
                        retcode = ReturnCode.Unstable
                        break
                    if max_seconds is not None and time.perf_counter() - start > max_seconds:
                        retcode = ReturnCode.MaxTime
                        break
            if retcode is not ReturnCode.Success:
                break
            t = tk
            states[k] = v
        if retcode is ReturnCode.Success and steps % check_every and not _finite(v):
            retcode = ReturnCode.Unstable
    finally:
        bar.close()
    stats = SolverStats(steps=steps, rejects=0, nfe=steps * stepper.evaluations,
                        iterations=steps, wall_time=time.perf_counter() - start)
    return states, stats, retcode
