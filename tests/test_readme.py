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
