"""The README runs as written: its fenced blocks in order, in one folder.

Python blocks run by ``exec``; the ``opflow ...`` lines of bash blocks run
through :func:`opflow.cli.main` with ``OPFLOW_SMOKE=1`` (toy sizes, as the
README says). Lines that need the clone's set-up or several machines
(``make``, ``source``, ``python examples/...``, ``torchrun``) are not run here:
``make`` is the set-up itself, and the distributed example has its own tests.
The slow test runs the same blocks as a user would in a shell: every command
in its own process, the Python blocks at their full size.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = README.parent
# Lines of the README's bash blocks that are not `opflow` commands and are not run here.
NOT_RUN = ("make ", "source ", "python examples/", "torchrun ")
SHELL = ("bash", "sh", "console")


def _blocks(text: str) -> list[tuple[str, str, str]]:
    """``(section heading, language, code)`` of every fenced block, in order."""
    blocks, section = [], ""
    for match in re.finditer(r"^## ([^\n]*)$|^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if match.group(1) is not None:
            section = match.group(1).strip()
        else:
            blocks.append((section, match.group(2), match.group(3)))
    return blocks


def _lines(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.split(" #")[0].strip() for line in joined.splitlines()
            if line.split(" #")[0].strip() and not line.lstrip().startswith("#")]


def _command_lines(text: str):
    """``opflow ...`` lines of the fenced bash blocks, continuation lines joined."""
    for _, language, code in _blocks(text):
        if language in SHELL:
            yield from (line for line in _lines(code) if line.startswith("opflow "))


def _shorter_pinn(code: str) -> str:
    """The PINN block with fewer iterations (the slow test runs it as written)."""
    assert "iterations=3000" in code and "lbfgs_iterations=500" in code
    return code.replace("lbfgs_iterations=500", "lbfgs_iterations=2").replace(
        " iterations=3000", " iterations=30")


def _check_first_example(ns: dict) -> None:
    sol = ns["sol"]
    assert sol.success and sol.u.batch_shape[0] == 5
    assert Path("heat_continued.nc").exists()


def _check_pinn(ns: dict) -> None:
    """The exact solution is u = sin(pi x) sin(pi y), so the Neumann data -pi sin(pi x)
    at y = 0 are consistent."""
    sol, u = ns["sol"], ns["u"]
    assert sol.success and u.values.shape[-2:] == (65, 65)
    history = sol.u.history["total"]
    assert len(history) >= 30 and history[29] < history[0]
    assert set(sol.u.losses) == {"residual", "dirichlet", "neumann", "dirichlet2"}


def _check_implicit(ns: dict) -> None:
    sol, p, stiff = ns["sol"], ns["p"], ns["stiff"]
    assert sol.success and stiff.success and stiff.stats.steps < 1000
    u = sol.u.detach()
    assert float((p.grad - 1 / (3 * u**2 + 1)).abs().max()) < 1e-10
    assert abs(float(stiff.u[-1, 0]) - 1.7866e-2) < 1e-5  # Robertson y1(1e5), scipy Radau


CHECKS = {"A first example": _check_first_example,
          "Physics-informed networks": _check_pinn,
          "Implicit solves: nonlinear systems and stiff ODEs": _check_implicit}


def test_readme_runs_in_order(tmp_path, monkeypatch, capsys):
    """Every block in order in one empty folder, at the toy sizes of OPFLOW_SMOKE=1; the
    files each command writes are the next ones' inputs."""
    from opflow.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPFLOW_SMOKE", "1")
    checked, commands = set(), 0
    for section, language, code in _blocks(README.read_text()):
        if language == "python":
            if section == "Physics-informed networks":
                code = _shorter_pinn(code)
            namespace: dict = {}
            exec(compile(code, f"README.md ({section})", "exec"), namespace)  # noqa: S102
            if section in CHECKS:
                CHECKS[section](namespace)
                checked.add(section)
        elif language in SHELL:
            for line in _lines(code):
                if line.startswith(NOT_RUN):
                    continue
                assert line.startswith("opflow "), f"{section}: {line!r} is not run by the test"
                rc = main(shlex.split(line)[1:])
                err = capsys.readouterr().err
                assert rc == 0, f"{section}: {line!r} failed:\n{err}"
                assert "OPFLOW_SMOKE=1" in err or line.split()[1] in ("predict", "info"), line
                commands += 1
    assert checked == set(CHECKS) and commands >= 10
    assert Path("pred.nc").exists() and Path("u1.nc").exists() and Path("runs/pm").is_dir()


