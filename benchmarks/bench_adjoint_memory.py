"""Memory of a neural ODE's backward pass against the number of solver steps.

A NeuralODE (vector field y R + 0.1 MLP(y): a fixed rotation R of frequency 2
on coordinate pairs plus an MLP 64 -> 256 -> 64, tanh, float32), batch 256,
Tsit5 (rtol 1e-6, atol 1e-8), loss = sum of squares of y(T), for T = 4, 16
and 48 (the step count grows about linearly with T). Each case runs in its own process; the figure
is the growth of the peak resident set (ru_maxrss) during one forward +
backward pass over the process's peak after a warm-up pass on T = 0.1. One
thread. DirectBackprop keeps every step's graph; BacksolveAdjoint and
InterpolatingAdjoint(steps_per_checkpoint=16) keep the save states, and the
latter one segment's recorded stages at a time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import run_child, write_result  # noqa: E402

CHILD = r"""
import json, resource, sys, time, torch
import opflow
from opflow.layers import NeuralODE
torch.set_num_threads(1)
torch.manual_seed(0)
name, T = sys.argv[1], float(sys.argv[2])
sense = {"direct": opflow.DirectBackprop(), "backsolve": opflow.BacksolveAdjoint(),
         "interpolating": opflow.InterpolatingAdjoint(16)}[name]
class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Tanh(),
                                       torch.nn.Linear(256, 64))
        omega = torch.zeros(64, 64)
        omega[0::2, 1::2] = torch.eye(32) * 2.0
        self.register_buffer("rotation", omega - omega.T)  # keeps the state moving
    def forward(self, t, y):
        return y @ self.rotation + 0.1 * self.net(y)
field = Field()
y0 = torch.randn(256, 64)
def run(t_end):
    model = NeuralODE(field, solver=opflow.Tsit5(rtol=1e-6, atol=1e-8), sensealg=sense,
                      t=(0.0, t_end))
    loss = model(y0)[-1].square().sum()
    loss.backward()
    return model.last_stats.steps
run(0.1)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
steps = run(T)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"steps": steps, "extra_peak_MiB": (peak - base) / 1024, "seconds": seconds}))
"""


def main() -> dict:
    results = {}
    for name in ("direct", "backsolve", "interpolating"):
        for t_end in (4.0, 16.0, 48.0):
            r = run_child(CHILD, name, str(t_end))
            results[f"{name}_T{int(t_end)}"] = r
            print(f"{name:13s} T={t_end:4.0f}: {r['steps']:4d} steps, "
                  f"+{r['extra_peak_MiB']:7.1f} MiB, {r['seconds']:.1f} s")
    write_result("adjoint_memory", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
