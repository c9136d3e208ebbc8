"""Boundary and initial conditions as weighted soft penalty terms.

A condition samples its own points from the domain (:meth:`Condition.sample`)
and turns the model's values there into a mean-square misfit
(:meth:`Condition.loss`), multiplied by ``weight`` in the total loss.
Targets are numbers or callables ``value(x: Coordinates) -> (N,) or (N, channels)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Union

import torch

from ...errors import InvalidArgumentError, ShapeError
from .derivatives import Coordinates, d, gradient
from .domains import Domain, TimeSpace
from .sampling import check_count

__all__ = ["Condition", "Dirichlet", "Neumann", "Periodic", "Initial", "Observation", "Model",
           "Target"]

Model = Callable[[Coordinates], torch.Tensor]
"""A model maps ``Coordinates`` of ``N`` points to values of shape ``(N, channels)``."""
Target = Union[float, Callable[[Coordinates], torch.Tensor]]


def _target(value: Target, x: Coordinates, like: torch.Tensor, argument: str) -> torch.Tensor:
    if callable(value):
        out = value(x)
        if not isinstance(out, torch.Tensor) or out.shape[0] != like.shape[0]:
            raise ShapeError(argument, f"a callable returning a tensor of shape ({like.shape[0]},)"
                             f" or {tuple(like.shape)}", out)
        out = out.reshape(like.shape[0], -1)
        if out.shape[1] not in (1, like.shape[1]):
            raise ShapeError(argument, f"one value or {like.shape[1]} values per point", out)
        return out.to(like.dtype)
    try:
        return torch.full_like(like, float(value))
    except (TypeError, ValueError):
        raise InvalidArgumentError(argument, "a number or a callable of Coordinates",
                                   value) from None


def _check_weight(weight: object) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise InvalidArgumentError("weight", "a number >= 0", weight)


def _check_points(points: object) -> None:
    if points is not None:
        check_count(points, "points", 1)


def _check_on(condition: Condition) -> None:
    """Store ``on`` as None or a tuple of part names (hashable, checked for type)."""
    on = condition.on  # type: ignore[attr-defined]
    if on is None:
        return
    parts = (on,) if isinstance(on, str) else on
    try:
        parts = tuple(parts)
    except TypeError:
        parts = (on,)
    if not all(isinstance(p, str) for p in parts):
        raise InvalidArgumentError("on", "a boundary part name or a sequence of names, e.g. "
                                   "'x_min' or ('x_min', 'y_max')", on)
    object.__setattr__(condition, "on", parts)


def _grad_points(x: Coordinates) -> Coordinates:
    return Coordinates(x.values.detach().requires_grad_(True), x.names)


@dataclass(frozen=True)
class Condition:
    """Base class: a weighted soft constraint with its own sampling."""

    kind: ClassVar[str] = "condition"

    def sample(self, domain: Domain, n: int, method: str = "uniform",
               seed: int = 0) -> torch.Tensor:
        """Points where the condition is enforced, shape ``(n, domain.dim)``.

        Parameters
        ----------
        domain : Domain
            The problem's domain.
        n : int
            Number of points.
        method : {"uniform", "latin_hypercube", "lhs", "sobol"}
            Sampler.
        seed : int
            Seed of the sampler.

        Returns
        -------
        torch.Tensor, shape (n, domain.dim)
        """
        return domain.sample_boundary(n, method, seed, on=getattr(self, "on", None))

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        """Unweighted mean-square misfit (a scalar) at the points ``x``.

        Parameters
        ----------
        model : callable
            The network's output as a function of the coordinates.
        x : Coordinates
            The points (from :meth:`sample`), by axis name.
        domain : Domain
            The problem's domain (normals, periodic partners).

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Dirichlet(Condition):
    """``u = value`` on the (lateral) boundary.

    ``on`` names the boundary parts (``domain.boundaries``, e.g. ``"x_min"`` or
    ``("x_min", "y_max")`` on a Box); default the whole boundary.

    Parameters
    ----------
    value : float or callable
        A number, or ``value(x) -> (N,) or (N, channels)`` of the
        :class:`Coordinates` ``x`` of ``N`` points.
    weight : float
        Weight of this term in the loss (positive).
    name : str, optional
        Key of the term in ``sol.u.losses`` (default: the kind, numbered
        when repeated: ``dirichlet``, ``dirichlet2``, ...).
    on : str or tuple of str, optional
        Boundary parts (``domain.boundaries``); default the whole boundary.
    points : int, optional
        Number of points where this condition is enforced (default: the
        PINN's ``n_boundary``), as DeepXDE's ``num_boundary`` and
        ``num_initial`` may differ.

    Examples
    --------
    >>> from opflow.solvers.pinn import Dirichlet
    >>> Dirichlet(0.0, on=("x_min", "x_max")).on
    ('x_min', 'x_max')
    """

    value: Target = 0.0
    weight: float = 1.0
    name: str | None = None
    on: str | tuple[str, ...] | None = None
    points: int | None = None
    kind: ClassVar[str] = "dirichlet"

    def __post_init__(self):
        _check_weight(self.weight)
        _check_points(self.points)
        _check_on(self)

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        u = model(x)
        return (u - _target(self.value, x, u, "value")).pow(2).mean()


