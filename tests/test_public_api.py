"""The public surface: every name in an ``__all__`` exists and is documented, and
packages import each other's public names only."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import opflow

ROOT = Path(opflow.__file__).parent
# modules that import optional packages at import time
OPTIONAL = {"opflow.kernels.triton_spectral", "opflow.kernels.triton_multigrid"}


def _public_modules():
    names = ["opflow"]
    for info in pkgutil.walk_packages([str(ROOT)], prefix="opflow."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]) or info.name in OPTIONAL:
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize("name", _public_modules())
def test_every_listed_name_exists_and_is_documented(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    listed = getattr(module, "__all__", None)
    if listed is None:
        return
    for item in listed:
        assert hasattr(module, item), f"{name}.__all__ lists {item!r}, which does not exist"
        obj = getattr(module, item)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{item} has no docstring"


def _package_of(path: Path) -> tuple[str, ...]:
    """The package a module or import target belongs to: its top-level package, and for
    ``opflow.solvers`` its solver family (``solvers/ode``, ``solvers/sde``, ...)."""
    rel = path.relative_to(ROOT).parts[:-1] if path.suffix == ".py" else path.relative_to(
        ROOT).parts
    return rel[:2] if rel[:1] == ("solvers",) else rel[:1]


def _resolve(path: Path, node: ast.ImportFrom) -> Path:
    base = path.parent
    for _ in range(node.level - 1):
        base = base.parent
    return base.joinpath(*node.module.split(".")) if node.module else base


def test_packages_import_each_others_public_names_only():
    offences = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            target = _resolve(path, node)
            module = target if target.is_dir() else target.with_suffix(".py")
            home, mine = _package_of(module), _package_of(path)
            if mine[:len(home)] == home:
                continue  # private helpers serve their package and its subpackages
            private_module = [p for p in target.relative_to(ROOT).parts if p.startswith("_")]
            private_names = [a.name for a in node.names
                             if a.name.startswith("_") and not a.name.endswith("__")]
            if (private_module and target.parent != ROOT) or private_names:
                offences.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}"
                                f"{node.module or ''} import {[a.name for a in node.names]}")
    assert not offences, "\n".join(offences)
