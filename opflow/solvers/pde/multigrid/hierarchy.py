"""The grid hierarchy of a multigrid solve: level sizes, per-level operators,
smoother data and the dense direct solver on the coarsest level.

Sizes
-----
Each coarsening keeps every other node: a non-periodic (vertex-centred) axis
of ``n`` nodes needs ``n - 1`` even and gives ``(n - 1) / 2 + 1`` nodes (at
least 3); a periodic axis needs ``n`` even and gives ``n / 2`` (at least 2).
So ``n - 1 = m * 2**L`` gives ``L`` coarsenings down to ``m + 1`` nodes,
where a dense batched LU solve (``torch.linalg``) finishes the job: 65, 129,
257, 513 go down to a few nodes, 85 (``= 21 * 4 + 1``) to 22.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ....errors import InvalidArgumentError
from . import operators as ops

__all__ = ["Level", "Hierarchy", "plan_levels", "AUTO_COARSEST_NODES", "MAX_COARSEST_NODES"]

AUTO_COARSEST_NODES = 100
"""Automatic level choice: stop coarsening once a grid has at most this many nodes."""

MAX_COARSEST_NODES = 4096
"""Largest coarsest grid (in nodes) handed to the dense direct solver."""

SIZES_HELP = ("non-periodic axes with n - 1 = m * 2**L nodes (L >= 1, m >= 2: e.g. 17, 33, 65, "
              "129, 257, 513, or 85 = 21 * 4 + 1) and periodic axes with an even n >= 4")


def _can_coarsen(n: int, kind: str) -> bool:
    if kind == "P":
        return n % 2 == 0 and n // 2 >= 2
    return (n - 1) % 2 == 0 and (n - 1) // 2 >= 2


def _coarse(shape: Sequence[int], kinds: Sequence[str]) -> tuple[int, ...]:
    return tuple(n // 2 if k == "P" else (n - 1) // 2 + 1 for n, k in zip(shape, kinds))


def plan_levels(grid, kinds: Sequence[str], levels: Optional[int]) -> list[tuple[int, ...]]:
    """Shapes of the grids from finest to coarsest.

    Parameters
    ----------
    grid : Grid
        The finest grid.
    kinds : sequence of {"P", "N", "D"}
        Boundary kind per axis.
    levels : int or None
        Number of grids (at least 2); ``None`` coarsens while possible and
        while the grid has more than :data:`AUTO_COARSEST_NODES` nodes.

    Raises
    ------
    InvalidArgumentError
        ``grid`` when it cannot be coarsened at all or its coarsest grid is
        too large for the direct solve; ``levels`` when more levels are asked
        for than the grid allows, or too few for the direct solve.
    """
    shapes = [tuple(grid.shape)]
    stuck = [f"{a.name}: n = {a.size}{' (periodic)' if k == 'P' else ''}"
             for a, k in zip(grid.axes, kinds) if not _can_coarsen(a.size, k)]
    if stuck:
        raise InvalidArgumentError("grid", f"a grid that multigrid can coarsen: {SIZES_HELP}",
                                   f"{grid} ({'; '.join(stuck)})")

    def coarsenable(shape):
        return all(_can_coarsen(n, k) for n, k in zip(shape, kinds))

    if levels is None:
        while coarsenable(shapes[-1]) and math.prod(shapes[-1]) > AUTO_COARSEST_NODES:
            shapes.append(_coarse(shapes[-1], kinds))
        if math.prod(shapes[-1]) > MAX_COARSEST_NODES:
            raise InvalidArgumentError(
                "grid", f"a grid that coarsens to at most {MAX_COARSEST_NODES} nodes for the "
                f"dense coarsest solve: {SIZES_HELP}",
                f"{grid}, whose coarsest grid is {shapes[-1]}")
        return shapes
    for _ in range(levels - 1):
        if not coarsenable(shapes[-1]):
            raise InvalidArgumentError(
                "levels", f"at most {len(shapes)} levels for a grid of shape {shapes[0]} "
                f"(coarsest {shapes[-1]})", levels)
        shapes.append(_coarse(shapes[-1], kinds))
    if math.prod(shapes[-1]) > MAX_COARSEST_NODES:
        raise InvalidArgumentError(
            "levels", f"more levels: the coarsest grid {shapes[-1]} has more than "
            f"{MAX_COARSEST_NODES} nodes for the dense direct solve", levels)
    return shapes


@dataclass
class Level:
    """One grid of the hierarchy (tensors ``(batch or 1, *shape)``).

    Attributes
    ----------
    shape : tuple of int
    coef : list of torch.Tensor
        Face coefficients over ``h**2`` per axis (see :func:`operators.stencil`).
    diag : torch.Tensor
        Diagonal of the operator.
    free : torch.Tensor
        1 on unknown nodes, 0 on fixed ones (floating point).
    smooth_a, smooth_b : torch.Tensor
        Red-black: ``red * free / diag`` and ``black * free / diag``; Jacobi:
        ``w * free / diag`` (and ``smooth_b`` unused).
    """

    shape: tuple[int, ...]
    coef: list
    diag: torch.Tensor
    free: torch.Tensor
    smooth_a: torch.Tensor
    smooth_b: Optional[torch.Tensor]


class Hierarchy:
    """All levels of one multigrid solve, built once from the coefficient.

    Parameters
    ----------
    a : torch.Tensor, shape (Bc, *shape)
        Node coefficients (``Bc`` is 1 or the number of samples).
    free : torch.Tensor of bool, shape (Bm, *shape)
        Unknown nodes on the finest grid (``Bm`` is 1 or the number of samples).
    spacing : tuple of float
        Finest grid spacing per axis.
    kinds : tuple of {"P", "N", "D"}
    shapes : list of tuple
        From :func:`plan_levels`.
    smoother : {"rbgs", "jacobi"}
    jacobi_weight : float
    singular : bool
        No fixed node: the coarsest solve is bordered with the mean constraint.
    masked : bool
        The problem has a mask: coarse faces account for mask boundaries
        between coarse nodes (see :func:`operators.coarsen_faces`).
    """

    def __init__(self, a: torch.Tensor, free: torch.Tensor, spacing, kinds, shapes, smoother: str,
                 jacobi_weight: float, singular: bool, masked: bool = False):
        self.kinds = tuple(kinds)
        self.ndim = len(self.kinds)
        self.smoother = smoother
        self.singular = singular
        self.nfe = 0
        dtype, device = a.dtype, a.device
        self.weights = [ops.boundary_weights(s, self.kinds, dtype, device) for s in shapes]
        faces = ops.face_coefficients(a, self.kinds)
        free_l = free.to(dtype)
        h = tuple(spacing)
        self.levels: list[Level] = []
        for depth, shape in enumerate(shapes):
            if depth > 0:
                faces = ops.coarsen_faces(faces, self.kinds, free_l if masked else None)
                free_l = ops.inject(free_l, self.ndim)
                h = tuple(2 * hd for hd in h)
            coef, diag = ops.stencil(faces, h, self.kinds)
            inv = free_l / diag
            if smoother == "rbgs":
                red, black = ops.red_black(shape, dtype, device)
                sa, sb = red * inv, black * inv
            else:
                sa, sb = jacobi_weight * inv, None
            self.levels.append(Level(shape, coef, diag, free_l.contiguous(), sa, sb))
        self._factor_coarsest(shapes[-1])

    # ----------------------------------------------------------------- pieces
    @property
    def depth(self) -> int:
        return len(self.levels)

    def residual(self, level: int, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``free * (f - A u)`` on ``level``."""
        lv = self.levels[level]
        self.nfe += 1
        return ops.residual(u, f, lv.coef, lv.diag, self.kinds).mul_(lv.free)

    def smooth(self, level: int, u: torch.Tensor, f: torch.Tensor, sweeps: int,
               post: bool) -> None:
        """``sweeps`` smoothing sweeps in place (post-smoothing reverses the colours)."""
        if sweeps <= 0:
            return
        lv = self.levels[level]
        if self.smoother == "rbgs":
            first, second = (lv.smooth_b, lv.smooth_a) if post else (lv.smooth_a, lv.smooth_b)
            self.nfe += ops.rbgs(u, f, lv.coef, lv.diag, self.kinds, first, second, sweeps)
        else:
            self.nfe += ops.jacobi(u, f, lv.coef, lv.diag, self.kinds, lv.smooth_a, sweeps)

    def restrict(self, level: int, r: torch.Tensor) -> torch.Tensor:
        """Full-weighting restriction from ``level`` to ``level + 1`` (masked)."""
        return ops.restrict(r, self.kinds).mul_(self.levels[level + 1].free)

    def correct(self, level: int, u: torch.Tensor, e_coarse: torch.Tensor) -> None:
        """``u += free * P e_coarse`` in place on ``level``."""
        u.addcmul_(ops.prolong(e_coarse, self.kinds), self.levels[level].free)

    def project(self, level: int, u: torch.Tensor) -> torch.Tensor:
        """Remove the weighted mean (singular problems only; identity otherwise)."""
        if not self.singular:
            return u
        return u.sub_(ops.weighted_mean(u, self.weights[level]))

    # ---------------------------------------------------------- coarsest solve
    def _factor_coarsest(self, shape) -> None:
        lv = self.levels[-1]
        mat = ops.dense_operator(lv.coef, lv.diag, self.kinds, lv.free, shape)
        n = mat.shape[-1]
        if self.singular:
            # Bordered system [[A, 1], [w^T, 0]]: A x + mu 1 = r, w^T x = 0.
            border = mat.new_zeros(mat.shape[0], n + 1, n + 1)
            border[:, :n, :n] = mat
            border[:, :n, n] = 1
            border[:, n, :n] = self.weights[-1].reshape(-1)
            mat = border
        self._lu, self._pivots = torch.linalg.lu_factor(mat)
        self._coarse_size = n

    def coarse_solve(self, f: torch.Tensor) -> torch.Tensor:
        """Exact solve on the coarsest level: ``(B, *shape) -> (B, *shape)``."""
        self.nfe += 1
        batch, shape = f.shape[0], f.shape[1:]
        rhs = f.reshape(batch, -1)
        if self.singular:
            rhs = torch.cat([rhs, rhs.new_zeros(batch, 1)], dim=1)
        if self._lu.shape[0] == 1:
            x = torch.linalg.lu_solve(self._lu[0], self._pivots[0], rhs.T).T
        else:
            x = torch.linalg.lu_solve(self._lu, self._pivots, rhs.unsqueeze(-1)).squeeze(-1)
        return x[:, : self._coarse_size].reshape(batch, *shape).contiguous()
