"""Sphinx configuration for opflow's documentation site (``make docs``).

Built with ``-W``: every warning fails the build. Pages under ``api/``,
``_generated/`` (the solve table, the benchmark figures, the notebook
gallery) are written by ``_ext/opflow_docs.py`` at the start of each build.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import opflow  # noqa: E402

project = "opflow"
author = "the opflow developers"
copyright = "2026, the opflow developers"
release = opflow.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "opflow_docs",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated/*.md", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# -- cross-references -------------------------------------------------------
# Broken references fail the build. opflow's own names resolve through the
# public name each object is documented under (see opflow_docs.resolve_alias).
nitpicky = True
default_role = "py:obj"

# -- autodoc / autosummary --------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # document what __all__ lists, nothing else
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options: dict = {}
add_module_names = False

# -- numpydoc ---------------------------------------------------------------
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# Validation: the checks that fail the build (docs/contributing.md says what each
# means): no docstring (GL08), undocumented (PR01) or unknown (PR02, PR10)
# parameters, unknown or misordered sections (GL06, GL07), no summary (SS01).
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "PR10", "GL06", "GL07", "SS01"}
# Objects whose docstrings predate the check are listed, with what fails, in
# numpydoc_baseline.txt; they are exempt until fixed. Everything else must pass.
_BASELINE = [line.split()[0] for line in (HERE / "numpydoc_baseline.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]


def _constants() -> list[str]:
    """Public data (dicts, tuples, ...): numpydoc would validate their type's docstring."""
    import importlib
    import inspect

    from opflow_docs import public_modules

    names = []
    for modname in public_modules():
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)):
                names.append(f"{modname}.{name}")
    return names


numpydoc_validation_exclude = {
    *(rf"^{re.escape(name)}$" for name in _constants()),
    *(rf"^{re.escape(name)}$" for name in _BASELINE),
    r"\.__init__$",
    r"\.__call__$",
    r"\.__repr__$",
    r"\.forward$",  # nn.Module.forward: documented on the class
    r"\.extra_repr$",
    r"^opflow\.ReturnCode$",  # an Enum: its "parameters" are Enum's own
}

# -- intersphinx ------------------------------------------------------------
# The mappings below are used when their inventories can be fetched. The build
# machines have no network: an inventory that cannot be fetched within a few
# seconds is dropped (and OPFLOW_DOCS_OFFLINE=1 skips the attempt), and
# references into that project are then rendered as plain code, not links.
INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "xarray": ("https://docs.xarray.dev/en/stable", None),
}
intersphinx_timeout = 5
intersphinx_mapping = {}  # filled by opflow_docs.probe_intersphinx at config-inited

# -- MyST / notebooks -------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # render the stored outputs; never run notebooks here
nb_merge_streams = True

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"opflow {release}"
html_static_path: list[str] = []  # no static files of our own
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False

suppress_warnings: list[str] = []
if os.environ.get("OPFLOW_DOCS_QUICK"):
    autosummary_generate = False
