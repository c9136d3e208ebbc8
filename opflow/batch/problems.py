"""The named problems of ``opflow solve``: how one chunk of input samples is solved.

Each problem maps one input variable, a batch of samples on a grid, to one
output variable ``u`` on the same grid:

* ``darcy``: ``-div(a grad u) = f`` with the input as the coefficient ``a``
  (:class:`~opflow.solvers.pde.DarcyProblem`, :class:`~opflow.solvers.pde.Multigrid`);
* ``burgers``: ``u_t + (u^2/2)_x = nu u_xx`` on a periodic 1-D grid, input
  ``u0``, output ``u(t_final)`` (:class:`~opflow.solvers.pde.PseudoSpectral`);
* ``heat``: ``u_t = nu Laplacian u`` on a periodic grid (1-, 2- or 3-D),
  input ``u0``, output ``u(t_final)`` (:class:`~opflow.solvers.pde.HeatProblem`,
  exact in one ETDRK4 step of :class:`~opflow.solvers.pde.PseudoSpectral`).

A :class:`SolveTask` is a small picklable value, so dask can send it to
worker processes or to a ``dask.distributed`` cluster. Samples that cannot be
solved (NaN/Inf input, a non-positive Darcy coefficient, a solver failure)
come back as NaN with ``failed = 1``; the other samples of the chunk are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..catalog import CatalogView, register_solver
from ..errors import InvalidArgumentError, OpflowError, ShapeError, UnknownVariableError
from ..field import Field
from ..grid import Grid
from ..io.convert import grid_from_xarray

__all__ = ["PROBLEMS", "ProblemSpec", "SolveTask", "check_input", "problem_grid", "resolve_options"]

OUTPUT = "u"
FAILED = "failed"


# ------------------------------------------------------------------ solvers
def _darcy(a: Field, opts: Mapping[str, Any]) -> Field:
    from ..solve import solve
    from ..solvers.pde import DarcyProblem, Multigrid

    sol = solve(DarcyProblem(a, forcing=opts["forcing"], bc=opts["bc"]),
                Multigrid(rtol=opts["rtol"], max_cycles=opts["max_cycles"]))
    if not sol.success:
        raise _Failed(str(sol.retcode))
    return sol.u


def _burgers(u0: Field, opts: Mapping[str, Any]) -> Field:
    from ..solve import solve
    from ..solvers.pde import BurgersProblem, PseudoSpectral

    t1 = opts["t_final"]
    sol = solve(BurgersProblem(u0, nu=opts["nu"], tspan=(0.0, t1)),
                PseudoSpectral(dt=_burgers_dt(opts), scheme=opts["scheme"]), saveat=[t1])
    if not sol.success:
        raise _Failed(str(sol.retcode))
    return sol.u[0]


def _burgers_dt(opts: Mapping[str, Any]) -> float:
    # A fixed default (not a CFL estimate from the data) so that a sample's
    # result does not depend on which other samples share its chunk.
    return opts["dt"] if opts["dt"] is not None else opts["t_final"] / 1000


def _kuramoto_sivashinsky(u0: Field, opts: Mapping[str, Any]) -> Field:
    from ..solve import solve
    from ..solvers.pde import KuramotoSivashinskyProblem, PseudoSpectral

    t1 = opts["t_final"]
    sol = solve(KuramotoSivashinskyProblem(u0, tspan=(0.0, t1)),
                PseudoSpectral(dt=opts["dt"], scheme="etdrk4"), saveat=[t1])
    if not sol.success:
        raise _Failed(str(sol.retcode))
    return sol.u[0]


def _heat(u0: Field, opts: Mapping[str, Any]) -> Field:
    from ..solve import solve
    from ..solvers.pde import HeatProblem, PseudoSpectral

    t1 = opts["t_final"]
    # linear: one ETDRK4 step of the whole span is exact (each mode decays as exp(-nu k^2 t))
    sol = solve(HeatProblem(u0, nu=opts["nu"], tspan=(0.0, t1)),
                PseudoSpectral(dt=t1, scheme="etdrk4"), saveat=[t1])
    if not sol.success:
        raise _Failed(str(sol.retcode))
    return sol.u[0]


class _Failed(Exception):
    """A batch solve did not succeed (retcode); the samples are retried one by one."""


# ------------------------------------------------------------- validity
def _finite(values: torch.Tensor) -> torch.Tensor:
    """Samples whose values are all finite (the default ``valid``).

    Parameters
    ----------
    values : torch.Tensor, shape (B, ...)
        A chunk of input values.

    Returns
    -------
    torch.Tensor, shape (B,), bool
    """
    return torch.isfinite(values).flatten(1).all(dim=1)


def _darcy_valid(values: torch.Tensor) -> torch.Tensor:
    return _finite(values) & (torch.nan_to_num(values, nan=0.0) > 0).flatten(1).all(dim=1)


def _check_darcy(grid: Grid, opts: Mapping[str, Any]) -> None:
    from ..solvers.pde import DarcyProblem, Multigrid

    ones = Field(torch.ones((1, 1, *grid.shape), dtype=torch.float64), grid)
    DarcyProblem(ones, forcing=opts["forcing"], bc=opts["bc"])
    Multigrid(rtol=opts["rtol"], max_cycles=opts["max_cycles"])


def _check_time(opts: Mapping[str, Any]) -> None:
    t1 = opts["t_final"]
    if isinstance(t1, bool) or not isinstance(t1, (int, float)) or not (
            math.isfinite(t1) and t1 > 0):
        raise InvalidArgumentError("t_final", "a positive final time", t1)


def _check_burgers(grid: Grid, opts: Mapping[str, Any]) -> None:
    from ..solvers.pde import BurgersProblem, PseudoSpectral

    _check_time(opts)
    zeros = Field(torch.zeros((1, 1, *grid.shape), dtype=torch.float64), grid)
    BurgersProblem(zeros, nu=opts["nu"], tspan=(0.0, opts["t_final"]))
    PseudoSpectral(dt=_burgers_dt(opts), scheme=opts["scheme"])


def _check_kuramoto_sivashinsky(grid: Grid, opts: Mapping[str, Any]) -> None:
    from ..solvers.pde import KuramotoSivashinskyProblem, PseudoSpectral

    _check_time(opts)
    zeros = Field(torch.zeros((1, 1, *grid.shape), dtype=torch.float64), grid)
    KuramotoSivashinskyProblem(zeros, tspan=(0.0, opts["t_final"]))
    PseudoSpectral(dt=opts["dt"], scheme="etdrk4")


def _check_heat(grid: Grid, opts: Mapping[str, Any]) -> None:
    _check_time(opts)
    nu = opts["nu"]
    if isinstance(nu, bool) or not isinstance(nu, (int, float)) or not (
            math.isfinite(nu) and nu >= 0):
        raise InvalidArgumentError("nu", "a non-negative diffusivity", nu)
    for axis in grid.axes:
        if not axis.is_uniform:
            raise InvalidArgumentError("input", f"a uniform grid (axis {axis.name!r} is not)",
                                       grid)


# ----------------------------------------------------------------- registry
@dataclass(frozen=True)
class ProblemSpec:
    """How ``opflow solve NAME`` solves a batch of samples.

    Parameters
    ----------
    name : str
    description : str
    ndims : tuple of int
        Accepted numbers of grid dimensions.
    periodic : bool
        Whether the grid is periodic on every axis (spectral problems).
    defaults : mapping
        Every option the problem takes, with its default.
    solve : callable
        ``solve(field, options) -> Field``; values of shape ``(B, 1, *grid)``
        in and out.
    check : callable
        ``check(grid, options)`` raises on a bad grid or option before any work.
    valid : callable
        ``valid(values) -> bool tensor (B,)``: which samples can be solved.
    variable : str
        The input variable ``opflow solve`` reads when ``--vars`` is not given.
    """

    name: str
    description: str
    ndims: tuple[int, ...]
    periodic: bool
    defaults: Mapping[str, Any]
    solve: Callable[[Field, Mapping[str, Any]], Field]
    check: Callable[[Grid, Mapping[str, Any]], None]
    valid: Callable[[torch.Tensor], torch.Tensor] = field(default=_finite)
    variable: str = "u0"


PROBLEMS = CatalogView("solver")
"""The batch solvers of :mod:`opflow.catalog` (the one list of named problems), by name."""

for _spec in (
    ProblemSpec("darcy", "-div(a grad u) = f, input a, multigrid", (1, 2, 3), False,
                {"forcing": 1.0, "bc": "dirichlet", "rtol": 1e-8, "max_cycles": 50},
                _darcy, _check_darcy, _darcy_valid, variable="a"),
    ProblemSpec("burgers", "viscous Burgers u0 -> u(t_final), periodic 1-D, pseudo-spectral",
                (1,), True, {"nu": 0.1, "t_final": 1.0, "dt": None, "scheme": "etdrk4"},
                _burgers, _check_burgers),
    ProblemSpec("heat", "heat equation u0 -> u(t_final), periodic, exact in one ETDRK4 step",
                (1, 2, 3), True, {"nu": 1.0, "t_final": 1.0}, _heat, _check_heat),
    ProblemSpec("kuramoto-sivashinsky", "Kuramoto-Sivashinsky u0 -> u(t_final), periodic "
                "1-D, pseudo-spectral ETDRK4 (dt = 0.25, the generate recipe's)", (1,), True,
                {"t_final": 1.0, "dt": 0.25}, _kuramoto_sivashinsky,
                _check_kuramoto_sivashinsky),
):
    register_solver(_spec)


def resolve_options(problem: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The problem's defaults updated with ``options``; unknown names raise.

    Parameters
    ----------
    problem : str
        A key of :data:`PROBLEMS`.
    options : mapping, optional
        Option values; ``None`` values keep the default.

    Returns
    -------
    dict
        Every option of the problem, sorted by name.
    """
    if problem not in PROBLEMS:
        raise InvalidArgumentError("problem", f"one of {sorted(PROBLEMS)}", problem)
    defaults = PROBLEMS[problem].defaults
    resolved = dict(defaults)
    for key, value in (options or {}).items():
        if key not in defaults:
            raise UnknownVariableError(f"options of {problem!r}", key, sorted(defaults))
        if value is not None:
            resolved[key] = value
    return dict(sorted(resolved.items()))


