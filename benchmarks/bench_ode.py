"""Neural ODE forward+backward: opflow Dopri5 against torchdiffeq dopri5.

Setup (ANCHORS.md): MLP vector field 2 -> 64 -> 64 -> 2 (tanh), batch 256,
20 save points on [0, 1], loss = mean square of the trajectory, rtol 1e-6 and
atol 1e-6 for both; same network weights, same inputs, same run. Accuracy
is the max error of the forward trajectory against a float64 reference solved
at rtol 1e-12. The adjoint rows (opflow BacksolveAdjoint and
InterpolatingAdjoint, torchdiffeq odeint_adjoint) use the same tolerances for
the backward solve and are compared with torchdiffeq's odeint_adjoint.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import time_call, time_interleaved, write_result  # noqa: E402

import opflow  # noqa: E402

BATCH, DIM, HIDDEN, N_SAVE = 256, 2, 64, 20
RTOL = ATOL = 1e-6


class VectorField(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN),
                                 nn.Tanh(), nn.Linear(HIDDEN, DIM))
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return self.net(y)


def _opflow_solve(f, y0, ts, batched=False, sensealg=None, rtol=RTOL, atol=ATOL, alg=None):
    prob = opflow.ODEProblem(f, y0, (float(ts[0]), float(ts[-1])), batched=batched)
    alg = (alg or opflow.Dopri5)(rtol=rtol, atol=atol)
    return opflow.solve(prob, alg, saveat=ts, sensealg=sensealg)


def _equal_accuracy_cases(results, f, y0, ts, ref, opflow_step) -> None:
    """Work-precision cases: torchdiffeq tightened until its error is at most
    opflow's at rtol 1e-6, and opflow loosened until its error reaches
    torchdiffeq's at rtol 1e-6."""
    import torchdiffeq

    target = results["opflow_dopri5"]["max_error"]
    for tol in (3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9):
        ys = torchdiffeq.odeint(f, y0, ts, method="dopri5", rtol=tol, atol=tol).detach()
        err = float((ys - ref).abs().max())
        if err <= target:
            break

    def tde_tight():
        f.zero_grad()
        torchdiffeq.odeint(f, y0, ts, method="dopri5", rtol=tol, atol=tol).square().mean() \
            .backward()

    f.nfe = 0
    tde_tight()
    nfe = f.nfe
    results["torchdiffeq_dopri5_equal_accuracy"] = {
        **time_call(tde_tight, repeat=15), "nfe_forward": nfe, "max_error": err,
        "tolerance": tol, "reached_opflow_accuracy": err <= target}
    peer_err = results["torchdiffeq_dopri5"]["max_error"]
    for tol in (3e-5, 1e-5, 3e-6, 1e-6):
        ys = _opflow_solve(f, y0, ts, rtol=tol, atol=tol).u.detach()
        err = float((ys - ref).abs().max())
        if err <= peer_err:
            break
    f.nfe = 0
    opflow_step(tol=tol)
    nfe = f.nfe
    results["opflow_dopri5_equal_accuracy"] = {
        **time_call(lambda: opflow_step(tol=tol), repeat=15), "nfe_forward": nfe,
        "max_error": err, "tolerance": tol}
    for name in ("torchdiffeq_dopri5_equal_accuracy", "opflow_dopri5_equal_accuracy"):
        r = results[name]
        print(f"{name:34s} {r['median_ms']:8.2f} ms  nfe {r['nfe_forward']:4d}  "
              f"max err {r['max_error']:.2e}  (rtol = atol = {r['tolerance']:g})")


def main() -> dict:
    torch.manual_seed(0)
    f = VectorField()
    y0 = torch.randn(BATCH, DIM)
    ts = torch.linspace(0, 1, N_SAVE)
    f64 = VectorField().double()
    f64.load_state_dict(f.state_dict())
    with torch.no_grad():
        ref = _opflow_solve(f64, y0.double(), ts.double(), rtol=1e-12, atol=1e-12).u.float()

    def opflow_step(batched=False, sensealg=None, tol=RTOL, alg=None):
        f.zero_grad()
        sol = _opflow_solve(f, y0, ts, batched=batched, sensealg=sensealg, rtol=tol, atol=tol,
                            alg=alg)
        sol.u.square().mean().backward()
        return sol

    results = {}
    cases = {
        "opflow_dopri5": lambda: opflow_step(),
        "opflow_dopri5_per_sample": lambda: opflow_step(batched=True),
        "opflow_dopri5_backsolve": lambda: opflow_step(sensealg=opflow.BacksolveAdjoint()),
        "opflow_dopri5_interpolating": lambda: opflow_step(
            sensealg=opflow.InterpolatingAdjoint()),
        "opflow_tsit5": lambda: opflow_step(alg=opflow.Tsit5),
    }
    try:
        import torchdiffeq

        def tde_step():
            f.zero_grad()
            ys = torchdiffeq.odeint(f, y0, ts, method="dopri5", rtol=RTOL, atol=ATOL)
            ys.square().mean().backward()
            return ys

        def tde_adjoint_step():
            f.zero_grad()
            ys = torchdiffeq.odeint_adjoint(f, y0, ts, method="dopri5", rtol=RTOL, atol=ATOL)
            ys.square().mean().backward()
            return ys

        cases["torchdiffeq_dopri5"] = tde_step
        cases["torchdiffeq_dopri5_adjoint"] = tde_adjoint_step
    except ImportError:
        print("torchdiffeq not installed: peer case skipped (pip install -e .[peers])")

    for name, fn in cases.items():
        f.nfe = 0
        out = fn()
        ys = out.u if hasattr(out, "u") else out
        results[name] = {"nfe_forward": f.nfe, "max_error": float((ys.detach() - ref).abs().max())}
    for name, timing in time_interleaved(cases, repeat=20).items():
        results[name].update(timing)
        r = results[name]
        print(f"{name:28s} {r['median_ms']:8.2f} ms  nfe {r['nfe_forward']:4d}  "
              f"max err {r['max_error']:.2e}")
    if "torchdiffeq_dopri5" in results:
        _equal_accuracy_cases(results, f, y0, ts, ref, opflow_step)
        peer = results["torchdiffeq_dopri5"]["median_ms"]
        adjoint_peer = results["torchdiffeq_dopri5_adjoint"]["median_ms"]
        for name in list(results):
            results[name]["speedup_vs_torchdiffeq"] = peer / results[name]["median_ms"]
            if name.endswith(("backsolve", "interpolating", "_adjoint")):
                results[name]["speedup_vs_torchdiffeq_adjoint"] = (
                    adjoint_peer / results[name]["median_ms"])
        # Work-precision: opflow at rtol 1e-6 against torchdiffeq tightened to
        # the same (or better) accuracy.
        tight = results.get("torchdiffeq_dopri5_equal_accuracy")
        if tight is not None and tight["reached_opflow_accuracy"]:
            results["opflow_dopri5"]["speedup_vs_torchdiffeq_equal_accuracy"] = (
                tight["median_ms"] / results["opflow_dopri5"]["median_ms"])
    write_result("ode_neural_dopri5", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
