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
from torch.nn.parameter import UninitializedParameter

from ..errors import InvalidArgumentError, ShapeError
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

    def __init__(self, width: int, modes: Sequence[int] | None, act,
                 mlp_hidden: int | None = None, backend: str | None = None, mlp_act=None):
        super().__init__()
        self.act = act
        self.mlp_act = act if mlp_act is None else mlp_act
        self.backend = backend
        self.width = width
        self.modes: tuple[int, ...] = ()
        self.spectral = UninitializedParameter()
        if modes is not None:
            self.materialize(modes)
        self.skip = nn.Linear(width, width)
        if mlp_hidden is None:
            self.mlp1 = self.mlp2 = self.gate = None
        else:
            self.mlp1 = nn.Linear(width, mlp_hidden)
            self.mlp2 = nn.Linear(mlp_hidden, width)
            self.gate = nn.Parameter(torch.ones(width))

    def materialize(self, modes: Sequence[int]) -> None:
        """Give the spectral weight its shape and initial values (a layer built
        with ``modes=None`` has none yet); the parameter object stays the same,
        so an optimizer made before sees the values.

        Parameters
        ----------
        modes : sequence of int
            Modes per axis.
        """
        self.modes = tuple(modes)
        width = self.width
        std = (2.0 / (width + width)) ** 0.5 / math.sqrt(2.0)
        kept = weight_shape(width, width, self.modes)[2:]
        with torch.no_grad():
            if isinstance(self.spectral, UninitializedParameter):
                self.spectral.materialize((2, *kept, width, width))
            self.spectral.normal_().mul_(std)

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
        ``modes=(n1 // 2, n2 // 2 + 1)``). An int is the same number for every
        axis: of ``ndim`` axes when ``ndim`` is given, else of as many axes as
        the first input has (see Notes).
    width : int
        Channels of the hidden layers.
    n_layers : int
        Number of Fourier layers.
    ndim : int, optional
        Number of spatial dimensions (default ``len(modes)``; for an int
        ``modes``, that of the first input).
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

    With an int ``modes`` and no ``ndim`` (``FNO(1, 1, modes=12, width=32)``)
    the lifting and spectral weights get their shapes at the first call, from
    the input: a Field's ``grid.ndim``, or ``x.ndim - 2`` for a tensor
    ``(batch, in_channels, *spatial)``. An optimizer made before that call
    still trains them (they are filled in place). ``config`` keeps the
    arguments as given, so :func:`opflow.operators.build_operator` rebuilds
    such a model and ``load_state_dict`` fixes its dimension from the saved
    weights; ``state_dict()`` before the first call is refused. Pass ``ndim``
    for distributed training, which needs the weights before the first batch.

    Examples
    --------
    >>> model = FNO(1, 1, modes=(12, 12), width=32)
    >>> g = Grid.uniform(x=(0, 1, 64), y=(0, 1, 64), periodic=("x", "y"))
    >>> out = model(Field(torch.randn(8, 1, 64, 64), g))
    >>> out.shape, out.grid == g
    (torch.Size([8, 1, 64, 64]), True)
    >>> lazy = FNO(1, 1, modes=12, width=32)  # 2-D from its first input
    >>> lazy(Field(torch.randn(8, 1, 64, 64), g)).shape, lazy.modes
    (torch.Size([8, 1, 64, 64]), (12, 12))
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
        modes_t = _modes_tuple(modes, ndim)  # None: an int, ndim from the first input
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width), ("n_layers", n_layers),
                       ("projection_channels", projection_channels)):
            if not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(arg, "a positive integer", v)
        if lifting_channels is not None and (not isinstance(lifting_channels, int)
                                             or lifting_channels < 1):
            raise InvalidArgumentError("lifting_channels", "a positive integer or None",
                                       lifting_channels)
        if modes_t is not None:
            _check_size(width, modes_t, n_layers)
        pad = _padding(padding, None if modes_t is None else len(modes_t))
        if channel_mlp_expansion is not None and not channel_mlp_expansion > 0:
            raise InvalidArgumentError("channel_mlp_expansion", "a positive number or None",
                                       channel_mlp_expansion)
        if backend is not None:
            from ..kernels.backend import resolve_backend

            resolve_backend(backend)
        self._set_config(
            in_channels=in_channels, out_channels=out_channels,
            modes=modes if modes_t is None else list(modes_t), width=width,
            n_layers=n_layers, ndim=None if modes_t is None else len(modes_t),
            lifting_channels=lifting_channels,
            projection_channels=projection_channels, activation=activation,
            padding=list(pad) if isinstance(pad, tuple) else pad, positional=positional,
            channel_mlp_expansion=channel_mlp_expansion, backend=backend,
            channel_mlp_activation=channel_mlp_activation)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.positional, self.n_layers = positional, n_layers
        # ndim, modes and padding are None until the first input when `modes` is an
        # int without `ndim`; so are the shapes of the lifting and spectral weights.
        self.ndim: int | None = None
        self.modes: tuple[int, ...] | None = None
        self.padding: tuple[int, ...] | int = pad
        self.act = get_activation(activation)
        d = None if modes_t is None else len(modes_t)
        first = nn.Linear(in_channels + (d if positional else 0) if d else 1,
                          lifting_channels or width)
        if d is None:
            first.weight = UninitializedParameter()
        if lifting_channels is None:
            self.lifting = nn.ModuleList([first])
        else:
            self.lifting = nn.ModuleList([first, nn.Linear(lifting_channels, width)])
        hidden = None if channel_mlp_expansion is None else max(
            1, round(width * channel_mlp_expansion))
        mlp_act = None if channel_mlp_activation is None else get_activation(
            channel_mlp_activation, "channel_mlp_activation")
        self.layers = nn.ModuleList(
            FourierLayer(width, modes_t, self.act, hidden, backend, mlp_act)
            for _ in range(n_layers))
        self.projection = nn.ModuleList([nn.Linear(width, projection_channels),
                                         nn.Linear(projection_channels, out_channels)])
        self.register_load_state_dict_pre_hook(_materialize_before_load)
        self.register_state_dict_pre_hook(_refuse_state_dict_before_first_call)
        if modes_t is not None:
            self.ndim, self.modes, self.padding = len(modes_t), modes_t, _padding(pad, len(modes_t))

    def _materialize(self, d: int) -> None:
        """Fix the number of spatial dimensions ``d``: shapes and initial values of the
        lifting and spectral weights (in place: optimizers made before see them)."""
        config = self._config
        modes_t = _modes_tuple(config["modes"], d)
        assert modes_t is not None
        pad = _padding(self.padding, d)
        _check_size(self.width, modes_t, self.n_layers)
        first = self.lifting[0]
        first.in_features = self.in_channels + (d if self.positional else 0)
        with torch.no_grad():
            first.weight.materialize((first.out_features, first.in_features))
            first.reset_parameters()
        for layer in self.layers:
            layer.materialize(modes_t)
        self.ndim, self.modes, self.padding = d, modes_t, pad

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
        """Apply the operator; see the class notes for shapes.

        Parameters
        ----------
        x : Field or torch.Tensor
            Shape ``(*batch, in_channels, *spatial)``. The first input of a model
            built with an int ``modes`` and no ``ndim`` fixes its dimension: a
            Field's ``grid.ndim``, or ``x.ndim - 2`` for a tensor
            ``(batch, in_channels, *spatial)``.

        Returns
        -------
        Field or torch.Tensor
            Shape ``(*batch, out_channels, *spatial)``, a Field for a Field.
        """
        if self.ndim is None:
            self._materialize(_input_ndim(x))
        assert self.ndim is not None
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


