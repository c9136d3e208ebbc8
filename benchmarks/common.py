"""Shared helpers for the benchmarks: timing, machine description, results."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

# OPFLOW_BENCH_RESULTS redirects the results (gpu_check.py keeps GPU runs apart)
RESULTS_DIR = Path(os.environ.get("OPFLOW_BENCH_RESULTS", Path(__file__).parent / "results"))


def time_call(fn: Callable[[], object], repeat: int = 10, warmup: int = 2) -> dict:
    """Median and min wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "repeat": repeat}


def time_interleaved(cases: dict[str, Callable[[], object]], repeat: int = 15,
                     warmup: int = 2) -> dict[str, dict]:
    """Time several callables in round-robin order, so that machine noise
    (other processes, frequency changes) hits every case alike."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"median_ms": statistics.median(v), "min_ms": min(v), "repeat": repeat}
            for name, v in samples.items()}


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_result(name: str, payload: dict) -> Path:
    """Write ``results/<name>.json`` (atomically) with machine and date added."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": _dt.datetime.now().isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh single-threaded Python with ``args`` as ``sys.argv[1:]``.

    The child prints one JSON object on its last line (for memory figures,
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` before and after the
    measured work: a fresh process keeps other cases' allocations out).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
