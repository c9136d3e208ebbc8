"""Benchmark data sets made with opflow's own solvers (``opflow generate``).

A *recipe* turns a list of sample indices into an ``xarray.Dataset`` with a
``sample`` dimension. :func:`generate` runs a recipe chunk by chunk; with an
output path every finished chunk is written (atomically) to a hidden parts
folder next to the output, so a killed job started again with the same
arguments continues after the last complete chunk. The final file appears
only when complete (atomic rename), and the parts folder is then removed.

Every sample draws its random input from its own seed (``seed`` and the
sample index), so the data do not depend on the chunk size or on where a
job was interrupted.

Recipes follow ``shared/ANCHORS.md``:

* ``darcy``: -div(a grad u) = 1 on the unit square, u = 0 on the boundary,
  a = 12 where g >= 0 and 3 where g < 0, g ~ N(0, (-Laplacian + 9 I)^-2)
  with zero Neumann conditions (constant mode dropped, as in the FNO data).
* ``burgers``: u_t + (u^2/2)_x = nu u_xx on [0, 1) periodic, nu = 0.1,
  u0 ~ N(0, 625 (-Laplacian + 25 I)^-2), map u0 -> u(t = 1).
* ``navier-stokes``: 2D vorticity on the unit torus, nu = 1e-3, forcing
  0.1 (sin 2 pi (x + y) + cos 2 pi (x + y)), w0 ~ N(0, 7^1.5 (-Laplacian + 49 I)^-2.5),
  vorticity saved at t = 1, 2, ..., T. Crank-Nicolson/Heun steps of
  dt = 1e-3 (the FNO data used 1e-4; at 64^2 the two agree to about 1e-5
  relative at t = 2, for a tenth of the cost).
* ``grf``: the random fields alone (useful for tests and as inputs).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import xarray as xr

from .._version import __version__
from ..catalog import CatalogView, register_recipe
from ..errors import InvalidArgumentError, UnknownVariableError
from ..field import Field
from ..grid import Grid
from ..io.outputs import check_output_path
from ..progress import Progress
from .grf import grf

__all__ = ["RECIPES", "Option", "Recipe", "generate", "sample_seed"]

# Largest grid points per axis: a 2-D float64 field of 16384^2 points is already 2 GiB.
MAX_RESOLUTION = 16384


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a data set generated with ``seed``."""
    digest = hashlib.sha256(f"opflow:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _grf_batch(grid: Grid, indices, seed: int, **kw) -> Field:
    fields = [grf(grid, batch=1, seed=sample_seed(seed, i), **kw) for i in indices]
    return fields[0].with_values(torch.cat([f.values for f in fields]))


def _dataset(fields: dict[str, Field], indices) -> xr.Dataset:
    """One variable per Field (one channel each), the first batch dim is ``sample``."""
    parts = []
    for name, f in fields.items():
        extra = [f"batch_{i}" for i in range(len(f.batch_shape) - 1)]
        parts.append(f.to_xarray(batch_dims=["sample", *extra]).rename({f.names[0]: name}))
    ds = xr.merge(parts, combine_attrs="drop_conflicts")
    return ds.assign_coords(sample=("sample", np.asarray(list(indices), dtype=np.int64)))


# ------------------------------------------------------------------ recipes
def _grf_recipe(indices, resolution: int, seed: int, alpha: float = 2.0, tau: float = 3.0,
                periodic: bool = False) -> xr.Dataset:
    grid = Grid.uniform(periodic=("x", "y") if periodic else (), x=(0.0, 1.0, resolution),
                        y=(0.0, 1.0, resolution))
    g = _grf_batch(grid, indices, seed, alpha=alpha, tau=tau)
    return _dataset({"g": g}, indices)


def _darcy_recipe(indices, resolution: int, seed: int, rtol: float = 1e-8,
                  cycle: str = "V") -> xr.Dataset:
    from .. import solve
    from ..solvers.pde import DarcyProblem, Multigrid

    grid = Grid.uniform(x=(0.0, 1.0, resolution), y=(0.0, 1.0, resolution))
    g = _grf_batch(grid, indices, seed, alpha=2.0, tau=3.0, zero_mean=True)
    twelve, three = (torch.tensor(v, dtype=torch.float64) for v in (12.0, 3.0))
    a = g.with_values(torch.where(g.values >= 0, twelve, three), names="a")  # float64
    sol = solve(DarcyProblem(coeff=a, forcing=1.0, bc="dirichlet"),
                Multigrid(cycle=cycle, rtol=rtol))
    if not sol.success:
        raise RuntimeError(f"multigrid did not converge on samples {list(indices)}: {sol.retcode}")
    u = sol.u.with_values(sol.u.values, names="u", attrs={})  # drop solver diagnostics
    return _dataset({"a": a, "u": u}, indices)


def _burgers_recipe(indices, resolution: int, seed: int, nu: float = 0.1, t_end: float = 1.0,
                    fine_factor: int = 4, dt: Optional[float] = None) -> xr.Dataset:
    from ..solvers.pde.spectral.recipes import burgers_recipe_solve

    fine = Grid.uniform(x=(0.0, 1.0, resolution * fine_factor), periodic=("x",))
    u0 = _grf_batch(fine, indices, seed, alpha=2.0, tau=5.0, sigma=25.0)
    u1 = burgers_recipe_solve(u0, nu=nu, t_end=t_end, dt=dt)  # dt=None: the solver's default
    coarse = Grid.uniform(x=(0.0, 1.0, resolution), periodic=("x",))
    sub = slice(None, None, fine_factor)
    return _dataset({"u0": Field(u0.values[..., sub], coarse, "u0"),
                     "u": Field(u1.values[..., sub], coarse, "u")}, indices)


def _navier_stokes_recipe(indices, resolution: int, seed: int, nu: float = 1e-3,
                          n_saves: int = 20, dt: float = 1e-3) -> xr.Dataset:
    from ..solvers.pde.spectral.recipes import navier_stokes_recipe_solve

    grid = Grid.uniform(x=(0.0, 1.0, resolution), y=(0.0, 1.0, resolution), periodic=("x", "y"))
    w0 = _grf_batch(grid, indices, seed, alpha=2.5, tau=7.0, sigma=7**0.75)
    traj = navier_stokes_recipe_solve(w0, nu=nu, t_end=float(n_saves), n_saves=n_saves, dt=dt)
    # traj: batch dims (K, sample) -> store as (sample, t)
    values = traj.values.transpose(0, 1)
    w = Field(values, grid, "w")
    ds = _dataset({"w0": w0.with_values(w0.values, names="w0"), "w": w}, indices)
    ds = ds.rename({"batch_0": "t"}) if "batch_0" in ds.dims else ds
    return ds.assign_coords(t=("t", np.arange(1, n_saves + 1, dtype=np.float64)))


# ------------------------------------------------------------ option values
@dataclass(frozen=True)
class Option:
    """What a recipe option accepts: ``accepts(value)`` is true for good values."""

    expected: str
    accepts: Callable[[Any], bool]


def _real(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


POSITIVE = Option("a positive finite number", lambda v: _real(v) and v > 0)
COUNT = Option("a positive integer",
               lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
NON_NEGATIVE_INT = Option("a non-negative integer",
                          lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0)
FLAG = Option("true or false", lambda v: isinstance(v, bool))
POSITIVE_OR_NONE = Option("a positive finite number or null",
                          lambda v: v is None or POSITIVE.accepts(v))
CYCLE = Option("one of ['V', 'W', 'F']", lambda v: v in ("V", "W", "F"))


@dataclass(frozen=True)
class Recipe:
    """A named data recipe: ``make(indices, resolution, seed, **options) -> Dataset``.

    Attributes
    ----------
    name, description : str
    make : callable
    default_resolution : int
    options : mapping of str to Option
        The values each option accepts, checked before any work.
    values_per_sample : callable, optional
        ``values_per_sample(resolution, options) -> int`` (``options`` with
        the recipe's defaults filled in): float64 values one sample stores,
        the estimate of the output size checked against memory and disk space
        before any work.
    """

    name: str
    make: Callable[..., xr.Dataset]
    default_resolution: int
    description: str
    options: Mapping[str, Option] = field(default_factory=dict)
    values_per_sample: Optional[Callable[[int, Mapping[str, Any]], int]] = None


RECIPES = CatalogView("recipe")
"""The recipes of :mod:`opflow.catalog` (the one list of named problems), by name."""

for _recipe in (
        Recipe("darcy", _darcy_recipe, 65, "Darcy flow, piecewise-constant GRF coefficient",
               {"rtol": POSITIVE, "cycle": CYCLE}, lambda res, opts: 2 * res**2),
        Recipe("burgers", _burgers_recipe, 1024, "viscous Burgers, u0 -> u(t=1)",
               {"nu": POSITIVE, "t_end": POSITIVE, "fine_factor": COUNT,
                "dt": POSITIVE_OR_NONE}, lambda res, opts: 2 * res),
        Recipe("navier-stokes", _navier_stokes_recipe, 64, "2D vorticity, nu=1e-3",
               {"nu": POSITIVE, "n_saves": COUNT, "dt": POSITIVE},
               lambda res, opts: (1 + opts["n_saves"]) * res**2),
        Recipe("grf", _grf_recipe, 64, "Gaussian random fields only",
               {"alpha": POSITIVE, "tau": POSITIVE, "periodic": FLAG},
               lambda res, opts: res**2),
):
    register_recipe(_recipe)


# ------------------------------------------------------------------ driver
def _check_args(problem: str, n: int, resolution: Optional[int], chunk: int) -> Recipe:
    if problem not in RECIPES:
        raise InvalidArgumentError("problem", f"one of {sorted(RECIPES)}", problem)
    if not (isinstance(n, int) and n >= 1):
        raise InvalidArgumentError("n", "a positive number of samples", n)
    if not (isinstance(resolution, int) and resolution >= 4):
        raise InvalidArgumentError("resolution", "an integer number of grid points >= 4",
                                   resolution)
    if resolution > MAX_RESOLUTION:  # 2-D recipes: resolution**2 doubles per field and sample
        raise InvalidArgumentError("resolution", f"at most {MAX_RESOLUTION} grid points per axis",
                                   resolution)
    if not (isinstance(chunk, int) and chunk >= 1):
        raise InvalidArgumentError("chunk", "a positive number of samples per chunk", chunk)
    return RECIPES[problem]


def _check_options(recipe: Recipe, options: dict) -> None:
    """Refuse option names the recipe does not take (a typo would otherwise be a TypeError)
    and values its :class:`Option` does not accept (named by the option)."""
    params = inspect.signature(recipe.make).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
                 or (p.default is not inspect.Parameter.empty)]
        for name in options:
            if name not in known:
                raise UnknownVariableError("options", name, known)
    for name, value in options.items():
        spec = recipe.options.get(name)
        if spec is not None and not spec.accepts(value):
            raise InvalidArgumentError(name, spec.expected, value)


def _output_bytes(recipe: Recipe, n: int, resolution: int, options: dict) -> int | None:
    """Estimated bytes of ``n`` samples (float64 values and the sample index), or None."""
    if recipe.values_per_sample is None:
        return None
    params = inspect.signature(recipe.make).parameters.values()
    given = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return n * (8 * int(recipe.values_per_sample(resolution, {**given, **options})) + 8)


def _check_size(recipe: Recipe, n: int, resolution: int, options: dict,
                out: Path | None) -> None:
    """Refuse, before any work, a data set larger than the memory or the disk it goes to."""
    size = _output_bytes(recipe, n, resolution, options)
    if out is not None:  # the parts and the final file exist side by side at the end
        check_output_path(out, None if size is None else 2 * size, make_parents=True)
        return
    memory = _physical_memory()
    if size is not None and memory is not None and size > memory:
        raise InvalidArgumentError(
            "n", f"a data set that fits in memory ({memory / 2**30:.1f} GiB; pass out= to "
            f"write it to a file chunk by chunk)", f"{n} samples of about "
            f"{size / n / 2**20:.3g} MiB each")


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _job_key(problem: str, n: int, resolution: int, seed: int, options: dict) -> str:
    return json.dumps({"problem": problem, "n": n, "resolution": resolution, "seed": seed,
                       "options": options, "opflow": __version__}, sort_keys=True)


def _provenance(ds: xr.Dataset, key: str, recipe: Recipe) -> xr.Dataset:
    ds.attrs.update({"title": f"opflow {recipe.name}: {recipe.description}",
                     "source": f"opflow {__version__} generate",
                     "opflow_generate": key})
    return ds


def _part_is_complete(path: Path, key: str, size: int) -> bool:
    from ..io import open_dataset

    try:
        with open_dataset(path) as part:
            return part.attrs.get("opflow_generate") == key and part.sizes["sample"] == size
    except Exception:  # unreadable part: recompute it
        return False


def generate(
    problem: str,
    n: int,
    resolution: Optional[int] = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    chunk: int = 16,
    progress: bool | str = True,
    **options: Any,
) -> xr.Dataset:
    """Generate ``n`` samples of a benchmark data set.

    Parameters
    ----------
    problem : {"darcy", "burgers", "navier-stokes", "grf"}
    n : int
        Number of samples.
    resolution : int, optional
        Grid points per axis (the recipe's default when None).
    seed : int
        Base seed; sample ``i`` uses :func:`sample_seed` ``(seed, i)``.
    out : path, optional
        netCDF file to write. Finished chunks are kept in ``.<name>.parts/``
        beside it until the file is complete, so a rerun resumes.
    chunk : int
        Samples per chunk (one solver call and one part file each).
    progress : bool or "always"
        Progress over samples: a bar on a terminal, otherwise one line per
        chunk (at most every few seconds) on stderr; False: nothing.
    **options
        Recipe options (``nu``, ``rtol``, ``n_saves``, ...).

    Returns
    -------
    xarray.Dataset
        With a ``sample`` dimension; attrs record the recipe and its settings.
    """
    resolution = RECIPES[problem].default_resolution if (
        resolution is None and problem in RECIPES) else resolution
    recipe = _check_args(problem, n, resolution, chunk)
    assert isinstance(resolution, int)  # _check_args refused anything else
    _check_options(recipe, options)
    _check_size(recipe, n, resolution, options, None if out is None else Path(out))
    key = _job_key(problem, n, resolution, seed, options)
    starts = range(0, n, chunk)
    bar = Progress(n, f"generate {problem}", progress, unit="sample")
    if out is None:
        parts = []
        for s in starts:
            parts.append(recipe.make(range(s, min(s + chunk, n)), resolution, seed, **options))
            bar.update(parts[-1].sizes["sample"])
        bar.close()
        return _provenance(xr.concat(parts, dim="sample"), key, recipe)
    return _generate_to_file(recipe, key, Path(out), n, resolution, seed, chunk, starts, bar,
                             options)


def _generate_to_file(recipe, key, out: Path, n, resolution, seed, chunk, starts, bar, options):
    from ..io import open_dataset, save

    parts_dir = out.parent / f".{out.name}.parts"
    paths = []
    for s in starts:
        idx = range(s, min(s + chunk, n))
        path = parts_dir / f"{s:09d}.nc"
        if not _part_is_complete(path, key, len(idx)):
            part = _provenance(recipe.make(idx, resolution, seed, **options), key, recipe)
            parts_dir.mkdir(parents=True, exist_ok=True)  # after the first chunk worked
            save(part, path)
        paths.append(path)
        bar.update(len(idx))
    bar.close()
    opened = [open_dataset(p) for p in paths]
    try:
        save(_provenance(xr.concat(opened, dim="sample"), key, recipe), out)
    finally:
        for ds in opened:
            ds.close()
    shutil.rmtree(parts_dir, ignore_errors=True)
    from ..io import remove_stale_temporaries

    # a run killed while writing `out` left its temporary sibling behind
    remove_stale_temporaries(out.parent, f".{out.name}")
    return open_dataset(out)
