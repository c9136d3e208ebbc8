"""Work killed with SIGKILL at random points resumes to the uninterrupted result.

Three kinds of job run in a subprocess: training (``Trainer`` with ``out_dir``
and ``resume=True``), ``opflow generate`` and ``opflow solve`` (a batch job).
Each trial waits until the job has written its first piece of work, sleeps a
seeded random delay, and kills it. At that moment every file under a final
name must be complete (a checkpoint that loads, a netCDF file that opens with
``verify=True``); then the same command is rerun to the end and its result is
compared with an uninterrupted run: training weights and the generated and
solved numbers bit-for-bit, which these components promise. One trial each
of training and generation runs by default (tests/test_batch.py kills a batch job in
the default run too); the slow suite adds ``TRIALS`` more seeded trials per kind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PYTHON, ROOT

from opflow.errors import FileFormatError
from opflow.io import open_dataset
from opflow.train import read_checkpoint

TRIALS = 4
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
JOB = str(Path(__file__).with_name("_train_job.py"))


def _commands(kind: str, tmp: Path) -> tuple[list[str], Path, Path]:
    """(argv, final output, the folder whose appearance means work has started)."""
    if kind == "train":
        run = tmp / "run"
        return [PYTHON, JOB, str(run)], run / "last.pt", run
    if kind == "generate":
        out = tmp / "darcy.nc"
        return ([PYTHON, "-m", "opflow.cli", "generate", "darcy", "--n", "16", "--resolution",
                 "33", "--chunk", "2", "--out", str(out)], out, tmp / ".darcy.nc.parts")
    out = tmp / "u.nc"
    return ([PYTHON, "-m", "opflow.batch", "solve", "darcy", "--data", str(tmp.parent / "a.nc"),
             "--vars", "a", "--out", str(out), "--chunk", "2", "--quiet"], out,
            tmp / ".u.nc.parts")


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]


def _kill_at_random(argv: list[str], started: Path, rng: random.Random) -> str:
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not started.exists():
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 1.0))
    if proc.poll() is not None:
        return "finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return "killed"


def _complete_files_only(folder: Path) -> int:
    """Every non-temporary file under a final name is whole; returns how many were checked."""
    checked = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or ".tmp-" in path.name:
            continue
        if path.suffix == ".pt":
            read_checkpoint(path)
        elif path.suffix == ".nc":
            try:
                open_dataset(path, verify=True).close()
            except FileFormatError as e:  # a partial file under a final name
                raise AssertionError(f"{path} is not a complete file: {e}") from None
        checked += 1
    return checked


def _result(kind: str, out: Path):
    if kind == "train":
        return read_checkpoint(out)["model"]
    with open_dataset(out) as ds:
        return {name: ds[name].values.copy() for name in ds.data_vars}


def _same(kind: str, a, b) -> bool:
    if kind == "train":
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _coefficients(path: Path) -> None:
    """24 log-normal Darcy coefficients on 65 x 65 points: the batch job's input."""
    import xarray as xr

    from opflow.io import save

    rng = np.random.default_rng(5)
    x = np.linspace(0.0, 1.0, 65)
    a = np.exp(rng.standard_normal((24, 65, 65)))
    save(xr.Dataset({"a": (("sample", "x", "y"), a)},
                    coords={"sample": np.arange(24), "x": x, "y": x}), path)


class _References:
    """Uninterrupted results, computed on first use (and the batch job's input file)."""

    def __init__(self, base: Path):
        self.base, self.results = base, {}

    def __getitem__(self, kind: str):
        if kind not in self.results:
            if kind == "solve" and not (self.base / "a.nc").exists():
                _coefficients(self.base / "a.nc")
            work = self.base / kind
            work.mkdir()
            argv, out, _ = _commands(kind, work)
            _run(argv)
            self.results[kind] = _result(kind, out)
        return self.results[kind]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return _References(tmp_path_factory.mktemp("reference"))


KILLS: dict[str, list[str]] = {}


def _trial(kind: str, seed: int, references: _References) -> None:
    expected = references[kind]
    work = references.base / f"{kind}-trial-{seed}"
    work.mkdir()
    argv, out, started = _commands(kind, work)
    rng = random.Random(f"{kind}-{seed}")
    how = _kill_at_random(argv, started, rng)
    KILLS.setdefault(kind, []).append(how)
    print(f"{kind} trial {seed}: {how}")
    _complete_files_only(work)
    if kind != "train":
        assert how == "finished before the kill" or not out.exists() or _same(
            kind, _result(kind, out), expected), "a final file from a killed run"
    _run(argv)  # resume to the end
    assert _same(kind, _result(kind, out), expected), f"{kind}: resumed != uninterrupted"
    leftovers = [p.name for p in work.rglob("*") if ".tmp-" in p.name or p.name.endswith(".parts")]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("kind", ["train", "generate"])
def test_one_random_kill_then_resume_matches(kind, references):
    _trial(kind, 0, references)


@pytest.mark.slow
def test_one_random_kill_of_a_batch_job_then_resume_matches(references):
    _trial("solve", 0, references)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, TRIALS + 1))
@pytest.mark.parametrize("kind", ["train", "generate", "solve"])
def test_more_random_kills_then_resume_match(kind, seed, references):
    _trial(kind, seed, references)
