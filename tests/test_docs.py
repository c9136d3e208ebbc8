"""The documentation site builds clean, its internal links resolve, and its pages
render with their navigation in a headless browser (slow: ``make test-all``).

The build is ``make docs``'s: Sphinx with warnings as errors (broken
cross-references, numpydoc validation, malformed docstrings), from a fresh
environment, into a temporary folder. The browser check runs Chromium
headless (``apt-get install chromium``) when it is installed; without it that
test is skipped and the HTML checks still run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.slow

for _module in ("sphinx", "numpydoc", "myst_nb", "pydata_sphinx_theme"):
    if importlib.util.find_spec(_module) is None:
        pytestmark = [pytest.mark.slow, pytest.mark.skip(reason=f"{_module} not installed "
                                                          "(pip install -e '.[docs]')")]


def _check_links():
    spec = importlib.util.spec_from_file_location("check_links", DOCS / "check_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module as ``make docs`` builds it."""
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {**os.environ, "OPFLOW_DOCS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-j", "2", "-q",
         "-d", str(out.parent / "doctrees"), "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"sphinx failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    return out


def test_build_has_every_page(site):
    for page in ["index", "getting_started", "guide/index", "guide/fields", "guide/solve",
                 "guide/operators", "guide/pinn", "guide/constraints", "guide/layers",
                 "guide/batch", "distributed", "reliability", "benchmarks", "gallery",
                 "api/index", "changelog", "contributing", "peers"]:
        assert (site / f"{page}.html").exists(), page
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    built = sorted(p.stem for p in (site / "_generated" / "notebooks").glob("*.html"))
    assert built == notebooks


def test_every_public_name_has_a_page(site):
    """Each name of each public module's ``__all__`` is documented: its own page, or a
    link from the module's page to the page of the same object."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import opflow_docs
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    import importlib as _il
    import inspect

    for modname in opflow_docs.public_modules():
        html = (site / "api" / f"{modname}.html").read_text()
        module = _il.import_module(modname)
        for name in module.__all__:
            if name == "__version__" or inspect.ismodule(getattr(module, name)):
                continue
            assert f">{name}<" in html or f"{modname}.{name}" in html, f"{modname}.{name}"
    assert (site / "api" / "generated" / "opflow.Field.html").exists()
    assert (site / "api" / "generated" / "opflow.solve.html").exists()


def test_solve_table_and_benchmarks_are_generated(site):
    from opflow.solve import registered_pairs

    solve = (site / "guide" / "solve.html").read_text()
    for _ptype, atype in registered_pairs():
        assert atype.__name__ in solve
    bench = (site / "benchmarks.html").read_text()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        assert path.stem in bench, path.stem


def test_internal_links_resolve(site):
    broken = _check_links().broken_links(site)
    assert not broken, "\n".join(broken[:50])


def test_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><body id="top"><a href="#top">ok</a><a href="missing.html">x</a>'
        '<a href="index.html#nowhere">y</a><a href="https://example.org/">ext</a></body></html>')
    broken = _check_links().broken_links(tmp_path)
    assert len(broken) == 2 and "missing.html" in broken[0] + broken[1]


def _navigation(html: str) -> None:
    assert 'class="bd-header' in html or "navbar" in html  # top navigation bar
    assert "bd-sidebar" in html                             # section navigation
    assert re.search(r'href="[^"]*getting_started.html"', html)


def test_pages_have_navigation(site):
    index = (site / "index.html").read_text()
    _navigation(index)
    api = (site / "api" / "generated" / "opflow.Field.html").read_text()
    _navigation(api)
    assert 'id="opflow.Field"' in api and "Parameters" in api and "Examples" in api


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
@pytest.mark.parametrize("page", ["index.html", "api/generated/opflow.Field.html"])
def test_pages_render_in_a_headless_browser(site, page, tmp_path):
    """Chromium renders the page with its scripts run: the DOM it dumps still holds the
    navigation, and a screenshot is written (kept under ``tmp_path`` to look at)."""
    url = (site / page).as_uri()
    flags = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    _navigation(dom.stdout)
    shot = tmp_path / "page.png"
    run = subprocess.run(flags + ["--window-size=1280,900", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # not a blank page


# (page, python blocks run in one namespace, in order): the self-contained examples.
# The others need data or long training (the PINN page's example runs as the
# README's, in tests/test_readme.py).
EXAMPLES = [("getting_started.md", [0]), ("guide/fields.md", [0, 1, 2]),
            ("guide/solve.md", [1, 2, 3]), ("guide/operators.md", [0]), ("guide/layers.md", [0]),
            ("guide/pinn.md", [1])]


@pytest.mark.parametrize("page,blocks", EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_guide_examples_run(page, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    namespace: dict = {}
    for i in blocks:
        exec(compile(code[i], f"docs/{page}[{i}]", "exec"), namespace)  # noqa: S102 - our docs
