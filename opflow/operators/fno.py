"""Fourier neural operator (Li et al. 2021) in 1, 2 and 3 dimensions.

Architecture::

    lift      : pointwise, (in_channels [+ ndim coordinates]) -> width
    layer x L : h <- act( K h + W h + b )        (no act after the last layer)
    project   : pointwise, width -> projection_channels -> out_channels

with ``K`` the spectral convolution of :func:`opflow.kernels.spectral_conv`
(the lowest ``modes`` Fourier modes, channel mixing per mode) and ``W`` a
pointwise linear map. With ``channel_mlp_expansion`` set, each layer also has
neuraloperator's channel MLP with a soft-gating skip::

    h' = act(K h + W h + b);  h <- act( MLP(h') + g * h )

which makes :meth:`FNO.from_neuraloperator` able to mirror that library's
default ``FNO`` exactly.

Resolution
----------
The weights act on Fourier modes, so a model trained on one grid evaluates on
any other grid of the same domain: on a finer grid the extra modes pass
through the pointwise part only; on a grid too coarse for ``modes`` the modes
are truncated to what the grid holds. Coordinates given to the model (option
``positional``) are normalised to ``[0, 1)`` per axis and follow the grid.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError
from ..field import Field
from ..grid import Grid
from ..kernels import spectral_conv, weight_shape
from .base import (
    NeuralOperator,
    check_uniform,
    get_activation,
    register_operator,
    split_input,
    to_field,
)

__all__ = ["FNO", "FourierLayer", "positional_channels"]


def _linear(x3: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """Pointwise linear map on channels-first data: ``(B, C_in, P) -> (B, C_out, P)``."""
    w = layer.weight.expand(x3.shape[0], -1, -1)
    if layer.bias is None:
        return torch.bmm(w, x3)
    return torch.baddbmm(layer.bias[None, :, None], w, x3)


def positional_channels(
    spatial: Sequence[int], grid: Grid | None, dtype: torch.dtype, device
) -> torch.Tensor:
    """Normalised coordinates, shape ``(ndim, *spatial)``.

    From a Field's grid: ``(coords - start) / (stop - start)`` per axis (so
    ``arange(n) / n`` on a periodic unit axis, ``linspace(0, 1, n)`` on a
    closed one). Without a grid (tensor input): ``arange(n) / n``, the
    convention of neuraloperator's grid embedding.
    """
    if grid is not None:
        axes = [torch.as_tensor((a.coords - a.bounds[0]) / a.length, dtype=dtype, device=device)
                for a in grid.axes]
    else:
        axes = [torch.arange(n, dtype=dtype, device=device) / n for n in spatial]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


# Spectral weights beyond this (4 GiB of float32 per 1e9) are a typo, not a model.
MAX_PARAMETERS = 1_000_000_000

class FourierLayer(nn.Module):
    """One FNO layer: ``act(K h + W h + b)`` (and the optional channel MLP).

    Parameters
    ----------
    width : int
        Channels in and out.
    modes : sequence of int
        Modes per axis (see :func:`opflow.kernels.spectral_conv`).
    act : callable
        Activation.
    mlp_hidden : int or None
        Hidden channels of the channel MLP (``None``: no MLP).
    backend : str or None
        Kernel backend for the spectral convolution.
    mlp_act : callable, optional
        The activation inside the channel MLP (default: ``act``).

    Notes
    -----
    ``spectral`` stores the complex weight mode-major, real and imaginary
    parts stacked: shape ``(2, *K, width_in, width_out)`` with the modes in the
    layout of :func:`opflow.kernels.spectral_conv` (:meth:`spectral_weight`
    gives the kernel's ``(C_in, C_out, *K)`` views); mode-major storage lets
    the kernel multiply per mode without copying the weight.
    """

    def __init__(self, width: int, modes: Sequence[int], act, mlp_hidden: int | None = None,
                 backend: str | None = None, mlp_act=None):
        super().__init__()
        self.modes = tuple(modes)
        self.act = act
        self.mlp_act = act if mlp_act is None else mlp_act
        self.backend = backend
        std = (2.0 / (width + width)) ** 0.5 / math.sqrt(2.0)
        kept = weight_shape(width, width, modes)[2:]
        self.spectral = nn.Parameter(torch.randn(2, *kept, width, width) * std)
        self.skip = nn.Linear(width, width)
        if mlp_hidden is None:
            self.mlp1 = self.mlp2 = self.gate = None
        else:
            self.mlp1 = nn.Linear(width, mlp_hidden)
            self.mlp2 = nn.Linear(mlp_hidden, width)
            self.gate = nn.Parameter(torch.ones(width))

    def spectral_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(real, imag)``, each ``(width, width, *K)``: the kernel's layout (views)."""
        d = len(self.modes)
        perm = (d, d + 1, *range(d))
        return self.spectral[0].permute(perm), self.spectral[1].permute(perm)

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

    def forward(self, h: torch.Tensor, last: bool = False) -> torch.Tensor:
        b, c, *spatial = h.shape
        h3 = h.reshape(b, c, -1)
        y = spectral_conv(h, self.spectral_weight(), self.fitted_modes(spatial),
                          bias=self.skip.bias, backend=self.backend)
        # pointwise branch accumulated in place: no extra pass over the output
        # (the products' backward does not need their outputs)
        y3 = y.view(b, -1, h3.shape[-1]).baddbmm_(self.skip.weight.expand(b, -1, -1), h3)
        if self.mlp1 is not None:
            if not last:
                y3 = self.act(y3)
            a = self.mlp_act(_linear(y3, self.mlp1))
            gated = torch.addcmul(self.mlp2.bias[None, :, None], self.gate[None, :, None], h3)
            y3 = gated.baddbmm_(self.mlp2.weight.expand(b, -1, -1), a)
        if not last:
            y3 = self.act(y3)
        return y3.view(b, -1, *spatial)


@register_operator
class FNO(NeuralOperator):
    """Fourier neural operator on 1-D, 2-D or 3-D uniform grids.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    modes : int or sequence of int
        Fourier modes per axis, ``m_j``: the leading axes keep frequencies
        ``-m_j .. m_j - 1`` and the last axis ``0 .. m_d - 1`` (Li et al.'s
        ``modes1, modes2``; neuraloperator's ``n_modes=(n1, n2)`` is
        ``modes=(n1 // 2, n2 // 2 + 1)``). An int needs ``ndim``.
    width : int
        Channels of the hidden layers.
    n_layers : int
        Number of Fourier layers.
    ndim : int, optional
        Number of spatial dimensions (default ``len(modes)``).
    lifting_channels : int, optional
        Hidden width of a two-layer lifting MLP; ``None`` lifts with one
        linear layer.
    projection_channels : int
        Hidden width of the two-layer projection MLP.
    activation : str
        ``"gelu"`` (default), ``"relu"``, ``"tanh"``, ``"silu"``, ...
    padding : int or sequence of int
        Zero padding added at the end of each axis before the Fourier layers
        and removed after them (use ~10-20% of the points on non-periodic
        domains; ``0`` for periodic ones).
    positional : bool
        Append normalised grid coordinates as ``ndim`` extra input channels.
    channel_mlp_expansion : float, optional
        Add a channel MLP of ``round(width * expansion)`` hidden channels with
        a soft-gating skip to each layer (neuraloperator's default is 0.5).
    channel_mlp_activation : str, optional
        The activation inside the channel MLPs (default: ``activation``;
        neuraloperator always uses ``"gelu"`` there).
    backend : str, optional
        Kernel backend for the spectral convolutions (default: the process
        setting, see :func:`opflow.kernels.use`).

    Notes
    -----
    Calling the model:

    * ``model(field)`` with a Field ``(*batch, in_channels, *grid.shape)`` on
      a uniform grid returns a Field ``(*batch, out_channels, *grid.shape)``
      on the same grid;
    * ``model(tensor)`` with ``(*batch, in_channels, *spatial)`` returns a
      tensor ``(*batch, out_channels, *spatial)``.

    Examples
    --------
    >>> model = FNO(1, 1, modes=(12, 12), width=32)
    >>> g = Grid.uniform(x=(0, 1, 64), y=(0, 1, 64), periodic=("x", "y"))
    >>> out = model(Field(torch.randn(8, 1, 64, 64), g))
    >>> out.shape, out.grid == g
    (torch.Size([8, 1, 64, 64]), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        width: int,
        n_layers: int = 4,
        *,
        ndim: int | None = None,
        lifting_channels: int | None = None,
        projection_channels: int = 128,
        activation: str = "gelu",
        padding: int | Sequence[int] = 0,
        positional: bool = True,
        channel_mlp_expansion: float | None = None,
        backend: str | None = None,
        channel_mlp_activation: str | None = None,
    ):
        super().__init__()
        modes_t = _modes_tuple(modes, ndim)
        d = len(modes_t)
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width), ("n_layers", n_layers),
                       ("projection_channels", projection_channels)):
            if not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(arg, "a positive integer", v)
        spectral = 2 * n_layers * width * width * math.prod(
            weight_shape(width, width, modes_t)[2:])
        if spectral > MAX_PARAMETERS:  # refuse before torch tries to allocate it
            raise InvalidArgumentError(
                "width", f"a size giving at most {MAX_PARAMETERS:.0e} spectral weights "
                f"(width={width}, modes={list(modes_t)}, n_layers={n_layers} give "
                f"{spectral:.1e})", width)
        if lifting_channels is not None and (not isinstance(lifting_channels, int)
                                             or lifting_channels < 1):
            raise InvalidArgumentError("lifting_channels", "a positive integer or None",
                                       lifting_channels)
        pad = (padding,) * d if isinstance(padding, int) else tuple(padding)
        if len(pad) != d or any(not isinstance(p, int) or p < 0 for p in pad):
            raise InvalidArgumentError("padding", f"a non-negative int or {d} of them", padding)
        if channel_mlp_expansion is not None and not channel_mlp_expansion > 0:
            raise InvalidArgumentError("channel_mlp_expansion", "a positive number or None",
                                       channel_mlp_expansion)
        if backend is not None:
            from ..kernels.backend import resolve_backend

            resolve_backend(backend)
        self._set_config(
            in_channels=in_channels, out_channels=out_channels, modes=list(modes_t), width=width,
            n_layers=n_layers, ndim=d, lifting_channels=lifting_channels,
            projection_channels=projection_channels, activation=activation,
            padding=list(pad), positional=positional,
            channel_mlp_expansion=channel_mlp_expansion, backend=backend,
            channel_mlp_activation=channel_mlp_activation)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.ndim, self.modes, self.padding, self.positional = d, modes_t, pad, positional
        self.act = get_activation(activation)
        lift_in = in_channels + (d if positional else 0)
        if lifting_channels is None:
            self.lifting = nn.ModuleList([nn.Linear(lift_in, width)])
        else:
            self.lifting = nn.ModuleList([nn.Linear(lift_in, lifting_channels),
                                          nn.Linear(lifting_channels, width)])
        hidden = None if channel_mlp_expansion is None else max(
            1, round(width * channel_mlp_expansion))
        mlp_act = None if channel_mlp_activation is None else get_activation(
            channel_mlp_activation, "channel_mlp_activation")
        self.layers = nn.ModuleList(
            FourierLayer(width, modes_t, self.act, hidden, backend, mlp_act)
            for _ in range(n_layers))
        self.projection = nn.ModuleList([nn.Linear(width, projection_channels),
                                         nn.Linear(projection_channels, out_channels)])

    # ------------------------------------------------------------------ core
    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)`` (``grid`` for coordinates).

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input.
        grid : Grid, optional
            Coordinates of the positional channels (default: the unit box).

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        b, _, *spatial = v.shape
        x3 = v.reshape(b, self.in_channels, -1)
        first = self.lifting[0]
        if self.positional:
            pos = positional_channels(spatial, grid, v.dtype, v.device).reshape(self.ndim, -1)
            w_data = first.weight[:, : self.in_channels]
            offset = torch.addmm(first.bias[:, None], first.weight[:, self.in_channels:], pos)
            h = torch.baddbmm(offset[None], w_data.expand(b, -1, -1), x3)
        else:
            h = _linear(x3, first)
        if len(self.lifting) == 2:
            h = _linear(self.act(h), self.lifting[1])
        h = h.view(b, self.width, *spatial)
        if any(self.padding):
            pads = [p for q in reversed(self.padding) for p in (0, q)]
            h = F.pad(h, pads)
        for i, layer in enumerate(self.layers):
            h = layer(h, last=i == len(self.layers) - 1)
        if any(self.padding):
            h = h[(..., *(slice(0, n) for n in spatial))]
        h3 = h.reshape(b, self.width, -1)
        out = _linear(self.act(_linear(h3, self.projection[0])), self.projection[1])
        return out.view(b, self.out_channels, *spatial)

    def forward(self, x: Field | torch.Tensor) -> Field | torch.Tensor:
        """Apply the operator; see the class notes for shapes."""
        values, grid, batch = split_input(x, self.ndim, self.in_channels)
        if grid is not None:
            check_uniform(grid)
        return to_field(self.forward_values(values, grid), batch, grid)

    # --------------------------------------------------------------- interop
    @classmethod
    def from_neuraloperator(cls, model: nn.Module) -> "FNO":
        """An FNO with the architecture and weights of a ``neuralop.models.FNO``.

        See :func:`opflow.operators.interop.fno_from_neuraloperator` for the
        configurations that can be mirrored.

        Parameters
        ----------
        model : torch.nn.Module
            A ``neuralop.models.FNO``.

        Returns
        -------
        FNO
            Same outputs for the same inputs.
        """
        from .interop import fno_from_neuraloperator

        return fno_from_neuraloperator(model)


def _modes_tuple(modes, ndim) -> tuple[int, ...]:
    if isinstance(modes, int):
        if ndim is None:
            raise InvalidArgumentError("ndim", "the number of spatial dimensions when `modes` is "
                                       "an int (or pass one int per axis)", ndim)
        modes = (modes,) * ndim
    try:
        modes = tuple(modes)
    except TypeError:
        raise InvalidArgumentError("modes", "an int or a sequence of ints", modes) from None
    if not 1 <= len(modes) <= 3 or any(not isinstance(m, int) or m < 1 for m in modes):
        raise InvalidArgumentError("modes", "1 to 3 positive ints (one per axis)", modes)
    if ndim is not None and ndim != len(modes):
        raise InvalidArgumentError("ndim", f"{len(modes)} (the length of `modes`)", ndim)
    return modes
