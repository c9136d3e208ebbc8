"""Reusable layers of the newer neural operators, one concept each.

* :class:`InterpConv`: a convolution whose kernel has a fixed *physical*
  extent. The stored taps define a kernel function at a reference grid
  spacing; on another grid the kernel is resampled by linear interpolation and
  rescaled like a quadrature rule, so the layer approximates the same integral
  operator at every resolution (Bartolucci et al.'s representation
  equivalence; the InterpConv of "neural networks to neural operators").
* :class:`AttentionKernelIntegral`: softmax-free (linear) attention read as a
  kernel integral ``(K v)(x) = int q(x) . k(y) v(y) dy`` evaluated with the
  grid's quadrature weights, with Fourier coordinate embeddings in the
  queries and keys.
* :class:`LearnableStencil`: a learned finite-difference stencil whose taps
  sum to zero and are divided by the grid spacing, so that it tends to a
  first derivative (a directional derivative in 2-D) as the grid is refined.
* :func:`fourier_features`: the coordinate embedding of the attention layers.
* :func:`resample_kernel`: the resampling rule of :class:`InterpConv`.

All take channels-first tensors ``(B, C, *spatial)`` on uniform grids.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError, ShapeError
from ..grid import Grid
from ..kernels import halo_pad

__all__ = [
    "AttentionKernelIntegral",
    "InterpConv",
    "LearnableStencil",
    "PADDINGS",
    "fourier_features",
    "resample_kernel",
]

#: Boundary treatments of the convolutions: zero extension, periodic wrap, mirror.
PADDINGS = ("zeros", "circular", "reflect")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


# ----------------------------------------------------------------- helpers
def _positive_int(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(argument, "a positive integer", value)
    return value


def _check_ndim(ndim: object, allowed: Sequence[int] = (1, 2)) -> int:
    if isinstance(ndim, bool) or ndim not in allowed:
        raise InvalidArgumentError("ndim", " or ".join(str(d) for d in allowed), ndim)
    return int(ndim)  # type: ignore[call-overload]


def _check_padding(padding: object) -> str:
    if padding not in PADDINGS:
        raise InvalidArgumentError("padding", f"one of {PADDINGS}", padding)
    return str(padding)


def _odd_size(value: object, argument: str) -> int:
    size = _positive_int(value, argument)
    if size % 2 == 0:
        raise InvalidArgumentError(argument, "an odd size (the stencil is centred on its "
                                   "middle tap)", value)
    return size


def _pad_spatial(x: torch.Tensor, widths: Sequence[int], mode: str) -> torch.Tensor:
    """Pad the last ``len(widths)`` axes of ``x`` by ``widths[j]`` points on both sides.

    ``"circular"`` wraps as often as needed (a halo wider than the axis is
    allowed); ``"reflect"`` mirrors about the end point and needs more points
    than the halo is wide.
    """
    d = len(widths)
    if not any(widths):
        return x
    if mode == "zeros":
        return F.pad(x, [p for w in reversed(widths) for p in (w, w)])
    spatial = x.shape[x.ndim - d:]
    if all(w == 1 for w in widths) and min(spatial) >= 2 and d <= 3:
        return halo_pad(x, d, mode)
    if mode == "circular":
        for j, w in enumerate(widths):
            if w:
                axis = x.ndim - d + j
                idx = torch.arange(-w, spatial[j] + w, device=x.device) % spatial[j]
                x = x.index_select(axis, idx)
        return x
    if any(w >= n for w, n in zip(widths, spatial)):
        raise ShapeError("x", f"more than {max(widths)} points per axis for reflect padding "
                         f"of {max(widths)} points", x)
    return F.pad(x, [p for w in reversed(widths) for p in (w, w)], mode="reflect")


def _channel_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm`` over the channel axis 1 of ``(B, C, *spatial)`` (pointwise)."""
    return norm(x.movedim(1, -1)).movedim(-1, 1)


