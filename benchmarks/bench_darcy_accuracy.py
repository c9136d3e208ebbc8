"""Darcy accuracy: MgNO against FNO with equal parameter count and epochs.

Same data (``opflow generate darcy``, ANCHORS.md recipe), same split, same
Trainer settings (Adam + OneCycle, relative L2 loss, batch 8, normalizers
fitted on the training split), same number of epochs, trained in the same
run. FNO's width is chosen so its parameter count is the closest to MgNO's.
The default size fits in minutes on a 2-core CPU; set OPFLOW_DARCY_N_TRAIN,
OPFLOW_DARCY_N_TEST, OPFLOW_DARCY_RES and OPFLOW_DARCY_EPOCHS for larger runs
(the published setting is 1000 / 100 samples at 85^2 (or 421^2), 500 epochs).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow.data import OperatorDataset, generate  # noqa: E402
from opflow.operators import FNO, MgNO  # noqa: E402
from opflow.train import Trainer  # noqa: E402

N_TRAIN = int(os.environ.get("OPFLOW_DARCY_N_TRAIN", 400))
N_TEST = int(os.environ.get("OPFLOW_DARCY_N_TEST", 100))
RES = int(os.environ.get("OPFLOW_DARCY_RES", 65))
EPOCHS = int(os.environ.get("OPFLOW_DARCY_EPOCHS", 15))


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fno_matching(target: int) -> FNO:
    best = None
    for width in range(4, 65):
        model = FNO(1, 1, modes=(12, 12), width=width, n_layers=4)
        if best is None or abs(_params(model) - target) < abs(_params(best) - target):
            best = model
    return best


def _one_cycle(lr: float):
    return lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                                  total_steps=total)


def main() -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "darcy.nc"
        t0 = time.perf_counter()
        generate("darcy", n=N_TRAIN + N_TEST, resolution=RES, seed=0, out=path,
                 progress=False).close()
        gen_s = time.perf_counter() - t0
        ds = OperatorDataset(path, inputs="a", outputs="u")
        train, test = ds.split([N_TRAIN, N_TEST], seed=0)
        mgno = MgNO(1, 1, levels=5, width=16, n_layers=4)
        models = {"MgNO": mgno, "FNO": _fno_matching(_params(mgno))}
        results = {}
        for name, model in models.items():
            trainer = Trainer(model, loss="rel_l2", epochs=EPOCHS, batch_size=8, lr=2e-3,
                              scheduler=_one_cycle(2e-3), normalizers="auto", progress=False,
                              seed=0)
            t0 = time.perf_counter()
            trainer.fit(train)
            seconds = time.perf_counter() - t0
            m = trainer.evaluate(test)
            results[name] = {"params": _params(model), "epochs": EPOCHS,
                             "train_seconds": seconds,
                             "test_rel_l2": float(m["rel_l2_mean"]),
                             "test_rel_h1": float(m["rel_h1_mean"])}
            print(f"{name:5s} params {results[name]['params']:7d}  rel L2 "
                  f"{results[name]['test_rel_l2']:.4f}  rel H1 {results[name]['test_rel_h1']:.4f}"
                  f"  ({seconds:.0f} s)")
        ds.close()
    setup = (f"{__doc__.strip()}\n\nThis run: {N_TRAIN} train / {N_TEST} test at {RES}x{RES}, "
             f"{EPOCHS} epochs each; data generation {gen_s:.0f} s.")
    write_result("darcy_accuracy", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    main()
