"""Truncated discrete Fourier transforms as real matrices, built once and cached.

A spectral convolution keeps only a few Fourier modes, so on a CPU the
transform to (and from) those modes is cheaper as a small dense matrix
product than as a full FFT. This module builds the cos/sin matrices in
float64, casts them to the requested dtype and device, and caches them per
``(n, m, kind, dtype, device)``.

Frequencies kept on an axis of ``n`` points (see :func:`kept_frequencies`):

* a **leading** axis (full complex transform) keeps ``K = 2 m`` frequencies
  in FFT order, ``0, 1, ..., m - 1, -m, ..., -1``;
* the **last** axis (half spectrum of a real signal, as ``rfft``) keeps
  ``K = m`` frequencies ``0, 1, ..., m - 1``.

All matrices have shape ``(K, n)`` (frequency by grid point). Complex numbers
are handled as separate real and imaginary parts; the conventions are those
of ``torch.fft``: the forward transform is unnormalised and the inverse
divides by ``n``.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["kept_frequencies", "trig_matrices", "rdft_matrix", "irdft_matrix", "clear_cache"]


def kept_frequencies(m: int, last: bool) -> torch.Tensor:
    """Integer frequencies kept on an axis with modes parameter ``m``, in weight order.

    Returns ``0..m-1`` for the last (half-spectrum) axis and ``0..m-1``
    followed by ``-m..-1`` for a leading axis (int64).
    """
    pos = torch.arange(m)
    return pos if last else torch.cat([pos, torch.arange(-m, 0)])


def _angles(n: int, m: int, last: bool) -> torch.Tensor:
    # theta[k, j] = 2 pi f_k j / n with f_k j reduced modulo n first (exact in int64)
    f = kept_frequencies(m, last)
    j = torch.arange(n, dtype=torch.int64)
    return (2 * math.pi / n) * ((f[:, None] * j[None, :]) % n).to(torch.float64)


def _build(kind: str, n: int, m: int) -> tuple[torch.Tensor, ...]:
    if kind == "trig":  # leading axis, forward: exp(-i t) = cos - i sin
        t = _angles(n, m, False)
        return torch.cos(t), torch.sin(t)
    if kind == "itrig":  # leading axis, inverse: exp(+i t) / n
        t = _angles(n, m, False)
        return torch.cos(t) / n, torch.sin(t) / n
    t = _angles(n, m, True)
    if kind == "rdft":  # last axis, forward: [Re; Im] = [cos; -sin] x
        return (torch.cat([torch.cos(t), -torch.sin(t)], dim=0),)
    # "irdft": last axis, inverse as irfft: x = sum_k w_k (Re X_k cos - Im X_k sin)
    w = torch.full((m, 1), 2.0 / n, dtype=torch.float64)
    w[0] = 1.0 / n
    if n % 2 == 0 and m == n // 2 + 1:
        w[-1] = 1.0 / n  # the Nyquist term appears once in a real signal
    return (torch.cat([w * torch.cos(t), -w * torch.sin(t)], dim=0),)


@functools.lru_cache(maxsize=512)
def _cached(kind: str, n: int, m: int, dtype: torch.dtype,
            device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(a.to(dtype=dtype, device=device).contiguous() for a in _build(kind, n, m))


def _get(kind: str, n: int, m: int, dtype, device) -> tuple[torch.Tensor, ...]:
    return _cached(kind, int(n), int(m), dtype, torch.device(device))


def trig_matrices(n: int, m: int, inverse: bool = False, dtype=torch.float32,
                  device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of shape ``(2 m, n)`` for a leading (complex) axis.

    Forward: ``X = sum_j (cos - i sin)[:, j] z_j``; with ``inverse=True`` both
    are divided by ``n`` and ``z_j = sum_k (cos + i sin)[k, j] X_k``.
    """
    cos, sin = _get("itrig" if inverse else "trig", n, m, dtype, device)
    return cos, sin


def rdft_matrix(n: int, m: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """``[cos; -sin]`` of shape ``(2 m, n)``: real signal -> ``[Re X; Im X]`` (as ``rfft``)."""
    return _get("rdft", n, m, dtype, device)[0]


def irdft_matrix(n: int, m: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """``G`` of shape ``(2 m, n)`` with ``irfft(X, n) = [Re X, Im X] @ G``.

    The other coefficients are taken as zero; the imaginary parts of the zero
    and Nyquist frequencies drop out, as in ``irfft``.
    """
    return _get("irdft", n, m, dtype, device)[0]


def clear_cache() -> None:
    """Drop every cached matrix (frees memory after unusual sizes)."""
    _cached.cache_clear()