def _pointwise(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """``layer`` applied to the channels of ``(B, C, *spatial)`` at every point."""
    return layer(x.movedim(1, -1)).movedim(-1, 1)


def _spacings(grid: Grid | None, spatial: Sequence[int]) -> tuple[float, ...]:
    """Grid spacing per axis: the grid's, or ``1 / n`` (a periodic unit box) for tensors."""
    if grid is None:
        return tuple(1.0 / n for n in spatial)
    return tuple(float(a.spacing) for a in grid.axes)


def _intervals(grid: Grid | None, spatial: Sequence[int]) -> tuple[float, ...]:
    """Cells per axis: ``length / spacing`` (``n`` periodic, ``n - 1`` with both ends)."""
    if grid is None:
        return tuple(float(n) for n in spatial)
    return tuple(float(a.length / a.spacing) for a in grid.axes)


def _unit_weights(grid: Grid | None, spatial: Sequence[int], dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """Quadrature weights summing to 1: the grid's over its volume, or ``1 / N``."""
    if grid is None:
        return torch.full(tuple(spatial), 1.0 / math.prod(spatial), dtype=dtype, device=device)
    w = grid.quadrature_weights(dtype=torch.float64, device=device)
    return (w / w.sum()).to(dtype)


# -------------------------------------------------------- resampled kernels
def _interpolation_matrix(size: int, scale: float, dtype: torch.dtype,
                          device: torch.device | None) -> torch.Tensor:
    """``M[J, i]``: hat function of tap ``i`` at the new tap ``J`` (one axis)."""
    centre = (size - 1) // 2
    reach = max(0, math.ceil(scale * (size + 1) / 2 - 1e-9) - 1)
    new = torch.arange(-reach, reach + 1, dtype=torch.float64) / scale
    old = torch.arange(size, dtype=torch.float64) - centre
    hat = (1.0 - (new[:, None] - old[None, :]).abs()).clamp_min(0.0)
    return hat.to(dtype=dtype, device=device)


def resample_kernel(weight: torch.Tensor, scale: Sequence[float]) -> torch.Tensor:
    """A convolution kernel moved from its reference grid to one ``scale`` times finer.

    The taps ``w_i`` (odd size ``k`` per axis, centred) are read as the nodal
    values of the piecewise-linear kernel ``kappa(y) = sum_i w_i phi(y / h_ref -
    (i - c))`` (``phi`` the unit hat function, ``c = (k - 1) / 2``), which
    vanishes one reference spacing beyond the outer taps. On a grid of spacing
    ``h = h_ref / s`` the new taps are ``kappa(J h) / s`` for every ``J`` with
    ``|J h| < (c + 1) h_ref``, one factor ``1 / s`` per axis (the ratio of the
    cell areas): the rectangle rule of the same integral. For an integer
    ``s`` the sum of the taps is unchanged (a constant input gives the same
    output) and the results on the two grids differ by the quadrature error,
    ``O(h_ref^2)`` for smooth inputs; ``s = 1`` returns ``weight`` itself.

    The public code of "neural networks to neural operators" interpolates
    between the outer taps only (``s (k - 1) + 1`` taps) and divides by the
    ratio of tap counts; its kernel then ends on non-zero values, and the
    sums of the taps at two resolutions differ by a term of the size of the
    outer taps.

    Parameters
    ----------
    weight : torch.Tensor, shape (C_out, C_in, *k)
        Kernel with an odd size on each of its ``d`` spatial axes.
    scale : sequence of float
        ``h_ref / h`` per axis (> 1: a finer grid).

    Returns
    -------
    torch.Tensor, shape (C_out, C_in, *K)
        ``K_j = 2 ceil(s_j (k_j + 1) / 2) - 1`` taps per axis, odd.

    Examples
    --------
    >>> w = torch.tensor([[[1.0, 2.0, 1.0]]])
    >>> resample_kernel(w, [2.0])
    tensor([[[0.2500, 0.5000, 0.7500, 1.0000, 0.7500, 0.5000, 0.2500]]])
    """
    d = weight.ndim - 2
    scales = [float(s) for s in scale]
    if len(scales) != d or not all(math.isfinite(s) and s > 0 for s in scales):
        raise InvalidArgumentError("scale", f"{d} positive finite ratios h_ref / h", scale)
    if any(k % 2 == 0 for k in weight.shape[2:]):
        raise ShapeError("weight", "an odd kernel size on every spatial axis", weight)
    if all(s == 1.0 for s in scales):
        return weight
    out = weight
    for j, s in enumerate(scales):
        m = _interpolation_matrix(weight.shape[2 + j], s, weight.dtype, weight.device)
        out = torch.tensordot(out, m, dims=([2 + j], [1])).movedim(-1, 2 + j) / s
    return out


class InterpConv(nn.Module):
    """Convolution with a kernel of fixed physical extent (resampled to the input's grid).

    At the reference spacing (``scale`` 1) this is an ordinary
    ``kernel_size`` convolution; on a grid ``s`` times finer per axis the
    kernel is :func:`resample_kernel` of the stored one, ``K = 2 ceil(s (k +
    1) / 2) - 1`` taps wide with a padding of ``K // 2``, so the layer
    evaluates the same integral operator on every grid, up to the
    quadrature error.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Odd number of taps per axis at the reference spacing.
    ndim : int
        Spatial dimensions (1, 2 or 3).
    stride : int
        Stride of the convolution in grid points (2 halves the grid; the
        kernel still covers the same physical extent).
    padding : {"zeros", "circular", "reflect"}
        Boundary treatment.
    bias : bool
        Add a learned bias per output channel.

    Examples
    --------
    >>> conv = InterpConv(1, 2, kernel_size=3, ndim=1, padding="circular")
    >>> x = torch.sin(2 * torch.pi * torch.arange(64) / 64).reshape(1, 1, 64)
    >>> conv(x, scale=[2.0]).shape, conv.kernel([2.0]).shape
    (torch.Size([1, 2, 64]), torch.Size([2, 1, 7]))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, ndim: int = 2,
                 *, stride: int = 1, padding: str = "zeros", bias: bool = True):
        super().__init__()
        _positive_int(in_channels, "in_channels")
        _positive_int(out_channels, "out_channels")
        self.kernel_size = _odd_size(kernel_size, "kernel_size")
        self.ndim = _check_ndim(ndim, (1, 2, 3))
        self.stride = _positive_int(stride, "stride")
        self.padding = _check_padding(padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        w = torch.empty(out_channels, in_channels, *(kernel_size,) * ndim)
        nn.init.normal_(w, 0.0, 1.0 / math.sqrt(in_channels * kernel_size**ndim))
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def kernel(self, scale: Sequence[float] | None = None) -> torch.Tensor:
        """The kernel on a grid ``scale`` times finer than the reference (per axis).

        Parameters
        ----------
        scale : sequence of float, optional
            ``h_ref / h`` per axis (default: 1, the stored kernel).

        Returns
        -------
        torch.Tensor, shape (out_channels, in_channels, *K)
        """
        if scale is None:
            return self.weight
        return resample_kernel(self.weight, scale)

    def forward(self, x: torch.Tensor, scale: Sequence[float] | None = None) -> torch.Tensor:
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            raise ShapeError("x", f"a tensor (B, {self.in_channels}, *spatial) with {self.ndim} "
                             "spatial dimensions", x)
        w = self.kernel(scale)
        x = _pad_spatial(x, [k // 2 for k in w.shape[2:]], self.padding)
        return _CONV[self.ndim](x, w, self.bias, stride=self.stride)


# --------------------------------------------------------------- attention
def fourier_features(coords: torch.Tensor, n_frequencies: int) -> torch.Tensor:
    """``sin(2 pi m x)``, ``cos(2 pi m x)`` for ``m = 1 .. n_frequencies``, per axis.

    Parameters
    ----------
    coords : torch.Tensor, shape (d, *spatial)
        Coordinates normalised to ``[0, 1)`` per axis (periodic) or ``[0, 1]``.
    n_frequencies : int
        Frequencies per axis (0: no embedding).

    Returns
    -------
    torch.Tensor, shape (2 * n_frequencies * d, *spatial)
        Band-limited in ``x`` (degree ``n_frequencies``), so sums of products
        with band-limited fields stay exact under the rectangle rule.
    """
    if n_frequencies == 0:
        return coords.new_zeros(0, *coords.shape[1:])
    m = torch.arange(1, n_frequencies + 1, dtype=coords.dtype, device=coords.device)
    phase = 2 * math.pi * coords[:, None] * m.reshape(1, -1, *(1,) * (coords.ndim - 1))
    feats = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)
    return feats.reshape(-1, *coords.shape[1:])


class AttentionKernelIntegral(nn.Module):
    """Linear attention as a quadrature of a kernel integral (no softmax).

    For every head, with ``q``, ``k`` linear in ``[h(x), e(x)]`` (the field
    and a coordinate embedding ``e``) and ``v`` linear in ``h``::

        (K h)(x) = q(x)^T  int_Omega k(y) v(y)^T dy / |Omega|
                 ~ q(x)^T  sum_j w_j k(y_j) v(y_j)^T

    with ``w_j`` the grid's quadrature weights divided by the domain volume
    (cell sizes; ``1 / N`` on a periodic unit box). The sum is a Galerkin-type
    attention (cost linear in the number of points) and a consistent
    discretisation of one integral operator: for band-limited inputs and a
    periodic grid fine enough to hold the products, the rectangle rule is
    exact, and the outputs on two grids agree to rounding.

    Parameters
    ----------
    channels : int
        Channels of ``h`` (in and out).
    heads : int
        Attention heads.
    head_channels : int, optional
        Channels per head for ``q``, ``k`` and ``v`` (default ``channels // heads``,
        at least 1).
    pos_channels : int
        Channels of the coordinate embedding appended to ``h`` in ``q`` and ``k``.
    """

    def __init__(self, channels: int, heads: int = 4, *, head_channels: int | None = None,
                 pos_channels: int = 0):
        super().__init__()
        _positive_int(channels, "channels")
        _positive_int(heads, "heads")
        if head_channels is None:
            head_channels = max(1, channels // heads)
        _positive_int(head_channels, "head_channels")
        if isinstance(pos_channels, bool) or not isinstance(pos_channels, int) or pos_channels < 0:
            raise InvalidArgumentError("pos_channels", "a non-negative integer", pos_channels)
        self.channels, self.heads, self.head_channels = channels, heads, head_channels
        self.pos_channels = pos_channels
        inner = heads * head_channels
        self.query = nn.Linear(channels + pos_channels, inner, bias=False)
        self.key = nn.Linear(channels + pos_channels, inner, bias=False)
        self.value = nn.Linear(channels, inner, bias=False)
        self.output = nn.Linear(inner, channels)

    def forward(self, h: torch.Tensor, weights: torch.Tensor,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = h.shape
        n = math.prod(spatial)
        if c != self.channels:
            raise ShapeError("h", f"{self.channels} channels (dimension 1)", h)
        if weights.shape != tuple(spatial):
            raise ShapeError("weights", f"quadrature weights of shape {tuple(spatial)}", weights)
        h3 = h.reshape(b, c, n).transpose(1, 2)  # (B, N, C)
        if self.pos_channels:
            if pos is None or pos.shape != (self.pos_channels, *spatial):
                raise ShapeError("pos", f"an embedding of shape {(self.pos_channels, *spatial)}",
                                 pos)
            hp = torch.cat([h3, pos.reshape(self.pos_channels, n).T.expand(b, -1, -1)], dim=-1)
        else:
            hp = h3
        split = (b, n, self.heads, self.head_channels)
        q = self.query(hp).view(split)
        k = self.key(hp).view(split)
        v = self.value(h3).view(split)
        w = weights.reshape(1, n, 1, 1).to(h.dtype)
        gram = torch.einsum("bnhd,bnhe->bhde", k * w, v)  # sum_j w_j k_j v_j^T
        out = torch.einsum("bnhd,bhde->bnhe", q, gram).reshape(b, n, -1)
        return self.output(out).transpose(1, 2).reshape(b, c, *spatial)


# ------------------------------------------------------- learned stencils
class LearnableStencil(nn.Module):
    """A learned finite-difference stencil: taps summing to zero, divided by the spacing.

    ``y = (S * x) / h`` with ``S`` a ``size``-tap convolution (per output and
    input channel) whose taps are stored freely and used minus their mean, so
    that they sum to zero exactly whatever the training does. Then for a
    smooth ``x``::

        (S * x)(p) / h = sum_j S_j x(p + j h) / h = (sum_j j S_j) . grad x(p) + O(h)

    a (directional) first derivative, to first order in ``h``: the output
    converges under grid refinement instead of vanishing or blowing up.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    size : int
        Odd number of taps per axis.
    ndim : int
        Spatial dimensions (1, 2 or 3).
    padding : {"circular", "zeros", "reflect"}
        Boundary treatment.

    Notes
    -----
    One spacing ``h`` divides all taps; on a 2-D grid with ``h_x != h_y`` the
    caller passes one number (the operators pass the geometric mean), and the
    limit is a derivative along a direction that depends on the aspect ratio.
    """

    def __init__(self, in_channels: int, out_channels: int, size: int = 3, ndim: int = 1,
                 *, padding: str = "circular"):
        super().__init__()
        _positive_int(in_channels, "in_channels")
        _positive_int(out_channels, "out_channels")
        self.size = _odd_size(size, "size")
        if self.size < 3:
            raise InvalidArgumentError("size", "at least 3 taps (one tap summing to zero is "
                                       "the zero map)", size)
        self.ndim = _check_ndim(ndim, (1, 2, 3))
        self.padding = _check_padding(padding)
        w = torch.empty(out_channels, in_channels, *(size,) * ndim)
        nn.init.normal_(w, 0.0, 0.1 / math.sqrt(in_channels * size**ndim))
        self.weight = nn.Parameter(w)

    def stencil(self) -> torch.Tensor:
        """The taps used, ``weight`` minus its mean per channel pair (they sum to zero).

        Returns
        -------
        torch.Tensor, shape (out_channels, in_channels, *(size,) * ndim)
        """
        dims = tuple(range(2, 2 + self.ndim))
        return self.weight - self.weight.mean(dim=dims, keepdim=True)

    def forward(self, x: torch.Tensor, spacing: float) -> torch.Tensor:
        if not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
            raise InvalidArgumentError("spacing", "a positive grid spacing", spacing)
        x = _pad_spatial(x, [self.size // 2] * self.ndim, self.padding)
        return _CONV[self.ndim](x, self.stencil()) / spacing
