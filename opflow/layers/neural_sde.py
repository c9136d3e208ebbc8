"""Neural SDE layers for irregularly sampled time series (stable neural SDEs).

The three stable classes of Oh, Lim and Kim ("Stable Neural Stochastic
Differential Equations in Analyzing Irregular Time Series Data", ICLR 2024),
for a latent state ``z`` of ``H`` channels:

* :class:`LangevinSDE` (LSDE): ``dz = gamma(z~) dt + sigma(t) dW``;
* :class:`LinearNoiseSDE` (LNSDE): ``dz = gamma(t, z~) dt + sigma(t) z dW``;
* :class:`GeometricSDE` (GSDE): ``dz / z = gamma(t, z~) dt + sigma(t) dW``;

and the naive :class:`NeuralSDE` ``dz = f(t, z) dt + g(t, z) dW`` they are
compared with. ``z~ = zeta(t, z, X(t))`` is the controlled path: ``X`` is the
natural cubic spline (:class:`~opflow.layers.spline.NaturalCubicSpline`) of
the observations, so the data keep steering the drift between and after
observation times. ``sigma(t)`` is a network of time only (diagonal noise).

All of them solve on opflow's fixed-step SDE solvers (default
``EulerMaruyama(dt)``, Ito, diagonal noise) and train by direct backprop
through the steps. The latent state starts at ``z(t_0) = Linear(x_0)`` and
a linear readout maps ``z`` to the outputs.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import InvalidArgumentError, ShapeError
from ..solution import SolverStats
from ..solve import solve
from ..solvers.sde import EulerMaruyama, SDEAlgorithm, SDEProblem
from .spline import NaturalCubicSpline

__all__ = ["LangevinSDE", "LinearNoiseSDE", "GeometricSDE", "NeuralSDE"]

TimeLike = Union[Sequence[float], torch.Tensor]


def _mlp(n_in: int, width: int, n_out: int, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    size = n_in
    for _ in range(depth - 1):
        layers += [nn.Linear(size, width), nn.Tanh()]
        size = width
    layers.append(nn.Linear(size, n_out))
    return nn.Sequential(*layers)


def _time_column(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The solver's time (0-dim) as a ``(B, 1)`` column next to ``z`` (B, H)."""
    return t.to(z.dtype).reshape(1, 1).expand(z.shape[0], 1)


