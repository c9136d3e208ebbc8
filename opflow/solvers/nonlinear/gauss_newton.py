"""Gauss-Newton for nonlinear least squares, with a backtracking line search."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import (
    RUNNING,
    STALLED,
    SUCCESS,
    UNSTABLE,
    NonlinearAlgorithm,
    Outcome,
    backtrack,
    max_norm,
    small_step,
)
from .system import ResidualSystem

__all__ = ["GaussNewton"]


def least_squares_step(J: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The minimum-norm ``d`` minimising ``||J d + r||`` per sample: ``(B, D)``."""
    return (torch.linalg.pinv(J) @ (-r)[..., None])[..., 0]


@dataclass(frozen=True)
class GaussNewton(NonlinearAlgorithm):
    """Gauss-Newton for ``min 1/2 ||r(u)||^2`` (also for ``f(u) = 0``, as ``r = f``).

    Each step solves the linearised least-squares problem ``min ||J d + r||``
    (minimum-norm solution by pseudo-inverse, so rank-deficient Jacobians are
    handled) and backtracks along ``d``. Fast on small-residual problems; on
    large-residual or badly scaled ones prefer :class:`LevenbergMarquardt`.

    Parameters
    ----------
    abstol, reltol, max_iters
        ``abstol`` bounds the gradient ``J^T r`` (max norm); see
        :class:`~opflow.solvers.nonlinear.base.NonlinearAlgorithm`.
    """

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
        def merit(y):
            r = system(y)
            return r, 0.5 * r.square().sum(1)

        y = y0
        r, phi = merit(y)
        status = torch.full((system.B,), RUNNING, dtype=torch.int64, device=y0.device)
        out = Outcome(y, status)
        gnorm = torch.full_like(phi, float("inf")).detach()
        for it in range(self.max_iters):
            status[(status == RUNNING) & ~torch.isfinite(phi.detach())] = UNSTABLE
            J = system.jacobian(y, r.shape[1])
            status[(status == RUNNING) & ~torch.isfinite(J).flatten(1).all(1)] = UNSTABLE
            g = torch.einsum("bmd,bm->bd", J, r.detach())
            gnorm = max_norm(g) if system.least_squares else max_norm(r)
            status[(status == RUNNING) & (gnorm <= self.abstol)] = SUCCESS
            out.history.append(float(gnorm.max()))
            active = status == RUNNING
            if not bool(active.any()):
                break
            step = torch.where(active[:, None], least_squares_step(J, r), torch.zeros_like(y))
            out.linear_iterations += 1
            out.iterations = it + 1
            slope = (g * step.detach()).sum(1)
            y_new, r, phi, accepted = backtrack(merit, y, r, phi, step, slope, active)
            status[active & ~accepted] = STALLED
            status[active & small_step(y_new - y, y_new, self.reltol)
                   & (status == RUNNING)] = SUCCESS
            y = y_new
        out.y, out.status, out.residual = y, status, gnorm
        return out
