"""Run every benchmark and rewrite ``benchmarks/RESULTS.md`` (``make bench``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_adjoint_memory  # noqa: E402
import bench_batch  # noqa: E402
import bench_burgers_accuracy  # noqa: E402
import bench_darcy_accuracy  # noqa: E402
import bench_deepxde_examples  # noqa: E402
import bench_ernode  # noqa: E402
import bench_fno_memory  # noqa: E402
import bench_hard_constraints  # noqa: E402
import bench_kernels  # noqa: E402
import bench_lemon  # noqa: E402
import bench_multigrid  # noqa: E402
import bench_multitask  # noqa: E402
import bench_ode  # noqa: E402
import bench_operators  # noqa: E402
import bench_pinn  # noqa: E402
import bench_reaction_diffusion  # noqa: E402
import bench_sde  # noqa: E402
import bench_seed_operators  # noqa: E402
import bench_stable_sde  # noqa: E402
import bench_stiff  # noqa: E402
import bench_stiff_gradient  # noqa: E402
import readme_table  # noqa: E402
from common import RESULTS_DIR, machine  # noqa: E402

BENCHMARKS = {
    "ode_neural_dopri5": bench_ode.main,
    "adjoint_memory": bench_adjoint_memory.main,
    "ernode": bench_ernode.main,
    "multigrid_darcy": bench_multigrid.main,
    "sde_neural_euler": bench_sde.main,
    "stable_sde": bench_stable_sde.main,
    "operators": bench_operators.main,
    "pinn": bench_pinn.main,
    "darcy_accuracy": bench_darcy_accuracy.main,
    "burgers_accuracy": bench_burgers_accuracy.main,
    "kernels": bench_kernels.main,
    "fno_memory": bench_fno_memory.main,
    "multitask": bench_multitask.main,
    "batch": bench_batch.main,
    "lemon": bench_lemon.main,
    "stiff": bench_stiff.main,
    "stiff_gradient": bench_stiff_gradient.main,
    "reaction_diffusion": bench_reaction_diffusion.main,
    "seed_operators": bench_seed_operators.main,
    "hard_constraints": bench_hard_constraints.main,
    "deepxde_examples": bench_deepxde_examples.main,
}


_TIMING = ("median_ms", "min_ms")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 or abs(value) >= 1e4 else f"{value:.2f}"
    return str(value)


def _summary(name: str, data: dict) -> list[str]:
    """A markdown table: one row per case, timings first, then every other metric."""
    results = data["results"]
    keys: list[str] = []
    for r in results.values():
        keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
    keys = [k for k in _TIMING if k in keys] + sorted(k for k in keys if k not in _TIMING)
    lines = [f"### {name}", "", "```", data.get("setup", "").strip(), "```", "",
             "| case | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for case, r in results.items():
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.2f}x" if k.startswith("speedup") and isinstance(v, float)
                         else _fmt(v))
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_summary() -> None:
    """Rewrite RESULTS.md from the stored JSON results and NOTES.md, and the README's
    benchmark table (readme_table.py)."""
    m = machine()
    lines = ["# Benchmark results", "",
             f"Command: `make bench` (python benchmarks/run.py). Date: {dt.date.today()}. "
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
             f"({m['threads']} threads), CUDA: {m['cuda'] or 'none'}.", "",
             "Peers are measured in the same run, on the same inputs. Raw numbers: "
             "`benchmarks/results/*.json`.", ""]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        lines += _summary(path.stem, json.loads(path.read_text()))
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    out = HERE / "RESULTS.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out)
    print(f"wrote {out}")
    if readme_table.update_readme():
        print(f"updated the benchmark table of {readme_table.README}")


def main(argv=None) -> int:
    """``run.py [NAME ...]`` runs the named benchmarks (all by default);
    ``run.py --summary`` only rewrites RESULTS.md from the stored results."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--summary"]:
        unknown = [a for a in args if a not in BENCHMARKS]
        if unknown:
            print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)} "
                  "or --summary")
            return 2
        for name in args or list(BENCHMARKS):
            print(f"== {name}")
            BENCHMARKS[name]()
    write_summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
