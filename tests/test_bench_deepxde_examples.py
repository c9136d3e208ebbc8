"""Smoke test of benchmarks/bench_deepxde_examples.py at toy size (a few seconds): both
libraries train DeepXDE's examples from the same weights on the same points, and with
Adam alone they follow the same path."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_deepxde_examples.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_deepxde_examples", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_networks_and_data_need_no_deepxde():
    bench = _bench()
    net = bench.glorot_mlp((2, 20, 20, 1), "Glorot normal", 0)
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in linears)
    again = bench.glorot_mlp((2, 20, 20, 1), "Glorot normal", 0)
    assert torch.equal(net[0].weight, again[0].weight)
    t, y = bench.lorenz_data()
    assert t.shape == (25, 1) and y.shape == (25, 3)
    assert y[0].tolist() == [-8.0, 7.0, 27.0] and abs(float(y[-1, 2]) - 27.0) < 30
    prob, _ = bench.opflow_problem(bench.EXAMPLES["burgers"])  # sampled conditions
    assert [c.points for c in prob.conditions] == [80, 160]


@pytest.mark.filterwarnings("ignore")
def test_both_libraries_run_the_examples_at_toy_size():
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    pytest.importorskip("deepxde")
    bench = _bench()
    threads = torch.get_num_threads()
    try:
        r = bench.compare("poisson_1d", seeds=(0, 1), scale=0.002)  # 20 Adam steps
        assert r["same_init"] and r["adam"] == 20 and r["seeds"] == "0,1"
        for a, b in zip(r["deepxde_runs"], r["opflow_runs"]):  # the same weights, points
            assert a["rel_l2"] == pytest.approx(b["rel_l2"], rel=1e-4)  # and loss: one path
        inv = bench.compare("lorenz_inverse", seeds=(0,), scale=0.0005)  # 10 Adam, 8 L-BFGS
        for lib in ("deepxde", "opflow"):
            assert all(math.isfinite(inv["stats"][f"{lib}_{k}_mean"]) for k in ("C1", "C2", "C3"))
            assert inv[f"{lib}_identified"].startswith("C1 ")
            assert math.isfinite(inv[f"{lib}_coef_relerr_max"])
        assert "opflow_rel_l2_mean" not in inv["stats"] and "+-" in r["opflow_rel_l2"]
    finally:
        torch.set_num_threads(threads)
