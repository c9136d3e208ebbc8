"""Conversion between :class:`~opflow.Field` and xarray objects, and the
``.opflow`` accessor.

xarray is opflow's edge format: a Field becomes a Dataset with one variable
per channel (dims ``(*batch_dims, *grid.names)``), coordinates carrying the
grid, and CF attributes (``units``, ``long_name``). Grid facts xarray has no
word for (periodicity and the axis bounds) are stored as coordinate attributes
``opflow_periodic`` and ``opflow_bounds``, so a round trip restores the Grid.

Files opflow did not write are read as follows (each case leaves a note in the
Field's ``attrs``):

* a decreasing coordinate (latitudes north to south, pressure levels) is
  flipped to increasing order, data with it; ``attrs["opflow_reversed_dims"]``
  names the flipped dims, and :func:`field_to_dataset` flips them back, so a
  file read and written again keeps its order;
* a grid dimension without a coordinate (``phony_dim_0`` of h5py/netCDF4) gets
  the index coordinates ``0, 1, 2, ...`` (spacing 1), with a warning and
  ``attrs["opflow_index_coords"]`` naming those dims;
* a non-numeric variable (strings, characters, complex numbers, compound
  types) is skipped with a warning when all variables are converted, and
  refused by name when asked for;
* missing values (``_FillValue``/``missing_value``, decoded to NaN) are
  counted in ``attrs["opflow_missing_points"]``, with a warning.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType
from typing import Any, Iterable, Sequence, cast

import numpy as np
import torch
import xarray as xr

from ..errors import InvalidArgumentError, UnknownVariableError
from ..field import SAMPLE_ATTR, Field, sample_labels
from ..grid import Axis, Grid

__all__ = ["grid_to_coords", "grid_from_xarray", "field_to_dataset", "field_to_dataarray",
           "flip_decreasing", "to_field", "OpflowAccessor"]

DEFAULT_BATCH_DIMS = ("sample",)
# Notes left in Field.attrs by to_field (see the module docstring).
REVERSED_DIMS_ATTR = "opflow_reversed_dims"
INDEX_COORDS_ATTR = "opflow_index_coords"
MISSING_POINTS_ATTR = "opflow_missing_points"
_NOTES = (REVERSED_DIMS_ATTR, INDEX_COORDS_ATTR, MISSING_POINTS_ATTR)


def _batch_dim_names(field: Field, batch_dims: Sequence[str] | None) -> list[str]:
    nb = len(field.batch_shape)
    if batch_dims is None:
        batch_dims = DEFAULT_BATCH_DIMS if nb == 1 else [f"batch_{i}" for i in range(nb)]
    batch_dims = list(batch_dims)
    if len(batch_dims) != nb:
        raise InvalidArgumentError("batch_dims", f"{nb} names (one per batch dim)", batch_dims)
    return batch_dims


def grid_to_coords(grid: Grid) -> dict[str, xr.Variable]:
    """Coordinate variables for ``grid`` with CF and opflow attributes."""
    coords = {}
    for a in grid.axes:
        attrs = {"long_name": a.name, "opflow_periodic": int(a.periodic),
                 "opflow_bounds": np.array(a.bounds)}
        if a.units:
            attrs["units"] = a.units
        coords[a.name] = xr.Variable((a.name,), np.asarray(a.coords), attrs)
    return coords


def _coord_values(d: str, coord) -> np.ndarray:
    # text that happens to parse as numbers ("0.0625") is refused too: a coordinate
    # stored as text is a file-writing mistake that should not pass silently
    if np.asarray(coord.values).dtype.kind not in "biufMm":  # numbers, datetimes
        raise InvalidArgumentError("obj", f"numeric values for the coordinate {d!r} (got "
                                   f"dtype {np.asarray(coord.values).dtype})", coord.values)
    return np.asarray(coord.values, dtype=np.float64)


def _periodic_mark(d: str, attrs) -> bool:
    """The ``opflow_periodic`` attribute: 0 or 1 (absent: 0)."""
    mark = np.asarray(attrs.get("opflow_periodic", 0))
    if mark.size != 1 or mark.dtype.kind not in "biuf" or mark.item() not in (0, 1):
        raise InvalidArgumentError(
            "obj", f"0 or 1 as the opflow_periodic attribute of the coordinate {d!r}",
            attrs["opflow_periodic"])
    return bool(mark.item())


def _bounds_mark(d: str, attrs) -> tuple[float, float]:
    """The ``opflow_bounds`` attribute: two finite increasing numbers."""
    bounds = np.asarray(attrs["opflow_bounds"])
    if (bounds.shape != (2,) or bounds.dtype.kind not in "iuf"
            or not np.all(np.isfinite(bounds)) or not bounds[0] < bounds[1]):
        raise InvalidArgumentError(
            "obj", f"two finite increasing numbers as the opflow_bounds attribute of the "
            f"coordinate {d!r}", attrs["opflow_bounds"])
    return float(bounds[0]), float(bounds[1])


def _decreasing(d: str, coord) -> bool:
    """Whether the coordinate ``d`` is strictly decreasing (and has 2 or more points)."""
    values = _coord_values(d, coord)
    return values.ndim == 1 and values.size > 1 and bool(np.all(np.diff(values) < 0))


def flip_decreasing(obj: Any, dims: Sequence[str]) -> tuple[Any, list[str]]:
    """``obj`` with every strictly decreasing coordinate among ``dims`` made increasing.

    Files often store latitudes north to south or pressure levels top down; a
    :class:`~opflow.Grid` needs increasing coordinates. Each such dimension is
    reversed (coordinate and data together, lazily: a view, nothing is read).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The object to flip.
    dims : sequence of str
        The dimensions to look at (those without a coordinate are left alone).

    Returns
    -------
    obj : xarray.Dataset or xarray.DataArray
        ``obj`` itself when nothing decreases, else the flipped object.
    flipped : list of str
        The reversed dimensions, in the order of ``dims``.

    Examples
    --------
    >>> import xarray as xr
    >>> da = xr.DataArray([1.0, 2.0, 3.0], coords={"lat": [30.0, 0.0, -30.0]}, dims="lat")
    >>> flipped, dims = flip_decreasing(da, ["lat"])
    >>> flipped.lat.values.tolist(), flipped.values.tolist(), dims
    ([-30.0, 0.0, 30.0], [3.0, 2.0, 1.0], ['lat'])
    """
    flipped = [d for d in dims if d in obj.coords and obj.coords[d].ndim == 1
               and _decreasing(d, obj.coords[d])]
    if flipped:
        obj = obj.isel({d: slice(None, None, -1) for d in flipped})
    return obj, flipped


def _warn(message: str) -> None:
    """A UserWarning attributed to the first caller outside opflow."""
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("opflow"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _index_dims(obj, dims: Sequence[str]) -> list[str]:
    return [d for d in dims if d not in obj.coords]


def _warn_index_coords(dims: Sequence[str]) -> None:
    _warn(f"dimensions {list(dims)} have no coordinates: opflow uses the index coordinates "
          f"0, 1, 2, ... (spacing 1) for them (noted in the Field's "
          f"attrs[{INDEX_COORDS_ATTR!r}]); add coordinates to the file for physical ones")


def _check_grid_sizes(obj, dims: Sequence[str], argument: str) -> None:
    """Every grid dimension has 2 or more points; a one-point one gets a hint."""
    short = [d for d in dims if obj.sizes[d] < 2]
    if short:
        d = short[0]
        rest = [e for e in dims if e not in short]
        hint = (f"pass grid_dims={rest} so that {d!r} becomes a batch dimension" if rest else
                "pass grid_dims naming dimensions of at least 2 points; the others become "
                "batch dimensions")
        raise InvalidArgumentError(
            argument, f"grid dimensions of at least 2 points each (a grid axis needs 2), but "
            f"{d!r} has {obj.sizes[d]}: {hint}", list(dims))


def grid_from_xarray(obj, dims: Sequence[str]) -> Grid:
    """Rebuild a Grid from the coordinates of ``dims`` on an xarray object.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Holds the coordinates (with their ``units`` and periodicity attributes).
    dims : sequence of str
        The grid's dimensions, in order. A dimension without a coordinate gets
        the index coordinates ``0, 1, 2, ...`` (spacing 1), with a warning.

    Returns
    -------
    Grid

    Raises
    ------
    opflow.errors.InvalidArgumentError
        (argument ``obj``) a coordinate that is not numeric or decreasing (see
        :func:`flip_decreasing`), or an ``opflow_periodic`` / ``opflow_bounds``
        attribute that is not 0/1 or two increasing numbers; the message names
        the coordinate. (argument ``dims``) a dimension of fewer than 2 points.
    """
    for d in dims:
        if d not in obj.dims:
            raise UnknownVariableError("dims", d, list(obj.dims))
    _check_grid_sizes(obj, dims, "dims")
    index = _index_dims(obj, dims)
    if index:
        _warn_index_coords(index)
    axes = []
    for d in dims:
        if d in obj.coords:
            c = obj.coords[d]
            values, attrs = _coord_values(d, c), c.attrs
            if _decreasing(d, c):
                raise InvalidArgumentError(
                    "obj", f"increasing coordinates for the grid dimension {d!r} (reverse them "
                    f"with opflow.io.convert.flip_decreasing, as to_field does)", values)
        else:  # no coordinate: integer positions
            values, attrs = np.arange(obj.sizes[d], dtype=np.float64), {}
        periodic = _periodic_mark(d, attrs)
        if "opflow_bounds" in attrs:
            bounds = _bounds_mark(d, attrs)
        elif periodic and values.size > 1:
            bounds = (values[0], values[-1] + (values[-1] - values[0]) / (values.size - 1))
        else:
            bounds = (values[0], values[-1])
        axes.append(Axis(d, values, periodic, bounds, str(attrs.get("units", ""))))
    return Grid(axes)


def _numpy(values: torch.Tensor) -> np.ndarray:
    """CPU numpy view of ``values`` (bfloat16, which numpy lacks, becomes float32)."""
    values = values.detach().cpu()
    return (values.float() if values.dtype == torch.bfloat16 else values).numpy()


def _var_attrs(field: Field, i: int) -> dict:
    attrs = {"long_name": field.names[i]}
    if field.units[i]:
        attrs["units"] = field.units[i]
    return attrs


def field_to_dataset(field: Field, batch_dims: Sequence[str] | None = None) -> xr.Dataset:
    """Dataset with one variable per channel; zero-copy for CPU tensors
    (bfloat16 values, which numpy lacks, are copied to float32).

    Dims that :func:`to_field` flipped to increasing order (named in
    ``field.attrs["opflow_reversed_dims"]``) are reversed back, so a file read
    and written again keeps its order. The sample coordinate
    ``field.attrs["opflow_sample"]`` becomes the first batch dim's coordinate.

    Parameters
    ----------
    field : Field
    batch_dims : sequence of str, optional
        Names of the batch dimensions (default ``("sample",)`` for one batch
        dimension, ``batch_0, batch_1, ...`` otherwise).
    """
    bdims = _batch_dim_names(field, batch_dims)
    data = _numpy(field.values)
    dims = (*bdims, *field.grid.names)
    data_vars = {
        name: xr.Variable(dims, np.take(data, i, axis=field.channel_dim), _var_attrs(field, i))
        for i, name in enumerate(field.names)
    }
    attrs = _xr_attrs(field.attrs)
    attrs["opflow_grid_dims"] = " ".join(field.grid.names)
    coords = _sample_coords(field, bdims)
    coords.update(grid_to_coords(field.grid))
    return _restore_order(xr.Dataset(data_vars, coords=coords, attrs=attrs), field)


def _sample_coords(field: Field, bdims: Sequence[str]) -> dict[str, xr.Variable]:
    """The sample coordinate (``attrs["opflow_sample"]``) on the first batch dim."""
    labels = sample_labels(field)
    if labels is None:
        return {}
    return {bdims[0]: xr.Variable((bdims[0],), labels)}


def _restore_order(obj, field: Field):
    """Reverse again the dims that :func:`to_field` flipped to increasing order."""
    noted = str(field.attrs.get(REVERSED_DIMS_ATTR, "")).split()
    dims = [d for d in noted if d in field.grid.names]
    return obj.isel({d: slice(None, None, -1) for d in dims}) if dims else obj


def field_to_dataarray(field: Field, batch_dims: Sequence[str] | None = None) -> xr.DataArray:
    """DataArray with dims ``(*batch_dims, "channel", *grid.names)``.

    Parameters
    ----------
    field : Field
        The Field to convert.
    batch_dims : sequence of str, optional
        Names of the batch dimensions (default ``("sample",)`` for one batch
        dimension, ``batch_0, batch_1, ...`` otherwise).

    Returns
    -------
    xarray.DataArray
    """
    bdims = _batch_dim_names(field, batch_dims)
    coords = _sample_coords(field, bdims)
    coords.update(grid_to_coords(field.grid))
    coords["channel"] = xr.Variable(("channel",), np.array(field.names, dtype=object))
    attrs = _xr_attrs(field.attrs)
    attrs["opflow_grid_dims"] = " ".join(field.grid.names)
    if len(set(field.units)) == 1 and field.units[0]:
        attrs["units"] = field.units[0]
    return _restore_order(xr.DataArray(_numpy(field.values),
                                       dims=(*bdims, "channel", *field.grid.names),
                                       coords=coords, attrs=attrs), field)


def _xr_attrs(attrs: dict) -> dict:
    """Attributes netCDF can store: numbers, strings and arrays of them (the sample
    coordinate is not an attribute: see :func:`_sample_coords`)."""
    out = {}
    for k, v in attrs.items():
        if k == SAMPLE_ATTR:
            continue
        if isinstance(v, (str, int, float, np.number, np.ndarray)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(e, (int, float)) for e in v):
            out[k] = np.asarray(v)
        else:
            out[k] = str(v)
    return out


def _infer_grid_dims(obj, candidate_dims: Sequence[str]) -> list[str]:
    stored = obj.attrs.get("opflow_grid_dims")
    if stored:
        return str(stored).split()
    dims = list(candidate_dims)
    # No dim has a coordinate (h5py's phony_dim_0, ...): all of them form the grid,
    # on index coordinates.
    if dims and not any(d in obj.coords for d in dims):
        return dims
    # Trailing dims that carry a coordinate variable are the grid; leading dims
    # without coordinates are batch dims.
    grid: list[str] = []
    for d in reversed(dims):
        if d in obj.coords and obj.coords[d].ndim == 1:
            grid.insert(0, d)
        else:
            break
    if not grid:
        raise InvalidArgumentError(
            "grid_dims", f"the grid dimension names (the last dimension {dims[-1]!r} has no "
            "coordinate, so they cannot be inferred): pass grid_dims=[...]", dims)
    return grid


def _numeric(dtype) -> bool:
    """Real numbers or booleans: what a Field holds (complex, text, compound: no)."""
    return np.dtype(dtype).kind in "biuf"


def _kind(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.names:
        return f"a compound type with fields {list(dtype.names)}"
    words = {"c": "complex", "U": "text", "S": "characters", "O": "text or objects",
             "V": "raw bytes", "M": "dates", "m": "time spans"}
    return f"dtype {dtype} ({words.get(dtype.kind, 'not numeric')})"


def _select(obj: xr.Dataset, names: Iterable[str] | None) -> list[str]:
    """The variables to convert: numeric ones (others skipped with a warning when
    ``names`` is None, refused by name when asked for)."""
    if names is None:
        every = [str(n) for n in obj.data_vars]
        chosen = [n for n in every if _numeric(obj[n].dtype)]
        skipped = {n: _kind(obj[n].dtype) for n in every if n not in chosen}
        if skipped:
            _warn(f"skipping variables that are not real numbers: {skipped} (a Field holds "
                  f"integers, floats or booleans)")
        if not chosen:
            raise InvalidArgumentError(
                "names", "at least one numeric data variable", f"variables {skipped}"
                if skipped else "a Dataset without data variables")
        return chosen
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise InvalidArgumentError("names", "at least one data variable", names)
    for n in names:
        if n not in obj.data_vars:
            raise UnknownVariableError("names", n, list(obj.data_vars))
        if not _numeric(obj[n].dtype):
            raise InvalidArgumentError(
                "names", "variables of real numbers (integers, floats or booleans; save "
                "complex values as real and imaginary parts)",
                f"variable {n!r} of {_kind(obj[n].dtype)}")
    return names


def _missing_points(arrays: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, int]:
    """NaN points per variable (missing values: ``_FillValue`` decodes to NaN)."""
    counts = {}
    for n, a in zip(names, arrays):
        if a.dtype.kind == "f":
            k = int(np.count_nonzero(np.isnan(a)))
            if k:
                counts[n] = k
    return counts


def to_field(
    obj,
    names: Iterable[str] | None = None,
    grid_dims: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> Field:
    """Field from an ``xarray.Dataset`` or ``xarray.DataArray``.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        For a Dataset, each selected variable becomes a channel (all must have
        the same dims). A DataArray with a ``channel`` dim maps that dim to
        channels; otherwise it is a one-channel field.
    names : iterable of str, optional
        Dataset variables to use. Default: all numeric data variables; those
        that are not real numbers (text, characters, complex, compound) are
        skipped with a warning. Asked for by name, such a variable is refused.
    grid_dims : sequence of str, optional
        Which dims form the grid (each of at least 2 points). Default: the
        dims recorded by opflow, else the trailing dims that have coordinates,
        else (no dim has a coordinate) all dims.
    dtype, device : optional
        Passed to :func:`torch.as_tensor`. Default dtype: that of the data.

    Returns
    -------
    Field
        Its ``attrs`` are those of ``obj`` plus notes on what was changed:
        ``opflow_reversed_dims`` (decreasing coordinates flipped to increasing
        order, data with them), ``opflow_index_coords`` (dims without a
        coordinate, given ``0, 1, 2, ...``) and ``opflow_missing_points`` (the
        number of missing values, NaN in the Field). A coordinate on the first
        batch dim becomes the sample coordinate ``attrs["opflow_sample"]``.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        (argument ``names``) a variable that is not numeric, or variables with
        different dims; (argument ``grid_dims``) a grid dim of one point (the
        message suggests the grid dims to pass) or dims that cannot be inferred.
    opflow.errors.UnknownVariableError
        A name in ``names`` or ``grid_dims`` that does not exist.

    Warns
    -----
    UserWarning
        Non-numeric variables skipped, index coordinates used, or missing
        values (NaN) found.
    """
    if isinstance(obj, xr.DataArray):
        return _dataarray_to_field(obj, grid_dims, dtype, device)
    if not isinstance(obj, xr.Dataset):
        raise InvalidArgumentError("obj", "an xarray.Dataset or xarray.DataArray", obj)
    every = names is None
    names = _select(obj, names)
    dims = cast("tuple[str, ...]", obj[names[0]].dims)  # xarray types dims Hashable
    for n in names[1:]:
        if obj[n].dims != dims:
            hint = " (pass `names` to choose the variables)" if every else ""
            raise InvalidArgumentError(
                "names", f"variables with the same dims as {names[0]!r} {dims}{hint}",
                {n: obj[n].dims})
    gdims = list(grid_dims) if grid_dims is not None else _infer_grid_dims(obj, dims)
    missing = [d for d in gdims if d not in dims]
    if missing:
        raise UnknownVariableError("grid_dims", missing[0], dims)
    _check_grid_sizes(obj, gdims, "grid_dims")
    bdims = [d for d in dims if d not in gdims]
    obj, flipped = flip_decreasing(obj[names], gdims)
    index = _index_dims(obj, gdims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # warned below, once, from here
        grid = grid_from_xarray(obj, gdims)
    if index:
        _warn_index_coords(index)
    arrays = [np.asarray(obj[n].transpose(*bdims, *gdims).values) for n in names]
    values = torch.as_tensor(np.stack(arrays, axis=len(bdims)), dtype=dtype, device=device)
    units = [str(obj[n].attrs.get("units", "")) for n in names]
    attrs = {str(k): v for k, v in obj.attrs.items()
             if k != "opflow_grid_dims" and k not in _NOTES and k != SAMPLE_ATTR}
    if bdims and bdims[0] in obj.coords and obj.coords[bdims[0]].ndim == 1:
        attrs[SAMPLE_ATTR] = np.asarray(obj.coords[bdims[0]].values)
    if flipped:
        attrs[REVERSED_DIMS_ATTR] = " ".join(flipped)
    if index:
        attrs[INDEX_COORDS_ATTR] = " ".join(index)
    counts = _missing_points(arrays, names)
    if counts:
        total = sum(counts.values())
        attrs[MISSING_POINTS_ATTR] = total
        _warn(f"{total} missing values (NaN, from _FillValue/missing_value or NaN in the data) "
              f"out of {values.numel()} points, per variable {counts}; noted in the Field's "
              f"attrs[{MISSING_POINTS_ATTR!r}]")
    return Field(values, grid, [str(n) for n in names], units, attrs)


def _dataarray_to_field(da, grid_dims, dtype, device) -> Field:
    if not _numeric(da.dtype):
        raise InvalidArgumentError(
            "obj", "a DataArray of real numbers (integers, floats or booleans)",
            f"DataArray {da.name!r} of {_kind(da.dtype)}")
    if "channel" in da.dims:
        ds = da.to_dataset(dim="channel")
        ds.attrs = dict(da.attrs)
        for v in ds.data_vars:
            if "units" in da.attrs:
                ds[v].attrs["units"] = da.attrs["units"]
        ds = ds.rename({v: str(v) for v in ds.data_vars})
        if grid_dims is None and "opflow_grid_dims" not in ds.attrs:
            grid_dims = _infer_grid_dims(da, [d for d in da.dims if d != "channel"])
        return to_field(ds, grid_dims=grid_dims, dtype=dtype, device=device)
    name = da.name if da.name is not None else "u"
    ds = da.to_dataset(name=str(name))
    ds.attrs = dict(da.attrs)
    ds = ds.drop_vars([], errors="ignore")
    return to_field(ds, grid_dims=grid_dims, dtype=dtype, device=device)


class OpflowAccessor:
    """``obj.opflow``: opflow methods on xarray objects.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The object the accessor is attached to (xarray passes it).

    Examples
    --------
    >>> field = ds.opflow.to_field(["a"])          # doctest: +SKIP
    >>> grid = ds.opflow.grid(["x", "y"])          # doctest: +SKIP
    """

    def __init__(self, obj):
        self._obj = obj

    def to_field(self, names=None, grid_dims=None, **kw) -> Field:
        """Convert to a :class:`~opflow.Field`; see :func:`to_field`.

        Parameters
        ----------
        names : iterable of str, optional
            Dataset variables to use as channels (default: all; ignored for
            a DataArray).
        grid_dims : sequence of str, optional
            Which dimensions form the grid (default: those opflow recorded,
            else the trailing dimensions with coordinates).
        **kw
            ``dtype`` and ``device``, as for :func:`to_field`.

        Returns
        -------
        Field
        """
        if isinstance(self._obj, xr.DataArray):
            return to_field(self._obj, grid_dims=grid_dims, **kw)
        return to_field(self._obj, names=names, grid_dims=grid_dims, **kw)

    def grid(self, dims: Sequence[str]) -> Grid:
        """The :class:`~opflow.Grid` spanned by ``dims``.

        Parameters
        ----------
        dims : sequence of str
            The grid's dimensions, in order.

        Returns
        -------
        Grid
        """
        return grid_from_xarray(self._obj, dims)


xr.register_dataset_accessor("opflow")(OpflowAccessor)
xr.register_dataarray_accessor("opflow")(OpflowAccessor)
