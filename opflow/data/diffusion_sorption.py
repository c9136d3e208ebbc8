"""PDEBench's 1-D diffusion-sorption problem, solved with opflow's stiff integrators.

``u_t = D / R(u) u_xx`` on ``x in [0, 1]``, ``t in [0, 500]``, with the
Freundlich retardation factor ``R(u) = 1 + ((1 - phi) / phi) rho_s k n_f
(u + 1e-6)^(n_f - 1)`` (``phi = 0.29``, ``rho_s = 2880``, ``k = 3.5e-4``,
``n_f = 0.874``, ``D = 5e-4``; the ``1e-6`` keeps ``R`` finite at ``u = 0``),
``u(0, t) = 1`` (the solubility) and the outflow condition ``u(1, t) = D
u_x(1, t)``. The discretisation is PDEBench's (Takamoto et al. 2022): ``nx``
cells of width ``dx = 1 / nx`` centred at ``(i + 1/2) dx``, the second
difference with a ghost cell ``u = 1`` on the left and ``D (u_{nx-2} -
u_{nx-1}) / dx`` on the right. The initial state is one value drawn from
``U(0, 0.2)`` in every cell (as PDEBench draws it), one draw per sample.

The method-of-lines system is solved batched (every sample its own steps)
with :class:`~opflow.solvers.ode.Rodas4`: the retardation factor makes it
stiff where ``u`` is small. :func:`generate` runs it as the recipe
``"diffusion-sorption"`` (``opflow generate diffusion-sorption``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import xarray as xr

from ..errors import InvalidArgumentError, SolverError
from ..field import Field
from ..grid import Grid
from .generation import COUNT, POSITIVE, RECIPES, Recipe, _dataset, sample_seed

__all__ = ["PARAMETERS", "diffusion_sorption_rhs", "retardation", "solve_diffusion_sorption"]

PARAMETERS: dict[str, float] = {"D": 5e-4, "phi": 0.29, "rho_s": 2880.0, "k": 3.5e-4,
                                "n_f": 0.874, "solubility": 1.0}
"""The PDEBench parameters of the problem."""


def retardation(u: torch.Tensor) -> torch.Tensor:
    """The Freundlich retardation factor ``R(u)`` (same shape as ``u``)."""
    p = PARAMETERS
    factor = (1 - p["phi"]) / p["phi"] * p["rho_s"] * p["k"] * p["n_f"]
    return 1.0 + factor * (u + 1e-6) ** (p["n_f"] - 1.0)


def diffusion_sorption_rhs(nx: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(t, u) = du/dt`` of the semi-discrete problem for states ``u (B, nx)``."""
    if isinstance(nx, bool) or not isinstance(nx, int) or nx < 3:
        raise InvalidArgumentError("resolution", "an integer number of cells >= 3", nx)
    dx = 1.0 / nx
    D, left = PARAMETERS["D"], PARAMETERS["solubility"]

    def f(t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        right = D * (u[..., -2:-1] - u[..., -1:]) / dx
        padded = torch.cat([torch.full_like(u[..., :1], left), u, right], dim=-1)
        lap = (padded[..., :-2] - 2.0 * u + padded[..., 2:]) / dx**2
        return D / retardation(u) * lap

    return f


def solve_diffusion_sorption(u0: torch.Tensor, t_end: float = 500.0, n_t: int = 51,
                             rtol: float = 1e-6, alg=None) -> torch.Tensor:
    """States at ``n_t`` equally spaced times in ``[0, t_end]``.

    Parameters
    ----------
    u0 : torch.Tensor, shape (B, nx)
        Initial cell values, in ``[0, 1]``.
    t_end : float
    n_t : int
        Saved times including ``t = 0``.
    rtol : float
        Relative tolerance of the integrator (``atol = 1e-3 rtol``).
    alg : optional
        A stiff algorithm (default ``Rodas4(rtol=rtol, atol=1e-3 * rtol)``).

    Returns
    -------
    torch.Tensor, shape (B, n_t, nx)

    Raises
    ------
    SolverError
        The integrator did not reach ``t_end``.
    """
    from ..problems import ODEProblem
    from ..solve import solve
    from ..solvers.ode import Rodas4

    if not isinstance(u0, torch.Tensor) or u0.ndim != 2:
        raise InvalidArgumentError("u0", "a tensor of shape (B, nx)", u0)
    if isinstance(t_end, bool) or not isinstance(t_end, (int, float)) or not (
            np.isfinite(t_end) and t_end > 0):
        raise InvalidArgumentError("t_end", "a positive finite time", t_end)
    if isinstance(n_t, bool) or not isinstance(n_t, int) or n_t < 2:
        raise InvalidArgumentError("n_t", "an integer >= 2", n_t)
    alg = alg or Rodas4(rtol=rtol, atol=1e-3 * rtol)
    ts = torch.linspace(0.0, float(t_end), n_t, dtype=torch.float64).tolist()
    prob = ODEProblem(diffusion_sorption_rhs(u0.shape[1]), u0, (0.0, float(t_end)),
                      batched=True)
    with torch.no_grad():
        sol = solve(prob, alg, saveat=ts)
    if not sol.success:
        raise SolverError(f"diffusion-sorption: the integrator stopped with {sol.retcode}")
    return sol.u.transpose(0, 1)


def _recipe(indices, resolution: int, seed: int, t_end: float = 500.0, n_t: int = 51,
            rtol: float = 1e-6) -> xr.Dataset:
    draws = [np.random.default_rng(sample_seed(seed, i)).uniform(0.0, 0.2) for i in indices]
    u0 = torch.tensor(draws, dtype=torch.float64)[:, None].expand(len(draws), resolution)
    u = solve_diffusion_sorption(u0.contiguous(), t_end, n_t, rtol)
    grid = Grid.uniform(x=(0.5 / resolution, 1.0 - 0.5 / resolution, resolution))
    ds = _dataset({"u0": Field(u0[:, None], grid, "u0"),
                   "u": Field(u[:, :, None], grid, "u")}, indices)
    ds = ds.rename({"batch_0": "t"})
    ds = ds.assign_coords(t=("t", np.linspace(0.0, t_end, n_t), {"long_name": "time"}))
    ds.attrs.update({f"param_{k}": v for k, v in PARAMETERS.items()})
    ds.attrs["equation"] = "u_t = D / R(u) u_xx, R(u) = 1 + (1 - phi) / phi rho_s k n_f u^(n_f - 1)"
    return ds


RECIPES["diffusion-sorption"] = Recipe(
    "diffusion-sorption", _recipe, 128,
    "PDEBench 1-D diffusion-sorption u(t, x), stiff (Rodas4, method of lines)",
    {"t_end": POSITIVE, "n_t": COUNT, "rtol": POSITIVE},
    lambda res, opts: (1 + opts["n_t"]) * res)
