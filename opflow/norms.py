"""Integrals, norms and relative errors with the grid's quadrature weights.

All functions reduce over the channel and grid dimensions and keep the batch
dimensions, so ``rel_l2(pred, true)`` has shape ``(*batch,)``; pass
``reduction="mean"`` for the scalar used as a training loss.

Norms take Fields (a plain tensor or numpy array is refused, naming the
argument: wrap it as ``Field(values, grid)``); :func:`integrate` takes a tensor
and a Grid. Integer and bool values are refused; float16/bfloat16 values are
integrated in float32 (see :mod:`opflow.calculus`).
"""

from __future__ import annotations

from typing import cast

import torch

from . import calculus
from .errors import GridMismatchError, InvalidArgumentError, ShapeError

__all__ = ["integrate", "norm", "l2", "h1", "rel_l2", "rel_h1"]

_REDUCTIONS = ("none", "mean", "sum")


def _check_field(field, argument: str) -> None:
    """Refuse anything but a Field of floating-point (or complex) values."""
    from .field import Field  # field.py imports this module

    if not isinstance(field, Field):
        raise InvalidArgumentError(argument, "an opflow.Field (wrap a tensor as "
                                   "Field(values, grid))", field)
    calculus.as_float_values(field.values, argument)


def integrate(values: torch.Tensor, grid) -> torch.Tensor:
    """Integral over the trailing grid dimensions: ``(..., *grid.shape) -> (...)``.

    Parameters
    ----------
    values : torch.Tensor, shape (..., *grid.shape)
        Floating-point (or complex) values on ``grid``.
    grid : Grid
        The grid; its quadrature weights (trapezoidal, or uniform on periodic
        axes) weight the sum.

    Returns
    -------
    torch.Tensor, shape (...)

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 2.0, 33))
    >>> float(opflow.norms.integrate(torch.ones(33), g))
    2.0
    """
    values = calculus.as_float_values(values, "values")
    calculus.check_grid(grid)
    w = grid.quadrature_weights(dtype=values.real.dtype, device=values.device)
    return (values * w).sum(dim=tuple(range(values.ndim - grid.ndim, values.ndim)))


def _squared_l2(field) -> torch.Tensor:
    return integrate(field.values.abs() ** 2, field.grid).sum(-1)


def _squared_h1_seminorm(field) -> torch.Tensor:
    total: torch.Tensor | float = 0.0
    for axis in field.grid.names:
        d = calculus.partial(field.values, field.grid, axis, 1)
        total = total + integrate(d**2, field.grid).sum(-1)
    return cast(torch.Tensor, total)


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise InvalidArgumentError("reduction", f"one of {_REDUCTIONS}", reduction)
    return x if reduction == "none" else (x.mean() if reduction == "mean" else x.sum())


def norm(field, kind: str = "l2", reduction: str = "none") -> torch.Tensor:
    """``l2``: ``sqrt(sum_c int u_c^2)``; ``h1``: ``sqrt(l2^2 + sum_c int |grad u_c|^2)``.

    Parameters
    ----------
    field : Field, shape (*batch, channels, *grid.shape)
        Floating-point (or complex) values.
    kind : {"l2", "h1"}
        Which norm. The sum runs over the channels.
    reduction : {"none", "mean", "sum"}
        ``"none"`` keeps the batch dimensions.

    Returns
    -------
    torch.Tensor, shape (*batch,)
        Or a scalar with ``reduction`` ``"mean"`` or ``"sum"``.

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    >>> (x,) = g.mesh()
    >>> u = Field(torch.sin(2 * torch.pi * x)[None], g)
    >>> round(float(opflow.norms.norm(u, "l2")), 4)  # sqrt(1/2)
    0.7071
    """
    _check_field(field, "field")
    if kind == "l2":
        sq = _squared_l2(field)
    elif kind == "h1":
        sq = _squared_l2(field) + _squared_h1_seminorm(field)
    else:
        raise InvalidArgumentError("kind", "'l2' or 'h1'", kind)
    return _reduce(torch.sqrt(sq), reduction)