@dataclass(frozen=True)
class Neumann(Condition):
    """Outward normal derivative ``du/dn = value`` on the (lateral) boundary.

    ``on`` names the boundary parts (``domain.boundaries``, e.g. ``"x_min"`` or
    ``("x_min", "y_max")`` on a Box); default the whole boundary.

    Parameters
    ----------
    value : float or callable
        A number, or ``value(x) -> (N,) or (N, channels)`` of the
        :class:`Coordinates` ``x`` of ``N`` points.
    weight : float
        Weight of this term in the loss (positive).
    name : str, optional
        Key of the term in ``sol.u.losses`` (default: the kind, numbered
        when repeated: ``dirichlet``, ``dirichlet2``, ...).
    on : str or tuple of str, optional
        Boundary parts (``domain.boundaries``); default the whole boundary.
    points : int, optional
        Number of points where this condition is enforced (default: the
        PINN's ``n_boundary``), as DeepXDE's ``num_boundary`` and
        ``num_initial`` may differ.
    """

    value: Target = 0.0
    weight: float = 1.0
    name: str | None = None
    on: str | tuple[str, ...] | None = None
    points: int | None = None
    kind: ClassVar[str] = "neumann"

    def __post_init__(self):
        _check_weight(self.weight)
        _check_points(self.points)
        _check_on(self)

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        x = _grad_points(x)
        u = model(x)
        normals = domain.normals(x.values.detach())
        dudn = torch.cat([(gradient(u[:, k:k + 1], x) * normals).sum(dim=1, keepdim=True)
                          for k in range(u.shape[1])], dim=1)
        return (dudn - _target(self.value, x, dudn, "value")).pow(2).mean()


@dataclass(frozen=True)
class Periodic(Condition):
    """Periodicity along ``axis``: ``u`` and its first ``derivatives`` derivatives
    along ``axis`` agree on the faces ``axis = lo`` and ``axis = hi``.

    Parameters
    ----------
    axis : str
        The periodic axis.
    weight : float
        Weight of this term in the loss (positive).
    derivatives : int
        How many derivatives must match too (0 to 3).
    name : str, optional
        Key of the term in ``sol.u.losses`` (default ``periodic``).
    points : int, optional
        Number of points where this condition is enforced (default: the
        PINN's ``n_boundary``), as DeepXDE's ``num_boundary`` and
        ``num_initial`` may differ.
    """

    axis: str = "x"
    weight: float = 1.0
    derivatives: int = 0
    name: str | None = None
    points: int | None = None
    kind: ClassVar[str] = "periodic"

    def __post_init__(self):
        _check_weight(self.weight)
        _check_points(self.points)
        if isinstance(self.derivatives, bool) or self.derivatives not in range(0, 4):
            raise InvalidArgumentError("derivatives", "an integer in 0..3", self.derivatives)

    def sample(self, domain: Domain, n: int, method: str = "uniform",
               seed: int = 0) -> torch.Tensor:
        if self.axis not in domain.names:
            raise InvalidArgumentError("axis", f"an axis of the domain {domain.names}", self.axis)
        return domain.sample_interior(n, method, seed)

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        i = x.names.index(self.axis)
        lo, hi = domain.box[self.axis]
        pts = x.values.detach().clone()
        a, b = pts.clone(), pts.clone()
        a[:, i], b[:, i] = lo, hi
        both = Coordinates(torch.cat([a, b]).requires_grad_(self.derivatives > 0), x.names)
        u = model(both)
        n = len(x)
        total = (u[:n] - u[n:]).pow(2).mean()
        for order in range(1, self.derivatives + 1):
            du = torch.cat([d(u[:, k:k + 1], both, self.axis, order) for k in range(u.shape[1])],
                           dim=1)
            total = total + (du[:n] - du[n:]).pow(2).mean()
        return total


