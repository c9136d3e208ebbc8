"""Physics-informed solvers: PINN step time, derivative paths, the convection failure-mode
study and viscous Burgers.

1. Adam step time of a PINN on 2D Poisson (-Lap u = 2 pi^2 sin(pi x) sin(pi y) on the
   unit square, u = 0 on the boundary), 3x50 tanh MLP, 2000 interior + 400 boundary
   points: the DeepXDE setting of ANCHORS.md (about 13.5 ms per step on another machine).
   Measured as the difference between runs of 25 and 5 Adam iterations, divided by 20,
   interleaved in the same run with DeepXDE (PyTorch backend, same network, points,
   optimiser and learning rate) when deepxde is installed. opflow twice: the default
   (batched autograd) and PINN(compile=True) (Taylor-mode derivatives compiled by
   torch.compile; the warm-up run compiles, so compile time is not in the step time).
1b. Derivative paths: the Laplacian of the same 3x50 tanh MLP at 2000 points plus the
   backward pass of its mean-square residual, by batched autograd (opflow's default), by
   opflow's Taylor mode (opflow/solvers/pinn/jet.py) eager and compiled (on points that
   require grad, as PINN passes them: the output stays differentiable in them), and by
   torch.func (vmap of hessian, of jacfwd(jacrev), and of forward-over-forward jvp).
2. Convection failure modes (Krishnapriyan et al. 2021): u_t + beta u_x = 0,
   u(x, 0) = sin x, periodic on [0, 2 pi) x [0, 1], for beta = 1, 10, 20, 30, 40.
   Relative L2 error against the exact sin(x - beta t) on a 51 x 128 (t, x) grid of
   - a vanilla PINN: 3x32 tanh MLP, 1000 interior points, 128 per condition (initial
     condition weight 10, periodic in x), 500 Adam steps (lr 3e-3) then at most 1000
     L-BFGS iterations;
   - an LPINN (Mojgani et al.) with the same budget: two 3x32 tanh networks
     (characteristic x and u, each the size of the PINN's), 1000 points, 500 Adam
     steps (lr 3e-3) then at most 1000 L-BFGS iterations.
   The budget is the same for every beta; seed 0, one CPU thread, one run per case.
   Reduced size for a 2-core CPU; the paper trains longer on larger networks, so the
   published numbers (vanilla and curriculum PINN) are for reference, not a like-for-like
   match. The plot is written to results/pinn_convection.png.
3. Viscous Burgers u_t + u u_x = nu u_xx, nu = 0.01/pi, u0 = -sin(pi x), periodic on
   [-1, 1), up to t = 0.3 (before the inviscid shock time 1/pi) and t = 0.5 (after it).
   Reference: opflow's PseudoSpectral solver (ETDRK4, 2048 modes, dt 5e-5; 1024 modes
   differ by < 2e-5), compared on an 11 x 256 (t, x) grid (relative L2). Same budget
   for both: 3x32 tanh networks (LPINN: two of them, inputs (cos, sin, t)), 1000
   collocation points, 1000 Adam steps (lr 3e-3) then at most 1000 L-BFGS iterations;
   the PINN has 128 points per condition (initial, weight 10, and periodic in x).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch
from torch.func import hessian, jacfwd, jacrev, jvp, vmap

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS_DIR, time_interleaved, write_result  # noqa: E402

from opflow import Field, Grid, solve  # noqa: E402
from opflow.solvers.pde.spectral import BurgersProblem, PseudoSpectral  # noqa: E402
from opflow.solvers.pinn import (  # noqa: E402
    LPINN,
    PINN,
    ConvectionProblem,
    Coordinates,
    Dirichlet,
    Initial,
    Interval,
    Periodic,
    PINNProblem,
    Rectangle,
    TimeSpace,
    ViscousBurgersProblem,
    d,
    laplacian,
)
from opflow.solvers.pinn.jet import MLPJet  # noqa: E402

BETAS = (1.0, 10.0, 20.0, 30.0, 40.0)
# Krishnapriyan et al. 2021, relative L2 error (ANCHORS.md).
PUBLISHED_PINN = {1.0: 7.84e-3, 10.0: 1.08e-2, 20.0: 0.750, 30.0: 0.897, 40.0: 0.961}
PUBLISHED_CURRICULUM = {20.0: 9.84e-3, 30.0: 2.02e-2, 40.0: 5.33e-2}
BURGERS_T = (0.3, 0.5)


def _mlp(dim_in: int, width: int, depth: int) -> torch.nn.Module:
    layers, n = [], dim_in
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width), torch.nn.Tanh()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1))


def _poisson_source(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 * math.pi ** 2 * torch.sin(math.pi * x) * torch.sin(math.pi * y)


def _deepxde_runner():
    """``n -> callable`` running ``n`` DeepXDE Adam steps on the Poisson case, or None."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        import deepxde as dde
    except ImportError:
        return None
    torch.set_num_threads(1)  # deepxde may have changed it on import

    def pde(x, y):
        lap = dde.grad.hessian(y, x, i=0, j=0) + dde.grad.hessian(y, x, i=1, j=1)
        return -lap - _poisson_source(x[:, 0:1], x[:, 1:2])

    geom = dde.geometry.Rectangle([0.0, 0.0], [1.0, 1.0])
    bc = dde.icbc.DirichletBC(geom, lambda x: 0.0, lambda x, on_boundary: on_boundary)
    data = dde.data.PDE(geom, pde, bc, num_domain=2000, num_boundary=400)
    model = dde.Model(data, dde.nn.FNN([2, 50, 50, 50, 1], "tanh", "Glorot normal"))
    model.compile("adam", lr=1e-3, verbose=0)
    return lambda n: lambda: model.train(iterations=n, display_every=10 ** 6, verbose=0)


