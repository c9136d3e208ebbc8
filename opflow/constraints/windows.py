"""Each expert's block of a grid plus a halo: where an expert's residual is evaluated.

An expert of PI-HC-MoE fits its weights to residual rows inside its own
block. A finite-difference residual at a node reads only the nodes within
the stencil's reach, so evaluating it on the block plus ``halo`` nodes on
each side gives the same rows as evaluating it on the whole grid, at a
fraction of the cost (``K`` experts then cost about one whole-grid
evaluation instead of ``K``). All experts get windows of one shape, so
they are evaluated together as one batch: a window that would stick out of
a bounded axis is shifted inside it; on a periodic axis it wraps around.

The windows are exact only for stencils that reach at most ``halo`` nodes:
spectral derivatives on a periodic axis reach every node, and so do
residuals that mix nodes in other ways. :class:`HardConstraint` checks the
rows once per grid and falls back to whole-grid evaluation if they differ.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch

from ..grid import Axis, Grid
from .partition import Partition

__all__ = ["ExpertWindows"]


def _axis_windows(n: int, edges: tuple[int, ...], halo: int | None, periodic: bool
                  ) -> tuple[list[torch.Tensor], int]:
    """Node indices of each block's window along one axis (all of one length)."""
    if halo is None:
        return [torch.arange(n)] * (len(edges) - 1), n
    length = max(b - a for a, b in zip(edges, edges[1:])) + 2 * halo
    if length >= n:
        return [torch.arange(n)] * (len(edges) - 1), n
    out = []
    for start in edges[:-1]:
        first = start - halo
        if not periodic:
            first = min(max(first, 0), n - length)
        out.append(torch.arange(first, first + length))  # wrapped below when periodic
    return out, length


class ExpertWindows:
    """The windows (block plus halo) of every expert of a partition on a grid.

    Parameters
    ----------
    grid : Grid
        The whole grid (uniform spacing on the split axes).
    partition : Partition or None
        The experts' blocks; None: one expert whose window is the grid.
    halo : int or None
        Nodes added on each side of a block along each split axis (at least
        the reach of the residual's stencils); None: every window is the
        whole grid.

    Attributes
    ----------
    grid : Grid
        The grid of one window: the whole axis where a window spans it,
        otherwise a bounded axis of the window's length with the grid's
        spacing. Derivatives taken on it are those of every window.
    index : torch.Tensor, int64, shape (K, window nodes)
        Flat (row-major) index into the whole grid of each window node.
    nodes : torch.Tensor, float64, shape (K, window nodes, ndim)
        Coordinates of the window nodes (continued past the period where a
        window wraps around a periodic axis).
    """

    def __init__(self, grid: Grid, partition: Partition | None, halo: int | None):
        edges = partition.edges(grid) if partition is not None else {}
        per_axis: list[list[torch.Tensor]] = []
        coords: list[list[np.ndarray]] = []
        axes = []
        for ax in grid.axes:
            n = ax.size
            if ax.name not in edges:
                per_axis.append([torch.arange(n)])
                coords.append([ax.coords])
                axes.append(ax)
                continue
            windows, length = _axis_windows(n, edges[ax.name], halo, ax.periodic)
            per_axis.append([w % n for w in windows])
            h = ax.spacing
            # unwrapped coordinates: a wrapped window continues past the period
            coords.append([ax.coords[0] + h * w.numpy().astype(np.float64) for w in windows]
                          if length < n else [ax.coords] * len(windows))
            if length >= n:
                axes.append(ax)
            else:
                c = ax.coords[0] + h * np.arange(length)
                axes.append(Axis(ax.name, c, False, (float(c[0]), float(c[-1])), ax.units))
        self.grid = Grid(axes)
        strides = [math.prod(grid.shape[i + 1:]) for i in range(grid.ndim)]
        index, nodes, first = [], [], []
        for combo in _row_major(tuple(len(w) for w in per_axis)):
            first.append(sum(edges[ax.name][j] * s if ax.name in edges else 0
                             for ax, j, s in zip(grid.axes, combo, strides)))
            parts = [per_axis[i][j] for i, j in enumerate(combo)]
            mesh = torch.meshgrid(*parts, indexing="ij")
            flat = torch.zeros(mesh[0].shape, dtype=torch.int64)
            for m, s in zip(mesh, strides):
                flat = flat + m * s
            index.append(flat.reshape(-1))
            cmesh = torch.meshgrid(*[torch.tensor(coords[i][j], dtype=torch.float64)
                                     for i, j in enumerate(combo)], indexing="ij")
            nodes.append(torch.stack([m.reshape(-1) for m in cmesh], dim=1))
        # the partition numbers its experts row-major in its own axis order: sort to it
        labels = (partition.labels(grid).reshape(-1) if partition is not None
                  else torch.zeros(grid.size, dtype=torch.int64))
        order = sorted(range(len(index)), key=lambda k: int(labels[first[k]]))
        self.index = torch.stack([index[k] for k in order])
        self.nodes = torch.stack([nodes[k] for k in order])

    def subset(self, experts: Sequence[int]) -> "ExpertWindows":
        """The windows of ``experts`` only (same window grid), in that order.

        Parameters
        ----------
        experts : sequence of int
            Expert numbers.

        Returns
        -------
        ExpertWindows
        """
        out = copy.copy(self)
        keep = torch.as_tensor(list(experts), dtype=torch.int64)
        out.index, out.nodes = self.index[keep], self.nodes[keep]
        return out

    @property
    def n_experts(self) -> int:
        """Experts (windows)."""
        return int(self.index.shape[0])

    @property
    def is_whole_grid(self) -> bool:
        """True when every window is the whole grid (no saving, nothing to check)."""
        return self.index.shape[1] == int(self.index.max()) + 1 and bool(
            (self.index == torch.arange(self.index.shape[1])).all())

    def local(self, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Flat grid indices of each expert's rows as positions in its window.

        Parameters
        ----------
        rows : list of K torch.Tensor (int64)
            Flat indices into the whole grid, inside expert ``k``'s block.

        Returns
        -------
        list of K torch.Tensor (int64)
        """
        out = []
        for k, r in enumerate(rows):
            where = torch.full((int(self.index.max()) + 1,), -1, dtype=torch.int64)
            where[self.index[k]] = torch.arange(self.index.shape[1])
            pos = where[r]
            if bool((pos < 0).any()):
                raise RuntimeError(f"ExpertWindows: a row of expert {k} lies outside its window")
            out.append(pos)
        return out


def _row_major(sizes: tuple[int, ...]):
    """Every index tuple of ``sizes`` in row-major order (as the partition numbers experts)."""
    if not sizes:
        yield ()
        return
    for i in range(sizes[0]):
        for rest in _row_major(sizes[1:]):
            yield (i, *rest)
