"""Gradients of a multigrid solve by the implicit function theorem.

The discrete solution ``u(a, f)`` satisfies ``R(u, a, f) = f - A(a) u = 0`` on
the free nodes. For a loss ``L(u)`` with ``g = dL/du``:

* the adjoint equation ``A^T mu = g`` (on the free nodes) gives
  ``dL/df = mu``;
* ``dL/da = -mu^T (dA/da) u``, which is one vector-Jacobian product of the
  differentiable operator :func:`~.operators.apply_operator` (through the
  harmonic face means) with respect to ``a`` at fixed ``u`` and ``mu``.

``A = W^-1 S`` with ``S`` symmetric and ``W`` the Neumann boundary weights
(``W = I`` without Neumann axes), so ``A^T mu = g`` is solved by the same
multigrid hierarchy as ``A lambda = W^-1 g`` with ``mu = W lambda``. For
singular (pure Neumann / periodic) problems the forward map is
``u = argmin over {w^T u = 0}`` of the projected system; its adjoint is the
same projected solve (``lambda`` of zero weighted mean, right-hand side
projected), which the bordered-system derivation confirms.

Nothing is recorded through the cycles: memory is that of the hierarchy and
one solution, and the backward pass costs one more multigrid solve.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["ImplicitSolve"]


class ImplicitSolve(torch.autograd.Function):
    """``u = solve(A(a) u = f)`` with the adjoint backward pass.

    ``forward(ctx, system, a, f)`` where ``system`` provides
    ``forward(f) -> u``, ``adjoint(g) -> mu`` and
    ``apply(a, u) -> A(a) u`` (differentiable in ``a``); ``a`` has shape
    ``(Bc, *shape)`` with ``Bc`` 1 or ``B``, ``f`` and ``u`` ``(B, *shape)``.
    Double backward is not supported.
    """

    @staticmethod
    def forward(ctx, system, a, f):
        u = system.forward(f)
        ctx.system = system
        ctx.save_for_backward(a, u)
        return u

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_u):
        a, u = ctx.saved_tensors
        need_a, need_f = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if not (need_a or need_f):
            return None, None, None
        mu = ctx.system.adjoint(grad_u)
        grad_a = None
        if need_a:
            with torch.enable_grad():
                a_ = a.detach().requires_grad_(True)
                au = ctx.system.apply(a_, u)
                (grad_a,) = torch.autograd.grad(au, a_, -mu)
        return None, grad_a, (mu if need_f else None)
