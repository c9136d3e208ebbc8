"""A multi-task Poisson data set: polynomial sources on several 2D geometries.

Each sample solves ``-Laplacian u = f`` on a domain ``Omega`` inside the unit
square, ``u = 0`` on its boundary, with the multigrid solver (its ``mask``
marks the unknown nodes; every node outside the mask is fixed to 0)::

    f(x, y) = sum_{i + j <= degree} c_ij s^i t^j,   s = 2x - 1, t = 2y - 1,

with coefficients ``c_ij ~ N(0, 1)`` (the branch inputs of a multi-task
DeepONet). The monomials use ``s, t`` in ``[-1, 1]`` so that no coefficient
dominates; their order is :func:`monomials`. ``f`` is defined on the whole
square and stored there; ``u`` is 0 outside ``Omega``.

Geometries (:data:`GEOMETRIES`, coordinates scaled to the unit square) are
boolean masks of the *open* domain: ``True`` strictly inside, so the nodes
on the boundary (outer square edges included) are ``False`` and carry
``u = 0``. Boundaries that fall on grid lines (L-shape, square hole, U-shape)
are exact; curved ones (hole, disk) are staircase approximations.

A data set (``xarray.Dataset`` with dims ``sample``, ``x``, ``y``, ``coef``)
holds ``mask`` (bool), ``f``, ``u`` (float32), ``coeffs`` (``sample x coef``)
and ``geometry`` (the geometry name of each sample). It is made by the
``multitask`` recipe of :func:`opflow.data.generate` (chunked, resumable,
atomic writes), see :func:`generate_multitask`, and loaded into tensors by
:class:`MultiTaskData`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import xarray as xr

from ..errors import (
    GridMismatchError,
    InvalidArgumentError,
    OpflowError,
    ShapeError,
    UnknownVariableError,
)
from ..field import Field
from ..grid import Grid
from .generation import (
    NON_NEGATIVE_INT,
    POSITIVE,
    RECIPES,
    Option,
    Recipe,
    _dataset,
    generate,
    sample_seed,
)

__all__ = [
    "GEOMETRIES",
    "TRAIN_GEOMETRIES",
    "MultiTaskData",
    "generate_multitask",
    "geometry_mask",
    "load_multitask",
    "monomials",
    "multitask_recipe",
    "polynomial_basis",
    "polynomial_source",
    "solve_poisson",
    "unit_grid",
]

_EPS = 1e-9  # nodes on a grid-aligned boundary line count as boundary (False)


def _square(u, v):
    return (u > _EPS) & (u < 1 - _EPS) & (v > _EPS) & (v < 1 - _EPS)


def _lshape(u, v):  # upper-right quadrant removed
    return _square(u, v) & ~((u > 0.5 - _EPS) & (v > 0.5 - _EPS))


def _hole(u, v):  # circular hole of radius 0.2 in the centre
    return _square(u, v) & ((u - 0.5) ** 2 + (v - 0.5) ** 2 > 0.2**2)


def _square_hole(u, v):  # square hole [0.25, 0.75]^2
    inner = (u > 0.25 - _EPS) & (u < 0.75 + _EPS) & (v > 0.25 - _EPS) & (v < 0.75 + _EPS)
    return _square(u, v) & ~inner


def _disk(u, v):  # disk of radius 0.45 in the centre
    return (u - 0.5) ** 2 + (v - 0.5) ** 2 < 0.45**2


def _ushape(u, v):  # a notch [0.375, 0.625] x [0.375, 1] cut from the top
    notch = (u > 0.375 - _EPS) & (u < 0.625 + _EPS) & (v > 0.375 - _EPS)
    return _square(u, v) & ~notch


GEOMETRIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "square": _square,
    "lshape": _lshape,
    "hole": _hole,
    "square_hole": _square_hole,
    "disk": _disk,
    "ushape": _ushape,
}
"""Geometry name -> ``inside(u, v)`` on unit-square coordinates (open domain)."""

TRAIN_GEOMETRIES = ("square", "lshape", "hole")
"""Default training geometries; ``disk`` and ``ushape`` are left for transfer."""


# ----------------------------------------------------------------- geometry
def _check_grid(grid, argument: str = "grid") -> Grid:
    if not isinstance(grid, Grid):
        raise InvalidArgumentError(argument, "an opflow.Grid", grid)
    if grid.ndim != 2 or any(p for p in grid.periodic) or \
            not all(a.is_uniform for a in grid.axes):
        raise GridMismatchError(argument, "a uniform, non-periodic 2-D grid", grid)
    return grid


def unit_grid(resolution: int) -> Grid:
    """The ``resolution x resolution`` grid on ``[0, 1]^2`` (axes ``x``, ``y``)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 5:
        raise InvalidArgumentError("resolution", "an integer number of grid points >= 5",
                                   resolution)
    return Grid.uniform(x=(0.0, 1.0, resolution), y=(0.0, 1.0, resolution))


