"""Files opflow did not write: netCDF4 and h5py files as other tools make them
(one-point axes, decreasing coordinates, dimensions without coordinates,
non-numeric variables, fill values). Every input is written here with netCDF4
or h5py directly."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from opflow import Field, Grid
from opflow.data import OperatorDataset
from opflow.errors import InvalidArgumentError
from opflow.io import flip_decreasing, grid_from_xarray, open_dataset, save, to_field

LAT = np.array([60.0, 30.0, 0.0, -30.0])  # north to south, as reanalyses store them
LEVEL = np.array([1000.0, 850.0, 500.0])  # pressure levels, surface up
LON = np.arange(5) * 10.0


def _air(n_time: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(200, 300, (n_time, len(LEVEL), len(LAT), len(LON))).astype("f4")


@pytest.fixture
def reanalysis(tmp_path: Path) -> Path:
    """A netCDF4 file like xarray's tutorial data: a one-point time axis, decreasing
    latitudes and pressure levels, a fill value, a text and a char variable."""
    path = tmp_path / "air.nc"
    data = _air(1)
    data[0, 0, 0, 0] = data[0, 2, 3, 4] = -9999.0
    with netCDF4.Dataset(path, "w") as nc:
        for name, values in (("time", [17.0]), ("level", LEVEL), ("lat", LAT), ("lon", LON)):
            nc.createDimension(name, len(values))
            v = nc.createVariable(name, "f8", (name,))
            v[:] = values
        nc.variables["lat"].units = "degrees_north"
        air = nc.createVariable("air", "f4", ("time", "level", "lat", "lon"), fill_value=-9999.0)
        air.units = "K"
        air[:] = np.ma.masked_equal(data, -9999.0)
        station = nc.createVariable("station", str, ("lat",))
        for i, text in enumerate(["north", "mid", "equator", "south"]):
            station[i] = text
        nc.createDimension("nchar", 3)
        code = nc.createVariable("code", "S1", ("lat", "nchar"))
        code[:] = np.array([list("abc")] * len(LAT), dtype="S1")
    return path


def test_one_point_time_axis_hints_grid_dims(reanalysis: Path):
    ds = open_dataset(reanalysis)
    with pytest.raises(InvalidArgumentError, match="grid_dims") as info:
        ds.opflow.to_field(["air"])
    message = str(info.value)
    assert "'time' has 1" in message and "grid_dims=['level', 'lat', 'lon']" in message
    with pytest.warns(UserWarning, match="missing"):
        field = ds.opflow.to_field(["air"], grid_dims=["level", "lat", "lon"])
    assert field.batch_shape == (1,) and field.grid.names == ("level", "lat", "lon")


def test_decreasing_coordinates_are_flipped_and_restored(reanalysis: Path, tmp_path: Path):
    with pytest.warns(UserWarning, match="missing"):
        field = to_field(open_dataset(reanalysis), ["air"], grid_dims=["level", "lat", "lon"])
    np.testing.assert_array_equal(field.grid.axis("lat").coords, LAT[::-1])
    np.testing.assert_array_equal(field.grid.axis("level").coords, LEVEL[::-1])
    assert field.grid.axis("lat").units == "degrees_north"
    assert field.attrs["opflow_reversed_dims"] == "level lat"
    with netCDF4.Dataset(reanalysis) as nc:
        raw = nc.variables["air"][:].filled(np.nan)
    np.testing.assert_array_equal(field.values[:, 0].numpy(), raw[:, ::-1, ::-1, :])

    # Written back, the file has the original order and values.
    out = save(field, tmp_path / "again.nc")
    with netCDF4.Dataset(out) as nc:
        np.testing.assert_array_equal(nc.variables["lat"][:], LAT)
        np.testing.assert_array_equal(nc.variables["level"][:], LEVEL)
        np.testing.assert_array_equal(nc.variables["air"][:].filled(np.nan), raw)
    with pytest.warns(UserWarning, match="missing"):
        back = open_dataset(out).opflow.to_field(["air"])
    assert back.grid == field.grid and back.attrs["opflow_reversed_dims"] == "level lat"
    torch.testing.assert_close(back.values, field.values, equal_nan=True)


def test_flip_decreasing_and_grid_from_xarray():
    da = xr.DataArray(np.arange(4.0), coords={"lat": LAT}, dims="lat")
    flipped, dims = flip_decreasing(da, ["lat"])
    assert dims == ["lat"] and flipped.values.tolist() == [3.0, 2.0, 1.0, 0.0]
    assert flip_decreasing(flipped, ["lat"])[1] == []
    with pytest.raises(InvalidArgumentError, match="flip_decreasing"):
        grid_from_xarray(da, ["lat"])
    assert grid_from_xarray(flipped, ["lat"]).axis("lat").coords.tolist() == LAT[::-1].tolist()


def test_operator_dataset_reads_decreasing_latitudes(tmp_path: Path):
    path = tmp_path / "pairs.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("sample", 2)
        nc.createDimension("lat", len(LAT))
        nc.createVariable("lat", "f8", ("lat",))[:] = LAT
        for name in ("a", "u"):
            nc.createVariable(name, "f4", ("sample", "lat"))[:] = np.arange(8.0).reshape(2, 4)
    a, _ = OperatorDataset(path, "a", "u")[1]
    assert a.grid.axis("lat").coords.tolist() == LAT[::-1].tolist()
    assert a.values[0].tolist() == [7.0, 6.0, 5.0, 4.0]
    assert a.attrs["opflow_reversed_dims"] == "lat"


@pytest.fixture
def h5py_file(tmp_path: Path) -> Path:
    """Plain HDF5 from h5py: no dimension scales, so netCDF readers see phony_dim_N;
    plus complex, compound and text datasets."""
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["u"] = np.arange(24.0).reshape(3, 8)
        f["z"] = np.ones((3, 8)) + 2j
        f["record"] = np.zeros((3, 8), dtype=[("a", "f4"), ("b", "i4")])
        f.create_dataset("label", data=["x", "yy", "z"], dtype=h5py.string_dtype())
    return path


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_dimensions_without_coordinates_get_index_coordinates(h5py_file: Path, engine: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        field = open_dataset(h5py_file, engine=engine).opflow.to_field(["u"])
    messages = [str(w.message) for w in caught]
    assert any("no coordinates" in m and "phony_dim_0" in m for m in messages), messages
    assert not any("phony_dims" in m for m in messages), messages  # h5netcdf's own warning
    assert field.grid.shape == (3, 8) and field.batch_shape == ()
    assert field.grid.axis(1).coords.tolist() == list(range(8))
    assert field.grid.spacing == (1.0, 1.0)
    assert field.attrs["opflow_index_coords"] == " ".join(field.grid.names)
    assert field.values[0, 1].tolist() == list(np.arange(8.0, 16.0))


@pytest.mark.filterwarnings("ignore:dimensions .* have no coordinates")
@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_non_numeric_variables_are_skipped_or_refused_by_name(h5py_file: Path, engine: str):
    ds = open_dataset(h5py_file, engine=engine)
    with pytest.warns(UserWarning, match="skipping variables that are not real numbers") as rec:
        field = ds.opflow.to_field()
    skipped = next(str(w.message) for w in rec if "skipping" in str(w.message))
    assert all(f"'{n}'" in skipped for n in ("z", "record", "label"))
    assert field.names == ("u",)
    for name in ("z", "record", "label"):
        with pytest.raises(InvalidArgumentError, match=f"names.*'{name}'"):
            ds.opflow.to_field(["u", name])


def test_text_and_char_variables_of_a_netcdf_file(reanalysis: Path):
    ds = open_dataset(reanalysis)
    with pytest.warns(UserWarning) as rec:
        field = ds.opflow.to_field(grid_dims=["level", "lat", "lon"])
    text = " ".join(str(w.message) for w in rec)
    assert "'station'" in text and "'code'" in text and field.names == ("air",)
    with pytest.raises(InvalidArgumentError, match="'station'"):
        ds.opflow.to_field(["station"])
    with pytest.raises(InvalidArgumentError, match="argument `obj`.*'code'"):
        to_field(ds["code"])


def test_fill_values_are_counted_and_warned(reanalysis: Path):
    ds = open_dataset(reanalysis)
    with pytest.warns(UserWarning, match=r"2 missing values.*'air': 2"):
        field = ds.opflow.to_field(["air"], grid_dims=["level", "lat", "lon"])
    assert field.attrs["opflow_missing_points"] == 2
    assert int(torch.isnan(field.values).sum()) == 2
    # A complete Field says nothing and carries no stale count.
    full = Field(torch.ones(2, 1, 4), Grid.uniform(x=(0.0, 1.0, 4)),
                 attrs={"opflow_missing_points": 5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = full.to_xarray().opflow.to_field()
    assert "opflow_missing_points" not in again.attrs


def test_text_coordinates_are_refused_even_when_they_look_like_numbers():
    ds = xr.Dataset({"u": (("x",), np.arange(4.0))},
                    coords={"x": np.array(["0.0", "0.25", "0.5", "0.75"])})
    with pytest.raises(InvalidArgumentError, match="numeric values for the coordinate 'x'"):
        ds.opflow.to_field(["u"])
