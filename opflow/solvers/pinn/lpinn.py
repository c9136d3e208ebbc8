"""Lagrangian PINN (Mojgani, Balajewicz, Hassanzadeh) for periodic convection and Burgers.

Convection ``u_t + beta u_x = 0`` on ``x in [a, a + L)`` (periodic),
``u(x, 0) = u0(x)``: along characteristics ``X(xi, t)`` the equation splits into
``X_t = beta`` and ``u_t = 0`` with ``X(xi, 0) = xi``, ``u(xi, 0) = u0(xi)``:
smooth in the Lagrangian frame for any ``beta``, where a plain PINN fails for
large ``beta`` (Krishnapriyan et al. 2021).

Viscous Burgers ``u_t + u u_x = nu u_xx``: the characteristics move with the
solution, ``X_t = u``, and ``u_t = nu u_xx`` along them, where the Eulerian
second derivative comes from the Lagrangian networks by the chain rule:
``u_x = u_xi / X_xi`` and ``u_xx = (u_x)_xi / X_xi``.

Two networks take ``(cos theta, sin theta, t)``, ``theta = 2 pi (xi - a) / L``,
which makes them periodic in ``xi``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import Callable, cast

import numpy as np
import torch

from ...errors import InvalidArgumentError
from ...field import Field
from ...grid import Grid
from ...progress import Progress
from ...solution import ReturnCode, Solution, SolverStats
from ...solve import AbstractAlgorithm, register
from ...train.loop import OptimizerStep
from .algorithm import lbfgs_refine
from .domains import Interval, TimeSpace
from .sampling import SAMPLERS, check_count, sample_unit

__all__ = ["ConvectionProblem", "ViscousBurgersProblem", "LPINN", "LagrangianFunction",
           "solve_lpinn"]


class _PeriodicProblem:
    """What the problems LPINN solves share: ``u0`` checked, the ``(t, x)`` domain, the period."""

    u0: Callable[[torch.Tensor], torch.Tensor]  # fields of the subclasses
    xspan: tuple[float, float]
    tspan: tuple[float, float]
    domain: TimeSpace  # set by _set_domain

    def _set_domain(self) -> None:
        if not callable(self.u0):
            raise InvalidArgumentError("u0", "a callable x -> u0(x)", self.u0)
        object.__setattr__(self, "domain", TimeSpace(self.tspan, Interval(*self.xspan)))

    @property
    def period(self) -> float:
        return float(self.xspan[1] - self.xspan[0])


@dataclass(frozen=True)
class ConvectionProblem(_PeriodicProblem):
    """Periodic linear convection ``u_t + beta u_x = 0``.

    Parameters
    ----------
    beta : float
        Constant velocity.
    u0 : callable ``(x: Tensor (N,)) -> Tensor (N,)``
        Initial condition, periodic on ``xspan``.
    xspan : (float, float)
        Periodic spatial interval ``[a, a + L)``.
    tspan : (float, float)
    """

    beta: float
    u0: Callable[[torch.Tensor], torch.Tensor] = torch.sin
    xspan: tuple[float, float] = (0.0, 2 * math.pi)
    tspan: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        self._set_domain()
        try:
            float(self.beta)
        except (TypeError, ValueError):
            raise InvalidArgumentError("beta", "a number", self.beta) from None

    @property
    def velocity_scale(self) -> float:
        """Scale of the characteristic speed, ``max(|beta|, 1)``."""
        return max(abs(float(self.beta)), 1.0)


def _neg_sin_pi(x: torch.Tensor) -> torch.Tensor:
    return -torch.sin(math.pi * x)


@dataclass(frozen=True)
class ViscousBurgersProblem(_PeriodicProblem):
    """Periodic viscous Burgers ``u_t + u u_x = nu u_xx`` for the Lagrangian PINN.

    Parameters
    ----------
    nu : float
        Viscosity, ``nu >= 0``.
    u0 : callable ``(x: Tensor (N,)) -> Tensor (N,)``
        Initial condition, periodic on ``xspan``; default ``-sin(pi x)``.
    xspan : (float, float)
        Periodic spatial interval ``[a, a + L)``; default ``(-1, 1)``.
    tspan : (float, float)
        Default ``(0, 0.5)``. Before a shock forms the characteristics stay apart;
        past it they crowd into the shock layer (``X_xi`` tends to 0).

    Examples
    --------
    >>> prob = ViscousBurgersProblem(0.01 / math.pi, tspan=(0.0, 0.3))
    """

    nu: float
    u0: Callable[[torch.Tensor], torch.Tensor] = _neg_sin_pi
    xspan: tuple[float, float] = (-1.0, 1.0)
    tspan: tuple[float, float] = (0.0, 0.5)

    def __post_init__(self):
        self._set_domain()
        if isinstance(self.nu, bool) or not isinstance(self.nu, (int, float)) or not (
                math.isfinite(self.nu) and self.nu >= 0):
            raise InvalidArgumentError("nu", "a finite number >= 0", self.nu)

    @property
    def velocity_scale(self) -> float:
        """``max(max |u0|, 1)`` on 256 points: the characteristic speed's scale."""
        x = self.xspan[0] + self.period * torch.arange(256, dtype=torch.float64) / 256
        return max(float(self.u0(x).abs().max()), 1.0)


