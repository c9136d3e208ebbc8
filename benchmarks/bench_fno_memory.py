"""Peak memory of an FNO train step: opflow against neuraloperator, same model.

FNO 2-D, 4 layers, 32 channels, 64x64, batch 16, 1 -> 1 channels, MSE loss,
Adam, float32 (the speed benchmark's setting, "operators"): neuraloperator's
default FNO with n_modes (24, 22) and opflow's FNO built from it with
FNO.from_neuraloperator (same weights). Each case runs in a fresh process;
the figure is the growth of the peak resident set over the process's peak
after building the model and the data, during three train steps (Adam's
state, of equal size for both, included). One thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import run_child, write_result  # noqa: E402

CHILD = r"""
import json, resource, sys, torch
from neuralop.models import FNO as PeerFNO
from opflow.operators import FNO
torch.set_num_threads(1)
torch.manual_seed(0)
peer = PeerFNO(n_modes=(24, 22), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4)
model = FNO.from_neuraloperator(peer) if sys.argv[1] == "opflow" else peer
del peer
x, target = torch.randn(16, 1, 64, 64), torch.randn(16, 1, 64, 64)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
def step():
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(model(x), target).backward()
    opt.step()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(3):
    step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_peak_MiB": (peak - base) / 1024, "base_MiB": base / 1024}))
"""


def main() -> dict:
    try:
        import neuralop  # noqa: F401
    except ImportError:
        print("neuraloperator not installed: FNO memory skipped (pip install -e .[peers])")
        return {}
    results = {name: run_child(CHILD, name) for name in ("opflow", "neuraloperator")}
    ratio = results["neuraloperator"]["extra_peak_MiB"] / results["opflow"]["extra_peak_MiB"]
    results["opflow"]["memory_ratio_vs_neuraloperator"] = ratio
    for name, r in results.items():
        print(f"{name:15s} +{r['extra_peak_MiB']:7.1f} MiB over {r['base_MiB']:.0f} MiB")
    write_result("fno_memory", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
