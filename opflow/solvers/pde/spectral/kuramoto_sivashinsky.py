"""The Kuramoto-Sivashinsky equation on a 1-D periodic domain, in Fourier space.

``u_t + u u_x + u_xx + u_xxxx = closure(t, u)``: long waves grow
(``u_xx`` with the "wrong" sign), short ones are damped (``u_xxxx``), and the
advection moves energy between them; on domains longer than about ``10 pi``
the solutions are chaotic. For ``v = rfft(u)``:

* linear part ``L = k^2 - k^4`` (stiff: ETDRK4 integrates it exactly);
* explicit part ``N(v) = -(i k / 2) P rfft((irfft(P v))^2) + rfft(closure)``,
  the conservative form of ``-u u_x`` with the 2/3-rule projection ``P``
  (the mean of ``u`` is kept exactly).

This is the set-up of Kassam and Trefethen (2005) (ETDRK4, ``dt = 1/4``) and
of the DyMixOp data (``L = 64 pi``, uniform noise in ``[-1, 1]`` as the
initial state, snapshots after a burn-in to ``t = 100``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ....field import Field
from ....problems import check_tspan
from .fourier import FourierBasis
from .problems import Closure, _check_closure, _check_state
from .solve_spectral import register_spectral
from .system import ClosureTerm, SemilinearSystem

__all__ = ["KuramotoSivashinskyProblem", "kuramoto_sivashinsky_system"]


@dataclass(frozen=True)
class KuramotoSivashinskyProblem:
    """The Kuramoto-Sivashinsky equation on a 1-D periodic domain.

    ``u_t + u u_x + u_xx + u_xxxx = closure(t, u)``

    Parameters
    ----------
    u0 : Field, values of shape (*batch, 1, n)
        Initial state on a 1-D periodic uniform grid (the domain length sets
        the dynamics: ``32 pi`` or ``64 pi`` are chaotic). Real, finite.
    tspan : (float, float)
        ``(t0, t1)`` with ``t1 > t0``.
    closure : callable or nn.Module, optional
        ``closure(t, u) -> Field`` (or tensor) added to the right-hand side,
        as for :class:`~opflow.BurgersProblem`.

    Examples
    --------
    >>> import math, torch, opflow
    >>> from opflow.solvers.pde import KuramotoSivashinskyProblem
    >>> grid = opflow.Grid.uniform(x=(0.0, 32 * math.pi, 128), periodic=("x",))
    >>> (x,) = grid.mesh()
    >>> u0 = opflow.Field((torch.cos(x / 16) * (1 + torch.sin(x / 16)))[None], grid)
    >>> prob = KuramotoSivashinskyProblem(u0, tspan=(0.0, 10.0))
    >>> opflow.solve(prob, opflow.PseudoSpectral(dt=0.25, scheme="etdrk4")).success
    True
    """

    u0: Field
    tspan: tuple[float, float] = (0.0, 1.0)
    closure: Optional[Closure] = None

    def __post_init__(self):
        _check_state("u0", self.u0, 1)
        object.__setattr__(self, "tspan", check_tspan(self.tspan))
        _check_closure(self.closure)


@register_spectral(KuramotoSivashinskyProblem, "u0")
def kuramoto_sivashinsky_system(prob: KuramotoSivashinskyProblem,
                                dealias: bool = True) -> SemilinearSystem:
    """The :class:`~opflow.solvers.pde.spectral.system.SemilinearSystem` of the problem.

    Parameters
    ----------
    prob : KuramotoSivashinskyProblem
        The problem.
    dealias : bool
        Apply the 2/3 rule to the quadratic term.

    Returns
    -------
    SemilinearSystem
        ``L = k^2 - k^4`` and the explicit advection (and closure) term.
    """
    u0 = prob.u0
    basis = FourierBasis(u0.grid, u0.dtype, u0.device)
    linear = basis.k2 - basis.k2 * basis.k2
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
