"""opflow.data: OperatorDataset, Field batching in DataLoader, normalizers."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader

from opflow import Field, Grid
from opflow.data import OperatorDataset, RunningMoments, UnitGaussianNormalizer, collate_fields
from opflow.errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.io import save

S, X, T = 10, 8, 5
IN_GRID = Grid.uniform(x=(0.0, 1.0, X), periodic=("x",), units={"x": "m"})
OUT_GRID = Grid.uniform(t=(0.0, 2.0, T), x=(0.0, 1.0, X), periodic=("x",),
                        units={"t": "s", "x": "m"})


@pytest.fixture
def source() -> xr.Dataset:
    """Inputs a, b on x; output u on (t, x); channels with different statistics."""
    rng = np.random.default_rng(0)
    a = Field(torch.from_numpy(rng.normal(3.0, 2.0, (S, 2, X))), IN_GRID, names=["a", "b"],
              units=["K", "Pa"])
    u = Field(torch.from_numpy(rng.normal(-1.0, 0.5, (S, 1, T, X))), OUT_GRID, names="u",
              units="m s-1")
    return xr.merge([a.to_xarray(), u.to_xarray()], combine_attrs="override")


@pytest.fixture
def dataset(source) -> OperatorDataset:
    return OperatorDataset(source, inputs=["a", "b"], outputs="u")


# ---------------------------------------------------------------------- items
def test_items_are_fields_on_the_right_grids(dataset, source):
    assert len(dataset) == S
    a, u = dataset[3]
    assert isinstance(a, Field) and isinstance(u, Field)
    assert a.shape == (2, X) and u.shape == (1, T, X)
    assert a.grid == IN_GRID and u.grid == OUT_GRID
    assert a.names == ("a", "b") and a.units == ("K", "Pa") and u.units == ("m s-1",)
    assert a.dtype == torch.float32
    want = np.stack([source["a"].values[3], source["b"].values[3]])
    torch.testing.assert_close(a.values, torch.tensor(want, dtype=torch.float32))
    torch.testing.assert_close(dataset[-1][1].values[0],
                               torch.tensor(source["u"].values[-1], dtype=torch.float32))
    with pytest.raises(IndexError):
        dataset[S]


def test_reads_from_a_file_lazily(tmp_path: Path, source):
    path = save(source, tmp_path / "ops.nc", chunk=4)
    ds = OperatorDataset(path, "a", "u", dtype=None)
    a, u = ds[7]
    assert a.dtype == torch.float64 and a.shape == (1, X)
    assert torch.equal(u.values[0], torch.from_numpy(source["u"].values[7]))


def test_grid_dims_reorder_the_output(source):
    ds = OperatorDataset(source, "a", "u", grid_dims={"outputs": ["x", "t"]})
    _, u = ds[0]
    assert u.grid.names == ("x", "t") and u.shape == (1, X, T)
    with pytest.raises(InvalidArgumentError, match="grid_dims"):
        OperatorDataset(source, "a", "u", grid_dims=["x"])


def test_dataloader_batches_fields(dataset, source):
    batches = list(DataLoader(dataset, batch_size=4))
    assert [len(a) for a, _ in batches] == [4, 4, 2]
    a, u = batches[0]
    assert isinstance(a, Field) and a.shape == (4, 2, X) and u.shape == (4, 1, T, X)
    assert a.grid == IN_GRID and u.grid == OUT_GRID and u.names == ("u",)
    want = torch.tensor(source["u"].values[:4], dtype=torch.float32)
    torch.testing.assert_close(u.values[:, 0], want)


def test_grid_pickles():
    assert pickle.loads(pickle.dumps(IN_GRID)) == IN_GRID


def test_dataloader_with_a_worker_process(tmp_path: Path, source):
    ds = OperatorDataset(save(source, tmp_path / "ops.nc"), ["a", "b"], "u")
    batches = list(DataLoader(ds, batch_size=4, num_workers=1))
    assert [len(a) for a, _ in batches] == [4, 4, 2]
    assert batches[0][1].grid == OUT_GRID
    ds.close()


def test_collate_rejects_mixed_grids():
    f = Field(torch.zeros(1, X), IN_GRID)
    g = Field(torch.zeros(1, X), Grid.uniform(x=(0.0, 1.0, X)))  # same size, not periodic
    with pytest.raises(GridMismatchError, match=r"batch\[1\]"):
        collate_fields([f, g])


# --------------------------------------------------------------------- splits
def test_split_fractions_and_sizes(dataset):
    train, val, test = dataset.split([0.6, 0.2, 0.2], seed=0)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    union = np.concatenate([train.indices, val.indices, test.indices])
    assert sorted(union) == list(range(S))
    again = dataset.split([0.6, 0.2, 0.2], seed=0)[0]
    assert np.array_equal(again.indices, train.indices)
    assert not np.array_equal(dataset.split([0.6, 0.4], seed=1)[0].indices, train.indices)
    first, rest = dataset.split([3, 7], shuffle=False)
    assert list(first.indices) == [0, 1, 2]
    a, _ = rest[0]
    assert torch.equal(a.values, dataset[3][0].values)
    with pytest.raises(InvalidArgumentError, match="sizes"):
        dataset.split([0.5, 0.2])
    with pytest.raises(InvalidArgumentError, match="sizes"):
        dataset.split([4, 4])


# ---------------------------------------------------------------- normalizers
def _by_hand(source: xr.Dataset, names, idx) -> torch.Tensor:
    return torch.from_numpy(np.stack([source[n].values[idx] for n in names], axis=1))


def test_normalizers_fit_on_the_train_split_only(dataset, source):
    train, _ = dataset.split([0.7, 0.3], seed=0)
    norm_in, norm_out = train.fit_normalizers()
    a = _by_hand(source, ["a", "b"], train.indices)   # (7, 2, X) float64
    u = _by_hand(source, ["u"], train.indices)        # (7, 1, T, X)
    torch.testing.assert_close(norm_in.mean, a.mean((0, 2), keepdim=True)[0].float())
    torch.testing.assert_close(norm_in.std, a.std((0, 2), correction=0, keepdim=True)[0].float())
    torch.testing.assert_close(norm_out.mean, u.mean((0, 2, 3), keepdim=True)[0].float())
    torch.testing.assert_close(norm_out.std,
                               u.std((0, 2, 3), correction=0, keepdim=True)[0].float())
    everything = _by_hand(source, ["a", "b"], slice(None)).mean((0, 2)).float()
    assert not torch.allclose(norm_in.mean.flatten(), everything)
    # the same statistics from the full dataset given the train indices, read 3 at a time
    same_in, _ = dataset.fit_normalizers(train.indices, batch_size=3)
    torch.testing.assert_close(same_in.mean, norm_in.mean)
    torch.testing.assert_close(same_in.std, norm_in.std)


def test_pointwise_normalizer_matches_fno_style(dataset, source):
    train, _ = dataset.split([0.5, 0.5], seed=2)
    norm_in, norm_out = train.fit_normalizers(pointwise=True)
    a = _by_hand(source, ["a", "b"], train.indices)
    assert norm_in.mean.shape == (2, X) and norm_out.mean.shape == (1, T, X)
    torch.testing.assert_close(norm_in.mean, a.mean(0).float())
    torch.testing.assert_close(norm_in.std, a.std(0, correction=0).float())


def test_encode_decode_round_trip(dataset):
    norm_in, norm_out = dataset.fit_normalizers()
    a, u = next(iter(DataLoader(dataset, batch_size=S)))
    z = norm_in.encode(a)
    assert isinstance(z, Field) and z.grid == a.grid
    torch.testing.assert_close(z.values.mean((0, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.values.std((0, 2), correction=0), torch.ones(2), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(norm_in.decode(z).values, a.values)
    torch.testing.assert_close(norm_out.decode(norm_out.encode(u.values)), u.values)
    torch.testing.assert_close(norm_out.to(torch.float64).encode(u.values.double()),
                               norm_out.encode(u.values).double())


def test_normalizer_state_dict_and_fit(dataset):
    values = torch.randn(6, 3, 4, 5, dtype=torch.float64)
    norm = UnitGaussianNormalizer.fit(values, eps=1e-3)
    assert norm.mean.shape == (3, 1, 1)
    chunked = RunningMoments((0, 2, 3)).update(values[:2]).update(values[2:])
    torch.testing.assert_close(chunked.std().reshape(3, 1, 1), norm.std)
    buffer = io.BytesIO()
    torch.save(norm.state_dict(), buffer)
    buffer.seek(0)
    again = UnitGaussianNormalizer.from_state_dict(torch.load(buffer))
    assert again.eps == 1e-3
    assert torch.equal(again.encode(values), norm.encode(values))
    with pytest.raises(InvalidArgumentError, match="dims"):
        UnitGaussianNormalizer.fit(values, dims=[2, 3])
    with pytest.raises(ShapeError, match="values"):
        UnitGaussianNormalizer.fit(torch.zeros(5))
    # no samples: the statistics are refused (was an AttributeError on the missing mean)
    with pytest.raises(InvalidArgumentError, match="at least one value"):
        UnitGaussianNormalizer.fit(torch.zeros(0, 3, 4))
    with pytest.raises(InvalidArgumentError, match="at least one value"):
        UnitGaussianNormalizer.from_moments(RunningMoments((0,)), 1, torch.float64)


# --------------------------------------------------------------------- errors
def test_bad_variables_and_sample_counts(source):
    with pytest.raises(UnknownVariableError, match="'c'"):
        OperatorDataset(source, inputs=["a", "c"], outputs="u")
    with pytest.raises(UnknownVariableError, match="outputs"):
        OperatorDataset(source, inputs="a", outputs="w")
    fewer = source.isel(sample=slice(0, 7))
    with pytest.raises(ShapeError, match="10 samples"):
        OperatorDataset((source, fewer), inputs="a", outputs="u")
    with pytest.raises(UnknownVariableError, match="sample_dim"):
        OperatorDataset(source, "a", "u", sample_dim="member")
