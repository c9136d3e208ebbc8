"""The tutorials in notebooks/ run top to bottom (small sizes) and are stored without outputs.

Each notebook runs in a fresh kernel started from this interpreter (a
kernelspec written to a temporary folder, so no user-level Jupyter install
is involved), in a temporary working directory, with
``OPFLOW_NOTEBOOK_SMALL=1`` to shrink its sizes. The distributed-training
example runs under torchrun with two CPU processes in a slow test.
"""

from __future__ import annotations

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
KERNEL = "opflow-test-python"


def _kernel_manager(tmp: Path, env: dict[str, str]):
    """A KernelManager for a kernelspec that runs ``sys.executable`` with ``env``."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = tmp / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "opflow tests", "language": "python", "env": env}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm)


def run_notebook(path: Path, workdir: Path, small: bool = True, timeout: int = CELL_TIMEOUT):
    """Execute the notebook at ``path`` in ``workdir``; returns the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "IPYTHONDIR": str(workdir / ".ipython"), "MPLBACKEND": "module://matplotlib_inline."
           "backend_inline", "OPFLOW_NOTEBOOK_SMALL": "1" if small else "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    km = _kernel_manager(workdir / ".jupyter", env)
    client = nbclient.NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=timeout,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    nb = run_notebook(path, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert images >= 1, "every tutorial shows at least one figure"


def test_notebooks_exist_and_are_stored_without_outputs():
    assert len(NOTEBOOKS) >= 5
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: a code cell has outputs"
                assert cell.execution_count is None, f"{path.name}: an execution count"
        first = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
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
