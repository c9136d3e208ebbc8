"""A hard-constrained layer as an operator of ``opflow train``: ``u0(x) -> u(t, x)``.

``opflow train --model hard-constraint --option recipe=diffusion-sorption``
trains on a file from ``opflow generate diffusion-sorption`` (input ``u0`` on
the ``x`` grid, target ``u`` on the ``(t, x)`` grid). The operator lifts the
input to the space-time grid (``u0`` broadcast over time, with ``x`` and
``t / t_end`` as extra channels), applies a :class:`HardConstraint` whose
basis is an FNO and whose PDE comes from the recipe
(:mod:`opflow.constraints.recipes`), and returns the solution on ``(t, x)``.
It works in physical units (``physical_units``): ``opflow train`` does not
normalise its data, and ``--loss residual`` trains on the PDE residual alone.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from ..errors import InvalidArgumentError
from ..field import Field
from ..grid import Grid
from ..operators.base import NeuralOperator, register_operator
from ..solvers.nonlinear import LevenbergMarquardt
from .hard_constraint import HardConstraint
from .partition import Partition
from .recipes import constraint_recipe

__all__ = ["HardConstraintOperator"]


@register_operator
class HardConstraintOperator(NeuralOperator):
    """PI-HC (or PI-HC-MoE, or the soft baseline) from an initial state to its trajectory.

    Parameters
    ----------
    in_channels : int
        Input channels (the initial state: 1).
    out_channels : int
        Output channels (1).
    recipe : str
        The PDE (:func:`~opflow.constraints.recipes.constraint_recipe`),
        e.g. ``"diffusion-sorption"``.
    n_t : int
        Output times, equally spaced on ``[0, t_end]`` (``opflow train`` sets
        it from the target).
    t_end : float, optional
        End of the time window (default: the recipe's).
    n_basis : int
        Basis functions of the least-squares layer.
    experts : int
        Experts along ``x`` (1: PI-HC; more: PI-HC-MoE).
    points : int
        Residual rows per expert.
    hard : bool
        False: the soft-constraint baseline on the same network.
    modes : sequence of int
        FNO modes on the ``(t, x)`` grid.
    width, n_layers : int
        FNO width and layers.
    ridge, tol : float
        Ridge weight and Levenberg-Marquardt tolerance (absolute and relative).
    seed : int
        Seed of the row sampling.
    """

    #: ``opflow train`` leaves the data unnormalised: the PDE holds in physical units
    physical_units = True

    def __init__(self, in_channels: int = 1, out_channels: int = 1,
                 recipe: str = "diffusion-sorption", n_t: int = 21,
                 t_end: Optional[float] = None, n_basis: int = 16, experts: int = 1,
                 points: int = 64, hard: bool = True,
                 modes: Union[int, Sequence[int]] = (5, 8), width: int = 16,
                 n_layers: int = 2, ridge: float = 1e-8, tol: float = 1e-6, seed: int = 0):
        super().__init__()
        rec = constraint_recipe(recipe)
        if isinstance(n_t, bool) or not isinstance(n_t, int) or n_t < 3:
            raise InvalidArgumentError("n_t", "an integer number of output times >= 3", n_t)
        t_end = rec.t_end if t_end is None else t_end
        if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not t_end > 0:
            raise InvalidArgumentError("t_end", "a positive end time", t_end)
        if isinstance(experts, bool) or not isinstance(experts, int) or experts < 1:
            raise InvalidArgumentError("experts", "a positive number of experts along x",
                                       experts)
        modes = [modes] * 2 if isinstance(modes, int) else list(modes)
        self._set_config(in_channels=in_channels, out_channels=out_channels, recipe=recipe,
                         n_t=n_t, t_end=float(t_end), n_basis=n_basis, experts=experts,
                         points=points, hard=hard, modes=modes, width=width,
                         n_layers=n_layers, ridge=ridge, tol=tol, seed=seed)
        from ..operators import FNO

        self.in_channels, self.n_t, self.t_end = in_channels, n_t, float(t_end)
        basis = FNO(in_channels + 2, n_basis * out_channels, modes=modes, width=width,
                    n_layers=n_layers, positional=False)
        self.layer = HardConstraint(
            basis, rec.residual, n_basis, partition=Partition(x=experts) if experts > 1
            else None, points=points, ridge=ridge, conditions=rec.conditions,
            names=tuple(f"u{c}" if out_channels > 1 else "u" for c in range(out_channels)),
            hard=hard, solver=LevenbergMarquardt(abstol=tol, reltol=tol), seed=seed)

    def lift(self, a: Field) -> Field:
        """The input on the space-time grid: ``(a, x, t / t_end)``.

        Parameters
        ----------
        a : Field, shape (B, in_channels, nx) on a grid with one axis ``x``

        Returns
        -------
        Field, shape (B, in_channels + 2, n_t, nx) on the grid ``(t, x)``
        """
        if not isinstance(a, Field) or a.grid.names != ("x",) or a.values.ndim != 3 \
                or a.values.shape[1] != self.in_channels:
            raise InvalidArgumentError(
                "a", f"a Field (B, {self.in_channels}, nx) on a grid with one axis 'x' (the "
                "initial state)", a)
        x_axis = a.grid.axes[0]
        grid = Grid([Grid.uniform(t=(0.0, self.t_end, self.n_t)).axes[0], x_axis])
        B, nx = a.values.shape[0], x_axis.size
        t, x = grid.mesh(a.values.dtype, a.values.device)
        shape = (B, self.n_t, nx)
        values = torch.cat([a.values[:, :, None, :].expand(B, self.in_channels, *shape[1:]),
                            x.expand(shape)[:, None], (t / self.t_end).expand(shape)[:, None]],
                           dim=1)
        return Field(values, grid)

    def forward(self, a: Field) -> Field:
        """The constrained trajectory.

        Parameters
        ----------
        a : Field, shape (B, in_channels, nx) on the ``x`` grid

        Returns
        -------
        Field, shape (B, out_channels, n_t, nx) on the ``(t, x)`` grid
        """
        return self.layer(self.lift(a))

    def residual_loss(self, pred: Field, true: Field, a: Field) -> torch.Tensor:
        """The PDE residual loss of :meth:`HardConstraint.residual_loss` (``true`` unused).

        Parameters
        ----------
        pred : Field, shape (B, out_channels, n_t, nx)
        true : Field
        a : Field, shape (B, in_channels, nx)

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        return self.layer.residual_loss(pred, true, self.lift(a))
