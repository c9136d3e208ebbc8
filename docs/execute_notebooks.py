"""Execute the tutorials in notebooks/ at full size and store their outputs (``make notebooks``).

The documentation's gallery renders the outputs stored in each notebook (the
docs build never executes them); this script makes those outputs. Each
notebook runs in a fresh kernel started from this interpreter (a kernelspec
written to a temporary folder, with opflow imported from this checkout), in a
temporary working directory, and is written back with its outputs. The run is
recorded in the notebook's metadata (``metadata["opflow"]``: size, seconds,
opflow version); nbclient's per-cell timestamps and tqdm's "IProgress not
found" warning (ipywidgets missing from the running environment) are left
out, so a rerun changes only what the notebook shows.

``tests/test_notebooks.py`` runs the same kernels at small size
(``OPFLOW_NOTEBOOK_SMALL=1``) into temporary copies, and checks that the stored
notebooks hold outputs of a complete run.

Run: ``python docs/execute_notebooks.py [NAME ...]`` (default: every notebook;
a NAME is a file name or its stem, e.g. ``03_burgers_deeponet``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "opflow-notebooks-python"
#: the stored notebooks' kernelspec (what ``jupyter lab`` offers to run them with)
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def kernel_manager(folder: Path, env: dict[str, str]):
    """A KernelManager for a kernelspec in ``folder`` that runs ``sys.executable`` with ``env``."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = folder / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "opflow notebooks", "language": "python", "env": env}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm)


def run_notebook(path: Path, workdir: Path, small: bool = True, timeout: int = 240):
    """Execute the notebook at ``path`` in ``workdir``; returns the executed notebook.

    ``path`` is only read. ``small`` sets ``OPFLOW_NOTEBOOK_SMALL``; ``timeout``
    is the limit per cell in seconds.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "IPYTHONDIR": str(workdir / ".ipython"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "OPFLOW_NOTEBOOK_SMALL": "1" if small else "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    km = kernel_manager(workdir / ".jupyter", env)
    client = nbclient.NotebookClient(nb, km=km, kernel_name=KERNEL, timeout=timeout,
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


def store(path: Path, nb, seconds: float) -> None:
    """Write the executed ``nb`` to ``path``: outputs kept, timestamps dropped, run recorded."""
    import nbformat

    import opflow

    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":  # tqdm's notice that ipywidgets is not installed here
            cell.outputs = [o for o in cell.outputs if not (
                o.get("name") == "stderr" and "IProgress not found" in o.get("text", ""))]
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("widgets", None)
    nb.metadata["opflow"] = {"executed": "full size", "seconds": round(seconds),
                             "opflow_version": opflow.__version__}
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(names: list[str]) -> int:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if names:
        wanted = {Path(n).stem for n in names}
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            print(f"no such notebook: {sorted(unknown)}; have {[p.stem for p in paths]}")
            return 2
        paths = [p for p in paths if p.stem in wanted]
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="opflow-notebook-") as work:
            t0 = time.perf_counter()
            nb = run_notebook(path, Path(work), small=False, timeout=1800)
            seconds = time.perf_counter() - t0
        store(path, nb, seconds)
        print(f"{path.name}: {seconds:.0f} s, {path.stat().st_size / 1e3:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
