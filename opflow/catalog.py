"""The one list of named problems: what ``opflow generate NAME`` and ``opflow solve NAME`` know.

Each named problem (``darcy``, ``burgers``, ``heat``, ...) is one entry with
up to two capabilities:

* a *recipe* (:class:`opflow.data.generation.Recipe`): draw random inputs and
  solve them, for ``opflow generate NAME`` / :func:`opflow.data.generate`;
* a *solver* (:class:`opflow.batch.problems.ProblemSpec`): solve the inputs
  of a file, for ``opflow solve NAME`` / :func:`opflow.batch.solve_file`.

Both solve through :func:`opflow.solve` (the one solver registry). The
modules that define recipes and solvers register them here;
:data:`opflow.data.generation.RECIPES` and :data:`opflow.batch.problems.PROBLEMS`
are views of this list, and :func:`named_problems` lists it (``opflow info``
prints it).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Optional

__all__ = ["NamedProblem", "CatalogView", "named_problems", "register_recipe",
           "register_solver"]


@dataclass(frozen=True)
class NamedProblem:
    """One named problem and what can be done with it.

    Parameters
    ----------
    name : str
    recipe : Recipe or None
        How ``opflow generate NAME`` makes a data set.
    solver : ProblemSpec or None
        How ``opflow solve NAME`` solves a file's samples.
    """

    name: str
    recipe: Optional[Any] = None
    solver: Optional[Any] = None

    @property
    def description(self) -> str:
        """The solver's description, else the recipe's."""
        entry = self.solver if self.solver is not None else self.recipe
        return str(getattr(entry, "description", ""))


_CATALOG: dict[str, NamedProblem] = {}


def _set(name: str, kind: str, value: Any) -> None:
    """Set (or, with None, clear) the ``kind`` capability of ``name``; drop empty entries."""
    entry = _CATALOG.get(name, NamedProblem(name))
    entry = replace(entry, recipe=value) if kind == "recipe" else replace(entry, solver=value)
    if entry.recipe is None and entry.solver is None:
        _CATALOG.pop(name, None)
    else:
        _CATALOG[name] = entry


def register_recipe(recipe: Any) -> Any:
    """Add (or replace) the recipe of ``recipe.name``; returns ``recipe``.

    Parameters
    ----------
    recipe : Recipe
        Has ``name`` and ``description``.

    Returns
    -------
    Recipe
    """
    _set(recipe.name, "recipe", recipe)
    return recipe


def register_solver(spec: Any) -> Any:
    """Add (or replace) the batch solver of ``spec.name``; returns ``spec``.

    Parameters
    ----------
    spec : ProblemSpec
        Has ``name`` and ``description``.

    Returns
    -------
    ProblemSpec
    """
    _set(spec.name, "solver", spec)
    return spec


def named_problems() -> list[NamedProblem]:
    """Every named problem, sorted by name."""
    return [_CATALOG[k] for k in sorted(_CATALOG)]


class CatalogView(MutableMapping):
    """The recipes (``kind="recipe"``) or solvers (``kind="solver"``) of the catalog,
    as a mapping from name; setting an item registers it, deleting removes that
    capability.

    Parameters
    ----------
    kind : {"recipe", "solver"}
    """

    def __init__(self, kind: str):
        self.kind = kind

    def __getitem__(self, name: str) -> Any:
        entry = _CATALOG.get(name)
        value = None if entry is None else getattr(entry, self.kind)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        _set(name, self.kind, value)

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        _set(name, self.kind, None)

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in sorted(_CATALOG) if getattr(_CATALOG[k], self.kind) is not None])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"CatalogView({self.kind!r}: {list(self)})"
