"""The real Fourier basis of a periodic Grid: transforms, wavenumbers, dealiasing.

A state on a periodic grid of shape ``(n_1, ..., n_d)`` is held by its real
FFT (``torch.fft.rfftn`` over the grid dimensions): a complex tensor of the
*spectral shape* ``(n_1, ..., n_{d-1}, n_d // 2 + 1)``. :class:`FourierBasis`
builds, once per solve, the wavenumber tensors broadcast against that shape,
the masks of the 2/3 rule, and the two transforms.

Conventions
-----------
* Wavenumbers are angular, ``k = 2 pi m / L`` for the integer mode ``m`` and
  the period ``L`` of the axis, as :meth:`opflow.Grid.wavenumbers`.
* ``derivative(axis)`` is the symbol ``i k`` of ``d/dx`` with the Nyquist
  mode of an even axis set to zero (an odd derivative of that mode is not
  real), as :func:`opflow.calculus.partial` does.
* The 2/3 rule keeps the modes with ``3 |m| < n`` on every axis: a product of
  two fields restricted to those modes has no aliasing error on them.
"""

from __future__ import annotations

import math

import torch

from ....grid import Grid

__all__ = ["FourierBasis"]


class FourierBasis:
    """Transforms and spectral symbols of a periodic :class:`~opflow.Grid`.

    Parameters
    ----------
    grid : Grid
        Every axis periodic and uniform (the problems check this).
    dtype : torch.dtype
        Real dtype of the physical values (float32 or float64).
    device : torch.device
        Where the symbols live.

    Attributes
    ----------
    k : tuple of torch.Tensor
        Angular wavenumber of each axis, real, shaped to broadcast against
        the spectral shape (axis ``i`` along dimension ``i``).
    k2 : torch.Tensor, spectral shape
        ``|k|^2``, the symbol of ``-Laplacian``.
    dealias : torch.Tensor, spectral shape
        1 on the modes kept by the 2/3 rule, 0 elsewhere (real).
    """

    def __init__(self, grid: Grid, dtype: torch.dtype, device: torch.device):
        self.grid = grid
        self.dtype = dtype
        self.device = device
        self.shape = grid.shape
        d = grid.ndim
        self.dims = tuple(range(-d, 0))
        ks, keep, odd = [], [], []
        for i, axis in enumerate(grid.axes):
            n = axis.size
            last = i == d - 1
            modes = (torch.fft.rfftfreq(n, d=1.0 / n, dtype=torch.float64) if last
                     else torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64))
            modes = modes.round()
            view = [1] * d
            view[i] = modes.numel()
            k = modes * (2 * math.pi / axis.length)
            ks.append(k.reshape(view).to(dtype=dtype, device=device))
            keep.append((3 * modes.abs() < n).reshape(view))
            nyquist = ((modes.abs() == n / 2) if n % 2 == 0
                       else torch.zeros_like(modes, dtype=torch.bool))
            odd.append(torch.where(nyquist, 0.0, k).reshape(view).to(dtype=dtype, device=device))
        self.k = tuple(ks)
        self._ik = tuple(1j * k for k in odd)
        self.k2 = sum(k * k for k in ks)
        mask = keep[0]
        for m in keep[1:]:
            mask = mask & m
        self.dealias = mask.to(dtype=dtype, device=device)

    @property
    def spectral_shape(self) -> tuple[int, ...]:
        return (*self.shape[:-1], self.shape[-1] // 2 + 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Real FFT over the grid dimensions: ``(..., *shape)`` -> ``(..., *spectral_shape)``."""
        return torch.fft.rfftn(u, dim=self.dims)

    def inverse(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`forward`: ``(..., *spectral_shape)`` -> ``(..., *shape)``."""
        return torch.fft.irfftn(v, s=self.shape, dim=self.dims)

    def derivative(self, axis: int) -> torch.Tensor:
        """Symbol ``i k`` of the first derivative along ``axis`` (complex, broadcastable)."""
        return self._ik[axis]
