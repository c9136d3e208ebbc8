"""DyMixOp: local-global mixing layers with dynamics-informed connections (1-D and 2-D).

After a pointwise lifting ``c_0 = P(a)`` (the input and, optionally, its
normalised coordinates) every layer ``l`` applies::

    F_l(c) = LT(c) + FD(c) + A(LGM(c))
    LGM(c) = GT(c) * LC(c)                       (elementwise product)

* ``GT``: a spectral convolution (the lowest ``modes`` Fourier modes mixed
  per mode, :func:`opflow.kernels.spectral_conv`), the *global* part;
* ``LC``: a ``kernel_size`` convolution (pointwise by default, as in the
  public code), the *local* part; their product is the local-global mixing,
  a learned quadratic nonlinearity of the kind that advection terms have;
* ``LT``: a pointwise linear map; ``FD``: a :class:`~opflow.operators.blocks.LearnableStencil`
  (taps summing to zero, divided by the grid spacing: a learned first
  derivative); the two linear parts of the dynamics;
* ``A``: the activation, applied to the mixing only.

Dynamics-informed connections: the state is advanced like an explicit time
step and every layer's output is kept::

    c_{l+1} = c_l + sigmoid(lambda) F_l(c_l)           (l < L - 1)
    c_out   = c_0 + sum_l w_l F_l(c_l)

with a learned step ``lambda`` and learned weights ``w_l``; ``c_out`` is
projected pointwise to the output. (The public code applies the activation
to the whole ``F_l``, with a linear two-layer ``A``; here the formula above,
in which the linear dynamics stay linear. It also passes a grid width of 1
to its stencils whatever the grid; here the spacing of the input's grid.)

Resolution
----------
``GT`` acts on Fourier modes and ``LT``, ``A`` and the product act
pointwise, so with ``kernel_size=1`` the mixing of a band-limited input is
the same function on any grid that holds ``modes`` (to rounding). ``FD``
converges to a derivative as the grid is refined (first order), so the
whole layer converges too; weights are the same on every grid. The spacing
comes from the input Field's grid (a tensor is taken as a periodic unit
box, spacing ``1 / n``); on a 2-D grid the stencil is divided by the
geometric mean of the two spacings.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError
from ..grid import Grid
from ..kernels import spectral_conv, weight_shape
from .base import GridOperator, get_activation, register_operator
from .blocks import PADDINGS, LearnableStencil, _pad_spatial, _pointwise, _spacings
from .fno import positional_channels

__all__ = ["DyMixOp", "DyMixLayer"]

_CONV = {1: F.conv1d, 2: F.conv2d}


class DyMixLayer(nn.Module):
    """One DyMixOp layer ``F(c) = LT(c) + FD(c) + A(GT(c) * LC(c))``.

    Parameters
    ----------
    width : int
        Channels in and out.
    modes : sequence of int
        Fourier modes per axis of the spectral convolution ``GT`` (layout of
        :func:`opflow.kernels.spectral_conv`).
    kernel_size : int
        Odd size of the local convolution ``LC`` (1: pointwise).
    stencil_size : int
        Odd number of taps per axis of the finite-difference stencil ``FD``.
    activation : str
        The activation ``A``.
    padding : {"circular", "zeros", "reflect"}
        Boundary treatment of ``LC`` and ``FD``.
    """

    def __init__(self, width: int, modes: Sequence[int], kernel_size: int = 1,
                 stencil_size: int = 3, activation: str = "gelu", padding: str = "circular"):
        super().__init__()
        self.width, self.modes, self.ndim = width, tuple(modes), len(modes)
        self.kernel_size, self.padding = kernel_size, padding
        self.act = get_activation(activation)
        d = self.ndim
        std = 1.0 / math.sqrt(2.0 * width)
        kept = weight_shape(width, width, self.modes)
        self.spectral = nn.Parameter(torch.randn(2, *kept) * std)
        self.spectral_bias = nn.Parameter(torch.zeros(width))
        self.local = nn.Parameter(torch.randn(width, width, *(kernel_size,) * d)
                                  / math.sqrt(width * kernel_size**d))
        self.local_bias = nn.Parameter(torch.ones(width))
        self.linear = nn.Linear(width, width)
        self.stencil = LearnableStencil(width, width, stencil_size, d, padding=padding)

    def fitted_modes(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Modes used on a grid of shape ``spatial`` (truncated if it is too coarse).

        Parameters
        ----------
        spatial : sequence of int
            The grid's shape.

        Returns
        -------
        tuple of int
        """
        lead = tuple(min(m, n // 2) for m, n in zip(self.modes[:-1], spatial[:-1]))
        return (*lead, min(self.modes[-1], spatial[-1] // 2 + 1))

    def global_part(self, c: torch.Tensor) -> torch.Tensor:
        """``GT(c)``: the spectral convolution (with its bias).

        Parameters
        ----------
        c : torch.Tensor, shape (B, width, *spatial)
            The state.

        Returns
        -------
        torch.Tensor, shape (B, width, *spatial)
        """
        return spectral_conv(c, (self.spectral[0], self.spectral[1]),
                             self.fitted_modes(c.shape[2:]), bias=self.spectral_bias)

    def local_part(self, c: torch.Tensor) -> torch.Tensor:
        """``LC(c)``: the local convolution (with its bias).

        Parameters
        ----------
        c : torch.Tensor, shape (B, width, *spatial)
            The state.

        Returns
        -------
        torch.Tensor, shape (B, width, *spatial)
        """
        c = _pad_spatial(c, [self.kernel_size // 2] * self.ndim, self.padding)
        return _CONV[self.ndim](c, self.local, self.local_bias)

    def mixing(self, c: torch.Tensor) -> torch.Tensor:
        """``LGM(c) = GT(c) * LC(c)``, the local-global mixing.

        Parameters
        ----------
        c : torch.Tensor, shape (B, width, *spatial)
            The state.

        Returns
        -------
        torch.Tensor, shape (B, width, *spatial)
        """
        return self.global_part(c) * self.local_part(c)

    def forward(self, c: torch.Tensor, spacing: float) -> torch.Tensor:
        return (_pointwise(c, self.linear) + self.stencil(c, spacing)
                + self.act(self.mixing(c)))


@register_operator
class DyMixOp(GridOperator):
    """DyMixOp: local-global mixing layers with dynamics-informed connections.

    See :mod:`opflow.operators.dymixop` for the layer and the connections.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    modes : int or sequence of int
        Fourier modes per axis of the spectral convolutions (as for
        :class:`~opflow.FNO`). An int needs ``ndim``.
    width : int
        Channels of the hidden state.
    n_layers : int
        Number of layers.
    ndim : int, optional
        Spatial dimensions, 1 or 2 (default ``len(modes)``).
    kernel_size : int
        Odd size of the local convolution of the mixing (1: pointwise).
    stencil_size : int
        Odd number of taps per axis of the finite-difference stencils.
    activation : str
        Activation of the mixing and of the projection.
    padding : {"circular", "zeros", "reflect"}
        Boundary treatment of the local convolutions and stencils.
    positional : bool
        Append normalised grid coordinates as ``ndim`` input channels.
    projection_channels : int
        Hidden width of the two-layer output projection.

    Notes
    -----
    ``model(field)`` maps a Field ``(*batch, in_channels, *grid.shape)`` on a
    uniform grid to a Field ``(*batch, out_channels, *grid.shape)`` on the
    same grid (the stencils use the grid's spacing); ``model(tensor)`` does
    the same on tensors, taken as samples on a periodic unit box.

    Examples
    --------
    >>> model = opflow.DyMixOp(1, 1, modes=8, width=8, n_layers=2, ndim=1)
    >>> model(torch.randn(4, 1, 64)).shape
    torch.Size([4, 1, 64])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        width: int = 32,
        n_layers: int = 4,
        *,
        ndim: int | None = None,
        kernel_size: int = 1,
        stencil_size: int = 3,
        activation: str = "gelu",
        padding: str = "circular",
        positional: bool = True,
        projection_channels: int = 64,
    ):
        super().__init__()
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width), ("n_layers", n_layers),
                       ("projection_channels", projection_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(arg, "a positive integer", v)
        modes_t = _modes(modes, ndim)
        d = len(modes_t)
        for arg, v in (("kernel_size", kernel_size), ("stencil_size", stencil_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
                raise InvalidArgumentError(arg, "an odd positive integer", v)
        if stencil_size < 3:
            raise InvalidArgumentError("stencil_size", "at least 3 taps", stencil_size)
        if padding not in PADDINGS:
            raise InvalidArgumentError("padding", f"one of {PADDINGS}", padding)
        self.act = get_activation(activation)
        self._set_config(in_channels=in_channels, out_channels=out_channels,
                         modes=list(modes_t), width=width, n_layers=n_layers, ndim=d,
                         kernel_size=kernel_size, stencil_size=stencil_size,
                         activation=activation, padding=padding, positional=positional,
                         projection_channels=projection_channels)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.ndim, self.modes, self.positional = d, modes_t, bool(positional)
        self.lifting = nn.Linear(in_channels + (d if positional else 0), width)
        self.layers = nn.ModuleList(
            DyMixLayer(width, modes_t, kernel_size, stencil_size, activation, padding)
            for _ in range(n_layers))
        self.step = nn.Parameter(torch.zeros(()))  # lambda: sigmoid(0) = 1/2
        self.layer_weights = nn.Parameter(torch.full((n_layers,), 1.0 / n_layers))
        self.projection = nn.ModuleList([nn.Linear(width, projection_channels),
                                         nn.Linear(projection_channels, out_channels)])

    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input.
        grid : Grid, optional
            The input's grid: spacing of the stencils and coordinates
            (default: a periodic unit box).

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        b, _, *spatial = v.shape
        if self.positional:
            pos = positional_channels(spatial, grid, v.dtype, v.device)
            v = torch.cat([v, pos.expand(b, *pos.shape)], dim=1)
        spacing = math.prod(_spacings(grid, spatial)) ** (1.0 / self.ndim)
        c0 = _pointwise(v, self.lifting)
        c, out = c0, c0
        rate = torch.sigmoid(self.step)
        for i, layer in enumerate(self.layers):
            f = layer(c, spacing)
            out = out + self.layer_weights[i] * f
            if i < len(self.layers) - 1:
                c = c + rate * f
        h = self.act(_pointwise(out, self.projection[0]))
        return _pointwise(h, self.projection[1])



def _modes(modes: int | Sequence[int], ndim: int | None) -> tuple[int, ...]:
    if ndim is not None and (isinstance(ndim, bool) or ndim not in (1, 2)):
        raise InvalidArgumentError("ndim", "1 or 2", ndim)
    if isinstance(modes, int) and not isinstance(modes, bool):
        if ndim is None:
            raise InvalidArgumentError("ndim", "the number of spatial dimensions when `modes` "
                                       "is an int (or pass one int per axis)", ndim)
        modes = (modes,) * ndim
    try:
        out = tuple(modes)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError("modes", "an int or a sequence of ints", modes) from None
    if not 1 <= len(out) <= 2 or any(isinstance(m, bool) or not isinstance(m, int) or m < 1
                                     for m in out):
        raise InvalidArgumentError("modes", "1 or 2 positive ints (one per axis)", modes)
    if ndim is not None and ndim != len(out):
        raise InvalidArgumentError("ndim", f"{len(out)} (the length of `modes`)", ndim)
    return out
