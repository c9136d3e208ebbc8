"""A domain given by a boolean mask on a :class:`~opflow.Grid`.

Each grid point stands for the cell around it (edges halfway between
neighbouring coordinates, half a spacing beyond the first and last), and the
domain is the union of the masked cells. Interior points pick a masked cell
(with probability proportional to its volume) and a uniform position inside
it; boundary points lie on the faces between a masked cell and an unmasked
one (or the outside of the grid), picked in proportion to the face area.
Periodic axes are treated like the others: the grid's edge is a boundary.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ...errors import InvalidArgumentError, ShapeError
from ...field import Field
from ...grid import Grid
from .domains import Domain
from .sampling import check_count, sample_unit

__all__ = ["MaskDomain"]


def _edges(coords: np.ndarray) -> np.ndarray:
    """Cell edges, shape (n + 1,), around the points ``coords``."""
    mid = 0.5 * (coords[1:] + coords[:-1])
    return np.concatenate([[coords[0] - (mid[0] - coords[0])], mid,
                           [coords[-1] + (coords[-1] - mid[-1])]])


def _as_mask(mask: Field | torch.Tensor | np.ndarray, grid: Grid) -> np.ndarray:
    if isinstance(mask, Field):
        if mask.grid != grid:
            raise InvalidArgumentError("mask", "a Field on the given grid", mask.grid)
        values = mask.values.detach()
        if values.shape != (1, *grid.shape):
            raise ShapeError("mask", f"a one-channel Field of shape (1, {grid.shape})", values)
        values = values[0]
    else:
        values = torch.as_tensor(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask
    if tuple(values.shape) != grid.shape:
        raise ShapeError("mask", f"a boolean array of the grid's shape {grid.shape}", values)
    out = values.detach().cpu().numpy().astype(bool)
    if not out.any():
        raise InvalidArgumentError("mask", "at least one True cell", "an all-False mask")
    return out


class MaskDomain(Domain):
    """Union of the grid cells where ``mask`` is true.

    Parameters
    ----------
    grid : Grid
        Any number of axes; the axis names become the domain's ``names``.
    mask : Field (one channel), torch.Tensor or numpy.ndarray, shape ``grid.shape``
        True (non-zero) inside the domain.

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 32), y=(0.0, 1.0, 32))
    >>> x, y = g.mesh()
    >>> L = MaskDomain(g, ~((x > 0.5) & (y > 0.5)))  # an L-shaped domain
    """

    def __init__(self, grid: Grid, mask: Field | torch.Tensor | np.ndarray):
        if not isinstance(grid, Grid):
            raise InvalidArgumentError("grid", "an opflow.Grid", grid)
        self.grid = grid
        self.mask = _as_mask(mask, grid)
        self.names = tuple(grid.names)
        self.edges = [_edges(a.coords) for a in grid.axes]
        widths = np.meshgrid(*[np.diff(e) for e in self.edges], indexing="ij")
        self._cells = np.argwhere(self.mask)  # (n_cells, dim) indices
        vol = np.prod([w[self.mask] for w in widths], axis=0)
        self._cell_cdf = np.cumsum(vol) / vol.sum()
        self._faces, self._face_cdf = self._boundary_faces()

    def _boundary_faces(self) -> tuple[np.ndarray, np.ndarray]:
        """Boundary faces as rows ``(cell index..., axis, side)`` and their area CDF."""
        faces, areas = [], []
        padded = np.pad(self.mask, 1, constant_values=False)
        widths = [np.diff(e) for e in self.edges]
        for axis in range(self.dim):
            for side in (0, 1):
                shift = np.roll(padded, -1 if side else 1, axis=axis)
                inner = tuple(slice(1, -1) for _ in range(self.dim))
                open_face = self.mask & ~shift[inner]
                idx = np.argwhere(open_face)
                if not len(idx):
                    continue
                area = np.ones(len(idx))
                for j in range(self.dim):
                    if j != axis:
                        area *= widths[j][idx[:, j]]
                faces.append(np.column_stack([idx, np.full(len(idx), axis),
                                              np.full(len(idx), side)]))
                areas.append(area)
        faces_arr = np.concatenate(faces)
        area = np.concatenate(areas)
        return faces_arr, np.cumsum(area) / area.sum()

    def __repr__(self) -> str:
        return f"MaskDomain(names={self.names}, cells={len(self._cells)}/{self.mask.size})"

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        return {n: (float(e[0]), float(e[-1])) for n, e in zip(self.names, self.edges)}

    @property
    def volume(self) -> float:
        """Total volume (area, length) of the masked cells."""
        widths = np.meshgrid(*[np.diff(e) for e in self.edges], indexing="ij")
        return float(np.prod([w[self.mask] for w in widths], axis=0).sum())

    def _pick(self, cdf: np.ndarray, s: torch.Tensor) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, s.double().numpy(), side="right"), len(cdf) - 1)

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        check_count(n)
        s = sample_unit(n, self.dim + 1, method, seed)
        cells = self._cells[self._pick(self._cell_cdf, s[:, 0])]
        out = np.empty((n, self.dim))
        for i, e in enumerate(self.edges):
            lo, hi = e[cells[:, i]], e[cells[:, i] + 1]
            out[:, i] = lo + (hi - lo) * s[:, i + 1].double().numpy()
        return torch.as_tensor(out, dtype=s.dtype)

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        self.boundary_parts(on)  # a mask boundary has no named parts
        check_count(n)
        s = sample_unit(n, self.dim + 1, method, seed)
        faces = self._faces[self._pick(self._face_cdf, s[:, 0])]
        out = np.empty((n, self.dim))
        for i, e in enumerate(self.edges):
            lo, hi = e[faces[:, i]], e[faces[:, i] + 1]
            along = lo + (hi - lo) * s[:, i + 1].double().numpy()
            on_face = np.where(faces[:, -1] == 1, hi, lo)
            out[:, i] = np.where(faces[:, self.dim] == i, on_face, along)
        return torch.as_tensor(out, dtype=s.dtype)

    def _cell_of(self, pts: np.ndarray, axis: int) -> np.ndarray:
        """Cell index along ``axis`` (may be -1 or n: outside the grid)."""
        return np.searchsorted(self.edges[axis], pts[:, axis], side="right") - 1

    def _masked(self, idx: np.ndarray) -> np.ndarray:
        """``mask`` at integer cell indices ``(m, dim)``, False outside the grid."""
        shape = np.array(self.mask.shape)
        inside = ((idx >= 0) & (idx < shape)).all(axis=1)
        out = np.zeros(len(idx), dtype=bool)
        out[inside] = self.mask[tuple(idx[inside].T)]
        return out

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        """Points in a masked cell, or within ``tol`` (per axis) of one.

        Parameters
        ----------
        points : torch.Tensor, shape (n, dim)
            Columns ordered as ``names``.
        tol : float
            Distance (per axis) within which a point still counts as inside.

        Returns
        -------
        torch.Tensor of bool, shape (n,)
        """
        pts = points.detach().double().cpu().numpy()
        hit = np.zeros(len(pts), dtype=bool)
        for offset in np.ndindex(*([3] * self.dim)):  # the point nudged by -tol, 0, +tol
            moved = pts + (np.array(offset) - 1) * tol
            idx = np.stack([self._cell_of(moved, i) for i in range(self.dim)], axis=1)
            hit |= self._masked(idx)
        return torch.as_tensor(hit)

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """Outward normals at boundary points: along the axis of the face they lie on
        (the nearest cell edge between a masked and an unmasked cell).

        Parameters
        ----------
        points : torch.Tensor, shape (n, dim)
            Points on the boundary.

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        pts = points.detach().double().cpu().numpy()
        best = np.full(len(pts), math.inf)
        out = np.zeros_like(pts)
        centre = np.stack([self._cell_of(pts, i) for i in range(self.dim)], axis=1)
        for axis, e in enumerate(self.edges):
            k = np.clip(np.searchsorted(e, pts[:, axis]), 1, len(e) - 1)
            k = np.where(np.abs(e[k - 1] - pts[:, axis]) < np.abs(e[k] - pts[:, axis]), k - 1, k)
            dist = np.abs(e[k] - pts[:, axis])
            below, above = centre.copy(), centre.copy()
            below[:, axis], above[:, axis] = k - 1, k
            m_lo, m_hi = self._masked(below), self._masked(above)
            face = (m_lo != m_hi) & (dist < best)
            out[face] = 0.0
            out[face, axis] = np.where(m_lo[face], 1.0, -1.0)
            best = np.where(face, dist, best)
        return torch.as_tensor(out, dtype=points.dtype)
