"""Conversion between :class:`~opflow.Field` and xarray objects, and the
``.opflow`` accessor.

xarray is opflow's edge format: a Field becomes a Dataset with one variable
per channel (dims ``(*batch_dims, *grid.names)``), coordinates carrying the
grid, and CF attributes (``units``, ``long_name``). Grid facts xarray has no
word for (periodicity and the axis bounds) are stored as coordinate attributes
``opflow_periodic`` and ``opflow_bounds``, so a round trip restores the Grid.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import xarray as xr

from ..errors import InvalidArgumentError, UnknownVariableError
from ..field import Field
from ..grid import Axis, Grid

__all__ = ["grid_to_coords", "grid_from_xarray", "field_to_dataset", "field_to_dataarray",
           "to_field", "OpflowAccessor"]

DEFAULT_BATCH_DIMS = ("sample",)


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
    try:
        return np.asarray(coord.values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError("obj", f"numeric values for the coordinate {d!r}",
                                   coord.values) from None


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


def grid_from_xarray(obj, dims: Sequence[str]) -> Grid:
    """Rebuild a Grid from the coordinates of ``dims`` on an xarray object.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Holds the coordinates (with their ``units`` and periodicity attributes).
    dims : sequence of str
        The grid's dimensions, in order.

    Returns
    -------
    Grid

    Raises
    ------
    opflow.errors.InvalidArgumentError
        (argument ``obj``) a coordinate that is not numeric, or an
        ``opflow_periodic`` / ``opflow_bounds`` attribute that is not 0/1 or
        two increasing numbers; the message names the coordinate.
    """
    axes = []
    for d in dims:
        if d in obj.coords:
            c = obj.coords[d]
            values, attrs = _coord_values(d, c), c.attrs
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
    return xr.Dataset(data_vars, coords=grid_to_coords(field.grid), attrs=attrs)


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
    coords = grid_to_coords(field.grid)
    coords["channel"] = xr.Variable(("channel",), np.array(field.names, dtype=object))
    attrs = _xr_attrs(field.attrs)
    attrs["opflow_grid_dims"] = " ".join(field.grid.names)
    if len(set(field.units)) == 1 and field.units[0]:
        attrs["units"] = field.units[0]
    return xr.DataArray(_numpy(field.values),
                        dims=(*bdims, "channel", *field.grid.names), coords=coords, attrs=attrs)


def _xr_attrs(attrs: dict) -> dict:
    """Attributes netCDF can store: numbers, strings and arrays of them."""
    out = {}
    for k, v in attrs.items():
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
    # Trailing dims that carry a coordinate variable are the grid; leading dims
    # without coordinates are batch dims.
    dims = list(candidate_dims)
    grid = []
    for d in reversed(dims):
        if d in obj.coords and obj.coords[d].ndim == 1:
            grid.insert(0, d)
        else:
            break
    if not grid:
        raise InvalidArgumentError(
            "grid_dims", "the grid dimension names (no dims with coordinates to infer them)", dims
        )
    return grid


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
        Dataset variables to use (default: all data variables).
    grid_dims : sequence of str, optional
        Which dims form the grid. Default: the dims recorded by opflow, else
        the trailing dims that have coordinates.
    dtype, device : optional
        Passed to :func:`torch.as_tensor`. Default dtype: that of the data.
    """
    if isinstance(obj, xr.DataArray):
        return _dataarray_to_field(obj, grid_dims, dtype, device)
    if not isinstance(obj, xr.Dataset):
        raise InvalidArgumentError("obj", "an xarray.Dataset or xarray.DataArray", obj)
    names = list(obj.data_vars) if names is None else list(names)
    if not names:
        raise InvalidArgumentError("names", "at least one data variable", names)
    for n in names:
        if n not in obj.data_vars:
            raise UnknownVariableError("names", n, list(obj.data_vars))
    dims = obj[names[0]].dims
    for n in names[1:]:
        if obj[n].dims != dims:
            raise InvalidArgumentError(
                "names", f"variables with the same dims as {names[0]!r} {dims}", {n: obj[n].dims}
            )
    gdims = list(grid_dims) if grid_dims is not None else _infer_grid_dims(obj, dims)
    missing = [d for d in gdims if d not in dims]
    if missing:
        raise UnknownVariableError("grid_dims", missing[0], dims)
    bdims = [d for d in dims if d not in gdims]
    grid = grid_from_xarray(obj, gdims)
    arrays = [np.asarray(obj[n].transpose(*bdims, *gdims).values) for n in names]
    values = torch.as_tensor(np.stack(arrays, axis=len(bdims)), dtype=dtype, device=device)
    units = [str(obj[n].attrs.get("units", "")) for n in names]
    attrs = {str(k): v for k, v in obj.attrs.items() if k != "opflow_grid_dims"}
    return Field(values, grid, [str(n) for n in names], units, attrs)


def _dataarray_to_field(da, grid_dims, dtype, device) -> Field:
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
