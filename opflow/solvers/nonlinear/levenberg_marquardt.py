"""Levenberg-Marquardt with Moré's scaling and Nielsen's damping update."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InvalidArgumentError
from ..linear import dense_solve
from .base import RUNNING, STALLED, SUCCESS, UNSTABLE, NonlinearAlgorithm, Outcome, max_norm
from .system import ResidualSystem

__all__ = ["LevenbergMarquardt"]

_MAX_DAMPING = 1e16


@dataclass(frozen=True)
class LevenbergMarquardt(NonlinearAlgorithm):
    """Levenberg-Marquardt for ``min 1/2 ||r(u)||^2`` (also for ``f(u) = 0``).

    Each iteration solves ``(J^T J + lambda D^T D) d = -J^T r`` with ``D`` the
    square root of the largest diagonal of ``J^T J`` seen so far (Moré's
    scaling, invariant to rescaling the unknowns). A step is accepted when the
    actual decrease of ``1/2 ||r||^2`` is at least ``1e-4`` times the decrease
    the linear model predicts (gain ratio ``rho``); then ``lambda`` shrinks by
    ``max(1/3, 1 - (2 rho - 1)^3)``, else it grows by a doubling factor
    (Nielsen). A rejected step keeps the Jacobian (no re-evaluation).

    Parameters
    ----------
    abstol, reltol, max_iters
        ``abstol`` bounds the gradient ``J^T r`` (max norm); ``max_iters``
        counts trial steps, accepted or not.
    damping : float
        Initial ``lambda`` (relative to the scaling ``D^T D``).
    """

    damping: float = 1e-3

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.damping, (int, float)) and 0 < self.damping < _MAX_DAMPING):
            raise InvalidArgumentError("damping", f"a number in (0, {_MAX_DAMPING:g})",
                                       self.damping)

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
        y = y0
        r = system(y)
        phi = 0.5 * r.square().sum(1)
        B = system.B
        status = torch.full((B,), RUNNING, dtype=torch.int64, device=y0.device)
        out = Outcome(y, status)
        lam = torch.full((B,), float(self.damping), dtype=y.dtype, device=y.device)
        nu = torch.full_like(lam, 2.0)
        scale = torch.zeros_like(y)
        stale = True  # the Jacobian belongs to another point
        gnorm = torch.full_like(lam, float("inf"))
        for it in range(self.max_iters):
            status[(status == RUNNING) & ~torch.isfinite(phi.detach())] = UNSTABLE
            if stale:
                J = system.jacobian(y, r.shape[1])
                status[(status == RUNNING) & ~torch.isfinite(J).flatten(1).all(1)] = UNSTABLE
                JtJ = torch.einsum("bmd,bme->bde", J, J)
                g = torch.einsum("bmd,bm->bd", J, r)  # graph through r: DirectBackprop
                scale = torch.maximum(scale, torch.diagonal(JtJ, dim1=1, dim2=2))
            gnorm = max_norm(g) if system.least_squares else max_norm(r)
            status[(status == RUNNING) & (gnorm <= self.abstol)] = SUCCESS
            out.history.append(float(gnorm.max()))
            active = status == RUNNING
            if not bool(active.any()):
                break
            out.iterations = it + 1
            D2 = torch.clamp(scale, min=1e-30)
            A = JtJ + torch.diag_embed(lam[:, None] * D2)
            step = dense_solve(A, -g)
            out.linear_iterations += 1
            step = torch.where(active[:, None] & torch.isfinite(step), step,
                               torch.zeros_like(step))
            trial = y + step
            r_t = system(trial)
            phi_t = 0.5 * r_t.square().sum(1)
            gd, sd = g.detach(), step.detach()
            predicted = -(gd * sd).sum(1) - 0.5 * torch.einsum("bd,bde,be->b", sd, JtJ, sd)
            rho = (phi.detach() - phi_t.detach()) / torch.clamp(predicted, min=1e-300)
            # a predicted decrease at rounding level with no increase counts as accepted
            noise = 8 * torch.finfo(phi.dtype).eps * phi.detach().abs()
            flat = (predicted <= noise) & (phi_t.detach() <= phi.detach() + noise)
            ok = active & torch.isfinite(phi_t.detach()) & ((rho > 1e-4) | flat)
            rho = torch.where(flat & ~(rho > 1e-4), torch.ones_like(rho), rho)
            y = torch.where(ok[:, None], trial, y)
            r = torch.where(ok[:, None], r_t, r)
            phi = torch.where(ok, phi_t, phi)
            lam = torch.where(ok, lam * torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3),
                              lam * nu)
            nu = torch.where(ok, torch.full_like(nu, 2.0), 2 * nu)
            tiny = max_norm(sd) <= self.reltol * torch.clamp(max_norm(y), min=1.0)
            status[ok & tiny & (status == RUNNING)] = SUCCESS
            status[active & ~ok & (lam > _MAX_DAMPING)] = STALLED
            stale = bool(ok.any())
            if stale and not bool(ok.all()):
                # accepted samples need a new Jacobian; the rejected ones reuse theirs
                J_new = system.jacobian(y, r.shape[1])
                J = torch.where(ok[:, None, None], J_new, J)
                JtJ = torch.einsum("bmd,bme->bde", J, J)
                g = torch.einsum("bmd,bm->bd", J, r)  # graph through r: DirectBackprop
                scale = torch.maximum(scale, torch.diagonal(JtJ, dim1=1, dim2=2))
                stale = False
        out.y, out.status, out.residual = y, status, gnorm
        return out
