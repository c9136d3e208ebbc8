"""Packaging: version plumbing (fast), and the wheel built by ``python -m build``
installed into a clean virtual environment and used there (slow).

The clean environment is a new venv with no opflow in it: the wheel is
installed with ``--no-deps``, and opflow's dependencies are made visible by a
``.pth`` file naming this interpreter's site-packages folders (the
equivalent of ``--system-site-packages`` for a venv-based interpreter; plain
paths, so the editable install of the checkout stays inactive there). The
smoke script runs from an empty folder without ``PYTHONPATH`` and checks
that ``opflow`` is imported from the new venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

import opflow
from opflow.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def test_version_comes_from_one_place():
    source = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in source
    assert 'version = { attr = "opflow._version.__version__" }' in source
    assert opflow.__version__.count(".") >= 2


def test_cli_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"opflow {opflow.__version__}"


def test_package_is_typed():
    assert (Path(opflow.__file__).parent / "py.typed").exists()
    assert 'opflow = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_license_is_an_spdx_expression():
    source = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in source and "license = {" not in source


def test_citation_and_changelog_match_the_version():
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {opflow.__version__}\n" in citation
    assert "cff-version: 1.2.0" in citation
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {opflow.__version__}" in changelog


SMOKE = textwrap.dedent('''
    import importlib.metadata, subprocess, sys, tempfile, pathlib
    import torch, opflow

    site = pathlib.Path(sys.prefix)
    assert pathlib.Path(opflow.__file__).resolve().is_relative_to(site.resolve()), opflow.__file__
    assert opflow.__version__ == importlib.metadata.version("opflow"), opflow.__version__
    assert (pathlib.Path(opflow.__file__).parent / "py.typed").exists()

    grid = opflow.Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 2.0, 8), periodic=("x",))
    x, y = grid.mesh()
    u = opflow.Field(torch.stack([torch.sin(6.28 * x) * y, x + y])[None], grid,
                     names=("u", "v"), units=("m/s", "K"))
    path = pathlib.Path(tempfile.mkdtemp()) / "u.nc"
    opflow.save(u, path)
    back = opflow.open_dataset(path).opflow.to_field(["u", "v"])
    opflow.testing.assert_fields_close(u, back)

    prob = opflow.ODEProblem(lambda t, y: -y, torch.ones(3, dtype=torch.float64), (0.0, 1.0))
    sol = opflow.solve(prob, opflow.Tsit5(rtol=1e-8, atol=1e-10))
    assert sol.retcode == opflow.ReturnCode.Success, sol.retcode
    assert abs(float(sol.u[-1][0]) - 0.36787944117144233) < 1e-6

    script = pathlib.Path(sys.executable).parent / "opflow"
    help_ = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "generate" in help_.stdout and "solve" in help_.stdout
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             check=True)
    assert version.stdout.strip() == "opflow " + opflow.__version__, version.stdout
    print("smoke ok", opflow.__version__)
''')


def _license_warnings(output: str) -> list[str]:
    """Lines of build or install output that warn about the license metadata."""
    return [line for line in output.lower().splitlines()
            if "license" in line and ("deprecat" in line or "warning" in line)]


@pytest.mark.slow
def test_wheel_installs_and_works_in_a_clean_venv(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    # sdist first, then the wheel built from the sdist: both artefacts are checked
    run = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not _license_warnings(run.stdout + run.stderr)
    wheels = list(dist.glob("opflow-*.whl"))
    sdists = list(dist.glob("opflow-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert wheels[0].name.startswith(f"opflow-{opflow.__version__}-")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "zz_opflow_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                              "--quiet", str(wheels[0])],
                             capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert not _license_warnings(install.stdout + install.stderr)
    meta = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                           "print(m.version('opflow'))"], capture_output=True, text=True,
                          env=env, cwd=tmp_path)
    assert meta.stdout.strip() == opflow.__version__

    work = tmp_path / "work"
    work.mkdir()
    (work / "smoke.py").write_text(SMOKE)
    smoke = subprocess.run([str(python), "smoke.py"], capture_output=True, text=True,
                           env=env, cwd=work, timeout=600)
    assert smoke.returncode == 0, smoke.stdout[-3000:] + smoke.stderr[-5000:]
    assert "smoke ok" in smoke.stdout
