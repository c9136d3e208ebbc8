"""Stiff ODEs: 256 Robertson systems with per-sample rates, opflow batched against scipy.

Setup (issue "implicit solvers"): Robertson's kinetics y1' = -k1 y1 + k3 y2 y3,
y2' = k1 y1 - k2 y2^2 - k3 y2 y3, y3' = k2 y2^2 on t in [0, 1e5], k = (0.04,
3e7, 1e4) each scaled per sample by U(0.5, 2) (seed 0), float64. opflow solves
all samples in one batched call (Rosenbrock23, Rodas4; every trajectory its
own steps); scipy's solve_ivp (Radau and BDF, with the analytic Jacobian) loops
over the samples. Error: the largest relative error at t = 1e5 over the
components and the first 16 samples, against scipy Radau at rtol 1e-12, atol
1e-20 (components below 1e-10 of the sample's largest are measured against
that floor). One thread, one run per case (each takes seconds). The speed-up
of an opflow case is against the fastest scipy case whose error is at most
opflow's (equal or better accuracy).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow import ODEProblem, solve  # noqa: E402
from opflow.solvers.ode import Rodas4, Rosenbrock23  # noqa: E402

BATCH, T1, N_REF = 256, 1e5, 16
BASE = np.array([0.04, 3e7, 1e4])


def _rates() -> np.ndarray:
    g = np.random.default_rng(0)
    return BASE * g.uniform(0.5, 2.0, size=(BATCH, 3))


def _rhs_torch(t, y, k):
    y1, y2, y3 = y[..., 0:1], y[..., 1:2], y[..., 2:3]
    k1, k2, k3 = k[..., 0:1], k[..., 1:2], k[..., 2:3]
    return torch.cat([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2**2 - k3 * y2 * y3,
                      k2 * y2**2], -1)


def _rhs_np(k):
    k1, k2, k3 = k

    def f(t, y):
        return [-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1]**2 - k3 * y[1] * y[2],
                k2 * y[1]**2]

    def jac(t, y):
        return [[-k1, k3 * y[2], k3 * y[1]],
                [k1, -2 * k2 * y[1] - k3 * y[2], -k3 * y[1]],
                [0.0, 2 * k2 * y[1], 0.0]]

    return f, jac


def _scipy(method: str, rates: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    from scipy.integrate import solve_ivp

    out = []
    for k in rates:
        f, jac = _rhs_np(k)
        sol = solve_ivp(f, (0.0, T1), [1.0, 0.0, 0.0], method=method, rtol=rtol, atol=atol,
                        jac=jac, t_eval=[T1])
        out.append(sol.y[:, -1] if sol.success else np.full(3, np.nan))
    return np.array(out)


def _error(y: np.ndarray, ref: np.ndarray) -> float:
    scale = np.abs(ref) + 1e-10 * np.abs(ref).max(axis=1, keepdims=True)
    return float(np.max(np.abs(y[:N_REF] - ref) / scale))


def main() -> dict:
    torch.set_num_threads(1)
    rates = _rates()
    ref = _scipy("Radau", rates[:N_REF], 1e-12, 1e-20)
    results: dict = {}
    k = torch.tensor(rates)
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(BATCH, 3).clone()
    prob = ODEProblem(_rhs_torch, u0, (0.0, T1), k, batched=True)
    for name, alg_cls, tols in (("rosenbrock23", Rosenbrock23, (1e-4, 1e-6)),
                                ("rodas4", Rodas4, (1e-5, 1e-7, 1e-9))):
        for rtol in tols:
            start = time.perf_counter()
            sol = solve(prob, alg_cls(rtol=rtol, atol=rtol * 1e-6), saveat=[T1])
            seconds = time.perf_counter() - start
            results[f"opflow_{name}_rtol{rtol:g}"] = {
                "seconds": seconds, "max_rel_error": _error(sol.u[-1].numpy(), ref),
                "retcode": str(sol.retcode), "steps": sol.stats.steps}
    for method in ("Radau", "BDF"):
        for rtol in (1e-4, 1e-6, 1e-8):
            start = time.perf_counter()
            y = _scipy(method, rates, rtol, rtol * 1e-6)
            seconds = time.perf_counter() - start
            results[f"scipy_{method.lower()}_rtol{rtol:g}"] = {
                "seconds": seconds, "max_rel_error": _error(y, ref)}
    _equal_accuracy(results)
    for case, r in results.items():
        print(f"{case:28s} {r.get('seconds', 0):9.2f} s  error {r.get('max_rel_error', 0):.2e}"
              f"  {r.get('speedup_vs_faster_scipy', '')}")
    write_result("stiff", {"setup": __doc__.strip(), "results": results})
    return results


def _equal_accuracy(results: dict) -> None:
    scipy_cases = {k: v for k, v in results.items() if k.startswith("scipy")}
    for case, r in list(results.items()):
        if not case.startswith("opflow"):
            continue
        at_least = [v for v in scipy_cases.values() if v["max_rel_error"] <= r["max_rel_error"]]
        if not at_least:
            continue
        best = min(v["seconds"] for v in at_least)  # the faster scipy method, as accurate
        r["speedup_vs_faster_scipy"] = best / r["seconds"]


if __name__ == "__main__":
    main()
