"""The chord (simplified Newton) iteration: Newton with a fixed, factored matrix.

Implicit time steppers solve one small nonlinear system per stage, all with
nearly the same Jacobian; factoring it once per step and iterating with that
LU (instead of a new Jacobian per iteration, as :class:`NewtonRaphson` does)
is what makes them affordable. Convergence is linear with a rate that the
iteration measures, and a diverging sample is reported, not hidden.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...errors import InvalidArgumentError
from ..linear import DenseLU

__all__ = ["chord_solve"]


def chord_solve(G: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, lu: DenseLU,
                norm: Callable[[torch.Tensor], torch.Tensor], tol: float = 1.0,
                max_iters: int = 10) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Solve ``G(x) = 0`` per sample by ``x <- x - M^-1 G(x)``, ``M`` factored in ``lu``.

    Parameters
    ----------
    G : callable ``(B, D) -> (B, D)``
    x0 : torch.Tensor, shape (B, D)
        Initial guess.
    lu : DenseLU
        Factors of ``M``, an approximation of ``dG/dx`` (the same for every iteration).
    norm : callable ``(B, D) -> (B,)``
        Size of an update, in the units of the tolerance.
    tol : float
        A sample has converged when the norm of its update, corrected by the
        observed contraction rate ``r`` as ``r / (1 - r) ||dx||``, is below ``tol``.
    max_iters : int

    Returns
    -------
    x : torch.Tensor, shape (B, D)
    converged : torch.Tensor, bool, shape (B,)
        False for samples that diverged (rate >= 1), produced non-finite values
        or ran out of iterations.
    iterations : int
    """
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0):
        raise InvalidArgumentError("tol", "a positive tolerance", tol)
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise InvalidArgumentError("max_iters", "a positive integer", max_iters)
    B = x0.shape[0]
    x = x0
    done = torch.zeros(B, dtype=torch.bool, device=x0.device)
    failed = torch.zeros_like(done)
    previous = None
    iterations = 0
    while iterations < max_iters:
        iterations += 1
        dx = lu.solve(-G(x))
        size = norm(dx.detach())
        x = torch.where((done | failed)[:, None], x, x + torch.nan_to_num(dx))
        failed = failed | ~torch.isfinite(size)
        if previous is None:
            estimate = size  # no rate yet: the first update itself
        else:
            rate = size / previous.clamp(min=1e-300)
            failed = failed | (~done & (rate >= 1.0) & (size > tol))
            estimate = torch.where(rate < 1.0, rate / (1.0 - rate.clamp(max=0.999)) * size, size)
        done = done | (~failed & (estimate <= tol))
        previous = size
        if bool((done | failed).all()):
            break
    return x, done & ~failed, iterations
