"""Pairs of input and output Fields read lazily from an xarray Dataset or a file.

An operator-learning sample is a pair ``(a, u)`` of functions on grids. An
:class:`OperatorDataset` names which variables of a Dataset form the input
Field and which the output Field, and reads one sample at a time (one
``isel`` along the sample dimension), so files larger than memory work.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import xarray as xr

from ..errors import InvalidArgumentError, ShapeError, UnknownVariableError
from ..field import SAMPLE_ATTR, Field
from ..grid import Grid
from ..io.convert import flip_decreasing, grid_from_xarray
from ..io.files import open_dataset
from .normalizer import RunningMoments, UnitGaussianNormalizer

__all__ = ["OperatorDataset"]

Source = xr.Dataset | str | os.PathLike


# ----------------------------------------------------------- variable sets
@dataclass(frozen=True, eq=False)
class _Variables:
    """Variables forming one Field: where they live and the Grid they share."""

    ds: xr.Dataset
    names: tuple[str, ...]
    sample_dim: str
    grid_dims: tuple[str, ...]
    grid: Grid
    units: tuple[str, ...]
    attrs: dict

    @property
    def n_samples(self) -> int:
        return int(self.ds.sizes[self.sample_dim])

    def load(self, index: int | np.ndarray) -> np.ndarray:
        """Values at sample ``index``: ``(C, *grid)``, or ``(k, C, *grid)`` for an array."""
        dims = self.grid_dims if np.ndim(index) == 0 else (self.sample_dim, *self.grid_dims)
        arrays = [np.asarray(self.ds[n].isel({self.sample_dim: index}).transpose(*dims).values)
                  for n in self.names]
        return np.stack(arrays, axis=0 if np.ndim(index) == 0 else 1)

    def label(self, index: int) -> np.ndarray:
        """The sample coordinate of sample ``index`` (its position without one)."""
        coord = self.ds.coords.get(self.sample_dim)
        if coord is not None and coord.ndim == 1:
            return np.asarray(coord.values[index])
        return np.asarray(index)

    def field(self, values: np.ndarray, dtype: torch.dtype | None,
              label: np.ndarray | None = None) -> Field:
        attrs = self.attrs if label is None else {**self.attrs, SAMPLE_ATTR: label}
        return Field(torch.as_tensor(values, dtype=dtype), self.grid, self.names, self.units,
                     attrs)


def _as_names(argument: str, names: str | Sequence[str]) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or len(set(names)) != len(names):
        raise InvalidArgumentError(argument, "one or more distinct variable names", names)
    return names


def _grid_dims_for(dims: Sequence[str], sample_dim: str,
                   grid_dims: Sequence[str] | None) -> tuple[str, ...]:
    rest = tuple(d for d in dims if d != sample_dim)
    if grid_dims is None:
        return rest
    grid_dims = tuple(grid_dims)
    if sorted(grid_dims) != sorted(rest):
        raise InvalidArgumentError(
            "grid_dims", f"an ordering of the non-sample dims {list(rest)}", list(grid_dims))
    return grid_dims


def _variables(ds: xr.Dataset, argument: str, names: Sequence[str], sample_dim: str,
               grid_dims: Sequence[str] | None) -> _Variables:
    names = _as_names(argument, names)
    for n in names:
        if n not in ds.data_vars:
            raise UnknownVariableError(argument, n, list(ds.data_vars))
    dims = cast("tuple[str, ...]", ds[names[0]].dims)  # xarray types dims Hashable
    for n in names:
        if sample_dim not in ds[n].dims:
            raise UnknownVariableError("sample_dim", sample_dim, ds[n].dims)
        if set(ds[n].dims) != set(dims):
            raise InvalidArgumentError(
                argument, f"variables with the dims of {names[0]!r} {dims}", {n: ds[n].dims})
    gdims = _grid_dims_for(dims, sample_dim, grid_dims)
    units = tuple(str(ds[n].attrs.get("units", "")) for n in names)
    attrs = {k: v for k, v in ds.attrs.items() if k != "opflow_grid_dims"}
    ds, flipped = flip_decreasing(ds, gdims)  # a lazy view: latitudes north to south, ...
    attrs.pop("opflow_reversed_dims", None)
    if flipped:
        attrs["opflow_reversed_dims"] = " ".join(flipped)
    return _Variables(ds, names, sample_dim, gdims, grid_from_xarray(ds, gdims), units, attrs)


def _open(source: Source, argument: str) -> xr.Dataset:
    if isinstance(source, xr.Dataset):
        return source
    if isinstance(source, (str, os.PathLike)):
        return open_dataset(source)
    raise InvalidArgumentError(argument, "an xarray.Dataset or a file path", source)


def _sources(source: Any) -> tuple[xr.Dataset, xr.Dataset]:
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise InvalidArgumentError("source", "a Dataset/path or a pair (inputs, outputs)",
                                       source)
        return _open(source[0], "source[0]"), _open(source[1], "source[1]")
    ds = _open(source, "source")
    return ds, ds


def _split_grid_dims(grid_dims: Any) -> tuple[Any, Any]:
    if isinstance(grid_dims, Mapping):
        unknown = set(grid_dims) - {"inputs", "outputs"}
        if unknown:
            raise UnknownVariableError("grid_dims", min(unknown), ["inputs", "outputs"])
        return grid_dims.get("inputs"), grid_dims.get("outputs")
    return grid_dims, grid_dims


# ------------------------------------------------------------------ splits
def _split_counts(sizes: Sequence[float | int], n: int) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or s < 0 for s in sizes):
        raise InvalidArgumentError("sizes", "non-negative fractions or sample counts", sizes)
    if all(isinstance(s, (int, np.integer)) for s in sizes):
        if sum(sizes) != n:
            raise InvalidArgumentError("sizes", f"sample counts adding up to {n}", sizes)
        return [int(s) for s in sizes]
    if abs(sum(sizes) - 1.0) > 1e-6:
        raise InvalidArgumentError("sizes", "fractions adding up to 1", sizes)
    counts = [int(np.floor(n * s)) for s in sizes]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def _permutation(n: int, seed: int | torch.Generator) -> np.ndarray:
    if isinstance(seed, torch.Generator):
        generator = seed
    else:
        generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator).numpy()


# ----------------------------------------------------------------- dataset
class OperatorDataset(torch.utils.data.Dataset):
    """Input/output Field pairs, one per sample of an xarray Dataset or file.

    Parameters
    ----------
    source : xarray.Dataset or path, or a pair of them
        The data; a path is opened with :func:`opflow.io.open_dataset`
        (lazily). A pair ``(input_source, output_source)`` takes inputs and
        outputs from different Datasets/files with the same number of samples.
    inputs, outputs : str or sequence of str
        Data variables forming the channels of the input and output Fields.
    sample_dim : str
        The dimension that indexes samples (default ``"sample"``).
    grid_dims : sequence of str, or mapping with keys "inputs"/"outputs", optional
        Order of the grid dims. Default: the variable's dims other than
        ``sample_dim``, in their order. Every non-sample dim must be a grid dim.
    dtype : torch.dtype or None
        dtype of the Field values (default float32; ``None`` keeps the file's).

    Notes
    -----
    ``ds[i]`` is ``(a, u)``: Fields of shape ``(C_in, *grid_in)`` and
    ``(C_out, *grid_out)``, no batch dim. With a ``DataLoader`` and its default
    collate (``import opflow.data`` registers Field batching) a batch is a pair
    of Fields of shape ``(B, C, *grid)``.
    """

    def __init__(
        self,
        source: Source | tuple[Source, Source],
        inputs: str | Sequence[str],
        outputs: str | Sequence[str],
        sample_dim: str = "sample",
        grid_dims: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        dtype: torch.dtype | None = torch.float32,
    ):
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidArgumentError("dtype", "None or a floating-point torch.dtype", dtype)
        in_ds, out_ds = _sources(source)
        in_gdims, out_gdims = _split_grid_dims(grid_dims)
        self._in = _variables(in_ds, "inputs", inputs, sample_dim, in_gdims)
        self._out = _variables(out_ds, "outputs", outputs, sample_dim, out_gdims)
        if self._in.n_samples != self._out.n_samples:
            raise ShapeError(
                "outputs", f"{self._in.n_samples} samples along {sample_dim!r} (as the inputs)",
                f"{self._out.n_samples} samples")
        if self._in.n_samples == 0:
            raise InvalidArgumentError("source", f"at least one sample along {sample_dim!r}",
                                       "0 samples")
        self.dtype = dtype
        self._indices = np.arange(self._in.n_samples)

    # -------------------------------------------------------------- protocol
    def __len__(self) -> int:
        return int(self._indices.size)

    def _position(self, i: Any) -> int:
        if isinstance(i, torch.Tensor) and i.numel() == 1:
            i = i.item()
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise InvalidArgumentError("index", "an integer sample index", i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return int(self._indices[i])

    def __getitem__(self, i: int) -> tuple[Field, Field]:
        """The pair ``(input Field (C_in, *grid_in), output Field (C_out, *grid_out))``.

        Each Field's ``attrs["opflow_sample"]`` is its sample coordinate: the
        value of the source's ``sample_dim`` coordinate, else the position
        along it, so predictions on a shuffled split can be matched to the file.

        Parameters
        ----------
        i : int
            Position in this dataset (negative counts from the end).

        Returns
        -------
        tuple of Field
        """
        j = self._position(i)
        return (self._in.field(self._in.load(j), self.dtype, self._in.label(j)),
                self._out.field(self._out.load(j), self.dtype, self._out.label(j)))

    def close(self) -> None:
        """Close the files behind the source Datasets (also those passed in)."""
        self._in.ds.close()
        self._out.ds.close()

    def __repr__(self) -> str:
        return (f"OperatorDataset({len(self)} samples, inputs={list(self._in.names)} on "
                f"{self._in.grid!r}, outputs={list(self._out.names)} on {self._out.grid!r})")

    # ------------------------------------------------------------ properties
    @property
    def indices(self) -> np.ndarray:
        """Positions along the sample dim of the source, one per item."""
        return self._indices.copy()

    @property
    def input_grid(self) -> Grid:
        return self._in.grid

    @property
    def output_grid(self) -> Grid:
        return self._out.grid

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._in.names

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._out.names

    # ---------------------------------------------------------------- splits
    def _checked(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``indices`` validated as positions in this dataset (negatives wrapped)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise InvalidArgumentError("indices", "a 1-D array of integer positions", indices)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise InvalidArgumentError("indices", f"positions in [-{n}, {n})", indices)
        return idx.astype(np.int64) % max(n, 1)

    def subset(self, indices: Sequence[int] | np.ndarray) -> OperatorDataset:
        """Dataset of the items at ``indices`` (positions in this dataset).

        Parameters
        ----------
        indices : sequence of int or numpy.ndarray
            Positions in this dataset.

        Returns
        -------
        OperatorDataset
            A view: the data are not copied.
        """
        new = copy.copy(self)
        new._indices = self._indices[self._checked(indices)]
        return new

    def split(self, sizes: Sequence[float | int], seed: int | torch.Generator = 0,
              shuffle: bool = True) -> list[OperatorDataset]:
        """Disjoint subsets, e.g. ``train, test = ds.split([0.8, 0.2], seed=0)``.

        Parameters
        ----------
        sizes : sequence of float or int
            Fractions adding up to 1 (remainders go to the first subsets) or
            sample counts adding up to ``len(self)``.
        seed : int or torch.Generator
            Randomness of the shuffle; the same seed gives the same split.
        shuffle : bool
            ``False`` keeps the order (consecutive blocks).

        Returns
        -------
        list of OperatorDataset
        """
        counts = _split_counts(sizes, len(self))
        order = _permutation(len(self), seed) if shuffle else np.arange(len(self))
        bounds = np.cumsum([0, *counts])
        return [self.subset(order[a:b]) for a, b in itertools.pairwise(bounds)]

    # ----------------------------------------------------------- statistics
    def _moments(self, variables: _Variables, positions: np.ndarray, pointwise: bool,
                 batch_size: int) -> RunningMoments:
        ndim = 2 + len(variables.grid_dims)
        moments = RunningMoments((0,) if pointwise else (0, *range(2, ndim)))
        for start in range(0, positions.size, batch_size):
            chunk = np.sort(self._indices[positions[start:start + batch_size]])
            moments.update(torch.as_tensor(variables.load(chunk)))
        return moments

    def fit_normalizers(
        self,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        pointwise: bool = False,
        eps: float = 1e-5,
        batch_size: int = 64,
    ) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer]:
        """Input and output normalizers fitted on the items at ``indices`` only.

        Parameters
        ----------
        indices : sequence of int, optional
            Positions in this dataset (default: all of it; call it on the
            training subset from :meth:`split`).
        pointwise : bool
            Per-grid-point statistics instead of per-channel.
        eps : float
        batch_size : int
            Samples read at a time (statistics are accumulated, not stacked).

        Returns
        -------
        (UnitGaussianNormalizer, UnitGaussianNormalizer)
            Statistics of shape ``(C, 1, ...)`` (or ``(C, *grid)`` pointwise),
            in ``self.dtype`` (float64 when ``dtype`` is None).
        """
        positions = np.arange(len(self)) if indices is None else self._checked(indices)
        if positions.size == 0:
            raise InvalidArgumentError("indices", "at least one sample", indices)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError("batch_size", "a positive integer", batch_size)
        dtype = self.dtype or torch.float64
        stats = [self._moments(v, positions, pointwise, batch_size) for v in (self._in, self._out)]
        x_norm, y_norm = (UnitGaussianNormalizer.from_moments(m, 1, dtype, eps) for m in stats)
        return x_norm, y_norm
