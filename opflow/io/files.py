"""Opening and saving netCDF and HDF5 files.

:func:`open_dataset` recognises a file by its first bytes (netCDF classic or
HDF5, which includes netCDF4), sends PDEBench HDF5 layouts to
:func:`opflow.io.pdebench.open_pdebench` and everything else to
:func:`xarray.open_dataset` with CF decoding. :func:`save` writes Fields,
xarray objects and anything with a ``to_xarray()`` method as compressed
netCDF4/HDF5, atomically.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import xarray as xr

from ..errors import CorruptFileError, FileFormatError, InvalidArgumentError, UnknownVariableError
from ..field import Field
from ._atomic import atomic_path
from ._netcdf3 import expected_size
from ._reads import checked_engine
from .pdebench import open_pdebench, pdebench_layout

__all__ = ["open_dataset", "save", "sniff_format"]

ENGINES = ("netcdf4", "h5netcdf")
SUFFIX_ENGINES = {".nc": "netcdf4", ".nc4": "netcdf4", ".h5": "h5netcdf", ".hdf5": "h5netcdf"}
NETCDF_CLASSIC_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# An HDF5 superblock may follow a user block of 512, 1024, 2048, ... bytes.
_HDF5_OFFSETS = (0, *(512 * 2**k for k in range(12)))
_EXPECTED = "a netCDF file (classic or netCDF4) or an HDF5 file"
_CHUNK_BYTES_MAX = 2**31  # HDF5 chunks must stay below 4 GiB; keep well clear
_CF_ENCODING_KEYS = ("dtype", "_FillValue", "missing_value", "scale_factor", "add_offset",
                     "units", "calendar")


# ------------------------------------------------------------------- opening
def _check_engine(engine: str | None) -> None:
    if engine is not None and engine not in ENGINES:
        raise InvalidArgumentError("engine", f"None or one of {list(ENGINES)}", engine)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "opflow.open_dataset: no such file", str(path))
    if not path.is_file():
        raise FileFormatError(f"argument `path`: expected {_EXPECTED}, got {str(path)!r} "
                              "which is not a regular file")


def sniff_format(path: str | os.PathLike) -> str:
    """Format of a file from its magic bytes: ``"netcdf3"`` or ``"hdf5"``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        ``"netcdf3"`` for netCDF classic (CDF-1, CDF-2, CDF-5), ``"hdf5"`` for
        HDF5, which includes netCDF4.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    opflow.errors.FileFormatError
        Anything else; the message shows the first bytes.
    """
    path = Path(path)
    _check_exists(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head[:4] in NETCDF_CLASSIC_MAGIC:
            return "netcdf3"
        for offset in _HDF5_OFFSETS:
            fh.seek(offset)
            if fh.read(8) == HDF5_MAGIC:
                return "hdf5"
    what = "an empty file (0 bytes)" if not head else f"a file starting with {head!r}"
    raise FileFormatError(f"argument `path`: expected {_EXPECTED}, got {str(path)!r}, {what}")


def _corrupt(path: Path, error: BaseException) -> CorruptFileError:
    return CorruptFileError(
        f"argument `path`: expected a readable netCDF/HDF5 file, got {str(path)!r} which "
        f"has a netCDF/HDF5 signature but cannot be read (truncated or damaged?): {error}")


def _check_classic_size(path: Path) -> None:
    """netCDF-C reads a cut classic file as zeros: compare with the header's size."""
    try:
        need = expected_size(path)
    except ValueError as e:
        raise _corrupt(path, e) from None
    size = path.stat().st_size
    if size < need:
        raise _corrupt(path, ValueError(f"its header needs at least {need} bytes, the file "
                                        f"has {size}"))


