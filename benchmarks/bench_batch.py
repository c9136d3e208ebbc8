"""Batch solve: peak memory against input size, and samples per second.

``opflow solve`` runs as a child process (``python -m opflow.batch solve``)
on input files of 1x, 4x and 16x a base number of samples with the same
``--chunk``; its peak resident memory comes from ``os.wait4`` (the child's
own ``ru_maxrss``). Bounded memory means the peak stays flat while the file
grows past it. ``samples_per_s`` is end to end (interpreter start, reading,
solving, writing the parts and assembling the compressed output) over the
wall time of the child. Cases: the heat equation on 128^2 (cheap FFT solve,
so IO dominates and the files get large) and Darcy 65^2 with multigrid
(rtol 1e-8, float64). Inputs are float64 noise written sample-chunk by
sample-chunk, uncompressed. Sizes: OPFLOW_BATCH_BASE (heat samples at 1x,
default 512), OPFLOW_BATCH_CHUNK (default 32).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

BASE = int(os.environ.get("OPFLOW_BATCH_BASE", 512))
CHUNK = int(os.environ.get("OPFLOW_BATCH_CHUNK", 32))
FACTORS = (1, 4, 16)
ROOT = Path(__file__).resolve().parents[1]


def _write_input(path: Path, name: str, n: int, size: int, periodic: bool,
                 positive: bool) -> None:
    """``name`` of dims (sample, x, y), written 64 samples at a time (bounded memory)."""
    import netCDF4

    rng = np.random.default_rng(0)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("sample", n)
        for d in ("x", "y"):
            nc.createDimension(d, size)
            c = nc.createVariable(d, "f8", (d,))
            c[:] = np.arange(size) / size if periodic else np.linspace(0, 1, size)
            c.opflow_periodic = int(periodic)
            c.opflow_bounds = np.array([0.0, 1.0])
        s = nc.createVariable("sample", "i8", ("sample",))
        s[:] = np.arange(n)
        v = nc.createVariable(name, "f8", ("sample", "x", "y"),
                              chunksizes=(min(n, 64), size, size))
        for start in range(0, n, 64):
            block = rng.standard_normal((min(64, n - start), size, size))
            v[start:start + len(block)] = np.where(block >= 0, 12.0, 3.0) if positive else block


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``python -m opflow.batch ARGV``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "opflow.batch", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"opflow solve failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def _case(folder: Path, problem: str, n: int, size: int, extra: list[str]) -> dict:
    var = "a" if problem == "darcy" else "u0"
    path = folder / f"{problem}_{n}.nc"
    _write_input(path, var, n, size, periodic=problem != "darcy", positive=problem == "darcy")
    out = folder / f"{problem}_{n}_out.nc"
    wall, rss = _run(["solve", problem, "--input", str(path), "--var", var, "--out", str(out),
                      "--chunk", str(CHUNK), "--quiet", *extra])
    result = {"samples": n, "grid": f"{size}x{size}", "chunk": CHUNK,
              "input_mib": path.stat().st_size / 2**20, "peak_rss_mib": rss, "wall_s": wall,
              "samples_per_s": n / wall}
    path.unlink()
    out.unlink()
    print(f"{problem:6s} {n:6d} samples  input {result['input_mib']:7.1f} MiB  peak RSS "
          f"{rss:6.1f} MiB  {wall:6.1f} s  {n / wall:7.1f} samples/s", flush=True)
    return result


def main() -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for f in FACTORS:
            results[f"heat128_x{f}"] = _case(folder, "heat", BASE * f, 128,
                                             ["--nu", "0.01", "--t-final", "0.1"])
        for f in FACTORS[:2]:
            results[f"darcy65_x{f}"] = _case(folder, "darcy", BASE // 4 * f, 65, [])
    heat = [results[f"heat128_x{f}"]["peak_rss_mib"] for f in FACTORS]
    summary = {"heat_rss_growth_16x_over_1x": heat[-1] / heat[0],
               "heat_input_16x_over_peak_rss": results["heat128_x16"]["input_mib"] / heat[-1]}
    print(f"peak RSS 16x / 1x: {summary['heat_rss_growth_16x_over_1x']:.3f}; the 16x input is "
          f"{summary['heat_input_16x_over_peak_rss']:.2f}x the job's peak RSS")
    results["summary"] = summary
    write_result("batch", {"setup": __doc__.strip(), "results": results})
    return results


if __name__ == "__main__":
    main()
