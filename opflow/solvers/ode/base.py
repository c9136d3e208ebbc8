"""Algorithm base classes for explicit Runge-Kutta ODE solvers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from ...errors import InvalidArgumentError
from ...solve import AbstractAlgorithm
from .runge_kutta import AdaptiveOptions, ButcherTableau

__all__ = ["FixedStepRK", "AdaptiveRK", "check_step", "check_tolerance"]


def _finite(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value))


def check_step(dt, argument: str = "dt") -> None:
    """A finite positive step size (not a bool), or an error naming ``argument``."""
    if not (_finite(dt) and dt > 0):
        raise InvalidArgumentError(argument, "a finite positive step size", dt)


def check_tolerance(value, argument: str, optional: bool = False) -> None:
    """A finite non-negative tolerance (or None when ``optional``), else an error naming
    ``argument`` (an infinite tolerance would accept every step, however wrong)."""
    if optional and value is None:
        return
    if not (_finite(value) and value >= 0):
        raise InvalidArgumentError(argument, "a finite non-negative tolerance"
                                   + (" or None" if optional else ""), value)


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
        the state of each trajectory): finite, non-negative, not both zero.
    dt0 : float, optional
        First step (finite, positive); chosen automatically (Hairer's
        heuristic) when None.
    dtmin, dtmax : float, optional
        Bounds on the step (finite; ``0 <= dtmin <= dtmax``, ``dtmax > 0``);
        a step below ``dtmin`` ends the solve with ``ReturnCode.DtLessThanMin``.
    max_steps : int
        Iteration limit; reaching it gives ``ReturnCode.MaxIters`` (this is
        how a stiff problem ends instead of hanging).
    max_seconds : float, optional
        Wall-clock limit of the solve; reaching it gives ``ReturnCode.MaxTime``
        with the states not reached as NaN.
    safety : float
        Safety factor of the step-size controller, in ``(0, 1]``.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        At construction, naming the first bad parameter.
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
        check_tolerance(self.rtol, "rtol")
        check_tolerance(self.atol, "atol")
        if self.rtol == 0 and self.atol == 0:
            raise InvalidArgumentError("rtol", "rtol > 0 or atol > 0", (self.rtol, self.atol))
        if isinstance(self.max_steps, bool) or not (
                isinstance(self.max_steps, int) and self.max_steps > 0):
            raise InvalidArgumentError("max_steps", "a positive integer", self.max_steps)
        if self.max_seconds is not None and not (
                isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0):
            raise InvalidArgumentError("max_seconds", "a positive number of seconds or None",
                                       self.max_seconds)
        self._check_steps()
        if not (_finite(self.safety) and 0 < self.safety <= 1):
            raise InvalidArgumentError("safety", "a factor in (0, 1]", self.safety)

    def _check_steps(self) -> None:
        """``dt0``, ``dtmax``: None or finite positive; ``dtmin``: None, 0 or finite
        positive, at most ``dtmax``."""
        for name in ("dt0", "dtmax"):
            if getattr(self, name) is not None:
                check_step(getattr(self, name), name)
        if self.dtmin is not None and not (_finite(self.dtmin) and self.dtmin >= 0):
            raise InvalidArgumentError("dtmin", "None or a finite non-negative step",
                                       self.dtmin)
        if self.dtmin is not None and self.dtmax is not None and self.dtmin > self.dtmax:
            raise InvalidArgumentError("dtmin", f"at most dtmax = {self.dtmax}", self.dtmin)

    def options(self, **overrides) -> AdaptiveOptions:
        opts = AdaptiveOptions(rtol=self.rtol, atol=self.atol, dt0=self.dt0, dtmin=self.dtmin,
                               dtmax=self.dtmax, max_steps=self.max_steps,
                               max_seconds=self.max_seconds, safety=self.safety)
        for k, v in overrides.items():
            if v is not None:
                setattr(opts, k, v)
        return opts
