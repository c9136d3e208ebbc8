"""Spectral convolution's channel mixing as one Triton kernel on real/imaginary pairs.

Triton has no complex type, so complex tensors travel as real tensors with
the real and imaginary parts at a fixed element offset (``s_im``): 1 for a
``torch.view_as_real`` spectrum (interleaved pairs), the plane stride for a
weight stored as a stacked ``(2, C_in, C_out, *K)`` pair.

One kernel does all three contractions of the layer, forward and backward::

    out[a, c, k] = sum_r L[a, r, k] R[r, c, k]      (complex, optional conjugates)

* forward: ``Y[b, o] = sum_i X[b, i] W[i, o]``;
* input gradient: ``dX[b, i] = sum_o dY[b, o] conj(W[i, o])``;
* weight gradient: ``dW[i, o] = sum_b conj(X[b, i]) dY[b, o]``.

Mode truncation is fused into the addressing: ``k`` runs over the kept modes
only, and the kernel reads them straight out of the full ``rfftn`` spectrum
(the low-positive and low-negative corner blocks on the leading axes) and
writes the result into the zero-filled full spectrum that ``irfftn`` takes,
so no gather, scatter or padding copies exist. Every operand is described by
its strides, so transposed operands (``W`` as ``(o, i)``, ``X`` as
``(i, b)``) are free.

Grids have up to three axes, held internally as three "slots" ``(1, 2, 3)``:
slot 3 is the half-spectrum last axis, slots 1-2 the leading axes; a 1-D or
2-D problem leaves the first slots with one element.

This module imports triton at import time: load it through
:func:`opflow.kernels.backend.triton_module`. On CPU tensors the kernels run
only under the interpreter (``TRITON_INTERPRET=1`` before this module is
first imported).
"""

from __future__ import annotations

import math
from typing import Sequence, cast

import torch
import triton
import triton.language as tl

from ..errors import InvalidArgumentError
from .backend import interpreted

__all__ = ["spectral_conv_triton", "spectral_mix", "INTERPRETED", "DTYPES"]

DTYPES = (torch.float32, torch.float64)

BLOCK_C = 16
BLOCK_K = 64