def l2(field, reduction: str = "none") -> torch.Tensor:
    """L2 norm per sample; see :func:`norm`.

    Parameters
    ----------
    field : Field, shape (*batch, channels, *grid.shape)
        Floating-point (or complex) values.
    reduction : {"none", "mean", "sum"}
        ``"none"`` keeps the batch dimensions: shape ``(*batch,)``.

    Returns
    -------
    torch.Tensor, shape (*batch,)
    """
    return norm(field, "l2", reduction)


def h1(field, reduction: str = "none") -> torch.Tensor:
    """H1 norm per sample; see :func:`norm`.

    Parameters
    ----------
    field : Field, shape (*batch, channels, *grid.shape)
        Floating-point (or complex) values.
    reduction : {"none", "mean", "sum"}
        ``"none"`` keeps the batch dimensions: shape ``(*batch,)``.

    Returns
    -------
    torch.Tensor, shape (*batch,)
    """
    return norm(field, "h1", reduction)


def _mask_tensor(mask, true) -> torch.Tensor:
    """``mask`` (Field or tensor of 0/1 or bool) broadcast to ``true``'s values."""
    m = mask.values if hasattr(mask, "grid") and hasattr(mask, "values") else mask
    if not isinstance(m, torch.Tensor):
        raise InvalidArgumentError("mask", "a Field or tensor of 0/1 values", mask)
    if m.dtype == torch.bool:
        m = m.to(true.values.dtype)
    elif not bool(((m == 0) | (m == 1)).all()):
        raise InvalidArgumentError("mask", "a mask of 0/1 values (train with "
                                   "normalizers=None)", m)
    try:
        return torch.broadcast_to(m, true.values.shape)
    except RuntimeError:
        raise ShapeError("mask", f"a shape broadcasting to {tuple(true.values.shape)}",
                         m) from None


def _relative(pred, true, kind: str, reduction: str, eps: float, mask=None) -> torch.Tensor:
    _check_field(pred, "pred")
    _check_field(true, "true")
    if pred.grid != true.grid:
        raise GridMismatchError("true", f"a Field on the grid of `pred` ({pred.grid})", true.grid)
    if pred.shape != true.shape:
        raise InvalidArgumentError("true", f"shape {tuple(pred.shape)} like `pred`", true.values)
    diff = pred - true
    if mask is not None:
        m = _mask_tensor(mask, true)
        diff, true = diff.with_values(diff.values * m), true.with_values(true.values * m)
    err = norm(diff, kind)
    ref = norm(true, kind)
    return _reduce(err / (ref + eps), reduction)


def rel_l2(pred, true, reduction: str = "none", eps: float = 1e-12,
           mask=None) -> torch.Tensor:
    """Relative L2 error ``||m (pred - true)|| / ||m true||`` per sample.

    Parameters
    ----------
    pred, true : Field, shape (*batch, channels, *grid.shape)
        On the same grid.
    reduction : {"none", "mean", "sum"}
        ``"none"`` keeps the batch dimensions: shape ``(*batch,)``.
    eps : float
        Added to the norm of ``true`` (an all-zero target does not divide by 0).
    mask : Field or tensor, optional
        0/1 (or bool) values broadcasting to ``true``'s shape: only points
        where it is 1 count (a geometry inside a box). Default: all points.

    Returns
    -------
    torch.Tensor
        Differentiable with respect to ``pred``.
    """
    return _relative(pred, true, "l2", reduction, eps, mask)


def rel_h1(pred, true, reduction: str = "none", eps: float = 1e-12) -> torch.Tensor:
    """Relative H1 error ``||pred - true||_H1 / ||true||_H1`` per sample.

    Parameters
    ----------
    pred, true : Field, shape (*batch, channels, *grid.shape)
        On the same grid.
    reduction : {"none", "mean", "sum"}
        ``"none"`` keeps the batch dimensions: shape ``(*batch,)``.
    eps : float
        Added to the norm of ``true``.

    Returns
    -------
    torch.Tensor
        Differentiable with respect to ``pred``.
    """
    return _relative(pred, true, "h1", reduction, eps)
