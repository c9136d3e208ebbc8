"""Diagnostics behind the hard-constraint notes (benchmarks/NOTES.md); not part of `make bench`.

Run ``.venv/bin/python benchmarks/diagnose_hard_constraints.py [--ladder]
[--ns-steps]`` (one thread). It prints:

* the residual loss of the true diffusion-sorption solutions, and of u = u0,
  on the benchmark's test set;
* the true solution's loss at several resolutions, and where its squared PDE
  residual sits (first three time nodes, first 10 % of x);
* the Navier-Stokes true residual against the zero field's, and how far w
  moves from w0 (norm ratio per time);
* LM iterations and Jacobians of one prediction, hard against 4 experts, at
  512 x 80;
* with ``--ns-steps`` (about 2 minutes): the time of a Navier-Stokes training
  step of 4 samples, hard against 2 x 2 experts, at the benchmark's settings;
* with ``--ladder`` (about 5 minutes): soft at 80 epochs and hard at 20 and 80
  epochs, seed 0: test error and the residual loss of the prediction.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_hard_constraints as B  # noqa: E402

from opflow import Field, Grid  # noqa: E402
from opflow.solvers.pinn import GridCoordinates  # noqa: E402


def _loss(layer, u: torch.Tensor, a: Field, grid: Grid) -> float:
    """The layer's residual loss of the given fields ``u (n, nx, nt)``."""
    f = Field(u[:, None].to(torch.float64), grid)
    return float(layer.residual_loss(f, f, a.with_values(a.values.double())))


def true_solution_losses() -> None:
    size = B.SIZE
    nx, nt = size["nx"], size["nt"]
    u0, u = B.dataset(size["n_test"], nx, nt, seed=10_000)
    grid = B.grid_for(nx, nt)
    a = B.inputs(u0, grid, B.T_END)
    probe = B.make_layer("hard", 0, size)
    const = u0.reshape(-1, 1, 1).expand(-1, nx, nt)
    print(f"test set {nx}x{nt}: loss of the true solution {_loss(probe, u, a, grid):.4g}, "
          f"of u = u0 {_loss(probe, const, a, grid):.4g}")
    for nx, nt in ((32, 21), (32, 41), (32, 81), (64, 51), (128, 101)):
        u0, u = B.dataset(10, nx, nt, seed=10_000)
        grid = B.grid_for(nx, nt)
        a = B.inputs(u0, grid, B.T_END)
        layer = B.make_layer("hard", 0, {**size, "modes": (min(8, nx // 2), min(5, nt // 2))})
        x = GridCoordinates(grid, 10, dtype=torch.float64)
        r2 = B.sorption(x, u.reshape(-1, 1).double()).reshape(10, nx, nt) ** 2
        print(f"{nx}x{nt}: true loss {_loss(layer, u, a, grid):.3g}; squared PDE residual "
              f"in t <= 2 dt {float(r2[..., :3].sum() / r2.sum()):.4f}, in the first 10 % "
              f"of x {float(r2[:, :max(1, nx // 10)].sum() / r2.sum()):.3f}")


def navier_stokes_checks() -> None:
    ns = B.NS_SIZE
    n, nt = ns["n"], ns["nt"]
    grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), t=(0.0, float(nt - 1), nt),
                        periodic=("x", "y"))
    w0, w = B.ns_dataset(ns["n_test"], ns, seed=10_000)
    x = GridCoordinates(grid, w.shape[0], dtype=torch.float64)
    true = float((B.vorticity(x, w.reshape(-1, 1)) ** 2).mean())
    zero = float((B.vorticity(x, torch.zeros_like(w).reshape(-1, 1)) ** 2).mean())
    growth = (w[..., -1].flatten(1).norm(dim=1) / w0.flatten(1).norm(dim=1)).mean()
    print(f"navier-stokes: mean squared residual true {true:.3g}, zero field {zero:.3g}; "
          f"|w(15)| / |w0| = {float(growth):.1f}")


def solver_counts() -> None:
    grid = B.grid_for(*B.SIZE["time_grid"])
    a = B.inputs(torch.tensor([0.1], dtype=torch.float64), grid, B.T_END)
    for points in B.SIZE["time_points"]:
        for kind in ("hard", "MoE"):
            layer = B.make_layer(kind, 0, B.SIZE, points=points)
            with torch.no_grad():
                layer(a)
            st = layer.last_solution.stats
            print(f"{points} points, {kind}: LM iterations {st.iterations}, residual "
                  f"evaluations {st.nfe}, Jacobians {st.jacobians}")


def ns_step_times() -> None:
    ns = B.NS_SIZE
    n, nt = ns["n"], ns["nt"]
    grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), t=(0.0, float(nt - 1), nt),
                        periodic=("x", "y"))
    w0, _ = B.ns_dataset(ns["batch"], ns, seed=0)
    x, y, t = grid.mesh(torch.float64)
    shape = (w0.shape[0], *grid.shape)
    a = Field(torch.stack([w0[..., None].expand(shape), x.expand(shape), y.expand(shape),
                           (t / (nt - 1)).expand(shape)], 1).float(), grid)
    for kind, extra in (("hard", {}), ("MoE", {"partition": B.Partition(x=2, y=2)})):
        torch.manual_seed(0)
        basis = B.InitialValueBasis(B.FNO(4, B.N_BASIS - 1, modes=ns["modes"],
                                          width=ns["width"], n_layers=ns["layers"],
                                          positional=False))
        layer = B.HardConstraint(basis, B.vorticity, B.N_BASIS, points=ns["points"],
                                 ridge=1e-8, conditions=[B.initial_condition()], halo=None,
                                 solver=B.LevenbergMarquardt(abstol=ns["tol"],
                                                             reltol=ns["tol"]),
                                 seed=0, **extra)
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            out = layer(a)
            layer.residual_loss(out, out, a).backward()
            seconds.append(time.perf_counter() - start)
        print(f"navier-stokes step of {ns['batch']} samples, {kind}: {seconds[-1]:.1f} s "
              f"(LM iterations {layer.last_solution.stats.iterations})")


def ladder() -> None:
    size = B.SIZE
    nx, nt = size["nx"], size["nt"]
    u0_tr, _ = B.dataset(size["n_train"], nx, nt, seed=0)
    u0_te, u_te = B.dataset(size["n_test"], nx, nt, seed=10_000)
    grid = B.grid_for(nx, nt)
    a_tr, a_te = B.inputs(u0_tr, grid, B.T_END), B.inputs(u0_te, grid, B.T_END)
    for kind, epochs in (("soft", 80), ("hard", 20), ("hard", 80)):
        layer, seconds = B.train(kind, 0, a_tr, {**size, "epochs": epochs})
        err = B.rel_l2(layer, a_te, u_te)
        with torch.no_grad():
            pred = layer(a_te).values[:, 0]
        print(f"{kind} {epochs} epochs, seed 0: rel L2 {err:.2f} %, loss of the prediction "
              f"{_loss(layer, pred, a_te, grid):.3g} ({seconds:.0f} s)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    true_solution_losses()
    navier_stokes_checks()
    solver_counts()
    if "--ns-steps" in sys.argv[1:]:
        ns_step_times()
    if "--ladder" in sys.argv[1:]:
        ladder()
