"""Counting the ported peer cases, for the check that ``docs/peers.md`` states them.

Every case of a peer-port file is one collected pytest item (slow ones included,
the docs check itself excluded). A case whose test name contains ``refuse``
asserts opflow's clear refusal of a peer feature it lacks by design ("refused
with reason"); every other case asserts opflow's answer against the peer's
tolerance ("passing").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS_PAGE = ROOT / "docs" / "peers.md"
README = ROOT / "README.md"


def collected_counts(test_file: Path, exclude: str) -> dict[str, int]:
    """``{"ported", "passing", "refused"}`` for the items of ``test_file`` (all markers),
    leaving out the tests whose name contains ``exclude``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "", "-p", "no:cacheprovider",
         str(test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    ids = [line for line in out.stdout.splitlines() if "::" in line and exclude not in line]
    assert ids, out.stdout + out.stderr
    refused = sum("refuse" in i.split("::", 1)[1] for i in ids)
    return {"ported": len(ids), "passing": len(ids) - refused, "refused": refused}


def documented_counts(suite: str, page: Path = DOCS_PAGE) -> dict[str, int]:
    """The counts in the row of ``page``'s table (``docs/peers.md``, or the README's
    testing section) whose first cell is ``suite``."""
    for line in page.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == suite:
            numbers = [int(c) for c in cells if re.fullmatch(r"\d+", c)]
            return dict(zip(("ported", "passing", "refused"), numbers[:3]))
    raise AssertionError(f"no row for {suite!r} in {page}")


def docstring_counts(module_doc: str) -> dict[str, int]:
    """The counts stated in a port file's docstring line ``Counts: N ported, P passing,
    R refused with reason``."""
    m = re.search(r"Counts: (\d+) ported, (\d+) passing, (\d+) refused with reason", module_doc)
    assert m, "the module docstring states no counts"
    return dict(zip(("ported", "passing", "refused"), map(int, m.groups())))
