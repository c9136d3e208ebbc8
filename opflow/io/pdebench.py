"""The PDEBench HDF5 layouts as xarray Datasets with named dimensions.

PDEBench (Takamoto et al., 2022) ships its data as plain HDF5 files in two
layouts, both understood here:

``flat`` (the 1D files, and the 2D/3D CFD files)
    Root datasets of shape ``(N, T, X[, Y[, Z]])`` (the 1D files call theirs
    ``tensor``) beside coordinate datasets ``x-coordinate`` (and
    ``y-coordinate``, ``z-coordinate``) and ``t-coordinate``; the time
    coordinate may hold ``T + 1`` values, of which the first ``T`` are used.
``grouped`` (the 2D files)
    One group per sample (``"0000"``, ``"0001"``, ...), each with ``data`` of
    shape ``(T, X[, Y[, Z]], C)`` and a ``grid`` group with ``x`` (``y``,
    ``z``) and ``t``. Each channel becomes its own variable.

Every variable gets dims ``("sample", "t", "x"[, "y"[, "z"]])``, and the
Dataset carries ``x``, ``y``, ``t`` coordinates (``sample`` has none, so that
:func:`opflow.io.to_field` takes the trailing, coordinated dims as the grid).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xarray as xr

from ..errors import (
    CorruptFileError,
    FileFormatError,
    InvalidArgumentError,
    OpflowError,
    ShapeError,
    UnknownVariableError,
)
from ._atomic import atomic_path
from ._reads import READ_ERRORS, CheckedArray

__all__ = [
    "is_pdebench",
    "open_pdebench",
    "pdebench_layout",
    "write_pdebench_1d",
    "write_pdebench_2d",
]

SAMPLE_DIM = "sample"
_SPATIAL = ("x", "y", "z")
_COORD_KEYS = {"x-coordinate": "x", "y-coordinate": "y", "z-coordinate": "z",
               "t-coordinate": "t"}
_DEFAULT_NAMES = {"tensor": "u"}


# ------------------------------------------------------------------ detection
@contextlib.contextmanager
def _as_group(h5file: h5py.Group | str | os.PathLike) -> Iterator[h5py.Group]:
    if isinstance(h5file, h5py.Group):
        yield h5file
        return
    with _open_h5(Path(h5file)) as f:
        yield f


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise
    except OSError as e:
        raise CorruptFileError(
            f"argument `path`: expected a readable HDF5 file, got {str(path)!r} "
            f"which cannot be opened (truncated or damaged?): {e}"
        ) from e


def _is_flat(f: h5py.Group) -> bool:
    if not isinstance(f.get("x-coordinate"), h5py.Dataset):
        return False
    return any(k not in _COORD_KEYS and isinstance(f.get(k), h5py.Dataset) for k in f)


def _is_grouped(f: h5py.Group) -> bool:
    first = next(iter(f), None)
    if first is None or not first.isdigit():
        return False
    g = f[first]
    return (isinstance(g, h5py.Group) and isinstance(g.get("data"), h5py.Dataset)
            and isinstance(g.get("grid"), h5py.Group) and "x" in g["grid"])


def pdebench_layout(h5file: h5py.Group | str | os.PathLike) -> str | None:
    """Which PDEBench layout a file has: ``"flat"``, ``"grouped"`` or ``None``.

    Parameters
    ----------
    h5file : h5py.File or h5py.Group or path
        An open HDF5 file (left open) or a path (opened and closed here).

    Returns
    -------
    str or None
        ``None`` for anything else, in particular netCDF4 files (recognised by
        their ``_NCProperties`` attribute).
    """
    with _as_group(h5file) as f:
        try:
            if "_NCProperties" in f.attrs:
                return None
            if _is_flat(f):
                return "flat"
            return "grouped" if _is_grouped(f) else None
        except READ_ERRORS as e:  # h5py on damaged metadata: KeyError, OSError, ...
            raise CorruptFileError(
                f"argument `path`: expected a readable HDF5 file, got {str(f.file.filename)!r} "
                f"whose structure cannot be read (damaged?): {e}") from e


def is_pdebench(h5file: h5py.Group | str | os.PathLike) -> bool:
    """Whether ``h5file`` (open HDF5 file or path) has a PDEBench layout.

    Parameters
    ----------
    h5file : h5py.Group, str or os.PathLike
        An open HDF5 file (or group), or a path to one.

    Returns
    -------
    bool
    """
    return pdebench_layout(h5file) is not None


# -------------------------------------------------------------------- reading
def _var_names(names: str | Sequence[str] | None, keys: Sequence[str],
               default: Mapping[str, str], argument: str = "names") -> list[str]:
    if names is None:
        return [default.get(k, k) for k in keys]
    names = [names] if isinstance(names, str) else list(names)
    if len(names) != len(keys) or len(set(names)) != len(names):
        raise InvalidArgumentError(
            argument, f"{len(keys)} distinct names (one per variable: {list(keys)})", names)
    return names


def _dask_chunks(chunks: Any, dims: Sequence[str], known: Iterable[str]) -> Any:
    """Per-dimension dask chunks from an xarray-style ``chunks`` argument."""
    if not isinstance(chunks, Mapping):
        return chunks
    unknown = set(chunks) - set(known)
    if unknown:
        raise UnknownVariableError("chunks", min(unknown), sorted(known))
    return tuple(chunks.get(d, -1) for d in dims)


def _lazy(dset: h5py.Dataset, chunks: Any):
    """``dset`` wrapped in dask; a failed read names the file and the dataset."""
    import dask.array as da

    checked = CheckedArray(dset, dset.file.filename, dset.name)
    return da.from_array(checked, chunks=chunks, lock=True, name=False, asarray=True)


def _array(dset: h5py.Dataset, dims: Sequence[str], chunks: Any, known: Iterable[str]):
    """The dataset read into memory (``chunks=None``) or wrapped lazily in dask."""
    if chunks is None:
        return dset[()]
    return _lazy(dset, _dask_chunks(chunks, dims, known))


def _flat_dims(key: str, shape: tuple[int, ...], spatial: Sequence[str],
               sizes: Mapping[str, int]) -> tuple[str, ...]:
    ns = len(spatial)
    expected = tuple(sizes[a] for a in spatial)
    if tuple(shape[len(shape) - ns:]) != expected or len(shape) not in (ns + 1, ns + 2):
        raise FileFormatError(
            f"PDEBench dataset {key!r}: expected shape (N, [T,] {', '.join(map(str, expected))}) "
            f"matching the {'/'.join(spatial)} coordinates, got {shape}")
    return (SAMPLE_DIM, *(("t",) if len(shape) == ns + 2 else ()), *spatial)


def _coordinates(raw: Mapping[str, np.ndarray], sizes: Mapping[str, int]) -> dict:
    coords = {}
    for axis, values in raw.items():
        values = np.asarray(values).reshape(-1)
        if axis in sizes and values.size >= sizes[axis]:
            coords[axis] = xr.Variable((axis,), values[: sizes[axis]], {"long_name": axis})
    return coords


def _read_flat(f: h5py.Group, names, chunks) -> xr.Dataset:
    raw = {axis: f[key][()] for key, axis in _COORD_KEYS.items() if key in f}
    spatial = [a for a in _SPATIAL if a in raw]
    sizes = {a: np.asarray(raw[a]).size for a in spatial}
    keys = [k for k in f if k not in _COORD_KEYS and isinstance(f.get(k), h5py.Dataset)]
    known = (SAMPLE_DIM, "t", *spatial)
    variables = {}
    for key, name in zip(keys, _var_names(names, keys, _DEFAULT_NAMES), strict=True):
        dset = f[key]
        dims = _flat_dims(key, dset.shape, spatial, sizes)
        if "t" in dims:
            sizes["t"] = dset.shape[1]
        variables[name] = xr.Variable(dims, _array(dset, dims, chunks, known))
    return xr.Dataset(variables, coords=_coordinates(raw, sizes))


def _grouped_data(f: h5py.Group, keys: Sequence[str], dims: Sequence[str], chunks):
    """All samples stacked: shape ``(N, T, X[, Y[, Z]], C)``."""
    if chunks is None:
        return np.stack([f[k]["data"][()] for k in keys])
    import dask.array as da

    known = tuple(dims[:-1])
    per_sample = _dask_chunks(chunks, dims[1:], known)
    data = da.stack([_lazy(f[k]["data"], per_sample) for k in keys])
    if isinstance(chunks, Mapping):
        data = data.rechunk({0: chunks.get(SAMPLE_DIM, -1)})
    return data


def _read_grouped(f: h5py.Group, names, chunks) -> xr.Dataset:
    keys = sorted(k for k in f if k.isdigit())
    grid = f[keys[0]]["grid"]
    spatial = [a for a in _SPATIAL if a in grid]
    shape = f[keys[0]]["data"].shape
    if len(shape) != len(spatial) + 2:
        raise FileFormatError(
            f"PDEBench group {keys[0]!r}: expected `data` of shape (T, {', '.join(spatial)}, C), "
            f"got {shape}")
    for k in keys:
        if f[k]["data"].shape != shape:
            raise FileFormatError(
                f"PDEBench group {k!r}: expected `data` of shape {shape} like group "
                f"{keys[0]!r}, got {f[k]['data'].shape}")
    dims = (SAMPLE_DIM, "t", *spatial, "channel")
    data = _grouped_data(f, keys, dims, chunks)
    channels = [f"u{c}" for c in range(shape[-1])]
    names = _var_names(names, channels, {})
    variables = {n: xr.Variable(dims[:-1], data[..., c]) for c, n in enumerate(names)}
    sizes = dict(zip(dims[1:-1], shape[:-1], strict=True))
    raw = {a: grid[a][()] for a in (*spatial, "t") if a in grid}
    return xr.Dataset(variables, coords=_coordinates(raw, sizes))


def _mark_periodic(ds: xr.Dataset, periodic: Iterable[str]) -> xr.Dataset:
    for axis in periodic:
        if axis not in ds.coords:
            raise UnknownVariableError("periodic", axis, list(ds.coords))
        ds[axis].attrs["opflow_periodic"] = 1
    return ds


def open_pdebench(
    path: str | os.PathLike,
    names: str | Sequence[str] | None = None,
    chunks: Any = None,
    periodic: Iterable[str] = (),
) -> xr.Dataset:
    """Read a PDEBench HDF5 file as an ``xarray.Dataset``.

    Parameters
    ----------
    path : str or os.PathLike
        A PDEBench HDF5 file (``flat`` or ``grouped`` layout, see module doc).
    names : str or sequence of str, optional
        Variable names: one per HDF5 dataset (flat layout, in file order;
        default: the dataset names, with ``tensor`` called ``u``) or one per
        channel (grouped layout; default ``u0, ..., u{C-1}``).
    chunks : mapping of dim name to int, or int or "auto", optional
        ``None`` (default) reads everything into memory and closes the file.
        Otherwise variables are dask arrays over the open HDF5 datasets (e.g.
        ``{"sample": 16}``; dims not named keep their full extent), and the
        file is closed by ``ds.close()``.
    periodic : iterable of str
        Axes to mark periodic (``opflow_periodic`` coordinate attribute), so
        that :func:`opflow.io.to_field` builds a periodic Grid.

    Returns
    -------
    xarray.Dataset
        Variables of dims ``("sample", "t", "x"[, "y"[, "z"]])`` (or without
        ``t`` for time-independent data) with ``x``/``y``/``z``/``t`` coords.
    """
    path = Path(path)
    f = _open_h5(path)
    try:
        layout = pdebench_layout(f)
        if layout is None:
            raise FileFormatError(
                f"argument `path`: expected a PDEBench HDF5 file (flat or grouped layout), "
                f"got {str(path)!r} with top-level members {list(f)[:8]}")
        reader = _read_flat if layout == "flat" else _read_grouped
        ds = _mark_periodic(reader(f, names, chunks), periodic)
    except READ_ERRORS as e:  # damaged data or metadata (h5py: OSError, KeyError, ...)
        f.close()
        if isinstance(e, (FileNotFoundError, OpflowError)):  # UnknownVariableError: a KeyError
            raise
        raise CorruptFileError(
            f"argument `path`: cannot read PDEBench file {str(path)!r} (damaged?): {e}") from e
    except BaseException:
        f.close()
        raise
    ds.attrs.update(source=str(path), opflow_pdebench_layout=layout)
    if chunks is None:
        f.close()
    else:
        ds.set_close(f.close)
    return ds


# -------------------------------------------------------------------- writing
def _numpy(value: Any, argument: str, ndim: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != ndim:
        raise ShapeError(argument, f"an array of {ndim} dimensions", array)
    return array


def _check_axis(argument: str, coord: np.ndarray, n: int, allow_extra: bool = False) -> None:
    if coord.size != n and not (allow_extra and coord.size == n + 1):
        expected = f"{n} or {n + 1} values" if allow_extra else f"{n} values"
        raise ShapeError(argument, f"{expected} (the matching data dimension)", coord)


def write_pdebench_1d(path: str | os.PathLike, tensor: Any, x: Any, t: Any) -> Path:
    """Write a PDEBench 1D file (flat layout), atomically.

    Parameters
    ----------
    path : str or os.PathLike
    tensor : array-like, shape (N, T, X)
    x : array-like, shape (X,)
    t : array-like, shape (T,) or (T + 1,)

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    tensor = _numpy(tensor, "tensor", 3)
    x, t = _numpy(x, "x", 1), _numpy(t, "t", 1)
    _check_axis("x", x, tensor.shape[2])
    _check_axis("t", t, tensor.shape[1], allow_extra=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("tensor", data=tensor)
        f.create_dataset("x-coordinate", data=x)
        f.create_dataset("t-coordinate", data=t)
    return Path(path)


def write_pdebench_2d(path: str | os.PathLike, data: Any, x: Any, y: Any, t: Any) -> Path:
    """Write a PDEBench 2D file (grouped layout: one group per sample), atomically.

    Parameters
    ----------
    path : str or os.PathLike
    data : array-like, shape (N, T, X, Y, C)
    x : array-like, shape (X,)
    y : array-like, shape (Y,)
    t : array-like, shape (T,) or (T + 1,)

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    data = _numpy(data, "data", 5)
    x, y, t = _numpy(x, "x", 1), _numpy(y, "y", 1), _numpy(t, "t", 1)
    _check_axis("x", x, data.shape[2])
    _check_axis("y", y, data.shape[3])
    _check_axis("t", t, data.shape[1], allow_extra=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for i, sample in enumerate(data):
            g = f.create_group(f"{i:04d}")
            g.create_dataset("data", data=sample)
            for name, coord in (("x", x), ("y", y), ("t", t)):
                g.create_dataset(f"grid/{name}", data=coord)
    return Path(path)
