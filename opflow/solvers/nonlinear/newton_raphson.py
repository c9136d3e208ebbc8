"""Newton-Raphson with a dense Jacobian and a backtracking line search."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..linear import dense_solve
from .base import NonlinearAlgorithm, Outcome, newton_loop
from .system import ResidualSystem

__all__ = ["NewtonRaphson", "newton_direction"]


def newton_direction(J: torch.Tensor, F: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``-J^-1 F`` per sample, and whether ``J`` was regular ``(B,)``.

    Where ``J`` is singular the least-squares (minimum-norm) step is taken
    instead, so a singular Jacobian on the way slows Newton down rather than
    stopping it; a short step from a singular ``J`` proves nothing, so only
    regular samples may stop on the step criterion."""
    step = dense_solve(J, -F)
    regular = torch.isfinite(step).all(1)
    if not bool(regular.all()):
        bad = ~regular
        lsq = torch.linalg.pinv(J[bad]) @ (-F[bad])[..., None]
        step = step.clone()
        step[bad] = lsq[..., 0]
    return step, regular


@dataclass(frozen=True)
class NewtonRaphson(NonlinearAlgorithm):
    """Newton's method for ``f(u) = 0`` with per-sample dense Jacobians.

    The Jacobian comes from ``torch.func`` (forward mode), so this suits
    systems of up to a few thousand unknowns per sample; larger ones (a PDE
    on a grid) want :class:`NewtonKrylov`. Converges quadratically near a
    regular root.

    Parameters
    ----------
    abstol, reltol, max_iters
        See :class:`~opflow.solvers.nonlinear.base.NonlinearAlgorithm`.
    linesearch : bool
        Backtrack (Armijo, halving up to 12 times) on ``1/2 ||f||^2`` when the
        full step does not decrease it; a sample whose line search fails is
        ``Stalled``. Without it, full steps are always taken.
    """

    linesearch: bool = True

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
        def direction(y, F):
            J = system.jacobian(y, F.shape[1])
            step, regular = newton_direction(J, F)
            return step, ~torch.isfinite(J).flatten(1).all(1), regular, 1

        return newton_loop(self, system, y0, direction, self.linesearch)
