"""Initial and boundary conditions on the faces of a grid, as extra residual rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from ..errors import InvalidArgumentError
from ..grid import Grid
from ..solvers.pinn.derivatives import GridCoordinates

__all__ = ["ConditionResidual", "GridCondition", "initial_condition"]

ConditionResidual = Callable[[GridCoordinates, torch.Tensor, torch.Tensor], torch.Tensor]
"""``(x, u (N, channels), a (N, in_channels)) -> (N,) or (N, k)``, zero where it holds."""


def _faces(on: Union[str, tuple[str, ...]]) -> tuple[str, ...]:
    parts = (on,) if isinstance(on, str) else on
    try:
        parts = tuple(parts)
    except TypeError:
        parts = (on,)  # type: ignore[assignment]
    if not parts or not all(isinstance(p, str) and p.endswith(("_min", "_max")) for p in parts):
        raise InvalidArgumentError("on", "grid faces such as 't_min' or ('x_min', 'x_max')", on)
    return parts


@dataclass(frozen=True)
class GridCondition:
    """A condition on faces of the grid: residual rows at the nodes of those faces.

    Parameters
    ----------
    residual : callable ``(x, u, a) -> Tensor (N,) or (N, k)``
        Zero where the condition holds, written like a PDE residual
        (``x`` are :class:`~opflow.solvers.pinn.GridCoordinates` of every
        node, ``u`` the solution ``(N, channels)``, ``a`` the layer's input
        ``(N, in_channels)``); only its values on the faces ``on`` are used.
        E.g. ``lambda x, u, a: u - 1.0`` (Dirichlet) or ``lambda x, u, a:
        u - D * d(u, x, "x")`` (Robin).
    on : str or tuple of str
        Faces ``"<axis>_min"`` / ``"<axis>_max"``: the first or last nodes along
        an axis.
    points : int, optional
        Rows per expert: that many face nodes drawn at random in each expert's
        block (all of them when it has fewer). Default: every face node.
    weight : float
        Rows are scaled by ``sqrt(weight)`` (the condition's weight in the
        squared residual).
    """

    residual: ConditionResidual
    on: Union[str, tuple[str, ...]]
    points: Optional[int] = None
    weight: float = 1.0

    def __post_init__(self):
        if not callable(self.residual):
            raise InvalidArgumentError("residual", "a callable (x, u, a) -> residual",
                                       self.residual)
        object.__setattr__(self, "on", _faces(self.on))
        if self.points is not None and (isinstance(self.points, bool)
                                        or not isinstance(self.points, int) or self.points < 1):
            raise InvalidArgumentError("points", "a positive integer or None", self.points)
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or \
                not self.weight > 0:
            raise InvalidArgumentError("weight", "a positive number", self.weight)

    def mask(self, grid: Grid) -> torch.Tensor:
        """The face nodes of ``grid``, a bool tensor of ``grid.shape``.

        Parameters
        ----------
        grid : Grid
            The grid.

        Returns
        -------
        torch.Tensor, bool, shape grid.shape
        """
        out = torch.zeros(grid.shape, dtype=torch.bool)
        for face in self.on:
            name, end = face.rsplit("_", 1)
            if name not in grid.names:
                raise InvalidArgumentError("on", f"faces of the grid axes {grid.names}", face)
            i = grid.names.index(name)
            index = 0 if end == "min" else grid.shape[i] - 1
            out.select(i, index).fill_(True)
        return out


def initial_condition(channel: int = 0, axis: str = "t", points: Optional[int] = None,
                      weight: float = 1.0) -> GridCondition:
    """``u(t_0) = a_channel(t_0)``: the solution starts from the input's initial state.

    For a layer whose input is the initial condition broadcast over the
    space-time grid (``a[..., channel, :, t] = u_0`` for every ``t``).

    Parameters
    ----------
    channel : int
        The input channel holding the initial state.
    axis : str
        The time axis; the rows sit on its first nodes.
    points : int, optional
        Rows per expert, as for :class:`GridCondition`.
    weight : float
        As for :class:`GridCondition`.

    Returns
    -------
    GridCondition
    """
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise InvalidArgumentError("channel", "a non-negative input channel index", channel)
    if not isinstance(axis, str):
        raise InvalidArgumentError("axis", "the name of the time axis", axis)

    def residual(x: GridCoordinates, u: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if channel >= a.shape[1]:
            raise InvalidArgumentError("channel", f"an input channel below {a.shape[1]}",
                                       channel)
        return u - a[:, channel:channel + 1]

    return GridCondition(residual, f"{axis}_min", points, weight)
