"""Burgers accuracy: DeepONet and POD-DeepONet against Lu et al. 2022 (2.15% / 1.94%).

Data: ``opflow generate burgers`` (ANCHORS.md recipe: nu = 0.1, u0 ~
N(0, 625 (-Lap + 25 I)^-2), u0 -> u(t=1), solved pseudo-spectrally on a 4x
finer grid and subsampled to 128 points), 1000 train / 200 test samples.
Inputs are scaled by the training set's standard deviation.

Models (same budget for both): Adam with a one-cycle schedule (peak 2e-3),
batches of 100, relative L2 loss, single thread.
- DeepONet: branch 128 -> 128 x 4, ReLU; trunk on periodic features of the
  query point (x, cos 2 pi k x, sin 2 pi k x for k = 1..4; Lu et al. also
  feed the trunk periodic features for this problem) -> 128 x 4.
- POD-DeepONet: 32 POD modes of the training outputs, branch 128 -> 128 ->
  128 -> 32.
Published numbers (Lu et al. 2022, "fair comparison", Burgers): DeepONet
2.15%, POD-DeepONet 1.94%. Set OPFLOW_BURGERS_STEPS for a longer run.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow.data import generate  # noqa: E402
from opflow.io import open_dataset  # noqa: E402
from opflow.operators import DeepONet, POD_DeepONet  # noqa: E402

N_TRAIN, N_TEST, RES = 1000, 200, 128
STEPS = int(os.environ.get("OPFLOW_BURGERS_STEPS", 20000))
PUBLISHED = {"DeepONet": 0.0215, "POD-DeepONet": 0.0194}


def periodic_features(x: torch.Tensor, k_max: int = 4) -> torch.Tensor:
    """``(Q,) -> (Q, 1 + 2 k_max)``: x and its first Fourier modes on [0, 1)."""
    waves = [f(2 * math.pi * k * x) for k in range(1, k_max + 1) for f in (torch.cos, torch.sin)]
    return torch.stack([x, *waves], dim=1)


def rel_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return (pred - true).norm(dim=-1) / true.norm(dim=-1)


def _models(x: torch.Tensor, outputs: torch.Tensor) -> dict:
    features = periodic_features(x)
    deeponet = DeepONet([RES] + [128] * 4, [features.shape[1]] + [128] * 4)
    pod = POD_DeepONet([RES, 128, 128, 32], out_channels=1)
    pod.fit_modes(outputs[:, None])
    return {"DeepONet": (deeponet, lambda a: deeponet.forward_values(a, features)[:, 0]),
            "POD-DeepONet": (pod, lambda a: pod.forward_values(a).reshape(a.shape[0], -1))}


def _fit(model: torch.nn.Module, predict, inputs, outputs, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS)
    t0 = time.perf_counter()
    for _ in range(STEPS):
        idx = torch.randint(0, inputs.shape[0], (100,), generator=gen)
        loss = rel_l2(predict(inputs[idx]), outputs[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - t0


def main() -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "burgers.nc"
        t0 = time.perf_counter()
        generate("burgers", n=N_TRAIN + N_TEST, resolution=RES, seed=0, out=path, chunk=100,
                 progress=False).close()
        gen_s = time.perf_counter() - t0
        with open_dataset(path) as ds:
            u0 = torch.tensor(ds["u0"].values, dtype=torch.float32)
            u1 = torch.tensor(ds["u"].values, dtype=torch.float32)
            x = torch.tensor(ds["x"].values, dtype=torch.float32)
    scale = u0[:N_TRAIN].std()
    a_train, a_test = u0[:N_TRAIN] / scale, u0[N_TRAIN:] / scale
    y_train, y_test = u1[:N_TRAIN], u1[N_TRAIN:]
    results = {}
    for name, (model, predict) in _models(x, y_train).items():
        seconds = _fit(model, predict, a_train, y_train, seed=0)
        with torch.no_grad():
            train_err = float(rel_l2(predict(a_train), y_train).mean())
            test_err = float(rel_l2(predict(a_test), y_test).mean())
        results[name] = {"params": sum(p.numel() for p in model.parameters()), "steps": STEPS,
                         "train_seconds": seconds, "train_rel_l2": train_err,
                         "test_rel_l2": test_err, "published_rel_l2": PUBLISHED[name]}
        print(f"{name:13s} test rel L2 {test_err:.4f} (published {PUBLISHED[name]:.4f}), "
              f"train {train_err:.4f}, {seconds:.0f} s")
    setup = (f"{__doc__.strip()}\n\nThis run: {N_TRAIN} train / {N_TEST} test at {RES} points, "
             f"{STEPS} steps each; data generation {gen_s:.0f} s.")
    write_result("burgers_accuracy", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    main()
