"""DRIFT-Net: spectral-coupled blocks with radial band gating in a U-shaped backbone.

The block (:class:`SpectralCoupledBlock`) on a hidden state ``h`` with ``C``
channels::

    X      = rfftn(h)                                  (norm="forward")
    X_low  = X on the low modes |k_j| < m_j (every axis), X_high = X - X_low
    g_b    = sigmoid(MLP([E_low(b), E_high(b)]))       one gate per radial band b
    Y      = g(b(k)) * (W X_low) + (1 - g(b(k))) * X_high
    s      = irfftn(Y)
    h     <- h + Norm(s + DWConv3(h) + Linear(h))
    h     <- h + Norm(MLP(h))

``W`` is one complex ``C x C`` channel matrix shared by the low modes,
``E_low(b)`` and ``E_high(b)`` are the root-mean-square amplitudes of the low
and high parts in band ``b`` (Parseval: the L2 norms of the band-passed
fields), computed per sample and channel, and the MLP maps the ``2 n_bands``
statistics to ``n_bands`` gates. ``DWConv3`` is a depthwise 3-point (3x3)
convolution and ``Norm`` a layer norm over channels.

Radial bands
------------
Band ``b`` holds the modes with ``b * band_width <= |k| < (b + 1) *
band_width`` (the last band everything beyond), where ``|k| = sqrt(k_x^2 +
k_y^2)`` is the true radial wavenumber in integer units of the domain, with
signed ``k_x`` from ``fftfreq`` on the full-spectrum axes. A mode ``(k_x,
k_y)`` and its mirror ``(-k_x, k_y)`` are in the same band, and the low set
is symmetric too, so reflecting the input reflects the output (given a
reflection-symmetric depthwise kernel). The public DRIFT-Net code measures
the radius from the array index of the ``rfft2`` output (``i / (h - 1)``),
which puts the negative ``k_x`` (the upper half of the rows) in the highest
bands, and takes only the positive ``k_x`` as low modes; this module does not.

Backbone
--------
A pointwise lifting to ``width`` channels, then ``levels`` encoder stages
(``depth`` blocks, then a down-sampling that merges each 2 (1-D) or 2x2
(2-D) cell of points into one point with twice the channels, a linear map
and a layer norm), ``depth`` blocks at the coarsest level, and ``levels``
decoder stages (up-sampling: a linear map to ``2^d`` times the channels
split back into the cell, a layer norm; concatenation with the encoder's
skip, a linear fusion, ``depth`` blocks), and a pointwise projection: the
multi-scale U shape of the paper's Swin-style backbone, with the windowed
attention replaced by the spectral-coupled block and patch size 1.

Resolution
----------
Every axis needs ``n`` divisible by ``2^levels`` (the merges halve it
exactly). The spectral part acts on Fourier modes in integer wavenumbers, so
on a band-limited input it gives the same function on any grid that holds
the input's modes: on a finer grid the extra modes are zero in and out (the
band statistics are norms, unchanged by zero modes). The depthwise
convolution and the merges work in grid points, so the whole network is
weight-compatible across resolutions (any grid runs the same weights) but
not resolution-invariant.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError, ShapeError
from ..grid import Grid
from .base import GridOperator, get_activation, register_operator
from .blocks import PADDINGS, _channel_norm, _pad_spatial, _pointwise

__all__ = ["DRIFTNet", "SpectralCoupledBlock", "radial_bands"]

_CONV = {1: F.conv1d, 2: F.conv2d}


def _frequencies(spatial: Sequence[int], device=None) -> list[torch.Tensor]:
    """Integer wavenumbers of the ``rfftn`` layout: signed on leading axes, ``0..n//2`` last."""
    out = [torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64, device=device)
           for n in spatial[:-1]]
    out.append(torch.arange(spatial[-1] // 2 + 1, dtype=torch.float64, device=device))
    return [f.round() for f in out]


def _mesh(freqs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return torch.meshgrid(*freqs, indexing="ij")


def radial_bands(spatial: Sequence[int], n_bands: int, band_width: float,
                 device: torch.device | None = None) -> torch.Tensor:
    """Band index of every mode of ``rfftn`` on a grid of shape ``spatial``.

    Parameters
    ----------
    spatial : sequence of int
        Grid shape (1-D or 2-D).
    n_bands : int
        Number of bands; the last one is open-ended.
    band_width : float
        Width of each band in integer wavenumbers.
    device : torch.device, optional
        Of the result.

    Returns
    -------
    torch.Tensor of int64, shape (*spatial[:-1], spatial[-1] // 2 + 1)
        ``min(floor(|k| / band_width), n_bands - 1)`` with ``|k| =
        sqrt(sum_j k_j^2)`` and signed ``k_j`` on the leading axes: ``+k`` and
        ``-k`` share a band.

    Examples
    --------
    >>> radial_bands((8, 8), n_bands=3, band_width=2)[:, 0].tolist()
    [0, 0, 1, 1, 2, 1, 1, 0]
    """
    k = _mesh(_frequencies(spatial, device))
    radius = torch.sqrt(sum(kj**2 for kj in k))  # type: ignore[arg-type]
    return torch.clamp(torch.floor(radius / band_width), max=n_bands - 1).long()


def _low_mask(spatial: Sequence[int], modes: Sequence[int], device=None) -> torch.Tensor:
    k = _mesh(_frequencies(spatial, device))
    mask = torch.ones(k[0].shape, dtype=torch.bool, device=device)
    for kj, m in zip(k, modes):
        mask &= kj.abs() < m
    return mask


def _parseval_weights(spatial: Sequence[int], device=None) -> torch.Tensor:
    """2 for the half-spectrum columns that stand for a conjugate pair, else 1."""
    n = spatial[-1]
    w = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


class SpectralCoupledBlock(nn.Module):
    """DRIFT-Net's block: gated fusion of mixed low and raw high modes, local and linear paths.

    See the module docstring for the formulas.

    Parameters
    ----------
    channels : int
        Channels in and out.
    modes : sequence of int
        Low modes per axis: ``|k_j| < modes[j]`` on every axis.
    n_bands : int
        Number of radial bands (gates).
    band_width : float
        Width of a band in integer wavenumbers.
    gate_hidden : int
        Hidden units of the gate MLP.
    mlp_ratio : float
        Hidden channels of the block's MLP, times ``channels``.
    activation : str
        Activation of the MLPs.
    padding : {"circular", "zeros", "reflect"}
        Boundary treatment of the depthwise convolution.
    """

    def __init__(self, channels: int, modes: Sequence[int], n_bands: int = 4,
                 band_width: float = 4.0, gate_hidden: int = 32, mlp_ratio: float = 2.0,
                 activation: str = "gelu", padding: str = "circular"):
        super().__init__()
        self.channels, self.modes, self.ndim = channels, tuple(modes), len(modes)
        self.n_bands, self.band_width, self.padding = n_bands, float(band_width), padding
        self.act = get_activation(activation)
        d = self.ndim
        std = 1.0 / math.sqrt(2.0 * channels)
        mix = torch.randn(2, channels, channels) * std
        mix[0] += torch.eye(channels)  # start near the identity on the low modes
        self.mix = nn.Parameter(mix)
        self.gate1 = nn.Linear(2 * n_bands, gate_hidden)
        self.gate2 = nn.Linear(gate_hidden, n_bands)
        self.local = nn.Parameter(torch.randn(channels, 1, *(3,) * d) / 3.0**d)
        self.linear = nn.Linear(channels, channels)
        self.norm1 = nn.LayerNorm(channels)
        hidden = max(1, round(channels * mlp_ratio))
        self.mlp1 = nn.Linear(channels, hidden)
        self.mlp2 = nn.Linear(hidden, channels)
        self.norm2 = nn.LayerNorm(channels)

    def gates(self, x_low: torch.Tensor, x_high: torch.Tensor,
              spatial: Sequence[int]) -> torch.Tensor:
        """Per-band gates from the band statistics of the low and high parts.

        Parameters
        ----------
        x_low, x_high : complex torch.Tensor, shape (B, C, *F)
            The two parts of the ``rfftn`` spectrum (``norm="forward"``).
        spatial : sequence of int
            The grid's shape (``F`` is its half spectrum).

        Returns
        -------
        torch.Tensor, shape (B, C, n_bands)
            Gates in ``(0, 1)``: the weight of the mixed low part in each band.
        """
        b, c = x_low.shape[:2]
        dtype = x_low.real.dtype
        bands = radial_bands(spatial, self.n_bands, self.band_width, x_low.device)
        onehot = F.one_hot(bands.reshape(-1), self.n_bands).to(dtype)
        w = _parseval_weights(spatial, x_low.device).to(dtype)

        def band_rms(x: torch.Tensor) -> torch.Tensor:
            power = (x.real**2 + x.imag**2) * w
            return torch.sqrt(power.reshape(b, c, -1) @ onehot + 1e-10)

        stats = torch.cat([band_rms(x_low), band_rms(x_high)], dim=-1)
        return torch.sigmoid(self.gate2(self.act(self.gate1(stats))))

    def spectral(self, h: torch.Tensor) -> torch.Tensor:
        """The Fourier part ``irfftn(g W X_low + (1 - g) X_high)`` of the block.

        Parameters
        ----------
        h : torch.Tensor, shape (B, channels, *spatial)
            The hidden state on a uniform periodic grid.

        Returns
        -------
        torch.Tensor, shape (B, channels, *spatial)
        """
        b, c, *spatial = h.shape
        dims = tuple(range(2, 2 + self.ndim))
        xf = torch.fft.rfftn(h, dim=dims, norm="forward")
        x_low = xf * _low_mask(spatial, self.modes, h.device)
        x_high = xf - x_low
        g = self.gates(x_low, x_high, spatial)  # (B, C, n_bands)
        bands = radial_bands(spatial, self.n_bands, self.band_width, h.device).reshape(-1)
        alpha = g[..., bands].reshape(b, c, *xf.shape[2:])
        mix = torch.complex(self.mix[0], self.mix[1]).to(xf.dtype)
        mixed = torch.einsum("oi,bi...->bo...", mix, x_low)
        fused = alpha * mixed + (1.0 - alpha) * x_high
        return torch.fft.irfftn(fused, s=spatial, dim=dims, norm="forward")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        d = self.ndim
        local = _CONV[d](_pad_spatial(h, [1] * d, self.padding), self.local, groups=self.channels)
        y = self.spectral(h) + local + _pointwise(h, self.linear)
        h = h + _channel_norm(y, self.norm1)
        m = _pointwise(self.act(_pointwise(h, self.mlp1)), self.mlp2)
        return h + _channel_norm(m, self.norm2)


def _space_to_depth(x: torch.Tensor, d: int) -> torch.Tensor:
    """``(B, C, *n) -> (B, C 2^d, *n / 2)``: each 2 (2x2) cell of points becomes one point."""
    b, c, *n = x.shape
    split = [s for nj in n for s in (nj // 2, 2)]
    x = x.reshape(b, c, *split)
    perm = [0, 1, *(3 + 2 * j for j in range(d)), *(2 + 2 * j for j in range(d))]
    return x.permute(perm).reshape(b, c * 2**d, *(nj // 2 for nj in n))


def _depth_to_space(x: torch.Tensor, d: int) -> torch.Tensor:
    """Inverse of ``_space_to_depth``."""
    b, c4, *n = x.shape
    c = c4 // 2**d
    x = x.reshape(b, c, *(2,) * d, *n)
    perm = [0, 1, *(q for j in range(d) for q in (2 + d + j, 2 + j))]
    return x.permute(perm).reshape(b, c, *(2 * nj for nj in n))


class _Merge(nn.Module):
    def __init__(self, c_in: int, c_out: int, d: int):
        super().__init__()
        self.d = d
        self.linear = nn.Linear(c_in * 2**d, c_out, bias=False)
        self.norm = nn.LayerNorm(c_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _channel_norm(_pointwise(_space_to_depth(h, self.d), self.linear), self.norm)


class _Expand(nn.Module):
    def __init__(self, c_in: int, c_out: int, d: int):
        super().__init__()
        self.d = d
        self.linear = nn.Linear(c_in, c_out * 2**d, bias=False)
        self.norm = nn.LayerNorm(c_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _channel_norm(_depth_to_space(_pointwise(h, self.linear), self.d), self.norm)


def _modes(modes: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(modes, int) and not isinstance(modes, bool):
        modes = (modes,) * ndim
    try:
        out = tuple(modes)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError("modes", "an int or one int per axis", modes) from None
    if len(out) != ndim or any(isinstance(m, bool) or not isinstance(m, int) or m < 1
                               for m in out):
        raise InvalidArgumentError("modes", f"a positive int or {ndim} of them (one per axis)",
                                   modes)
    return out


@register_operator
class DRIFTNet(GridOperator):
    """DRIFT-Net: spectral-coupled blocks with radial band gating in a U-shaped backbone.

    See :mod:`opflow.operators.driftnet` for the block, the bands and the
    backbone.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    modes : int or sequence of int
        Low modes per axis mixed by the channel matrix (``|k_j| < modes``).
    width : int
        Channels at the finest level (doubled at every coarser level).
    levels : int
        Down-samplings of the U (0: a single stage, no down-sampling).
    depth : int
        Blocks per stage (encoder, bottleneck and decoder).
    ndim : int
        Spatial dimensions, 1 or 2.
    n_bands : int
        Radial bands, one gate each.
    band_width : float
        Width of a band in integer wavenumbers.
    gate_hidden : int
        Hidden units of the gate MLPs.
    mlp_ratio : float
        Hidden channels of the block MLPs, times the stage's channels.
    activation : str
        Activation of the MLPs.
    padding : {"circular", "zeros", "reflect"}
        Boundary treatment of the depthwise convolutions.
    projection_channels : int
        Hidden width of the two-layer output projection.

    Notes
    -----
    ``model(field)`` maps a Field ``(*batch, in_channels, *grid.shape)`` on a
    uniform grid whose sizes are divisible by ``2^levels`` to a Field
    ``(*batch, out_channels, *grid.shape)`` on the same grid;
    ``model(tensor)`` does the same on tensors.

    Examples
    --------
    >>> model = opflow.DRIFTNet(1, 1, modes=6, width=8, levels=1)
    >>> model(torch.randn(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int] = 8,
        width: int = 32,
        levels: int = 2,
        depth: int = 1,
        *,
        ndim: int = 2,
        n_bands: int = 4,
        band_width: float = 4.0,
        gate_hidden: int = 32,
        mlp_ratio: float = 2.0,
        activation: str = "gelu",
        padding: str = "circular",
        projection_channels: int = 64,
    ):
        super().__init__()
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("width", width), ("depth", depth), ("n_bands", n_bands),
                       ("gate_hidden", gate_hidden),
                       ("projection_channels", projection_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(arg, "a positive integer", v)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 6:
            raise InvalidArgumentError("levels", "an integer from 0 to 6", levels)
        if isinstance(ndim, bool) or ndim not in (1, 2):
            raise InvalidArgumentError("ndim", "1 or 2", ndim)
        modes_t = _modes(modes, ndim)
        if isinstance(band_width, bool) or not isinstance(band_width, (int, float)) \
                or not math.isfinite(band_width) or band_width <= 0:
            raise InvalidArgumentError("band_width", "a positive number of wavenumbers",
                                       band_width)
        if not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0:
            raise InvalidArgumentError("mlp_ratio", "a positive number", mlp_ratio)
        if padding not in PADDINGS:
            raise InvalidArgumentError("padding", f"one of {PADDINGS}", padding)
        self.act = get_activation(activation)
        self._set_config(in_channels=in_channels, out_channels=out_channels,
                         modes=list(modes_t), width=width, levels=levels, depth=depth,
                         ndim=ndim, n_bands=n_bands, band_width=band_width,
                         gate_hidden=gate_hidden, mlp_ratio=mlp_ratio, activation=activation,
                         padding=padding, projection_channels=projection_channels)
        self.in_channels, self.out_channels, self.ndim = in_channels, out_channels, ndim
        self.levels, self.width = levels, width
        widths = [width * 2**level for level in range(levels + 1)]

        def stage(c: int) -> nn.Sequential:
            return nn.Sequential(*(
                SpectralCoupledBlock(c, modes_t, n_bands, band_width, gate_hidden, mlp_ratio,
                                     activation, padding) for _ in range(depth)))

        self.lifting = nn.Linear(in_channels, width)
        self.encoder = nn.ModuleList(stage(widths[lv]) for lv in range(levels))
        self.down = nn.ModuleList(_Merge(widths[lv], widths[lv + 1], ndim)
                                  for lv in range(levels))
        self.bottleneck = stage(widths[levels])
        self.up = nn.ModuleList(_Expand(widths[lv + 1], widths[lv], ndim)
                                for lv in range(levels))
        self.fuse = nn.ModuleList(nn.Linear(2 * widths[lv], widths[lv]) for lv in range(levels))
        self.decoder = nn.ModuleList(stage(widths[lv]) for lv in range(levels))
        self.projection = nn.ModuleList([nn.Linear(width, projection_channels),
                                         nn.Linear(projection_channels, out_channels)])

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
            An axis not divisible by ``2^levels``.
        """
        f = 2**self.levels
        if any(n % f for n in spatial):
            cell = "2" if self.ndim == 1 else "2x2"
            raise ShapeError(
                argument, f"every axis divisible by 2^levels = {f} (levels={self.levels}): "
                f"each level merges {cell} neighbouring points into one and the decoder "
                f"splits them back; got grid shape {tuple(spatial)}",
                torch.empty(0, *spatial))

    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input; every axis divisible by ``2^levels``.
        grid : Grid, optional
            Not used: DRIFT-Net works in grid points (its spectral parts
            are resolution-independent by construction).

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        self.check_shape(v.shape[2:])
        h = _pointwise(v, self.lifting)
        skips = []
        for stage, down in zip(self.encoder, self.down):
            h = stage(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for lv in reversed(range(self.levels)):
            h = self.up[lv](h)
            h = self.decoder[lv](_pointwise(torch.cat([h, skips[lv]], dim=1), self.fuse[lv]))
        h = self.act(_pointwise(h, self.projection[0]))
        return _pointwise(h, self.projection[1])

