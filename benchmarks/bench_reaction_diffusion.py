"""2-D Brusselator at 128^2: opflow's KenCarp4 + Newton-Krylov + multigrid against scipy BDF.

Setup (issue "implicit solvers"): u_t = 1 + u^2 v - 4.4 u + alpha Lap u + f,
v_t = 3.4 u - u^2 v + alpha Lap v on the periodic unit square, alpha = 10
(the Brusselator of the SciML stiff benchmarks, there at 32^2), 128^2 points
(32768 unknowns; the diffusion's fastest rate is 8 alpha / h^2 = 1.3e6),
f = 5 on the disc (x - 0.3)^2 + (y - 0.6)^2 <= 0.1^2 (on from t = 0, so the
problem is smooth in time), u(0) = 22 (y (1 - y))^1.5, v(0) = 27 (x (1 -
x))^1.5, t in [0, 1], float64, one thread.

opflow: ``SplitODEProblem`` with the diffusion stiff and the reaction
explicit, ``KenCarp4`` with matrix-free stages (``NewtonKrylov``, GMRES) and
two multigrid V-cycles of I - c Laplacian as the preconditioner
(``multigrid_preconditioner``, hierarchy built once). No Jacobian is formed.
scipy: ``solve_ivp(method="BDF")`` with the analytic sparse Jacobian (CSC;
scipy factorises ``I - c J`` with SuperLU). Error: the largest absolute
error of u and v at t = 1 against scipy BDF at rtol 1e-9, atol 1e-9,
relative to the largest value. The ratio is scipy's time over opflow's at
the nearest accuracy (each tolerance pair listed).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow import Field, Grid, SplitODEProblem, solve  # noqa: E402
from opflow.solvers.nonlinear import NewtonKrylov  # noqa: E402
from opflow.solvers.ode import KenCarp4  # noqa: E402
from opflow.solvers.pde import multigrid_preconditioner  # noqa: E402

N, ALPHA, T1 = 128, 10.0, 1.0
JVP = "autodiff"  # Jacobian-vector products of the stage residual (NewtonKrylov.jvp)


def _setup(n: int = N):
    grid = Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), periodic=("x", "y"))
    x, y = grid.mesh(torch.float64)
    forcing = 5.0 * (((x - 0.3) ** 2 + (y - 0.6) ** 2) <= 0.01).to(torch.float64)
    u0 = 22.0 * (y * (1 - y)) ** 1.5
    v0 = 27.0 * (x * (1 - x)) ** 1.5
    return grid, forcing, torch.stack([u0, v0])[None]  # (1, 2, n, n)


def _laplacian(v: torch.Tensor, h: float) -> torch.Tensor:
    return (v.roll(1, -1) + v.roll(-1, -1) + v.roll(1, -2) + v.roll(-1, -2) - 4 * v) / h**2


def opflow_solve(rtol: float, n: int = N):
    """KenCarp4 with multigrid-preconditioned Newton-Krylov stages; ``(u (2, n, n), sol)``."""
    grid, forcing, w0 = _setup(n)
    h = grid.spacing[0]

    def diffusion(t, w):
        return w.with_values(ALPHA * _laplacian(w.values, h))

    def reaction(t, w):
        u, v = w.values[:, 0], w.values[:, 1]
        uuv = u * u * v
        return w.with_values(torch.stack([1 + uuv - 4.4 * u + forcing, 3.4 * u - uuv], 1))

    prob = SplitODEProblem(diffusion, reaction, Field(w0, grid), (0.0, T1), batched=True)
    alg = KenCarp4(rtol=rtol, atol=rtol,
                   stage_solver=NewtonKrylov(linear_rtol=1e-3, jvp=JVP,
                                             abstol=1e-2 * rtol, max_linear_iters=200),
                   preconditioner=lambda hg: multigrid_preconditioner(grid, hg * ALPHA,
                                                                      bc="periodic"))
    with torch.no_grad():
        sol = solve(prob, alg, saveat=[T1])
    return sol.u.values[-1, 0].numpy(), sol


def scipy_solve(rtol: float, atol: float, n: int = N):
    """scipy BDF with the analytic sparse Jacobian; ``(u (2, n, n), nfev, njev)``."""
    import scipy.sparse as sp
    from scipy.integrate import solve_ivp

    grid, forcing, w0 = _setup(n)
    h = grid.spacing[0]
    m = n * n
    lap1 = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="lil")
    lap1[0, n - 1] = lap1[n - 1, 0] = 1.0
    lap1 = lap1.tocsr() / h**2
    eye = sp.identity(n, format="csr")
    lap = (sp.kron(lap1, eye) + sp.kron(eye, lap1)).tocsr() * ALPHA
    diffusion = sp.block_diag([lap, lap], format="csc")
    f = forcing.numpy().reshape(-1)

    def rhs(t, w):
        u, v = w[:m], w[m:]
        uuv = u * u * v
        out = diffusion @ w
        out[:m] += 1 + uuv - 4.4 * u + f
        out[m:] += 3.4 * u - uuv
        return out

    def jac(t, w):
        u, v = w[:m], w[m:]
        react = sp.bmat([[sp.diags(2 * u * v - 4.4), sp.diags(u * u)],
                         [sp.diags(3.4 - 2 * u * v), sp.diags(-u * u)]], format="csc")
        return (diffusion + react).tocsc()

    sol = solve_ivp(rhs, (0.0, T1), w0.numpy().reshape(-1), method="BDF", rtol=rtol,
                    atol=atol, jac=jac, t_eval=[T1])
    if not sol.success:
        raise RuntimeError(f"scipy BDF failed: {sol.message}")
    return sol.y[:, -1].reshape(2, n, n), sol.nfev, sol.njev


def _error(w: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(w - ref).max() / np.abs(ref).max())


def main() -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    ref, _, _ = scipy_solve(1e-9, 1e-9)
    reference_seconds = time.perf_counter() - start
    results: dict = {}
    for rtol in (1e-4, 1e-6):
        start = time.perf_counter()
        w, sol = opflow_solve(rtol)
        seconds = time.perf_counter() - start
        results[f"opflow_kencarp4_rtol{rtol:g}"] = {
            "seconds": seconds, "error": _error(w, ref), "retcode": str(sol.retcode),
            "steps": sol.stats.steps, "rhs_evaluations": sol.stats.nfe,
            "krylov_iterations": sol.stats.linear_iterations}
        start = time.perf_counter()
        w, nfev, njev = scipy_solve(rtol, rtol)
        seconds = time.perf_counter() - start
        results[f"scipy_bdf_rtol{rtol:g}"] = {"seconds": seconds, "error": _error(w, ref),
                                              "rhs_evaluations": nfev, "jacobians": njev}
    for rtol in (1e-4, 1e-6):
        ours, theirs = results[f"opflow_kencarp4_rtol{rtol:g}"], results[f"scipy_bdf_rtol{rtol:g}"]
        ours["scipy_seconds_over_opflow"] = theirs["seconds"] / ours["seconds"]
    for case, r in results.items():
        print(f"{case:28s} {r['seconds']:8.1f} s  error {r['error']:.2e}")
    write_result("reaction_diffusion", {"setup": __doc__.strip(), "results": results,
                                        "reference_seconds": reference_seconds})
    return results


if __name__ == "__main__":
    main()
