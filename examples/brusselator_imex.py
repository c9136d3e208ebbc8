"""A stiff reaction-diffusion system on a grid: two opflow solvers composed.

The 2-D Brusselator on the periodic unit square::

    u_t = 1 + u^2 v - 4.4 u + alpha Lap u + f,    v_t = 3.4 u - u^2 v + alpha Lap v

with alpha = 10 (the diffusion's fastest rate, 8 alpha / h^2, is 1.3e6 at
128^2; an explicit method would need a step below 2e-6). ``KenCarp4`` treats
the diffusion implicitly and the reaction explicitly; its implicit stages are
solved by ``NewtonKrylov`` (GMRES on Jacobian-vector products, no Jacobian
formed), preconditioned by two multigrid V-cycles of ``I - c Lap``
(``multigrid_preconditioner``). The state is a ``Field``; the result is
written to netCDF.

Run ``python examples/brusselator_imex.py [N] [OUT.nc]`` (N = 64 by default,
about 10 s on one core; 128 about 20 s, measured on a 2-core machine). The benchmark
``benchmarks/bench_reaction_diffusion.py`` times the same solve against
scipy's BDF.
"""

from __future__ import annotations

import sys

import torch

from opflow import Field, Grid, SplitODEProblem, solve
from opflow.solvers.nonlinear import NewtonKrylov
from opflow.solvers.ode import KenCarp4
from opflow.solvers.pde import multigrid_preconditioner

ALPHA = 10.0


def brusselator(n: int) -> tuple[SplitODEProblem, Grid]:
    """The split problem on an ``n x n`` periodic grid, ``t in [0, 1]``."""
    grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), periodic=("x", "y"))
    x, y = grid.mesh(torch.float64)
    h = grid.spacing[0]
    source = 5.0 * (((x - 0.3) ** 2 + (y - 0.6) ** 2) <= 0.01).to(torch.float64)

    def diffusion(t, w):  # stiff: implicit
        v = w.values
        lap = (v.roll(1, -1) + v.roll(-1, -1) + v.roll(1, -2) + v.roll(-1, -2) - 4 * v) / h**2
        return w.with_values(ALPHA * lap)

    def reaction(t, w):  # non-stiff: explicit
        u, v = w.values[:, 0], w.values[:, 1]
        uuv = u * u * v
        return w.with_values(torch.stack([1 + uuv - 4.4 * u + source, 3.4 * u - uuv], 1))

    w0 = torch.stack([22.0 * (y * (1 - y)) ** 1.5, 27.0 * (x * (1 - x)) ** 1.5])[None]
    u0 = Field(w0, grid, names=("u", "v"))
    return SplitODEProblem(diffusion, reaction, u0, (0.0, 1.0), batched=True), grid


def main(n: int = 64, out: str | None = None, rtol: float = 1e-4):
    """Solve at ``n x n``; returns the Solution (and writes ``out`` when given)."""
    prob, grid = brusselator(n)
    alg = KenCarp4(rtol=rtol, atol=rtol, stage_solver=NewtonKrylov(linear_rtol=1e-3),
                   preconditioner=lambda hg: multigrid_preconditioner(grid, hg * ALPHA,
                                                                      bc="periodic"))
    with torch.no_grad():
        sol = solve(prob, alg, saveat=[0.0, 0.5, 1.0])
    print(f"{sol.retcode}: {sol.stats.steps} steps, {sol.stats.nfe} right-hand sides, "
          f"{sol.stats.wall_time:.1f} s")
    if out is not None:
        sol.to_xarray().to_netcdf(out)
        print(f"wrote {out}")
    return sol


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 64, sys.argv[2] if len(sys.argv) > 2 else None)
