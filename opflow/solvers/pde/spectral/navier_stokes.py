"""2-D incompressible Navier-Stokes (vorticity form) in Fourier space.

Sign convention (the one of the FNO data recipe): with the stream function
``psi = -Laplacian^{-1} w`` (zero mean), the velocity is

    u_x = d psi / dy,    u_y = -d psi / dx,

so that ``div u = 0`` and ``w = d u_y / dx - d u_x / dy`` (the usual
vorticity, positive for counter-clockwise rotation in the ``(x, y)`` plane).

For ``w_t + u . grad w = nu Laplacian w + f + c(t, w)`` and ``v = rfft2(w)``:

* linear part ``L = -nu |k|^2``;
* explicit part ``N(v) = -P rfft2(u_x w_x + u_y w_y) + rfft2(f) + rfft2(c)``
  where ``u``, ``w_x`` and ``w_y`` are computed from ``P v`` and ``P`` is
  the 2/3-rule projection (identity when ``dealias=False``).
"""

from __future__ import annotations

import torch

from ....field import Field
from .fourier import FourierBasis
from .problems import NavierStokes2DProblem, _check_state
from .solve_spectral import register_spectral
from .system import ClosureTerm, SemilinearSystem

__all__ = ["navier_stokes_system", "velocity_from_vorticity"]


def _inverse_minus_laplacian(basis: FourierBasis) -> torch.Tensor:
    """``1 / |k|^2`` with 0 on the mean mode (the zero-mean inverse of ``-Laplacian``)."""
    k2 = basis.k2
    return torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)),
                       torch.zeros_like(k2))


def _velocity_spectra(basis: FourierBasis, inv_k2: torch.Tensor, v: torch.Tensor):
    """Spectra of ``(u_x, u_y)`` from the vorticity spectrum ``v``."""
    psi = v * inv_k2
    return basis.derivative(1) * psi, -basis.derivative(0) * psi


def velocity_from_vorticity(w: Field) -> Field:
    """Velocity of a periodic 2-D vorticity field (spectrally exact).

    Parameters
    ----------
    w : Field, values of shape (*batch, 1, nx, ny)
        Vorticity on a 2-D periodic uniform grid.

    Returns
    -------
    Field, values of shape (*batch, 2, nx, ny)
        Channels ``("u", "v")``: ``u = d psi / dy`` and ``v = -d psi / dx``
        with ``psi = -Laplacian^{-1} w`` of zero mean.
    """
    _check_state("w", w, 2)
    basis = FourierBasis(w.grid, w.dtype, w.device)
    ux, uy = _velocity_spectra(basis, _inverse_minus_laplacian(basis), basis.forward(w.values))
    values = basis.inverse(torch.cat([ux, uy], dim=-3))
    return Field(values, w.grid, ("u", "v"), attrs=w.attrs)


@register_spectral(NavierStokes2DProblem, "w0")
def navier_stokes_system(prob: NavierStokes2DProblem, dealias: bool = True) -> SemilinearSystem:
    """The :class:`~.system.SemilinearSystem` of a :class:`NavierStokes2DProblem`.

    Parameters
    ----------
    prob : NavierStokes2DProblem
    dealias : bool
        Apply the 2/3 rule to the advection term.
    """
    w0 = prob.w0
    basis = FourierBasis(w0.grid, w0.dtype, w0.device)
    linear = -prob.nu * basis.k2
    inv_k2 = _inverse_minus_laplacian(basis)
    ikx, iky = basis.derivative(0), basis.derivative(1)
    mask = basis.dealias if dealias else None
    forcing = None if prob.forcing is None else basis.forward(
        prob.forcing.values.to(dtype=w0.dtype, device=w0.device))
    closure = None if prob.closure is None else ClosureTerm(prob.closure, w0, basis)

    # Symbols taking w to (u_x, u_y, w_x, w_y), stacked: one product and one
    # batched inverse transform give the four fields.
    symbols = torch.stack(torch.broadcast_tensors(iky * inv_k2, -ikx * inv_k2, ikx, iky))
    if mask is not None:
        symbols = symbols * mask
    symbols = symbols.reshape(4, *([1] * (w0.values.ndim - 2)), *symbols.shape[1:])

    def explicit(t: float, v: torch.Tensor) -> torch.Tensor:
        phys = basis.inverse(symbols * v)
        n = -basis.forward(phys[0] * phys[2] + phys[1] * phys[3])
        if mask is not None:
            n = n * mask
        if forcing is not None:
            n = n + forcing
        if closure is not None:
            n = n + closure(t, v)
        return n

    return SemilinearSystem(basis=basis, linear=linear, explicit=explicit)
