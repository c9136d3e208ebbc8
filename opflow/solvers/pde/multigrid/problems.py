"""Elliptic boundary value problems: Poisson and Darcy flow on a structured Grid.

Both problems are frozen dataclasses validated on construction. Their data
are :class:`~opflow.Field` objects in the usual layout ``(*batch, 1,
*grid.shape)``; the batch dimensions of the coefficient, the forcing and the
mask broadcast against each other and index independent samples.

Boundary conditions
-------------------
``bc`` applies on every **non-periodic** axis of the grid (periodic axes
always wrap around):

* ``"dirichlet"``: ``u = bc_value`` on the boundary nodes (the first and last
  node of every non-periodic axis: the grid is vertex-centred, so the
  boundary is made of grid nodes);
* ``"neumann"``: zero normal flux ``a du/dn = 0``. Without a mask the problem
  is singular (``u`` plus a constant is also a solution, and the forcing must
  have zero mean): see :mod:`opflow.solvers.pde.multigrid.solver` for how the
  solver picks the solution;
* ``"periodic"``: for grids whose axes are all periodic (same singularity).

``mask`` (optional, boolean, ``True`` inside the domain) describes irregular
geometries: nodes outside the mask are Dirichlet nodes fixed to 0.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ....errors import GridMismatchError, InvalidArgumentError, ShapeError
from ....field import Field
from ....grid import Grid

__all__ = ["PoissonProblem", "DarcyProblem", "BOUNDARY_CONDITIONS"]

BOUNDARY_CONDITIONS = ("dirichlet", "neumann", "periodic")


def _check_scalar_field(name: str, value, grid: Optional[Grid]) -> Field:
    """A one-channel floating-point Field with finite values on ``grid``."""
    if not isinstance(value, Field):
        raise InvalidArgumentError(name, "an opflow.Field of shape (*batch, 1, *grid.shape)", value)
    if grid is not None and value.grid != grid:
        raise GridMismatchError(name, f"a Field on the same grid as coeff ({grid})", value.grid)
    if value.channels != 1:
        raise ShapeError(name, "one channel: values of shape (*batch, 1, *grid.shape)",
                         value.values)
    if not value.values.is_floating_point():
        raise InvalidArgumentError(name, "floating-point values", value.values)
    if not bool(torch.isfinite(value.values.detach()).all()):
        raise InvalidArgumentError(name, "finite values (no NaN or Inf)", value.values)
    return value


def _check_grid(name: str, grid: Grid) -> None:
    if not 1 <= grid.ndim <= 3:
        raise InvalidArgumentError(name, "a Field on a 1-, 2- or 3-D grid", grid)
    for axis in grid.axes:
        if not axis.is_uniform:
            raise InvalidArgumentError(name, f"a uniform grid (axis {axis.name!r} is not)", grid)


def _check_bc(bc: str, bc_value, grid: Grid) -> float:
    if bc not in BOUNDARY_CONDITIONS:
        raise InvalidArgumentError("bc", f"one of {BOUNDARY_CONDITIONS}", bc)
    all_periodic = all(grid.periodic)
    if bc == "periodic" and not all_periodic:
        raise InvalidArgumentError(
            "bc", "'periodic' only on a grid whose axes are all periodic "
            "(make them periodic with Grid.uniform(..., periodic=...), or use "
            "'dirichlet'/'neumann' for the non-periodic axes)", bc)
    if bc != "periodic" and all_periodic:
        raise InvalidArgumentError(
            "bc", "'periodic' for a grid whose axes are all periodic (it has no boundary)", bc)
    if isinstance(bc_value, bool) or not isinstance(bc_value, numbers.Real):
        raise InvalidArgumentError("bc_value", "a real number", bc_value)
    bc_value = float(bc_value)
    if not math.isfinite(bc_value):
        raise InvalidArgumentError("bc_value", "a finite number", bc_value)
    if bc != "dirichlet" and bc_value != 0.0:
        raise InvalidArgumentError(
            "bc_value", f"0.0 with bc={bc!r} (only zero-flux Neumann conditions are supported)",
            bc_value)
    return bc_value


def _broadcast_batch(fields: list[tuple[str, Field]]) -> torch.Size:
    shape = torch.Size([])
    for name, fld in fields:
        try:
            shape = torch.broadcast_shapes(shape, fld.batch_shape)
        except RuntimeError:
            raise ShapeError(
                name, f"batch dimensions that broadcast with {tuple(shape)}", fld.values
            ) from None
    return shape


def _check_devices(fields: list[tuple[str, Field]]) -> None:
    device = fields[0][1].device
    for name, fld in fields[1:]:
        if fld.device != device:
            raise InvalidArgumentError(name, f"a Field on device {device}", fld.device)


def _check_mask(mask, grid: Grid) -> Optional[Field]:
    if mask is None:
        return None
    if not isinstance(mask, Field):
        raise InvalidArgumentError("mask", "None or a boolean opflow.Field (True = inside)", mask)
    if mask.grid != grid:
        raise GridMismatchError("mask", f"a Field on the problem's grid ({grid})", mask.grid)
    if mask.channels != 1:
        raise ShapeError("mask", "one channel: values of shape (*batch, 1, *grid.shape)",
                         mask.values)
    if mask.values.dtype != torch.bool:
        raise InvalidArgumentError("mask", "boolean values (True = inside the domain)",
                                   mask.values)
    return mask


def free_nodes(grid: Grid, bc: str, mask: Optional[Field]) -> torch.Tensor:
    """Boolean tensor ``(*mask_batch, 1, *grid.shape)`` of the unknown nodes.

    A node is free unless it is a boundary node of a non-periodic axis under
    Dirichlet conditions or lies outside the mask.
    """
    device = mask.device if mask is not None else None
    free = torch.ones((1,) + grid.shape, dtype=torch.bool, device=device)
    if bc == "dirichlet":
        for d, periodic in enumerate(grid.periodic):
            if not periodic:
                dim = d - grid.ndim
                free.narrow(dim, 0, 1).fill_(False)
                free.narrow(dim, grid.shape[d] - 1, 1).fill_(False)
    if mask is not None:
        free = free & mask.values
    return free


def _check_free(grid: Grid, bc: str, mask: Optional[Field]) -> None:
    """A mask must leave interior nodes in every sample (and, with no Dirichlet
    boundary, either fix some node in every sample or none at all)."""
    if mask is None:
        return
    free = free_nodes(grid, bc, mask)
    dims = tuple(range(free.ndim - grid.ndim - 1, free.ndim))
    count = free.sum(dim=dims).reshape(-1)
    if bool((count == 0).any()):
        raise InvalidArgumentError(
            "mask", "a mask with at least one interior node (True and not on a Dirichlet "
            "boundary) in every sample", f"{int((count == 0).sum())} sample(s) with none")
    if bc != "dirichlet":
        outside = (~mask.values).sum(dim=dims).reshape(-1)
        if bool((outside > 0).any()) and bool((outside == 0).any()):
            raise InvalidArgumentError(
                "mask", f"with bc={bc!r}, either a False node in every sample (the masked "
                "domain then has a Dirichlet boundary) or none in any (a singular problem)",
                f"{int((outside == 0).sum())} all-True sample(s) out of {outside.numel()}")


class _EllipticProblem:
    """Shared properties of :class:`PoissonProblem` and :class:`DarcyProblem`."""

    forcing: Union[Field, float]
    bc: str
    bc_value: float
    mask: Optional[Field]

    @property
    def grid(self) -> Grid:
        return self._grid  # type: ignore[attr-defined]

    @property
    def batch_shape(self) -> torch.Size:
        """Broadcast batch shape of coefficient, forcing and mask."""
        return self._batch_shape  # type: ignore[attr-defined]

    @property
    def axis_kinds(self) -> tuple[str, ...]:
        """Per axis: ``"P"`` (periodic), ``"D"`` (Dirichlet) or ``"N"`` (Neumann)."""
        side = "D" if self.bc == "dirichlet" else "N"
        return tuple("P" if p else side for p in self.grid.periodic)

    @property
    def singular(self) -> bool:
        """True when no node is fixed: the solution is unique up to a constant."""
        if self.bc == "dirichlet":
            return False
        return self.mask is None or bool(self.mask.values.all())

    def _finish(self, coeff: Optional[Field]) -> None:
        base = coeff if coeff is not None else self.forcing
        grid = base.grid  # type: ignore[union-attr]  # a Field here
        fields = [] if coeff is None else [("coeff", coeff)]
        if isinstance(self.forcing, Field):
            _check_scalar_field("forcing", self.forcing, grid)
            fields.append(("forcing", self.forcing))
        elif isinstance(self.forcing, bool) or not isinstance(self.forcing, numbers.Real) \
                or not math.isfinite(float(self.forcing)):
            raise InvalidArgumentError("forcing", "an opflow.Field or a finite number",
                                       self.forcing)
        else:
            object.__setattr__(self, "forcing", float(self.forcing))
        object.__setattr__(self, "bc_value", _check_bc(self.bc, self.bc_value, grid))
        mask = _check_mask(self.mask, grid)
        if mask is not None:
            fields.append(("mask", mask))
        _check_devices(fields)
        batch_shape = _broadcast_batch(fields)
        _check_free(grid, self.bc, mask)
        object.__setattr__(self, "_grid", grid)
        object.__setattr__(self, "_batch_shape", batch_shape)


@dataclass(frozen=True)
class PoissonProblem(_EllipticProblem):
    """``-Laplacian u = f`` on the forcing's grid.

    Parameters
    ----------
    forcing : Field, values of shape (*batch, 1, *grid.shape)
        Right-hand side ``f`` (1-, 2- or 3-D uniform grid). Its grid is the
        problem's grid; its batch dimensions index independent samples.
    bc : {"dirichlet", "neumann", "periodic"}
        Boundary condition on the non-periodic axes (see the module notes).
    bc_value : float
        Boundary value for ``"dirichlet"``; must be 0 otherwise.
    mask : Field of bool, values of shape (*batch, 1, *grid.shape), optional
        ``True`` inside the domain; nodes outside are fixed to 0.

    Examples
    --------
    >>> g = Grid.uniform(x=(0, 1, 65), y=(0, 1, 65))
    >>> x, y = g.mesh(torch.float64)
    >>> f = Field((2 * torch.pi**2 * torch.sin(torch.pi * x) * torch.sin(torch.pi * y))[None], g)
    >>> prob = PoissonProblem(f)
    """

    forcing: Field
    bc: str = "dirichlet"
    bc_value: float = 0.0
    mask: Optional[Field] = None

    def __post_init__(self):
        if not isinstance(self.forcing, Field):
            raise InvalidArgumentError(
                "forcing", "an opflow.Field (it defines the grid of a PoissonProblem)",
                self.forcing)
        _check_scalar_field("forcing", self.forcing, None)
        _check_grid("forcing", self.forcing.grid)
        self._finish(None)

    @property
    def coeff(self) -> None:
        """No coefficient: ``a = 1``."""
        return None


@dataclass(frozen=True)
class DarcyProblem(_EllipticProblem):
    """``-div(a grad u) = f`` (steady Darcy flow / variable-coefficient diffusion).

    Parameters
    ----------
    coeff : Field, values of shape (*batch, 1, *grid.shape)
        Positive coefficient ``a`` (permeability) at the grid nodes. Its grid
        is the problem's grid (1-, 2- or 3-D, uniform).
    forcing : Field or float
        Right-hand side ``f``: a Field on the same grid (batch dimensions
        broadcast with those of ``coeff``) or a constant.
    bc : {"dirichlet", "neumann", "periodic"}
        Boundary condition on the non-periodic axes (see the module notes).
    bc_value : float
        Boundary value for ``"dirichlet"``; must be 0 otherwise.
    mask : Field of bool, values of shape (*batch, 1, *grid.shape), optional
        ``True`` inside the domain; nodes outside are fixed to 0.

    Examples
    --------
    The standard Darcy benchmark (``a`` in {3, 12}, ``f = 1``, ``u = 0`` on
    the boundary of the unit square):

    >>> g = Grid.uniform(x=(0, 1, 129), y=(0, 1, 129))
    >>> a = Field(torch.where(torch.randn(8, 1, 129, 129) > 0, 12.0, 3.0), g)
    >>> prob = DarcyProblem(a, 1.0)
    """

    coeff: Field
    forcing: Union[Field, float] = 1.0
    bc: str = "dirichlet"
    bc_value: float = 0.0
    mask: Optional[Field] = None

    def __post_init__(self):
        _check_scalar_field("coeff", self.coeff, None)
        _check_grid("coeff", self.coeff.grid)
        if not bool((self.coeff.values.detach() > 0).all()):
            low = float(self.coeff.values.detach().min())
            raise InvalidArgumentError("coeff", "a positive coefficient (a > 0 everywhere)",
                                       f"a Field with minimum {low:g}")
        self._finish(self.coeff)
