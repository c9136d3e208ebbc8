"""Gradient through a stiff solve: the implicit methods' adjoint against direct backprop.

Setup (issue "implicit solvers"): 8 Robertson systems, each with its own rate
constants (0.04, 3e7, 1e4) scaled by U(0.5, 2) (seed 0), float64, solved
batched by Rodas4 (rtol 1e-6, atol 1e-12) to t = 1e5; loss = sum over the
samples of y1(1e5) + 1e4 y2(1e5); gradient with respect to every sample's
rates. Cases: ``direct`` (DirectBackprop: backpropagation through the steps,
the Jacobians kept in the graph) and ``interpolating`` (InterpolatingAdjoint:
the adjoint solved backwards by Rodas4, the parameter gradient by quadrature).
Each case runs in its own process, one thread; the memory figure is the
growth of the peak resident set (ru_maxrss) during the forward + backward
pass over the peak after a warm-up on t = 1. Error: the largest relative
error of d loss / d log k over all samples and rates against the adjoint at
rtol 1e-8, atol 1e-14.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import run_child, write_result  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
import opflow
from opflow.solvers.ode import Rodas4
torch.set_num_threads(1)
name, rtol = sys.argv[1], float(sys.argv[2])
BATCH = 8
rates = torch.tensor(np.array([0.04, 3e7, 1e4]) *
                     np.random.default_rng(0).uniform(0.5, 2.0, size=(BATCH, 3)))
def rhs(t, y, k):
    y1, y2, y3 = y[..., 0:1], y[..., 1:2], y[..., 2:3]
    k1, k2, k3 = k[..., 0:1], k[..., 1:2], k[..., 2:3]
    return torch.cat([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2**2 - k3 * y2 * y3,
                      k2 * y2**2], -1)
sense = {"direct": opflow.DirectBackprop(), "interpolating": opflow.InterpolatingAdjoint()}[name]
def run(t_end):
    k = rates.clone().requires_grad_(True)
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(BATCH, 3).clone()
    prob = opflow.ODEProblem(rhs, u0, (0.0, t_end), k, batched=True)
    sol = opflow.solve(prob, Rodas4(rtol=rtol, atol=rtol * 1e-6), saveat=[t_end],
                       sensealg=sense)
    loss = (sol.u[-1, :, 0] + 1e4 * sol.u[-1, :, 1]).sum()
    (grad,) = torch.autograd.grad(loss, k)
    return grad * k.detach(), sol.stats.steps
run(1.0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
grad, steps = run(1e5)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"steps": steps, "extra_peak_MiB": (peak - base) / 1024, "seconds": seconds,
                  "grad": grad.tolist()}))
"""


def _max_rel_error(grad, ref) -> float:
    import numpy as np

    g, r = np.asarray(grad), np.asarray(ref)
    return float(np.max(np.abs(g - r) / np.maximum(np.abs(r), 1e-12 * np.abs(r).max())))


def main() -> dict:
    reference = run_child(CHILD, "interpolating", "1e-8")
    results = {}
    for name in ("interpolating", "direct"):
        r = run_child(CHILD, name, "1e-6")
        r["max_rel_error"] = _max_rel_error(r.pop("grad"), reference["grad"])
        results[name] = r
        print(f"{name:13s} {r['steps']:4d} steps  {r['seconds']:7.1f} s  "
              f"+{r['extra_peak_MiB']:7.1f} MiB  error {r['max_rel_error']:.1e}")
    adjoint, direct = results["interpolating"], results["direct"]
    adjoint["speedup_vs_direct"] = direct["seconds"] / adjoint["seconds"]
    adjoint["memory_direct_over_adjoint"] = (direct["extra_peak_MiB"]
                                             / max(adjoint["extra_peak_MiB"], 1.0))
    write_result("stiff_gradient", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
