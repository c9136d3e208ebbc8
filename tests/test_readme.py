"""The README's first example runs as written (on the demo's output file)."""

import re
from pathlib import Path

from opflow.demos.heat import run

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(out_dir="demo_output", n=16, batch=2, quiet=True)
    code = re.search(r"## A first example.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    sol = namespace["sol"]
    assert sol.success and sol.u.batch_shape[:2] == (5, 2)
    assert (tmp_path / "heat_continued.nc").exists()


def test_readme_pinn_example_runs():
    """The PINN section as written, with fewer iterations; the exact solution is
    u = sin(pi x) sin(pi y), so the Neumann data -pi sin(pi x) at y = 0 are consistent."""
    block = re.search(r"## Physics-informed networks.*?```python\n(.*?)```", README.read_text(),
                      re.S).group(1)
    assert "iterations=3000" in block and "lbfgs_iterations=500" in block
    short = block.replace("lbfgs_iterations=500", "lbfgs_iterations=2").replace(
        " iterations=3000", " iterations=30")
    namespace: dict = {}
    exec(compile(short, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    sol, u = namespace["sol"], namespace["u"]
    assert sol.success and u.values.shape[-2:] == (65, 65)
    history = sol.u.history["total"]
    assert len(history) >= 30 and history[29] < history[0]
    assert set(sol.u.losses) == {"residual", "dirichlet", "neumann", "dirichlet2"}


def test_readme_implicit_solves_example_runs():
    block = re.search(r"## Implicit solves.*?```python\n(.*?)```", README.read_text(),
                      re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    sol, p, stiff = namespace["sol"], namespace["p"], namespace["stiff"]
    assert sol.success and stiff.success and stiff.stats.steps < 1000
    u = sol.u.detach()
    assert float((p.grad - 1 / (3 * u**2 + 1)).abs().max()) < 1e-10
    assert abs(float(stiff.u[-1, 0]) - 1.7866e-2) < 1e-5  # Robertson y1(1e5), scipy Radau


def _command_lines(text: str):
    """``opflow ...`` lines of the fenced bash blocks, continuation lines joined."""
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("opflow "):
                yield line


def test_every_cli_line_of_the_readme_and_docs_parses(capsys):
    """Each ``opflow`` command shown in README.md and docs/ parses with today's flags
    (no deprecated spelling, no usage error)."""
    import shlex

    from opflow.cli import build_parser

    root = README.parent
    pages = [README, *sorted((root / "docs").rglob("*.md"))]
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
