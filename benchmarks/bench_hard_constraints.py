"""Hard physical constraints (PI-HC) and their mixture of experts (PI-HC-MoE) on diffusion-sorption.

After Chalapathi, Du and Krishnapriyan (ICLR 2024), at a CPU size. Data:
``opflow.data.generate("diffusion-sorption")`` (PDEBench's 1-D problem, u_t =
D / R(u) u_xx on x in [0, 1], t in [0, 500], u(0, t) = 1, u0 one value ~ U(0,
0.2) per sample), NX cells x NT saved times, N_TRAIN training and N_TEST unseen
test initial conditions. Input: (u0, x, t / t_train_end) broadcast over the
(x, t) grid; basis: FNO(3 -> 16 basis fields, modes MODES, width WIDTH,
LAYERS layers, no positional channels). Residual (the paper's form): u_t -
D / R(u) u_xx by finite differences on the grid; condition rows u(t=0) = u0
and u(x_min) = 1. soft: the same network, 16 trainable weights shared by all
samples (hard=False); hard: one least-squares solve per sample, POINTS
residual rows drawn on the whole grid; MoE: 4 experts along x (the reference
code's num_experts [1, 4] over (t, x)), POINTS rows drawn in each expert's
block. Levenberg-Marquardt, ridge 1e-8 (the reference's row weight 1e-4,
squared). Training is residual-only, as in the paper (no solution data):
Trainer(layer, loss=layer.residual_loss), Adam lr 1e-3 halved every third of
the steps, gradient clip 1, batch BATCH, EPOCHS epochs, seeds SEEDS. Error:
relative L2 over the whole (x, t) grid of each test sample, mean over the
test set; mean +- sd over seeds. Extrapolation: trained on the first half of
the time window only (t <= 250), predicted on the whole window (the hard
layers then solve the constraint on the longer grid too), error on t > 250.
Timing: one sample, a TIME_GRID grid, hard with P rows versus 4 experts with
P rows each, P = 1e2, 1e3, 1e4; training step = forward, residual loss,
backward; prediction = forward under no_grad; medians of interleaved runs.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import time_interleaved, write_result  # noqa: E402

from opflow import Field, Grid  # noqa: E402
from opflow.constraints import GridCondition, HardConstraint, Partition, initial_condition  # noqa: E402
from opflow.data import generate  # noqa: E402
from opflow.data.diffusion_sorption import PARAMETERS, retardation  # noqa: E402
from opflow.operators import FNO  # noqa: E402
from opflow.solvers.nonlinear import LevenbergMarquardt  # noqa: E402
from opflow.solvers.pinn import d  # noqa: E402
from opflow.train import Trainer  # noqa: E402

T_END = 500.0
SIZE = {"nx": 32, "nt": 21, "n_train": 64, "n_test": 50, "batch": 8, "epochs": 4,
        "points": 64, "modes": (8, 5), "width": 16, "layers": 2, "seeds": (0, 1, 2),
        "extrapolation_seeds": (0,), "time_grid": (128, 80), "time_points": (100, 1000),
        "time_repeat": 2}
PUBLISHED = {"soft": (85.93, 5.07), "hard": (7.55, 8.10), "MoE": (3.60, 2.93)}
PUBLISHED_EXTRAPOLATION = {"soft": 805.6, "hard": 48.0, "MoE": 14.8}
KINDS = {"soft": {"hard": False}, "hard": {}, "MoE": {"partition": Partition(x=4)}}
N_BASIS = 16


def sorption(x, u):
    """PDEBench's diffusion-sorption residual, ``u_t - D / R(u) u_xx``."""
    return d(u, x, "t") - PARAMETERS["D"] / retardation(u.clamp_min(0.0)) * d(u, x, "x", 2)


CONDITIONS = (initial_condition(), GridCondition(lambda x, u, a: u - 1.0, "x_min"))


