"""Neural SDE forward+backward: opflow EulerMaruyama against torchsde ``sdeint``.

Setup (ANCHORS.md): drift and diffusion MLPs 4 -> 64 -> 64 -> 4 (tanh; the
diffusion ends in a sigmoid), diagonal Ito noise, batch 256, Euler-Maruyama
with dt = 0.01 on [0, 1], 20 save points, loss = mean square of the
trajectory, float32, one intra-op thread (torch.set_num_threads(1)). Same
network weights, same inputs, same run, timings interleaved (3 to 15 rounds,
as many as fit in about a minute).

Direct backprop for ``opflow_euler`` / ``torchsde_euler``; the stochastic
adjoint for ``opflow_euler_adjoint`` (reverse stochastic Heun on the Stratonovich
form) / ``torchsde_euler_adjoint`` (torchsde's default adjoint method for Ito
diagonal noise, Milstein). opflow's Ito correction takes ``(dg/du) 1`` for
``dg_i/du_i``, exact only when ``g_i`` depends on ``u_i`` alone; this MLP
does not, and is timed as is (the tests check adjoint accuracy).

opflow hits the 20 save times exactly (each of the 19 intervals split into 6
equal steps <= dt: 114 steps); torchsde takes 100 steps of dt and
interpolates linearly to the save times. The same-path check solves with
both libraries on one opflow BrownianInterval (float64, 32 trajectories,
save times every 0.05, 100 steps each) and reports the largest difference of the forward
trajectories.
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from common import time_interleaved, write_result  # noqa: E402

import opflow  # noqa: E402
from opflow.solvers.sde import EulerMaruyama, SDEProblem  # noqa: E402

BATCH, DIM, HIDDEN, N_SAVE, DT = 256, 4, 64, 20, 0.01
TIME_BUDGET_S = 60.0  # timed rounds: as many as fit (3 to 15)
CHECK_BATCH = 32  # trajectories in the same-path check
# One intra-op thread for both libraries: on a shared 2-core machine, two
# threads make every GEMM wait for a descheduled thread, and single runs
# then vary by 50x (seen: 0.1 s to 7 s for the same solve).
THREADS = 1


def _mlp(last=None):
    layers = [nn.Linear(DIM, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
              nn.Linear(HIDDEN, DIM)]
    return nn.Sequential(*layers, *([last] if last is not None else []))


class NeuralSDE(nn.Module):
    """Drift and diffusion networks; also a torchsde SDE (``f``, ``g``)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self):
        super().__init__()
        self.drift = _mlp()
        self.diffusion = _mlp(nn.Sigmoid())

    def f(self, t, y):
        return self.drift(y)

    def g(self, t, y):
        return self.diffusion(y)


class _Drift(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, t, y):
        return self.net(y)


def main() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _run()
    finally:
        torch.set_num_threads(threads)


def _run() -> dict:
    torch.manual_seed(0)
    sde = NeuralSDE()
    y0 = torch.randn(BATCH, DIM)
    ts = torch.linspace(0, 1, N_SAVE)
    drift, diffusion = _Drift(sde.drift), _Drift(sde.diffusion)
    prob = SDEProblem(drift, diffusion, y0, (0.0, 1.0), noise="diagonal", sde_type="ito")
    alg = EulerMaruyama(dt=DT)
    seed = [0]

    def opflow_step(sensealg=None):
        sde.zero_grad()
        seed[0] += 1
        sol = opflow.solve(prob, alg, saveat=ts, seed=seed[0], sensealg=sensealg)
        sol.u.square().mean().backward()
        return sol

    cases = {
        "opflow_euler": lambda: opflow_step(),
        "opflow_euler_adjoint": lambda: opflow_step(opflow.BacksolveAdjoint()),
    }
    results: dict = {}
    try:
        import torchsde

        def tsde_step(fn):
            sde.zero_grad()
            ys = fn(sde, y0, ts, method="euler", dt=DT)
            ys.square().mean().backward()
            return ys

        cases["torchsde_euler"] = lambda: tsde_step(torchsde.sdeint)
        cases["torchsde_euler_adjoint"] = lambda: tsde_step(torchsde.sdeint_adjoint)
    except ImportError:
        torchsde = None
        print("torchsde not installed: peer cases skipped (pip install -e .[peers])")

    if torchsde is not None:
        results["check"] = _same_path_check(sde, y0, torchsde)
    start = time.perf_counter()
    for fn in cases.values():  # warm-up round, which also sizes the timed rounds
        fn()
    cycle = time.perf_counter() - start
    repeat = max(3, min(15, int(TIME_BUDGET_S / cycle)))
    for name, timing in time_interleaved(cases, repeat=repeat, warmup=0).items():
        results[name] = timing
    pairs = {"opflow_euler": "torchsde_euler", "opflow_euler_adjoint": "torchsde_euler_adjoint"}
    for ours, peer in pairs.items():
        if peer in results:
            results[ours]["speedup_vs_torchsde"] = (results[peer]["median_ms"]
                                                    / results[ours]["median_ms"])
    for name, r in results.items():
        if "median_ms" in r:
            ratio = r.get("speedup_vs_torchsde")
            print(f"{name:26s} {r['median_ms']:9.2f} ms (min {r['min_ms']:8.2f})"
                  + ("" if ratio is None else f"  {ratio:5.2f}x vs torchsde"))
    check = results.pop("check", None)
    setup = __doc__.strip()
    if check is not None:
        setup += f"\nSame-path check: {check}"
        print("same-path check:", check)
    write_result("sde_neural_euler", {"setup": setup, "results": results})
    return results


def _same_path_check(sde, y0, torchsde) -> dict:
    """opflow and torchsde forward trajectories driven by one opflow BrownianInterval.

    Save times on the dt grid (every 0.05), so that both take the same 100 steps;
    float64, so that step times agree to rounding (the path is rough: a time
    shifted by d moves W by about sqrt(d)).
    """
    import copy

    from opflow.solvers.sde import BrownianInterval

    sde = copy.deepcopy(sde).double()
    y0 = y0[:CHECK_BATCH].double()
    prob = SDEProblem(_Drift(sde.drift), _Drift(sde.diffusion), y0, (0.0, 1.0))
    bm = BrownianInterval(0.0, 1.0, (CHECK_BATCH, DIM), seed=1, dtype=y0.dtype)

    class Path(torchsde.BaseBrownian):
        shape, dtype, device, levy_area_approximation = bm.shape, bm.dtype, bm.device, "none"

        def __call__(self, ta, tb=None, return_U=False, return_A=False):
            return bm(float(ta), None if tb is None else float(tb))

        def __repr__(self):
            return repr(bm)

    ts = torch.linspace(0, 1, 21, dtype=torch.float64)
    with torch.no_grad():
        ys_peer = torchsde.sdeint(sde, y0, ts, method="euler", dt=DT, bm=Path())
        ys = opflow.solve(prob, EulerMaruyama(dt=DT), saveat=ts, brownian=bm).u
    return {"max_abs_diff_vs_torchsde_same_path": float((ys - ys_peer).abs().max()),
            "max_abs_state": float(ys_peer.abs().max())}


if __name__ == "__main__":
    main()