def _open_xarray(path: Path, engine: str, chunks: Any) -> xr.Dataset:
    # h5netcdf names dimensions of plain HDF5 datasets (h5py files) phony_dim_0, ...
    # as netCDF4 does; say so rather than let it warn that its default changed.
    extra: dict[str, Any] = {"phony_dims": "access"} if engine == "h5netcdf" else {}
    try:
        return xr.open_dataset(
            path, engine=checked_engine(engine), chunks=chunks, mask_and_scale=True,
            decode_coords=True, decode_times=False, decode_timedelta=False, **extra,
        )
    except (OSError, RuntimeError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _corrupt(path, e) from e


def open_dataset(path: str | os.PathLike, engine: str | None = None,
                 chunks: Any = None, verify: bool = False) -> xr.Dataset:
    """Open a netCDF (classic or 4) or HDF5 file as an ``xarray.Dataset``.

    CF conventions are decoded: ``_FillValue``/``missing_value`` become NaN,
    packed variables (``scale_factor``/``add_offset``) are unpacked, and the
    ``coordinates`` attribute sets coordinates. ``units``, ``long_name`` and
    ``standard_name`` stay in ``attrs``. Time coordinates stay numbers
    (opflow grids are floating point), so no datetime decoding is done.
    PDEBench HDF5 files are read by :func:`opflow.io.pdebench.open_pdebench`.

    Parameters
    ----------
    path : str or os.PathLike
    engine : {"netcdf4", "h5netcdf"}, optional
        xarray backend for netCDF4/HDF5 files (default ``"netcdf4"``).
        netCDF classic files are always read with ``"netcdf4"``.
    chunks : mapping of dim name to int, or int or "auto", optional
        ``None``: lazily indexed numpy-backed variables. Otherwise dask arrays
        with these chunks (e.g. ``{"sample": 64}``), for data larger than memory.
    verify : bool
        Read every variable once now (one at a time, then dropped), so a damaged
        data block (a failed Fletcher-32 checksum, a broken zlib stream) raises
        :class:`~opflow.errors.CorruptFileError` here rather than a bare
        ``RuntimeError: NetCDF: HDF error`` at the first lazy read.

    Returns
    -------
    xarray.Dataset
        Close it (or use it as a context manager) to release the file.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    opflow.errors.FileFormatError
        Not a netCDF/HDF5 file (text, empty file, ...).
    opflow.errors.CorruptFileError
        A netCDF/HDF5 signature, but the file cannot be read (truncated, damaged).
        Raised too by a later (lazy) read of a damaged variable, naming the
        file and the variable, instead of the file library's own error.
    opflow.errors.InvalidArgumentError
        Unknown ``engine``.

    Examples
    --------
    >>> import tempfile, pathlib, torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 8))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "u.nc"
    >>> _ = opflow.save(opflow.Field(torch.rand(4, 1, 8), grid, names="u"), path)
    >>> ds = opflow.open_dataset(path)
    >>> dict(ds.sizes)
    {'sample': 4, 'x': 8}
    >>> tuple(ds.opflow.to_field(["u"]).shape)
    (4, 1, 8)
    """
    _check_engine(engine)
    path = Path(path)
    kind = sniff_format(path)
    if kind == "hdf5" and pdebench_layout(path) is not None:
        return open_pdebench(path, chunks=chunks)
    if kind == "netcdf3":
        if engine == "h5netcdf":
            raise InvalidArgumentError("engine", "'netcdf4' (or None) for a netCDF classic file",
                                       engine)
        _check_classic_size(path)
    ds = _open_xarray(path, engine or "netcdf4", chunks)
    if verify:
        _verify(ds, path)
    return ds


def _verify(ds: xr.Dataset, path: Path) -> None:
    """Read each variable once; close ``ds`` and raise CorruptFileError if one fails."""
    try:
        for var in ds.variables.values():
            np.asarray(var.values)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        ds.close()
        raise _corrupt(path, e) from e


# -------------------------------------------------------------------- saving
def _as_dataset(obj: Any) -> xr.Dataset:
    if isinstance(obj, Field):
        return obj.to_xarray()
    if isinstance(obj, xr.Dataset):
        return obj
    if isinstance(obj, xr.DataArray):
        return obj.to_dataset(name=obj.name if obj.name is not None else "u",
                              promote_attrs=True)
    to_xarray = getattr(obj, "to_xarray", None)
    if callable(to_xarray):
        out = to_xarray()
        if isinstance(out, (xr.Dataset, xr.DataArray)):
            return _as_dataset(out)
    raise InvalidArgumentError(
        "obj", "an opflow.Field, an xarray Dataset/DataArray or an object with to_xarray()", obj)


def _engine_for(path: Path, engine: str | None) -> Literal["netcdf4", "h5netcdf"]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_ENGINES:
        raise InvalidArgumentError(
            "path", f"a file name ending in one of {sorted(SUFFIX_ENGINES)}", str(path))
    _check_engine(engine)
    # the engines _check_engine accepts and SUFFIX_ENGINES names
    return cast('Literal["netcdf4", "h5netcdf"]', engine or SUFFIX_ENGINES[suffix])


def _sample_dim(ds: xr.Dataset, sample_dim: str | None) -> str | None:
    if sample_dim is None:
        return "sample" if "sample" in ds.dims else None
    if sample_dim not in ds.dims:
        raise UnknownVariableError("sample_dim", sample_dim, list(ds.dims))
    return sample_dim


def _chunksizes(var: xr.Variable, sample_dim: str | None, chunk: int) -> tuple[int, ...] | None:
    """Chunks of ``chunk`` samples and full extent elsewhere, or None (library default)."""
    if sample_dim not in var.dims or var.dims[0] != sample_dim or 0 in var.shape:
        return None
    per_sample = int(np.prod(var.shape[1:], dtype=np.int64)) * var.dtype.itemsize
    n = min(chunk, var.shape[0], max(1, _CHUNK_BYTES_MAX // max(per_sample, 1)))
    if n * per_sample > _CHUNK_BYTES_MAX:
        return None
    return (n, *var.shape[1:])


def _variable_encoding(var: xr.Variable, sample_dim: str | None, chunk: int,
                       compression: int) -> dict:
    encoding = {k: var.encoding[k] for k in _CF_ENCODING_KEYS if k in var.encoding}
    if var.ndim == 0 or var.dtype.kind not in "fiub":
        return encoding
    chunks = _chunksizes(var, sample_dim, chunk)
    # Fletcher-32 checksums per chunk: a flipped bit in the data then fails the read
    # instead of loading a silently wrong number.
    encoding.update(fletcher32=True, contiguous=False)
    if compression:
        encoding.update(zlib=True, complevel=compression, shuffle=True)
    if chunks is not None:
        encoding.update(chunksizes=chunks, contiguous=False)
    return encoding


def _check_save_args(compression: int, chunk: int | None) -> None:
    if not isinstance(compression, (int, np.integer)) or not 0 <= compression <= 9:
        raise InvalidArgumentError("compression", "an integer zlib level 0..9 (0: none)",
                                   compression)
    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or chunk < 1):
        raise InvalidArgumentError("chunk", "a positive integer number of samples", chunk)


def _check_attrs(ds: xr.Dataset) -> None:
    """netCDF stores text attributes as C strings: an embedded NUL would be cut off
    (read back shortened, silently) or refused deep inside the library."""
    owners = [("obj.attrs", ds.attrs)] + [(f"obj[{n!r}].attrs", v.attrs)
                                          for n, v in ds.variables.items()]
    for where, attrs in owners:
        for key, value in attrs.items():
            if isinstance(value, str) and "\x00" in value:
                raise InvalidArgumentError(f"{where}[{key!r}]", "text without NUL characters "
                                           "(netCDF cannot store them)", value)


def _check_names(ds: xr.Dataset) -> None:
    """netCDF4/HDF5 read '/' in a name as a group separator: refuse it before writing."""
    for name, var in ds.variables.items():
        for label in (name, *var.dims):
            if "/" in str(label):
                raise InvalidArgumentError(f"obj[{str(name)!r}]", "variable and dimension names "
                                           "without '/' (netCDF/HDF5 group separator)", label)
    owners = [("obj.attrs", ds.attrs)] + [(f"obj[{str(n)!r}].attrs", v.attrs)
                                          for n, v in ds.variables.items()]
    for where, attrs in owners:
        for key in attrs:
            if "/" in str(key):
                raise InvalidArgumentError(where, "attribute names without '/'", key)


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with float16 variables as float32 (netCDF has no 16-bit float; the cast is
    exact); complex variables are refused (netCDF has no complex type)."""
    half = []
    for name, var in ds.variables.items():
        if var.dtype.kind == "c":
            raise InvalidArgumentError(
                f"obj[{str(name)!r}]", "real values (netCDF has no complex type: save the real "
                "and imaginary parts as two variables)", f"dtype {var.dtype}")
        if var.dtype == np.float16:
            half.append(name)
    if not half:
        return ds
    ds = ds.copy()
    for name in half:
        ds[name] = ds[name].astype(np.float32)
    return ds


def save(
    obj: Any,
    path: str | os.PathLike,
    *,
    sample_dim: str | None = None,
    compression: int = 4,
    chunk: int | None = None,
    engine: str | None = None,
) -> Path:
    """Write a Field, an xarray object or a ``to_xarray()``-able object to a file.

    The file is written to a temporary sibling and renamed into place, so
    ``path`` either holds the complete new file or is left as it was.

    Parameters
    ----------
    obj : Field or xarray.Dataset or xarray.DataArray or object with ``to_xarray()``
        A Field of shape ``(*batch, channels, *grid.shape)`` is stored as one
        variable per channel with dims ``(*batch_dims, *grid.names)``
        (see :func:`opflow.io.field_to_dataset`).
    path : str or os.PathLike
        ``.nc``/``.nc4`` (netCDF4, engine ``"netcdf4"``) or ``.h5``/``.hdf5``
        (netCDF4-flavoured HDF5, engine ``"h5netcdf"``).
    sample_dim : str, optional
        Dimension to chunk along (default ``"sample"`` if present). Variables
        whose first dim it is are chunked ``(chunk, *full extent)``.
    compression : int
        zlib level for numeric variables, 0 (off) to 9. Default 4.
    chunk : int, optional
        Samples per chunk (default ``min(n, 64)``).
    engine : {"netcdf4", "h5netcdf"}, optional
        Override the engine chosen from the suffix.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        Checked before anything is written: a bad argument, complex values,
        or a variable, dimension or attribute name containing ``/``. The
        message names the variable.

    Notes
    -----
    float16 (and bfloat16) values are written as float32: netCDF has no
    16-bit float type and the conversion is exact; they read back as float32.

    Examples
    --------
    >>> import tempfile, pathlib, torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 8))
    >>> field = opflow.Field(torch.rand(4, 1, 8), grid, names="u")
    >>> path = opflow.save(field, pathlib.Path(tempfile.mkdtemp()) / "u.nc")
    >>> path.name, list(opflow.open_dataset(path).data_vars)
    ('u.nc', ['u'])
    """
    path = Path(path)
    eng = _engine_for(path, engine)
    _check_save_args(compression, chunk)
    ds = _as_dataset(obj)
    _check_attrs(ds)
    _check_names(ds)
    ds = _storable(ds)
    if "Conventions" not in ds.attrs:
        ds = ds.copy()
        ds.attrs["Conventions"] = "CF-1.8"
    sdim = _sample_dim(ds, sample_dim)
    encoding = {name: _variable_encoding(var, sdim, chunk or 64, int(compression))
                for name, var in ds.variables.items()}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=eng, format="NETCDF4", encoding=encoding)
    return path
