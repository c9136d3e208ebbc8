"""LeMON: pretrain on four 1-D PDE families, adapt to a held-out one with few samples.

Data (``opflow.meta.families``, opflow's ETDRK4 spectral solver): advection,
diffusion, viscous Burgers and Fisher-KPP reaction-diffusion for pretraining,
the porous-medium equation ``u_t = d (u^2)_xx`` held out; ``u0 = sigmoid(GRF)``,
map ``(u0, coefficients) -> u(t = 1)`` on 64 periodic points, the coefficients
given as constant input channels (the held-out family's ``d`` channel is zero
in every pretraining sample). An FNO (width 32, 12 modes, 4 layers; or a
DeepONet, see below) is pretrained with first-order MAML (5 inner SGD steps
on 10 support samples, outer Adam on 20 query samples, all four families per
outer step). On the held-out family, K = 5 / 10 / 50 support samples are
drawn from a pool and the relative L2 error is measured on 100 other samples
for:

* zero-shot: the pretrained model as is;
* LoRA: rank-4 adapters on every linear layer (lifting, pointwise skips,
  projection), Adam lr 1e-2;
* full fine-tune: every weight from the pretrained ones, Adam lr 1e-3;
* from scratch: a fresh model of the same architecture, Adam lr 5e-3
  (the pretraining rate),

each with the same number of full-batch Adam steps. Mean and standard
deviation over seeds; each seed pretrains its own model, draws its own
support sets and initialises its own adapters. The "identity" row is the
error of predicting ``u(1) = u0``, for scale. Sizes are set by environment
variables: OPFLOW_LEMON_SAMPLES (200 per family), OPFLOW_LEMON_RES (64),
OPFLOW_LEMON_PRETRAIN_STEPS (120), OPFLOW_LEMON_FINETUNE_STEPS (100),
OPFLOW_LEMON_SEEDS (3), OPFLOW_LEMON_HELD_OUT (porous_medium) and
OPFLOW_LEMON_BACKBONE (fno; ``deeponet`` writes ``lemon_deeponet.json``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from opflow.meta import INPUTS, generate_family  # noqa: E402
from opflow.meta.adapt import evaluate, finetune  # noqa: E402
from opflow.meta.maml import build_backbone, pretrain, task_from_dataset  # noqa: E402

PRETRAIN = ("advection", "diffusion", "burgers", "reaction_diffusion")
HELD_OUT = os.environ.get("OPFLOW_LEMON_HELD_OUT", "porous_medium")
N_SAMPLES = int(os.environ.get("OPFLOW_LEMON_SAMPLES", 200))
RES = int(os.environ.get("OPFLOW_LEMON_RES", 64))
PRE_STEPS = int(os.environ.get("OPFLOW_LEMON_PRETRAIN_STEPS", 120))
FT_STEPS = int(os.environ.get("OPFLOW_LEMON_FINETUNE_STEPS", 100))
BACKBONE = os.environ.get("OPFLOW_LEMON_BACKBONE", "fno")
SEEDS = int(os.environ.get("OPFLOW_LEMON_SEEDS", 3))
SHOTS = (5, 10, 50)
RANK = 4
N_TEST = 100
LR = {"lora": 1e-2, "full": 1e-3, "scratch": 5e-3}


def _stats(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"rel_l2_mean": statistics.fmean(values), "rel_l2_std": sd, "seeds": len(values)}


def _identity_error(task) -> float:
    """Relative L2 error of predicting ``u(t_end) = u0`` (what "no dynamics" scores)."""
    u0, u = task.inputs[:, :1], task.outputs
    return float(((u0 - u).flatten(1).norm(dim=1) / u.flatten(1).norm(dim=1)).mean())


def _one_seed(seed: int, tasks, held) -> tuple[dict, dict]:
    """Errors of every case for one seed, and trainable parameter counts."""
    test = held.subset(torch.arange(len(held) - N_TEST, len(held)))
    pool = held.subset(torch.arange(0, len(held) - N_TEST))
    model = build_backbone(BACKBONE, len(INPUTS), RES, seed=seed)
    t0 = time.perf_counter()
    pretrain(model, tasks, method="fomaml", steps=PRE_STEPS, lr=5e-3, inner_steps=5,
             inner_lr=1e-3, support=10, query=20, seed=seed)
    pre_s = time.perf_counter() - t0
    errors = {"identity u(t)=u0 (reference)": _identity_error(test),
              "zero-shot": evaluate(model, test)}
    counts = {"identity": 0, "zero-shot": 0}
    for k in SHOTS:
        support, _ = pool.split(k, seed=seed)
        for mode in ("lora", "full", "scratch"):
            adapted, info = finetune(model, support, mode=mode, steps=FT_STEPS, lr=LR[mode],
                                     rank=RANK, seed=seed)
            errors[f"{mode} {k}-shot"] = evaluate(adapted, test)
            counts[mode] = info["trainable"]
    print(f"seed {seed}: pretrain {pre_s:.0f} s; " + ", ".join(
        f"{name} {value:.4f}" for name, value in errors.items()), flush=True)
    return errors, counts


def main() -> dict:
    torch.manual_seed(0)
    start = time.perf_counter()
    tasks = [task_from_dataset(generate_family(f, N_SAMPLES, RES, seed=10 + i))
             for i, f in enumerate(PRETRAIN)]
    held = task_from_dataset(generate_family(HELD_OUT, N_SAMPLES, RES, seed=99))
    gen_s = time.perf_counter() - start
    runs = [_one_seed(seed, tasks, held) for seed in range(SEEDS)]
    counts = runs[0][1]
    results = {}
    for case in runs[0][0]:
        mode = case.split()[0]
        results[case] = {**_stats([r[0][case] for r in runs]),
                         "trainable_params": counts.get(mode, 0)}
    total_s = time.perf_counter() - start
    setup = (f"{__doc__.strip()}\n\nThis run: {N_SAMPLES} samples per family at {RES} points, "
             f"{BACKBONE} backbone, held out {HELD_OUT}, {PRE_STEPS} FOMAML outer steps, "
             f"{FT_STEPS} fine-tuning steps, rank {RANK}, {SEEDS} seeds, {N_TEST} test "
             f"samples; data generation {gen_s:.0f} s, total {total_s:.0f} s wall "
             f"({time.process_time():.0f} s CPU, {torch.get_num_threads()} thread(s)).")
    name = "lemon" if BACKBONE == "fno" else f"lemon_{BACKBONE}"
    write_result(name, {"setup": setup, "results": results})
    for case, r in results.items():
        print(f"{case:30s} rel L2 {r['rel_l2_mean']:.4f} +- {r['rel_l2_std']:.4f}  "
              f"trainable {r['trainable_params']}")
    return results


if __name__ == "__main__":
    main()
