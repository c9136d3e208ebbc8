"""Multi-task DeepONet: several geometries, then transfer to an unseen one.

Data (``opflow.data.multitask``): -Laplacian u = f with u = 0 on the boundary,
f a random quadratic polynomial (6 coefficients ~ N(0, 1)), solved by masked
multigrid on a 33 x 33 grid of the unit square. Pretraining on the square,
the L-shape and the square with a circular hole (200 samples each; test 50
each); then the unseen disk (radius 0.45): fine-tune on K samples of it,
tested on 100 other disk samples.

Models: MultiTaskDeepONet (bilinear branch, defaults), Adam with cosine decay
on the masked relative L2 loss, batch 32. Transfer compares, on the same K
samples and the same number of steps: fine-tuning chosen layers (the branch
net, the last trunk layer and the bias: ``branch``, ``trunk.last``, ``b0``;
the first trunk layers stay frozen), fine-tuning every weight, and training
from scratch. Mean and standard deviation over seeds (each seed draws
its own K samples and, from scratch, its own initial weights). Sizes can be
changed with OPFLOW_MT_PER_GEOMETRY, OPFLOW_MT_STEPS, OPFLOW_MT_FT_STEPS,
OPFLOW_MT_SEEDS and OPFLOW_MT_SHOTS (comma-separated).
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow.data.multitask import MultiTaskData, generate_multitask  # noqa: E402
from opflow.operators import MultiTaskDeepONet  # noqa: E402
from opflow.train.transfer import evaluate_by_geometry, fine_tune, fit, freeze  # noqa: E402

RES = 33
PER_GEOMETRY = int(os.environ.get("OPFLOW_MT_PER_GEOMETRY", 200))
STEPS = int(os.environ.get("OPFLOW_MT_STEPS", 2000))
FT_STEPS = int(os.environ.get("OPFLOW_MT_FT_STEPS", 300))
SEEDS = int(os.environ.get("OPFLOW_MT_SEEDS", 3))
SHOTS = tuple(int(k) for k in os.environ.get("OPFLOW_MT_SHOTS", "5,10,25,50").split(","))
TRAIN = ("square", "lshape", "hole")
UNSEEN = "disk"
LR = 1e-3
PARTIAL = ("branch", "trunk.last", "b0")


def _data(n: int, seed: int, geometries) -> MultiTaskData:
    return MultiTaskData.from_dataset(generate_multitask(n, resolution=RES, seed=seed,
                                                         geometries=geometries,
                                                         progress=False))


def _trainable(model: torch.nn.Module, names=None) -> int:
    if names is None:
        return sum(p.numel() for p in model.parameters())
    probe = copy.deepcopy(model)
    freeze(probe, names)
    return sum(p.numel() for p in probe.parameters() if p.requires_grad)


def _transfer(pretrained, pool: MultiTaskData, test: MultiTaskData) -> dict:
    results: dict[str, dict] = {}
    for k in SHOTS:
        errs: dict[str, list[float]] = {"finetune-partial": [], "finetune-all": [], "scratch": []}
        secs: dict[str, float] = dict.fromkeys(errs, 0.0)
        for seed in range(SEEDS):
            pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:k]
            shots = pool.subset(pick)
            for method in errs:
                t0 = time.perf_counter()
                if method == "scratch":
                    torch.manual_seed(1000 + seed)
                    model = MultiTaskDeepONet()
                    fit(model, shots, FT_STEPS, lr=LR, batch_size=32, seed=seed)
                else:
                    model = copy.deepcopy(pretrained)
                    train = PARTIAL if method == "finetune-partial" else ("branch", "trunk", "b0")
                    fine_tune(model, shots, train=train, steps=FT_STEPS, lr=LR, batch_size=32,
                              seed=seed)
                secs[method] += time.perf_counter() - t0
                errs[method].append(evaluate_by_geometry(model, test)["all"])
        for method, values in errs.items():
            results[f"{UNSEEN} K={k} {method}"] = {
                "rel_l2_mean": statistics.mean(values),
                "rel_l2_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "trainable_params": _trainable(pretrained, PARTIAL if method == "finetune-partial"
                                               else None),
                "seconds_per_run": secs[method] / SEEDS,
            }
            r = results[f"{UNSEEN} K={k} {method}"]
            print(f"{UNSEEN} K={k:3d} {method:14s} rel L2 {r['rel_l2_mean']:.4f} "
                  f"+- {r['rel_l2_std']:.4f}  ({r['seconds_per_run']:.1f} s/run)", flush=True)
    return results


def main() -> dict:
    t0 = time.perf_counter()
    train = _data(len(TRAIN) * PER_GEOMETRY, 0, TRAIN)
    test = _data(len(TRAIN) * 50, 1, TRAIN)
    pool = _data(max(SHOTS), 2, (UNSEEN,))
    unseen_test = _data(100, 3, (UNSEEN,))
    gen_s = time.perf_counter() - t0
    torch.manual_seed(0)
    model = MultiTaskDeepONet()
    t0 = time.perf_counter()
    fit(model, train, STEPS, lr=LR, batch_size=32, seed=0)
    train_s = time.perf_counter() - t0
    results: dict[str, dict] = {}
    for geometry, err in evaluate_by_geometry(model, test).items():
        results[f"pretrain {geometry}"] = {"rel_l2": err}
        print(f"pretrain {geometry:8s} rel L2 {err:.4f}", flush=True)
    zero = evaluate_by_geometry(model, unseen_test)["all"]
    results[f"{UNSEEN} zero-shot"] = {"rel_l2_mean": zero, "rel_l2_std": 0.0,
                                      "trainable_params": 0}
    print(f"{UNSEEN} zero-shot rel L2 {zero:.4f}", flush=True)
    results.update(_transfer(model, pool, unseen_test))
    setup = (f"{__doc__.strip()}\n\nThis run: {PER_GEOMETRY} samples per training geometry, "
             f"{STEPS} pretraining steps ({train_s:.0f} s), {FT_STEPS} steps per transfer run, "
             f"lr {LR}, {SEEDS} seeds, K in {list(SHOTS)}; data generation {gen_s:.0f} s; "
             f"{_trainable(model)} parameters in all.")
    write_result("multitask", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    main()
