"""Spectral convolution: multiply a few Fourier modes by learned channel matrices.

The operation at the heart of the Fourier neural operator, for 1, 2 and 3
spatial dimensions::

    y = irfftn( P_keep( W * rfftn(x) ) )

where ``P_keep`` keeps the lowest Fourier modes (all others are set to zero)
and ``W`` mixes channels independently at every kept mode.

Weight layout
-------------
``weight`` has shape ``(in_channels, out_channels, K_1, ..., K_d)`` and is
complex, or a pair ``(real, imag)`` of real tensors of that shape. With
``m_j`` the modes parameter of axis ``j``:

* on every **leading** axis (all but the last) ``K_j = 2 m_j`` and index
  ``i`` holds frequency ``i`` for ``i < m_j`` and ``i - 2 m_j`` otherwise:
  the frequencies ``0, 1, ..., m_j - 1, -m_j, ..., -1`` in FFT order. In 2D
  these are the two corner blocks of the ``rfft2`` spectrum (low positive
  and low negative frequencies on the first axis);
* on the **last** axis, the half spectrum of ``rfftn``: ``K_d = m_d`` and
  index ``i`` holds frequency ``i``.

This is the layout of Li et al.'s ``modes1, modes2`` (their ``weights1`` and
``weights2`` concatenated along the first mode axis). neuraloperator's
``SpectralConv`` with ``n_modes=(n_1, ..., n_d)`` keeps the same frequencies
as ``modes=(n_1 // 2, ..., n_{d-1} // 2, n_d // 2 + 1)`` (even ``n_j``), with
its leading axes stored ``fftshift``-ed (``torch.fft.ifftshift`` converts).

Frequencies are integers per axis: the grid is taken as uniform, and the
result does not depend on the grid spacing. A grid of ``N_j`` points can hold
``m_j`` modes when ``2 m_j <= N_j`` (leading axes) and ``m_d <= N_d // 2 + 1``
(last axis); pass a smaller ``modes`` to use the low part of a larger weight.

Implementations
---------------
``"fft"`` (also ``"torch"``, the reference)
    ``rfftn``, gather the kept modes, mix channels with real batched matrix
    products over the modes, scatter, ``irfftn``.
``"dft"``
    The truncated transforms as real matrix products with cached cos/sin
    matrices (:mod:`opflow.kernels.dft`): ``O(N K)`` work per axis instead of
    ``O(N log N)``, but dense BLAS; on a CPU it wins for few modes.
``"triton"``
    ``torch.fft`` transforms around one Triton kernel that reads the kept
    modes straight from the ``rfftn`` spectrum, mixes channels on
    real/imaginary pairs and writes the zero-padded spectrum
    (:mod:`opflow.kernels.triton_spectral`, custom backward). float32 and
    float64; CUDA, or the CPU under ``TRITON_INTERPRET=1`` (tests only).
``"auto"`` (default)
    ``"triton"`` for float32/float64 CUDA tensors when triton is installed,
    ``"fft"`` on other devices; on the CPU ``"dft"`` when its estimated work
    is below a threshold measured with CPU BLAS (:func:`choose_backend`).

Both give the same result to rounding (tested against each other and against
a naive DFT) and both are differentiable in ``x`` and ``weight``.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from ..errors import InvalidArgumentError, ShapeError
from .backend import resolve_backend, triton_available, triton_module
from .dft import irdft_matrix, rdft_matrix, trig_matrices

__all__ = ["spectral_conv", "choose_backend", "weight_shape", "SpectralWeight"]

SpectralWeight = Union[torch.Tensor, Sequence[torch.Tensor]]

# Measured on a 2-core AMD EPYC (float32, forward + backward): the truncated
# DFT beats the FFT path (2-5x for 8-16 modes) while its multiply-adds per
# grid point stay below about this many times log2(N), per number of
# spatial dimensions (1-D has a single, long transform per row).
_DFT_THRESHOLD = {1: 8.0, 2: 14.0, 3: 14.0}


def weight_shape(in_channels: int, out_channels: int, modes: Sequence[int]) -> tuple[int, ...]:
    """Shape of a spectral weight: ``(in, out, 2 m_1, ..., 2 m_{d-1}, m_d)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    modes : sequence of int
        Modes kept per axis (the last axis is the real-FFT one).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> opflow.kernels.weight_shape(32, 32, (12, 12))
    (32, 32, 24, 12)
    """
    modes = tuple(int(m) for m in modes)
    return (in_channels, out_channels, *(2 * m for m in modes[:-1]), modes[-1])


def _as_pair(weight: SpectralWeight) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(weight, torch.Tensor):
        if not weight.is_complex():
            raise InvalidArgumentError(
                "weight", "a complex tensor or a pair (real, imag) of real tensors", weight)
        return weight.real, weight.imag
    if isinstance(weight, (tuple, list)) and len(weight) == 2 and all(
        isinstance(w, torch.Tensor) and not w.is_complex() for w in weight
    ):
        wr, wi = weight
        if wr.shape != wi.shape:
            raise ShapeError("weight", f"real and imaginary parts of one shape {tuple(wr.shape)}",
                             wi)
        return wr, wi
    raise InvalidArgumentError("weight", "a complex tensor or a pair (real, imag) of real tensors",
                               weight)


def _weight_modes(shape: Sequence[int]) -> tuple[int, ...]:
    mode_sizes = tuple(shape[2:])
    return (*(k // 2 for k in mode_sizes[:-1]), mode_sizes[-1])


def _select_modes(w: torch.Tensor, have: tuple[int, ...], want: tuple[int, ...]) -> torch.Tensor:
    """Low-frequency block of a weight with ``have`` modes, as a weight with ``want``."""
    d = len(have)
    for j in range(d - 1):
        if want[j] != have[j]:
            axis = 2 + j
            k = 2 * have[j]
            w = torch.cat([w.narrow(axis, 0, want[j]), w.narrow(axis, k - want[j], want[j])],
                          dim=axis)
    if want[-1] != have[-1]:
        w = w.narrow(-1, 0, want[-1])
    return w


def _check(x: torch.Tensor, wr: torch.Tensor, modes) -> tuple[int, ...]:
    if not isinstance(x, torch.Tensor) or x.is_complex() or not x.is_floating_point():
        raise InvalidArgumentError("x", "a real floating-point tensor (B, C_in, *spatial)", x)
    if x.ndim not in (3, 4, 5):
        raise ShapeError("x", "a tensor (B, C_in, *spatial) with 1, 2 or 3 spatial dimensions", x)
    d = x.ndim - 2
    if wr.ndim != d + 2:
        raise ShapeError("weight", f"(C_in, C_out, *modes) with {d} mode dimensions for a "
                         f"{d}-D input", wr)
    if wr.shape[0] != x.shape[1]:
        raise ShapeError("weight", f"{x.shape[1]} input channels (first dimension) like `x`", wr)
    have = _weight_modes(wr.shape)
    if any(2 * h != k for h, k in zip(have[:-1], wr.shape[2:-1])) or min(have) < 1:
        raise ShapeError("weight", "even, non-zero sizes on the leading mode dimensions "
                         "(2 m_j) and a non-zero last one", wr)
    if modes is None:
        want = have
    else:
        want = (int(modes),) * d if isinstance(modes, int) else tuple(int(m) for m in modes)
        if len(want) != d or any(m < 1 or m > h for m, h in zip(want, have)):
            raise InvalidArgumentError(
                "modes", f"{d} positive integers, at most the weight's modes {have}", modes)
    spatial = x.shape[2:]
    fits = all(2 * m <= n for m, n in zip(want[:-1], spatial[:-1])) and (
        want[-1] <= spatial[-1] // 2 + 1)
    if not fits:
        limit = tuple(n // 2 for n in spatial[:-1]) + (spatial[-1] // 2 + 1,)
        raise InvalidArgumentError(
            "modes", f"at most {limit} modes for a grid of shape {tuple(spatial)}", want)
    return want


def _dft_cost_per_point(spatial: Sequence[int], modes: Sequence[int]) -> float:
    """Multiply-adds per grid point of the forward truncated DFT (inverse: the same)."""
    d = len(spatial)
    size = math.prod(spatial)
    kept = [2 * m for m in modes[:-1]] + [modes[-1]]
    cost = size * 2 * kept[-1]  # last axis, real input
    for j in reversed(range(d - 1)):  # leading axes, complex (2 x 2 real blocks)
        rest = 2 * kept[-1] * math.prod(spatial[:j]) * math.prod(kept[j + 1:d - 1])
        cost += rest * spatial[j] * 2 * kept[j]
    return cost / size


def choose_backend(x: torch.Tensor, modes: Sequence[int], backend: str | None = None) -> str:
    """The implementation :func:`spectral_conv` runs for ``x`` and ``modes``.

    ``backend`` (else the default from :func:`opflow.kernels.use`) decides;
    for ``"auto"``: ``"fft"`` off the CPU, and on the CPU ``"dft"`` when the
    truncated DFT costs fewer than ``c_d * log2(N)`` multiply-adds per grid
    point (``N`` grid points; ``c_d`` = 8 in 1-D, 14 in 2-D and 3-D, measured
    on a 2-core CPU), else ``"fft"``. In practice: ``"dft"`` for the usual
    FNO settings (8-16 modes per axis on 64-256 points), ``"fft"`` when a
    large part of the spectrum is kept.

    Parameters
    ----------
    x : torch.Tensor, shape (B, in_channels, *spatial)
        The input (its device, dtype and grid size decide).
    modes : sequence of int
        Modes kept per axis.
    backend : str, optional
        As for :func:`opflow.kernels.use` (default: the current default).

    Returns
    -------
    {"fft", "dft", "triton"}
    """
    backend = resolve_backend(backend)
    if backend == "torch":
        return "fft"
    if backend != "auto":
        return backend
    if x.device.type == "cuda" and x.dtype in (torch.float32, torch.float64) and (
            triton_available()):
        return "triton"
    if x.device.type != "cpu":
        return "fft"
    spatial = tuple(x.shape[2:])
    per_point = _dft_cost_per_point(spatial, modes)
    limit = _DFT_THRESHOLD[len(spatial)] * math.log2(max(math.prod(spatial), 2))
    return "dft" if per_point < limit else "fft"


def _modes_major(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(C_in, C_out, *K) -> (prod K, C_in, C_out)``, contiguous."""
    ci, co = w.shape[:2]
    d = w.ndim - 2
    return w.to(dtype).permute(*range(2, 2 + d), 0, 1).reshape(-1, ci, co).contiguous()


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The FFT path transposes the mixed modes back to ``(B, C, *K)``; without
    this the gradients reaching the batched products are strided, and CPU
    ``bmm`` then loops over the batch one small matrix at a time.
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _mix(x2: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    """Channel mixing per mode: ``(2, K, B, C_in) -> (2, K, B, C_out)`` (re, im stacked).

    Four real batched products over the modes, ``Yr = Xr Wr - Xi Wi`` and
    ``Yi = Xr Wi + Xi Wr``, on contiguous operands (CPU ``bmm`` falls back to
    a loop over the batch for strided ones).
    """
    wr, wi = _modes_major(wr, x2.dtype), _modes_major(wi, x2.dtype)
    xr, xi = x2[0], x2[1]
    yr = torch.baddbmm(torch.bmm(xr, wr), xi, wi, alpha=-1.0)
    yi = torch.baddbmm(torch.bmm(xr, wi), xi, wr)
    return torch.stack([yr, yi])


def _spectral_conv_fft(x, wr, wi, modes, bias=None):
    b, ci = x.shape[:2]
    spatial = tuple(x.shape[2:])
    d = len(spatial)
    dims = tuple(range(2, 2 + d))
    co = wr.shape[1]
    xf = torch.fft.rfftn(x, dim=dims)
    xk = xf.narrow(-1, 0, modes[-1])
    for j in range(d - 1):
        axis, m, n = 2 + j, modes[j], spatial[j]
        xk = torch.cat([xk.narrow(axis, 0, m), xk.narrow(axis, n - m, m)], dim=axis)
    kept = tuple(xk.shape[2:])
    k = math.prod(kept)
    # (B, C, *K, 2) -> (2, K, B, C)
    x2 = torch.view_as_real(xk).permute(2 + d, *range(2, 2 + d), 0, 1).reshape(2, k, b, ci)
    y2 = _DenseGrad.apply(_mix(x2, wr, wi)).view(2, *kept, b, co)
    # (2, *K, B, C_out) -> (B, C_out, *K, 2) -> complex
    yk = torch.view_as_complex(y2.permute(d + 1, d + 2, *range(1, d + 1), 0).contiguous())
    half = spatial[-1] // 2 + 1
    if modes[-1] < half:
        pad = torch.zeros(*yk.shape[:-1], half - modes[-1], dtype=yk.dtype, device=yk.device)
        yk = torch.cat([yk, pad], dim=-1)
    for j in range(d - 1):
        axis, m, n = 2 + j, modes[j], spatial[j]
        if 2 * m < n:
            shape = list(yk.shape)
            shape[axis] = n - 2 * m
            zeros = torch.zeros(shape, dtype=yk.dtype, device=yk.device)
            yk = torch.cat([yk.narrow(axis, 0, m), zeros, yk.narrow(axis, m, m)], dim=axis)
    y = torch.fft.irfftn(yk, s=spatial, dim=dims)
    return y if bias is None else y + bias.reshape(1, co, *(1,) * d)


def _spectral_conv_dft(x, wr, wi, modes, bias=None):
    """Truncated DFT as matrix products, with no data transposes.

    Forward, every stage contracts the fastest grid axis and emits its modes
    as the slowest axis: ``(B, C, N_1..N_d)`` becomes ``(K_1, .., K_d, B, C)``,
    ready for the per-mode channel products. The inverse contracts the slowest
    mode axis and emits grid points as the fastest one, ending in
    ``(B, C_out, N_1..N_d)``. The transposes are BLAS transpose flags, not
    copies. Complex values travel as separate real and imaginary tensors.
    """
    b, ci = x.shape[:2]
    spatial = tuple(x.shape[2:])
    d = len(spatial)
    co = wr.shape[1]
    dtype, device = x.dtype, x.device
    kept = [2 * m for m in modes[:-1]] + [modes[-1]]
    n, k = spatial[-1], kept[-1]
    t = rdft_matrix(n, modes[-1], dtype, device) @ x.reshape(-1, n).T  # (2 K_d, R)
    zr, zi = t[:k], t[k:]
    for j in reversed(range(d - 1)):  # exp(-i t) (a + i b) = (a c + b s) + i (b c - a s)
        c, s = trig_matrices(spatial[j], modes[j], False, dtype, device)
        ar, ai = zr.reshape(-1, spatial[j]).T, zi.reshape(-1, spatial[j]).T
        # in-place accumulation: no copy of the first product (mm needs no output
        # for its backward, so autograd allows it)
        zr, zi = (c @ ar).addmm_(s, ai), (c @ ai).addmm_(s, ar, alpha=-1.0)
    kk = math.prod(kept)
    xr, xi = zr.reshape(kk, b, ci), zi.reshape(kk, b, ci)
    wr, wi = _modes_major(wr, dtype), _modes_major(wi, dtype)
    zr = torch.bmm(xr, wr).baddbmm_(xi, wi, alpha=-1.0)  # (K, B, C_out)
    zi = torch.bmm(xr, wi).baddbmm_(xi, wr)
    if bias is not None:  # a constant is the zero mode: bias * N there is bias everywhere
        zr[0] += bias.to(dtype) * math.prod(spatial)
    for j in range(d - 1):  # exp(+i t) (a + i b) / n = (a c - b s) + i (a s + b c)
        c, s = trig_matrices(spatial[j], modes[j], True, dtype, device)
        ar, ai = zr.reshape(kept[j], -1).T, zi.reshape(kept[j], -1).T
        zr, zi = (ar @ c).addmm_(ai, s, alpha=-1.0), (ar @ s).addmm_(ai, c)
    # last axis: one product with re and im stacked, so the output is written once
    z = torch.cat([zr.reshape(k, -1), zi.reshape(k, -1)]).T  # (B C_out N_1..N_{d-1}, 2 K_d)
    g = irdft_matrix(n, modes[-1], dtype, device)  # (2 K_d, N_d)
    y = z @ g
    return y.view(b, co, *spatial)


def spectral_conv(
    x: torch.Tensor,
    weight: SpectralWeight,
    modes: int | Sequence[int] | None = None,
    *,
    bias: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Fourier-space channel mixing of the lowest modes of ``x``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C_in, *spatial)
        Real input with 1, 2 or 3 spatial dimensions (uniform grid).
    weight : complex torch.Tensor or (real, imag) pair, shape (C_in, C_out, *K)
        Per-mode channel matrices in the layout of the module docstring:
        ``K = (2 m_1, ..., 2 m_{d-1}, m_d)``.
    modes : int or sequence of int, optional
        Modes to use per axis (``m_j``), at most those of ``weight`` (the low
        block of the weight is used). Default: all modes of ``weight``.
    backend : {"auto", "torch", "fft", "dft", "triton"}, optional
        Implementation for this call; default from :func:`opflow.kernels.use`.
    bias : torch.Tensor, shape (C_out,), optional
        Added to every output point; the DFT path adds it to the zero mode
        before the inverse transform, which costs no pass over the output.

    Returns
    -------
    torch.Tensor, shape (B, C_out, *spatial)
        Real, dtype of ``x``.

    Raises
    ------
    ShapeError
        ``x`` or ``weight`` has the wrong number of dimensions or channels.
    InvalidArgumentError
        ``modes`` exceed the weight, or the grid is too coarse to hold them;
        ``backend="triton"`` without triton, for a dtype other than
        float32/float64, or for a CPU tensor outside the interpreter.
    """
    wr, wi = _as_pair(weight)
    use_modes = _check(x, wr, modes)
    have = _weight_modes(wr.shape)
    if use_modes != have:
        wr, wi = _select_modes(wr, have, use_modes), _select_modes(wi, have, use_modes)
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.shape != (wr.shape[1],)):
        raise ShapeError("bias", f"a tensor of shape ({wr.shape[1]},)", bias)
    impl = choose_backend(x, use_modes, backend)
    if impl == "dft":
        return _spectral_conv_dft(x, wr, wi, use_modes, bias)
    if impl == "triton":
        return triton_module("triton_spectral").spectral_conv_triton(x, wr, wi, use_modes, bias)
    return _spectral_conv_fft(x, wr, wi, use_modes, bias)
