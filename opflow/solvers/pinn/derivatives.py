"""Derivatives of network outputs at collocation points, by batched autograd.

Collocation points are an ``(N, dim)`` tensor whose columns are named axes
(``"t"``, ``"x"``, ``"y"``, ...), held in :class:`Coordinates`. A network
that acts on each point independently (an MLP on the rows) has a block
diagonal Jacobian, so the gradient of ``u.sum()`` with respect to the points
gives every point's derivative in one backward pass.

Why batched autograd by default: ``benchmarks/bench_pinn.py`` (``laplacian_paths``)
times the Laplacian of a 3x50 tanh MLP at 2000 points plus the backward pass of its
loss. The per-point ``torch.func`` transforms (``vmap(hessian)``,
``vmap(jacfwd(jacrev))``, ``jvp`` over ``jvp``) do more work than one reverse pass
over the whole batch and were 1.5-2.5x slower. Taylor mode
(:mod:`~opflow.solvers.pinn.jet`, plain MLPs only) is faster on that Laplacian
alone, but a whole eager PINN step with it measured no faster than with batched
autograd (16.7 vs 15.5 ms, a scratch run of the same Poisson step); compiled, the
step drops to about 10 ms, so ``PINN(compile=True)`` turns it on.

When ``u`` carries a Taylor-mode jet at the same points (attached by
:class:`~opflow.solvers.pinn.jet.MLPJet`), :func:`gradient`, :func:`d` (orders 1
and 2) and :func:`laplacian` read their result off the jet; everything else goes
through autograd.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch

from ... import calculus
from ...errors import InvalidArgumentError, ShapeError, UnknownVariableError
from ...grid import Grid
from .jet import Jet, attach, jet_of, through_compiled_graph

__all__ = ["Coordinates", "GridCoordinates", "d", "gradient", "laplacian"]


class Coordinates:
    """Collocation points with named columns.

    Parameters
    ----------
    values : torch.Tensor, shape (N, dim)
        The points; make them ``requires_grad`` to differentiate with respect to them.
    names : sequence of str, length dim
        One name per column, e.g. ``("t", "x")``.

    Examples
    --------
    >>> c = Coordinates(torch.rand(5, 2), ("t", "x"))
    >>> c["x"].shape
    torch.Size([5, 1])
    """

    __slots__ = ("values", "names")

    def __init__(self, values: torch.Tensor, names: Sequence[str]):
        names = tuple(names)
        if (not isinstance(values, torch.Tensor) or values.ndim != 2
                or values.shape[1] != len(names)):
            raise ShapeError("values", f"a tensor of shape (N, {len(names)}) for axes {names}",
                             values)
        self.values = values
        self.names = names

    @property
    def dim(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return self.values.shape[0]

    def index(self, axis: str | int) -> int:
        """Column of ``axis`` (a name or an integer).

        Parameters
        ----------
        axis : str or int
            An axis name, or a column number.

        Returns
        -------
        int
        """
        if isinstance(axis, str):
            if axis not in self.names:
                raise UnknownVariableError("axis", axis, self.names)
            return self.names.index(axis)
        if isinstance(axis, int) and -self.dim <= axis < self.dim:
            return axis % self.dim
        raise InvalidArgumentError("axis", f"an axis name in {self.names} or an integer", axis)

    def __getitem__(self, axis: str | int) -> torch.Tensor:
        """Column ``axis`` as an ``(N, 1)`` tensor (differentiable)."""
        i = self.index(axis)
        return self.values[:, i:i + 1]

    def __repr__(self) -> str:
        return f"Coordinates(N={len(self)}, names={self.names})"


class GridCoordinates(Coordinates):
    """The nodes of a Grid as collocation points, where derivatives are finite differences.

    A residual written for :class:`~opflow.solvers.pinn.PINNProblem`
    (``residual(x, u)`` with :func:`d`, :func:`gradient`, :func:`laplacian`)
    runs unchanged on values sampled on a grid: given these coordinates, the
    derivative helpers reshape ``u`` to the grid and differentiate with
    :func:`opflow.calculus.partial` (centred stencils inside, one-sided at the
    ends of a bounded axis, spectral on periodic axes unless ``method="fd"``)
    instead of autograd. Any tensor of one value per node can be
    differentiated (a product ``u * u`` as well as ``u``).

    Parameters
    ----------
    grid : Grid
        The grid; its axis names name the columns.
    samples : int
        Independent fields stacked along the points: the ``N = samples *
        prod(grid.shape)`` rows are ordered sample first, then the grid nodes
        in row-major order (``u.reshape(samples, *grid.shape)`` per channel).
    dtype : torch.dtype
        Of the coordinate values.
    device : torch.device or str, optional
        Of the coordinate values.
    method : {"auto", "spectral", "fd"}
        As for :func:`opflow.calculus.partial`.
    accuracy : {2, 4}
        Order of accuracy of the stencils.
    nodes : torch.Tensor, shape (samples * prod(grid.shape), ndim), optional
        The coordinate values, when they differ from sample to sample (windows
        of one larger grid with the same spacing, as a mixture of experts'
        blocks); default the grid's nodes for every sample. Derivatives use
        ``grid`` either way.

    Examples
    --------
    >>> from opflow import Grid
    >>> g = Grid.uniform(x=(0.0, 1.0, 11))
    >>> x = GridCoordinates(g, samples=2, dtype=torch.float64)
    >>> u = x["x"] ** 2
    >>> bool(torch.allclose(d(u, x, "x", 2), torch.full_like(u, 2.0)))
    True
    """

    __slots__ = ("grid", "samples", "method", "accuracy")

    def __init__(self, grid: Grid, samples: int = 1, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, method: str = "auto",
                 accuracy: int = 2, nodes: torch.Tensor | None = None):
        if not isinstance(grid, Grid):
            raise InvalidArgumentError("grid", "an opflow.Grid", grid)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise InvalidArgumentError("samples", "a positive integer", samples)
        if nodes is None:
            mesh = grid.mesh(dtype, device)
            nodes = torch.stack([m.reshape(-1) for m in mesh], dim=1).repeat(samples, 1)
        elif not isinstance(nodes, torch.Tensor) or tuple(nodes.shape) != (
                samples * grid.size, grid.ndim):
            raise ShapeError("nodes", f"a tensor of shape ({samples * grid.size}, {grid.ndim}): "
                             "the coordinates of every sample's nodes", nodes)
        else:
            nodes = nodes.to(dtype=dtype, device=device)
        super().__init__(nodes, grid.names)
        self.grid, self.samples = grid, samples
        self.method, self.accuracy = method, accuracy

    def partial(self, u: torch.Tensor, axis: int, order: int) -> torch.Tensor:
        """``d^order u / d axis^order`` of ``u (N, c)`` on the grid, shape ``(N, c)``.

        Parameters
        ----------
        u : torch.Tensor, shape (N, c)
            One row per point.
        axis : int
            Column (grid axis) index.
        order : int
            Derivative order, >= 1 (orders above 2 compose first and second
            differences).

        Returns
        -------
        torch.Tensor, shape (N, c)
        """
        n, c = u.shape
        if n != len(self):
            raise ShapeError("u", f"{len(self)} rows: one per grid node and sample", u)
        v = u.reshape(self.samples, *self.grid.shape, c).movedim(-1, 1)
        while order > 0:
            step = 2 if order >= 2 else 1
            v = calculus.partial(v, self.grid, axis, step, method=self.method,
                                 accuracy=self.accuracy)
            order -= step
        return v.movedim(1, -1).reshape(n, c)

    def __repr__(self) -> str:
        return (f"GridCoordinates(samples={self.samples}, grid={self.grid.shape}, "
                f"names={self.names})")


def _grid_derivative(u: torch.Tensor, x: GridCoordinates, axis: int, order: int,
                     channel: int | None) -> torch.Tensor:
    k, shape = _channel(u, channel)
    col = _column(u if k is None else u[:, k:k + 1], len(x))
    return x.partial(col, axis, order).reshape(shape)


def _points(x: Coordinates | torch.Tensor) -> Coordinates:
    if isinstance(x, Coordinates):
        return x
    if isinstance(x, torch.Tensor) and x.ndim == 2:
        return Coordinates(x, tuple(f"x{i}" for i in range(x.shape[1])))
    raise InvalidArgumentError("x", "Coordinates or a tensor of shape (N, dim)", x)


def _column(u: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(u, torch.Tensor) or u.shape[:1] != (n,) or u.numel() != n:
        raise ShapeError("u", f"a tensor of shape ({n},) or ({n}, 1): one output per point; "
                         "pass channel=k (or select u[:, k:k+1])", u)
    return u.reshape(n, 1)


def _channel(u: torch.Tensor, channel: int | None) -> tuple[int | None, tuple[int, ...]]:
    """``channel`` checked against ``u``'s channels, and the shape of a result."""
    if channel is None:
        return None, tuple(u.shape)
    n_channels = u.shape[1] if isinstance(u, torch.Tensor) and u.ndim == 2 else 1
    if isinstance(channel, bool) or not isinstance(channel, int) or not (
            -n_channels <= channel < n_channels):
        raise InvalidArgumentError("channel", f"an integer in [0, {n_channels}): a channel of "
                                   "the output u", channel)
    return channel % n_channels, (u.shape[0], 1)


