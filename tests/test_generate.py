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
