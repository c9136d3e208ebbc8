"""``opflow generate``: chunked, resumable, seed-stable data generation."""

import numpy as np
import pytest
import xarray as xr

import opflow.data.generation as gen
from opflow.data import generate
from opflow.errors import InvalidArgumentError


def test_samples_do_not_depend_on_chunking():
    a = generate("grf", n=5, resolution=8, seed=4, chunk=2, progress=False)
    b = generate("grf", n=5, resolution=8, seed=4, chunk=5, progress=False)
    assert a["g"].dims == ("sample", "x", "y")
    np.testing.assert_array_equal(a["g"].values, b["g"].values)
    assert list(a["sample"].values) == [0, 1, 2, 3, 4]
    c = generate("grf", n=2, resolution=8, seed=5, progress=False)
    assert not np.array_equal(a["g"].values[:2], c["g"].values)


class Killed(BaseException):
    """Stands in for the process being killed mid-chunk."""


def test_interrupted_job_resumes_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    full = generate("grf", n=6, resolution=8, seed=1, chunk=2, out=tmp_path / "full.nc",
                    progress=False)
    make = gen.RECIPES["grf"].make
    calls, kill = [], [True]

    def failing(indices, *args, **kw):
        calls.append(list(indices))
        if kill[0] and len(calls) == 2:
            raise Killed  # killed in the middle of the second chunk
        return make(indices, *args, **kw)

    monkeypatch.setitem(gen.RECIPES, "grf", gen.Recipe("grf", failing, 8, "test"))
    out = tmp_path / "resumed.nc"
    with pytest.raises(Killed):
        generate("grf", n=6, resolution=8, seed=1, chunk=2, out=out, progress=False)
    assert not out.exists()  # never a partial file under the final name
    calls.clear()
    kill[0] = False
    resumed = generate("grf", n=6, resolution=8, seed=1, chunk=2, out=out, progress=False)
    assert calls == [[2, 3], [4, 5]]  # the first chunk was not recomputed
    np.testing.assert_array_equal(resumed["g"].values, full["g"].values)
    assert not (tmp_path / ".resumed.nc.parts").exists()
    assert "grf" in xr.open_dataset(out).attrs["opflow_generate"]