def problem_grid(obj: xr.Dataset | xr.DataArray, dims: tuple[str, ...],
                 periodic: bool) -> Grid:
    """The grid of ``dims`` from their coordinates (periodic on every axis if asked).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Holds a 1-D coordinate variable for every name of ``dims``.
    dims : tuple of str
    periodic : bool
        Spectral problems: a grid saved without opflow's ``opflow_periodic``
        mark is taken as periodic, its period one spacing past the last point;
        an axis marked non-periodic (``opflow_periodic = 0``) is refused.

    Returns
    -------
    Grid
    """
    for d in dims:
        if d not in obj.coords or obj.coords[d].ndim != 1:
            raise InvalidArgumentError(
                "input", f"a coordinate variable for the grid dimension {d!r}",
                f"no coordinate {d!r} (coordinates: {sorted(map(str, obj.coords))})")
    grid = grid_from_xarray(obj, dims)
    if not periodic or all(grid.periodic):
        return grid
    for axis in grid.axes:
        if not axis.periodic and "opflow_periodic" in obj.coords[axis.name].attrs:
            raise InvalidArgumentError(
                "var", f"a variable on periodic axes (the solver is periodic), but its axis "
                f"{axis.name!r} is marked non-periodic (opflow_periodic = 0)",
                getattr(obj, "name", None))
    return Grid.from_coords({a.name: a.coords for a in grid.axes}, periodic=dims,
                            units={a.name: a.units for a in grid.axes})


