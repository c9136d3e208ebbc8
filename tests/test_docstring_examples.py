"""The Examples sections of the public docstrings run and print what they show.

Every object named in a public module's ``__all__`` whose docstring (or one of
its methods' docstrings) holds ``>>>`` examples is run with :mod:`doctest`.
They may assume ``import torch, numpy as np, opflow`` and opflow's top-level
names. The examples are small: the whole module takes a few seconds.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import opflow

ROOT = Path(opflow.__file__).parent
OPTIONAL = {"opflow.kernels.triton_spectral", "opflow.kernels.triton_multigrid"}


def _examples():
    modules = ["opflow"] + [
        info.name for info in pkgutil.walk_packages([str(ROOT)], prefix="opflow.")
        if not any(p.startswith("_") for p in info.name.split(".")[1:])
        and info.name not in OPTIONAL]
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen, tests = set(), []
    for modname in modules:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or id(obj) in seen:
                continue
            if not (inspect.isclass(obj) or inspect.isroutine(obj) or callable(obj)):
                continue
            seen.add(id(obj))
            for test in finder.find(obj, f"{modname}.{name}", module=inspect.getmodule(obj)):
                if test.examples:
                    tests.append(test)
    return sorted(tests, key=lambda t: t.name)


EXAMPLES = _examples()


def test_the_main_names_have_examples():
    names = {t.name.split(".")[-1] for t in EXAMPLES}
    for name in ["Field", "Grid", "ODEProblem", "solve", "Solution", "Tsit5", "SDEProblem",
                 "open_dataset", "save", "FNO", "DeepONet", "MgNO", "NeuralODE"]:
        assert name in names, name


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # verbose=False: doctest would otherwise turn verbose when "-v" is in sys.argv (pytest -v)
    runner = doctest.DocTestRunner(verbose=False,
                                   optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # examples may assume `import torch, numpy as np, opflow` and opflow's top-level names
    test.globs = {**test.globs, "torch": torch, "np": np, "opflow": opflow,
                  **{name: getattr(opflow, name) for name in opflow.__all__}}
    # reports go to the stdout pytest captures: doctest swaps sys.stdout for its own
    # buffer while the examples run, so print() inside `out` would write into it
    runner.run(test, out=sys.stdout.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{test.name}: {result.failed} example(s) failed (output above)"
