"""Run every benchmark and rewrite ``benchmarks/RESULTS.md`` (``make bench``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_ode  # noqa: E402
from common import RESULTS_DIR, machine  # noqa: E402

BENCHMARKS = {"ode_neural_dopri5": bench_ode.main}


def _summary(name: str, data: dict) -> list[str]:
    lines = [f"### {name}", "", "```", data.get("setup", ""), "```", "",
             "| case | median ms | min ms | NFE (forward) | max error | speed-up vs peer |",
             "|---|---|---|---|---|---|"]
    for case, r in data["results"].items():
        ratio = r.get("speedup_vs_torchdiffeq")
        err = r.get("max_error", float("nan"))
        lines.append(f"| {case} | {r['median_ms']:.2f} | {r['min_ms']:.2f} | "
                     f"{r.get('nfe_forward', '')} | {err:.2e} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} |")
    return lines + [""]


def main(argv=None) -> int:
    selected = (argv or sys.argv[1:]) or list(BENCHMARKS)
    for name in selected:
        print(f"== {name}")
        BENCHMARKS[name]()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