@dataclass(frozen=True)
class LPINN(AbstractAlgorithm):
    """Lagrangian PINN training for :class:`ConvectionProblem` and
    :class:`ViscousBurgersProblem`.

    The trial functions satisfy the initial conditions exactly (hard constraints):
    ``X = xi + s t net_x(f)``, ``u = u0(xi) + t net_u(f)`` with ``f = (cos, sin, t)`` and
    the velocity scale ``s`` (``problem.velocity_scale``); the loss is
    ``mean((X_t - c)^2) / s^2 + mean((u_t - nu u_xx)^2)`` with ``c = beta, nu = 0``
    (convection) or ``c = u`` (Burgers). With ``hard_initial=False`` the networks
    give ``X = xi + s net_x(f)`` and ``u = net_u(f)`` and the initial conditions enter the
    loss with weight ``initial_weight``, as in the paper.

    Parameters
    ----------
    net_x, net_u : torch.nn.Module
        Each maps ``(N, 3)`` inputs to ``(N, 1)``. ``solve`` trains copies and
        leaves these unchanged; the trained ones are ``sol.u.net_x``/``sol.u.net_u``.
    n_interior : int
        Collocation points ``(xi, t)``.
    n_initial : int
        Points at ``t = t0`` (used with ``hard_initial=False``).
    lr, iterations, lbfgs_iterations, sampler, seed, progress
        As in :class:`~opflow.solvers.pinn.PINN`.
    hard_initial : bool
    initial_weight : float

    Examples
    --------
    >>> import torch, opflow
    >>> def mlp():  # inputs (cos xi, sin xi, t)
    ...     return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(),
    ...                                torch.nn.Linear(16, 1))
    >>> alg = opflow.LPINN(mlp(), mlp(), n_interior=100, n_initial=20, iterations=5)
    >>> sol = opflow.solve(opflow.ConvectionProblem(beta=30.0), alg)
    >>> grid = opflow.Grid.uniform(t=(0.0, 1.0, 5), x=(0.0, 6.283185307179586, 16),
    ...                            periodic=("x",))
    >>> tuple(sol.u(grid).shape)  # Eulerian values on a grid
    (1, 5, 16)
    """

    net_x: torch.nn.Module
    net_u: torch.nn.Module
    n_interior: int = 1000
    n_initial: int = 200
    lr: float = 1e-3
    iterations: int = 1000
    lbfgs_iterations: int = 0
    hard_initial: bool = True
    initial_weight: float = 10.0
    sampler: str = "sobol"
    seed: int = 0
    progress: bool | str = False

    def __post_init__(self):
        for name in ("net_x", "net_u"):
            if not isinstance(getattr(self, name), torch.nn.Module):
                raise InvalidArgumentError(name, "a torch.nn.Module", getattr(self, name))
        check_count(self.n_interior, "n_interior", 1)
        check_count(self.n_initial, "n_initial", 0)
        check_count(self.iterations, "iterations", 0)
        check_count(self.lbfgs_iterations, "lbfgs_iterations", 0)
        if self.sampler not in SAMPLERS:
            raise InvalidArgumentError("sampler", f"one of {sorted(SAMPLERS)}", self.sampler)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InvalidArgumentError("lr", "a positive number", self.lr)


