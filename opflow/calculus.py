"""Derivatives on a Grid: spectral on periodic axes, finite differences otherwise.

These functions act on plain tensors whose trailing dimensions are the grid
(``(..., *grid.shape)``); :class:`~opflow.Field` methods call them. Everything
is built from differentiable torch operations, so autograd passes through.

Finite differences use centred stencils in the interior and one-sided stencils
of the same order of accuracy at the two ends of a non-periodic axis (no ghost
points, no boundary condition assumed). Periodic axes default to the spectral
derivative, exact for band-limited data; ``method="fd"`` uses wrapped stencils.

Inputs are checked before any work: ``u`` must be a ``torch.Tensor`` (a numpy
array or a Field is refused, naming the argument; Fields have their own
methods, ``f.partial(...)``) of a floating-point or complex dtype. Integer and
bool tensors are refused with their dtype in the message (convert with
``u.float()``). float16 and bfloat16 are computed in float32 and **returned in
float32**: FFTs and stencil sums in half precision lose most digits, and CPU
FFTs do not exist in half precision.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence, cast

import numpy as np
import torch

from .errors import InvalidArgumentError
from .grid import Grid

__all__ = ["fd_weights", "partial", "gradient", "divergence", "laplacian", "as_float_values",
           "check_grid"]

_METHODS = ("auto", "spectral", "fd")
_HALF = (torch.float16, torch.bfloat16)


def as_float_values(u: object, argument: str = "u") -> torch.Tensor:
    """``u`` as a tensor derivatives and integrals can take.

    Parameters
    ----------
    u : torch.Tensor
        Floating-point or complex values.
    argument : str
        Name used in error messages.

    Returns
    -------
    torch.Tensor
        ``u`` itself, or ``u.float()`` for float16/bfloat16 (computed in float32).

    Raises
    ------
    InvalidArgumentError
        ``u`` is not a tensor (numpy array, Field, ...) or is integer/bool.
    """
    if hasattr(u, "grid") and hasattr(u, "values"):
        raise InvalidArgumentError(argument, "a torch.Tensor (for a Field use its methods, "
                                   "e.g. f.partial('x'), or pass f.values)", u)
    if not isinstance(u, torch.Tensor):
        raise InvalidArgumentError(argument, "a torch.Tensor (convert numpy arrays with "
                                   "torch.as_tensor)", u)
    if not (u.is_floating_point() or u.is_complex()):
        raise InvalidArgumentError(argument, f"floating-point values, not dtype {u.dtype} "
                                   "(convert with .float())", u)
    return u.float() if u.dtype in _HALF else u


def check_grid(grid: object, argument: str = "grid") -> Grid:
    """``grid`` if it is an :class:`~opflow.Grid`, else an error naming ``argument``.

    Parameters
    ----------
    grid : object
        What was passed as a grid.
    argument : str
        The argument's name, for the error.

    Returns
    -------
    Grid
    """
    if not isinstance(grid, Grid):
        raise InvalidArgumentError(argument, "an opflow.Grid", grid)
    return grid


@lru_cache(maxsize=None)
def fd_weights(offsets: tuple[int, ...], order: int) -> tuple[float, ...]:
    """Weights ``w`` with ``sum_j w_j u(x + offsets_j h) = h**order u^(order)(x) + O(h^p)``.

    Solves the moment (Vandermonde) conditions exactly in float64; with
    ``len(offsets) = order + p`` points the result is accurate to order ``p``.

    Parameters
    ----------
    offsets : tuple of int
        Stencil offsets in units of ``h``; more than ``order`` of them.
    order : int
        Derivative order.

    Returns
    -------
    tuple of float
        One weight per offset.

    Examples
    --------
    >>> [float(w) for w in opflow.calculus.fd_weights((-1, 0, 1), 2)]
    [1.0, -2.0, 1.0]
    """
    s = np.asarray(offsets, dtype=np.float64)
    m = len(s)
    if order >= m:
        raise InvalidArgumentError("offsets", f"more than {order} points", offsets)
    vander = np.vander(s, m, increasing=True).T  # row k: s_j ** k
    rhs = np.zeros(m)
    rhs[order] = float(np.prod(np.arange(1, order + 1)))
    return tuple(float(w) for w in np.linalg.solve(vander, rhs))


def _check(order: int, accuracy: int, method: str) -> None:
    if order not in (1, 2):
        raise InvalidArgumentError("order", "1 or 2", order)
    if accuracy not in (2, 4):
        raise InvalidArgumentError("accuracy", "2 or 4", accuracy)
    if method not in _METHODS:
        raise InvalidArgumentError("method", f"one of {_METHODS}", method)


def _spectral(u: torch.Tensor, dim: int, n: int, h: float, order: int) -> torch.Tensor:
    k = torch.fft.rfftfreq(n, d=h, device=u.device, dtype=u.real.dtype) * (2 * np.pi)
    factor = (1j * k) ** order
    if order % 2 == 1 and n % 2 == 0:
        factor[-1] = 0  # the Nyquist mode has no well-defined odd derivative
    shape = [1] * u.ndim
    shape[dim] = k.numel()
    spec = torch.fft.rfft(u, dim=dim) * factor.reshape(shape)
    return torch.fft.irfft(spec, n=n, dim=dim)


def _combine(weights: tuple[float, ...], views: list[torch.Tensor]) -> torch.Tensor:
    """``sum_j weights_j views_j`` as one contraction: under ``torch.func`` transforms
    (the forward-mode Jacobians of the least-squares solves) a Python sum of scaled
    views took a decomposed path about 3.5x slower."""
    kept = [j for j, wj in enumerate(weights) if wj != 0.0]
    w = torch.tensor([weights[j] for j in kept], dtype=views[0].real.dtype,
                     device=views[0].device)
    return torch.tensordot(w.to(views[0].dtype), torch.stack([views[j] for j in kept]), dims=1)


def _fd_periodic(u, dim, h, order, accuracy):
    half = (order + accuracy - 1) // 2
    offsets = tuple(range(-half, half + 1))
    w = fd_weights(offsets, order)
    out = _combine(w, [torch.roll(u, -s, dims=dim) for s in offsets])
    return out / h**order


def _fd_bounded(u, dim, n, h, order, accuracy):
    half = (order + accuracy - 1) // 2
    width = order + accuracy  # points of a one-sided stencil of this accuracy
    if n < max(2 * half + 1, width):
        raise InvalidArgumentError(
            "grid", f"at least {max(2 * half + 1, width)} points for this stencil", n
        )
    centred = fd_weights(tuple(range(-half, half + 1)), order)
    m = n - 2 * half
    interior = _combine(centred, [u.narrow(dim, j, m) for j in range(len(centred))])
    left, right = [], []
    for i in range(half):  # points too close to an end for the centred stencil
        wl = fd_weights(tuple(range(-i, width - i)), order)
        left.append(_combine(wl, [u.select(dim, j) for j in range(width)]).unsqueeze(dim))
        wr = fd_weights(tuple(range(-(width - 1 - i), i + 1)), order)
        right.insert(0, _combine(wr, [u.select(dim, n - width + j) for j in range(width)])
                     .unsqueeze(dim))
    return torch.cat(left + [interior] + right, dim=dim) / h**order


def partial(
    u: torch.Tensor,
    grid: Grid,
    axis: str | int,
    order: int = 1,
    *,
    method: str = "auto",
    accuracy: int = 2,
) -> torch.Tensor:
    """Partial derivative of ``u`` along one grid axis.

    Parameters
    ----------
    u : torch.Tensor, shape (..., *grid.shape)
        Values on ``grid`` (trailing dimensions are the grid).
    grid : Grid
        The grid; the axis must have uniform spacing.
    axis : str or int
        Axis name or index into ``grid.names``.
    order : {1, 2}
        Derivative order.
    method : {"auto", "spectral", "fd"}
        ``"auto"`` is spectral on periodic axes and finite differences
        otherwise. ``"spectral"`` on a non-periodic axis is an error.
    accuracy : {2, 4}
        Order of accuracy of the finite-difference stencils.

    Returns
    -------
    torch.Tensor, same shape as ``u``.
        Same dtype as ``u``, except float32 for float16/bfloat16 input.

    Raises
    ------
    InvalidArgumentError
        ``u`` is not a floating-point tensor, ``grid`` not a Grid, or a bad option.
    """
    u = as_float_values(u)
    check_grid(grid)
    _check(order, accuracy, method)
    i = grid.index(axis)
    ax = grid.axes[i]
    if u.ndim < grid.ndim or tuple(u.shape[u.ndim - grid.ndim:]) != grid.shape:
        raise InvalidArgumentError("u", f"trailing dimensions {grid.shape}", u)
    if not ax.is_uniform:
        raise InvalidArgumentError("grid", f"uniform spacing on axis {ax.name!r}", ax.coords)
    dim = u.ndim - grid.ndim + i
    h = ax.spacing
    if method == "spectral" and not ax.periodic:
        raise InvalidArgumentError("method", f"'fd' on non-periodic axis {ax.name!r}", method)
    if ax.periodic and method in ("auto", "spectral"):
        if u.is_complex():
            raise InvalidArgumentError("u", "a real tensor", u)
        return _spectral(u, dim, ax.size, h, order)
    if ax.periodic:
        return _fd_periodic(u, dim, h, order, accuracy)
    return _fd_bounded(u, dim, ax.size, h, order, accuracy)


def gradient(u: torch.Tensor, grid: Grid, **kw) -> torch.Tensor:
    """Gradient: shape ``(..., grid.ndim, *grid.shape)`` from ``(..., *grid.shape)``.

    The new dimension sits just before the grid dimensions, so the gradient
    of a one-channel field is a ``grid.ndim``-channel field.

    Parameters
    ----------
    u : torch.Tensor, shape (..., *grid.shape)
        Values on ``grid``.
    grid : Grid
        The grid of the trailing dimensions.
    **kw
        ``method`` and ``accuracy``, as for :func:`partial`.

    Returns
    -------
    torch.Tensor, shape (..., grid.ndim, *grid.shape)
        The partial derivatives along each axis, in the grid's axis order.

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 1.0, 8), periodic=("x", "y"))
    >>> x, y = g.mesh()
    >>> tuple(opflow.calculus.gradient(torch.sin(2 * torch.pi * x), g).shape)
    (2, 16, 8)
    """
    check_grid(grid)
    return torch.stack([partial(u, grid, i, 1, **kw) for i in range(grid.ndim)], dim=-grid.ndim - 1)


def divergence(v: torch.Tensor, grid: Grid, **kw) -> torch.Tensor:
    """Divergence of a vector field ``v`` of shape ``(..., grid.ndim, *grid.shape)``.

    Parameters
    ----------
    v : torch.Tensor, shape (..., grid.ndim, *grid.shape)
        One component per grid axis, in the grid's axis order, just before
        the grid dimensions.
    grid : Grid
        The grid of the trailing dimensions.
    **kw
        ``method`` and ``accuracy``, as for :func:`partial`.

    Returns
    -------
    torch.Tensor, shape (..., *grid.shape)
        The sum of the derivatives of each component along its axis.
    """
    v = as_float_values(v, "v")
    check_grid(grid)
    comp_dim = v.ndim - grid.ndim - 1
    if comp_dim < 0 or v.shape[comp_dim] != grid.ndim:
        raise InvalidArgumentError(
            "v", f"{grid.ndim} components just before the grid dimensions", v
        )
    comps = v.unbind(comp_dim)
    return cast(torch.Tensor, sum(partial(c, grid, i, 1, **kw) for i, c in enumerate(comps)))


def laplacian(u: torch.Tensor, grid: Grid, axes: Sequence[str] | None = None, **kw) -> torch.Tensor:
    """Sum of second derivatives over ``axes`` (default: all grid axes).

    Parameters
    ----------
    u : torch.Tensor, shape (..., *grid.shape)
        Values on ``grid``.
    grid : Grid
        The grid of the trailing dimensions.
    axes : sequence of str, optional
        The axes to differentiate along (default: all of them).
    **kw
        ``method`` and ``accuracy``, as for :func:`partial`.

    Returns
    -------
    torch.Tensor, shape (..., *grid.shape)

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 32), periodic=("x",))
    >>> (x,) = g.mesh()
    >>> lap = opflow.calculus.laplacian(torch.sin(2 * torch.pi * x), g)  # spectral
    >>> bool(torch.allclose(lap, -4 * torch.pi ** 2 * torch.sin(2 * torch.pi * x), atol=1e-3))
    True
    """
    check_grid(grid)
    axes = grid.names if axes is None else axes
    return cast(torch.Tensor, sum(partial(u, grid, a, 2, **kw) for a in axes))
