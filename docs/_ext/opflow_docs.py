"""Sphinx extension for opflow's documentation: generated pages and checks.

At the start of each build it writes

* ``api/*.rst``: one page per public module (the package ``opflow``, its
  top-level modules and every subpackage), each with an autosummary table of
  its ``__all__``. An object re-exported in several places is documented
  once, under the first public name found (``opflow.Field`` rather than
  ``opflow.field.Field``); the other pages link to it, and references to any
  of its names resolve to that page (:func:`resolve_alias`).
* ``_generated/solve_table.md``: every (problem, algorithm) pair that
  :func:`opflow.solve` handles, with the algorithm's options and the keywords
  ``solve`` accepts, from :func:`opflow.solve.registered_pairs` and
  :func:`opflow.solve.solver_keywords`.
* ``_generated/benchmarks_latest.md``: the latest figures, read from
  ``benchmarks/results/*.json``.
* ``_generated/notebooks/``: copies of ``notebooks/*.ipynb`` (rendered from
  their stored outputs, never executed) and ``_generated/gallery_index.md``.

It also drops intersphinx inventories that cannot be fetched (no network),
and renders references into those projects as plain code.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import urllib.request
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: modules that import optional packages at import time
OPTIONAL = {"opflow.kernels.triton_spectral", "opflow.kernels.triton_multigrid"}
#: first parts of dotted names that belong to other projects, by intersphinx key
EXTERNAL = {
    "torch": "torch", "numpy": "numpy", "np": "numpy", "xarray": "xarray", "xr": "xarray",
    "python": "python", "builtins": "python", "typing": "python", "collections": "python",
    "pathlib": "python", "os": "python", "argparse": "python", "dataclasses": "python",
    "enum": "python", "concurrent": "python", "dask": None, "h5py": None, "netCDF4": None,
    "matplotlib": None, "scipy": None, "triton": None, "distributed": None,
    "neuralop": None, "deepxde": None, "torchdiffeq": None, "torchsde": None,
}
#: plain words used as types in docstrings ("int", "array-like", ...)
PLAIN_TYPES = {
    "int", "float", "str", "bool", "None", "dict", "list", "tuple", "callable", "Callable",
    "object", "bytes", "type", "Any", "optional", "default", "sequence", "iterable",
    "Sequence", "Mapping", "Iterable", "Iterator", "Path", "path-like", "array-like",
    "Tensor", "Dataset", "DataArray", "Module", "ndarray", "Exception", "ValueError",
    "TypeError", "KeyError", "RuntimeError", "NotImplementedError", "complex", "number",
    "slice", "range", "set", "frozenset", "Generator", "Literal", "Union", "Optional",
}

_CANONICAL: dict[int, str] = {}  # id(object) -> the public name it is documented under
_OBJECTS: list[object] = []      # keeps the objects alive so their ids stay unique


def public_modules() -> list[str]:
    """The modules whose ``__all__`` is the public surface, in documentation order.

    ``opflow`` first, then its top-level modules, then every subpackage.
    """
    import opflow

    root = Path(opflow.__file__).parent
    top, packages = [], []
    for info in pkgutil.walk_packages([str(root)], prefix="opflow."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]) or info.name in OPTIONAL:
            continue
        if info.ispkg:
            packages.append(info.name)
        elif len(parts) == 2:
            top.append(info.name)
    names = []
    for name in ["opflow", *sorted(top), *sorted(packages)]:
        module = importlib.import_module(name)
        if getattr(module, "__all__", None) is not None:
            names.append(name)
    return names


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def write_api(srcdir: Path) -> None:
    """One page per public module, and ``api/index.rst``."""
    outdir = srcdir / "api"
    if outdir.exists():
        shutil.rmtree(outdir)
    outdir.mkdir()
    modules = public_modules()
    pages: dict[str, tuple[list[str], list[tuple[str, str]], list[str]]] = {}
    for modname in modules:
        module = importlib.import_module(modname)
        here, elsewhere, submodules = [], [], []
        for name in module.__all__:
            if name == "__version__":
                continue
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                submodules.append(obj.__name__)
                continue
            key = id(obj)
            if key in _CANONICAL:
                elsewhere.append((name, _CANONICAL[key]))
            else:
                _CANONICAL[key] = f"{modname}.{name}"
                _OBJECTS.append(obj)
                here.append(name)
        pages[modname] = (here, elsewhere, submodules)

    for modname, (here, elsewhere, submodules) in pages.items():
        lines = [_title(modname)]
        # opflow.solve is both a function (opflow.solve) and a module: the module
        # page must not claim the name.
        noindex = modname == "opflow.solve"
        lines += [f".. automodule:: {modname}", "   :no-members:"]
        if noindex:
            lines.append("   :no-index:")
        lines += ["", f".. currentmodule:: {modname}", ""]
        if here:
            lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
            lines += [f"   {name}" for name in here] + [""]
        if elsewhere:
            lines += [".. rubric:: Also available here", "",
                      "These names are documented under their main public name:", ""]
            lines += [f"* ``{modname}.{name}``: :obj:`{target}`" for name, target in elsewhere]
            lines.append("")
        if submodules:
            lines += [".. rubric:: Modules", ""]
            lines += [f"* :doc:`{sub}`" for sub in submodules if sub in pages]
            lines.append("")
        (outdir / f"{modname}.rst").write_text("\n".join(lines))

    index = [_title("API reference"),
             "Every public name, module by module: each module's ``__all__``. Objects",
             "re-exported by ``opflow`` are documented under their short name",
             "(``opflow.Field``); the other modules link there.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {m}" for m in modules]
    (outdir / "index.rst").write_text("\n".join(index) + "\n")


def _options(cls) -> str:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return ""
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return ", ".join(f"``{n}``" for n in names) or "none"


def _ref(cls) -> str:
    if id(cls) in _CANONICAL:
        return f"{{py:class}}`~{_CANONICAL[id(cls)]}`"
    # a private base class: name the public subclasses it covers
    subs = [c for c in _all_subclasses(cls) if id(c) in _CANONICAL]
    return f"`{cls.__name__}` (" + ", ".join(_ref(c) for c in subs) + ")"


def _all_subclasses(cls) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


def write_solve_table(gendir: Path) -> None:
    """The (problem, algorithm) table of :func:`opflow.solve`."""
    from opflow.solve import registered_pairs, solver_keywords

    rows = ["| problem | algorithm | algorithm options | `solve` keywords |",
            "|---|---|---|---|"]
    for ptype, atype in registered_pairs():
        prob, alg = ptype.__new__(ptype), atype.__new__(atype)
        keywords = solver_keywords(prob, alg)
        kw = "any" if keywords is None else (", ".join(f"`{k}`" for k in keywords) or "none")
        rows.append(f"| {_ref(ptype)} | {_ref(atype)} | {_options(atype)} | {kw} |")
    (gendir / "solve_table.md").write_text("\n".join(rows) + "\n")


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 or abs(value) >= 1e4 else f"{value:.2f}"
    return str(value).replace("|", "\\|")


def write_benchmarks(gendir: Path, results: Path) -> None:
    """The latest benchmark figures, one section and one table per results file."""
    lines = []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        m = data.get("machine", {})
        lines += [f"## {data.get('benchmark', path.stem)}", "",
                  f"Run {data.get('date', '?')} on {m.get('cpu', '?')}, {m.get('cores', '?')} "
                  f"cores, {m.get('threads', '?')} thread(s), torch {m.get('torch', '?')}, "
                  f"CUDA: {m.get('cuda') or 'none'}. File: `benchmarks/results/{path.name}`.",
                  "", "```text", data.get("setup", "").strip(), "```", ""]
        res = data.get("results", {})
        keys: list[str] = []
        for r in res.values():
            if isinstance(r, dict):
                keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
        if keys:
            lines += ["| case | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            for case, r in res.items():
                if not isinstance(r, dict):
                    continue
                cells = []
                for k in keys:
                    v = r.get(k, "")
                    cells.append(f"{v:.2f}x" if k.startswith("speedup") and isinstance(v, float)
                                 else _fmt(v))
                lines.append(f"| {case} | " + " | ".join(cells) + " |")
            lines.append("")
    (gendir / "benchmarks_latest.md").write_text("\n".join(lines) + "\n")


def _first_sentence(lines: list[str]) -> str:
    """The first sentence (at most 220 characters) of the first paragraph of ``lines``."""
    para: list[str] = []
    for line in lines:
        if not line.strip():
            if para:
                break
            continue
        para.append(line.strip().lstrip("*-").strip())
    text = " ".join(para)
    match = re.search(r"^(.{40,}?(?<! al)\.)(\s|$)", text)  # a sentence, not "et al."
    text = match.group(1) if match else text
    if len(text) > 220:
        text = text[:220].rsplit(" ", 1)[0] + " ..."
    if text.count("`") % 2:
        text = text.rsplit("`", 1)[0].rstrip() + " ..."
    return text.replace("|", "\\|")


def write_gallery(gendir: Path, notebooks: Path) -> None:
    """Copies of the notebooks (never executed here) and the gallery's index table."""
    out = gendir / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    rows = ["| notebook | what it shows |", "|---|---|"]
    toctree = ["```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    for path in sorted(notebooks.glob("*.ipynb")):
        shutil.copy2(path, out / path.name)
        nb = json.loads(path.read_text())
        title, summary = path.stem, ""
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "markdown":
                continue
            text = "".join(cell.get("source", [])).strip().splitlines()
            for i, line in enumerate(text):
                if line.startswith("# "):
                    title = line[2:].strip()
                    summary = _first_sentence(text[i + 1:])
                    break
            break
        rows.append(f"| [{title}](_generated/notebooks/{path.stem}.ipynb) | {summary} |")
        toctree.append(f"_generated/notebooks/{path.stem}")
    toctree.append("```")
    (gendir / "gallery_index.md").write_text("\n".join(rows + [""] + toctree) + "\n")


def generate(app, config=None) -> None:
    """Write every generated page (``config-inited``: before Sphinx looks for sources)."""
    srcdir = Path(app.srcdir)
    root = srcdir.parent
    gendir = srcdir / "_generated"
    if gendir.exists():
        shutil.rmtree(gendir)
    gendir.mkdir()
    write_api(srcdir)
    write_solve_table(gendir)
    write_benchmarks(gendir, root / "benchmarks" / "results")
    write_gallery(gendir, root / "notebooks")


def probe_intersphinx(app, config) -> None:
    """Keep the intersphinx mappings whose inventory can be fetched now."""
    kept = {}
    offline = bool(os.environ.get("OPFLOW_DOCS_OFFLINE"))
    for key, (url, inv) in config.INTERSPHINX.items():
        if offline:
            break
        try:
            with urllib.request.urlopen(f"{url}/objects.inv",
                                        timeout=config.intersphinx_timeout) as r:
                r.read(16)
            kept[key] = (url, inv)
        except Exception as exc:  # no network: the build goes on without links there
            logger.info(f"intersphinx: {key} inventory unreachable ({exc}); "
                        "its references render as plain code")
    config.intersphinx_mapping = kept


def _lookup(path: str):
    """The object a dotted opflow name denotes, or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(path: str) -> str | None:
    """The documented name of the object ``path`` denotes (a member: its class's)."""
    parts = path.split(".")
    for cut in range(len(parts), 1, -1):
        obj = _lookup(".".join(parts[:cut]))
        if obj is not None and id(obj) in _CANONICAL:
            return ".".join([_CANONICAL[id(obj)], *parts[cut:]])
    return None


def _context(node) -> list[str]:
    """Dotted names whose scope a reference in ``node`` is written in, innermost first."""
    scopes = []
    source = node.source or ""
    if "docstring of " in source:  # "path.py:docstring of opflow.mod.Class.method"
        owner = source.split("docstring of ", 1)[1].split(":")[0]
        parts = owner.split(".")
        scopes += [".".join(parts[:cut]) for cut in range(len(parts), 0, -1)]
    modname, clsname = node.get("py:module") or "", node.get("py:class") or ""
    if modname and clsname:
        scopes.append(f"{modname}.{clsname}")
    if modname:
        scopes.append(modname)
    return scopes


def resolve_alias(app, env, node, contnode):
    """``missing-reference``: resolve a Python reference Sphinx did not find.

    * an opflow name (an alias such as ``opflow.field.Field``, or a name relative
      to the module or class whose docstring holds the reference) links to the
      page of the object it denotes;
    * an opflow object that exists but is not public (a private helper named in a
      docstring) renders as code, without a link;
    * a name from another project that no loaded inventory resolves (none is
      loaded offline) renders as code.

    Anything else stays unresolved, and fails the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip(".~")
    candidates = [target] + [f"{scope}.{target}" for scope in _context(node)]
    domain = env.get_domain("py")
    exists = False
    for cand in candidates:
        if not cand.startswith("opflow"):
            continue
        canonical = _canonical(cand)
        if canonical:
            ref = domain.resolve_xref(env, node["refdoc"], app.builder, "obj", canonical,
                                      node, contnode)
            if ref is not None:
                return ref
        if _lookup(cand) is not None:
            exists = True
    if exists:
        return contnode
    if target.split(".")[0] in EXTERNAL:
        # another project's name that its inventory (when loaded) did not resolve: the
        # build must not depend on what other projects publish
        return contnode
    if target in PLAIN_TYPES:
        return contnode
    return None


_STAR = re.compile(r"(?<=[(\[,\s])\*(?=[A-Za-z_(.])")


def escape_stars(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: ``(*batch, channels)`` is a shape, not emphasis.

    Escapes a ``*`` that opens a word inside a line (not a ``*args`` name at the
    start of a line), outside double-backquoted literals and math roles.
    """
    for i, line in enumerate(lines):
        if "*" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        parts = re.split(r"(``.*?``|:math:`.*?`|`[^`]*`)", line[indent:])
        head = parts[0]
        lead = ""
        if head.startswith("*"):  # a parameter name such as *args or **kwargs
            lead = re.match(r"\*+\w*", head).group(0)
            head = head[len(lead):]
        parts[0] = lead + _STAR.sub(r"\\*", head)
        for j in range(2, len(parts), 2):
            parts[j] = _STAR.sub(r"\\*", parts[j])
        lines[i] = line[:indent] + "".join(parts)


def _sections(lines: list[str]) -> list[int]:
    """Indices of numpydoc section headers (a title line over a line of dashes)."""
    return [i for i in range(len(lines) - 1)
            if lines[i].strip() and set(lines[i + 1].strip()) == {"-"}
            and len(lines[i + 1].strip()) == len(lines[i].strip())]


def inherit_parameters(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: a class without a Parameters section shows the one
    of the class its docstring names ("Parameters as :class:`LangevinSDE`"), or else
    of its nearest opflow base class (``Tsit5`` takes ``AdaptiveRK``'s options)."""
    if what != "class" or not inspect.isclass(obj):
        return
    if any(lines[i].strip() == "Parameters" for i in _sections(lines)):
        return
    # "Parameters as :class:`LangevinSDE`" / "Same parameters and call as ...": that class's
    same = re.search(r"[Pp]arameters (?:and call )?as :class:`~?([\w.]+)`", "\n".join(lines))
    sources = list(obj.__mro__[1:])
    if same:
        module = importlib.import_module(obj.__module__)
        named = _lookup(same.group(1)) or getattr(module, same.group(1).split(".")[-1], None)
        if inspect.isclass(named):
            sources.insert(0, named)
    for base in sources:
        if not base.__module__.startswith("opflow"):
            continue
        doc = (inspect.getdoc(base) or "").splitlines()
        heads = _sections(doc)
        starts = [i for i in heads if doc[i].strip() == "Parameters"]
        if not starts:
            continue
        start = starts[0]
        end = min([i for i in heads if i > start] + [len(doc)])
        section = doc[start:end]
        while section and not section[-1].strip():
            section.pop()
        own = _sections(lines)
        at = own[0] if own else len(lines)
        lines[at:at] = ["", *section, ""]
        return


def adopt_inherited_docstring(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring``: a method that overrides a documented one shows the
    inherited docstring (autodoc's default); numpydoc's GL08 check reads the
    object's own ``__doc__``, so this gives the override that docstring, in the
    build process only. A method with no docstring anywhere still fails GL08."""
    if what not in ("method", "property", "attribute") or getattr(obj, "__doc__", None):
        return
    inherited = inspect.getdoc(obj) if lines else None
    if not inherited and lines:
        inherited = "\n".join(lines)
    if inherited:
        target = getattr(obj, "__func__", obj)
        try:
            target.__doc__ = inherited
        except (AttributeError, TypeError):
            pass


def skip_foreign(app, what, name, obj, skip, options):
    """``autodoc-skip-member``: class attributes whose value is another project's function."""
    if callable(obj) and not inspect.isclass(obj):
        module = getattr(obj, "__module__", None) or ""
        if not module.startswith("opflow") and not isinstance(obj, property):
            return True
    return None


def setup(app):
    """Register the generators and the reference resolver."""
    app.add_config_value("INTERSPHINX", {}, "env")
    app.connect("config-inited", probe_intersphinx, priority=100)
    app.connect("config-inited", generate, priority=110)
    app.connect("missing-reference", resolve_alias, priority=900)
    app.connect("autodoc-process-docstring", escape_stars, priority=100)
    app.connect("autodoc-process-docstring", inherit_parameters, priority=110)
    app.connect("autodoc-process-docstring", adopt_inherited_docstring, priority=120)
    app.connect("autodoc-skip-member", skip_foreign)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