def _served(u: torch.Tensor, x: Coordinates, order: int, channel: int | None):
    """The Taylor-mode jet of ``u`` at ``x`` when it holds ``order`` for ``channel``
    (None: ``u`` must have one channel)."""
    jet = jet_of(u, x.values)
    if order > 2 or jet is None or jet.grad is None:
        return None
    return jet if channel is not None or jet.grad.shape[-1] == 1 else None


def _autograd_column(u: torch.Tensor, x: Coordinates, channel: int | None) -> torch.Tensor:
    """The ``(N, 1)`` column to differentiate by autograd."""
    v = _autograd_value(u, x)
    return _column(v if channel is None else v[:, channel:channel + 1], len(x))


def _from_jet(jet: Jet, x: Coordinates, value: torch.Tensor,
              again: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``value`` read off ``jet``; from a compiled jet it carries an autograd twin
    (``again`` applied to the plain forward output) for any further derivative."""
    if jet.compiled:
        attach(value, Jet(x.values, None, None, lambda: again(jet.autograd_value()), True))
    return value


def _autograd_value(u: torch.Tensor, x: Coordinates) -> torch.Tensor:
    """``u``, or for a compiled Taylor-mode output (whose graph cannot be differentiated
    twice) the same quantity computed by autograd from an ordinary forward pass."""
    jet = jet_of(u, x.values)
    return u if jet is None or not jet.compiled else jet.autograd_value()


def _grad(u: torch.Tensor, x: torch.Tensor, first: bool = True) -> torch.Tensor:
    """Full gradient ``(N, dim)`` of the ``(N, 1)`` column ``u`` at the points ``x``.

    ``first``: ``u`` is what the caller differentiates (not an intermediate derivative,
    which may be constant legitimately); if it does not depend on ``x``, a warning."""
    if not u.requires_grad:
        if first:
            _warn_unconnected()
        return torch.zeros_like(x)
    if through_compiled_graph(u):
        raise InvalidArgumentError(
            "u", "the network output u, or a derivative of it from d / gradient / laplacian: "
            "with PINN(compile=True) a tensor computed from u (a slice, product or reshape) "
            "cannot be differentiated; differentiate u first, or use compile=False", u)
    (g,) = torch.autograd.grad(u, x, grad_outputs=torch.ones_like(u), create_graph=True,
                               allow_unused=True)
    if g is None:
        if first:
            _warn_unconnected()
        return torch.zeros_like(x)
    return g


def _warn_unconnected() -> None:
    warnings.warn("a derivative of a tensor that does not depend on the points x is zero: "
                  "was u computed from x.values (net(x.values)), and x made with "
                  "requires_grad=True?", UserWarning, stacklevel=4)


def gradient(u: torch.Tensor, x: Coordinates | torch.Tensor,
             channel: int | None = None) -> torch.Tensor:
    """All first derivatives of ``u`` at the points.

    Parameters
    ----------
    u : torch.Tensor, shape (N,) or (N, 1), or (N, channels) with ``channel``
        Network output per point, computed from ``x.values``.
    x : Coordinates or torch.Tensor, shape (N, dim)
        The points, with ``requires_grad=True``; or :class:`GridCoordinates`
        (finite differences on a grid, no autograd).
    channel : int, optional
        The channel of a multi-channel ``u`` to differentiate (the way to do so under
        ``PINN(compile=True)``, where a slice ``u[:, k:k+1]`` cannot be differentiated).

    Returns
    -------
    torch.Tensor, shape (N, dim)
    """
    x = _points(x)
    if isinstance(x, GridCoordinates):
        return torch.cat([_grid_derivative(u, x, i, 1, channel).reshape(len(x), 1)
                          for i in range(x.dim)], dim=1)
    k, _ = _channel(u, channel)
    jet = _served(u, x, 1, k)
    if jet is not None:
        return _from_jet(jet, x, jet.grad[:, :, k or 0].t(), lambda v: gradient(v, x, channel))
    return _grad(_autograd_column(u, x, k), x.values)


def d(u: torch.Tensor, x: Coordinates | torch.Tensor, axis: str | int,
      order: int = 1, channel: int | None = None) -> torch.Tensor:
    """Partial derivative ``d^order u / d axis^order`` at the points.

    Parameters
    ----------
    u : torch.Tensor, shape (N,) or (N, 1), or (N, channels) with ``channel``
        Network output per point, computed from ``x.values``.
    x : Coordinates or torch.Tensor, shape (N, dim)
        The points, with ``requires_grad=True``; or :class:`GridCoordinates`
        (finite differences on a grid, no autograd).
    axis : str or int
        Axis name (with :class:`Coordinates`) or column index.
    order : int
        Derivative order, >= 1.
    channel : int, optional
        The channel of a multi-channel ``u`` (see :func:`gradient`).

    Returns
    -------
    torch.Tensor, same shape as ``u`` (``(N, 1)`` with ``channel``)
        Kept in the autograd graph (``create_graph=True``), so it can enter a loss.

    Examples
    --------
    >>> x = Coordinates(torch.rand(4, 1, requires_grad=True), ("x",))
    >>> u = x["x"] ** 3
    >>> torch.allclose(d(u, x, "x", 2), 6 * x["x"])
    True
    """
    x = _points(x)
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise InvalidArgumentError("order", "an integer >= 1", order)
    i = x.index(axis)
    if isinstance(x, GridCoordinates):
        return _grid_derivative(u, x, i, order, channel)
    k, shape = _channel(u, channel)
    jet = _served(u, x, order, k)
    if jet is not None:
        value = (jet.grad if order == 1 else jet.second)[i][:, (k or 0):(k or 0) + 1]
        return _from_jet(jet, x, value.reshape(shape),
                         lambda v: d(v, x, axis, order, channel))
    out = _autograd_column(u, x, k)
    for step in range(order):
        out = _grad(out, x.values, first=step == 0)[:, i:i + 1]
    return out.reshape(shape)


def laplacian(u: torch.Tensor, x: Coordinates | torch.Tensor,
              axes: Sequence[str | int] | None = None,
              channel: int | None = None) -> torch.Tensor:
    """Sum of second derivatives of ``u`` over ``axes``.

    Parameters
    ----------
    u : torch.Tensor, shape (N,) or (N, 1), or (N, channels) with ``channel``
    x : Coordinates or torch.Tensor, shape (N, dim)
        The points (or :class:`GridCoordinates`, as for :func:`d`).
    axes : sequence of str or int, optional
        Default: every axis except one named ``"t"`` (the spatial Laplacian).
    channel : int, optional
        The channel of a multi-channel ``u`` (see :func:`gradient`).

    Returns
    -------
    torch.Tensor, same shape as ``u`` (``(N, 1)`` with ``channel``)
    """
    x = _points(x)
    if axes is None:
        axes = [n for n in x.names if n != "t"]
    cols = [x.index(a) for a in axes]
    if isinstance(x, GridCoordinates):
        if not cols:
            raise InvalidArgumentError("axes", "at least one axis", axes)
        return sum((_grid_derivative(u, x, i, 2, channel) for i in cols[1:]),
                   _grid_derivative(u, x, cols[0], 2, channel))
    k, shape = _channel(u, channel)
    jet = _served(u, x, 2, k)
    if jet is not None:
        value = jet.second[cols][:, :, (k or 0):(k or 0) + 1].sum(0)
        return _from_jet(jet, x, value.reshape(shape), lambda v: laplacian(v, x, axes, channel))
    g = _grad(_autograd_column(u, x, k), x.values)
    total = torch.zeros(len(x), 1, dtype=x.values.dtype, device=x.values.device)
    for i in cols:
        total = total + _grad(g[:, i:i + 1], x.values, first=False)[:, i:i + 1]
    return total.reshape(shape)
