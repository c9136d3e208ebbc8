"""Assertions for tests of code that uses opflow (like ``xarray.testing``).

Each assertion raises ``AssertionError`` with a message that says what
differs: the grid, the metadata, or the values (with the largest error).
"""

from __future__ import annotations

import torch

from .field import Field
from .grid import Grid

__all__ = ["assert_grids_equal", "assert_fields_equal", "assert_fields_close"]


def assert_grids_equal(a: Grid, b: Grid) -> None:
    """Grids have the same axes: names, coordinates, periodicity, bounds, units.

    Parameters
    ----------
    a, b : Grid
        The grids to compare.

    Raises
    ------
    AssertionError
        Naming every difference.
    """
    if a == b:
        return
    lines = []
    if a.names != b.names:
        lines.append(f"axis names {a.names} != {b.names}")
    for x, y in zip(a.axes, b.axes):
        if x != y:
            lines.append(f"axis {x.name!r}: {x.size} points on {x.bounds} periodic={x.periodic} "
                         f"units={x.units!r} vs {y.size} points on {y.bounds} "
                         f"periodic={y.periodic} units={y.units!r}")
    raise AssertionError("grids differ: " + "; ".join(lines or ["coordinates differ"]))


def _assert_same_metadata(a: Field, b: Field) -> None:
    assert_grids_equal(a.grid, b.grid)
    if a.names != b.names:
        raise AssertionError(f"names differ: {a.names} != {b.names}")
    if a.units != b.units:
        raise AssertionError(f"units differ: {a.units} != {b.units}")
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} != {tuple(b.shape)}")


def assert_fields_equal(a: Field, b: Field) -> None:
    """Same grid, names, units, shape, dtype and bit-identical values.

    Parameters
    ----------
    a, b : Field
        The Fields to compare.

    Raises
    ------
    AssertionError
        Naming the first difference.
    """
    _assert_same_metadata(a, b)
    if a.dtype != b.dtype:
        raise AssertionError(f"dtypes differ: {a.dtype} != {b.dtype}")
    if not torch.equal(a.values.detach().cpu(), b.values.detach().cpu()):
        diff = (a.values.detach().cpu() != b.values.detach().cpu()).sum().item()
        raise AssertionError(f"values differ at {diff} of {a.values.numel()} points")


def assert_fields_close(a: Field, b: Field, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Same grid, names, units and shape; values equal within ``atol + rtol * |b|``.

    Parameters
    ----------
    a, b : Field
        The Fields to compare (``b``'s values are cast to ``a``'s dtype).
    rtol, atol : float
        Relative and absolute tolerances, as for :func:`torch.testing.assert_close`.

    Raises
    ------
    AssertionError
        Naming the first difference.

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 4))
    >>> u = Field(torch.zeros(1, 4), g)
    >>> opflow.testing.assert_fields_close(u, u.with_values(u.values + 1e-9))
    """
    _assert_same_metadata(a, b)
    torch.testing.assert_close(a.values.detach().cpu(), b.values.detach().cpu().to(a.dtype),
                               rtol=rtol, atol=atol)