class _SplineSDE(nn.Module):
    """Shared machinery: spline, initial state, SDE solve, readout.

    Subclasses define ``drift(t, y, X)``, ``diffusion(t, y)`` on the solver
    state ``y`` (B, H) and ``to_latent(y)`` (identity except for the
    geometric SDE, which integrates ``log z``).
    """

    uses_spline = True
    zeta: nn.Module  # set by the subclasses
    sigma_net: nn.Module

    def __init__(self, input_channels: int, hidden_channels: int, output_channels: int,
                 width: int = 64, dt: float = 0.05, sigma_max: float = 1.0,
                 solver: Optional[SDEAlgorithm] = None):
        super().__init__()
        for name, v in (("input_channels", input_channels), ("hidden_channels", hidden_channels),
                        ("output_channels", output_channels), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InvalidArgumentError(name, "a positive integer", v)
        if not sigma_max > 0:
            raise InvalidArgumentError("sigma_max", "a positive bound on sigma(t)", sigma_max)
        self.solver = EulerMaruyama(dt) if solver is None else solver
        if not isinstance(self.solver, SDEAlgorithm):
            raise InvalidArgumentError("solver", "an opflow SDE algorithm such as "
                                       "EulerMaruyama(dt)", self.solver)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        self.output_channels, self.sigma_max = output_channels, float(sigma_max)
        self.initial = nn.Linear(input_channels, hidden_channels)
        self.readout = nn.Linear(hidden_channels, output_channels)
        self.last_stats: Optional[SolverStats] = None

    # ------------------------------------------------------------- pieces
    def controlled_path(self, t: torch.Tensor, z: torch.Tensor, X: NaturalCubicSpline):
        """``z~ = zeta(t, z, X(t))`` of shape ``(B, H)``."""
        return torch.tanh(self.zeta(torch.cat([_time_column(t, z), z, X(t)], dim=-1)))

    def sigma(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``sigma(t)`` in ``(0, sigma_max)``, shape ``(B, H)`` like ``like``."""
        tt = t.to(like.dtype).reshape(1, 1)
        return (torch.sigmoid(self.sigma_net(tt)) * self.sigma_max).expand_as(like)

    def initial_state(self, x0: torch.Tensor) -> torch.Tensor:
        """Solver state at the first time from the first observation ``(B, C)``."""
        return self.initial(x0)

    def to_latent(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def drift(self, t, y, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def diffusion(self, t, y):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------- solve
    def latent(self, t: TimeLike, x: torch.Tensor, t_out: Optional[TimeLike] = None,
               seed: Optional[int] = None) -> torch.Tensor:
        """Latent path ``z`` at the output times.

        Parameters
        ----------
        t : torch.Tensor, shape (N,) or (B, N)
            Observation times (shared, or per sample for irregular series),
            strictly increasing.
        x : torch.Tensor, shape (B, N, C)
            Observations.
        t_out : sequence of float or torch.Tensor, shape (K,), optional
            Output times within ``[min t, max t]`` (the solve runs from the
            earliest to the latest observation time). Default: the last time.
        seed : int, optional
            Seed of the Brownian increments (same seed, same output).

        Returns
        -------
        torch.Tensor, shape (K, B, H)
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.input_channels:
            raise ShapeError("x", f"observations of shape (B, N, {self.input_channels})", x)
        X = NaturalCubicSpline(t, x)
        t0, t1 = float(X.t[:, 0].min()), float(X.t[:, -1].max())
        saveat = [t1] if t_out is None else t_out
        y0 = self.initial_state(x[:, 0])

        path = X if self.uses_spline else None
        drift: Callable = lambda s, y: self.drift(s, y, path)  # noqa: E731
        prob = SDEProblem(drift, self.diffusion, y0, (t0, t1), noise="diagonal")
        sol = solve(prob, self.solver, saveat=saveat, seed=seed)
        self.last_stats = sol.stats
        return self.to_latent(sol.u)

    def forward(self, t: TimeLike, x: torch.Tensor, t_out: Optional[TimeLike] = None,
                seed: Optional[int] = None) -> torch.Tensor:
        """Outputs ``readout(z)``: ``(B, O)`` at the last time, or ``(K, B, O)`` at ``t_out``.

        See :meth:`latent` for the parameters.
        """
        out = self.readout(self.latent(t, x, t_out, seed))
        return out[-1] if t_out is None else out


class _StableSDE(_SplineSDE):
    """The three stable SDEs' shared networks: the controlled path ``zeta``,
    the bounded drift ``gamma`` (of ``z~``, or of ``(t, z~)`` when
    ``gamma_takes_time``) and ``sigma(t)``."""

    gamma_takes_time = True

    def __init__(self, input_channels: int, hidden_channels: int, output_channels: int,
                 width: int = 64, dt: float = 0.05, sigma_max: float = 1.0,
                 solver: Optional[SDEAlgorithm] = None):
        super().__init__(input_channels, hidden_channels, output_channels, width, dt, sigma_max,
                         solver)
        H = hidden_channels
        self.zeta = nn.Linear(1 + H + input_channels, H)
        gamma_in = H + 1 if self.gamma_takes_time else H
        self.gamma = nn.Sequential(_mlp(gamma_in, width, H), nn.Tanh())
        self.sigma_net = _mlp(1, width, H)


class LangevinSDE(_StableSDE):
    """Langevin-type stable neural SDE: ``dz = gamma(z~) dt + sigma(t) dW``.

    Parameters
    ----------
    input_channels : int
        ``C``, channels of the observations.
    hidden_channels : int
        ``H``, size of the latent state ``z``.
    output_channels : int
        ``O``, size of the linear readout of ``z``.
    width : int
        Width of the networks ``zeta``, ``gamma`` and ``sigma``.
    dt : float
        Step of the default ``EulerMaruyama(dt)`` solver.
    sigma_max : float
        Upper bound of ``sigma(t) = sigma_max * sigmoid(net(t))``.
    solver : SDEAlgorithm, optional
        Another fixed-step opflow SDE method (``Milstein``, ``SRA1``).

    Notes
    -----
    ``z~ = tanh(zeta(t, z, X(t)))`` with ``X`` the natural cubic spline of
    the observations; ``gamma`` ends with ``tanh`` (a bounded drift), and the
    noise is additive in ``z`` (it depends on ``t`` only).

    Examples
    --------
    >>> import torch, opflow
    >>> model = opflow.LangevinSDE(input_channels=2, hidden_channels=8, output_channels=1,
    ...                            width=16)
    >>> t = torch.linspace(0, 1, 6)  # observation times (or one row per sample)
    >>> tuple(model(t, torch.randn(4, 6, 2)).shape)  # (batch, output) at the last time
    (4, 1)
    """

    gamma_takes_time = False

    def drift(self, t, y, X):
        return self.gamma(self.controlled_path(t, y, X))

    def diffusion(self, t, y):
        return self.sigma(t, y)


class LinearNoiseSDE(_StableSDE):
    """Linear-noise stable neural SDE: ``dz = gamma(t, z~) dt + sigma(t) z dW``.

    Parameters as :class:`LangevinSDE`; ``gamma`` also takes ``t``.
    """

    def drift(self, t, y, X):
        zt = self.controlled_path(t, y, X)
        return self.gamma(torch.cat([_time_column(t, y), zt], dim=-1))

    def diffusion(self, t, y):
        return self.sigma(t, y) * y


class GeometricSDE(_StableSDE):
    """Geometric stable neural SDE: ``dz / z = gamma(t, z~) dt + sigma(t) dW`` (Ito).

    Parameters as :class:`LangevinSDE`.

    Notes
    -----
    The layer integrates ``y = log z``, which by Ito's formula obeys
    ``dy = (gamma - sigma^2 / 2) dt + sigma dW`` (additive-in-state noise),
    and returns ``z = exp(y)``. This is the same SDE, but every discrete
    path stays strictly positive (Euler-Maruyama on ``z`` itself would not:
    ``z (1 + gamma h + sigma dW)`` changes sign when ``sigma dW < -1``).
    ``z(t_0) = exp(Linear(x_0)) > 0``.
    """

    def to_latent(self, y: torch.Tensor) -> torch.Tensor:
        return torch.exp(y)

    def drift(self, t, y, X):
        z = torch.exp(y)
        zt = self.controlled_path(t, z, X)
        g = self.gamma(torch.cat([_time_column(t, y), zt], dim=-1))
        return g - 0.5 * self.sigma(t, y) ** 2

    def diffusion(self, t, y):
        return self.sigma(t, y)


class NeuralSDE(_SplineSDE):
    """Naive neural SDE ``dz = f(t, z) dt + g(t, z) dW`` (the baseline of the stable SDEs).

    Same parameters and call as :class:`LangevinSDE`; the observations enter
    through the initial state only (no controlled path).
    ``g = sigma_max * sigmoid(net(t, z))`` mixes the channels of ``z``, so
    it is not diagonal noise in the strict sense of
    :class:`~opflow.solvers.sde.SDEProblem`: Euler-Maruyama with direct
    backprop (the default) is unaffected, Milstein and the stochastic
    adjoint would be inexact.

    Examples
    --------
    >>> import torch, opflow
    >>> model = opflow.NeuralSDE(input_channels=2, hidden_channels=8, output_channels=1,
    ...                          width=16)
    >>> tuple(model(torch.linspace(0, 1, 6), torch.randn(4, 6, 2)).shape)
    (4, 1)
    """

    uses_spline = False

    def __init__(self, input_channels: int, hidden_channels: int, output_channels: int,
                 width: int = 64, dt: float = 0.05, sigma_max: float = 1.0,
                 solver: Optional[SDEAlgorithm] = None):
        super().__init__(input_channels, hidden_channels, output_channels, width, dt, sigma_max,
                         solver)
        H = hidden_channels
        self.f = nn.Sequential(_mlp(1 + H, width, H), nn.Tanh())
        self.g = _mlp(1 + H, width, H)

    def drift(self, t, y, X):
        return self.f(torch.cat([_time_column(t, y), y], dim=-1))

    def diffusion(self, t, y):
        return torch.sigmoid(self.g(torch.cat([_time_column(t, y), y], dim=-1))) * self.sigma_max
