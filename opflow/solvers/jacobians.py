"""Per-sample Jacobians of batched functions, the one reverse-mode helper.

The nonlinear solvers, their implicit adjoint and the stiff ODE methods all
need the Jacobian of every sample of a batch whose samples do not interact;
:func:`jacobian_rows` builds them by one reverse pass per output column.
"""

from __future__ import annotations

import torch

__all__ = ["jacobian_rows"]


def jacobian_rows(out: torch.Tensor, inputs: tuple[torch.Tensor, ...],
                  create_graph: bool = False) -> list[torch.Tensor]:
    """Per-sample Jacobians of ``out (B, M)`` with respect to each of ``inputs``, by
    one reverse pass per output column.

    Sample ``b``'s outputs depend on sample ``b``'s inputs only, so column ``i``'s
    gradient of ``sum_b out[b, i]`` is row ``i`` of every sample's Jacobian.

    Parameters
    ----------
    out : torch.Tensor, shape (B, M)
        Computed from ``inputs`` with autograd recording.
    inputs : tuple of torch.Tensor
        Each of shape ``(B, ...)``, requiring grad.
    create_graph : bool
        Keep the Jacobians in the graph (for differentiating through them).

    Returns
    -------
    list of torch.Tensor
        One per input, shape ``(B, M, ...)`` (zeros where ``out`` does not use it).
    """
    rows: list[tuple[torch.Tensor | None, ...]]
    if not out.requires_grad:  # uses none of the inputs (e.g. an adjoint a' = 0)
        rows = [(None,) * len(inputs)] * out.shape[1]
    else:
        rows = [torch.autograd.grad(out[:, i].sum(), inputs, retain_graph=True,
                                    create_graph=create_graph, allow_unused=True)
                for i in range(out.shape[1])]
    return [torch.stack([_or_zeros(r[k], x) for r in rows], dim=1) for k, x in enumerate(inputs)]


def _or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad
