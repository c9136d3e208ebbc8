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
from typing import Any, Sequence, cast

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
    fno_skip : {"linear", "soft-gating", "identity", None}
        The skip path beside the spectral convolution (see :class:`FNO`).
    channel_mlp_skip : {"soft-gating", "linear", "identity", None}
        The skip path beside the channel MLP (see :class:`FNO`).
    norm : {None, "instance_norm", "group_norm", "batch_norm"}
        Normalisation, two per layer (see :class:`FNO`).
    preactivation : bool
        Activation (and the first normalisation) before the convolution.
    stabilizer : {None, "tanh"}
        ``"tanh"``: the spectral convolution sees ``tanh(h)``.

    Notes
    -----
    ``spectral`` stores the complex weight mode-major, real and imaginary
    parts stacked: shape ``(2, *K, width_in, width_out)`` with the modes in the
    layout of :func:`opflow.kernels.spectral_conv` (:meth:`spectral_weight`
    gives the kernel's ``(C_in, C_out, *K)`` views); mode-major storage lets
    the kernel multiply per mode without copying the weight.
    """

    def __init__(self, width: int, modes: Sequence[int] | None, act,
                 mlp_hidden: int | None = None, backend: str | None = None, mlp_act=None,
                 *, fno_skip: str | None = "linear", channel_mlp_skip: str | None = "soft-gating",
                 norm: str | None = None, preactivation: bool = False,
                 stabilizer: str | None = None):
        super().__init__()
        self.act = act
        self.mlp_act = act if mlp_act is None else mlp_act
        self.backend = backend
        self.width = width
        self.modes: tuple[int, ...] = ()
        self.spectral = UninitializedParameter()
        if modes is not None:
            self.materialize(modes)
        self.fno_skip, self.channel_mlp_skip = fno_skip, channel_mlp_skip
        self.norm, self.preactivation, self.stabilizer = norm, preactivation, stabilizer
        # the defaults take the fused path of `forward`; any other option the general one
        self.general = (fno_skip != "linear" or channel_mlp_skip != "soft-gating"
                        or norm is not None or preactivation or stabilizer is not None)
        # the spectral convolution's bias: the linear skip's bias when nothing comes
        # between the two, else a parameter of its own (a norm acts on conv + bias only)
        own_bias = fno_skip != "linear" or norm is not None
        self.skip: nn.Linear | None = (nn.Linear(width, width, bias=not own_bias)
                                       if fno_skip == "linear" else None)
        self.bias: nn.Parameter | None = None
        if own_bias:
            bound = 1.0 / math.sqrt(width)
            self.bias = nn.Parameter(torch.empty(width).uniform_(-bound, bound))
        self.skip_gate = nn.Parameter(torch.ones(width)) if fno_skip == "soft-gating" else None
        self.mlp_skip: nn.Linear | None = None
        if mlp_hidden is None:
            self.mlp1 = self.mlp2 = self.gate = None
        else:
            self.mlp1 = nn.Linear(width, mlp_hidden)
            self.mlp2 = nn.Linear(mlp_hidden, width)
            self.gate = (nn.Parameter(torch.ones(width)) if channel_mlp_skip == "soft-gating"
                         else None)
            if channel_mlp_skip == "linear":
                self.mlp_skip = nn.Linear(width, width, bias=False)
        self.norm1: nn.Module | None = None
        self.norm2: nn.Module | None = None
        if norm is not None:
            self.norm1, self.norm2 = _norm_layer(norm, width), _norm_layer(norm, width)

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
        if self.general:
            return self._forward_general(h, last)
        assert self.skip is not None
        b, c, *spatial = h.shape
        h3 = h.reshape(b, c, -1)
        y = spectral_conv(h, self.spectral_weight(), self.fitted_modes(spatial),
                          bias=self.skip.bias, backend=self.backend)
        # pointwise branch accumulated in place: no extra pass over the output
        # (the products' backward does not need their outputs)
        y3 = y.view(b, -1, h3.shape[-1]).baddbmm_(self.skip.weight.expand(b, -1, -1), h3)
        if self.mlp1 is not None:
            mlp2, gate = self.mlp2, self.gate
            assert mlp2 is not None and mlp2.bias is not None and gate is not None  # fast path
            if not last:
                y3 = self.act(y3)
            a = self.mlp_act(_linear(y3, self.mlp1))
            gated = torch.addcmul(mlp2.bias[None, :, None], gate[None, :, None], h3)
            y3 = gated.baddbmm_(mlp2.weight.expand(b, -1, -1), a)
        if not last:
            y3 = self.act(y3)
        return y3.view(b, -1, *spatial)

    def _forward_general(self, h: torch.Tensor, last: bool) -> torch.Tensor:
        """The layer with any skip, norm, preactivation or stabilizer option::

            post:  y = N1(K s(h) + b) + S(h);  y = act(y) [if MLP, not last]
                   y = N2(MLP(y) + G(h));      y = act(y) [not last]
            pre:   x = N1(act(h));  y = K s(x) + b + S(x);  y = act(y) [not last]
                   y = MLP(N2(y)) + G(x)

        with ``s`` the stabilizer (identity or tanh), ``S`` and ``G`` the skips
        beside the convolution and the MLP (each may be absent).
        """
        b, c, *spatial = h.shape
        x = h
        if self.preactivation:
            x = self.act(x)
            if self.norm1 is not None:
                x = self.norm1(x.reshape(b, c, -1)).view_as(x)
        x3 = x.reshape(b, c, -1)
        conv_in = torch.tanh(x) if self.stabilizer == "tanh" else x
        # without a bias of its own, the convolution's bias is the linear skip's
        y = spectral_conv(conv_in, self.spectral_weight(), self.fitted_modes(spatial),
                          bias=self.bias, backend=self.backend)
        y3 = y.reshape(b, -1, x3.shape[-1])
        if self.norm1 is not None and not self.preactivation:
            y3 = self.norm1(y3)
        if self.skip is not None:
            y3 = y3 + _linear(x3, self.skip)
        elif self.skip_gate is not None:
            y3 = y3 + self.skip_gate[None, :, None] * x3
        elif self.fno_skip == "identity":
            y3 = y3 + x3
        if not last and (self.mlp1 is not None or self.preactivation):
            y3 = self.act(y3)
        if self.norm2 is not None and self.preactivation:
            y3 = self.norm2(y3)
        if self.mlp1 is not None:
            assert self.mlp2 is not None
            y3 = _linear(self.mlp_act(_linear(y3, self.mlp1)), self.mlp2)
            if self.gate is not None:
                y3 = y3 + self.gate[None, :, None] * x3
            elif self.mlp_skip is not None:
                y3 = y3 + _linear(x3, self.mlp_skip)
            elif self.channel_mlp_skip == "identity":
                y3 = y3 + x3
        if self.norm2 is not None and not self.preactivation:
            y3 = self.norm2(y3)
        if not last and not self.preactivation:
            y3 = self.act(y3)
        return y3.reshape(b, -1, *spatial)


_SKIPS = ("linear", "soft-gating", "identity", None)
_NORMS = (None, "instance_norm", "group_norm", "batch_norm")


def _norm_layer(norm: str, width: int) -> nn.Module:
    """A normalisation of ``(B, width, P)`` over the points (and the batch or channels)."""
    if norm == "instance_norm":
        return nn.InstanceNorm1d(width)  # per sample and channel, no parameters
    if norm == "group_norm":
        return nn.GroupNorm(1, width)  # per sample over channels and points, affine
    return nn.BatchNorm1d(width)  # over batch and points, affine, running statistics


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
    fno_skip : {"linear", "soft-gating", "identity", None}
        The skip path added to the spectral convolution in each layer: a
        pointwise linear map (default), a per-channel scale, the input itself,
        or none (neuraloperator's ``fno_skip``).
    channel_mlp_skip : {"soft-gating", "linear", "identity", None}
        The skip path added to the channel MLP's output: a per-channel scale
        (default), a pointwise linear map without bias, the layer's input, or
        none (neuraloperator's ``channel_mlp_skip``; needs
        ``channel_mlp_expansion``).
    norm : {None, "instance_norm", "group_norm", "batch_norm"}
        Two normalisations per layer, on the spectral convolution's output and
        after the channel MLP (neuraloperator's ``norm``): per sample and
        channel without parameters, per sample over all channels with a
        per-channel scale and shift (``GroupNorm(1, width)``), or batch
        normalisation with running statistics.
    preactivation : bool
        Apply the activation and the first normalisation to a layer's input
        rather than after its convolution, and no activation at its end
        (neuraloperator's ``preactivation=True``, ResNet v2 style).
    stabilizer : {None, "tanh"}
        ``"tanh"``: the spectral convolution of each layer acts on
        ``tanh(h)`` (the skips still see ``h``), neuraloperator's
        ``stabilizer="tanh"``.
    domain_padding : float or sequence of float, optional
        Zero padding on both sides of each axis, a fraction of its points:
        ``round(f * n)`` points before and after (neuraloperator's
        ``domain_padding``; it scales with the resolution, where ``padding``
        is a fixed number of points at the end). Not together with a
        non-zero ``padding``.

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
        fno_skip: str | None = "linear",
        channel_mlp_skip: str | None = "soft-gating",
        norm: str | None = None,
        preactivation: bool = False,
        stabilizer: str | None = None,
        domain_padding: float | Sequence[float] | None = None,
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
        options = _layer_options(fno_skip, channel_mlp_skip, norm, preactivation, stabilizer,
                                 channel_mlp_expansion)
        dpad = _domain_padding(domain_padding, None if modes_t is None else len(modes_t))
        if dpad is not None and (any(pad) if isinstance(pad, tuple) else pad):
            raise InvalidArgumentError("domain_padding", "None when `padding` is not 0",
                                       domain_padding)
        # options left at their defaults stay out of the config (older configs unchanged)
        extra = {k: v for k, v in options.items() if v != _LAYER_DEFAULTS[k]}
        if dpad is not None:
            extra["domain_padding"] = list(dpad) if isinstance(dpad, tuple) else dpad
        self._set_config(
            in_channels=in_channels, out_channels=out_channels,
            modes=modes if modes_t is None else list(modes_t), width=width,
            n_layers=n_layers, ndim=None if modes_t is None else len(modes_t),
            lifting_channels=lifting_channels,
            projection_channels=projection_channels, activation=activation,
            padding=list(pad) if isinstance(pad, tuple) else pad, positional=positional,
            channel_mlp_expansion=channel_mlp_expansion, backend=backend,
            channel_mlp_activation=channel_mlp_activation, **extra)
        self.domain_padding: tuple[float, ...] | float | None = dpad
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
            FourierLayer(width, modes_t, self.act, hidden, backend, mlp_act, **options)
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
        first = cast(nn.Linear, self.lifting[0])
        first.in_features = self.in_channels + (d if self.positional else 0)
        with torch.no_grad():  # a lazy weight (UninitializedParameter) until now
            cast(Any, first.weight).materialize((first.out_features, first.in_features))
            first.reset_parameters()
        for layer in self.layers:
            cast(FourierLayer, layer).materialize(modes_t)
        self.ndim, self.modes, self.padding = d, modes_t, pad
        self.domain_padding = _domain_padding(self.domain_padding, d)

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
        first = cast(nn.Linear, self.lifting[0])
        if self.positional:
            pos = positional_channels(spatial, grid, v.dtype, v.device).reshape(len(spatial), -1)
            w_data = first.weight[:, : self.in_channels]
            offset = torch.addmm(first.bias[:, None], first.weight[:, self.in_channels:], pos)
            h = torch.baddbmm(offset[None], w_data.expand(b, -1, -1), x3)
        else:
            h = _linear(x3, first)
        if len(self.lifting) == 2:
            h = _linear(self.act(h), cast(nn.Linear, self.lifting[1]))
        h = h.view(b, self.width, *spatial)
        assert not isinstance(self.padding, int)
        starts = [0] * len(spatial)
        if isinstance(self.domain_padding, tuple):
            starts = [round(f * n) for f, n in zip(self.domain_padding, spatial)]
            h = F.pad(h, [p for q in reversed(starts) for p in (q, q)])
        elif any(self.padding):
            pads = [p for q in reversed(self.padding) for p in (0, q)]
            h = F.pad(h, pads)
        for i, layer in enumerate(self.layers):
            h = layer(h, last=i == len(self.layers) - 1)
        if any(self.padding) or any(starts):
            h = h[(Ellipsis,) + tuple(slice(s, s + n) for s, n in zip(starts, spatial))]
        h3 = h.reshape(b, self.width, -1)
        proj = cast(Sequence[nn.Linear], self.projection)
        out = _linear(self.act(_linear(h3, proj[0])), proj[1])
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


_LAYER_DEFAULTS: dict = {"fno_skip": "linear", "channel_mlp_skip": "soft-gating",
                         "norm": None, "preactivation": False, "stabilizer": None}


def _layer_options(fno_skip, channel_mlp_skip, norm, preactivation, stabilizer,
                   channel_mlp_expansion) -> dict:
    """Check the per-layer options of :class:`FNO`; returns them as FourierLayer kwargs."""
    if fno_skip not in _SKIPS:
        raise InvalidArgumentError("fno_skip", "'linear', 'soft-gating', 'identity' or None",
                                   fno_skip)
    if channel_mlp_skip not in _SKIPS:
        raise InvalidArgumentError("channel_mlp_skip",
                                   "'soft-gating', 'linear', 'identity' or None",
                                   channel_mlp_skip)
    if channel_mlp_expansion is None and channel_mlp_skip != "soft-gating":
        raise InvalidArgumentError("channel_mlp_skip", "its default without a channel MLP "
                                   "(set channel_mlp_expansion)", channel_mlp_skip)
    if norm not in _NORMS:
        raise InvalidArgumentError("norm", "None, 'instance_norm', 'group_norm' or 'batch_norm'",
                                   norm)
    if not isinstance(preactivation, bool):
        raise InvalidArgumentError("preactivation", "a bool", preactivation)
    if stabilizer not in (None, "tanh"):
        raise InvalidArgumentError("stabilizer", "None or 'tanh'", stabilizer)
    return {"fno_skip": fno_skip, "channel_mlp_skip": channel_mlp_skip, "norm": norm,
            "preactivation": preactivation, "stabilizer": stabilizer}


def _domain_padding(value, d: int | None) -> tuple[float, ...] | float | None:
    """Fractions per axis (a number stays a number while ``d`` is unknown); None for none."""
    if value is None:
        return None
    expected = "None, a fraction >= 0 or one per axis"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not value >= 0:
            raise InvalidArgumentError("domain_padding", expected, value)
        if value == 0:
            return None
        return float(value) if d is None else (float(value),) * d
    try:
        fr = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidArgumentError("domain_padding", expected, value) from None
    if any(not f >= 0 for f in fr) or (d is not None and len(fr) != d) or not 1 <= len(fr) <= 3:
        raise InvalidArgumentError("domain_padding", expected, value)
    return fr if any(fr) else None


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
