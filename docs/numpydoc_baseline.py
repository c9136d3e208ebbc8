"""Shrink ``numpydoc_baseline.txt``: ``python docs/numpydoc_baseline.py [--update]``.

Validates each listed object with numpydoc (the checks of ``conf.py``) and
prints those that now pass; ``--update`` removes them from the list. It never
adds lines: a new failure is fixed, not listed. The docs build is the judge:
it validates the docstrings as rendered (after ``_ext/opflow_docs.py`` has
processed them), so run ``make docs`` after an update.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "numpydoc_baseline.txt"
CHECKS = {"GL08", "PR01", "PR02", "PR10", "GL06", "GL07", "SS01"}  # as in conf.py


def still_failing(name: str) -> set[str]:
    """The checks ``name`` still fails."""
    from numpydoc.validate import validate

    try:
        errors = validate(name)["errors"]
    except Exception:  # not importable by that name any more: drop it
        return set()
    failing = {code for code, _ in errors if code in CHECKS}
    if "GL08" in failing and inspect.getdoc(_object(name)):
        # the build gives an override its inherited docstring (opflow_docs.py), which
        # numpydoc then checks for parameters: the inherited one must document them
        failing.discard("GL08")
        if "Parameters" not in (inspect.getdoc(_object(name)) or ""):
            failing.add("PR01")
    return failing


def _object(name: str):
    """The object a dotted name denotes (None when it cannot be imported)."""
    parts = name.split(".")
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


def main(argv: list[str]) -> int:
    """Report (and with ``--update`` remove) the entries that pass now."""
    sys.path.insert(0, str(HERE.parent))
    lines = BASELINE.read_text().splitlines()
    keep, fixed = [], []
    for line in lines:
        if not line.strip() or line.startswith("#"):
            keep.append(line)
            continue
        name = line.split()[0]
        failing = still_failing(name)
        if failing:
            keep.append(f"{name} {','.join(sorted(failing))}")
        else:
            fixed.append(name)
    for name in fixed:
        print(f"passes now: {name}")
    if "--update" in argv:
        BASELINE.write_text("\n".join(keep) + "\n")
        print(f"{BASELINE.name}: {len(fixed)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