class LagrangianFunction:
    """The trained LPINN: characteristics ``X(xi, t)``, values ``u(xi, t)``, and
    Eulerian values on a Grid by periodic interpolation.

    Parameters
    ----------
    prob : ConvectionProblem or ViscousBurgersProblem
        The problem it was trained on.
    alg : LPINN
        The algorithm, with the trained networks ``net_x`` and ``net_u``.

    Attributes
    ----------
    losses : dict of str to float
        Final loss terms (``"characteristic"``, ``"transport"``, and the initial terms).
    history : dict of str to list of float
    """

    def __init__(self, prob: ConvectionProblem | ViscousBurgersProblem, alg: LPINN):
        self.problem, self.alg = prob, alg
        self.net_x, self.net_u = alg.net_x, alg.net_u  # the trained networks
        self.losses: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}

    def lagrangian(self, xi: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``X(xi, t)`` and ``u(xi, t)`` for ``(N,)`` tensors, each of shape ``(N,)``.

        Parameters
        ----------
        xi : torch.Tensor, shape (N,)
            Lagrangian (initial) positions.
        t : torch.Tensor, shape (N,)
            Times.

        Returns
        -------
        tuple of torch.Tensor
            ``X`` and ``u``, each of shape ``(N,)``.
        """
        prob, alg = self.problem, self.alg
        a = prob.xspan[0]
        theta = 2 * math.pi * (xi - a) / prob.period
        tau = t - prob.tspan[0]
        feats = torch.stack([theta.cos(), theta.sin(), tau], dim=1)
        s = prob.velocity_scale
        nx, nu = alg.net_x(feats).reshape(-1), alg.net_u(feats).reshape(-1)
        if alg.hard_initial:
            return xi + s * tau * nx, prob.u0(xi).reshape(-1) + tau * nu
        return xi + s * nx, nu

    def __call__(self, grid: Grid, n_xi: int | None = None) -> Field:
        """Eulerian ``u`` on ``grid`` (axes ``t`` and ``x``, either order) as a Field of shape
        ``(1, *grid.shape)``: at each time, the Lagrangian values at ``n_xi`` (default 4x the
        x points) particles are interpolated (periodic, linear) at their positions ``X``."""
        if not isinstance(grid, Grid) or sorted(grid.names) != ["t", "x"]:
            raise InvalidArgumentError("grid", "an opflow.Grid with the axes 't' and 'x'",
                                       getattr(grid, "names", grid))
        a, period = self.problem.xspan[0], self.problem.period
        xs, ts = grid.coords["x"], grid.coords["t"]
        n_xi = n_xi or 4 * len(xs)
        dtype = next(iter(self.alg.net_u.parameters())).dtype
        xi = a + period * torch.arange(n_xi, dtype=dtype) / n_xi
        out = np.empty((len(ts), len(xs)))
        with torch.no_grad():
            for k, t in enumerate(ts):
                X, u = self.lagrangian(xi, torch.full_like(xi, float(t)))
                pos = torch.remainder(X - a, period).double().numpy()
                order = np.argsort(pos)
                out[k] = np.interp(xs - a, pos[order], u.double().numpy()[order], period=period)
        values = torch.as_tensor(out, dtype=dtype)
        if grid.names == ("x", "t"):
            values = values.T
        return Field(values[None], grid, names="u", attrs={
            "solver": "LPINN", **{f"loss_{k}": v for k, v in self.losses.items()}})


def _derivative(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    return g


def _pde_terms(prob, X: torch.Tensor, u: torch.Tensor, xi: torch.Tensor, t: torch.Tensor,
               scale: float) -> dict[str, torch.Tensor]:
    """Characteristic and transport residuals (mean squares) at the collocation points."""
    X_t, u_t = _derivative(X, t), _derivative(u, t)
    if isinstance(prob, ConvectionProblem):
        return {"characteristic": ((X_t - float(prob.beta)) / scale).pow(2).mean(),
                "transport": u_t.pow(2).mean()}
    jac = _derivative(X, xi)  # X_xi: > 0 while the characteristics do not cross
    u_x = _derivative(u, xi) / jac
    u_xx = _derivative(u_x, xi) / jac
    return {"characteristic": ((X_t - u) / scale).pow(2).mean(),
            "transport": (u_t - prob.nu * u_xx).pow(2).mean()}


@register(ViscousBurgersProblem, LPINN)
@register(ConvectionProblem, LPINN)
def solve_lpinn(prob: ConvectionProblem | ViscousBurgersProblem, alg: LPINN,
                progress: bool | str | None = None) -> Solution:
    """Train the LPINN; ``sol.u(grid)`` gives a Field (see :class:`LagrangianFunction`).

    ``stats`` and ``retcode`` are filled as in :func:`~opflow.solvers.pinn.solve_pinn`.

    Parameters
    ----------
    prob : ConvectionProblem or ViscousBurgersProblem
        The problem.
    alg : LPINN
        The algorithm; it is not changed (the networks trained are copies).
    progress : bool, "always" or None
        Progress bar (default: the algorithm's ``progress``).

    Returns
    -------
    Solution
    """
    given, alg = alg, replace(alg, net_x=copy.deepcopy(alg.net_x),
                              net_u=copy.deepcopy(alg.net_u))  # train copies
    if not alg.hard_initial and alg.n_initial == 0:
        raise InvalidArgumentError("n_initial", "an integer >= 1 with hard_initial=False",
                                   alg.n_initial)
    start = time.perf_counter()
    fn = LagrangianFunction(prob, alg)
    dtype = next(iter(alg.net_u.parameters())).dtype
    pts = prob.domain.sample_interior(alg.n_interior, alg.sampler, alg.seed).to(dtype)
    t = pts[:, 0].clone().requires_grad_(True)
    xi = pts[:, 1].clone().requires_grad_(isinstance(prob, ViscousBurgersProblem))
    s0 = sample_unit(alg.n_initial, 1, alg.sampler, alg.seed + 101, dtype=dtype)[:, 0]
    xi0 = prob.xspan[0] + prob.period * s0
    t0 = torch.full_like(xi0, prob.tspan[0])
    scale = prob.velocity_scale
    params = [p for m in (alg.net_x, alg.net_u) for p in m.parameters() if p.requires_grad]
    stats = SolverStats()
    names = ["characteristic", "transport"] + ([] if alg.hard_initial else ["initial_x",
                                                                           "initial_u"])
    history: dict[str, list[float]] = {n: [] for n in [*names, "total"]}

    def terms() -> dict[str, torch.Tensor]:
        X, u = fn.lagrangian(xi, t)
        out = _pde_terms(prob, X, u, xi, t, scale)
        if not alg.hard_initial:
            X0, u0 = fn.lagrangian(xi0, t0)
            out["initial_x"] = ((X0 - xi0) / scale).pow(2).mean()
            out["initial_u"] = (u0 - prob.u0(xi0).reshape(-1)).pow(2).mean()
        stats.nfe += 1
        return out

    def total_of(tm: dict[str, torch.Tensor]) -> torch.Tensor:
        total = sum((alg.initial_weight if k.startswith("initial") else 1.0) * v
                    for k, v in tm.items())
        return cast(torch.Tensor, total)  # not the empty sum 0: tm holds the PDE terms

    def record(tm: dict[str, torch.Tensor], total: torch.Tensor) -> None:
        vals = {k: float(v.detach()) for k, v in tm.items()}
        for k, v in vals.items():
            history[k].append(v)
        history["total"].append(float(total.detach()))
        bar.update(1, **vals)

    bar = Progress(alg.iterations + alg.lbfgs_iterations, "LPINN",
                   alg.progress if progress is None else progress, unit="iteration")
    retcode = ReturnCode.Success
    try:
        update = OptimizerStep(torch.optim.Adam(params, lr=alg.lr), params)
        for _ in range(alg.iterations):
            tm = terms()
            total = total_of(tm)
            if not torch.isfinite(total):
                retcode = ReturnCode.Unstable
                break
            update(total)
            stats.iterations += 1
            record(tm, total)
        if alg.lbfgs_iterations and retcode == ReturnCode.Success:
            def loss() -> tuple[dict, torch.Tensor]:
                tm = terms()
                return tm, total_of(tm)

            stats.iterations += lbfgs_refine(params, alg.lbfgs_iterations, loss, record)
    finally:
        bar.close()
    fn.losses = {k: float(v.detach()) for k, v in terms().items()}
    fn.history = history
    if not all(math.isfinite(v) for v in fn.losses.values()):
        retcode = ReturnCode.Unstable
    stats.wall_time = time.perf_counter() - start
    return Solution(t=torch.empty(0), u=fn, retcode=retcode, stats=stats, problem=prob,
                    alg=given, interpolant=fn)
