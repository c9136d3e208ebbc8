"""Fixed partitions of a grid into subdomains, one per expert (PI-HC-MoE)."""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import torch

from ..errors import InvalidArgumentError
from ..grid import Grid

__all__ = ["Partition"]

Split = Union[int, Sequence[int]]


def _split(name: str, spec: Split) -> int | tuple[int, ...]:
    if isinstance(spec, bool):
        raise InvalidArgumentError("partition", f"a number of blocks or node edges for axis "
                                   f"{name!r}", spec)
    if isinstance(spec, int):
        if spec < 1:
            raise InvalidArgumentError("partition", f"at least one block along axis {name!r}",
                                       spec)
        return spec
    try:
        edges = tuple(spec)
    except TypeError:
        raise InvalidArgumentError("partition", f"a number of blocks or a sequence of node "
                                   f"edges for axis {name!r}", spec) from None
    if len(edges) < 2 or not all(isinstance(e, int) and not isinstance(e, bool) for e in edges):
        raise InvalidArgumentError("partition", f"at least two integer node edges for axis "
                                   f"{name!r}, e.g. (0, 8, 32)", spec)
    return edges


class Partition:
    """Split a grid into fixed, non-overlapping blocks: one expert per block.

    Along each named axis the nodes are cut into contiguous blocks, either a
    number of blocks of (nearly) equal size or explicit node edges; the
    experts are the products of the blocks of all the named axes, numbered
    row-major in the order the axes are given. Axes not named are not split.

    Parameters
    ----------
    splits : mapping of str to int or sequence of int, optional
        Per axis name: a number of blocks, or node edges ``(0, e_1, ...,
        n)`` (block ``j`` holds the nodes ``e_j <= i < e_{j+1}``; the edges
        must start at 0 and end at the axis size, so that the blocks cover
        the grid, and increase strictly, so that no block is empty).
    **axes : int or sequence of int
        The same, as keywords: ``Partition(x=4)``, ``Partition(x=2, y=2)``.

    Examples
    --------
    >>> from opflow import Grid
    >>> g = Grid.uniform(x=(0.0, 1.0, 8), t=(0.0, 1.0, 3))
    >>> Partition(x=4).labels(g)[:, 0].tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    >>> Partition(x=(0, 2, 8)).n_experts
    2
    """

    def __init__(self, splits: Mapping[str, Split] | None = None, **axes: Split):
        if splits is not None and not isinstance(splits, Mapping):
            raise InvalidArgumentError("partition", "a mapping {axis name: blocks}", splits)
        merged = dict(splits or {})
        merged.update(axes)
        if not merged:
            raise InvalidArgumentError("partition", "at least one axis to split, e.g. "
                                       "Partition(x=4)", splits)
        if not all(isinstance(k, str) for k in merged):
            raise InvalidArgumentError("partition", "axis names as keys", splits)
        self.splits: dict[str, int | tuple[int, ...]] = {k: _split(k, v)
                                                          for k, v in merged.items()}

    @property
    def n_experts(self) -> int:
        """The number of blocks (experts)."""
        n = 1
        for spec in self.splits.values():
            n *= spec if isinstance(spec, int) else len(spec) - 1
        return n

    def edges(self, grid: Grid) -> dict[str, tuple[int, ...]]:
        """Node edges of the blocks along each split axis of ``grid``, checked.

        Parameters
        ----------
        grid : Grid
            The grid to split.

        Returns
        -------
        dict of str to tuple of int
            ``(0, ..., n)`` per split axis.

        Raises
        ------
        InvalidArgumentError
            An axis not in the grid, edges that do not cover the axis, or a
            block without nodes.
        """
        out = {}
        for name, spec in self.splits.items():
            if name not in grid.names:
                raise InvalidArgumentError("partition", f"axes of the grid {grid.names}", name)
            n = grid.shape[grid.names.index(name)]
            if isinstance(spec, int):
                if spec > n:
                    raise InvalidArgumentError(
                        "partition", f"at most {n} blocks along axis {name!r} (an expert "
                        "without points otherwise)", spec)
                edges = tuple(int(round(j * n / spec)) for j in range(spec + 1))
            else:
                edges = spec
                if edges[0] != 0 or edges[-1] != n:
                    raise InvalidArgumentError(
                        "partition", f"edges along axis {name!r} from 0 to {n} (blocks that "
                        "cover the grid)", edges)
                if any(b <= a for a, b in zip(edges, edges[1:])):
                    raise InvalidArgumentError(
                        "partition", f"strictly increasing edges along axis {name!r} (a "
                        "repeated edge leaves an expert without points)", edges)
            out[name] = edges
        return out

    def labels(self, grid: Grid, device: torch.device | str | None = None) -> torch.Tensor:
        """The expert of every grid node.

        Parameters
        ----------
        grid : Grid
            The grid to split.
        device : torch.device or str, optional
            Of the result.

        Returns
        -------
        torch.Tensor, int64, shape grid.shape
            Values ``0 .. n_experts - 1``.
        """
        labels = torch.zeros(grid.shape, dtype=torch.int64, device=device)
        for name, edges in self.edges(grid).items():
            i = grid.names.index(name)
            n = grid.shape[i]
            block = torch.bucketize(torch.arange(n, device=device),
                                    torch.tensor(edges[1:-1], device=device), right=True)
            shape = [1] * grid.ndim
            shape[i] = n
            labels = labels * (len(edges) - 1) + block.reshape(shape)
        return labels

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.splits.items())
        return f"Partition({inner})"