def _modes_tuple(modes, ndim) -> tuple[int, ...] | None:
    """Modes per axis; ``None`` for an int without ``ndim`` (fixed by the first input)."""
    if isinstance(modes, int) and not isinstance(modes, bool):
        if modes < 1:
            raise InvalidArgumentError("modes", "a positive int or 1 to 3 of them (one per axis)",
                                       modes)
        if ndim is None:
            return None
        if not isinstance(ndim, int) or not 1 <= ndim <= 3:
            raise InvalidArgumentError("ndim", "1, 2 or 3 spatial dimensions", ndim)
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


def _check_size(width: int, modes: tuple[int, ...], n_layers: int) -> None:
    """Refuse spectral weights beyond MAX_PARAMETERS before torch tries to allocate them."""
    spectral = 2 * n_layers * width * width * math.prod(weight_shape(width, width, modes)[2:])
    if spectral > MAX_PARAMETERS:
        raise InvalidArgumentError(
            "width", f"a size giving at most {MAX_PARAMETERS:.0e} spectral weights "
            f"(width={width}, modes={list(modes)}, n_layers={n_layers} give "
            f"{spectral:.1e})", width)


def _padding(padding, d: int | None) -> tuple[int, ...] | int:
    """Padding per axis (an int stays an int while ``d`` is unknown)."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise InvalidArgumentError("padding", "a non-negative int or one per axis", padding)
        return padding if d is None else (padding,) * d
    try:
        pad = tuple(padding)
    except TypeError:
        raise InvalidArgumentError("padding", "a non-negative int or one per axis",
                                   padding) from None
    if any(not isinstance(p, int) or p < 0 for p in pad) or (d is not None and len(pad) != d):
        raise InvalidArgumentError(
            "padding", "a non-negative int or " + ("one per axis" if d is None else
                                                   f"{d} of them (one per axis)"), padding)
    return pad


def _input_ndim(x) -> int:
    """Spatial dimensions of a first input: a Field's grid, or ``(B, C, *spatial)``."""
    if isinstance(x, Field):
        d = x.grid.ndim
    elif isinstance(x, torch.Tensor):
        d = x.ndim - 2
    else:
        raise InvalidArgumentError("x", "an opflow.Field or a torch.Tensor", x)
    if not 1 <= d <= 3:
        raise ShapeError(
            "x", "a Field on a 1-D to 3-D grid or a tensor (batch, channels, *spatial) with 1 "
            "to 3 spatial dims (the FNO was built with an int `modes` and no `ndim`, so its "
            "first input fixes the dimension; pass ndim= for other layouts)", x)
    return d


def _materialize_before_load(module: nn.Module, state_dict, prefix: str, *args) -> None:
    """Loading weights into a model whose dimension is still open fixes it from them."""
    key = prefix + "layers.0.spectral"
    if isinstance(module, FNO) and module.ndim is None and key in state_dict:
        module._materialize(state_dict[key].ndim - 3)  # (2, *modes, width, width)


def _refuse_state_dict_before_first_call(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    if isinstance(module, FNO) and module.ndim is None:
        raise InvalidArgumentError(
            "model", "an FNO that has seen an input (built with an int `modes` and no `ndim`, "
            "its weights have no shape until the first call; call it once or pass ndim=)",
            "a model whose dimension is not fixed yet")
