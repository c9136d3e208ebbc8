"""Matrix-free Newton-Krylov: Newton steps solved by GMRES or CG on Jacobian-vector products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from ...errors import InvalidArgumentError
from ..linear import cg, gmres
from .base import NonlinearAlgorithm, Outcome, newton_loop
from .system import ResidualSystem

__all__ = ["NewtonKrylov"]


@dataclass(frozen=True)
class NewtonKrylov(NonlinearAlgorithm):
    """Inexact Newton for ``f(u) = 0`` without forming the Jacobian.

    Each Newton step solves ``J d = -f`` to the relative tolerance
    ``linear_rtol`` with a Krylov method whose operator is ``v -> J v``
    (forward-mode Jacobian-vector products), then backtracks on
    ``1/2 ||f||^2``. Memory is a few states per Krylov vector, so it suits
    PDEs on grids.

    Parameters
    ----------
    abstol, reltol, max_iters
        See :class:`~opflow.solvers.nonlinear.base.NonlinearAlgorithm`.
    krylov : {"gmres", "cg"}
        GMRES for any Jacobian; CG only when ``J`` is symmetric positive
        definite (e.g. an implicit diffusion step).
    precond : callable, optional
        ``precond(r) -> M^-1 r`` on states of the user's type (a tensor,
        Field or tuple like ``u0``), approximating ``J^-1``; for example one
        multigrid V-cycle of the linear part
        (:func:`opflow.solvers.pde.multigrid_preconditioner`).
    linear_rtol : float
        Relative tolerance of each linear solve (the forcing term).
    restart, max_linear_iters : int
        GMRES restart length and the most operator applications per solve.
    jvp : {"autodiff", "difference"}
        How ``J v`` is formed: forward-mode automatic differentiation (exact;
        the default), or a one-sided difference ``(f(u + e v) - f(u)) / e``
        with ``e = sqrt(machine epsilon) (1 + ||u||) / ||v||`` per sample
        (Jacobian-free Newton-Krylov: one plain evaluation per product, where
        forward-mode AD through stencil operations such as ``roll`` costs
        tens). Its rounding error grows with the Jacobian's norm: on a stiff
        diffusion stage at 64^2 it stalled GMRES (57 iterations per stage
        against 3 with exact products), so prefer it for mildly stiff,
        expensive ``f`` only.
    """

    krylov: str = "gmres"
    precond: Optional[Callable[[Any], Any]] = None
    linear_rtol: float = 1e-4
    restart: int = 30
    max_linear_iters: int = 300
    jvp: str = "autodiff"

    def __post_init__(self):
        super().__post_init__()
        if self.jvp not in ("autodiff", "difference"):
            raise InvalidArgumentError("jvp", "'autodiff' or 'difference'", self.jvp)
        if self.krylov not in ("gmres", "cg"):
            raise InvalidArgumentError("krylov", "'gmres' or 'cg'", self.krylov)
        if self.precond is not None and not callable(self.precond):
            raise InvalidArgumentError("precond", "None or a callable precond(r) -> M^-1 r",
                                       self.precond)
        if not (isinstance(self.linear_rtol, float) and 0 < self.linear_rtol < 1):
            raise InvalidArgumentError("linear_rtol", "a float in (0, 1)", self.linear_rtol)
        for name in ("restart", "max_linear_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(name, "a positive integer", v)

    def _flat_precond(self, system: ResidualSystem):
        precond = self.precond
        if precond is None:
            return None
        layout = system.layout

        def apply(r: torch.Tensor) -> torch.Tensor:
            return layout.flatten(precond(layout.unflatten(r)), "precond(r)")

        return apply

    def linear_solve(self, matvec, b: torch.Tensor, precond) -> tuple[torch.Tensor, int]:
        """``matvec(x) = b`` by the configured Krylov method; the solution and its work.

        Parameters
        ----------
        matvec : callable ``(B, D) -> (B, D)``
        b : torch.Tensor, shape (B, D)
        precond : callable or None

        Returns
        -------
        tuple of (torch.Tensor, int)
            The solution and the operator applications.
        """
        kw = dict(precond=precond, tol=self.linear_rtol, maxiter=self.max_linear_iters)
        if self.krylov == "cg":
            x, info = cg(matvec, b, **kw)
        else:
            x, info = gmres(matvec, b, restart=self.restart, **kw)
        return x, info.iterations

    def iterate(self, system: ResidualSystem, y0: torch.Tensor) -> Outcome:
        """Run the iteration from ``y0 (B, D)``.

        Parameters
        ----------
        system : ResidualSystem
            The residual on flat states.
        y0 : torch.Tensor, shape (B, D)
            Initial guess.

        Returns
        -------
        Outcome
        """
        precond = self._flat_precond(system)

        def direction(y, F):
            y_fixed, F_fixed = y.detach(), F.detach()
            if self.jvp == "difference":
                matvec = _difference_jvp(system, y_fixed, F_fixed)
            else:
                def matvec(v):
                    return system.jvp(y_fixed, v)
            step, work = self.linear_solve(matvec, -F_fixed, precond)
            unstable = ~torch.isfinite(step).all(1)
            return step, unstable, torch.ones_like(unstable), work

        return newton_loop(self, system, y0, direction)


def _difference_jvp(system: ResidualSystem, y: torch.Tensor, F: torch.Tensor):
    """``v -> (f(y + e v) - f(y)) / e`` per sample, ``f(y) = F`` already known."""
    root_eps = torch.finfo(y.dtype).eps ** 0.5
    size = 1.0 + y.norm(dim=1, keepdim=True)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        vn = v.norm(dim=1, keepdim=True)
        e = root_eps * size / torch.where(vn > 0, vn, torch.ones_like(vn))
        with torch.no_grad():
            return (system(y + e * v) - F) / e

    return matvec
