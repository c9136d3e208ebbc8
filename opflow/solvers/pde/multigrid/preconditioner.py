"""Multigrid as a preconditioner: a few cycles for ``(I - c Laplacian)^-1`` inside Krylov solves.

Implicit steps of a diffusion problem solve ``(I - c Laplacian) x = r`` (``c =
h gamma D``); when ``c`` is large against the grid spacing squared (the stiff
case), ``-c Laplacian`` dominates, and a couple of multigrid cycles on the
Poisson problem ``-Laplacian x = r / c`` are a cheap, grid-independent
approximation of the inverse. Krylov methods (:func:`opflow.solvers.linear.gmres`,
:class:`opflow.solvers.nonlinear.NewtonKrylov`) take it as ``precond``.
"""

from __future__ import annotations

from typing import Callable

import torch

from ....errors import InvalidArgumentError
from ....field import Field
from ....grid import Grid
from .problems import PoissonProblem
from .solver import Multigrid

__all__ = ["multigrid_preconditioner"]


def multigrid_preconditioner(grid: Grid, scale, cycles: int = 2,
                             bc: str = "dirichlet") -> Callable[[Field], Field]:
    """``r -> (-scale Laplacian)^-1 r`` by ``cycles`` multigrid V-cycles, on ``grid``.

    Parameters
    ----------
    grid : Grid
        The state's grid (1-3 uniform axes); with ``bc="dirichlet"`` its
        boundary nodes are fixed, and the preconditioner leaves them as they are
        (identity there: the implicit operator is the identity on fixed nodes).
    scale : float or torch.Tensor of shape (B,)
        ``c`` (per sample when a tensor); positive.
    cycles : int
        Multigrid cycles per application (the approximation, not a solve).
    bc : {"dirichlet", "neumann", "periodic"}

    Returns
    -------
    callable
        ``precond(r: Field (B, 1, *grid.shape)) -> Field``.
    """
    if not isinstance(grid, Grid):
        raise InvalidArgumentError("grid", "an opflow.Grid", grid)
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise InvalidArgumentError("cycles", "a positive integer", cycles)
    values = torch.as_tensor(scale).detach() if isinstance(scale, (int, float, torch.Tensor)) \
        and not isinstance(scale, bool) else None
    if values is None or not bool(torch.isfinite(values).all()) or not bool((values > 0).all()):
        raise InvalidArgumentError("scale", "a positive finite number or tensor of them", scale)
    alg = Multigrid(max_cycles=cycles, rtol=1e-300)  # a fixed number of cycles

    def precond(r: Field) -> Field:
        from ....solve import solve

        values = r.values if isinstance(r, Field) else r
        c = torch.as_tensor(scale, dtype=values.dtype, device=values.device)
        c = c.reshape(-1, *([1] * (values.ndim - 1))) if c.ndim else c
        sol = solve(PoissonProblem(Field(values / c, grid), bc=bc), alg)
        out = sol.u.values
        if bc == "dirichlet":
            out = torch.where(_boundary(grid, values), values, out)
        return r.with_values(out) if isinstance(r, Field) else out

    return precond


def _boundary(grid: Grid, like: torch.Tensor) -> torch.Tensor:
    """True on the boundary nodes of the non-periodic axes, broadcast like ``like``."""
    mask = torch.zeros(grid.shape, dtype=torch.bool, device=like.device)
    for i, axis in enumerate(grid.axes):
        if axis.periodic:
            continue
        index: list = [slice(None)] * grid.ndim
        for end in (0, -1):
            index[i] = end
            mask[tuple(index)] = True
    return mask.expand(like.shape)
