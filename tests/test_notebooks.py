"""The tutorials in notebooks/: they run top to bottom (small sizes), and are stored
with the outputs of a complete full-size run (the docs gallery renders those).

Each notebook runs in a fresh kernel started from this interpreter (a
kernelspec written to a temporary folder, so no user-level Jupyter install
is involved), in a temporary working directory, with
``OPFLOW_NOTEBOOK_SMALL=1`` to shrink its sizes; the executed copy stays in
memory (the stored file is never written). ``docs/execute_notebooks.py``
(``make notebooks``) runs them the same way at full size and stores the
outputs. The distributed-training example runs under torchrun with two CPU
processes in a slow test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell at the small sizes (they take a few seconds)
MAX_BYTES = 1_000_000  # a stored notebook with its outputs (figures at the inline default dpi)


def _executor():
    spec = importlib.util.spec_from_file_location(
        "execute_notebooks", ROOT / "docs" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(path: Path, workdir: Path, small: bool = True, timeout: int = CELL_TIMEOUT):
    """Execute the notebook at ``path`` in ``workdir`` (``path`` is only read)."""
    return _executor().run_notebook(path, workdir, small=small, timeout=timeout)


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == kind]


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    stored = path.read_bytes()
    nb = run_notebook(path, tmp_path)
    assert not _outputs(nb, "error")
    assert _images(nb) >= 1, "every tutorial shows at least one figure"
    assert path.read_bytes() == stored, "the run wrote to the stored notebook"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in (".ipython", ".jupyter"))
    assert not left, f"files left in the working folder (write under a temporary one): {left}"


def test_stored_notebooks_hold_outputs_of_a_complete_full_size_run():
    assert len(NOTEBOOKS) >= 5
    for path in NOTEBOOKS:
        size = path.stat().st_size
        assert size < MAX_BYTES, f"{path.name}: {size} bytes stored"
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        run = nb.metadata.get("opflow", {})
        assert run.get("executed") == "full size", (
            f"{path.name}: not stored from a full-size run (python docs/execute_notebooks.py)")
        code = [c for c in nb.cells if c.cell_type == "code"]
        counts = [c.execution_count for c in code]
        assert counts == list(range(1, len(code) + 1)), (
            f"{path.name}: code cells not all executed, in order, in one kernel: {counts}")
        assert not _outputs(nb, "error"), f"{path.name}: an error output"
        assert _images(nb) >= 1, f"{path.name}: no figure stored"
        first = "\n".join(c.source for c in code)
        assert "OPFLOW_NOTEBOOK_SMALL" in first, f"{path.name}: no SMALL switch"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_train_ddp_example_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(ROOT / "examples" / "train_ddp.py"), "--out", str(tmp_path / "run"),
           "--n-train", "32", "--n-test", "8", "--resolution", "17", "--epochs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_done"] == 2 and len(metrics["history"]) == 2
    assert "world size 2" in proc.stdout
    assert (tmp_path / "run" / "best.pt").is_file()
