"""Viscous Burgers in Fourier space.

For ``u_t + (u^2 / 2)_x = nu u_xx + c(t, u)`` and ``v = rfft(u)``:

* linear part ``L = -nu k^2``;
* explicit part ``N(v) = -(i k / 2) P rfft((irfft(P v))^2) + rfft(c)``, with
  ``P`` the 2/3-rule projection (identity when ``dealias=False``). The
  conservative form keeps the mean of ``u`` exactly.
"""

from __future__ import annotations

import torch

from .fourier import FourierBasis
from .problems import BurgersProblem
from .solve_spectral import register_spectral
from .system import ClosureTerm, SemilinearSystem

__all__ = ["burgers_system"]


@register_spectral(BurgersProblem, "u0")
def burgers_system(prob: BurgersProblem, dealias: bool = True) -> SemilinearSystem:
    """The :class:`~.system.SemilinearSystem` of a :class:`BurgersProblem`.

    Parameters
    ----------
    prob : BurgersProblem
    dealias : bool
        Apply the 2/3 rule to the quadratic term.
    """
    u0 = prob.u0
    basis = FourierBasis(u0.grid, u0.dtype, u0.device)
    linear = -prob.nu * basis.k2
    half_ik = -0.5 * basis.derivative(0)
    mask = basis.dealias if dealias else None
    closure = None if prob.closure is None else ClosureTerm(prob.closure, u0, basis)

    def explicit(t: float, v: torch.Tensor) -> torch.Tensor:
        u = basis.inverse(v if mask is None else v * mask)
        n = half_ik * basis.forward(u * u)
        if mask is not None:
            n = n * mask
        if closure is not None:
            n = n + closure(t, v, u if mask is None else None)
        return n

    return SemilinearSystem(basis=basis, linear=linear, explicit=explicit)
