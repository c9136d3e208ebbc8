"""Physics-informed solvers: PINN step time and convection accuracy, PINN vs LPINN.

1. Adam step time of a PINN on 2D Poisson (-Lap u = 2 pi^2 sin(pi x) sin(pi y) on the
   unit square, u = 0 on the boundary), 3x50 tanh MLP, 2000 interior + 400 boundary
   points: the DeepXDE setting of ANCHORS.md (about 13.5 ms per step). Measured as the
   difference between solves with 20 and 0 Adam iterations, divided by 20.
2. Convection u_t + beta u_x = 0, u(x, 0) = sin x, periodic on [0, 2 pi) x [0, 1]
   (Krishnapriyan et al. 2021): relative L2 error on a 51 x 128 (t, x) grid of a vanilla
   PINN (3x32 tanh, 1000 interior points, 128 per condition) and of an LPINN (two 2x32
   tanh networks, 500 points), each 300 (LPINN) / 500 (PINN) Adam steps and L-BFGS.
   Reduced size for a 2-core CPU; the paper trains longer on larger networks.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import time_interleaved, write_result  # noqa: E402

from opflow import Grid, solve  # noqa: E402
from opflow.solvers.pinn import (  # noqa: E402
    LPINN,
    PINN,
    ConvectionProblem,
    Dirichlet,
    Initial,
    Interval,
    Periodic,
    PINNProblem,
    Rectangle,
    TimeSpace,
    d,
    laplacian,
)


def _mlp(dim_in: int, width: int, depth: int) -> torch.nn.Module:
    layers, n = [], dim_in
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width), torch.nn.Tanh()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1))


def _poisson_step_ms() -> dict:
    def residual(x, u):
        return -laplacian(u, x) - 2 * math.pi ** 2 * torch.sin(math.pi * x["x"]) * torch.sin(
            math.pi * x["y"])

    prob = PINNProblem(residual, Rectangle({"x": (0.0, 1.0), "y": (0.0, 1.0)}), [Dirichlet(0.0)])
    net = _mlp(2, 50, 3)

    def run(iterations: int):
        return lambda: solve(prob, PINN(net, n_interior=2000, n_boundary=400,
                                        iterations=iterations))

    t = time_interleaved({"0": run(0), "20": run(20)}, repeat=5, warmup=1)
    step = (t["20"]["median_ms"] - t["0"]["median_ms"]) / 20
    return {"adam_step_ms": step, "deepxde_anchor_ms": 13.5}


def _error(f, beta: float, grid: Grid) -> float:
    t, x = grid.mesh()
    exact = torch.sin(x - beta * t)
    return float((f.values[0] - exact).norm() / exact.norm())


def _convection(beta: float, grid: Grid) -> dict:
    torch.manual_seed(0)
    domain = TimeSpace((0.0, 1.0), Interval(0.0, 2 * math.pi))
    prob = PINNProblem(lambda x, u: d(u, x, "t") + beta * d(u, x, "x"), domain,
                       [Initial(lambda x: torch.sin(x["x"]), weight=10.0), Periodic("x")])
    start = time.perf_counter()
    sol = solve(prob, PINN(_mlp(2, 32, 3), n_interior=1000, n_boundary=128, lr=3e-3,
                           iterations=500, lbfgs_iterations=300))
    pinn_s = time.perf_counter() - start
    pinn_err = _error(sol.u(grid), beta, grid)
    torch.manual_seed(0)
    start = time.perf_counter()
    sol = solve(ConvectionProblem(beta), LPINN(_mlp(3, 32, 2), _mlp(3, 32, 2), n_interior=500,
                                               lr=3e-3, iterations=300, lbfgs_iterations=100))
    lpinn_s = time.perf_counter() - start
    lpinn_err = _error(sol.u(grid), beta, grid)
    return {"pinn_rel_l2": pinn_err, "pinn_seconds": pinn_s,
            "lpinn_rel_l2": lpinn_err, "lpinn_seconds": lpinn_s}


def main() -> dict:
    torch.set_num_threads(1)
    grid = Grid.uniform(t=(0.0, 1.0, 51), x=(0.0, 2 * math.pi, 128), periodic=("x",))
    results = {"poisson2d_step": _poisson_step_ms()}
    for beta in (1.0, 30.0):
        results[f"convection_beta{beta:g}"] = _convection(beta, grid)
    for name, r in results.items():
        print(name, {k: round(v, 4) for k, v in r.items()})
    write_result("pinn", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