@dataclass(frozen=True)
class Initial(Condition):
    """``u = value`` at ``t = t0`` (``derivative=1``: ``u_t = value``); needs a
    :class:`~opflow.solvers.pinn.TimeSpace` domain.

    Parameters
    ----------
    value : float or callable
        A number, or ``value(x) -> (N,) or (N, channels)`` of the
        :class:`Coordinates` ``x`` of ``N`` points.
    weight : float
        Weight of this term in the loss (positive).
    derivative : {0, 1}
        0: the value, 1: the time derivative.
    name : str, optional
        Key of the term in ``sol.u.losses`` (default ``initial``).
    points : int, optional
        Number of points where this condition is enforced (default: the
        PINN's ``n_boundary``), as DeepXDE's ``num_boundary`` and
        ``num_initial`` may differ.
    """

    value: Target = 0.0
    weight: float = 1.0
    derivative: int = 0
    name: str | None = None
    points: int | None = None
    kind: ClassVar[str] = "initial"

    def __post_init__(self):
        _check_weight(self.weight)
        _check_points(self.points)
        if self.derivative not in (0, 1) or isinstance(self.derivative, bool):
            raise InvalidArgumentError("derivative", "0 or 1", self.derivative)

    def sample(self, domain: Domain, n: int, method: str = "uniform",
               seed: int = 0) -> torch.Tensor:
        if not isinstance(domain, TimeSpace):
            raise InvalidArgumentError("domain", "a TimeSpace domain for an Initial condition",
                                       domain)
        return domain.sample_initial(n, method, seed)

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        if self.derivative:
            x = _grad_points(x)
            u = model(x)
            t = domain.time_name  # type: ignore[attr-defined]
            u = torch.cat([d(u[:, k:k + 1], x, t) for k in range(u.shape[1])], dim=1)
        else:
            u = model(x)
        return (u - _target(self.value, x, u, "value")).pow(2).mean()


@dataclass(frozen=True, eq=False)
class Observation(Condition):
    """Measured values at given points: the data of an inverse problem (DeepXDE's
    ``PointSetBC``).

    The points are used as given (no sampling); the term is the mean-square
    misfit between the network's output there and ``values``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, dim)
        The points, columns in the domain's ``names`` order (need not lie on
        the boundary).
    values : torch.Tensor, shape (N,) or (N, k)
        The measurements: one per point for one observed channel, or ``k``
        (every output channel, or the channels named by ``channel``).
    channel : int or sequence of int, optional
        Which output channels are observed (default: all).
    weight : float
        Weight of this term in the loss (positive).
    name : str, optional
        Key of the term in ``sol.u.losses`` (default ``observation``).

    Examples
    --------
    >>> import torch
    >>> from opflow.solvers.pinn import Observation
    >>> Observation(torch.tensor([[0.25], [0.5]]), torch.tensor([0.1, 0.2])).points
    2
    """

    x: torch.Tensor
    values: torch.Tensor
    channel: int | tuple[int, ...] | None = None
    weight: float = 1.0
    name: str | None = None
    kind: ClassVar[str] = "observation"

    def __post_init__(self):
        _check_weight(self.weight)
        if not (isinstance(self.x, torch.Tensor) and self.x.ndim == 2 and len(self.x) > 0
                and self.x.is_floating_point() and bool(torch.isfinite(self.x).all())):
            raise ShapeError("x", "a finite floating-point tensor of shape (N, dim), N >= 1",
                             self.x)
        values = self.values
        if not (isinstance(values, torch.Tensor) and values.is_floating_point()
                and values.ndim in (1, 2) and values.shape[0] == len(self.x)):
            raise ShapeError("values", f"a floating-point tensor of shape ({len(self.x)},) or "
                             f"({len(self.x)}, k): one row per point of x", values)
        object.__setattr__(self, "values", values.reshape(len(self.x), -1).detach())
        object.__setattr__(self, "x", self.x.detach())
        channel = (self.channel,) if isinstance(self.channel, int) else self.channel
        if channel is not None:
            channel = tuple(channel)
            if not channel or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                                  for c in channel):
                raise InvalidArgumentError("channel", "an output channel index or indices >= 0",
                                           self.channel)
            if len(channel) != self.values.shape[1]:
                raise ShapeError("values", f"{len(channel)} value(s) per point, one per "
                                 f"observed channel {channel}", values)
        object.__setattr__(self, "channel", channel)

    @property
    def points(self) -> int:
        """The number of observation points."""
        return len(self.x)

    def sample(self, domain: Domain, n: int, method: str = "uniform",
               seed: int = 0) -> torch.Tensor:
        if self.x.shape[1] != domain.dim:
            raise ShapeError("x", f"{domain.dim} columns, one per axis {domain.names}", self.x)
        return self.x

    def loss(self, model: Model, x: Coordinates, domain: Domain) -> torch.Tensor:
        u = model(x)
        channel = self.channel  # a tuple after __post_init__
        if isinstance(channel, tuple):
            if max(channel) >= u.shape[1]:
                raise InvalidArgumentError("channel", f"indices below the {u.shape[1]} output "
                                           "channels", channel)
            u = u[:, list(channel)]
        elif self.values.shape[1] not in (1, u.shape[1]):
            raise ShapeError("values", f"one value or {u.shape[1]} values per point (or give "
                             "`channel`)", self.values)
        return (u - self.values.to(u)).pow(2).mean()