@triton.jit
def _contract_kernel(
    l_ptr, r_ptr, o_ptr,
    n_r, n_c,
    k1, k2, k3, m1, m2,
    l_sa, l_sr, l_s1, l_s2, l_s3, l_im, l_h1, l_h2,
    r_sr, r_sc, r_s1, r_s2, r_s3, r_im, r_h1, r_h2,
    o_sa, o_sc, o_s1, o_s2, o_s3, o_im, o_h1, o_h2,
    CONJ_L: tl.constexpr, CONJ_R: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_k = tl.program_id(0)
    a = tl.program_id(1)
    pid_c = tl.program_id(2)
    kk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    cc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_k = kk < k1 * k2 * k3
    mask_c = cc < n_c
    # kept-mode index -> (slot 1, slot 2, slot 3); the second half of a leading
    # axis (negative frequencies) sits h = N - 2m further on in a full spectrum
    i3 = kk % k3
    i2 = (kk // k3) % k2
    i1 = kk // (k3 * k2)
    hi1 = (i1 >= m1).to(tl.int64)
    hi2 = (i2 >= m2).to(tl.int64)
    l_off = (i1 + hi1 * l_h1) * l_s1 + (i2 + hi2 * l_h2) * l_s2 + i3 * l_s3 + a * l_sa
    r_off = (i1 + hi1 * r_h1) * r_s1 + (i2 + hi2 * r_h2) * r_s2 + i3 * r_s3
    o_off = (i1 + hi1 * o_h1) * o_s1 + (i2 + hi2 * o_h2) * o_s2 + i3 * o_s3 + a * o_sa
    r_tile = r_off[None, :] + cc[:, None] * r_sc
    mask = mask_c[:, None] & mask_k[None, :]
    acc_re = tl.zeros([BLOCK_C, BLOCK_K], dtype=o_ptr.dtype.element_ty)
    acc_im = tl.zeros([BLOCK_C, BLOCK_K], dtype=o_ptr.dtype.element_ty)
    for r in range(0, n_r):
        lp = l_ptr + l_off + r * l_sr
        x_re = tl.load(lp, mask=mask_k, other=0.0)[None, :]
        x_im = tl.load(lp + l_im, mask=mask_k, other=0.0)[None, :]
        rp = r_ptr + r_tile + r * r_sr
        w_re = tl.load(rp, mask=mask, other=0.0)
        w_im = tl.load(rp + r_im, mask=mask, other=0.0)
        if CONJ_L:
            x_im = -x_im
        if CONJ_R:
            w_im = -w_im
        acc_re += x_re * w_re - x_im * w_im
        acc_im += x_re * w_im + x_im * w_re
    op = o_ptr + o_off[None, :] + cc[:, None] * o_sc
    tl.store(op, acc_re, mask=mask)
    tl.store(op + o_im, acc_im, mask=mask)


INTERPRETED: bool = interpreted(_contract_kernel)
"""Whether the kernels were defined under Triton's interpreter (CPU testing)."""


class _Operand:
    """A complex operand as (tensor, two index strides, three slot strides,
    imaginary offset, two corner shifts), all in elements."""

    def __init__(self, t: torch.Tensor, s_a: int, s_b: int, slots: Sequence[int], s_im: int,
                 shifts: Sequence[int]):
        self.t = t
        self.args = (s_a, s_b, *slots, s_im, *shifts)


def _spectrum(t: torch.Tensor, shifts: Sequence[int], transpose: bool = False) -> _Operand:
    """A real view ``(B, C, S1, S2, S3, 2)`` of a complex spectrum."""
    s = t.stride()
    s_a, s_b = (s[1], s[0]) if transpose else (s[0], s[1])
    return _Operand(t, s_a, s_b, s[2:5], s[5], shifts)


def _weight(t: torch.Tensor, transpose: bool = False) -> _Operand:
    """A stacked weight ``(2, C_in, C_out, K1, K2, K3)`` (dense: no corner shifts)."""
    s = t.stride()
    s_a, s_b = (s[2], s[1]) if transpose else (s[1], s[2])
    return _Operand(t, s_a, s_b, s[3:6], s[0], (0, 0))


def _launch(left: _Operand, right: _Operand, out: _Operand, n_a: int, n_r: int, n_c: int,
            kept: Sequence[int], modes2: Sequence[int], conj_l: bool, conj_r: bool) -> None:
    k_total = math.prod(kept)
    grid = (triton.cdiv(k_total, BLOCK_K), n_a, triton.cdiv(n_c, BLOCK_C))
    _contract_kernel[grid](
        left.t, right.t, out.t, n_r, n_c, *kept, *modes2,
        *left.args, *right.args, *out.args,
        CONJ_L=conj_l, CONJ_R=conj_r, BLOCK_C=BLOCK_C, BLOCK_K=BLOCK_K,
    )


class _SpectralMix(torch.autograd.Function):
    """Full spectrum ``(B, C_in, S1, S2, S3, 2)`` -> full spectrum ``(B, C_out, ...)``,
    kept modes mixed by the weight, every other mode zero."""

    @staticmethod
    def forward(ctx, xs, w2, kept, modes2, shifts):
        b, ci = xs.shape[:2]
        co = w2.shape[2]
        ys = xs.new_zeros(b, co, *xs.shape[2:])
        _launch(_spectrum(xs, shifts), _weight(w2), _spectrum(ys, shifts), b, ci, co, kept,
                modes2, False, False)
        ctx.save_for_backward(xs, w2)
        ctx.geometry = (kept, modes2, shifts)
        return ys

    @staticmethod
    def backward(ctx, gy):
        xs, w2 = ctx.saved_tensors
        kept, modes2, shifts = ctx.geometry
        b, ci = xs.shape[:2]
        co = w2.shape[2]
        gx = gw = None
        if ctx.needs_input_grad[0]:  # dX[b, i] = sum_o dY[b, o] conj(W[i, o])
            gx = torch.zeros_like(xs)
            _launch(_spectrum(gy, shifts), _weight(w2, transpose=True), _spectrum(gx, shifts),
                    b, co, ci, kept, modes2, False, True)
        if ctx.needs_input_grad[1]:  # dW[i, o] = sum_b conj(X[b, i]) dY[b, o]
            gw = torch.empty_like(w2)
            _launch(_spectrum(xs, shifts, transpose=True), _spectrum(gy, shifts),
                    _weight(gw), ci, b, co, kept, modes2, True, False)
        return gx, gw, None, None, None


def _slots(values: Sequence[int], fill: int) -> tuple[int, int, int]:
    """Right-align 1-3 per-axis values into the three slots."""
    return cast("tuple[int, int, int]", (fill,) * (3 - len(values)) + tuple(values))


def _check_runnable(x: torch.Tensor) -> None:
    if x.dtype not in DTYPES:
        raise InvalidArgumentError("x", f"dtype in {DTYPES} for the triton backend", x)
    if x.device.type == "cpu" and not INTERPRETED:
        raise InvalidArgumentError(
            "x", "a CUDA tensor for the triton backend (CPU tensors need TRITON_INTERPRET=1 "
            "set before the kernels are first loaded)", x)


def spectral_mix(xf: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor,
                 modes: Sequence[int]) -> torch.Tensor:
    """Mix the kept modes of a full ``rfftn`` spectrum; zero everywhere else.

    Parameters
    ----------
    xf : complex torch.Tensor, shape (B, C_in, N_1, ..., N_{d-1}, N_d // 2 + 1)
        Spectrum of the input (``torch.fft.rfftn`` over the last ``d`` axes).
    wr, wi : torch.Tensor, shape (C_in, C_out, 2 m_1, ..., 2 m_{d-1}, m_d)
        Real and imaginary weight parts (layout of :mod:`opflow.kernels.spectral_conv`).
    modes : sequence of int
        ``(m_1, ..., m_d)``, already checked against the grid.

    Returns
    -------
    complex torch.Tensor, shape (B, C_out, N_1, ..., N_{d-1}, N_d // 2 + 1)
        Differentiable in ``xf``, ``wr`` and ``wi``.
    """
    b, ci, *spec = xf.shape
    co = wr.shape[1]
    xs = torch.view_as_real(xf).reshape(b, ci, *_slots(spec, 1), 2)
    w2 = torch.stack([wr, wi]).to(xs.dtype).reshape(2, ci, co, *_slots(wr.shape[2:], 1))
    kept = _slots(tuple(wr.shape[2:]), 1)
    lead = tuple(modes[:-1])
    pad = (0,) * (2 - len(lead))
    modes2 = (1,) * len(pad) + lead  # an unused slot: one mode, never shifted
    shifts = pad + tuple(n - 2 * m for n, m in zip(spec[:-1], lead))
    ys = _SpectralMix.apply(xs, w2, kept, modes2, shifts)
    return torch.view_as_complex(ys.reshape(b, co, *spec, 2))


def spectral_conv_triton(x: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor,
                         modes: Sequence[int], bias: torch.Tensor | None = None) -> torch.Tensor:
    """``irfftn(mix(rfftn(x)))`` with the Triton mixing kernel.

    Arguments as ``opflow.kernels.spectral_conv`` after its checks (``modes``
    a tuple matching ``wr``). The transforms are ``torch.fft``; the kernel
    replaces the gather, the channel products and the zero padding.
    """
    _check_runnable(x)
    spatial = tuple(x.shape[2:])
    dims = tuple(range(2, x.ndim))
    xf = torch.fft.rfftn(x, dim=dims)
    yf = spectral_mix(xf, wr.to(x.dtype), wi.to(x.dtype), modes)
    y = torch.fft.irfftn(yf, s=spatial, dim=dims)
    return y if bias is None else y + bias.to(x.dtype).reshape(1, -1, *(1,) * len(spatial))
