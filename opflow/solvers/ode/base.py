"""Algorithm base classes for explicit Runge-Kutta ODE solvers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from ...errors import InvalidArgumentError
from ...solve import AbstractAlgorithm
from .runge_kutta import AdaptiveOptions, ButcherTableau

__all__ = ["FixedStepRK", "AdaptiveRK", "check_step"]


def check_step(dt, argument: str = "dt") -> None:
    """A finite positive step size (not a bool), or an error naming ``argument``."""
    if isinstance(dt, bool) or not (isinstance(dt, (int, float)) and math.isfinite(dt)
                                    and dt > 0):
        raise InvalidArgumentError(argument, "a positive step size", dt)


@dataclass(frozen=True)
class FixedStepRK(AbstractAlgorithm):
    """A fixed-step explicit Runge-Kutta method.

    Parameters
    ----------
    dt : float
        Largest step. Each interval between save times is split into equal
        steps no longer than ``dt``, so save times are hit exactly.
    """

    dt: float
    tableau: ClassVar[ButcherTableau]

    def __post_init__(self):
        check_step(self.dt)


@dataclass(frozen=True)
class AdaptiveRK(AbstractAlgorithm):
    """An embedded explicit Runge-Kutta pair with PI step-size control.

    Parameters
    ----------
    rtol, atol : float
        Relative and absolute tolerances on the local error (RMS norm over
        the state of each trajectory).
    dt0 : float, optional
        First step; chosen automatically (Hairer's heuristic) when None.
    dtmin, dtmax : float, optional
        Bounds on the step; a step below ``dtmin`` ends the solve with
        ``ReturnCode.DtLessThanMin``.
    max_steps : int
        Iteration limit; reaching it gives ``ReturnCode.MaxIters`` (this is
        how a stiff problem ends instead of hanging).
    max_seconds : float, optional
        Wall-clock limit of the solve; reaching it gives ``ReturnCode.MaxTime``
        with the states not reached as NaN.
    safety : float
        Safety factor of the step-size controller.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    dt0: Optional[float] = None
    dtmin: Optional[float] = None
    dtmax: Optional[float] = None
    max_steps: int = 10_000
    max_seconds: Optional[float] = None
    safety: float = 0.9
    tableau: ClassVar[ButcherTableau]

    def __post_init__(self):
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise InvalidArgumentError(name, "a non-negative tolerance", v)
        if self.rtol == 0 and self.atol == 0:
            raise InvalidArgumentError("rtol", "rtol > 0 or atol > 0", (self.rtol, self.atol))
        if not (isinstance(self.max_steps, int) and self.max_steps > 0):
            raise InvalidArgumentError("max_steps", "a positive integer", self.max_steps)
        if self.max_seconds is not None and not (
                isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            raise InvalidArgumentError("max_seconds", "a positive number of seconds or None",
                                       self.max_seconds)
        if self.dt0 is not None and not self.dt0 > 0:
            raise InvalidArgumentError("dt0", "a positive step or None", self.dt0)

    def options(self, **overrides) -> AdaptiveOptions:
        opts = AdaptiveOptions(rtol=self.rtol, atol=self.atol, dt0=self.dt0, dtmin=self.dtmin,
                               dtmax=self.dtmax, max_steps=self.max_steps,
                               max_seconds=self.max_seconds, safety=self.safety)
        for k, v in overrides.items():
            if v is not None:
                setattr(opts, k, v)
        return opts