def _unit_mesh(grid: Grid, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    (x0, x1), (y0, y1) = grid.bounds
    x, y = grid.mesh(dtype=dtype)
    return (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)


def _geometry_name(name) -> str:
    if not isinstance(name, str) or name not in GEOMETRIES:
        raise UnknownVariableError("geometry", str(name), sorted(GEOMETRIES))
    return name


def geometry_mask(name: str, grid: Grid) -> Field:
    """Boolean mask of a named geometry: ``True`` strictly inside the domain.

    Parameters
    ----------
    name : str
        A key of :data:`GEOMETRIES`.
    grid : Grid
        A uniform 2-D grid; the geometry is scaled to its bounding box.

    Returns
    -------
    Field
        Bool values of shape ``(1, *grid.shape)``, channel ``"mask"``.
    """
    inside = GEOMETRIES[_geometry_name(name)](*_unit_mesh(_check_grid(grid)))
    return Field(inside[None], grid, names="mask")


# ------------------------------------------------------------------ sources
def monomials(degree: int) -> list[tuple[int, int]]:
    """Exponents ``(i, j)`` of ``s^i t^j`` with ``i + j <= degree``, by total degree."""
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= 8:
        raise InvalidArgumentError("degree", "an integer polynomial degree in [0, 8]", degree)
    return [(d - j, j) for d in range(degree + 1) for j in range(d + 1)]


def polynomial_basis(grid: Grid, degree: int, dtype=torch.float64,
                     device=None) -> torch.Tensor:
    """The monomials on ``grid``: tensor ``(K, *grid.shape)``, ``K = len(monomials(degree))``.

    ``s = 2x - 1`` and ``t = 2y - 1`` after scaling the grid to the unit square.
    """
    u, v = _unit_mesh(_check_grid(grid), torch.float64)
    s, t = 2 * u - 1, 2 * v - 1
    basis = torch.stack([s**i * t**j for i, j in monomials(degree)])
    return basis.to(dtype=dtype, device=device)


def polynomial_source(coeffs: torch.Tensor, grid: Grid, degree: int) -> Field:
    """``f = sum_k coeffs[..., k] * basis_k`` as a Field.

    Parameters
    ----------
    coeffs : torch.Tensor, shape (*batch, K)
        Coefficients in :func:`monomials` order.
    grid : Grid
    degree : int

    Returns
    -------
    Field, values of shape ``(*batch, 1, *grid.shape)``, channel ``"f"``.
    """
    n_coeffs = len(monomials(degree))
    if not isinstance(coeffs, torch.Tensor) or coeffs.ndim < 1 or \
            coeffs.shape[-1] != n_coeffs or not coeffs.is_floating_point():
        raise ShapeError("coeffs", f"a float tensor (*batch, {n_coeffs}) for degree {degree}",
                         coeffs)
    basis = polynomial_basis(grid, degree, coeffs.dtype, coeffs.device)
    f = torch.einsum("...k,kxy->...xy", coeffs, basis)
    return Field(f.unsqueeze(-3), grid, names="f")


def solve_poisson(f: Field, mask: Field, rtol: float = 1e-10) -> Field:
    """``-Laplacian u = f`` in the mask, ``u = 0`` elsewhere, by multigrid (float64).

    Parameters
    ----------
    f : Field, values of shape (*batch, 1, *grid.shape)
    mask : Field of bool, values of shape (*batch, 1, *grid.shape)
        Batch dimensions broadcast with those of ``f``.
    rtol : float
        Relative residual of every sample.

    Returns
    -------
    Field named ``"u"``, float64, of the broadcast batch shape.

    Raises
    ------
    RuntimeError
        The solver did not reach ``rtol``.
    """
    from ..solve import solve
    from ..solvers.pde import Multigrid, PoissonProblem

    f64 = f.with_values(f.values.to(torch.float64))
    sol = solve(PoissonProblem(f64, bc="dirichlet", mask=mask), Multigrid(rtol=rtol))
    if not sol.success:
        raise RuntimeError(f"multigrid did not converge: {sol.retcode}")
    return sol.u.with_values(sol.u.values, names="u", attrs={})


# ------------------------------------------------------------------- recipe
def _geometry_list(geometries) -> list[str]:
    if isinstance(geometries, str):
        geometries = [g.strip() for g in geometries.split(",") if g.strip()]
    try:
        names = list(geometries)
    except TypeError:
        raise InvalidArgumentError("geometries", "geometry names (a list or 'a,b,c')",
                                   geometries) from None
    if not names:
        raise InvalidArgumentError("geometries", "at least one geometry name", geometries)
    return [_geometry_name(g) for g in names]


def multitask_recipe(indices, resolution: int, seed: int,
                     geometries: str | Sequence[str] = ",".join(TRAIN_GEOMETRIES),
                     degree: int = 2, rtol: float = 1e-10) -> xr.Dataset:
    """Recipe ``multitask`` of :func:`opflow.data.generate`: samples ``indices``.

    Sample ``i`` lies on geometry ``geometries[i % len(geometries)]`` and draws
    its coefficients from :func:`~opflow.data.generation.sample_seed` ``(seed, i)``,
    so the data do not depend on the chunking.

    Parameters
    ----------
    indices : iterable of int
    resolution : int
        Grid points per axis on ``[0, 1]^2``.
    seed : int
    geometries : str or sequence of str
        Names from :data:`GEOMETRIES` (a comma-separated string on the
        command line).
    degree : int
        Total degree of the polynomial source.
    rtol : float
        Multigrid tolerance.
    """
    names = _geometry_list(geometries)
    n_coeffs = len(monomials(degree))
    grid = unit_grid(resolution)
    indices = list(indices)
    coeffs = torch.stack([torch.randn(n_coeffs, dtype=torch.float64,
                                      generator=torch.Generator().manual_seed(sample_seed(seed, i)))
                          for i in indices])
    geo = [names[i % len(names)] for i in indices]
    masks = {g: geometry_mask(g, grid).values for g in set(geo)}
    mask = Field(torch.stack([masks[g] for g in geo]), grid, names="mask")
    f = polynomial_source(coeffs, grid, degree)
    u = solve_poisson(f, mask, rtol)
    ds = _dataset({"mask": mask, "f": f.with_values(f.values.float()),
                   "u": u.with_values(u.values.float())}, indices)
    labels = [f"s{i}t{j}" for i, j in monomials(degree)]
    ds["coeffs"] = xr.DataArray(coeffs.float().numpy(), dims=("sample", "coef"),
                                coords={"coef": labels},
                                attrs={"long_name": "source coefficients of s^i t^j, "
                                       "s = 2x - 1, t = 2y - 1"})
    ds["geometry"] = xr.DataArray(np.array(geo, dtype=object), dims=("sample",))
    ds.attrs.update({"multitask_degree": degree, "multitask_geometries": ",".join(names)})
    return ds


def _geometries_ok(value) -> bool:
    try:
        _geometry_list(value)
    except OpflowError:
        return False
    return True


RECIPES.setdefault("multitask", Recipe(
    "multitask", multitask_recipe, 33,
    "Poisson, polynomial sources, several geometries (masks)",
    {"geometries": Option(f"geometry names from {sorted(GEOMETRIES)} (a list or 'a,b,c')",
                          _geometries_ok),
     "degree": NON_NEGATIVE_INT, "rtol": POSITIVE},
    lambda res, opts: 3 * res**2))  # mask, f, u (coefficients and geometry are small)


def generate_multitask(n: int, resolution: int = 33, seed: int = 0,
                       out: str | os.PathLike | None = None, chunk: int = 64,
                       geometries: str | Sequence[str] = TRAIN_GEOMETRIES, degree: int = 2,
                       rtol: float = 1e-10, progress: bool | str = True) -> xr.Dataset:
    """``n`` samples of the multi-task set (``opflow generate multitask``).

    Runs :func:`opflow.data.generate` with the ``multitask`` recipe: with
    ``out``, finished chunks are kept beside the file so an interrupted run
    resumes, and the netCDF file appears atomically when complete.

    Parameters
    ----------
    n : int
        Samples in all, cycling through ``geometries``.
    resolution, seed, out, chunk, progress
        As in :func:`opflow.data.generate`.
    geometries : str or sequence of str
        Names from :data:`GEOMETRIES`.
    degree : int
        Polynomial degree of the source.
    rtol : float
        Multigrid tolerance.

    Returns
    -------
    xarray.Dataset
        See the module notes (opened from ``out`` when given).
    """
    names = _geometry_list(geometries)
    monomials(degree)  # validate before any work
    return generate("multitask", n=n, resolution=resolution, seed=seed, out=out, chunk=chunk,
                    progress=progress, geometries=",".join(names), degree=degree, rtol=rtol)


# ---------------------------------------------------------------- in memory
@dataclass(frozen=True)
class MultiTaskData:
    """A multi-task set in memory (all samples on one grid).

    The parameters are also the attributes of the same names.

    Parameters
    ----------
    mask : Field, bool, shape (N, 1, nx, ny)
        ``True`` strictly inside each sample's domain (channel ``"mask"``).
    coeffs : torch.Tensor, shape (N, K)
        Source coefficients (:func:`monomials` order); not a Field, since
        they are not a function on the grid.
    f : Field, shape (N, 1, nx, ny)
        The source on the whole square.
    u : Field, shape (N, 1, nx, ny)
        The solution (0 outside the domain).
    geometry : tuple of str, length N
        Geometry name of each sample.
    degree : int
        Polynomial degree of the source.
    """

    mask: Field
    coeffs: torch.Tensor
    f: Field
    u: Field
    geometry: tuple[str, ...]
    degree: int

    def __post_init__(self):
        n = self.u.batch_shape[0] if self.u.batch_shape else -1
        grid = self.u.grid
        for name in ("mask", "f"):
            fld = getattr(self, name)
            if fld.grid != grid:
                raise GridMismatchError(name, f"a Field on the grid of u ({grid})", fld.grid)
            if tuple(fld.shape) != (n, 1, *grid.shape):
                raise ShapeError(name, f"shape {(n, 1, *grid.shape)}", fld.values)
        if self.mask.dtype != torch.bool:
            raise InvalidArgumentError("mask", "a boolean Field", self.mask.dtype)
        k = len(monomials(self.degree))
        if tuple(self.coeffs.shape) != (n, k):
            raise ShapeError("coeffs", f"shape ({n}, {k})", self.coeffs)
        if len(self.geometry) != n:
            raise ShapeError("geometry", f"{n} names", f"{len(self.geometry)} names")

    def __len__(self) -> int:
        return len(self.geometry)

    @property
    def grid(self) -> Grid:
        return self.u.grid

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, dtype: torch.dtype = torch.float32) -> "MultiTaskData":
        """From a Dataset made by :func:`multitask_recipe` (or read from its file).

        Parameters
        ----------
        ds : xarray.Dataset
            Made by the multi-task recipe (``opflow generate multitask``) or read from its file.
        dtype : torch.dtype
            Of the tensors.

        Returns
        -------
        MultiTaskData
        """
        missing = [v for v in ("mask", "f", "u", "coeffs", "geometry") if v not in ds]
        if missing:
            raise UnknownVariableError("ds", missing[0], list(ds.data_vars))
        degree = int(ds.attrs.get("multitask_degree", -1))
        if degree < 0:
            k = ds.sizes["coef"]
            degree = next((d for d in range(9) if len(monomials(d)) == k), -1)
            if degree < 0:
                raise InvalidArgumentError("ds", "a multitask data set (coef of size "
                                           "(d+1)(d+2)/2)", f"{k} coefficients")
        fields = {name: Field.from_xarray(ds, names=[name], grid_dims=("x", "y"))
                  for name in ("mask", "f", "u")}
        mask = fields["mask"]
        mask = mask.with_values(mask.values.to(torch.bool), names="mask")
        f = fields["f"].with_values(fields["f"].values.to(dtype), names="f")
        u = fields["u"].with_values(fields["u"].values.to(dtype), names="u", attrs={})
        coeffs = torch.as_tensor(np.asarray(ds["coeffs"].transpose("sample", "coef").values),
                                 dtype=dtype)
        geometry = tuple(str(g) for g in np.asarray(ds["geometry"].values))
        return cls(mask, coeffs, f, u, geometry, degree)

    def subset(self, index) -> "MultiTaskData":
        """Samples ``index`` (a slice, a list of ints or a bool/int tensor).

        Parameters
        ----------
        index : slice, list of int or torch.Tensor
            Which samples (a bool or int tensor).

        Returns
        -------
        MultiTaskData
        """
        if isinstance(index, slice):
            idx = torch.arange(len(self))[index]
        else:
            idx = torch.as_tensor(index)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().reshape(-1)
            if idx.ndim != 1 or (idx.numel() and (idx.min() < -len(self)
                                                  or idx.max() >= len(self))):
                raise InvalidArgumentError("index", f"sample indices in [0, {len(self)})",
                                           index)
        take = idx.tolist()
        return MultiTaskData(self.mask[idx], self.coeffs[idx], self.f[idx], self.u[idx],
                             tuple(self.geometry[i] for i in take), self.degree)

    def select(self, geometry: str) -> "MultiTaskData":
        """The samples on one geometry.

        Parameters
        ----------
        geometry : str
            One of the data's geometries.

        Returns
        -------
        MultiTaskData
        """
        name = _geometry_name(geometry)
        if name not in self.geometry:
            raise UnknownVariableError("geometry", name, sorted(set(self.geometry)))
        return self.subset([i for i, g in enumerate(self.geometry) if g == name])

    def pairs(self) -> tuple[Field, Field]:
        """``(input, target)`` Fields for :class:`~opflow.train.Trainer` and
        :class:`~opflow.operators.MultiTaskDeepONet`.

        Returns
        -------
        input : Field, shape (N, 2, nx, ny), channels ``("mask", "f")``
            The mask as 0/1 in the sample's float dtype.
        target : Field, shape (N, 2, nx, ny), channels ``("u", "mask")``
            The mask rides along so that a masked loss sees it.
        """
        m = self.mask.values.to(self.u.dtype)
        inp = Field(torch.cat([m, self.f.values], 1), self.grid, names=("mask", "f"))
        tgt = Field(torch.cat([self.u.values, m], 1), self.grid, names=("u", "mask"))
        return inp, tgt


def load_multitask(path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> MultiTaskData:
    """Read a multi-task netCDF file into a :class:`MultiTaskData`.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`generate_multitask` (or ``opflow generate multitask``).
    dtype : torch.dtype
        Of the tensors.

    Returns
    -------
    MultiTaskData
    """
    from ..io import open_dataset

    with open_dataset(path) as ds:
        return MultiTaskData.from_dataset(ds.load(), dtype=dtype)
