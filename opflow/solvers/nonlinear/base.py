"""What the nonlinear algorithms share: tolerances, per-sample status, line search.

All samples of a batch iterate together; a sample that has converged (or
failed) is frozen while the others go on, so each converges on its own.
Termination of sample ``b`` (``||.||`` the max norm):

* Success: the residual ``||F_b|| <= abstol`` (for a least-squares problem:
  the gradient ``||J_b^T r_b|| <= abstol``), or an accepted step from a
  regular linearisation ``||du_b|| <= reltol * max(||u_b||, 1)`` (no further
  progress in the working precision);
* Stalled: the line search (or damping) cannot decrease the merit function;
* Unstable: a non-finite residual or Jacobian;
* MaxIters: ``max_iters`` iterations without any of the above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ...errors import InvalidArgumentError
from ...solution import ReturnCode
from ...solve import AbstractAlgorithm

__all__ = ["NonlinearAlgorithm", "Outcome", "RUNNING", "SUCCESS", "STALLED", "UNSTABLE",
           "backtrack", "max_norm", "newton_loop", "small_step"]

RUNNING, SUCCESS, STALLED, UNSTABLE = 0, 1, 2, 3
_CODES = {RUNNING: ReturnCode.MaxIters, SUCCESS: ReturnCode.Success,
          STALLED: ReturnCode.Stalled, UNSTABLE: ReturnCode.Unstable}


def _positive(name: str, value, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(name, "a finite non-negative number" if allow_zero
                                   else "a finite positive number", value)


@dataclass(frozen=True)
class NonlinearAlgorithm(AbstractAlgorithm):
    """Base of the nonlinear solvers: tolerances and the iteration limit.

    Parameters
    ----------
    abstol : float
        Residual (root problems) or gradient (least squares) tolerance, max norm.
    reltol : float
        Step tolerance relative to the iterate, max norm.
    max_iters : int
        Most iterations.
    """

    abstol: float = 1e-10
    reltol: float = 1e-10
    max_iters: int = 100

    def __post_init__(self):
        _positive("abstol", self.abstol, allow_zero=True)
        _positive("reltol", self.reltol, allow_zero=True)
        if isinstance(self.max_iters, bool) or not isinstance(self.max_iters, int) or \
                self.max_iters < 1:
            raise InvalidArgumentError("max_iters", "a positive integer", self.max_iters)

    def iterate(self, system, y0: torch.Tensor) -> "Outcome":
        """Run the algorithm on ``system`` from ``y0 (B, D)`` (each algorithm's own).

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
        raise NotImplementedError


@dataclass
class Outcome:
    """What an algorithm returns: the iterate and how each sample ended."""

    y: torch.Tensor
    status: torch.Tensor                      # (B,) RUNNING / SUCCESS / STALLED / UNSTABLE
    iterations: int = 0
    linear_iterations: int = 0
    residual: torch.Tensor | None = None      # (B,) final residual (or gradient) norm
    history: list[float] = field(default_factory=list)  # worst residual per iteration

    def retcodes(self) -> list[ReturnCode]:
        """Per-sample return codes (a still-running sample hit ``max_iters``)."""
        return [_CODES[int(s)] for s in self.status.tolist()]

    def retcode(self) -> ReturnCode:
        """Success only if every sample succeeded; else the worst failure."""
        codes = set(self.retcodes())
        for code in (ReturnCode.Unstable, ReturnCode.Stalled, ReturnCode.MaxIters):
            if code in codes:
                return code
        return ReturnCode.Success


def max_norm(x: torch.Tensor) -> torch.Tensor:
    """Per-sample max norm of ``(B, N)``: ``(B,)``."""
    return x.detach().abs().amax(dim=1)


def small_step(step: torch.Tensor, y: torch.Tensor, reltol: float) -> torch.Tensor:
    """Per sample: ``||step|| <= reltol * max(||y||, 1)``."""
    return max_norm(step) <= reltol * torch.clamp(max_norm(y), min=1.0)


def backtrack(merit: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
              y: torch.Tensor, F: torch.Tensor, phi: torch.Tensor, step: torch.Tensor,
              slope: torch.Tensor, active: torch.Tensor, halvings: int = 12
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Armijo backtracking on a merit function, per sample.

    Parameters
    ----------
    merit : callable ``y -> (F(y), phi(y))``
        Residuals ``(B, M)`` and merit ``(B,)``.
    y, step : torch.Tensor, shape (B, D)
    F, phi : torch.Tensor, shapes (B, M) and (B,)
        Residuals and merit at ``y``.
    slope : torch.Tensor, shape (B,)
        Directional derivative of the merit along ``step`` (negative for a
        descent direction).
    active : torch.Tensor, bool, shape (B,)
        Samples that take a step; the others keep ``y``.

    Returns
    -------
    y_new, F_new, phi_new : the accepted point (``y`` where not accepted)
    accepted : torch.Tensor, bool, shape (B,)
    """
    alpha = torch.ones_like(phi)
    accepted = ~active
    # merit values equal to rounding count as no increase: near a least-squares
    # minimum the decrease falls below the precision of phi before the step does
    slack = 8 * torch.finfo(phi.dtype).eps * phi.detach().abs()
    y_new, F_new, phi_new = y, F, phi
    for _ in range(halvings + 1):
        trial = torch.where(accepted[:, None], y_new, y + alpha[:, None] * step)
        F_t, phi_t = merit(trial)
        ok = ~accepted & torch.isfinite(phi_t.detach()) & (
            phi_t.detach() <= phi.detach() + 1e-4 * alpha * slope.detach() + slack)
        y_new = torch.where(ok[:, None], trial, y_new)
        F_new = torch.where(ok[:, None], F_t, F_new)
        phi_new = torch.where(ok, phi_t, phi_new)
        accepted = accepted | ok
        if bool(accepted.all()):
            break
        alpha = torch.where(accepted, alpha, 0.5 * alpha)
    return y_new, F_new, phi_new, accepted & active


Direction = Callable[[torch.Tensor, torch.Tensor],
                     tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]


def newton_loop(alg: NonlinearAlgorithm, system, y0: torch.Tensor, direction: Direction,
                linesearch: bool = True) -> Outcome:
    """The Newton iteration for ``F(y) = 0`` shared by the root-finding algorithms.

    Parameters
    ----------
    alg : NonlinearAlgorithm
        Its ``abstol``, ``reltol`` and ``max_iters``.
    system : ResidualSystem
    y0 : torch.Tensor, shape (B, D)
    direction : callable ``(y, F) -> (step, unstable, regular, work)``
        The Newton step ``~ -J^-1 F (B, D)``, the samples whose linearisation is
        not finite, those where it is regular (only they may stop on a short
        step), and the linear-solver work it took.
    linesearch : bool
        Backtrack on ``1/2 ||F||^2`` (else full steps).

    Returns
    -------
    Outcome
    """
    def merit(y):
        F = system(y)
        return F, 0.5 * F.square().sum(1)

    y = y0
    F, phi = merit(y)
    status = torch.full((system.B,), RUNNING, dtype=torch.int64, device=y0.device)
    out = Outcome(y, status)
    for it in range(alg.max_iters):
        fnorm = max_norm(F)
        status[(status == RUNNING) & ~torch.isfinite(fnorm)] = UNSTABLE
        status[(status == RUNNING) & (fnorm <= alg.abstol)] = SUCCESS
        out.history.append(float(fnorm.max()))
        active = status == RUNNING
        if not bool(active.any()):
            break
        step, unstable, regular, work = direction(y, F)
        status[active & unstable] = UNSTABLE
        active = status == RUNNING
        step = torch.where(active[:, None], step, torch.zeros_like(step))
        out.linear_iterations += work
        out.iterations = it + 1
        if linesearch:
            y_new, F, phi, accepted = backtrack(merit, y, F, phi, step, -2.0 * phi, active)
            status[active & ~accepted] = STALLED
        else:
            y_new = y + step
            F, phi = merit(y_new)
        status[active & ~torch.isfinite(y_new.detach()).all(1)] = UNSTABLE
        status[active & regular & small_step(y_new - y, y_new, alg.reltol)
               & (status == RUNNING)] = SUCCESS
        y = y_new
    fnorm = max_norm(F)
    status[(status == RUNNING) & (fnorm <= alg.abstol)] = SUCCESS
    out.y, out.status, out.residual = y, status, fnorm
    return out
