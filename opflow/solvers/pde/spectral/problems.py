"""Periodic PDE problems solved by the pseudo-spectral method.

Problems are data (frozen dataclasses, validated on construction, so that
``opflow.remake`` checks a change again). Each one is a semilinear evolution
equation ``u_t = L u + N(t, u)`` on a periodic :class:`~opflow.Grid`, with a
diffusive linear part ``L`` and an explicit part ``N`` that may contain a
trainable ``closure``: a callable or ``nn.Module`` ``closure(t, u) -> Field``
whose output is added to the right-hand side (a universal differential
equation). Gradients reach the closure's parameters and the initial state
through the time stepping.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ....errors import GridMismatchError, InvalidArgumentError, ShapeError
from ....field import Field
from ....problems import check_tspan

__all__ = ["BurgersProblem", "HeatProblem", "NavierStokes2DProblem"]

Closure = Callable[[torch.Tensor, Field], Field]


def _check_nu(nu) -> float:
    if isinstance(nu, bool) or not isinstance(nu, numbers.Real):
        raise InvalidArgumentError("nu", "a non-negative real viscosity", nu)
    nu = float(nu)
    if not (math.isfinite(nu) and nu >= 0):
        raise InvalidArgumentError("nu", "a non-negative real viscosity", nu)
    return nu


def _check_state(name: str, u: Field, ndim: Optional[int]) -> None:
    """A one-channel, real floating-point, finite Field on a periodic uniform grid
    (of ``ndim`` axes; any number when None)."""
    if not isinstance(u, Field):
        raise InvalidArgumentError(name, "an opflow.Field", u)
    grid = u.grid
    if ndim is not None and grid.ndim != ndim:
        raise InvalidArgumentError(name, f"a Field on a {ndim}-D grid", grid)
    for axis in grid.axes:
        if not axis.periodic:
            raise InvalidArgumentError(
                name, f"a Field on a periodic grid (axis {axis.name!r} is not periodic)", grid)
        if not axis.is_uniform:
            raise InvalidArgumentError(
                name, f"a Field on a uniform grid (axis {axis.name!r} is not)", grid)
    if u.channels != 1:
        dims = ", ".join(str(n) for n in grid.shape)
        raise ShapeError(name, f"one channel: values of shape (*batch, 1, {dims})", u.values)
    if not u.values.is_floating_point():
        raise InvalidArgumentError(name, "real floating-point values (float32 or float64)",
                                   u.values)
    if not bool(torch.isfinite(u.values.detach()).all()):
        raise InvalidArgumentError(name, "finite values (no NaN or Inf)", u.values)


def _check_closure(closure) -> None:
    if closure is not None and not callable(closure):
        raise InvalidArgumentError(
            "closure", "None or a callable / nn.Module closure(t, u) -> Field", closure)


@dataclass(frozen=True)
class BurgersProblem:
    """Viscous Burgers equation on a 1-D periodic domain.

    ``u_t + (u^2 / 2)_x = nu u_xx + closure(t, u)``

    Parameters
    ----------
    u0 : Field, values of shape (*batch, 1, n)
        Initial state on a 1-D periodic uniform grid; any number of batch
        dimensions (independent samples solved together). Real, finite.
    nu : float
        Viscosity, ``nu >= 0``.
    tspan : (float, float)
        ``(t0, t1)`` with ``t1 > t0``.
    closure : callable or nn.Module, optional
        ``closure(t, u) -> Field`` (or tensor) of the shape of ``u``, added to
        the right-hand side; ``t`` is a 0-dim tensor and ``u`` a Field like
        ``u0``. Its parameters receive gradients through :func:`opflow.solve`.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    >>> (x,) = grid.mesh()
    >>> u0 = opflow.Field(torch.sin(2 * torch.pi * x)[None], grid)
    >>> prob = opflow.BurgersProblem(u0, nu=0.1, tspan=(0.0, 0.5))
    >>> opflow.solve(prob, opflow.PseudoSpectral(dt=1e-3)).success
    True
    """

    u0: Field
    nu: float
    tspan: tuple[float, float] = (0.0, 1.0)
    closure: Optional[Closure] = None

    def __post_init__(self):
        _check_state("u0", self.u0, 1)
        object.__setattr__(self, "nu", _check_nu(self.nu))
        object.__setattr__(self, "tspan", check_tspan(self.tspan))
        _check_closure(self.closure)


@dataclass(frozen=True)
class HeatProblem:
    """The heat equation on a periodic domain of any dimension.

    ``u_t = nu Laplacian u + closure(t, u)``

    Without a closure the equation is linear and ``PseudoSpectral(scheme=
    "etdrk4")`` integrates it exactly (to rounding) in one step of any size:
    each Fourier mode decays as ``exp(-nu |k|^2 t)``.

    Parameters
    ----------
    u0 : Field, values of shape (*batch, 1, *grid.shape)
        Initial state on a periodic uniform grid of 1, 2 or 3 axes. Real,
        finite, any number of batch dimensions.
    nu : float
        Diffusivity, ``nu >= 0``.
    tspan : (float, float)
        ``(t0, t1)`` with ``t1 > t0``.
    closure : callable or nn.Module, optional
        ``closure(t, u) -> Field`` (or tensor) of the shape of ``u``, added to
        the right-hand side, as for :class:`BurgersProblem`.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    >>> (x,) = grid.mesh()
    >>> u0 = opflow.Field(torch.sin(2 * torch.pi * x)[None], grid)
    >>> sol = opflow.solve(opflow.HeatProblem(u0, nu=0.01), opflow.PseudoSpectral(dt=1e-2))
    >>> sol.retcode, tuple(sol.u.shape)  # saved at t = 0 and t = 1
    (<ReturnCode.Success: 'Success'>, (2, 1, 64))
    """

    u0: Field
    nu: float
    tspan: tuple[float, float] = (0.0, 1.0)
    closure: Optional[Closure] = None

    def __post_init__(self):
        _check_state("u0", self.u0, None)
        object.__setattr__(self, "nu", _check_nu(self.nu))
        object.__setattr__(self, "tspan", check_tspan(self.tspan))
        _check_closure(self.closure)


@dataclass(frozen=True)
class NavierStokes2DProblem:
    """Incompressible 2-D Navier-Stokes in vorticity form on a periodic domain.

    ``w_t + u . grad w = nu Laplacian w + forcing + closure(t, w)``

    The velocity ``u = (u_x, u_y)`` comes from the stream function
    ``psi = -Laplacian^{-1} w`` (zero mean) as ``u_x = d psi / dy``,
    ``u_y = -d psi / dx``, so that ``w = d u_y / dx - d u_x / dy`` is the
    vorticity and ``div u = 0``; see
    :func:`~opflow.solvers.pde.spectral.velocity_from_vorticity`. The grid
    axes are ``(x, y)`` in this order, whatever their names.

    Parameters
    ----------
    w0 : Field, values of shape (*batch, 1, nx, ny)
        Initial vorticity on a 2-D periodic uniform grid (the unit torus in
        the standard recipe). Real, finite, any number of batch dimensions.
    nu : float
        Viscosity, ``nu >= 0``.
    forcing : Field, optional
        Time-independent forcing on the grid of ``w0``, values broadcastable
        to those of ``w0`` (``(1, nx, ny)`` for one forcing shared by the batch).
    tspan : (float, float)
        ``(t0, t1)`` with ``t1 > t0``.
    closure : callable or nn.Module, optional
        ``closure(t, w) -> Field`` (or tensor) of the shape of ``w``, added
        to the right-hand side, as for :class:`BurgersProblem`.

    Notes
    -----
    The mean of ``w`` over the domain is the mean of ``forcing`` (plus
    closure) integrated in time: on a torus it is not coupled to the flow.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 1.0, 16), periodic=("x", "y"))
    >>> x, y = grid.mesh(dtype=torch.float64)
    >>> w0 = opflow.Field(torch.sin(2 * torch.pi * x)[None], grid)  # vorticity
    >>> prob = opflow.NavierStokes2DProblem(w0, nu=1e-3, tspan=(0.0, 0.1))
    >>> tuple(opflow.solve(prob, opflow.PseudoSpectral(dt=1e-2)).u.shape)
    (2, 1, 16, 16)
    """

    w0: Field
    nu: float
    forcing: Optional[Field] = None
    tspan: tuple[float, float] = (0.0, 1.0)
    closure: Optional[Closure] = None

    def __post_init__(self):
        _check_state("w0", self.w0, 2)
        object.__setattr__(self, "nu", _check_nu(self.nu))
        object.__setattr__(self, "tspan", check_tspan(self.tspan))
        _check_closure(self.closure)
        f = self.forcing
        if f is None:
            return
        if not isinstance(f, Field):
            raise InvalidArgumentError("forcing", "None or an opflow.Field", f)
        if f.grid != self.w0.grid:
            raise GridMismatchError("forcing", f"a Field on the grid of w0, {self.w0.grid}",
                                    f.grid)
        try:
            shape = torch.broadcast_shapes(f.values.shape, self.w0.values.shape)
        except RuntimeError:
            shape = None
        if f.channels != 1 or shape != self.w0.values.shape:
            raise ShapeError("forcing", f"values broadcastable to {tuple(self.w0.values.shape)}",
                             f.values)
        if not f.values.is_floating_point() or not bool(torch.isfinite(f.values.detach()).all()):
            raise InvalidArgumentError("forcing", "finite real floating-point values", f.values)