@pytest.mark.parametrize("kwargs, match", [
    ({"problem": "heat", "n": 2}, "problem"), ({"problem": "grf", "n": -1}, "n"),
    ({"problem": "grf", "n": 2, "chunk": 0}, "chunk"),
    ({"problem": "grf", "n": 2, "resolution": 1}, "resolution"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        generate(progress=False, **kwargs)


def test_darcy_recipe_solves_to_tolerance():
    ds = generate("darcy", n=2, resolution=17, seed=0, progress=False)
    assert set(ds["a"].values.ravel()) == {3.0, 12.0}
    u = ds["u"].values
    assert u.shape == (2, 17, 17) and np.all(u[:, 0, :] == 0) and np.all(u[:, :, -1] == 0)
    assert 1e-3 < u.max() < 0.1  # -div(a grad u) = 1 with a in [3, 12] on the unit square


def test_burgers_and_navier_stokes_recipes_have_the_documented_layout():
    b = generate("burgers", n=2, resolution=64, seed=0, progress=False)
    assert b["u0"].dims == ("sample", "x") and b["u"].shape == (2, 64)
    assert np.isfinite(b["u"].values).all() and b["u"].std() < b["u0"].std()  # viscous decay
    ns = generate("navier-stokes", n=1, resolution=16, seed=0, progress=False, n_saves=2)
    assert ns["w"].dims == ("sample", "t", "x", "y") and list(ns["t"].values) == [1.0, 2.0]
    assert np.isfinite(ns["w"].values).all()


def test_shipped_samples_match_their_recipe():
    """data/*.nc are what their data card says (a regression guard on the recipes)."""
    from pathlib import Path

    from opflow import open_dataset

    root = Path(__file__).resolve().parents[1] / "data"
    darcy = open_dataset(root / "darcy_sample.nc")
    assert darcy["u"].shape == (32, 65, 65) and set(np.unique(darcy["a"].values)) == {3.0, 12.0}
    again = generate("darcy", n=2, resolution=65, seed=0, progress=False)
    np.testing.assert_allclose(again["u"].values, darcy["u"].values[:2], rtol=1e-7, atol=1e-12)
    burgers = open_dataset(root / "burgers_sample.nc")
    assert burgers["u"].shape == (32, 1024) and np.isfinite(burgers["u"].values).all()


def test_recipe_options_are_checked_by_value_before_any_work(tmp_path):
    for problem, option, value in (("grf", "periodic", "text"), ("burgers", "fine_factor", 0),
                                   ("navier-stokes", "n_saves", 0), ("darcy", "cycle", "Q"),
                                   ("burgers", "dt", -1.0), ("grf", "alpha", float("nan"))):
        with pytest.raises(InvalidArgumentError, match=f"argument `{option}`"):
            generate(problem, n=2, resolution=8, out=tmp_path / "g.nc", progress=False,
                     **{option: value})
    assert not list(tmp_path.iterdir())
    # the Option specs name exactly the keyword options of each recipe
    import inspect

    for recipe in gen.RECIPES.values():
        params = inspect.signature(recipe.make).parameters
        assert set(recipe.options) == {k for k, p in params.items()
                                       if p.default is not inspect.Parameter.empty}


def test_a_failing_first_chunk_leaves_no_parts_folder(tmp_path, monkeypatch):
    def failing(indices, resolution, seed):
        raise InvalidArgumentError("resolution", "something the recipe checks late", resolution)

    monkeypatch.setitem(gen.RECIPES, "grf", gen.Recipe("grf", failing, 8, "test"))
    with pytest.raises(InvalidArgumentError):
        generate("grf", n=4, resolution=8, chunk=2, out=tmp_path / "g.nc", progress=False)
    assert not list(tmp_path.iterdir())


def test_a_data_set_larger_than_the_disk_or_memory_is_refused_before_work(tmp_path,
                                                                         monkeypatch):
    import collections
    import shutil

    calls = []
    make = gen.RECIPES["grf"].make
    monkeypatch.setitem(gen.RECIPES, "grf", gen.Recipe(
        "grf", lambda *a, **k: calls.append(1) or make(*a, **k), 8, "test",
        gen.RECIPES["grf"].options, gen.RECIPES["grf"].values_per_sample))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(InvalidArgumentError, match="MiB free") as info:
        generate("grf", n=4, resolution=8, out=tmp_path / "g.nc", progress=False)
    assert info.value.argument == "out"
    with pytest.raises(InvalidArgumentError, match="fits in memory") as info:
        generate("grf", n=10**12, resolution=64, progress=False)  # 33 PB, no out=
    assert info.value.argument == "n" and not calls and not list(tmp_path.iterdir())


def test_navier_stokes_work_is_the_same_for_every_chunk(monkeypatch):
    """The recipe's cost per chunk is fixed: a fixed step (dt = 1e-3, no CFL control that a
    fast sample could shrink), so a chunk's solve takes t_end / dt steps whatever its samples,
    and a small last chunk costs in proportion to its size (#22: "the last chunk is slow")."""
    import opflow.solvers.pde.spectral.recipes as recipes

    steps = []
    real_solve = recipes.solve

    def counting_solve(*args, **kwargs):
        sol = real_solve(*args, **kwargs)
        steps.append((sol.u.batch_shape[1], sol.stats.steps))
        return sol

    monkeypatch.setattr(recipes, "solve", counting_solve)
    generate("navier-stokes", n=5, resolution=16, seed=0, chunk=2, progress=False, n_saves=1,
             dt=1e-2)
    assert [b for b, _ in steps] == [2, 2, 1]
    assert {s for _, s in steps} == {100}
