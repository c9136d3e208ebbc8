"""Physics-informed solvers: PINN step time and the convection failure-mode study.

1. Adam step time of a PINN on 2D Poisson (-Lap u = 2 pi^2 sin(pi x) sin(pi y) on the
   unit square, u = 0 on the boundary), 3x50 tanh MLP, 2000 interior + 400 boundary
   points: the DeepXDE setting of ANCHORS.md (about 13.5 ms per step). Measured as the
   difference between solves with 20 and 0 Adam iterations, divided by 20.
2. Convection failure modes (Krishnapriyan et al. 2021): u_t + beta u_x = 0,
   u(x, 0) = sin x, periodic on [0, 2 pi) x [0, 1], for beta = 1, 10, 20, 30, 40.
   Relative L2 error against the exact sin(x - beta t) on a 51 x 128 (t, x) grid of
   - a vanilla PINN: 3x32 tanh MLP, 1000 interior points, 128 per condition (initial
     condition weight 10, periodic in x), 500 Adam steps (lr 3e-3) then at most 1000
     L-BFGS iterations;
   - an LPINN (Mojgani et al.): two 2x32 tanh networks (characteristic x and u),
     500 points, 300 Adam steps (lr 3e-3) then at most 100 L-BFGS iterations.
   The budget is the same for every beta; seed 0, one CPU thread, one run per case.
   Reduced size for a 2-core CPU; the paper trains longer on larger networks, so the
   published numbers (vanilla and curriculum PINN) are for reference, not a like-for-like
   match. The plot is written to results/pinn_convection.png.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS_DIR, time_interleaved, write_result  # noqa: E402

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

BETAS = (1.0, 10.0, 20.0, 30.0, 40.0)
# Krishnapriyan et al. 2021, relative L2 error (ANCHORS.md).
PUBLISHED_PINN = {1.0: 7.84e-3, 10.0: 1.08e-2, 20.0: 0.750, 30.0: 0.897, 40.0: 0.961}
PUBLISHED_CURRICULUM = {20.0: 9.84e-3, 30.0: 2.02e-2, 40.0: 5.33e-2}


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
                           iterations=500, lbfgs_iterations=1000))
    pinn_s = time.perf_counter() - start
    pinn_err = _error(sol.u(grid), beta, grid)
    torch.manual_seed(0)
    start = time.perf_counter()
    sol = solve(ConvectionProblem(beta), LPINN(_mlp(3, 32, 2), _mlp(3, 32, 2), n_interior=500,
                                               lr=3e-3, iterations=300, lbfgs_iterations=100))
    lpinn_s = time.perf_counter() - start
    lpinn_err = _error(sol.u(grid), beta, grid)
    out = {"beta": beta, "pinn_rel_l2": pinn_err, "pinn_seconds": pinn_s,
           "lpinn_rel_l2": lpinn_err, "lpinn_seconds": lpinn_s,
           "published_pinn_rel_l2": PUBLISHED_PINN[beta]}
    if beta in PUBLISHED_CURRICULUM:
        out["published_curriculum_rel_l2"] = PUBLISHED_CURRICULUM[beta]
    return out


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = [r["beta"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(betas, [r["pinn_rel_l2"] for r in rows], "o-", color="C0",
            label="PINN (this run)")
    ax.plot(betas, [r["lpinn_rel_l2"] for r in rows], "s-", color="C2",
            label="LPINN (this run)")
    ax.plot(list(PUBLISHED_PINN), list(PUBLISHED_PINN.values()), "o--", color="C0",
            alpha=0.5, mfc="none", label="PINN (Krishnapriyan et al.)")
    ax.plot(list(PUBLISHED_CURRICULUM), list(PUBLISHED_CURRICULUM.values()), "^--",
            color="C1", alpha=0.7, mfc="none", label="curriculum PINN (Krishnapriyan et al.)")
    ax.set_yscale("log")
    ax.set_xticks(betas)
    ax.set_xlabel("convection speed beta")
    ax.set_ylabel("relative L2 error on the (t, x) grid")
    ax.set_title("Convection u_t + beta u_x = 0, u(x, 0) = sin x")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def main() -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    grid = Grid.uniform(t=(0.0, 1.0, 51), x=(0.0, 2 * math.pi, 128), periodic=("x",))
    results = {"poisson2d_step": _poisson_step_ms()}
    rows = []
    for beta in BETAS:
        rows.append(_convection(beta, grid))
        results[f"convection_beta{beta:g}"] = rows[-1]
    for name, r in results.items():
        print(name, {k: round(v, 4) for k, v in r.items()})
    print(f"{'beta':>5} {'PINN':>10} {'LPINN':>10} {'published':>10}")
    for r in rows:
        print(f"{r['beta']:5g} {r['pinn_rel_l2']:10.3e} {r['lpinn_rel_l2']:10.3e} "
              f"{r['published_pinn_rel_l2']:10.3e}")
    _plot(rows, RESULTS_DIR / "pinn_convection.png")
    results["total_seconds"] = {"seconds": time.perf_counter() - start}
    print(f"total {results['total_seconds']['seconds']:.1f} s")
    write_result("pinn", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
