"""PDE residuals and conditions of data recipes, ready for a :class:`HardConstraint`.

``opflow train --model hard-constraint --option recipe=diffusion-sorption``
needs the PDE of the data it trains on; a recipe here holds it, written as a
:class:`~opflow.solvers.pinn.PINNProblem` residual, with the initial and
boundary rows of the data generator's problem and its time window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UnknownVariableError
from ..solvers.pinn import d
from ..solvers.pinn.derivatives import GridCoordinates
from .conditions import GridCondition, initial_condition
from .hard_constraint import PDEResidual

__all__ = ["ConstraintRecipe", "constraint_recipe", "diffusion_sorption_residual",
           "solubility_condition"]


#: The time unit of the diffusion-sorption residual: its window, [0, 500]
DIFFUSION_SORPTION_TIME = 500.0


def diffusion_sorption_residual(x: GridCoordinates, u: torch.Tensor) -> torch.Tensor:
    """PDEBench's diffusion-sorption residual in units of its time window:
    ``T (u_t - D / R(u) u_xx)``, ``T = 500`` (``R`` at ``u >= 0``).

    Why scaled: a hard-constrained layer fits the PDE rows and the initial
    and wall rows together. In the physical units ``u_t`` is about ``u / 500``
    and the PDE rows weighed about 500 times less than the condition rows: the
    least-squares solve all but ignored the PDE (test error 120-175 % against
    38 % with the scaled rows, same training). The scaled residual has the
    same zeros.

    Zero at ``t = 0``, where the initial condition holds instead: the data
    jump there from ``u0`` to the wall value in the first cell, and the time
    difference across that jump made the true solution's residual loss as
    large as that of ``u = u0`` everywhere (0.79 both).

    Parameters
    ----------
    x : GridCoordinates
        Axes ``x`` and ``t``.
    u : torch.Tensor, shape (N, 1)

    Returns
    -------
    torch.Tensor, shape (N, 1)
    """
    from ..data.diffusion_sorption import PARAMETERS, retardation

    rate = d(u, x, "t") - PARAMETERS["D"] / retardation(u.clamp_min(0.0)) * d(u, x, "x", 2)
    return DIFFUSION_SORPTION_TIME * rate * (x["t"] > 0)


def _solubility(x: GridCoordinates, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    h = x.grid.axis("x").spacing
    return (u - h * d(u, x, "x") - 1.0) * (x["t"] > 0)


solubility_condition = GridCondition(_solubility, "x_min")
"""``u = 1`` at the wall of diffusion-sorption for ``t > 0``, where the data hold it.

The generator (PDEBench's scheme) keeps a ghost cell at ``u = 1`` half a cell
left of the first cell centre; ``u - h u_x`` at that centre reaches it. Not at
``t = 0``: the initial state (``u0 <= 0.2``) does not meet it there, and such a
row, which no solution satisfies, made the true solution's residual loss
larger than an untrained layer's.
"""


@dataclass(frozen=True)
class ConstraintRecipe:
    """The PDE of a data recipe, for a hard-constrained layer.

    Parameters
    ----------
    name : str
        The data recipe (``opflow generate NAME``).
    residual : callable
        The PDE residual ``(x, u) -> (N, k)``.
    conditions : tuple of GridCondition
        Initial and boundary rows.
    t_end : float
        The recipe's default time window ``[0, t_end]``.
    """

    name: str
    residual: PDEResidual
    conditions: tuple[GridCondition, ...]
    t_end: float


CONSTRAINT_RECIPES = {
    "diffusion-sorption": ConstraintRecipe(
        "diffusion-sorption", diffusion_sorption_residual,
        (initial_condition(), solubility_condition), 500.0),
}


def constraint_recipe(name: str) -> ConstraintRecipe:
    """The recipe called ``name``.

    Parameters
    ----------
    name : str
        E.g. ``"diffusion-sorption"``.

    Returns
    -------
    ConstraintRecipe

    Raises
    ------
    UnknownVariableError
        No such recipe (the message lists them).
    """
    if name not in CONSTRAINT_RECIPES:
        raise UnknownVariableError("recipe", name, sorted(CONSTRAINT_RECIPES))
    return CONSTRAINT_RECIPES[name]
