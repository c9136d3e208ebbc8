"""The user's residual function on flat ``(B, D)`` states, with its derivatives.

Every nonlinear algorithm sees a :class:`ResidualSystem`: ``F(y)`` maps ``B``
independent states of ``D`` unknowns to ``B`` residual vectors of ``M``
entries (``M = D`` for a root problem). Per-sample Jacobians come from one
batched derivative of ``sum_b F_b`` (valid because sample ``b``'s residual
depends on ``y_b`` only): by forward mode when ``M >= D`` (``D`` JVPs, each
with the same unit tangent in every sample) and by reverse mode on ``sum_b F_b``
otherwise; Jacobian-vector and vector-Jacobian products serve the
matrix-free methods and the implicit adjoint.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import InvalidArgumentError, ShapeError
from ...field import Field
from ..jacobians import jacobian_rows
from ..ode.state import StateLayout
from .problems import NonlinearLeastSquaresProblem

__all__ = ["ResidualSystem"]


class ResidualSystem:
    """``F(y) -> (B, M)`` for a :class:`NonlinearProblem` or least-squares problem.

    Attributes
    ----------
    y0 : torch.Tensor, shape (B, D)
        The flattened initial guess.
    B, D : int
    nfe, jacobians : int
        Residual and Jacobian evaluations so far.
    """

    def __init__(self, prob: Any):
        self.least_squares = isinstance(prob, NonlinearLeastSquaresProblem)
        self.fn = prob.r if self.least_squares else prob.f
        self.jac_fn = prob.jac
        self.name = "r(u)" if self.least_squares else "f(u)"
        self.p = prob.p
        self.layout = StateLayout(prob.u0, prob.batched)
        self.y0 = self.layout.flatten(prob.u0, "u0")
        self.B, self.D = self.y0.shape
        self.nfe = 0
        self.jacobians = 0

    # ----------------------------------------------------------- residual
    def to_user(self, y: torch.Tensor) -> Any:
        return self.layout.unflatten(y)

    def _flat(self, out: Any) -> torch.Tensor:
        if not self.least_squares:
            flat = self.layout.flatten(out, self.name)
        else:
            values = out.values if isinstance(out, Field) else out
            if not isinstance(values, torch.Tensor):
                raise InvalidArgumentError(self.name, "a tensor or Field of residuals", out)
            lead = self.layout.batch_shape
            if tuple(values.shape[:len(lead)]) != lead or values.numel() == 0:
                raise ShapeError(self.name, f"residuals with leading batch dims {lead}", values)
            flat = values.reshape(self.B, -1)
        if flat.dtype != self.y0.dtype:
            raise InvalidArgumentError(self.name, f"residuals of the state's dtype "
                                       f"{self.y0.dtype}", flat.dtype)
        return flat

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """Residuals ``(B, M)`` at states ``y (B, D)``."""
        u = self.to_user(y)
        out = self.fn(u) if self.p is None else self.fn(u, self.p)
        self.nfe += 1
        return self._flat(out)

    # -------------------------------------------------------- derivatives
    def jacobian(self, y: torch.Tensor, m: int) -> torch.Tensor:
        """Per-sample Jacobians ``(B, M, D)`` at ``y`` (``m`` = M residuals)."""
        self.jacobians += 1
        y = y.detach()
        if self.jac_fn is not None:
            return self._given_jacobian(y, m)

        try:
            if m >= self.D:
                # column j of every sample's Jacobian is one JVP with the tangent e_j in
                # every sample: D tangents, not B * D (jacfwd of the batch sum)
                eye = torch.eye(self.D, dtype=y.dtype, device=y.device)
                tangents = eye[:, None, :].expand(self.D, self.B, self.D)

                def column(v):
                    return torch.func.jvp(self, (y,), (v,))[1]

                jac = torch.func.vmap(column)(tangents)         # (D, B, M)
                return jac.permute(1, 2, 0).contiguous()

            def summed(z):
                return self(z).sum(0)

            jac = torch.func.jacrev(summed)(y)                  # (M, B, D)
        except (RuntimeError, NotImplementedError, TypeError):  # no forward/vmap support
            with torch.enable_grad():
                z = y.clone().requires_grad_(True)
                return jacobian_rows(self(z), (z,))[0]
        return jac.permute(1, 0, 2).contiguous()

    def _given_jacobian(self, y: torch.Tensor, m: int) -> torch.Tensor:
        """The problem's own ``jac`` at ``y``, checked and shaped ``(B, M, D)``."""
        u = self.to_user(y)
        out = self.jac_fn(u) if self.p is None else self.jac_fn(u, self.p)
        # exact shape, not just the size: a transposed (D, M) Jacobian must not reshape silently
        want = self.layout.batch_shape + (m, self.D)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) not in (want, (self.B, m, self.D)):
            raise ShapeError("jac", f"a Jacobian of shape {want} (residuals x unknowns)", out)
        if out.dtype != y.dtype:
            raise InvalidArgumentError("jac", f"a Jacobian of the state's dtype {y.dtype}",
                                       out.dtype)
        return out.reshape(self.B, m, self.D)

    def jvp(self, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``J(y) v`` per sample: ``(B, D) -> (B, M)``."""
        try:
            return torch.func.jvp(self, (y.detach(),), (v,))[1]
        except (RuntimeError, NotImplementedError, TypeError):
            with torch.enable_grad():  # double-vjp trick: J v = d/dw (J^T w . v)
                z = y.detach().requires_grad_(True)
                out = self(z)
                w = torch.zeros_like(out, requires_grad=True)
                (g,) = torch.autograd.grad(out, z, w, create_graph=True)
                (jv,) = torch.autograd.grad(g, w, v)
            return jv

    def vjp(self, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``J(y)^T w`` per sample: ``(B, M) -> (B, D)``."""
        with torch.enable_grad():
            z = y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self(z), z, w)
        return g
