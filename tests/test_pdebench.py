"""opflow.io.pdebench: the PDEBench HDF5 layouts, eager and lazy."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array
import h5py
import numpy as np
import pytest
import torch

from opflow import Field, Grid
from opflow.errors import FileFormatError, InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.io import (
    is_pdebench,
    open_dataset,
    open_pdebench,
    pdebench_layout,
    save,
    to_field,
    write_pdebench_1d,
    write_pdebench_2d,
)

N, T, X, Y, C = 4, 5, 6, 3, 2


@pytest.fixture
def file_1d(tmp_path: Path):
    rng = np.random.default_rng(1)
    tensor = rng.standard_normal((N, T, X)).astype(np.float32)
    x = (np.arange(X) + 0.5) / X
    t = np.linspace(0.0, 2.0, T + 1)  # PDEBench stores one time more than the data
    return write_pdebench_1d(tmp_path / "burgers.hdf5", tensor, x, t), tensor, x, t


@pytest.fixture
def file_2d(tmp_path: Path):
    rng = np.random.default_rng(2)
    data = rng.standard_normal((N, T, X, Y, C)).astype(np.float32)
    x, y, t = np.linspace(-1, 1, X), np.linspace(0, 1, Y), np.linspace(0, 5, T)
    return write_pdebench_2d(tmp_path / "diff_react.h5", data, x, y, t), data, x, y, t


# ------------------------------------------------------------------------- 1D
def test_1d_layout_reads_with_named_dims(file_1d):
    path, tensor, x, t = file_1d
    assert pdebench_layout(path) == "flat" and is_pdebench(path)
    ds = open_dataset(path)
    assert list(ds.data_vars) == ["u"]
    assert ds["u"].dims == ("sample", "t", "x")
    np.testing.assert_array_equal(ds["u"].values, tensor)
    np.testing.assert_array_equal(ds["x"].values, x)
    np.testing.assert_array_equal(ds["t"].values, t[:T])
    assert ds.attrs["opflow_pdebench_layout"] == "flat"


def test_1d_names_periodic_and_to_field(file_1d):
    path, tensor, x, _ = file_1d
    ds = open_pdebench(path, names="rho", periodic=["x"])
    field = to_field(ds.isel(t=0))
    assert field.names == ("rho",) and field.shape == (N, 1, X)
    assert field.grid == Grid.from_coords({"x": x}, periodic=["x"])
    assert field.grid.axis("x").bounds == pytest.approx((x[0], 1.0 + x[0]))
    torch.testing.assert_close(field.values[:, 0], torch.from_numpy(tensor[:, 0]))


def test_1d_lazy_with_chunks_and_close(file_1d):
    path, tensor, _, _ = file_1d
    ds = open_dataset(path, chunks={"sample": 2})
    assert isinstance(ds["u"].data, dask.array.Array)
    assert ds["u"].chunks == ((2, 2), (T,), (X,))
    np.testing.assert_array_equal(ds["u"].isel(sample=3).values, tensor[3])
    with pytest.raises(OSError):  # the file is held open (read-only) until ds.close()
        h5py.File(path, "a")
    ds.close()
    h5py.File(path, "a").close()


def test_1d_time_coordinate_of_length_t(tmp_path: Path):
    tensor = np.zeros((2, 3, 4))
    path = write_pdebench_1d(tmp_path / "a.h5", tensor, np.arange(4.0), np.arange(3.0))
    np.testing.assert_array_equal(open_pdebench(path)["t"].values, [0.0, 1.0, 2.0])


# ------------------------------------------------------------------------- 2D
def test_2d_layout_reads_one_variable_per_channel(file_2d):
    path, data, x, y, t = file_2d
    assert pdebench_layout(path) == "grouped"
    ds = open_dataset(path)
    assert list(ds.data_vars) == [f"u{c}" for c in range(C)]
    for c in range(C):
        assert ds[f"u{c}"].dims == ("sample", "t", "x", "y")
        np.testing.assert_array_equal(ds[f"u{c}"].values, data[..., c])
    for name, coord in (("x", x), ("y", y), ("t", t)):
        np.testing.assert_array_equal(ds[name].values, coord)
    field = to_field(ds.isel(t=-1))
    assert field.shape == (N, C, X, Y) and field.grid.names == ("x", "y")


def test_2d_lazy_with_names(file_2d):
    path, data, *_ = file_2d
    ds = open_pdebench(path, names=["h", "v"], chunks={"sample": 3, "t": 2})
    assert list(ds.data_vars) == ["h", "v"]
    assert isinstance(ds["v"].data, dask.array.Array)
    assert ds["v"].chunks == ((3, 1), (2, 2, 1), (X,), (Y,))
    np.testing.assert_array_equal(ds["v"].values, data[..., 1])
    ds.close()


def test_flat_2d_cfd_layout(tmp_path: Path):
    """The 2D CFD files: several (N, T, X, Y) root datasets with coordinate datasets."""
    path = tmp_path / "cfd.hdf5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        for name in ("density", "pressure"):
            f[name] = rng.standard_normal((N, T, X, Y))
        f["x-coordinate"], f["y-coordinate"] = np.arange(X), np.arange(Y)
        f["t-coordinate"] = np.arange(T + 1)
        expected = f["pressure"][()]
    ds = open_dataset(path)
    assert list(ds.data_vars) == ["density", "pressure"]
    assert ds["pressure"].dims == ("sample", "t", "x", "y")
    np.testing.assert_array_equal(ds["pressure"].values, expected)


# ---------------------------------------------------------- detection, errors
def test_netcdf_and_plain_hdf5_are_not_pdebench(tmp_path: Path):
    field = Field(torch.zeros(2, 1, 4), Grid.uniform(x=(0.0, 1.0, 4)))
    for name in ("f.nc", "f.h5"):
        assert not is_pdebench(save(field, tmp_path / name))
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["values"] = np.arange(3)
    assert pdebench_layout(plain) is None
    with pytest.raises(FileFormatError, match="plain.h5"):
        open_pdebench(plain)


def test_reader_argument_errors(file_1d, file_2d):
    with pytest.raises(UnknownVariableError, match="chunks"):
        open_pdebench(file_1d[0], chunks={"samples": 2})
    with pytest.raises(InvalidArgumentError, match="names"):
        open_pdebench(file_2d[0], names=["only_one"])
    with pytest.raises(UnknownVariableError, match="periodic"):
        open_pdebench(file_1d[0], periodic=["y"])


def test_writers_check_shapes_and_are_atomic(tmp_path: Path):
    with pytest.raises(ShapeError, match="`x`"):
        write_pdebench_1d(tmp_path / "a.h5", np.zeros((2, 3, 4)), np.arange(5.0), np.arange(3.0))
    with pytest.raises(ShapeError, match="`t`"):
        write_pdebench_1d(tmp_path / "a.h5", np.zeros((2, 3, 4)), np.arange(4.0), np.arange(9.0))
    with pytest.raises(ShapeError, match="`data`"):
        write_pdebench_2d(tmp_path / "b.h5", np.zeros((2, 3, 4)), [0, 1], [0, 1], [0, 1])
    assert os.listdir(tmp_path) == []
    write_pdebench_2d(tmp_path / "b.h5", torch.zeros(1, 2, 2, 2, 1), [0, 1], [0, 1], [0, 1])
    assert os.listdir(tmp_path) == ["b.h5"]
