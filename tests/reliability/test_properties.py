"""Property-based tests (hypothesis) over Grid, Field and netCDF/HDF5 IO.

Examples per test are set with ``settings(max_examples=...)`` and listed in
docs/reliability.md; the whole module runs in well under a minute on one core.
Properties are exact (bit-for-bit values, equal coords, attrs, dtypes): files
store the numbers they are given.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from opflow import Field, Grid
from opflow.errors import InvalidArgumentError
from opflow.io import open_dataset, save

pytestmark = pytest.mark.filterwarnings("ignore:The specified chunks separate")

# derandomize: the same examples every run, so CI cannot fail by the luck of a draw
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FILES = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.sampled_from(["x", "y", "z", "t", "r"])
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def grids(draw, max_ndim: int = 2, max_n: int = 9) -> Grid:
    axes = draw(st.lists(names, min_size=1, max_size=max_ndim, unique=True))
    spec, periodic = {}, []
    for name in axes:
        start = draw(st.floats(-100, 100, allow_nan=False))
        length = draw(st.floats(1e-3, 1e3, allow_nan=False))
        spec[name] = (start, start + length, draw(st.integers(2, max_n)))
        if draw(st.booleans()):
            periodic.append(name)
    units = {n: draw(st.sampled_from(["", "m", "s", "K"])) for n in axes}
    return Grid.uniform(periodic=periodic, units=units, **spec)


@st.composite
def fields(draw, dtype=None) -> Field:
    grid = draw(grids())
    channels = draw(st.integers(1, 3))
    batch = draw(st.sampled_from([(), (1,), (3,)]))
    np_dtype = draw(st.sampled_from([np.float32, np.float64])) if dtype is None else dtype
    values = draw(hnp.arrays(np_dtype, (*batch, channels, *grid.shape),
                             elements=st.floats(allow_nan=True, allow_infinity=True,
                                                width=32)))
    chan_names = [f"v{i}" for i in range(channels)]
    units = [draw(st.sampled_from(["", "m s-1", "K", "Pa"])) for _ in range(channels)]
    return Field(torch.from_numpy(values), grid, chan_names, units)


def _grid_equal(a: Grid, b: Grid) -> bool:
    return (a.names == b.names and a.periodic == b.periodic and a.units == b.units
            and all(np.array_equal(a.coords[n], b.coords[n]) for n in a.names)
            and np.allclose(np.array(a.bounds), np.array(b.bounds), rtol=1e-12, atol=0))


# --------------------------------------------------------------------- Grid
@FAST
@given(grids(max_ndim=3))
def test_grid_from_its_coords_is_the_same_grid(g):
    h = Grid.from_coords(g.coords, periodic=[n for n, p in zip(g.names, g.periodic) if p],
                         bounds=dict(zip(g.names, g.bounds)), units=dict(zip(g.names, g.units)))
    assert h == g and hash(h) == hash(g)


@FAST
@given(grids(max_ndim=3), st.data())
def test_axis_lookup_by_name_and_index_agree(g, data):
    i = data.draw(st.integers(-g.ndim, g.ndim - 1))
    assert g.index(g.names[i]) == i % g.ndim
    assert g.axis(i) == g.axis(g.names[i])
    assert g.shape[i % g.ndim] == g.coords[g.names[i]].size


@FAST
@given(grids(max_ndim=2), st.integers(1, 3))
def test_refine_then_coarsen_is_the_identity(g, factor):
    h = g.refine(factor).coarsen(factor)
    assert h.shape == g.shape
    assert all(np.allclose(h.coords[n], g.coords[n], rtol=1e-12, atol=1e-9) for n in g.names)


@FAST
@given(grids(max_ndim=2))
def test_mesh_matches_coords(g):
    mesh = g.mesh(dtype=torch.float64)
    for i, name in enumerate(g.names):
        assert mesh[i].shape == g.shape
        line = mesh[i].movedim(i, 0).reshape(g.shape[i], -1)[:, 0].numpy()
        np.testing.assert_array_equal(line, g.coords[name])


# -------------------------------------------------------------------- Field
@FAST
@given(fields())
def test_field_xarray_round_trip_is_exact(f):
    ds = f.to_xarray()
    back = Field.from_xarray(ds, names=f.names)
    assert back.values.dtype == f.values.dtype
    assert torch.equal(torch.nan_to_num(back.values), torch.nan_to_num(f.values))
    assert torch.equal(back.values.isnan(), f.values.isnan())
    assert back.names == f.names and back.units == f.units
    assert _grid_equal(back.grid, f.grid)


@FAST
@given(fields(dtype=np.float64), st.data())
def test_channel_and_batch_selection_commute_with_values(f, data):
    name = data.draw(st.sampled_from(f.names))
    c = f.names.index(name)
    sel = f[name]
    assert sel.names == (name,) and sel.grid == f.grid
    assert torch.equal(torch.nan_to_num(sel.values.select(f.channel_dim, 0)),
                       torch.nan_to_num(f.values.select(f.channel_dim, c)))
    if f.batch_shape:
        i = data.draw(st.integers(0, f.batch_shape[0] - 1))
        assert torch.equal(torch.nan_to_num(f[i].values), torch.nan_to_num(f.values[i]))


@FAST
@given(fields(dtype=np.float64), finite)
def test_arithmetic_with_a_scalar_acts_on_values_only(f, c):
    g = f + c
    assert g.grid == f.grid and g.names == f.names
    assert torch.equal(torch.nan_to_num(g.values), torch.nan_to_num(f.values + c))


# ----------------------------------------------------------------------- IO
@st.composite
def datasets(draw) -> xr.Dataset:
    n = draw(st.integers(1, 6))
    nx = draw(st.integers(2, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(hnp.arrays(dtype, (n, nx), elements=st.floats(
        allow_nan=True, allow_infinity=True, width=32 if dtype == np.float32 else 64)))
    x = np.cumsum(draw(hnp.arrays(np.float64, nx, elements=st.floats(1e-3, 10.0))))
    units = draw(st.text(st.characters(codec="ascii", exclude_categories=["Cc", "Cs"]),
                         max_size=12))
    # any Unicode except NUL, which netCDF cannot store (save refuses it: see below)
    # no NUL (netCDF drops it) and no lone surrogates (not encodable as UTF-8 at all)
    title = draw(st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                         max_size=20))
    ds = xr.Dataset({"u": (("sample", "x"), values, {"units": units, "long_name": title})},
                    coords={"sample": np.arange(n), "x": ("x", x, {"units": "m"})},
                    attrs={"title": title, "seed": draw(st.integers(0, 2**31 - 1))})
    return ds


def _check_same(back: xr.Dataset, ds: xr.Dataset) -> None:
    assert back["u"].dtype == ds["u"].dtype
    np.testing.assert_array_equal(back["u"].values, ds["u"].values)  # NaN == NaN here
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)
    assert back["u"].attrs["units"] == ds["u"].attrs["units"]
    assert back["u"].attrs["long_name"] == ds["u"].attrs["long_name"]
    assert back["x"].attrs["units"] == "m"
    assert back.attrs["title"] == ds.attrs["title"] and back.attrs["seed"] == ds.attrs["seed"]


@FILES
@given(datasets(), st.sampled_from([".nc", ".h5"]), st.integers(0, 9))
def test_netcdf_round_trip_keeps_values_coords_dtype_and_attrs(ds, suffix, compression):
    with tempfile.TemporaryDirectory() as tmp:
        path = save(ds, Path(tmp) / f"d{suffix}", compression=compression)
        with open_dataset(path, verify=True) as back:
            _check_same(back.load(), ds)
        assert [p.name for p in Path(tmp).iterdir()] == [path.name]  # no temporaries left


@FILES
@given(datasets(), st.integers(1, 6), st.integers(1, 6))
def test_chunked_reading_equals_eager_reading(ds, write_chunk, read_chunk):
    with tempfile.TemporaryDirectory() as tmp:
        path = save(ds, Path(tmp) / "d.nc", chunk=write_chunk)
        with open_dataset(path) as eager, \
                open_dataset(path, chunks={"sample": read_chunk}) as lazy:
            assert lazy["u"].chunks is not None
            np.testing.assert_array_equal(lazy["u"].values, eager["u"].values)
            _check_same(lazy.load(), ds)


@FILES
@given(fields())
def test_a_field_saved_and_read_back_is_the_same_field(f):
    with tempfile.TemporaryDirectory() as tmp:
        path = save(f, Path(tmp) / "f.nc")
        with open_dataset(path) as ds:
            back = Field.from_xarray(ds.load(), names=f.names)
    assert back.values.dtype == f.values.dtype
    np.testing.assert_array_equal(back.values.numpy(), f.values.numpy())
    assert back.names == f.names and back.units == f.units
    assert _grid_equal(back.grid, f.grid)


@pytest.mark.parametrize("suffix", [".nc", ".h5"])
def test_save_refuses_nul_in_text_attributes_before_writing(tmp_path, suffix):
    """Found by the round-trip property: a title '\\x00' was read back as '' without a word."""
    ds = xr.Dataset({"u": (("x",), np.zeros(3), {"long_name": "a\x00b"})},
                    attrs={"title": "ok"})
    with pytest.raises(InvalidArgumentError, match="long_name") as info:
        save(ds, tmp_path / f"d{suffix}")
    assert "obj['u'].attrs" in info.value.argument
    with pytest.raises(InvalidArgumentError, match="title"):
        save(ds.assign_attrs(title="\x00"), tmp_path / f"d{suffix}")
    assert not list(tmp_path.iterdir())
