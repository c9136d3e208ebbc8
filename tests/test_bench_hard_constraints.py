"""Smoke test of benchmarks/bench_hard_constraints.py at toy size (the full run is `make bench`)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

import bench_hard_constraints as bench  # noqa: E402

TOY = {"nx": 8, "nt": 5, "n_train": 4, "n_test": 2, "batch": 4, "epochs": 1, "points": 6,
       "modes": (2, 2), "width": 4, "layers": 1, "seeds": (0,), "extrapolation_seeds": (0,),
       "time_grid": (8, 4), "time_points": (4,), "time_repeat": 1,
       "navier_stokes": {"n": 8, "nt": 5, "n_train": 2, "n_test": 1, "batch": 2, "epochs": 1,
                         "points": 6, "modes": (2, 2, 2), "width": 4, "layers": 1}}


def test_benchmark_runs_at_toy_size():
    results = bench.run(TOY, log=lambda *_: None)
    for kind in ("soft", "hard", "MoE"):
        for part in ("diffusion-sorption", "extrapolation"):
            r = results[f"{part} {kind}"]
            assert math.isfinite(r["rel_l2_pct_mean"]) and r["rel_l2_pct_mean"] >= 0
    assert all(isinstance(r, dict) for r in results.values())
    for kind in ("soft", "hard", "MoE"):
        assert math.isfinite(results[f"navier-stokes {kind}"]["rel_l2_pct"])
    spread = results["train step of 2 samples, 4 points per expert"]
    assert spread["moe_2_processes_ms"] > 0 and spread["hard_1_process_ms"] > 0
    r = results["train step, 4 points per expert"]
    assert r["hard_ms"] > 0 and r["moe_ms"] > 0 and r["speedup_moe"] > 0
