"""Seed operators (issue #19): Navier-Stokes rollout, Kuramoto-Sivashinsky, resolution transfer.

Three result files: ``seed_operators`` (Navier-Stokes, six models),
``seed_operators_ks`` (DyMixOp against FNO) and ``seed_operators_resolution``
(the Navier-Stokes models on other grids; plot
``seed_operators_resolution.png``). Their ``setup`` texts below say what is
measured. Sizes: the OPFLOW_SEED_* environment variables (constants below).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS_DIR, write_result  # noqa: E402

from opflow import Field, Grid  # noqa: E402
from opflow.data import generate  # noqa: E402
from opflow.operators import (  # noqa: E402
    FNO,
    AttentionOperator,
    DRIFTNet,
    DyMixOp,
    FunctionSpaceUNet,
    UNet,
)
from opflow.train import Trainer  # noqa: E402


def _env(name: str, default: int) -> int:
    return int(os.environ.get(f"OPFLOW_SEED_{name}", default))


NS_N_TRAIN = _env("NS_N_TRAIN", 80)        # training trajectories (10 pairs each)
NS_N_TEST = _env("NS_N_TEST", 20)          # test trajectories at the training resolution
NS_N_TRANSFER = _env("NS_N_TRANSFER", 4)   # trajectories of the resolution study
NS_RES = _env("NS_RES", 32)                # training resolution
NS_MAX_RES = _env("NS_MAX_RES", 256)       # finest resolution of the study
NS_EPOCHS = _env("NS_EPOCHS", 10)
UNET_WIDTH = _env("UNET_WIDTH", 6)         # sets the parameter count of every model
KS_N_TRAIN = _env("KS_N_TRAIN", 80)        # trajectories (20 pairs each)
KS_N_TEST = _env("KS_N_TEST", 20)
KS_EPOCHS = _env("KS_EPOCHS", 8)
KS_WIDTH = _env("KS_WIDTH", 32)            # FNO width; DyMixOp's is matched to it

NS_SETUP = """\
Navier-Stokes: vorticity on the unit torus from `opflow generate navier-stokes`
(nu = 1e-3, forcing and initial law of Li et al. 2021, saved at t = 1..20),
solved with time step 1e-2 instead of the recipe's 1e-3 (at 64^2 the two agree
to 2e-7 relative at t = 20, for a tenth of the cost). Every model maps the 10
previous snapshots (10 channels) to the next one; it is trained on one-step
pairs (teacher forcing: windows t..t+9 -> t+10 of every training trajectory)
and tested by the autoregressive rollout t = 1..10 -> 11..20, feeding its own
predictions back. test_rel_l2 is the published metric: per trajectory the
relative L2 norm of the whole predicted space-time field (10 steps), averaged
over the test trajectories; test_first_step / test_last_step: the error of
step 11 / 20 alone. Six models at parameter counts within 10% of the U-Net's
(widths chosen to match it), the same Adam + OneCycle schedule, batch, epochs
and seed, per-channel normalisers fitted on the training pairs. Throughput:
training pairs per second (forward and backward, train_pairs_per_s) and
rollout steps per second (inference, batch 8), one thread, on a 2-core machine
shared with other jobs (load average 6-9 during the run: timings are noisy and
slow). Persistence (the last input repeated) is the trivial baseline."""

KS_SETUP = """\
Kuramoto-Sivashinsky: `opflow generate kuramoto-sivashinsky` (256 points,
L = 64 pi, burn-in to t = 100, saved every 1 for 20 steps). DyMixOp against
FNO, DyMixOp's width chosen to match FNO's parameter count, same schedule as
the Navier-Stokes models; one step u(t) -> u(t + 1) (one_step_rel_l2, over
every test pair) and the 10-step rollout from the first snapshot (space-time
relative L2, and the last step's). Persistence: u(t + 1) = u(t)."""

TRANSFER_SETUP = """\
Resolution transfer: the Navier-Stokes models of `seed_operators`, trained at
the training resolution, tested unchanged on trajectories of the same recipe
solved at the finest resolution and sampled at every coarser one (every 2nd,
4th, ... point): the same trajectories at every resolution, so the
differences are the resolution's alone. Two rows per model: the 10-step
rollout error and the first step's (columns: test resolution, points per
axis). Plot: seed_operators_resolution.png."""

NS_DT = 1e-2
BATCH, LR = 8, 2e-3
PARAM_TOLERANCE = 0.10


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _closest(build, target: int, widths=range(2, 257)) -> torch.nn.Module:
    """``build(width)`` for the width whose parameter count is closest to ``target``
    (counts grow with the width), built after ``torch.manual_seed(0)``."""
    best, best_gap = None, None
    for width in widths:
        gap = abs(_params(build(width)) - target)
        if best is not None and gap > best_gap:
            break
        best, best_gap = width, gap
    torch.manual_seed(0)
    return build(best)


def _torus(n: int) -> Grid:
    return Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), periodic=("x", "y"))


