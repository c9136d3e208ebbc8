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
