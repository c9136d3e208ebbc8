"""Reads that fail after a file was opened: :class:`~opflow.errors.CorruptFileError`.

xarray and dask read a variable's data only when it is used, long after
:func:`opflow.io.open_dataset` returned. A damaged data block or damaged
HDF5 metadata then surfaces as the library's own error (netCDF4's
``RuntimeError: NetCDF: HDF error``, h5py's ``KeyError`` or ``OSError``).
Every array opflow opens lazily is wrapped here so that such a read raises
``CorruptFileError`` naming the file and the variable instead.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import CorruptFileError

__all__ = ["CheckedArray", "checked_engine", "read_error"]

# What the netCDF4 and h5py libraries raise on a damaged block or damaged metadata.
READ_ERRORS = (OSError, RuntimeError, KeyError)


def read_error(path: str | os.PathLike, name: str, error: BaseException) -> CorruptFileError:
    """The error for a failed read of variable ``name`` of the file at ``path``."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CorruptFileError(
        f"argument `path`: expected a readable netCDF/HDF5 file, got {str(path)!r} whose "
        f"variable {name!r} cannot be read (damaged?): {type(error).__name__}: {first}")


class CheckedArray:
    """An array-like (h5py dataset, xarray backend array) whose reads name file and variable.

    Parameters
    ----------
    array
        Has ``shape``, ``dtype`` and ``__getitem__``; indexing is passed through.
    path : str or os.PathLike
        The file, for messages.
    name : str
        The variable, for messages.
    """

    def __init__(self, array: Any, path: str | os.PathLike, name: str):
        self.array, self.path, self.name = array, Path(path), str(name)
        self.shape, self.dtype = tuple(array.shape), array.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.array[key]
        except READ_ERRORS as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise read_error(self.path, self.name, e) from e


class _CheckedBackendArray(CheckedArray, xr.backends.BackendArray):
    """:class:`CheckedArray` around an xarray backend array (xarray indexes it lazily)."""


def _check_reads(ds: xr.Dataset, path: str | os.PathLike) -> xr.Dataset:
    """Wrap the backend array of every lazily read variable of ``ds`` in place."""
    for name, var in ds.variables.items():
        holder = getattr(var, "_data", None)  # LazilyIndexedArray(<backend array>)
        inner = getattr(holder, "array", None)
        if holder is not None and isinstance(inner, xr.backends.BackendArray) and \
                not isinstance(inner, CheckedArray):
            holder.array = _CheckedBackendArray(inner, path, str(name))
    return ds


def _checked(base: type[xr.backends.BackendEntrypoint]) -> type[xr.backends.BackendEntrypoint]:
    """A subclass of the xarray engine ``base`` whose datasets read through CheckedArray."""

    def open_dataset(self, filename_or_obj, *, drop_variables=None, **kwargs) -> xr.Dataset:
        ds = base.open_dataset(self, filename_or_obj, drop_variables=drop_variables, **kwargs)
        return _check_reads(ds, filename_or_obj)

    parameters = tuple(inspect.signature(base.open_dataset).parameters)[1:]  # without self
    return type(f"Checked{base.__name__}", (base,),
                {"open_dataset": open_dataset, "open_dataset_parameters": parameters})


_ENGINES = {"netcdf4": xr.backends.NetCDF4BackendEntrypoint,
            "h5netcdf": xr.backends.H5netcdfBackendEntrypoint}
_CHECKED: dict[str, type[xr.backends.BackendEntrypoint]] = {}


def checked_engine(engine: str) -> type[xr.backends.BackendEntrypoint]:
    """The xarray engine class for ``engine`` ("netcdf4" or "h5netcdf") with checked reads.

    Pass it as ``xarray.open_dataset(..., engine=checked_engine("netcdf4"))``.
    """
    if engine not in _CHECKED:
        _CHECKED[engine] = _checked(_ENGINES[engine])
    return _CHECKED[engine]
