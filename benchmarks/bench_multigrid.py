"""Darcy flow by geometric multigrid: opflow Multigrid against scipy spsolve (and
pyamg when it is installed).

Setup (ANCHORS.md Darcy recipe): -div(a grad u) = 1 on the unit square,
u = 0 on the boundary, a = 12 where g >= 0 and 3 where g < 0 with g a smooth
Gaussian random field (cosine series with variances (pi^2 |k|^2 + 9)^-2,
i.e. N(0, (-Laplacian + 9 I)^-2) with zero Neumann conditions), float64.

* a batch of 256 problems on 129 x 129 nodes (128^2 cells): one batched
  opflow solve, against spsolve on a few samples (per-sample time);
* one problem on 513 x 513 nodes (512^2 cells).

Every solver gets the same matrix: the vertex-centred 5-point stencil with
harmonic-mean face coefficients (assembled here with scipy.sparse).
opflow: V(2,2) cycles with red-black Gauss-Seidel to relative residual
1e-8, hierarchy set-up included in the time: the defaults, then with CG
acceleration (krylov="cg"), then also with float32 cycles (mixed precision;
residuals, solution and tolerance stay float64). Cycle counts per resolution
(Poisson and Darcy, 33^2 .. 513^2) are recorded as well.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import time_call, write_result  # noqa: E402

from opflow import Field, Grid, solve  # noqa: E402
from opflow.solvers.pde import DarcyProblem, Multigrid, PoissonProblem  # noqa: E402

BATCH, N_BATCH, N_LARGE = 256, 129, 513
RTOL = 1e-8
SPSOLVE_SAMPLES = 4


def random_field(n: int, batch: int, seed: int, modes: int = 64) -> torch.Tensor:
    """Smooth Gaussian random field on [0, 1]^2 (zero-Neumann cosine series)."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.arange(modes, dtype=torch.float64)
    basis = torch.cos(math.pi * torch.linspace(0, 1, n, dtype=torch.float64)[:, None] * k)
    std = 1.0 / (math.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0)
    xi = torch.randn(batch, modes, modes, generator=gen, dtype=torch.float64)
    return torch.einsum("ik,bkl,jl->bij", basis, xi * std, basis)


def darcy_problem(n: int, batch: int, seed: int) -> DarcyProblem:
    grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n))
    a = torch.where(random_field(n, batch, seed) >= 0, 12.0, 3.0).to(torch.float64)
    return DarcyProblem(Field(a[:, None], grid), 1.0, bc="dirichlet", bc_value=0.0)


def scipy_matrix(a: np.ndarray, h: float):
    """Same discretisation as opflow on the interior nodes, as a CSR matrix."""
    import scipy.sparse as sp

    n = a.shape[0]
    kx = 2 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :]) / h**2   # faces (n-1, n)
    ky = 2 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:]) / h**2   # faces (n, n-1)
    m = n - 2
    idx = np.arange(m * m).reshape(m, m)
    diag = kx[:-1, 1:-1] + kx[1:, 1:-1] + ky[1:-1, :-1] + ky[1:-1, 1:]
    rows = [idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(), idx[:, :-1].ravel(),
            idx[:, 1:].ravel()]
    cols = [idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(), idx[:, 1:].ravel(),
            idx[:, :-1].ravel()]
    ox, oy = -kx[1:-1, 1:-1].ravel(), -ky[1:-1, 1:-1].ravel()
    vals = [diag.ravel(), ox, ox, oy, oy]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(m * m, m * m))


def _peer_solvers():
    solvers = {}
    try:
        import scipy.sparse.linalg as spla

        solvers["spsolve"] = lambda A, b: spla.spsolve(A.tocsc(), b)
    except ImportError:  # pragma: no cover - scipy is a declared peer
        print("scipy not installed: spsolve case skipped")
    try:
        import pyamg

        def amg(A, b):
            ml = pyamg.ruge_stuben_solver(A)
            return ml.solve(b, tol=RTOL, accel="cg")

        solvers["pyamg"] = amg
    except ImportError:
        print("pyamg not installed: pyamg case skipped (not installed on purpose)")
    return solvers


def _peer_case(solver, prob, samples: int) -> tuple[dict, list]:
    """Per-sample time of ``solver`` on the first ``samples`` problems, and its
    solutions (interior nodes, flattened)."""
    h = prob.grid.spacing[0]
    times, solutions = [], []
    for i in range(samples):
        A = scipy_matrix(prob.coeff.values[i, 0].numpy(), h)
        b = np.ones(A.shape[0])
        start = time.perf_counter()
        solutions.append(solver(A, b))
        times.append((time.perf_counter() - start) * 1e3)
    case = {"median_ms": float(np.median(times)), "min_ms": float(np.min(times)),
            "repeat": 1, "samples": samples, "per_sample": True}
    return case, solutions


def _max_rel_diff(u: torch.Tensor, solutions: list) -> float:
    """Largest ``max |u - x| / max |x|`` over the peer's samples."""
    out = 0.0
    for i, x in enumerate(solutions):
        mine = u[i, 0, 1:-1, 1:-1].numpy().ravel()
        out = max(out, float(np.abs(mine - x).max() / np.abs(x).max()))
    return out