def _ns(n: int, resolution: int, seed: int, n_saves: int) -> tuple[torch.Tensor, object]:
    """Vorticity trajectories ``(n, n_saves, res, res)`` in float32, and the data set."""
    ds = generate("navier-stokes", n=n, resolution=resolution, seed=seed, progress=False,
                  chunk=16, n_saves=n_saves, dt=NS_DT)
    return torch.from_numpy(ds["w"].transpose("sample", "t", "x", "y").values).float(), ds


def coarse_solve_gap(ds_fine, res: int, n_saves: int) -> float:
    """Relative gap between the fine data sampled at ``res`` and a solve at ``res``
    from the same initial vorticity (Fourier-truncated to the coarse grid), first
    trajectory, all saved steps: how much "sampled" and "generated at res" differ."""
    from opflow.solvers.pde.spectral.recipes import navier_stokes_recipe_solve

    w0 = torch.from_numpy(ds_fine["w0"].transpose("sample", "x", "y").values[:1])
    n = w0.shape[-1]
    k = torch.fft.fftfreq(n, 1.0 / n).abs()
    keep = (k < res // 2)[:, None] & (k < res // 2)[None, :]
    w0 = torch.fft.ifft2(torch.fft.fft2(w0) * keep).real[..., ::n // res, ::n // res]
    coarse = navier_stokes_recipe_solve(Field(w0[:, None], _torus(res)), nu=1e-3,
                                        t_end=float(n_saves), n_saves=n_saves,
                                        dt=NS_DT).values[:, 0, 0]
    fine = torch.from_numpy(ds_fine["w"].transpose("sample", "t", "x", "y").values[0])
    fine = fine[..., ::n // res, ::n // res]
    return float((coarse - fine).norm() / fine.norm())


def ns_models(in_steps: int, res: int, unet_width: int) -> dict[str, torch.nn.Module]:
    """The six models for ``in_steps`` input snapshots, matched to the U-Net's size."""
    modes = min(8, res // 4)
    torch.manual_seed(0)
    unet = UNet(in_steps, 1, width=unet_width, levels=3, padding="circular")
    target = _params(unet)
    torch.manual_seed(0)
    fs_unet = FunctionSpaceUNet(in_steps, 1, width=unet_width, levels=3, padding="circular",
                                reference_resolution=res)
    return {
        "FNO": _closest(lambda w: FNO(in_steps, 1, modes=(modes, modes), width=w, n_layers=4),
                        target),
        "DRIFT-Net": _closest(lambda w: DRIFTNet(in_steps, 1, modes=modes, width=w, levels=2),
                              target),
        "DyMixOp": _closest(lambda w: DyMixOp(in_steps, 1, modes=(modes, modes), width=w,
                                              n_layers=4), target),
        "U-Net": unet,
        "function-space U-Net": fs_unet,
        "attention operator": _closest(lambda w: AttentionOperator(in_steps, 1, width=w,
                                                                   n_layers=4), target),
    }


def _windows(w: torch.Tensor, in_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step pairs: ``w[:, s:s+in_steps] -> w[:, s+in_steps]`` for every start ``s``."""
    starts = range(w.shape[1] - in_steps)
    a = torch.cat([w[:, s:s + in_steps] for s in starts])
    u = torch.cat([w[:, s + in_steps:s + in_steps + 1] for s in starts])
    return a, u


def _trainer(model: torch.nn.Module, epochs: int) -> Trainer:
    def one_cycle(opt, total):
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=total)

    return Trainer(model, loss="rel_l2", epochs=epochs, batch_size=BATCH, lr=LR,
                   scheduler=one_cycle, normalizers="auto", progress=False, seed=0,
                   device="cpu")


def _fit(trainer: Trainer, a: Field, u: Field) -> float:
    t0 = time.perf_counter()
    trainer.fit((a, u))
    return time.perf_counter() - t0


def rollout(predict, w: torch.Tensor, grid: Grid, in_steps: int) -> dict:
    """Autoregressive rollout of ``predict`` over ``w``'s steps after the first ``in_steps``.

    ``predict(Field (N, in_steps, *grid)) -> Field (N, 1, *grid)``; ``w`` is
    ``(N, T, *grid)``. Returns the space-time relative L2 error per trajectory
    averaged (``rel_l2``), the first and last steps' errors, and the
    predicted steps per second.
    """
    window, preds = w[:, :in_steps], []
    t0 = time.perf_counter()
    for _ in range(w.shape[1] - in_steps):
        pred = predict(Field(window, grid)).values
        preds.append(pred)
        window = torch.cat([window[:, 1:], pred], dim=1)
    seconds = time.perf_counter() - t0
    pred, true = torch.cat(preds, dim=1), w[:, in_steps:]
    err = (pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)
    step = (pred - true).flatten(2).norm(dim=2) / true.flatten(2).norm(dim=2)
    return {"rel_l2": float(err.mean()), "first_step_rel_l2": float(step[:, 0].mean()),
            "last_step_rel_l2": float(step[:, -1].mean()),
            "steps_per_s": pred.shape[0] * pred.shape[1] / seconds}


def _persistence(window: Field) -> Field:
    return Field(window.values[:, -1:], window.grid)


def run_navier_stokes(n_train: int, n_test: int, n_transfer: int, res: int, max_res: int,
                      epochs: int, unet_width: int, in_steps: int = 10,
                      out_steps: int = 10) -> tuple[dict, dict, dict]:
    """Train the six models at ``res``; test them there and at every power-of-two
    resolution from ``res / 2`` to ``max_res``.

    Returns
    -------
    results, transfer, info : dict
        Per model: parameters, training and test figures; per model and
        resolution: the rollout figures; sizes and timings of the data.
    """
    n_saves = in_steps + out_steps
    t0 = time.perf_counter()
    w_train, _ = _ns(n_train, res, seed=0, n_saves=n_saves)
    w_test, _ = _ns(n_test, res, seed=1, n_saves=n_saves)
    train_data_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    w_fine, ds_fine = _ns(n_transfer, max_res, seed=2, n_saves=n_saves)
    fine_data_s = time.perf_counter() - t0
    gap = coarse_solve_gap(ds_fine, res, n_saves)
    resolutions = [r for r in (res // 2, res, 2 * res, 4 * res, 8 * res, 16 * res)
                   if r <= max_res and max_res % r == 0]
    a, u = _windows(w_train, in_steps)
    grid = _torus(res)
    a, u = Field(a, grid), Field(u, grid)
    models = ns_models(in_steps, res, unet_width)
    target = _params(models["U-Net"])
    results = {"persistence": {"params": 0, **{
        f"test_{k}": v for k, v in rollout(_persistence, w_test, grid, in_steps).items()
        if k != "steps_per_s"}}}
    transfer: dict[str, dict[int, dict]] = {"persistence": {}}
    for r in resolutions:
        sub = w_fine[..., ::max_res // r, ::max_res // r]
        transfer["persistence"][r] = rollout(_persistence, sub, _torus(r), in_steps)
    for name, model in models.items():
        trainer = _trainer(model, epochs)
        seconds = _fit(trainer, a, u)
        test = rollout(trainer.predict, w_test, grid, in_steps)
        results[name] = {
            "params": _params(model), "params_vs_unet": _params(model) / target - 1.0,
            "width": model.config["width"], "epochs": epochs, "train_seconds": seconds,
            "train_pairs_per_s": len(u.values) * epochs / seconds,
            "final_train_loss": float(trainer.history[-1]["train_loss"]),
            "test_rel_l2": test["rel_l2"], "test_first_step_rel_l2": test["first_step_rel_l2"],
            "test_last_step_rel_l2": test["last_step_rel_l2"],
            "rollout_steps_per_s": test["steps_per_s"]}
        transfer[name] = {}
        for r in resolutions:
            sub = w_fine[..., ::max_res // r, ::max_res // r]
            transfer[name][r] = rollout(trainer.predict, sub, _torus(r), in_steps)
        print(f"NS  {name:22s} params {results[name]['params']:7d}  rollout rel L2 "
              f"{test['rel_l2']:.4f}  train {seconds:.0f} s  "
              + " ".join(f"{r}:{transfer[name][r]['rel_l2']:.3f}" for r in resolutions),
              flush=True)
    info = {"train_data_s": train_data_s, "fine_data_s": fine_data_s,
            "resolutions": resolutions, "n_pairs": len(u.values),
            "coarse_solve_gap": gap}
    return results, transfer, info


def run_kuramoto_sivashinsky(n_train: int, n_test: int, epochs: int, width: int,
                             resolution: int = 256, modes: int = 16,
                             n_saves: int = 20, rollout_steps: int = 10) -> tuple[dict, dict]:
    """DyMixOp against FNO (matched to FNO's size) on the one-step KS map."""
    t0 = time.perf_counter()
    trajs = []
    for n, seed in ((n_train, 0), (n_test, 1)):
        ds = generate("kuramoto-sivashinsky", n=n, resolution=resolution, seed=seed,
                      progress=False, chunk=32, n_saves=n_saves)
        u = torch.from_numpy(np.concatenate([ds["u0"].values[:, None],
                                             ds["u"].transpose("sample", "t", "x").values],
                                            axis=1)).float()
        trajs.append(u)
        length = float(ds["x"].values[1] - ds["x"].values[0]) * resolution
    data_s = time.perf_counter() - t0
    grid = Grid.uniform(x=(0.0, length, resolution), periodic=("x",))
    train, test = trajs
    a, u = (Field(v, grid) for v in _windows(train, 1))
    ta, tu = (Field(v, grid) for v in _windows(test, 1))
    modes = min(modes, resolution // 2)
    torch.manual_seed(0)
    fno = FNO(1, 1, modes=modes, width=width, n_layers=4, ndim=1)
    dymix = _closest(lambda w: DyMixOp(1, 1, modes=modes, width=w, n_layers=4, ndim=1),
                     _params(fno))

    def one_step(pred: torch.Tensor) -> float:
        return float(((pred - tu.values).flatten(1).norm(dim=1)
                      / tu.values.flatten(1).norm(dim=1)).mean())

    roll = test[:, :rollout_steps + 1]
    results = {"persistence": {"params": 0, "one_step_rel_l2": one_step(ta.values), **{
        f"rollout{rollout_steps}_{k}": v for k, v in rollout(_persistence, roll, grid, 1).items()
        if k != "steps_per_s"}}}
    for name, model in (("FNO", fno), ("DyMixOp", dymix)):
        trainer = _trainer(model, epochs)
        seconds = _fit(trainer, a, u)
        t0 = time.perf_counter()
        pred = trainer.predict(ta).values
        infer_s = time.perf_counter() - t0
        r = rollout(trainer.predict, roll, grid, 1)
        results[name] = {"params": _params(model), "width": model.config["width"],
                         "epochs": epochs, "train_seconds": seconds,
                         "train_pairs_per_s": len(u.values) * epochs / seconds,
                         "infer_samples_per_s": len(tu.values) / infer_s,
                         "one_step_rel_l2": one_step(pred),
                         f"rollout{rollout_steps}_rel_l2": r["rel_l2"],
                         f"rollout{rollout_steps}_last_step_rel_l2": r["last_step_rel_l2"]}
        print(f"KS  {name:8s} params {results[name]['params']:7d}  one-step rel L2 "
              f"{results[name]['one_step_rel_l2']:.4f}  rollout {r['rel_l2']:.4f}  "
              f"train {seconds:.0f} s", flush=True)
    return results, {"data_s": data_s, "n_pairs": len(u.values), "length": length}


def plot_transfer(transfer: dict, train_res: int, path: Path) -> None:
    """Rollout error (and first-step error) against resolution, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, by_res in transfer.items():
        res = sorted(by_res)
        style = {"linestyle": ":", "color": "gray"} if name == "persistence" else {}
        for ax, key in zip(axes, ("rel_l2", "first_step_rel_l2")):
            ax.plot(res, [by_res[r][key] for r in res], marker="o", label=name, **style)
    titles = ("10-step rollout (t = 11..20)", "first predicted step (t = 11)")
    all_res = sorted({r for by_res in transfer.values() for r in by_res})
    for ax, title, key in zip(axes, titles, ("rel_l2", "first_step_rel_l2")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_res, [str(r) for r in all_res])
        ax.set_yscale("log")
        off = sorted({name for name, by_res in transfer.items()
                      if any(not m[key] <= 10.0 for m in by_res.values())})
        if off:  # diverged rollouts would flatten every other line
            ax.set_ylim(top=10.0)
            ax.text(0.02, 0.98, "above 10 or NaN (off the chart) at some resolutions: "
                    + ", ".join(off), transform=ax.transAxes, fontsize=7, va="top")
        ax.axvline(train_res, color="k", linewidth=0.8, linestyle="--")
        ax.set_xlabel("test resolution (grid points per axis)")
        ax.set_ylabel("relative L2 error (space-time, mean over trajectories)")
        ax.set_title(f"Navier-Stokes nu=1e-3: {title}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"Resolution transfer: trained at {train_res}x{train_res} (dashed line)")
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def package(ns: dict, transfer: dict, info: dict, ks: dict, ks_info: dict,
            total_s: float) -> dict[str, dict]:
    """The three result files (name -> ``{"setup", "results"}``) of one run."""
    spread = max(abs(r["params_vs_unet"]) for r in ns.values() if "params_vs_unet" in r)
    target = ns["U-Net"]["params"]
    reference = _params(FNO(10, 1, modes=(12, 12), width=20, n_layers=4))
    run = (f"This run (one thread; whole benchmark {total_s / 60:.1f} min): "
           f"Navier-Stokes at {NS_RES}x{NS_RES}"
           + (" (64^2 did not fit the 30-minute single-core budget: one training pair costs "
              "3-4x more there)" if NS_RES < 64 else ""))
    ns_setup = (
        f"{NS_SETUP}\n\n{run}, {NS_N_TRAIN} training trajectories ({info['n_pairs']} "
        f"pairs), {NS_N_TEST} test trajectories, {NS_EPOCHS} epochs, batch {BATCH}, Adam + "
        f"OneCycle max lr {LR}, U-Net width {UNET_WIDTH} (3 levels) as the size target, "
        f"largest parameter gap {spread:.1%}; data generation {info['train_data_s']:.0f} s.\n"
        f"Published reference (Li et al. 2021, FNO-2D, nu = 1e-3, 64^2, 1000 training "
        f"trajectories, 500 epochs, trained on the full rollout; that case runs to T = 50, "
        f"40 predicted steps): 0.0128. This run has {NS_N_TRAIN} trajectories, {NS_EPOCHS} "
        f"epochs, one-step training and 10 predicted steps, at {target / reference:.0%} of "
        f"that FNO's size ({reference} real parameters with 10 input steps, width 20, 12 "
        f"modes): its errors compare the models with each other, not with the paper.")
    ks_setup = (f"{KS_SETUP}\n\nThis run: {KS_N_TRAIN} / {KS_N_TEST} trajectories "
                f"({ks_info['n_pairs']} training pairs), {KS_EPOCHS} epochs, FNO width "
                f"{KS_WIDTH}, 16 modes, 4 layers; data generation {ks_info['data_s']:.0f} s.")
    tr_setup = (f"{TRANSFER_SETUP}\n\nThis run: trained at {NS_RES}^2; {NS_N_TRANSFER} "
                f"trajectories solved at {NS_MAX_RES}^2 ({info['fine_data_s']:.0f} s) and "
                f"sampled at {info['resolutions']}. A solve at {NS_RES}^2 from the same "
                f"initial vorticity (Fourier-truncated) differs from the samples by "
                f"{info['coarse_solve_gap']:.1e} relative: the flow is smooth at nu = 1e-3 "
                f"up to t = 20, so sampled and generated-at-resolution data are the same.")
    tr_results = {}
    for name, by_res in transfer.items():
        for key, label in (("rel_l2", "rollout"), ("first_step_rel_l2", "first step")):
            tr_results[f"{name}, {label}"] = {f"at_{r:03d}": m[key] for r, m in by_res.items()}
    return {"seed_operators": {"setup": ns_setup, "results": ns},
            "seed_operators_ks": {"setup": ks_setup, "results": ks},
            "seed_operators_resolution": {"setup": tr_setup, "results": tr_results}}


def main() -> dict:
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    ns, transfer, info = run_navier_stokes(NS_N_TRAIN, NS_N_TEST, NS_N_TRANSFER, NS_RES,
                                           NS_MAX_RES, NS_EPOCHS, UNET_WIDTH)
    spread = max(abs(r["params_vs_unet"]) for r in ns.values() if "params_vs_unet" in r)
    if spread > PARAM_TOLERANCE:
        raise RuntimeError(f"parameter counts differ by {spread:.1%} (> 10%): {ns}")
    ks, ks_info = run_kuramoto_sivashinsky(KS_N_TRAIN, KS_N_TEST, KS_EPOCHS, KS_WIDTH)
    payloads = package(ns, transfer, info, ks, ks_info, time.perf_counter() - t_start)
    for name, payload in payloads.items():
        write_result(name, payload)
    plot_transfer(transfer, NS_RES, RESULTS_DIR / "seed_operators_resolution.png")
    return payloads


if __name__ == "__main__":
    main()