def _poisson_step_ms() -> dict:
    def residual(x, u):
        return -laplacian(u, x) - _poisson_source(x["x"], x["y"])

    prob = PINNProblem(residual, Rectangle({"x": (0.0, 1.0), "y": (0.0, 1.0)}), [Dirichlet(0.0)])
    net = _mlp(2, 50, 3)

    def run(iterations: int, compile: bool = False):
        return lambda: solve(prob, PINN(net, n_interior=2000, n_boundary=400,
                                        iterations=iterations, compile=compile))

    cases = {"opflow5": run(5), "opflow25": run(25),
             "compiled5": run(5, True), "compiled25": run(25, True)}
    dde_run = _deepxde_runner()
    if dde_run is not None:
        cases.update({"deepxde5": dde_run(5), "deepxde25": dde_run(25)})
    t = time_interleaved(cases, repeat=5, warmup=1)  # the warm-up run compiles

    def step_ms(name: str) -> float:
        return (t[f"{name}25"]["median_ms"] - t[f"{name}5"]["median_ms"]) / 20

    out = {"adam_step_ms": step_ms("opflow"), "adam_step_compiled_ms": step_ms("compiled"),
           "deepxde_anchor_ms": 13.5}
    if dde_run is not None:
        out["deepxde_step_ms"] = step_ms("deepxde")
        out["speedup_vs_deepxde"] = out["deepxde_step_ms"] / out["adam_step_ms"]
        out["speedup_compiled_vs_deepxde"] = out["deepxde_step_ms"] / out["adam_step_compiled_ms"]
    return out


