"""Kuramoto-Sivashinsky trajectories (``opflow generate kuramoto-sivashinsky``).

``u_t + u u_x + u_xx + u_xxxx = 0`` on a periodic domain of length ``64 pi``
(the DyMixOp set-up; ``--option length=100.53`` or any other), 256 points by
default. Every sample starts from uniform noise in ``[-1, 1]`` at each point
of the solver's grid (``fine_factor`` times finer than the output, noise
drawn from the sample's own seed), runs to ``t_start`` (burn-in onto the
chaotic attractor; 100 as in DyMixOp) and is saved every ``save_dt`` for
``n_saves`` snapshots: variables ``u0`` (the state at ``t_start``, dims
``(sample, x)``) and ``u`` (dims ``(sample, t, x)``, ``t = t_start + k
save_dt``). Solved with :class:`~opflow.PseudoSpectral` (ETDRK4, ``dt = 1/4``,
2/3-rule dealiasing) on
:class:`~opflow.solvers.pde.KuramotoSivashinskyProblem`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from ..errors import SolverError
from ..field import Field
from ..grid import Grid
from .generation import COUNT, POSITIVE, RECIPES, Option, Recipe, _dataset, sample_seed

__all__: list[str] = []

_NON_NEGATIVE = Option("a non-negative finite number",
                      lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) and v >= 0)


def _recipe(indices, resolution: int, seed: int, length: float = 64 * math.pi,
            t_start: float = 100.0, n_saves: int = 20, save_dt: float = 1.0, dt: float = 0.25,
            fine_factor: int = 1) -> xr.Dataset:
    from .. import solve
    from ..solvers.pde import KuramotoSivashinskyProblem, PseudoSpectral

    n_fine = resolution * fine_factor
    fine = Grid.uniform(x=(0.0, float(length), n_fine), periodic=("x",))
    noise = []
    for i in indices:
        gen = torch.Generator().manual_seed(sample_seed(seed, i))
        noise.append(2.0 * torch.rand(n_fine, generator=gen, dtype=torch.float64) - 1.0)
    u0 = Field(torch.stack(noise)[:, None], fine, "u")
    times = [float(t_start) + k * float(save_dt) for k in range(n_saves + 1)]
    prob = KuramotoSivashinskyProblem(u0, tspan=(0.0, times[-1]))
    sol = solve(prob, PseudoSpectral(dt=dt, scheme="etdrk4"), saveat=times)
    if not sol.success:
        raise SolverError(f"kuramoto-sivashinsky: the solve ended with {sol.retcode} at "
                          f"dt={dt:g}; use a smaller dt")
    sub = slice(None, None, fine_factor)
    grid = Grid.uniform(x=(0.0, float(length), resolution), periodic=("x",))
    traj = sol.u.values[..., sub]  # (K, sample, 1, n)
    ds = _dataset({"u0": Field(traj[0], grid, "u0"),
                   "u": Field(traj[1:].transpose(0, 1), grid, "u")}, indices)
    ds = ds.rename({"batch_0": "t"})
    ds = ds.assign_coords(t=("t", np.asarray(times[1:]), {"long_name": "time"}))
    ds.attrs["equation"] = "u_t + u u_x + u_xx + u_xxxx = 0, periodic"
    return ds


RECIPES["kuramoto-sivashinsky"] = Recipe(
    "kuramoto-sivashinsky", _recipe, 256,
    "1-D Kuramoto-Sivashinsky trajectories after a burn-in (ETDRK4, L = 64 pi)",
    {"length": POSITIVE, "t_start": _NON_NEGATIVE, "n_saves": COUNT, "save_dt": POSITIVE,
     "dt": POSITIVE, "fine_factor": COUNT},
    lambda res, opts: (1 + opts["n_saves"]) * res)
