"""opflow.io.files: open_dataset / save round trips, CF decoding, atomicity, errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import dask.array
import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from opflow import Field, Grid
from opflow.errors import (
    CorruptFileError,
    FileFormatError,
    InvalidArgumentError,
    UnknownVariableError,
)
from opflow.io import open_dataset, save, to_field
from opflow.io.files import sniff_format

pytestmark = pytest.mark.filterwarnings("ignore:The specified chunks separate")

AXIS_NAMES = ("x", "y", "z", "t")
VAR_NAMES = ("u", "v", "w", "p", "rho", "T_air")
UNITS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzKmsµ0123456789 /^-*()", max_size=12)


# ------------------------------------------------------------------ helpers
def bits(values: torch.Tensor) -> bytes:
    return values.detach().cpu().numpy().tobytes()


def assert_same_field(got: Field, want: Field) -> None:
    assert got.grid == want.grid
    assert got.names == want.names
    assert got.units == want.units
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert bits(got.values) == bits(want.values)


def small_field(n: int = 3, dtype=torch.float64) -> Field:
    grid = Grid.uniform(x=(0.0, 2.0, 6), y=(-1.0, 1.0, 5), periodic=("x",),
                        units={"x": "m", "y": "m"})
    values = torch.arange(n * 2 * 30, dtype=dtype).reshape(n, 2, 6, 5) / 7
    return Field(values, grid, names=["u", "v"], units=["m s-1", "K"])


@st.composite
def fields(draw) -> Field:
    ndim = draw(st.integers(1, 2))
    names = draw(st.permutations(AXIS_NAMES))[:ndim]
    axes, periodic = {}, []
    for name in names:
        start = draw(st.floats(-100.0, 100.0))
        length = draw(st.floats(0.01, 1000.0))
        axes[name] = (start, start + length, draw(st.integers(2, 9)))
        if draw(st.booleans()):
            periodic.append(name)
    grid = Grid.uniform(periodic=periodic, units={n: draw(UNITS) for n in names}, **axes)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    channels = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)), channels, *grid.shape)
    width = 32 if dtype == np.float32 else 64
    # NaN is left out: netCDF's NaN _FillValue does not promise the NaN payload bits.
    values = draw(arrays(dtype, shape, elements=st.floats(allow_nan=False, width=width)))
    return Field(torch.from_numpy(values), grid,
                 names=list(draw(st.permutations(VAR_NAMES))[:channels]),
                 units=[draw(UNITS) for _ in range(channels)])


# ---------------------------------------------------------------- round trip
@pytest.mark.parametrize("suffix", [".nc", ".h5"])
@settings(max_examples=25, deadline=None, derandomize=True)  # 25 Fields per suffix, same every run
@given(field=fields())
def test_field_round_trip_is_bit_for_bit(field: Field, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = save(field, Path(tmp) / f"f{suffix}")
        with open_dataset(path) as ds:
            got = to_field(ds)
        assert_same_field(got, field)
        assert os.listdir(tmp) == [f"f{suffix}"]


@pytest.mark.parametrize("suffix", [".nc", ".h5", ".hdf5"])
def test_unbatched_field_round_trip(tmp_path: Path, suffix: str):
    field = small_field()[1]
    path = save(field, tmp_path / f"one{suffix}")
    assert isinstance(path, Path)
    with open_dataset(path) as ds:
        assert_same_field(to_field(ds), field)


@pytest.mark.parametrize("engine", [None, "h5netcdf"])
@pytest.mark.parametrize("suffix", [".nc", ".h5"])
def test_dataset_round_trip_keeps_dtypes_and_cf_attrs(tmp_path: Path, suffix, engine):
    rng = np.random.default_rng(0)
    attrs = {"units": "kg m-3", "long_name": "density", "standard_name": "sea_water_density"}
    ds = xr.Dataset(
        {
            "f32": (("sample", "x"), rng.standard_normal((4, 3)).astype(np.float32), attrs),
            "f64": (("sample", "x"), rng.standard_normal((4, 3))),
            "i32": (("sample", "x"), rng.integers(-2**31, 2**31 - 1, (4, 3), dtype=np.int32)),
            "i64": (("sample", "x"), rng.integers(-2**62, 2**62, (4, 3), dtype=np.int64)),
        },
        coords={"x": ("x", [0.0, 0.5, 1.0], {"units": "m", "opflow_periodic": 0,
                                              "opflow_bounds": np.array([0.0, 1.0])})},
        attrs={"title": "round trip"},
    )
    path = save(ds, tmp_path / f"d{suffix}")
    with open_dataset(path, engine=engine) as got:
        for name in ds.data_vars:
            assert got[name].dtype == ds[name].dtype
            assert got[name].values.tobytes() == ds[name].values.tobytes()
        for key, value in attrs.items():
            assert got["f32"].attrs[key] == value
        assert got["x"].attrs["units"] == "m"
        np.testing.assert_array_equal(got["x"].attrs["opflow_bounds"], [0.0, 1.0])
        assert got.attrs["title"] == "round trip"


def test_save_dataarray_and_to_xarray_objects(tmp_path: Path):
    field = small_field()

    class Result:  # stands in for a solver Solution
        def to_xarray(self):
            return field.to_xarray()

    with open_dataset(save(Result(), tmp_path / "sol.nc")) as ds:
        assert_same_field(to_field(ds), field)
    with open_dataset(save(field.to_dataarray(), tmp_path / "da.nc")) as ds:
        got = to_field(ds["u"])
        assert got.grid == field.grid and got.names == field.names
        assert bits(got.values) == bits(field.values)


# ---------------------------------------------------- file written by netCDF4
@pytest.fixture(params=["NETCDF4", "NETCDF3_CLASSIC"])
def cf_file(tmp_path: Path, request) -> Path:
    """A CF file written with the netCDF4 library itself (not opflow/xarray)."""
    path = tmp_path / "cf.nc"
    with netCDF4.Dataset(path, "w", format=request.param) as nc:
        nc.createDimension("sample", 2)
        nc.createDimension("x", 4)
        nc.createDimension("y", 3)
        x = nc.createVariable("x", "f8", ("x",))
        x[:] = [0.0, 1.0, 2.5, 4.0]
        x.units, x.long_name, x.standard_name = "m", "distance", "projection_x_coordinate"
        y = nc.createVariable("y", "f8", ("y",))
        y[:] = [10.0, 20.0, 30.0]
        y.units = "km"
        lat = nc.createVariable("lat", "f8", ("x", "y"))
        lat[:] = np.arange(12.0).reshape(4, 3)
        lat.units = "degrees_north"
        temp = nc.createVariable("temp", "i2", ("sample", "x", "y"), fill_value=-32767)
        temp.set_auto_maskandscale(False)
        temp.scale_factor, temp.add_offset = 0.01, 273.15
        temp.units, temp.long_name, temp.standard_name = "K", "Air temperature", "air_temperature"
        raw = np.arange(24, dtype=np.int16).reshape(2, 4, 3) * 25 - 300
        raw[1, 2, 0] = -32767
        temp[:] = raw
        precip = nc.createVariable("precip", "f4", ("sample", "x", "y"), fill_value=-999.0)
        precip.set_auto_maskandscale(False)
        precip.units, precip.coordinates = "mm", "lat"
        values = np.linspace(0.0, 5.0, 24, dtype=np.float32).reshape(2, 4, 3)
        values[0, 1, 1] = -999.0
        precip[:] = values
    return path


def test_cf_decoding_of_a_netcdf4_library_file(cf_file: Path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 4, 3) * 25 - 300
    with open_dataset(cf_file) as ds:
        assert "lat" in ds.coords and "lat" not in ds.data_vars
        assert ds["temp"].dtype.kind == "f"
        expected = raw * 0.01 + 273.15
        expected[1, 2, 0] = np.nan
        np.testing.assert_allclose(ds["temp"].values, expected, rtol=1e-12, equal_nan=True)
        assert ds["temp"].attrs["units"] == "K"
        assert ds["temp"].attrs["long_name"] == "Air temperature"
        assert ds["temp"].attrs["standard_name"] == "air_temperature"
        precip = ds["precip"].values
        assert np.isnan(precip[0, 1, 1]) and np.isnan(precip).sum() == 1
        want = np.linspace(0.0, 5.0, 24, dtype=np.float32).reshape(2, 4, 3)
        mask = ~np.isnan(precip)
        assert precip[mask].tobytes() == want[mask].tobytes()
        assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
        with pytest.warns(UserWarning, match=r"2 missing values.*'temp': 1, 'precip': 1"):
            field = to_field(ds, names=["temp", "precip"])
    assert field.attrs["opflow_missing_points"] == 2
    grid = Grid.from_coords({"x": [0.0, 1.0, 2.5, 4.0], "y": [10.0, 20.0, 30.0]},
                            units={"x": "m", "y": "km"})
    assert field.grid == grid
    assert field.shape == (2, 2, 4, 3) and field.units == ("K", "mm")
    assert sniff_format(cf_file) in ("hdf5", "netcdf3")


def test_resaving_a_decoded_file_keeps_packing_and_values(cf_file: Path, tmp_path: Path):
    with open_dataset(cf_file) as ds:
        path = save(ds, tmp_path / "again.h5")
        with open_dataset(path) as again:
            assert again["temp"].encoding["dtype"] == np.int16  # still packed
            for name in ("temp", "precip"):
                np.testing.assert_array_equal(again[name].values, ds[name].values)
            assert "lat" in again.coords


# -------------------------------------------------------------- lazy, chunks
@pytest.mark.parametrize("suffix", [".nc", ".h5"])
def test_chunks_give_dask_arrays(tmp_path: Path, suffix: str):
    field = small_field(n=6)
    path = save(field, tmp_path / f"lazy{suffix}", chunk=2)
    with open_dataset(path, chunks={"sample": 2}) as ds:
        assert isinstance(ds["u"].data, dask.array.Array)
        assert ds["u"].chunks == ((2, 2, 2), (6,), (5,))
        assert_same_field(to_field(ds), field)
    with open_dataset(path) as ds:
        assert ds["u"].chunks is None


def test_save_compresses_and_chunks_along_samples(tmp_path: Path):
    grid = Grid.uniform(x=(0.0, 1.0, 3))
    field = Field(torch.zeros(70, 1, 3), grid)
    with open_dataset(save(field, tmp_path / "c.nc")) as ds:
        enc = ds["u"].encoding
        assert enc["zlib"] and enc["complevel"] == 4 and enc["chunksizes"] == (64, 3)
    with open_dataset(save(field, tmp_path / "d.h5", chunk=5, compression=0)) as ds:
        assert not ds["u"].encoding.get("zlib") and ds["u"].encoding["chunksizes"] == (5, 3)
    with pytest.raises(UnknownVariableError, match="sample_dim"):
        save(field, tmp_path / "e.nc", sample_dim="member")
    with pytest.raises(InvalidArgumentError, match="compression"):
        save(field, tmp_path / "e.nc", compression=11)
    assert sorted(os.listdir(tmp_path)) == ["c.nc", "d.h5"]


# ------------------------------------------------------------------ atomicity
def _failing_to_netcdf(self, path, *args, **kwargs):
    with open(path, "wb") as fh:
        fh.write(b"\x89HDF\r\n\x1a\n half a file")
    raise RuntimeError("disk full")


@pytest.mark.parametrize("existing", [False, True])
def test_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch, existing):
    target = tmp_path / "out.nc"
    if existing:
        save(small_field(), target)
    before = target.read_bytes() if existing else None
    monkeypatch.setattr(xr.Dataset, "to_netcdf", _failing_to_netcdf)
    with pytest.raises(RuntimeError, match="disk full"):
        save(small_field(n=5), target)
    assert os.listdir(tmp_path) == (["out.nc"] if existing else [])
    if existing:
        assert target.read_bytes() == before


# ---------------------------------------------------------------- bad inputs
def test_text_and_empty_files_are_not_netcdf(tmp_path: Path):
    text = tmp_path / "notes.nc"
    text.write_text("hello world, not a netCDF file\n")
    with pytest.raises(FileFormatError, match="notes.nc") as info:
        open_dataset(text)
    assert "b'hello wo'" in str(info.value) and "netCDF" in str(info.value)
    empty = tmp_path / "empty.h5"
    empty.touch()
    with pytest.raises(FileFormatError, match=r"empty\.h5.*empty file"):
        open_dataset(empty)
    with pytest.raises(FileFormatError, match="not a regular file"):
        open_dataset(tmp_path)


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_truncated_file_is_corrupt(tmp_path: Path, fmt: str):
    good = tmp_path / "good.nc"
    small_field().to_xarray().to_netcdf(good, format=fmt)
    data = good.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="cut.nc"):
        open_dataset(cut)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def test_classic_formats_with_record_dims(tmp_path: Path, fmt: str):
    path = tmp_path / "rec.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.title = "records"
        nc.createDimension("time", None)
        nc.createDimension("x", 5)
        a = nc.createVariable("a", "i2", ("time", "x"))
        a.units = "m"
        a[:] = np.arange(35).reshape(7, 5)
        nc.createVariable("b", "f8", ("time",))[:] = np.arange(7.0)
        nc.createVariable("q", "i1", ("x",))[:] = 1
    with open_dataset(path) as ds:
        np.testing.assert_array_equal(ds["a"].values, np.arange(35).reshape(7, 5))
        assert ds["a"].attrs["units"] == "m"
    data = path.read_bytes()
    for cut in (len(data) - 8, 20):
        (tmp_path / "cut.nc").write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="cut.nc"):
            open_dataset(tmp_path / "cut.nc")


def test_missing_file_and_bad_arguments(tmp_path: Path):
    missing = tmp_path / "nowhere.nc"
    with pytest.raises(FileNotFoundError, match="nowhere.nc"):
        open_dataset(missing)
    with pytest.raises(InvalidArgumentError, match="engine"):
        open_dataset(missing, engine="scipy")
    with pytest.raises(InvalidArgumentError, match=r"out\.zarr"):
        save(small_field(), tmp_path / "out.zarr")
    with pytest.raises(InvalidArgumentError, match="obj"):
        save([1, 2, 3], tmp_path / "list.nc")
    with pytest.raises(FileNotFoundError, match="no_dir"):
        save(small_field(), tmp_path / "no_dir" / "f.nc")
    classic = tmp_path / "classic.nc"
    small_field().to_xarray().to_netcdf(classic, format="NETCDF3_64BIT")
    with pytest.raises(InvalidArgumentError, match="engine"):
        open_dataset(classic, engine="h5netcdf")
    assert not missing.exists()


@pytest.mark.parametrize("suffix", [".nc", ".h5"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_fields_are_written_as_float32(tmp_path: Path, suffix: str, dtype):
    grid = Grid.uniform(x=(0.0, 1.0, 8), periodic=("x",))
    f = Field(torch.linspace(-3, 3, 16).reshape(2, 1, 8).to(dtype), grid, "u")
    with open_dataset(save(f, tmp_path / f"half{suffix}")) as ds:
        assert ds["u"].dtype == np.float32
        back = to_field(ds)
    assert back.dtype == torch.float32
    assert torch.equal(back.values, f.values.float())  # the cast is exact