def test_every_file_a_block_reads_is_written_by_an_earlier_block():
    """``--data``/``--checkpoint`` of the commands and ``open_dataset`` of the Python blocks
    name files that an earlier block writes (``--out``, ``save``), files of the clone,
    or (``finetune --data``) a PDE family."""
    written: list[str] = []
    read = 0
    for section, language, code in _blocks(README.read_text()):
        if language == "python":  # (reads, writes) of the block, then of each command
            steps = [(re.findall(r"open_dataset\(\"([^\"]+)\"", code),
                      re.findall(r"save\([^,]+,\s*\"([^\"]+)\"", code))]
        elif language in SHELL:
            steps = []
            for line in _lines(code):
                if line.startswith("opflow "):
                    args = shlex.split(line)
                    pairs = list(zip(args, args[1:]))
                    steps.append(([v for k, v in pairs if k in ("--data", "--checkpoint")],
                                  [v for k, v in pairs if k == "--out"]))
        else:
            continue
        for reads, writes in steps:
            for path in reads:
                if "." not in path and "/" not in path:  # a family name (opflow finetune)
                    continue
                read += 1
                assert (ROOT / path).exists() or any(
                    path == w or path.startswith(w.rstrip("/") + "/") for w in written), (
                    f"{section}: {path} is read before any block writes it")
            written += writes
    assert read >= 6


def test_every_cli_line_of_the_readme_and_docs_parses(capsys):
    """Each ``opflow`` command shown in README.md and docs/ parses with today's flags
    (no deprecated spelling, no usage error)."""
    from opflow.cli import build_parser

    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    lines = [(page.name, line) for page in pages for line in _command_lines(page.read_text())]
    assert len(lines) >= 10, lines
    parser = build_parser()
    for page, line in lines:
        try:
            args = parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            raise AssertionError(f"{page}: {line!r} does not parse: "
                                 f"{capsys.readouterr().err}") from None
        assert not getattr(args, "_opflow_typed_flags", None), (page, line)
        assert "deprecated" not in capsys.readouterr().err, (page, line)


@pytest.mark.slow
def test_readme_runs_in_a_shell(tmp_path):
    """As a user would: each ``opflow`` line in its own process (``python -m opflow.cli``,
    the console script's code) with ``OPFLOW_SMOKE=1``, each Python block as a script at
    its full size, all in one folder, in order."""
    env = {**os.environ, "OPFLOW_SMOKE": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for i, (section, language, code) in enumerate(_blocks(README.read_text())):
        if language == "python":
            script = tmp_path / f"block_{i}.py"
            script.write_text(code)
            argvs = [[sys.executable, script.name]]
        elif language in SHELL:
            lines = [line for line in _lines(code) if not line.startswith(NOT_RUN)]
            argvs = [[sys.executable, "-m", "opflow.cli", *shlex.split(line)[1:]]
                     for line in lines]
        else:
            continue
        for argv in argvs:
            proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert proc.returncode == 0, f"{section}: {argv} failed:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "pred.nc").exists() and (tmp_path / "u1.nc").exists()


def test_the_benchmark_table_is_generated_from_the_stored_results():
    """No hand-copied figure: the README's table is what benchmarks/readme_table.py makes of
    benchmarks/results/*.json (`make bench` rewrites it; so does `python
    benchmarks/readme_table.py`)."""
    import importlib.util

    path = README.parent / "benchmarks" / "readme_table.py"
    spec = importlib.util.spec_from_file_location("readme_table", path)
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    text = README.read_text()
    expected = table.replace_table(text, table.render(table.load_results()))
    assert text == expected, "run `python benchmarks/readme_table.py` to regenerate the table"
    assert "not run" not in text.split(table.START)[1].split(table.END)[0]
    assert "8.7x smaller error" in text  # torchdiffeq's error over opflow's, not a rounded 13x