def dataset(n: int, nx: int, nt: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``u0 (n,)`` and solutions ``u (n, nx, nt)`` from the generate recipe."""
    ds = generate("diffusion-sorption", n, resolution=nx, seed=seed, progress=False,
                  chunk=max(n, 1), n_t=nt, t_end=T_END, rtol=1e-5)
    u = torch.as_tensor(ds["u"].values, dtype=torch.float64).reshape(n, nt, nx)
    u0 = torch.as_tensor(ds["u0"].values, dtype=torch.float64).reshape(n, nx)[:, 0]
    return u0, u.transpose(1, 2).contiguous()


def grid_for(nx: int, nt: int, t_end: float = T_END) -> Grid:
    return Grid.uniform(x=(0.5 / nx, 1 - 0.5 / nx, nx), t=(0.0, t_end, nt))


def inputs(u0: torch.Tensor, grid: Grid, t_scale: float) -> Field:
    """``(u0, x, t / t_scale)`` on the grid: ``(B, 3, nx, nt)`` float32."""
    B = u0.shape[0]
    x, t = grid.mesh(torch.float64)
    values = torch.stack([u0.reshape(B, 1, 1).expand(B, *grid.shape),
                          x.expand(B, *grid.shape), (t / t_scale).expand(B, *grid.shape)], 1)
    return Field(values.float(), grid)


def make_layer(kind: str, seed: int, size: dict, points=None) -> HardConstraint:
    torch.manual_seed(seed)
    basis = FNO(3, N_BASIS, modes=size["modes"], width=size["width"], n_layers=size["layers"],
                positional=False)
    return HardConstraint(basis, sorption, N_BASIS, points=points or size["points"],
                          ridge=1e-8, conditions=CONDITIONS, solver=LevenbergMarquardt(),
                          seed=seed, **KINDS[kind])


def train(kind: str, seed: int, a: Field, size: dict) -> tuple[HardConstraint, float]:
    layer = make_layer(kind, seed, size)
    steps = size["epochs"] * math.ceil(a.values.shape[0] / size["batch"])

    def schedule(opt, total):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 3), gamma=0.5)

    trainer = Trainer(layer, loss=layer.residual_loss, epochs=size["epochs"],
                      batch_size=size["batch"], lr=1e-3, grad_clip=1.0, scheduler=schedule,
                      progress=False, seed=seed)
    start = time.perf_counter()
    unused = Field(torch.zeros_like(a.values[:, :1]), a.grid)   # residual-only: no solution data
    trainer.fit((a, unused))
    return layer, time.perf_counter() - start


def rel_l2(layer: HardConstraint, a: Field, u: torch.Tensor, t_from: int = 0) -> float:
    """Mean over samples of ``|pred - u| / |u|`` on the time nodes ``t_from:``, in %."""
    layer.eval()
    out = []
    with torch.no_grad():
        for i in range(0, u.shape[0], 10):
            pred = layer(a[i:i + 10]).values[:, 0].to(torch.float64)[..., t_from:]
            true = u[i:i + 10, :, t_from:]
            out.append((pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1))
    return 100 * float(torch.cat(out).mean())


def _stats(values: list[float]) -> tuple[float, float]:
    v = torch.tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std()) if len(values) > 1 else 0.0


def accuracy(size: dict, log=print) -> dict:
    nx, nt = size["nx"], size["nt"]
    u0_tr, _ = dataset(size["n_train"], nx, nt, seed=0)
    u0_te, u_te = dataset(size["n_test"], nx, nt, seed=10_000)
    grid = grid_for(nx, nt)
    a_tr, a_te = inputs(u0_tr, grid, T_END), inputs(u0_te, grid, T_END)
    results = {}
    for kind in KINDS:
        errs, secs = [], []
        for seed in size["seeds"]:
            layer, sec = train(kind, seed, a_tr, size)
            errs.append(rel_l2(layer, a_te, u_te))
            secs.append(sec)
            log(f"{kind:5s} seed {seed}: test rel L2 {errs[-1]:.2f} % ({sec:.0f} s)")
        mean, sd = _stats(errs)
        results[f"diffusion-sorption {kind}"] = {
            "rel_l2_pct_mean": mean, "rel_l2_pct_sd": sd, "seeds": len(errs),
            "published_pct_mean": PUBLISHED[kind][0], "published_pct_sd": PUBLISHED[kind][1],
            "train_seconds": sum(secs) / len(secs), "per_seed_pct": errs}
    return results


def extrapolation(size: dict, log=print) -> dict:
    nx, nt = size["nx"], size["nt"]
    nt_train = nt // 2 + 1
    t_train = T_END * (nt_train - 1) / (nt - 1)
    u0_tr, _ = dataset(size["n_train"], nx, nt_train, seed=0)
    u0_te, u_te = dataset(size["n_test"], nx, nt, seed=10_000)
    a_tr = inputs(u0_tr, grid_for(nx, nt_train, t_train), t_train)
    a_te = inputs(u0_te, grid_for(nx, nt), t_train)
    a_in = inputs(u0_te, grid_for(nx, nt_train, t_train), t_train)
    results = {}
    for kind in KINDS:
        errs, inside = [], []
        for seed in size["extrapolation_seeds"]:
            layer, _ = train(kind, seed, a_tr, size)
            errs.append(rel_l2(layer, a_te, u_te, t_from=nt_train))
            inside.append(rel_l2(layer, a_in, u_te[:, :, :nt_train]))
            log(f"{kind:5s} seed {seed}: extrapolation rel L2 {errs[-1]:.2f} % "
                f"(inside the training window {inside[-1]:.2f} %)")
        mean, sd = _stats(errs)
        results[f"extrapolation {kind}"] = {
            "rel_l2_pct_mean": mean, "rel_l2_pct_sd": sd, "seeds": len(errs),
            "in_window_pct_mean": _stats(inside)[0],
            "published_pct_mean": PUBLISHED_EXTRAPOLATION[kind]}
    return results


def timing(size: dict, log=print) -> dict:
    nx, nt = size["time_grid"]
    grid = grid_for(nx, nt)
    a = inputs(torch.tensor([0.1], dtype=torch.float64), grid, T_END)
    results = {}
    for points in size["time_points"]:
        layers = {k: make_layer(k, 0, size, points=points) for k in ("hard", "MoE")}

        def step(layer):
            def run():
                out = layer(a)
                layer.residual_loss(out, out, a).backward()
            return run

        def predict(layer):
            def run():
                with torch.no_grad():
                    layer(a)
            return run

        cases = {f"{k} train": step(v) for k, v in layers.items()}
        cases.update({f"{k} predict": predict(v) for k, v in layers.items()})
        t = time_interleaved(cases, repeat=size["time_repeat"], warmup=1)
        for phase in ("train", "predict"):
            hard, moe = t[f"hard {phase}"]["median_ms"], t[f"MoE {phase}"]["median_ms"]
            results[f"{phase} step, {points} points per expert"] = {
                "hard_ms": hard, "moe_ms": moe, "speedup_moe": hard / moe,
                "grid": f"{nx}x{nt}"}
            log(f"{phase} {points} points: hard {hard:.0f} ms, MoE {moe:.0f} ms")
    return results


def run(size: dict | None = None, parts=("accuracy", "extrapolation", "timing"), log=print
        ) -> dict:
    """The benchmark at ``size`` (default SIZE): a results dict of dicts."""
    size = {**SIZE, **(size or {})}
    results = {}
    for part in parts:
        start = time.perf_counter()
        results.update({"accuracy": accuracy, "extrapolation": extrapolation,
                        "timing": timing}[part](size, log))
        log(f"{part}: {time.perf_counter() - start:.0f} s")
    return results


def main() -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = run()
    setup = __doc__.strip() + "\n\nSizes: " + ", ".join(f"{k}={v}" for k, v in SIZE.items())
    setup += f"\nWall time: {time.perf_counter() - start:.0f} s on one thread."
    write_result("hard_constraints", {"setup": setup, "results": results})
    return results


if __name__ == "__main__":
    main()
