"""The standard benchmark data recipes (Burgers, Navier-Stokes), as thin wrappers of solve.

Both follow the recipes of the documentation's benchmarks page (the FNO paper's data sets):

* Burgers, 1-D periodic on ``[0, 1)``, ``nu = 0.1``, the map
  ``u0 -> u(t = 1)``. The published data came from chebfun's ``spin``
  (ETDRK4 in time), so ETDRK4 is the default scheme here.
* Navier-Stokes, 2-D vorticity on the unit torus, ``nu = 1e-3``, forcing
  ``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, Crank-Nicolson in the
  viscous term with a Heun predictor-corrector for advection, 2/3 dealiasing,
  ``dt = 1e-4``, snapshots at ``t_end k / n_saves`` for ``k = 1..n_saves``.

A solve that becomes unstable raises :class:`~opflow.errors.SolverError`
here (a data generator must not write NaN silently).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ....errors import InvalidArgumentError, SolverError
from ....field import Field
from ....grid import Grid
from ....solve import solve
from .algorithm import PseudoSpectral
from .problems import BurgersProblem, NavierStokes2DProblem, _check_state

__all__ = ["burgers_recipe_solve", "navier_stokes_forcing", "navier_stokes_recipe_solve"]


def _check_end(t_end) -> float:
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not (
            math.isfinite(t_end) and t_end > 0):
        raise InvalidArgumentError("t_end", "a positive finite end time", t_end)
    return float(t_end)


def _raise_if_failed(sol, what: str, dt: float) -> None:
    if not sol.success:
        raise SolverError(f"{what}: the solve ended with retcode {sol.retcode} at dt={dt:g}; "
                          "use a smaller dt")


def _burgers_default_dt(u0: Field, nu: float, t_end: float, scheme: str) -> float:
    """A stable step: advective CFL number 0.5 on the modes diffusion does not damp.

    With the largest speed ``U = max |u0|`` (it does not grow for Burgers)
    and the largest dealiased wavenumber ``K``, ``dt = 0.5 / (U K)`` is
    stable for every scheme. ETDRK4 damps a mode by ``exp(-nu k^2 dt)``, so
    only modes with ``nu k^2 dt < 1`` need the CFL condition: ``dt <= 0.25
    nu / U^2`` suffices there whatever the grid (measured on 8192 points,
    nu = 0.1: ETDRK4 is stable and accurate to 5e-8 at dt = 1e-2).
    """
    speed = float(u0.values.detach().abs().max())
    cap = t_end / 200
    if speed == 0:
        return cap
    k_max = (2 * math.pi / u0.grid.axes[0].length) * (u0.grid.shape[0] / 3)
    dt = 0.5 / (speed * k_max)
    if scheme == "etdrk4" and nu > 0:
        dt = max(dt, 0.25 * nu / speed**2)
    return min(cap, dt)


def burgers_recipe_solve(u0: Field, nu: float = 0.1, t_end: float = 1.0,
                         dt: Optional[float] = None, *, scheme: str = "etdrk4",
                         progress: bool | str = False) -> Field:
    """``u(t_end)`` of viscous Burgers from ``u0`` (the FNO Burgers recipe).

    Parameters
    ----------
    u0 : Field, values of shape (*batch, 1, n)
        Initial states on a 1-D periodic grid (``[0, 1)`` in the recipe).
    nu : float
        Viscosity (0.1 in the recipe).
    t_end : float
        Final time (1 in the recipe).
    dt : float, optional
        Time step. Default: at most ``t_end / 200``, and an advective CFL
        number of 0.5 on the largest initial speed (``max |u|`` does not grow
        for Burgers) over the modes that diffusion does not damp; for the
        recipe (nu = 0.1, ``max |u0|`` about 3) that is about 3e-3 on any grid
        with ETDRK4.
    scheme : str
        Time scheme of :class:`PseudoSpectral` (default ETDRK4).
    progress : bool or "always"
        Progress bar.

    Returns
    -------
    Field, values of shape (*batch, 1, n)
        The state at ``t_end``.
    """
    t_end = _check_end(t_end)
    prob = BurgersProblem(u0, nu=nu, tspan=(0.0, t_end))
    if dt is None:
        dt = _burgers_default_dt(u0, prob.nu, t_end, scheme)
    sol = solve(prob, PseudoSpectral(dt=dt, scheme=scheme), saveat=[t_end], progress=progress)
    _raise_if_failed(sol, "burgers_recipe_solve", dt)
    return sol.u[0]


def navier_stokes_forcing(grid: Grid, dtype: torch.dtype = torch.float32,
                          device=None) -> Field:
    """The recipe's forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``.

    Parameters
    ----------
    grid : Grid
        A 2-D grid; its two axes are ``x`` and ``y`` in order.
    dtype, device : torch dtype and device of the values.

    Returns
    -------
    Field, values of shape (1, nx, ny), channel ``"f"``.
    """
    if not isinstance(grid, Grid) or grid.ndim != 2:
        raise InvalidArgumentError("grid", "a 2-D opflow.Grid", grid)
    x, y = grid.mesh(dtype=torch.float64, device=device)
    phase = 2 * math.pi * (x + y)
    f = 0.1 * (torch.sin(phase) + torch.cos(phase))
    return Field(f[None].to(dtype), grid, names="f")


def navier_stokes_recipe_solve(w0: Field, nu: float = 1e-3, t_end: float = 50.0,
                               n_saves: int = 50, dt: float = 1e-4, *, scheme: str = "cnheun",
                               progress: bool | str = False) -> Field:
    """Vorticity trajectory of the FNO Navier-Stokes recipe from ``w0``.

    Parameters
    ----------
    w0 : Field, values of shape (*batch, 1, nx, ny)
        Initial vorticity on a 2-D periodic grid (the unit torus, 64 x 64 in
        the recipe).
    nu : float
        Viscosity (1e-3 in the recipe).
    t_end : float
        Final time (50 for the published ``nu = 1e-3`` set; 20 suffices for
        "first 10 steps in, next 10 out").
    n_saves : int
        Number of snapshots, at ``t_end * k / n_saves`` for ``k = 1..n_saves``
        (``t = 0`` is ``w0`` itself and is not included).
    dt : float
        Time step (1e-4 in the recipe).
    scheme : str
        Time scheme of :class:`PseudoSpectral` (default CN-Heun, the recipe's).
    progress : bool or "always"
        Progress bar.

    Returns
    -------
    Field, values of shape (n_saves, *batch, 1, nx, ny)
        Snapshots stacked along a new first dimension (the ``Solution.u``
        convention).
    """
    t_end = _check_end(t_end)
    if isinstance(n_saves, bool) or not isinstance(n_saves, int) or n_saves < 1:
        raise InvalidArgumentError("n_saves", "a positive integer", n_saves)
    _check_state("w0", w0, 2)
    forcing = navier_stokes_forcing(w0.grid, dtype=w0.dtype, device=w0.device)
    prob = NavierStokes2DProblem(w0, nu=nu, forcing=forcing, tspan=(0.0, t_end))
    times = [t_end * k / n_saves for k in range(1, n_saves + 1)]
    sol = solve(prob, PseudoSpectral(dt=dt, scheme=scheme), saveat=times, progress=progress)
    _raise_if_failed(sol, "navier_stokes_recipe_solve", dt)
    return sol.u
