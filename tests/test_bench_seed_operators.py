"""Smoke test of benchmarks/bench_seed_operators.py at toy sizes (a few seconds):
the Navier-Stokes study (six models, rollout, resolution transfer), the
Kuramoto-Sivashinsky comparison and the plot run end to end."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_seed_operators.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_seed_operators", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_operator_benchmark_runs_at_toy_sizes(tmp_path):
    bench = _bench()
    torch.set_num_threads(1)
    results, transfer, info = bench.run_navier_stokes(
        n_train=2, n_test=2, n_transfer=1, res=16, max_res=32, epochs=1, unet_width=2,
        in_steps=2, out_steps=2)
    names = ["FNO", "DRIFT-Net", "DyMixOp", "U-Net", "function-space U-Net",
             "attention operator"]
    assert list(results) == ["persistence", *names]
    assert info["resolutions"] == [8, 16, 32] and info["n_pairs"] == 4
    assert info["coarse_solve_gap"] < 1e-3  # sampled fine data = data solved at 16^2
    for name in names:
        r = results[name]
        assert r["params"] > 0 and math.isfinite(r["test_rel_l2"]) and r["train_pairs_per_s"] > 0
        assert sorted(transfer[name]) == [8, 16, 32]
        assert all(math.isfinite(m["rel_l2"]) for m in transfer[name].values())
    # the same weights: the function-space U-Net equals the U-Net's parameter count
    assert results["U-Net"]["params"] == results["function-space U-Net"]["params"]
    ks, ks_info = bench.run_kuramoto_sivashinsky(n_train=2, n_test=1, epochs=1, width=4,
                                                 resolution=128, modes=8, n_saves=3,
                                                 rollout_steps=2)
    assert list(ks) == ["persistence", "FNO", "DyMixOp"] and ks_info["n_pairs"] == 6
    assert all(math.isfinite(r["one_step_rel_l2"]) for r in ks.values())
    payloads = bench.package(results, transfer, info, ks, ks_info, total_s=1.0)
    assert sorted(payloads) == ["seed_operators", "seed_operators_ks",
                                "seed_operators_resolution"]
    for payload in payloads.values():  # the convention of benchmarks/run.py's summary
        assert isinstance(payload["setup"], str)
        assert all(isinstance(r, dict) for r in payload["results"].values())
    assert payloads["seed_operators_resolution"]["results"]["FNO, rollout"].keys() == {
        "at_008", "at_016", "at_032"}
    path = tmp_path / "resolution.png"
    bench.plot_transfer(transfer, 16, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
