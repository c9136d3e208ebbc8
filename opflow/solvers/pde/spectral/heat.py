"""The heat equation in Fourier space.

For ``u_t = nu Laplacian u + c(t, u)`` and ``v = rfftn(u)``: linear part
``L = -nu |k|^2``; explicit part ``rfftn(c)`` (zero without a closure, so
ETDRK4 is exact: ``v(t + h) = exp(L h) v(t)``).
"""

from __future__ import annotations

import torch

from .fourier import FourierBasis
from .problems import HeatProblem
from .solve_spectral import register_spectral
from .system import ClosureTerm, SemilinearSystem

__all__ = ["heat_system"]


@register_spectral(HeatProblem, "u0")
def heat_system(prob: HeatProblem, dealias: bool = True) -> SemilinearSystem:
    """The :class:`~.system.SemilinearSystem` of a :class:`HeatProblem`.

    ``dealias`` is accepted for the common signature; the equation has no
    product term to dealias.
    """
    u0 = prob.u0
    basis = FourierBasis(u0.grid, u0.dtype, u0.device)
    closure = None if prob.closure is None else ClosureTerm(prob.closure, u0, basis)

    def explicit(t: float, v: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(v) if closure is None else closure(t, v)

    return SemilinearSystem(basis=basis, linear=-prob.nu * basis.k2, explicit=explicit)
