"""Gradients through a nonlinear solve by the implicit function theorem.

At a root ``u*(p)`` of ``F(u, p) = 0``, ``dF/du du*/dp + dF/dp = 0``. So for a
loss ``L(u*)`` with ``g = dL/du*``: solve the transposed system
``J^T lam = g`` (``J = dF/du`` at ``u*``), then ``dL/dp = -lam^T dF/dp``: one
linear solve and one vector-Jacobian product per backward pass, whatever the
number of iterations the forward solve took, which runs without autograd
(memory independent of the iteration count).

For least squares, ``u*`` is a root of the gradient ``G(u, p) = J_r^T r`` of
``1/2 ||r||^2``, whose Jacobian is the Hessian ``H = J_r^T J_r + sum_i r_i
d^2 r_i``: the same theorem with ``F = G`` and ``J = H`` (exact, also for
non-zero residuals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ...errors import InvalidArgumentError
from ..jacobians import jacobian_rows
from ..linear import dense_solve, gmres
from .system import ResidualSystem

__all__ = ["ImplicitAdjoint", "check_dependence", "implicit_solution"]


@dataclass(frozen=True)
class ImplicitAdjoint:
    """Differentiate a nonlinear solve by the implicit function theorem (the default).

    Parameters
    ----------
    linear : {"auto", "dense", "gmres"}
        How the transposed system is solved: dense LU of the per-sample
        Jacobian (``"auto"`` for up to 2048 unknowns per sample) or
        matrix-free GMRES on vector-Jacobian products.
    rtol : float
        Relative tolerance of the GMRES solve.
    params : sequence of torch.Tensor, optional
        Tensors to differentiate with respect to. Default: the parameters of
        ``f`` (an ``nn.Module``, or a bound method of one) and the tensors
        in ``p`` that require grad.
    """

    linear: str = "auto"
    rtol: float = 1e-10
    params: Optional[Sequence[torch.Tensor]] = None

    def __post_init__(self):
        if self.linear not in ("auto", "dense", "gmres"):
            raise InvalidArgumentError("linear", "'auto', 'dense' or 'gmres'", self.linear)
        if not (isinstance(self.rtol, float) and 0 < self.rtol < 1):
            raise InvalidArgumentError("rtol", "a float in (0, 1)", self.rtol)

    def dense(self, D: int) -> bool:
        """Whether the transposed system of ``D`` unknowns is solved densely.

        Parameters
        ----------
        D : int
            Unknowns per sample.

        Returns
        -------
        bool
        """
        return self.linear == "dense" or (self.linear == "auto" and D <= 2048)


def _gradient_system(system: ResidualSystem):
    """``G(y) = J_r(y)^T r(y)`` per sample (the gradient of ``1/2 ||r||^2``)."""
    def G(y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            z = y if y.requires_grad else y.detach().requires_grad_(True)
            phi = 0.5 * system(z).square().sum()
            (g,) = torch.autograd.grad(phi, z, create_graph=True)
        return g

    return G


class _Adjoint:
    """The backward pass: ``F`` (residual or gradient map), ``J^T`` solves, parameter VJPs."""

    def __init__(self, system: ResidualSystem, sensealg: ImplicitAdjoint, params):
        self.system, self.sensealg, self.params = system, sensealg, list(params)
        self.F = _gradient_system(system) if system.least_squares else system

    def transposed_solve(self, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``lam`` with ``J(y)^T lam = g`` per sample, ``J = dF/dy``."""
        if self.sensealg.dense(y.shape[1]):
            J = self._jacobian(y)
            return dense_solve(J.transpose(1, 2).contiguous(), g)

        def vjp(w):
            with torch.enable_grad():
                z = y.detach().requires_grad_(True)
                (out,) = torch.autograd.grad(self.F(z), z, w)
            return out

        lam, _ = gmres(vjp, g, tol=self.sensealg.rtol, maxiter=max(300, 2 * y.shape[1]))
        return lam

    def _jacobian(self, y: torch.Tensor) -> torch.Tensor:
        if not self.system.least_squares:
            return self.system.jacobian(y, y.shape[1])
        with torch.enable_grad():  # Hessian of 1/2 ||r||^2, per sample
            z = y.detach().requires_grad_(True)
            return jacobian_rows(self.F(z), (z,))[0]

    def parameter_grads(self, y: torch.Tensor, lam: torch.Tensor) -> list[torch.Tensor]:
        """``-lam^T dF/dp`` for every parameter (zeros where ``F`` does not use it)."""
        if not self.params:
            return []
        with torch.enable_grad():
            out = self.F(y.detach())
            grads = torch.autograd.grad(out, self.params, -lam, allow_unused=True)
        return [torch.zeros_like(q) if g is None else g for g, q in zip(grads, self.params)]


class _ImplicitSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adjoint, y_star, *params):
        ctx.adjoint = adjoint
        ctx.save_for_backward(y_star)
        return y_star.clone()

    @staticmethod
    def backward(ctx, grad_y):
        (y_star,) = ctx.saved_tensors
        lam = ctx.adjoint.transposed_solve(y_star, grad_y)
        if not bool(torch.isfinite(lam).all()):
            raise InvalidArgumentError(
                "sensealg", "a regular solution for ImplicitAdjoint (the Jacobian at the "
                "solution is singular: pass sensealg=DirectBackprop())", "a singular Jacobian")
        grads = ctx.adjoint.parameter_grads(y_star, lam)
        return (None, None, *grads)


def implicit_solution(system: ResidualSystem, sensealg: ImplicitAdjoint, y_star: torch.Tensor,
                      params: Sequence[torch.Tensor]) -> torch.Tensor:
    """``y_star`` attached to ``params`` by the implicit function theorem.

    ``y_star`` was computed without autograd; the result has the same values
    and carries the implicit gradient to every tensor in ``params``.
    """
    if not params:
        return y_star
    return _ImplicitSolve.apply(_Adjoint(system, sensealg, params), y_star.detach(), *params)


def check_dependence(system: ResidualSystem, params: Sequence[torch.Tensor]) -> None:
    """Refuse parameters that the residual does not depend on at the initial guess."""
    with torch.enable_grad():
        out = system(system.y0.detach())
        if not out.requires_grad:
            raise InvalidArgumentError(
                "p", f"parameters that {system.name} depends on (ImplicitAdjoint found "
                f"{len(params)} tensor(s) requiring grad, but the residual does not use them)",
                "independent parameters")
