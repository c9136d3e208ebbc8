"""Gaussian random fields ``N(0, sigma^2 (-Laplacian + tau^2 I)^(-alpha))``.

Samples are drawn exactly from the truncated Karhunen-Loeve expansion

    u(x) = sum_m sqrt(lambda_m) xi_m phi_m(x),   xi_m ~ N(0, 1),
    lambda_m = sigma^2 (mu_m + tau^2)^(-alpha),

where ``phi_m`` are the L2-orthonormal eigenfunctions of ``-Laplacian`` on the
grid's box and ``mu_m`` their eigenvalues: a real Fourier basis on periodic
axes, cosines (zero Neumann) or sines (zero Dirichlet) on the others, one
mode per grid point and axis. Each axis contributes a small matrix
``Phi[j, m] = phi_m(x_j)`` evaluated at the grid's own coordinates, and a
sample is ``xi`` contracted with those matrices, so periodic, Neumann and
Dirichlet boxes in 1-3 dimensions share one code path.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..field import Field
from ..grid import Axis, Grid

__all__ = ["grf", "grf_basis"]

_BCS = ("neumann", "periodic", "dirichlet")


def _axis_basis(axis: Axis, bc: str) -> tuple[np.ndarray, np.ndarray]:
    """``(Phi (n, M), mu (M,))`` for one axis: orthonormal eigenfunctions and eigenvalues."""
    n, L = axis.size, axis.length
    x = axis.coords - axis.bounds[0]
    if bc == "periodic":
        cols, mus = [np.full(n, 1 / math.sqrt(L))], [0.0]
        for m in range(1, n // 2 + 1):
            k = 2 * math.pi * m / L
            cols.append(math.sqrt(2 / L) * np.cos(k * x))
            mus.append(k * k)
            if len(cols) < n and not (n % 2 == 0 and m == n // 2):
                cols.append(math.sqrt(2 / L) * np.sin(k * x))
                mus.append(k * k)
        return np.stack(cols[:n], axis=1), np.asarray(mus[:n])
    if bc == "neumann":
        ms = np.arange(n)
        phi = np.cos(np.outer(x, ms) * math.pi / L) * math.sqrt(2 / L)
        phi[:, 0] = 1 / math.sqrt(L)
        return phi, (ms * math.pi / L) ** 2
    ms = np.arange(1, n - 1)  # dirichlet: sines vanish at both ends; n - 2 interior modes
    return np.sin(np.outer(x, ms) * math.pi / L) * math.sqrt(2 / L), (ms * math.pi / L) ** 2


def grf_basis(grid: Grid, alpha: float, tau: float, sigma: float = 1.0,
              bc: Union[str, Sequence[str]] = "neumann"):
    """Per-axis bases and the standard deviations of the KL coefficients.

    Parameters
    ----------
    grid : Grid
        1-3 axes. Periodic axes use the Fourier basis.
    alpha, tau : float
        Smoothness exponent and inverse length scale, as for :func:`grf`.
    sigma : float
        Amplitude.
    bc : str or sequence of str
        Boundary condition of the covariance operator per non-periodic axis,
        as for :func:`grf`.

    Returns
    -------
    bases : list of numpy.ndarray, each (n_axis, M_axis)
        ``M = n`` modes per axis, ``n - 2`` on a Dirichlet axis (whose end
        points are zero).
    std : numpy.ndarray, shape (M_1, ..., M_d)
        ``sqrt(lambda_m)`` on the tensor grid of modes.
    """
    bcs = _check_bc(grid, bc)
    bases, mus = zip(*(_axis_basis(a, b) for a, b in zip(grid.axes, bcs)))
    mu = sum(np.meshgrid(*mus, indexing="ij"))
    std = sigma * (mu + tau**2) ** (-alpha / 2)
    return list(bases), std


def _check_bc(grid: Grid, bc) -> list[str]:
    bcs = [bc] * grid.ndim if isinstance(bc, str) else list(bc)
    if len(bcs) != grid.ndim or any(b not in _BCS for b in bcs):
        raise InvalidArgumentError("bc", f"one of {_BCS} or one per axis ({grid.ndim})", bc)
    for a, b in zip(grid.axes, bcs):
        if (b == "periodic") != a.periodic:
            raise InvalidArgumentError(
                "bc", f"'periodic' exactly on the grid's periodic axes (axis {a.name!r} is "
                f"{'periodic' if a.periodic else 'not periodic'})", bc)
    return bcs


def grf(
    grid: Grid,
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: Optional[float] = None,
    batch: int = 1,
    seed: Optional[int] = 0,
    generator: Optional[torch.Generator] = None,
    bc: Union[str, Sequence[str], None] = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    name: str = "u",
    zero_mean: bool = False,
) -> Field:
    """Sample a Gaussian random field ``N(0, sigma^2 (-Laplacian + tau^2 I)^(-alpha))``.

    Parameters
    ----------
    grid : Grid
        1-3 axes. Periodic axes use the Fourier basis.
    alpha, tau : float
        Smoothness exponent (``alpha > d/2`` for a continuous field) and
        inverse length scale, both positive.
    sigma : float, optional
        Amplitude; default ``tau**(alpha - d/2)``, which makes the pointwise
        variance of order one for any ``tau`` (the FNO data convention up to
        a constant).
    batch : int
        Number of samples.
    seed : int, optional
        Seed of a private CPU generator (ignored when ``generator`` is given).
        The same seed gives bit-identical samples on CPU.
    generator : torch.Generator, optional
    bc : str or sequence of str, optional
        ``"neumann"`` (default on non-periodic axes), ``"dirichlet"`` or
        ``"periodic"`` (must match the grid's periodic axes), per axis or one
        for all. Default: periodic on periodic axes, Neumann elsewhere.
    dtype, device : where the result lives.
    name : str
        Channel name of the returned Field.
    zero_mean : bool
        Drop the constant mode (periodic/Neumann), as the FNO paper's data
        generator does.

    Returns
    -------
    Field, values shape (batch, 1, *grid.shape)
    """
    for arg, v in (("alpha", alpha), ("tau", tau)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise InvalidArgumentError(arg, "a positive number", v)
    if not (isinstance(batch, int) and batch >= 1):
        raise InvalidArgumentError("batch", "a positive integer number of samples", batch)
    if grid.ndim > 3:
        raise InvalidArgumentError("grid", "1 to 3 axes", grid.names)
    if bc is None:
        bc = ["periodic" if a.periodic else "neumann" for a in grid.axes]
    if sigma is None:
        sigma = tau ** (alpha - grid.ndim / 2)
    elif not sigma > 0:
        raise InvalidArgumentError("sigma", "a positive amplitude", sigma)
    bases, std = grf_basis(grid, alpha, tau, sigma, bc)
    if zero_mean and all(b != "dirichlet" for b in _check_bc(grid, bc)):
        std = std.copy()
        std[(0,) * grid.ndim] = 0.0  # mode 0 is the constant on every axis
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    # Draw on the CPU in float64 so that samples do not depend on device or dtype.
    xi = torch.randn((batch, *std.shape), generator=generator, dtype=torch.float64)
    values = xi * torch.from_numpy(std)
    for i, phi in enumerate(bases):  # modes -> grid points, one axis at a time
        values = _contract(values, phi, i)
    return Field(values.unsqueeze(1).to(dtype=dtype, device=device), grid, names=name,
                 attrs={"grf_alpha": alpha, "grf_tau": tau, "grf_sigma": sigma})


def _contract(values: torch.Tensor, phi: np.ndarray, axis: int) -> torch.Tensor:
    """Apply ``Phi`` (n, M) along axis ``axis`` of ``values`` (batch, *modes): M -> n."""
    moved = values.movedim(axis + 1, -1)
    out = moved @ torch.from_numpy(phi).T
    return out.movedim(-1, axis + 1)
