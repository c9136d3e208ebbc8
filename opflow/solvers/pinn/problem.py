"""``PINNProblem``: a residual, a domain and conditions, solved by training a network."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import torch

from ...errors import InvalidArgumentError, ShapeError
from .conditions import Condition
from .derivatives import Coordinates
from .domains import Domain

__all__ = ["PINNProblem", "hard_dirichlet"]

Residual = Callable[..., torch.Tensor]  # (x, u) -> r, or (x, u, p) with unknowns
Transform = Callable[[Coordinates, torch.Tensor], torch.Tensor]
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PINNProblem:
    """A PDE in residual form on a domain, with soft (or hard) conditions.

    Parameters
    ----------
    residual : callable ``(x: Coordinates, u: Tensor (N, channels)) -> Tensor (N,) or (N, k)``
        Zero where the PDE holds; take derivatives with
        :func:`~opflow.solvers.pinn.d` / :func:`~opflow.solvers.pinn.laplacian`.
    domain : Domain
        Where the interior collocation points are drawn; its ``names`` name the columns
        of ``x`` and must match the axes of a Grid the solution is evaluated on.
    conditions : sequence of Condition
        Boundary / initial conditions, each a weighted soft loss term.
    names : sequence of str
        One name per output channel (the Field's channel names).
    transform : callable ``(x: Coordinates, net_out: Tensor) -> Tensor``, optional
        Output transform applied to the network, e.g. a hard constraint built with
        :func:`hard_dirichlet`.
    unknowns : mapping of str to float, optional
        An inverse problem: unknown scalar coefficients of the PDE, by name, with
        their initial guesses. They are trained with the network (from
        observations, :class:`~opflow.solvers.pinn.Observation`) and the residual
        takes them as a third argument, ``residual(x, u, p)`` with ``p[name]`` a
        0-dim tensor; the identified values are ``sol.u.unknowns``. An unknown
        coefficient *field* is one more output channel of the network.

    Examples
    --------
    >>> prob = PINNProblem(lambda x, u: -d(u, x, "x", 2) - 1.0, Interval(0, 1),
    ...                    [Dirichlet(0.0)])  # doctest: +SKIP
    """

    residual: Residual
    domain: Domain
    conditions: tuple[Condition, ...] = ()
    names: tuple[str, ...] = ("u",)
    transform: Optional[Transform] = None
    unknowns: Optional[Mapping[str, float]] = None

    def __post_init__(self):
        if not callable(self.residual):
            raise InvalidArgumentError("residual", "a callable (x, u) -> residual",
                                       self.residual)
        object.__setattr__(self, "unknowns", _check_unknowns(self.unknowns, self.residual))
        if not isinstance(self.domain, Domain):
            raise InvalidArgumentError("domain", "an opflow PINN Domain (Interval, Box, ...)",
                                       self.domain)
        conds = tuple(self.conditions) if not isinstance(self.conditions, Condition) else (
            self.conditions,)
        for c in conds:
            if not isinstance(c, Condition):
                raise InvalidArgumentError("conditions", "Condition objects (Dirichlet, ...)", c)
            self.domain.boundary_parts(getattr(c, "on", None))  # unknown parts: an error now
        names = (self.names,) if isinstance(self.names, str) else tuple(self.names)
        if not names:
            raise InvalidArgumentError("names", "at least one channel name", self.names)
        if self.transform is not None and not callable(self.transform):
            raise InvalidArgumentError("transform", "a callable (x, net_out) -> u", self.transform)
        object.__setattr__(self, "conditions", conds)
        object.__setattr__(self, "names", names)

    @property
    def channels(self) -> int:
        return len(self.names)

    def model(self, net: torch.nn.Module, forward: Optional[Forward] = None
              ) -> Callable[[Coordinates], torch.Tensor]:
        """The trial function ``x -> u`` of shape ``(N, channels)`` (net plus transform).

        ``forward`` evaluates ``net`` on the points instead of ``net(points)``, e.g. an
        :class:`~opflow.solvers.pinn.jet.MLPJet` that also carries the derivatives.

        Parameters
        ----------
        net : torch.nn.Module
            The network.
        forward : callable, optional
            Evaluates ``net`` on the points instead of ``net(points)``.

        Returns
        -------
        callable
            ``x -> u``, ``u`` of shape ``(N, channels)``.
        """
        forward = net if forward is None else forward

        def u(x: Coordinates) -> torch.Tensor:
            out = forward(x.values)
            if out.ndim == 1:
                out = out[:, None]
            if self.transform is not None:
                out = self.transform(x, out)
            if out.shape != (len(x), self.channels):
                raise ShapeError("net", f"outputs of shape (N, {self.channels}) for the channels "
                                 f"{self.names}", out)
            return out

        return u

    def residual_at(self, net: torch.nn.Module, x: Coordinates,
                    forward: Optional[Forward] = None,
                    unknowns: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """Residual at ``x`` as ``(N, k)``, checked (``forward`` as in :meth:`model`).

        Parameters
        ----------
        net : torch.nn.Module
            The network.
        x : Coordinates
            The points.
        forward : callable, optional
            As in :meth:`model`.
        unknowns : mapping of str to torch.Tensor, optional
            The current values of the problem's ``unknowns`` (default: their
            initial guesses, as constants).

        Returns
        -------
        torch.Tensor, shape (N, k)
        """
        u = self.model(net, forward)(x)
        if self.unknowns is None:
            r = self.residual(x, u)
        else:
            if unknowns is None:
                unknowns = {k: torch.tensor(v, dtype=u.dtype, device=u.device)
                            for k, v in self.unknowns.items()}
            r = self.residual(x, u, unknowns)
        if not isinstance(r, torch.Tensor) or r.ndim not in (1, 2) or r.shape[0] != len(x):
            raise ShapeError("residual", f"a callable returning shape ({len(x)},) or "
                             f"({len(x)}, k): one residual per collocation point", r)
        return r.reshape(len(x), -1)


def _check_unknowns(unknowns: object, residual: Callable) -> Optional[dict[str, float]]:
    """The unknowns as ``{name: float}`` (None for a forward problem), and a residual that
    takes them as a third argument."""
    if unknowns is None:
        return None
    if not isinstance(unknowns, Mapping) or not unknowns:
        raise InvalidArgumentError("unknowns", "a non-empty mapping {name: initial guess}",
                                   unknowns)
    out = {}
    for name, value in unknowns.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError("unknowns", "names that are identifiers", name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise InvalidArgumentError("unknowns", f"a finite number as the guess of {name!r}",
                                       value)
        out[name] = float(value)
    try:
        inspect.signature(residual).bind(None, None, None)
    except TypeError:
        raise InvalidArgumentError("residual", "a callable (x, u, p) taking the unknowns as a "
                                   "third argument", residual) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): the call will tell
    return out


def hard_dirichlet(distance: Callable[[Coordinates], torch.Tensor],
                   value: Callable[[Coordinates], torch.Tensor] | float = 0.0) -> Transform:
    """Output transform ``u = value(x) + distance(x) * net(x)`` imposing ``u = value``
    exactly where ``distance(x) = 0`` (the boundary, or ``t = t0`` for an initial condition).

    Parameters
    ----------
    distance : callable ``x -> (N, 1)``
        Zero on the constrained set, positive elsewhere, e.g. ``x["x"] * (1 - x["x"])``.
    value : number or callable ``x -> (N, 1)``
    """

    def transform(x: Coordinates, out: torch.Tensor) -> torch.Tensor:
        g = value(x) if callable(value) else float(value)
        return g + distance(x).reshape(len(x), 1) * out

    return transform
