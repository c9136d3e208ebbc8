"""The :class:`PseudoSpectral` algorithm object."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

from ....errors import InvalidArgumentError
from ....solve import AbstractAlgorithm
from .cnab2 import CNAB2Stepper
from .cnheun import CNHeunStepper
from .etdrk4 import ETDRK4Stepper

__all__ = ["PseudoSpectral", "SCHEMES"]

SCHEMES = {"cnab2": CNAB2Stepper, "cnheun": CNHeunStepper, "etdrk4": ETDRK4Stepper}


@dataclass(frozen=True)
class PseudoSpectral(AbstractAlgorithm):
    """Fourier pseudo-spectral method with a fixed time step, for periodic problems.

    Space: the state is held by its real FFT; derivatives are exact on the
    grid's Fourier modes and products are taken on the grid, with the 2/3
    rule against aliasing. Time: the diffusive part is stiff and treated
    implicitly or exactly, the rest explicitly (see ``scheme``).

    Parameters
    ----------
    dt : float
        Largest time step. Each interval between save times is split into
        equal steps ``<= dt`` so that every save time is hit exactly.
    scheme : {"cnab2", "cnheun", "etdrk4"}
        ``"cnab2"``: Crank-Nicolson for diffusion, Adams-Bashforth 2 for the
        rest (order 2, 1 evaluation per step). ``"cnheun"``: Crank-Nicolson
        with a Heun predictor-corrector (order 2, 2 evaluations; the FNO
        Navier-Stokes recipe). ``"etdrk4"``: exponential time differencing
        RK4, Cox-Matthews with Kassam-Trefethen contour coefficients (order
        4, 4 evaluations, diffusion integrated exactly).
    dealias : bool
        Apply the 2/3 rule to the quadratic (advection) term.
    check_every : int, optional
        Steps between two NaN/Inf checks of the state (each one a host
        synchronisation on a GPU); default 10 on CPU and 100 elsewhere. The
        last state is always checked.
    max_seconds : float, optional
        Wall-clock limit; reaching it ends the solve with
        ``ReturnCode.MaxTime`` (save times not reached are NaN).

    Examples
    --------
    >>> grid = Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    >>> (x,) = grid.mesh()
    >>> u0 = Field(torch.sin(2 * torch.pi * x)[None], grid)
    >>> sol = opflow.solve(BurgersProblem(u0, nu=0.1), PseudoSpectral(dt=1e-3), saveat=0.1)
    >>> tuple(sol.u.shape)  # 11 save times, one channel, 64 points
    (11, 1, 64)
    """

    dt: float
    scheme: str = "cnab2"
    dealias: bool = True
    check_every: Optional[int] = None
    max_seconds: Optional[float] = None

    def __post_init__(self):
        dt = self.dt
        if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not (
                math.isfinite(float(dt)) and dt > 0):
            raise InvalidArgumentError("dt", "a positive finite time step", dt)
        object.__setattr__(self, "dt", float(dt))
        if self.scheme not in SCHEMES:
            raise InvalidArgumentError("scheme", f"one of {sorted(SCHEMES)}", self.scheme)
        if not isinstance(self.dealias, bool):
            raise InvalidArgumentError("dealias", "True or False", self.dealias)
        c = self.check_every
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise InvalidArgumentError("check_every", "a positive integer or None", c)
        m = self.max_seconds
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Real)
                              or not m > 0):
            raise InvalidArgumentError("max_seconds", "a positive number of seconds or None", m)

    @property
    def order(self) -> int:
        """Order of accuracy in time of the scheme."""
        return SCHEMES[self.scheme].order
