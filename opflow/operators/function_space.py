"""Networks turned into neural operators, and the counterexample.

"Neural networks to neural operators" (Berner et al.): an architecture is a
neural operator when each layer discretises an operator between function
spaces, so that the same weights give (approximately) the same map on every
grid. Three models show the conversions:

* :class:`UNet`: a plain convolutional U-Net. Its kernels are fixed in grid
  points, so on a grid twice as fine they cover half the physical extent and
  the model computes a *different* function: it is not an operator.
* :class:`FunctionSpaceUNet`: the same U-Net (same parameters: weights load
  from one into the other) built from :class:`~opflow.operators.blocks.InterpConv`
  layers. Each kernel is defined at a reference resolution and resampled to
  the input's grid spacing, with quadrature weights, so the network
  approximates one operator at every resolution (exactly the plain U-Net at
  the reference resolution). Up-sampling is linear interpolation.
* :class:`AttentionOperator`: a transformer whose attention is the kernel
  integral :class:`~opflow.operators.blocks.AttentionKernelIntegral`
  (softmax-free, with quadrature weights and Fourier coordinate embeddings),
  followed by pointwise MLPs: every layer is resolution-consistent.

Grid sizes of the U-Nets
------------------------
Every level halves the grid with a stride-2 convolution and the decoder
doubles it back, so each axis needs ``n`` divisible by ``2^levels``
(periodic or cell-centred grids) or ``n - 1`` divisible by ``2^levels``
(grids with both end points, the coarse grids then keep every other point;
not with ``padding="circular"``, where the grid must be periodic).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import InvalidArgumentError, ShapeError
from ..grid import Grid
from .base import GridOperator, get_activation, register_operator
from .blocks import (
    PADDINGS,
    AttentionKernelIntegral,
    InterpConv,
    _channel_norm,
    _intervals,
    _pointwise,
    _unit_weights,
    fourier_features,
)
from .fno import positional_channels

__all__ = ["AttentionOperator", "FunctionSpaceUNet", "UNet"]


def _positive(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(argument, "a positive integer", value)
    return value


def _upsample(x: torch.Tensor, sizes: Sequence[int], periodic: bool) -> torch.Tensor:
    """Linear interpolation to ``sizes`` (``2 m`` or ``2 m - 1`` points from ``m``) per axis.

    The coarse points are kept and the midpoints added; with ``2 m`` points
    the last midpoint wraps around (periodic) or repeats the last value.
    """
    d = len(sizes)
    for j, target in enumerate(sizes):
        axis = x.ndim - d + j
        m = x.shape[axis]
        if periodic:
            nxt = torch.roll(x, -1, axis)
        else:
            nxt = torch.cat([x.narrow(axis, 1, m - 1), x.narrow(axis, m - 1, 1)], dim=axis)
        both = torch.stack([x, 0.5 * (x + nxt)], dim=axis + 1)
        x = both.flatten(axis, axis + 1).narrow(axis, 0, target)
    return x


class _ConvUNet(GridOperator):
    """The U-Net shared by :class:`UNet` and :class:`FunctionSpaceUNet`."""

    def _build(self, in_channels: int, out_channels: int, width: int, levels: int, ndim: int,
               kernel_size: int, padding: str, activation: str) -> None:
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width)):
            _positive(v, arg)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 8:
            raise InvalidArgumentError("levels", "an integer from 0 to 8", levels)
        if isinstance(ndim, bool) or ndim not in (1, 2, 3):
            raise InvalidArgumentError("ndim", "1, 2 or 3", ndim)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) \
                or kernel_size < 1 or kernel_size % 2 == 0:
            raise InvalidArgumentError("kernel_size", "an odd positive integer", kernel_size)
        if padding not in PADDINGS:
            raise InvalidArgumentError("padding", f"one of {PADDINGS}", padding)
        self.act = get_activation(activation)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.levels, self.ndim, self.padding = levels, ndim, padding
        widths = [width * 2**level for level in range(levels + 1)]

        def conv(c_in: int, c_out: int, stride: int = 1) -> InterpConv:
            return InterpConv(c_in, c_out, kernel_size, ndim, stride=stride, padding=padding)

        def pair(c_in: int, c_out: int) -> nn.ModuleList:
            return nn.ModuleList([conv(c_in, c_out), conv(c_out, c_out)])

        self.lifting = conv(in_channels, width)
        self.encoder = nn.ModuleList(pair(widths[lv], widths[lv]) for lv in range(levels))
        self.down = nn.ModuleList(conv(widths[lv], widths[lv + 1], 2) for lv in range(levels))
        self.bottleneck = pair(widths[levels], widths[levels])
        self.up = nn.ModuleList(conv(widths[lv + 1], widths[lv]) for lv in range(levels))
        self.decoder = nn.ModuleList(pair(2 * widths[lv], widths[lv]) for lv in range(levels))
        self.projection = nn.Linear(width, out_channels)

    def _scale(self, grid: Grid | None, spatial: Sequence[int]) -> tuple[float, ...] | None:
        return None  # the plain U-Net: kernels as stored, in grid points

    def check_shape(self, spatial: Sequence[int], argument: str = "x") -> None:
        """Raise unless every axis can be halved ``levels`` times.

        Parameters
        ----------
        spatial : sequence of int
            The grid's shape.
        argument : str
            Name of the argument in the error.

        Raises
        ------
        ShapeError
            An axis whose size is not a multiple of ``2^levels`` (or one more).
        """
        f = 2**self.levels
        vertex = self.padding != "circular"
        if all(n % f == 0 or (vertex and n > 1 and (n - 1) % f == 0) for n in spatial):
            return
        also = ("" if not vertex else
                " or n - 1 divisible by it (grids with both end points)")
        raise ShapeError(
            argument, f"n points per axis with n divisible by 2^levels = {f} (levels="
            f"{self.levels}){also}: each level halves the grid with a stride-2 convolution and "
            f"the decoder doubles it back; got grid shape {tuple(spatial)}"
            + (" (padding='circular' needs periodic sizes)" if not vertex else ""),
            torch.empty(0, *spatial))

    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input; see the class notes for the sizes.
        grid : Grid, optional
            The input's grid (its spacing sets the kernels of
            :class:`FunctionSpaceUNet`; default: a periodic unit box).

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        spatial = tuple(v.shape[2:])
        self.check_shape(spatial)
        scale = self._scale(grid, spatial)
        act = self.act

        def pair(h: torch.Tensor, convs: nn.Module) -> torch.Tensor:
            for c in convs.children():
                h = act(c(h, scale))
            return h

        h = act(self.lifting(v, scale))
        skips = []
        for convs, down in zip(self.encoder, self.down):
            h = pair(h, convs)
            skips.append(h)
            h = act(down(h, scale))
        h = pair(h, self.bottleneck)
        for lv in reversed(range(self.levels)):
            h = _upsample(h, skips[lv].shape[2:], self.padding == "circular")
            h = act(self.up[lv](h, scale))
            h = pair(torch.cat([h, skips[lv]], dim=1), self.decoder[lv])
        return _pointwise(h, self.projection)



@register_operator
class UNet(_ConvUNet):
    """A plain convolutional U-Net: kernels fixed in grid points (not a neural operator).

    The counterexample of :mod:`opflow.operators.function_space`: trained on
    one grid, it computes another function on a finer grid. Same parameters
    as :class:`FunctionSpaceUNet` (weights load from one into the other).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    width : int
        Channels at the finest level (doubled at every coarser level).
    levels : int
        Down-samplings (stride-2 convolutions).
    ndim : int
        Spatial dimensions (1, 2 or 3).
    kernel_size : int
        Odd kernel size of every convolution.
    padding : {"zeros", "circular", "reflect"}
        Boundary treatment.
    activation : str
        Activation after every convolution.

    Notes
    -----
    ``model(field)`` maps a Field ``(*batch, in_channels, *grid.shape)`` to a
    Field ``(*batch, out_channels, *grid.shape)`` on the same grid; sizes as
    in :mod:`opflow.operators.function_space`. ``model(tensor)`` does the
    same on tensors.

    Examples
    --------
    >>> model = opflow.UNet(1, 1, width=4, levels=2)
    >>> model(torch.randn(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, levels: int = 3,
                 *, ndim: int = 2, kernel_size: int = 3, padding: str = "zeros",
                 activation: str = "gelu"):
        super().__init__()
        self._build(in_channels, out_channels, width, levels, ndim, kernel_size, padding,
                    activation)
        self._set_config(in_channels=in_channels, out_channels=out_channels, width=width,
                         levels=levels, ndim=ndim, kernel_size=kernel_size, padding=padding,
                         activation=activation)


@register_operator
class FunctionSpaceUNet(_ConvUNet):
    """The U-Net with kernels of fixed physical extent: a neural operator.

    Every convolution is an :class:`~opflow.operators.blocks.InterpConv`
    whose taps are defined at ``reference_resolution`` cells per unit length
    of the (normalised) domain. On an input with ``n`` cells per axis (``n``
    points on a periodic axis, ``n - 1`` with both end points; a tensor is
    taken as periodic) the kernels are resampled by the factor ``n /
    reference_resolution``, the same at every level of the U. At the
    reference resolution the model equals :class:`UNet` with the same
    weights; elsewhere it approximates the same operator, up to the
    interpolation and quadrature errors (second order in the grid spacing for
    smooth inputs and integer factors).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    width : int
        Channels at the finest level (doubled at every coarser level).
    levels : int
        Down-samplings (stride-2 convolutions).
    ndim : int
        Spatial dimensions (1, 2 or 3).
    kernel_size : int
        Odd kernel size at the reference resolution.
    padding : {"zeros", "circular", "reflect"}
        Boundary treatment.
    activation : str
        Activation after every convolution.
    reference_resolution : int or sequence of int
        Cells per axis at which the stored kernels are used as they are
        (``opflow train`` sets the training grid's number of points).

    Notes
    -----
    Sizes as in :mod:`opflow.operators.function_space`; ``model(field)``
    returns a Field on the same grid, ``model(tensor)`` a tensor.

    Examples
    --------
    >>> model = opflow.FunctionSpaceUNet(1, 1, width=4, levels=2, ndim=1,
    ...                                  reference_resolution=32)
    >>> model(torch.randn(2, 1, 64)).shape
    torch.Size([2, 1, 64])
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, levels: int = 3,
                 *, ndim: int = 2, kernel_size: int = 3, padding: str = "zeros",
                 activation: str = "gelu", reference_resolution: int | Sequence[int] = 64):
        super().__init__()
        self._build(in_channels, out_channels, width, levels, ndim, kernel_size, padding,
                    activation)
        if isinstance(reference_resolution, int) and not isinstance(reference_resolution, bool):
            reference = (reference_resolution,) * ndim
        else:
            try:
                reference = tuple(reference_resolution)  # type: ignore[arg-type]
            except TypeError:
                reference = ()
        if len(reference) != ndim or any(isinstance(r, bool) or not isinstance(r, int) or r < 1
                                         for r in reference):
            raise InvalidArgumentError("reference_resolution", f"a positive int or {ndim} of "
                                       "them (cells per axis)", reference_resolution)
        self.reference_resolution = reference
        self._set_config(in_channels=in_channels, out_channels=out_channels, width=width,
                         levels=levels, ndim=ndim, kernel_size=kernel_size, padding=padding,
                         activation=activation, reference_resolution=list(reference))

    def _scale(self, grid: Grid | None, spatial: Sequence[int]) -> tuple[float, ...] | None:
        cells = _intervals(grid, spatial)
        return tuple(n / r for n, r in zip(cells, self.reference_resolution))


class _AttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, pos_channels: int, mlp_ratio: float, act):
        super().__init__()
        self.act = act
        self.norm1 = nn.LayerNorm(width)
        self.attention = AttentionKernelIntegral(width, heads, pos_channels=pos_channels)
        self.norm2 = nn.LayerNorm(width)
        hidden = max(1, round(width * mlp_ratio))
        self.mlp1 = nn.Linear(width, hidden)
        self.mlp2 = nn.Linear(hidden, width)

    def forward(self, h: torch.Tensor, weights: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = h + self.attention(_channel_norm(h, self.norm1), weights, pos)
        m = _channel_norm(h, self.norm2)
        return h + _pointwise(self.act(_pointwise(m, self.mlp1)), self.mlp2)


@register_operator
class AttentionOperator(GridOperator):
    """A transformer neural operator: attention kernel integrals and pointwise MLPs.

    ``h <- h + K(LN(h))``, ``h <- h + MLP(LN(h))`` per layer, with ``K`` the
    :class:`~opflow.operators.blocks.AttentionKernelIntegral` (linear
    attention weighted by the grid's quadrature weights, Fourier coordinate
    embeddings in queries and keys), between a pointwise lifting (input and
    embedding) and a pointwise projection. Every part is pointwise or an
    integral over the domain, so the model runs on any grid with the same
    weights and approximates the same operator; the integrals are exact for
    band-limited inputs on periodic grids fine enough to hold them.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    width : int
        Channels of the hidden state.
    n_layers : int
        Number of transformer layers.
    ndim : int
        Spatial dimensions (1, 2 or 3).
    heads : int
        Attention heads per layer.
    n_frequencies : int
        Frequencies per axis of the coordinate embedding (0: none).
    mlp_ratio : float
        Hidden channels of the MLPs, times ``width``.
    activation : str
        Activation of the MLPs and of the projection.
    projection_channels : int
        Hidden width of the two-layer output projection.

    Notes
    -----
    ``model(field)`` maps a Field ``(*batch, in_channels, *grid.shape)`` to a
    Field on the same grid (quadrature weights and coordinates from the grid);
    ``model(tensor)`` takes a tensor as samples on a periodic unit box.

    Examples
    --------
    >>> model = opflow.AttentionOperator(1, 1, width=8, n_layers=2, ndim=1)
    >>> model(torch.randn(3, 1, 50)).shape
    torch.Size([3, 1, 50])
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, n_layers: int = 4,
                 *, ndim: int = 2, heads: int = 4, n_frequencies: int = 4,
                 mlp_ratio: float = 2.0, activation: str = "gelu",
                 projection_channels: int = 64):
        super().__init__()
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width), ("n_layers", n_layers), ("heads", heads),
                       ("projection_channels", projection_channels)):
            _positive(v, arg)
        if isinstance(ndim, bool) or ndim not in (1, 2, 3):
            raise InvalidArgumentError("ndim", "1, 2 or 3", ndim)
        if isinstance(n_frequencies, bool) or not isinstance(n_frequencies, int) \
                or n_frequencies < 0:
            raise InvalidArgumentError("n_frequencies", "a non-negative integer", n_frequencies)
        if not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0:
            raise InvalidArgumentError("mlp_ratio", "a positive number", mlp_ratio)
        self.act = get_activation(activation)
        self._set_config(in_channels=in_channels, out_channels=out_channels, width=width,
                         n_layers=n_layers, ndim=ndim, heads=heads, n_frequencies=n_frequencies,
                         mlp_ratio=mlp_ratio, activation=activation,
                         projection_channels=projection_channels)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.ndim, self.n_frequencies = ndim, n_frequencies
        pos_channels = 2 * n_frequencies * ndim
        self.lifting = nn.Linear(in_channels + pos_channels, width)
        self.blocks = nn.ModuleList(
            _AttentionBlock(width, heads, pos_channels, mlp_ratio, self.act)
            for _ in range(n_layers))
        self.projection = nn.ModuleList([nn.Linear(width, projection_channels),
                                         nn.Linear(projection_channels, out_channels)])

    def embedding(self, spatial: Sequence[int], grid: Grid | None = None,
                  dtype: torch.dtype = torch.float32,
                  device: torch.device | None = None) -> torch.Tensor:
        """The coordinate embedding on a grid: Fourier features of the normalised coordinates.

        Parameters
        ----------
        spatial : sequence of int
            The grid's shape.
        grid : Grid, optional
            The grid (default: a periodic unit box of shape ``spatial``).
        dtype : torch.dtype
            Of the result.
        device : torch.device, optional
            Of the result.

        Returns
        -------
        torch.Tensor, shape (2 * n_frequencies * ndim, *spatial)
        """
        coords = positional_channels(spatial, grid, dtype, device)
        return fourier_features(coords, self.n_frequencies)

    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input.
        grid : Grid, optional
            The input's grid: quadrature weights and coordinates (default: a
            periodic unit box).

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        b, _, *spatial = v.shape
        if math.prod(spatial) < 1:
            raise ShapeError("x", "at least one grid point", v)
        pos = self.embedding(spatial, grid, v.dtype, v.device)
        weights = _unit_weights(grid, spatial, v.dtype, v.device)
        h = _pointwise(torch.cat([v, pos.expand(b, *pos.shape)], dim=1), self.lifting)
        for block in self.blocks:
            h = block(h, weights, pos)
        h = self.act(_pointwise(h, self.projection[0]))
        return _pointwise(h, self.projection[1])