def cycle_counts(sizes=(33, 65, 129, 257, 513)) -> dict:
    """Cycles to 1e-8 for V(2,2)-RBGS: Poisson (sin sin) and one Darcy sample,
    plain and CG-accelerated."""
    out = {}
    for n in sizes:
        grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n))
        x, y = grid.mesh(torch.float64)
        f = 2 * math.pi**2 * torch.sin(math.pi * x) * torch.sin(math.pi * y)
        poisson = solve(PoissonProblem(Field(f[None], grid)), Multigrid(rtol=RTOL))
        darcy = darcy_problem(n, 1, seed=7)
        plain = solve(darcy, Multigrid(rtol=RTOL))
        cg = solve(darcy, Multigrid(rtol=RTOL, krylov="cg"))
        out[str(n)] = {"poisson": poisson.stats.iterations, "darcy": plain.stats.iterations,
                       "darcy_cg": cg.stats.iterations}
    return out


def _mg_case(prob, alg, repeat: int, per: int) -> tuple[dict, torch.Tensor]:
    sol = solve(prob, alg)
    assert sol.success, sol.retcode
    timing = time_call(lambda: solve(prob, alg), repeat=repeat, warmup=0)
    case = {k: v / per for k, v in timing.items() if k.endswith("_ms")}
    case.update(repeat=repeat, per_sample=per > 1, total_median_ms=timing["median_ms"],
                cycles=sol.stats.iterations, levels=sol.u.attrs["levels"],
                max_rel_residual=max(sol.u.attrs["relative_residual"]))
    return case, sol.u.values.detach()


def main(repeat: int = 2, threads: int | None = None) -> dict:
    """Run the cases; ``threads`` (default ``$OPFLOW_BENCH_THREADS`` or 1) torch
    threads for opflow, restored afterwards. SuperLU runs on one core, so one
    torch thread compares like with like (and on a shared, busy machine two
    OpenMP threads can be several times slower than one)."""
    threads = int(threads or os.environ.get("OPFLOW_BENCH_THREADS", 1))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(repeat)
    finally:
        torch.set_num_threads(previous)


def _run(repeat: int) -> dict:
    torch.manual_seed(0)
    algs = {"mg": Multigrid(cycle="V", smoother="rbgs", rtol=RTOL),
            "mgcg": Multigrid(cycle="V", smoother="rbgs", rtol=RTOL, krylov="cg"),
            "mgcg_f32cycles": Multigrid(cycle="V", smoother="rbgs", rtol=RTOL, krylov="cg",
                                        cycle_dtype=torch.float32)}
    peers = _peer_solvers()
    results: dict = {}
    for label, n, batch, samples, seed in (("batch256_129", N_BATCH, BATCH, SPSOLVE_SAMPLES, 0),
                                           ("513", N_LARGE, 1, 1, 1)):
        prob = darcy_problem(n, batch, seed)
        mg = {}
        for name, alg in algs.items():
            results[f"opflow_{name}_{label}"], mg[name] = _mg_case(prob, alg, repeat, batch)
        for peer, solver in peers.items():
            case, solutions = _peer_case(solver, prob, samples)
            results[f"{peer}_{label}"] = case
            for name in algs:
                r = results[f"opflow_{name}_{label}"]
                r[f"speedup_vs_{peer}"] = case["median_ms"] / r["median_ms"]
                r[f"max_rel_diff_vs_{peer}"] = _max_rel_diff(mg[name], solutions)
        del prob, mg

    counts = cycle_counts()
    setup = (f"Darcy -div(a grad u) = 1, u = 0 on the boundary, a in {{3, 12}} thresholded "
             f"GRF, float64, vertex-centred 5-point harmonic-mean stencil (same matrix for "
             f"every solver). opflow Multigrid V(2,2) red-black Gauss-Seidel to relative "
             f"residual {RTOL:g} (mg: defaults, plain cycles; mgcg: krylov='cg'; "
             f"mgcg_f32cycles: also cycle_dtype=float32, i.e. mixed-precision refinement with "
             f"float64 residuals and solution), set-up included; batch "
             f"{BATCH} x {N_BATCH}^2 (times per sample) and 1 x {N_LARGE}^2. spsolve: scipy "
             f"SuperLU (one core) on {SPSOLVE_SAMPLES} samples (per-sample time, matrix assembly "
             f"excluded). Cycles to {RTOL:g} per resolution (Poisson / Darcy / Darcy-CG): "
             + ", ".join(f"{n}^2: {c['poisson']}/{c['darcy']}/{c['darcy_cg']}"
                         for n, c in counts.items())
             + f". torch threads: {torch.get_num_threads()}.")
    payload = {"setup": setup, "results": results, "cycles_per_resolution": counts}
    write_result("multigrid_darcy", payload)
    for case, r in results.items():
        extra = " ".join(f"{k}={v:.3g}" for k, v in r.items()
                         if k.startswith(("speedup", "max_rel", "cycles")))
        print(f"{case:36s} median {r['median_ms']:9.2f} ms  min {r['min_ms']:9.2f} ms  {extra}")
    return payload


if __name__ == "__main__":
    main()