def _laplacian_paths() -> dict:
    """Laplacian + backward of a 3x50 tanh MLP at 2000 points by each derivative path."""
    torch.manual_seed(0)
    net = _mlp(2, 50, 3)
    pts = torch.rand(2000, 2)
    source = _poisson_source(pts[:, 0], pts[:, 1])

    def batched_autograd() -> torch.Tensor:
        x = pts.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        return sum(torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i]
                   for i in range(2))

    def single(p: torch.Tensor) -> torch.Tensor:
        return net(p[None])[0, 0]

    def second_jvp(p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return jvp(lambda q: jvp(single, (q,), (e,))[1], (p,), (e,))[1]

    def taylor(evaluator: MLPJet):
        def run() -> torch.Tensor:  # points differentiable, as PINN passes them
            x = Coordinates(pts.clone().requires_grad_(True), ("x", "y"))
            return laplacian(evaluator(x.values), x)
        return run

    eye = torch.eye(2)
    paths = {
        "taylor": taylor(MLPJet(net)),
        "taylor_compiled": taylor(MLPJet(net, compile=True)),
        "batched_autograd": batched_autograd,
        "func_hessian": lambda: vmap(hessian(single))(pts).diagonal(dim1=1, dim2=2).sum(1),
        "func_jacfwd_jacrev": lambda: vmap(jacfwd(jacrev(single)))(pts).diagonal(
            dim1=1, dim2=2).sum(1),
        "func_jvp_jvp": lambda: sum(vmap(second_jvp, in_dims=(0, None))(pts, eye[i])
                                    for i in range(2)),
    }
    ref = batched_autograd().detach()
    for name, fn in paths.items():  # every path computes the same Laplacian
        assert torch.allclose(fn().detach().reshape(-1), ref, atol=1e-4), name

    def step(fn):
        def run():
            net.zero_grad(set_to_none=True)
            (fn().reshape(-1) + source).pow(2).mean().backward()
        return run

    t = time_interleaved({k: step(fn) for k, fn in paths.items()}, repeat=15, warmup=2)
    out = {f"{k}_ms": v["median_ms"] for k, v in t.items()}
    uncompiled = [k for k in t if k != "taylor_compiled"]
    out["fastest_uncompiled_is_batched_autograd"] = float(
        min(uncompiled, key=lambda k: t[k]["median_ms"]) == "batched_autograd")
    return out


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
    sol = solve(ConvectionProblem(beta), LPINN(_mlp(3, 32, 3), _mlp(3, 32, 3), n_interior=1000,
                                               lr=3e-3, iterations=500, lbfgs_iterations=1000))
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


BURGERS_NU = 0.01 / math.pi


def _burgers_reference(t_end: float, ts: list[float]) -> torch.Tensor:
    """Spectral solution on 2048 points, subsampled to 256: shape (len(ts), 256)."""
    grid = Grid.uniform(x=(-1.0, 1.0, 2048), periodic=("x",))
    (x,) = grid.mesh(dtype=torch.float64)
    u0 = Field(-torch.sin(math.pi * x)[None], grid)
    sol = solve(BurgersProblem(u0, BURGERS_NU, (0.0, t_end)),
                PseudoSpectral(dt=5e-5, scheme="etdrk4"), saveat=ts)
    return sol.u.values[:, 0, ::8]


def _burgers(t_end: float) -> dict:
    ts = [t_end * k / 10 for k in range(11)]
    ref = _burgers_reference(t_end, ts)
    grid = Grid.uniform(t=(0.0, t_end, 11), x=(-1.0, 1.0, 256), periodic=("x",))

    def err(f) -> float:
        v = f.values[0].double()
        return float((v - ref).norm() / ref.norm())

    budget = dict(lr=3e-3, iterations=1000, lbfgs_iterations=1000)
    torch.manual_seed(0)
    start = time.perf_counter()
    sol = solve(ViscousBurgersProblem(BURGERS_NU, tspan=(0.0, t_end)),
                LPINN(_mlp(3, 32, 3), _mlp(3, 32, 3), n_interior=1000, **budget))
    lpinn_s, lpinn_err = time.perf_counter() - start, err(sol.u(grid))

    def residual(x, u):
        return d(u, x, "t") + u * d(u, x, "x") - BURGERS_NU * d(u, x, "x", 2)

    domain = TimeSpace((0.0, t_end), Interval(-1.0, 1.0))
    prob = PINNProblem(residual, domain, [
        Initial(lambda x: -torch.sin(math.pi * x["x"]), weight=10.0), Periodic("x")])
    torch.manual_seed(0)
    start = time.perf_counter()
    sol = solve(prob, PINN(_mlp(2, 32, 3), n_interior=1000, n_boundary=128, **budget))
    pinn_s, pinn_err = time.perf_counter() - start, err(sol.u(grid))
    return {"t_end": t_end, "nu": BURGERS_NU, "pinn_rel_l2": pinn_err, "pinn_seconds": pinn_s,
            "lpinn_rel_l2": lpinn_err, "lpinn_seconds": lpinn_s}


def main() -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    grid = Grid.uniform(t=(0.0, 1.0, 51), x=(0.0, 2 * math.pi, 128), periodic=("x",))
    results = {"poisson2d_step": _poisson_step_ms(), "laplacian_paths": _laplacian_paths()}
    rows = []
    for beta in BETAS:
        rows.append(_convection(beta, grid))
        results[f"convection_beta{beta:g}"] = rows[-1]
    for t_end in BURGERS_T:
        results[f"burgers_t{t_end:g}"] = _burgers(t_end)
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
