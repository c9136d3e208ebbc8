"""ERNODE / SRNODE study: prediction NFE and test accuracy over seeds (issue 7).

Rings classification (``examples/ernode_nfe.py``): a neural ODE on the
augmented plane, trained full-batch with Adam for the same number of steps
without regularization, with :class:`~opflow.layers.ErrorRegularizer`
(ERNODE) and with :class:`~opflow.layers.StiffnessRegularizer` (SRNODE), at
a small sweep of weights that is the same for every seed. Each trained
model predicts the test set with one Tsit5 solve at the training
tolerances; its function evaluations (NFE) and the test accuracy are
reported as mean and standard deviation over the seeds, with the NFE
reduction relative to the unregularized arm. The claim checked: ERNODE cuts
the prediction NFE by at least 1.5x at equal test accuracy.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

SEEDS = tuple(range(int(os.environ.get("OPFLOW_ERNODE_SEEDS", 3))))
STEPS = int(os.environ.get("OPFLOW_ERNODE_STEPS", 200))
# arm name -> (regularizer, weight); the weights are the sweep, identical for all seeds
ARMS = {
    "none": ("none", 0.0),
    "ERNODE 1e4": ("error", 1e4),
    "ERNODE 1e5": ("error", 1e5),
    "ERNODE 1e6": ("error", 1e6),
    "SRNODE 1e-2": ("stiffness", 1e-2),
    "SRNODE 1e-1": ("stiffness", 1e-1),
}
_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ernode_nfe.py"


def _example():
    spec = importlib.util.spec_from_file_location("ernode_nfe", _EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> dict:
    torch.set_num_threads(1)
    example = _example()
    runs = {name: [] for name in ARMS}
    for seed in SEEDS:
        for name, (kind, weight) in ARMS.items():
            r = example.train_rings(kind, weight, seed=seed, steps=STEPS)
            runs[name].append(r)
            print(f"seed {seed} {name:12s} acc {r['test_accuracy']:.4f} "
                  f"nfe {r['predict_nfe']:4d} ({r['train_seconds']:.0f} s)", flush=True)
    base_nfe = statistics.fmean(r["predict_nfe"] for r in runs["none"])
    results = {}
    for name, rs in runs.items():
        acc_m, acc_s = _mean_std([r["test_accuracy"] for r in rs])
        nfe_m, nfe_s = _mean_std([float(r["predict_nfe"]) for r in rs])
        results[name] = {
            "weight": ARMS[name][1], "test_accuracy_mean": acc_m, "test_accuracy_std": acc_s,
            "predict_nfe_mean": nfe_m, "predict_nfe_std": nfe_s,
            "nfe_reduction": base_nfe / nfe_m,
            "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rs),
            "per_seed_nfe": [r["predict_nfe"] for r in rs],
            "per_seed_accuracy": [r["test_accuracy"] for r in rs],
        }
        print(f"{name:12s} acc {acc_m:.4f} ± {acc_s:.4f}  nfe {nfe_m:6.1f} ± {nfe_s:5.1f}  "
              f"reduction {base_nfe / nfe_m:.2f}x", flush=True)
    setup = (f"rings (disk r<1 vs annulus 1.5<r<2.5), augmented 3-D neural ODE, MLP 3-32-32-3 "
             f"tanh + linear head, t in [0, 1], Tsit5 rtol 1e-5 atol 1e-7 (train and "
             f"predict), 256 train / 2000 test points, full-batch Adam lr 1e-2, {STEPS} "
             f"steps, seeds {list(SEEDS)}, float64, 1 thread; prediction NFE = one solve of "
             f"the whole test set (shared steps); mean ± std over seeds")
    write_result("ernode", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    main()
