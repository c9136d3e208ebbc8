
import numpy as np
import pytest
import torch
import xarray as xr

from opflow import Field, Grid
from opflow.errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError


@pytest.fixture
def grid():
    return Grid.uniform(x=(0, 1, 8), y=(0, 2, 5), periodic=("x",), units={"x": "m", "y": "m"})


def test_layout_and_metadata(grid):
    f = Field(torch.zeros(4, 2, 8, 5), grid, names=["u", "v"], units=["m/s", "m/s"])
    assert f.batch_shape == (4,) and f.channels == 2 and f.channel_dim == 1
    assert f["v"].names == ("v",) and f["v"].shape == (4, 1, 8, 5)
    assert f[1:3].batch_shape == (2,)


def test_wrong_layout_is_reported(grid):
    with pytest.raises(ShapeError, match="values"):
        Field(torch.zeros(4, 5, 8), grid)
    with pytest.raises(ShapeError, match="channels"):
        Field(torch.zeros(8, 5), grid)  # no channel dim
    with pytest.raises(InvalidArgumentError, match="names"):
        Field(torch.zeros(2, 8, 5), grid, names=["a"])
    with pytest.raises(UnknownVariableError, match="'w'"):
        Field(torch.zeros(2, 8, 5), grid, names=["a", "b"])["w"]


def test_arithmetic_and_grid_mismatch(grid):
    a = Field(torch.ones(1, 8, 5), grid)
    b = Field(torch.full((1, 8, 5), 2.0), grid)
    assert torch.equal((a + b).values, torch.full((1, 8, 5), 3.0))
    assert torch.equal((2 * a - b).values, torch.zeros(1, 8, 5))
    other = Field(torch.ones(1, 8, 5), Grid.uniform(x=(0, 1, 8), y=(0, 1, 5)))
    with pytest.raises(GridMismatchError, match="other"):
        a + other


def test_autograd_and_dtype_pass_through(grid):
    v = torch.randn(1, 8, 5, dtype=torch.float64, requires_grad=True)
    f = Field(v, grid)
    (f.partial("x") * f).values.sum().backward()
    assert v.grad is not None and f.dtype == torch.float64


def test_xarray_round_trip_restores_grid_and_values(grid):
    f = Field(torch.randn(3, 2, 8, 5), grid, names=["u", "v"], units=["K", "Pa"],
              attrs={"source": "test"})
    ds = f.to_xarray()
    assert ds["u"].dims == ("sample", "x", "y") and ds["u"].attrs["units"] == "K"
    g = Field.from_xarray(ds)
    assert g.grid == grid and g.names == ("u", "v") and g.units == ("K", "Pa")
    assert torch.equal(g.values, f.values) and g.attrs["source"] == "test"
    da = f.to_dataarray()
    assert da.dims == ("sample", "channel", "x", "y")
    h = da.opflow.to_field()
    assert h.grid == grid and torch.equal(h.values, f.values) and h.names == ("u", "v")


def test_accessor_on_plain_dataset_infers_grid_dims():
    x = np.linspace(0, 1, 6)
    ds = xr.Dataset({"a": (("n", "x"), np.random.rand(3, 6))},
                    coords={"x": ("x", x, {"units": "m"})})
    f = ds.opflow.to_field()
    assert f.grid.names == ("x",) and f.batch_shape == (3,) and f.grid.units == ("m",)
    with pytest.raises(UnknownVariableError, match="'b'"):
        ds.opflow.to_field(["b"])


def test_numpy_defers_to_field_operators(grid):
    f = Field(torch.ones(1, 8, 5), grid)
    assert isinstance(np.float64(2.0) * f, Field)  # numpy scalars are numbers
    for bad in (np.ones((8, 5)), np.ones((8, 5), dtype=object)):
        with pytest.raises(InvalidArgumentError, match="torch.as_tensor"):
            bad + f
        with pytest.raises(InvalidArgumentError, match="torch.as_tensor"):
            f * bad


def test_batch_indexing_checks_range(grid):
    f = Field(torch.zeros(4, 1, 8, 5), grid)
    assert f[-1].batch_shape == () and f[[0, 3]].batch_shape == (2,)
    assert f[torch.tensor([True, False, True, True])].batch_shape == (3,)
    assert f[np.array([1, 2])].batch_shape == (2,)
    with pytest.raises(InvalidArgumentError, match=r"\[-4, 4\)"):
        f[4]


def test_derivatives_carry_the_units_of_the_grid():
    """Issue 22: T.partial("x").units was K; it is K/m (and K/m^2 for second derivatives)."""
    grid = Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 2.0, 16), periodic=("x", "y"),
                        units={"x": "m", "y": "m"})
    T = Field(torch.randn(1, 16, 16), grid, "T", "K")
    assert T.partial("x").units == ("K/m",) and T.partial("y", 2).units == ("K/m^2",)
    assert T.grad().units == ("K/m", "K/m") and T.laplacian().units == ("K/m^2",)
    assert T.grad().div().units == ("K/m^2",) and T.partial("x").partial("x").units == ("K/m^2",)
    plain = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))
    assert Field(torch.randn(1, 16), plain, "u").partial("x").units == ("",)
    mixed = Grid.uniform(x=(0.0, 1.0, 8), y=(0.0, 1.0, 8), periodic=("x", "y"),
                         units={"x": "m", "y": "s"})
    assert Field(torch.randn(1, 8, 8), mixed, "u", "K").laplacian().units == ("",)