@dataclass(frozen=True)
class SolveTask:
    """Solve one chunk of samples of a named problem (picklable, for dask workers).

    Parameters
    ----------
    problem : str
        A key of :data:`PROBLEMS`.
    variable : str
        Input variable, dims ``(sample_dim, *grid_dims)``.
    sample_dim : str
    grid_dims : tuple of str
    options : mapping
        All options of the problem (from :func:`resolve_options`).
    device : str
        Torch device the chunk is solved on.
    """

    problem: str
    variable: str
    sample_dim: str
    grid_dims: tuple[str, ...]
    options: Mapping[str, Any]
    device: str = "cpu"

    def __call__(self, chunk: xr.Dataset) -> xr.Dataset:
        """Solve the samples of ``chunk``.

        Parameters
        ----------
        chunk : xarray.Dataset
            Holds ``variable`` with dims ``(sample_dim, *grid_dims)``, B samples.

        Returns
        -------
        xarray.Dataset
            ``u`` of dims ``(sample_dim, *grid_dims)`` (float64; NaN where a
            sample failed) and ``failed`` of dim ``(sample_dim,)`` (int8, 1 if
            that sample could not be solved), with the grid and sample coordinates.
        """
        spec = PROBLEMS[self.problem]
        grid = problem_grid(chunk, self.grid_dims, spec.periodic)
        da = chunk[self.variable].transpose(self.sample_dim, *self.grid_dims)
        values = torch.as_tensor(np.asarray(da.values, dtype=np.float64))[:, None]
        values = values.to(self.device)
        valid = spec.valid(values)
        out = torch.full_like(values, math.nan)
        ok = valid.clone()
        index = torch.nonzero(valid).flatten()
        if len(index):
            try:
                out[index] = self._solve(spec, values[index], grid)
            except (_Failed, OpflowError):
                for i in index.tolist():  # isolate the samples that fail
                    try:
                        out[i:i + 1] = self._solve(spec, values[i:i + 1], grid)
                    except (_Failed, OpflowError):
                        ok[i] = False
        return self._dataset(chunk, Field(out.cpu(), grid, names=OUTPUT), ~ok.cpu())

    def _solve(self, spec: ProblemSpec, values: torch.Tensor, grid: Grid) -> torch.Tensor:
        result = spec.solve(Field(values, grid, names=self.variable), self.options)
        values = result.values.detach()
        if not bool(torch.isfinite(values).all()):
            raise _Failed("non-finite result")
        return values

    def _dataset(self, chunk: xr.Dataset, u: Field, failed: torch.Tensor) -> xr.Dataset:
        ds = u.to_xarray(batch_dims=[self.sample_dim])
        ds[OUTPUT].attrs["long_name"] = f"{self.problem} solution"
        ds[FAILED] = xr.Variable((self.sample_dim,), failed.numpy().astype(np.int8),
                                 {"long_name": "1 where the sample could not be solved"})
        if self.sample_dim in chunk.coords:
            ds = ds.assign_coords({self.sample_dim: chunk[self.sample_dim].values})
        return ds


def check_input(problem: str, da: xr.DataArray, sample_dim: str) -> tuple[str, ...]:
    """Grid dims of input ``da`` for ``problem``; raises on wrong dims.

    Parameters
    ----------
    problem : str
    da : xarray.DataArray
        The input variable, dims ``(sample_dim, *grid_dims)``.
    sample_dim : str

    Returns
    -------
    tuple of str
        The grid dims.
    """
    spec = PROBLEMS[problem]
    if sample_dim not in da.dims:
        raise UnknownVariableError("sample_dim", sample_dim, list(da.dims))
    grid_dims = tuple(str(d) for d in da.dims if d != sample_dim)
    if len(grid_dims) not in spec.ndims:
        expected = " or ".join(str(n) for n in spec.ndims)
        raise ShapeError(
            "var", f"dims ({sample_dim}, <{expected} grid dims>) for problem {problem!r}",
            f"variable {da.name!r} with dims {da.dims}")
    return grid_dims
