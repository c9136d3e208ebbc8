"""Field: a tensor on a Grid, with variable names and units.

The layout, used everywhere in opflow::

    values.shape == (*batch, channels, *grid.shape)

``batch`` may be empty (a single sample) or have any number of dimensions;
``channels`` is always present (1 for a scalar field). Device, dtype and
autograd are those of ``values``: a Field is exactly as differentiable as its
tensor, and every operation below is a torch operation.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from . import calculus, norms
from .errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from .grid import Grid

__all__ = ["Field"]

#: ``attrs`` key of the sample coordinate: labels of the first batch dimension (a 1-D
#: array), or of the one sample an unbatched Field holds (a 0-d array). Slicing the
#: Field slices it; ``to_xarray`` makes it the coordinate of the first batch dim.
SAMPLE_ATTR = "opflow_sample"


def sample_labels(field: "Field") -> np.ndarray | None:
    """The sample coordinate of ``field`` (one label per entry of its first batch
    dim), or None when it has none or it does not fit."""
    labels = field.attrs.get(SAMPLE_ATTR)
    if labels is None or not field.batch_shape:
        return None
    labels = np.asarray(labels)
    return labels if labels.ndim == 1 and labels.shape[0] == field.batch_shape[0] else None


def _index_samples(field: "Field", key: Any) -> dict:
    """``field.attrs`` with the sample coordinate indexed as the batch by ``key``."""
    attrs = dict(field.attrs)
    if attrs.pop(SAMPLE_ATTR, None) is None:
        return attrs
    labels = sample_labels(field)
    first = key[0] if isinstance(key, tuple) and key else key
    if labels is None or first is None or first is Ellipsis:
        return attrs
    if isinstance(first, torch.Tensor):
        first = first.cpu().numpy()
    try:
        attrs[SAMPLE_ATTR] = labels[first]
    except (IndexError, TypeError, ValueError):
        pass
    return attrs


def _strings(value: Any, argument: str) -> tuple[str, ...]:
    """One string or an iterable of strings as a tuple, or an error naming ``argument``."""
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or not all(isinstance(v, str) for v in items):
        raise InvalidArgumentError(argument, "a string or a sequence of strings", value)
    return items


def _as_names(names, channels: int) -> tuple[str, ...]:
    if names is None:
        return ("u",) if channels == 1 else tuple(f"u{i}" for i in range(channels))
    names = _strings(names, "names")
    if len(names) != channels or len(set(names)) != len(names) or "" in names:
        raise InvalidArgumentError("names", f"{channels} distinct non-empty names (one per "
                                   "channel)", names)
    return names


def derived_units(units: str, per: str, power: int = 1) -> str:
    """Units of a derivative: ``units`` per ``per`` to the ``power`` (``"K"``, ``"m"``,
    2 -> ``"K/m^2"``); ``per`` empty keeps ``units``, ``units`` empty gives ``"1/m"``."""
    if not per:
        return units
    for n in range(4, 0, -1):  # K/m per m is K/m^2, not K/m/m
        tail = f"/{per}" if n == 1 else f"/{per}^{n}"
        if units.endswith(tail):
            units, power = units[: -len(tail)], power + n
            break
    denominator = per if power == 1 else f"{per}^{power}"
    if " " in per or "/" in per:
        denominator = f"({per})" if power == 1 else f"({per})^{power}"
    return f"{units or '1'}/{denominator}"


def _common_units(grid, axes=None) -> str:
    """The axes' units when they all agree (needed for a Laplacian), else ``""``."""
    names = grid.names if axes is None else axes
    found = {grid.axis(a).units for a in names}
    return found.pop() if len(found) == 1 else ""


def _as_units(units, channels: int) -> tuple[str, ...]:
    if units is None:
        return ("",) * channels
    units = (units,) * channels if isinstance(units, str) else _strings(units, "units")
    if len(units) != channels:
        raise InvalidArgumentError("units", f"{channels} unit strings (one per channel)", units)
    return units


def _as_attrs(attrs) -> dict:
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping) or not all(isinstance(k, str) for k in attrs):
        raise InvalidArgumentError("attrs", "a mapping with string keys (netCDF attributes)",
                                   attrs)
    return dict(attrs)


_OPERANDS = "a Field on the same grid, a torch.Tensor or a number"


class Field:
    """Values on a :class:`~opflow.Grid` with names, units and attributes.

    Parameters
    ----------
    values : torch.Tensor or array-like, shape (*batch, channels, *grid.shape)
        The data. Array-likes are converted with :func:`torch.as_tensor`.
    grid : Grid
        The grid of the trailing dimensions.
    names : str or sequence of str, optional
        One name per channel (default ``"u"`` or ``"u0", "u1", ...``).
    units : str or sequence of str, optional
        Units per channel (one string applies to all).
    attrs : mapping, optional
        Free metadata carried to xarray/netCDF attributes. One key is special:
        ``attrs["opflow_sample"]`` holds the sample coordinate (labels of the
        first batch dimension, e.g. sample numbers in the source file); slicing
        the Field slices it and :meth:`to_xarray` writes it as the coordinate of
        the first batch dimension.

    Examples
    --------
    >>> g = Grid.uniform(x=(0, 1, 32), periodic=("x",))
    >>> x, = g.mesh()
    >>> f = Field(torch.sin(2 * torch.pi * x)[None], g, names="u")
    >>> f.shape, f.channels, f.batch_shape
    (torch.Size([1, 32]), 1, torch.Size([]))
    """

    __slots__ = ("values", "grid", "names", "units", "attrs")
    # numpy must not broadcast a Field as an object (``ndarray + Field`` would be an
    # object array of Fields): its operators defer to ours, which refuse arrays clearly.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(
        self,
        values: Any,
        grid: Grid,
        names: str | Sequence[str] | None = None,
        units: str | Sequence[str] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        if not isinstance(grid, Grid):
            raise InvalidArgumentError("grid", "an opflow.Grid", grid)
        if not isinstance(values, torch.Tensor):
            try:
                values = torch.as_tensor(values)
            except (TypeError, ValueError, RuntimeError):  # strings, objects, ragged lists
                raise InvalidArgumentError("values", "a numeric tensor or array", values) from None
        trailing = tuple(values.shape[values.ndim - grid.ndim:])
        if values.ndim < grid.ndim + 1 or trailing != grid.shape:
            raise ShapeError(
                "values",
                f"shape (*batch, channels, {', '.join(map(str, grid.shape))}) "
                f"for a grid of shape {grid.shape}",
                values,
            )
        self.values = values
        self.grid = grid
        channels = values.shape[values.ndim - grid.ndim - 1]
        self.names = _as_names(names, channels)
        self.units = _as_units(units, channels)
        self.attrs = _as_attrs(attrs)

    # ------------------------------------------------------------ structure
    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    @property
    def batch_shape(self) -> torch.Size:
        return self.values.shape[: self.values.ndim - self.grid.ndim - 1]

    @property
    def channels(self) -> int:
        return self.values.shape[self.values.ndim - self.grid.ndim - 1]

    @property
    def channel_dim(self) -> int:
        """Index of the channel dimension in ``values``."""
        return self.values.ndim - self.grid.ndim - 1

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def requires_grad(self) -> bool:
        return self.values.requires_grad

    def with_values(self, values: torch.Tensor, *, names=None, units=None, attrs=None,
                    grid: Grid | None = None) -> "Field":
        """Same grid and metadata (unless given), new values.

        Parameters
        ----------
        values : torch.Tensor, shape (*batch, channels, *grid.shape)
            The new values; ``channels`` must match the names and units kept.
        names, units, attrs : optional
            Replace the channel names, units or attributes.
        grid : Grid, optional
            Replace the grid (the values' trailing shape must match it).

        Returns
        -------
        Field
        """
        return Field(
            values,
            self.grid if grid is None else grid,
            self.names if names is None else names,
            self.units if units is None else units,
            self.attrs if attrs is None else attrs,
        )

    def to(self, *args, **kwargs) -> "Field":
        """``Tensor.to`` on the values (device and/or dtype).

        Parameters
        ----------
        *args, **kwargs
            As for :meth:`torch.Tensor.to`.

        Returns
        -------
        Field
        """
        return self.with_values(self.values.to(*args, **kwargs))

    def detach(self) -> "Field":
        return self.with_values(self.values.detach())

    def numpy(self):
        return self.values.detach().cpu().numpy()

    def __getitem__(self, key) -> "Field":
        """Select channels by name (``f["u"]``, ``f[["u", "v"]]``) or
        batch entries by integer/slice (``f[0]``, ``f[2:5]``)."""
        if isinstance(key, str) or (
            isinstance(key, (list, tuple)) and key and all(isinstance(k, str) for k in key)
        ):
            keys = [key] if isinstance(key, str) else list(key)
            idx = []
            for k in keys:
                if k not in self.names:
                    raise UnknownVariableError("key", k, self.names)
                idx.append(self.names.index(k))
            values = self.values.index_select(
                self.channel_dim, torch.tensor(idx, device=self.device)
            )
            return Field(values, self.grid, [self.names[i] for i in idx],
                         [self.units[i] for i in idx], self.attrs)
        if not self.batch_shape:
            raise InvalidArgumentError("key", "a channel name (this Field has no batch dims)", key)
        self._check_batch_key(key)
        values = self.values[key]
        return self.with_values(values, attrs=_index_samples(self, key))

    def _check_batch_key(self, key) -> None:
        """Refuse batch indices that are out of range, not indices, or reach the channels."""
        keys = key if isinstance(key, tuple) else (key,)
        sizes = self.batch_shape
        used = [k for k in keys if k is not None]
        if any(k is Ellipsis for k in used):
            return
        if len(used) > len(sizes):
            raise InvalidArgumentError("key", f"at most {len(sizes)} batch indices (select "
                                       "channels by name)", key)
        for k, n in zip(used, sizes):
            if isinstance(k, (slice, torch.Tensor)) or hasattr(k, "__array__"):
                continue  # torch checks tensor and array indices itself
            ints = k if isinstance(k, list) else [k]
            for i in ints:
                if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                    raise InvalidArgumentError("key", "integers, slices or channel names", key)
                if not -n <= int(i) < n:
                    raise InvalidArgumentError("key", f"batch indices in [-{n}, {n})", key)

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("len() of a Field without batch dimensions")
        return self.batch_shape[0]

    # ---------------------------------------------------------- arithmetic
    def _other_values(self, other, op: str):
        if isinstance(other, Field):
            if other.grid != self.grid:
                raise GridMismatchError("other", f"a Field on {self.grid}", other.grid)
            return other.values
        if isinstance(other, torch.Tensor):
            try:  # a tensor must broadcast against the values (no silent resize either)
                shape = torch.broadcast_shapes(other.shape, self.values.shape)
            except RuntimeError:
                shape = None
            nd = self.grid.ndim
            if shape is None or tuple(shape[len(shape) - nd:]) != self.grid.shape:
                raise ShapeError("other", f"a tensor broadcastable to {tuple(self.values.shape)}",
                                 other)
            return other
        if isinstance(other, numbers.Number):
            return other
        if hasattr(other, "__array__") and hasattr(other, "shape"):  # numpy, xarray, ...
            raise InvalidArgumentError("other", f"{_OPERANDS} (convert arrays with "
                                       "torch.as_tensor)", other)
        raise InvalidArgumentError("other", _OPERANDS, other)

    @staticmethod  # callable in the class body (Python >= 3.10), deleted below
    def _binary(op: Callable, name: str, reflected: bool = False):
        def method(self, other):
            ov = self._other_values(other, name)
            out = op(ov, self.values) if reflected else op(self.values, ov)
            return self.with_values(out)
        method.__name__ = name
        return method

    __add__ = _binary(torch.add, "__add__")
    __radd__ = _binary(torch.add, "__radd__", True)
    __sub__ = _binary(torch.sub, "__sub__")
    __rsub__ = _binary(torch.sub, "__rsub__", True)
    __mul__ = _binary(torch.mul, "__mul__")
    __rmul__ = _binary(torch.mul, "__rmul__", True)
    __truediv__ = _binary(torch.div, "__truediv__")
    __rtruediv__ = _binary(torch.div, "__rtruediv__", True)
    __pow__ = _binary(torch.pow, "__pow__")
    del _binary

    def __neg__(self) -> "Field":
        return self.with_values(-self.values)

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Field":
        """Field with ``fn(values)`` (same shape), e.g. ``f.apply(torch.tanh)``.

        Parameters
        ----------
        fn : callable
            ``Tensor -> Tensor`` of the same shape.

        Returns
        -------
        Field
            Same grid, names, units and attributes.
        """
        return self.with_values(fn(self.values))

    # --------------------------------------------------------- derivatives
    def partial(self, axis: str | int, order: int = 1, **kw) -> "Field":
        """Partial derivative along ``axis``; see :func:`opflow.calculus.partial`.

        Parameters
        ----------
        axis : str or int
            Axis name or index into ``grid.names``.
        order : {1, 2}
            Derivative order.
        **kw
            ``method`` (``"auto"``, ``"spectral"``, ``"fd"``) and ``accuracy``
            (2 or 4), as for :func:`opflow.calculus.partial`.

        Returns
        -------
        Field
            Same shape; channel ``u`` becomes ``du_dx`` (``d2u_dx2`` for order 2),
            its units ``u``'s per the axis' (``K`` -> ``K/m``, ``K/m^2``).
        """
        out = calculus.partial(self.values, self.grid, axis, order, **kw)
        ax = self.grid.axis(axis)
        a = ax.name
        suffix = f"_d{a}" if order == 1 else f"_d{a}{order}"
        return self.with_values(out, names=[f"d{'' if order == 1 else order}{n}{suffix}"
                                            for n in self.names],
                                units=[derived_units(u, ax.units, order) for u in self.units])

    def grad(self, **kw) -> "Field":
        """Gradient of a one-channel field: a ``grid.ndim``-channel field.

        Parameters
        ----------
        **kw
            ``method`` (``"auto"``, ``"spectral"``, ``"fd"``) and ``accuracy``
            (2 or 4), as for :func:`opflow.calculus.partial`.

        Returns
        -------
        Field, shape (*batch, grid.ndim, *grid.shape)
            Channels ``du_dx``, ``du_dy``, ... with units ``u``'s per each axis'.
        """
        if self.channels != 1:
            raise InvalidArgumentError("field", "one channel for grad (select one: f['u'])",
                                       self.names)
        v = calculus.gradient(self.values.squeeze(self.channel_dim), self.grid, **kw)
        return Field(v, self.grid, [f"d{self.names[0]}_d{a}" for a in self.grid.names],
                     [derived_units(self.units[0], ax.units) for ax in self.grid.axes],
                     self.attrs)

    def div(self, **kw) -> "Field":
        """Divergence of a ``grid.ndim``-channel (vector) field: one channel.

        Parameters
        ----------
        **kw
            ``method`` (``"auto"``, ``"spectral"``, ``"fd"``) and ``accuracy``
            (2 or 4), as for :func:`opflow.calculus.partial`.

        Returns
        -------
        Field, shape (*batch, 1, *grid.shape)
            One channel, ``div``; its units the channels' per the axes' when
            each agrees (else none).
        """
        out = calculus.divergence(self.values, self.grid, **kw)
        units = set(self.units)
        per = _common_units(self.grid)
        unit = derived_units(units.pop(), per) if len(units) == 1 and per else ""
        return Field(out.unsqueeze(self.channel_dim), self.grid, "div", unit, attrs=self.attrs)

    def laplacian(self, **kw) -> "Field":
        """Laplacian of every channel.

        Parameters
        ----------
        **kw
            ``axes`` (default: all), ``method`` and ``accuracy``, as for
            :func:`opflow.calculus.laplacian`.

        Returns
        -------
        Field
            Same shape; channel ``u`` becomes ``lap_u``, with units ``u``'s per
            the axes' squared when the axes agree (``K`` -> ``K/m^2``; else none).
        """
        out = calculus.laplacian(self.values, self.grid, **kw)
        per = _common_units(self.grid, kw.get("axes"))
        units = [derived_units(u, per, 2) if per else "" for u in self.units] if any(
            ax.units for ax in self.grid.axes) else list(self.units)
        return self.with_values(out, names=[f"lap_{n}" for n in self.names], units=units)

    # ---------------------------------------------------------------- norms
    def integral(self) -> torch.Tensor:
        """Integral over the grid per batch entry and channel: ``(*batch, channels)``."""
        return norms.integrate(self.values, self.grid)

    def norm(self, kind: str = "l2") -> torch.Tensor:
        """``l2`` or ``h1`` norm per batch entry (channels combined): ``(*batch,)``.

        Parameters
        ----------
        kind : {"l2", "h1"}
            Which norm; see :func:`opflow.norms.norm`.

        Returns
        -------
        torch.Tensor, shape (*batch,)
        """
        return norms.norm(self, kind)

    # --------------------------------------------------------------- xarray
    def to_xarray(self, batch_dims: Sequence[str] | None = None):
        """``xarray.Dataset`` with one variable per channel; see :mod:`opflow.io.convert`.

        Parameters
        ----------
        batch_dims : sequence of str, optional
            Names of the batch dimensions (default ``("sample",)`` for one
            batch dimension, ``batch_0, batch_1, ...`` otherwise).

        Returns
        -------
        xarray.Dataset
            Coordinates with units, the Field's attributes, and the grid's
            dimension names recorded for :meth:`from_xarray`.
        """
        from .io.convert import field_to_dataset

        return field_to_dataset(self, batch_dims)

    def to_dataarray(self, batch_dims: Sequence[str] | None = None):
        """``xarray.DataArray`` with a ``channel`` dimension.

        Parameters
        ----------
        batch_dims : sequence of str, optional
            Names of the batch dimensions, as for :meth:`to_xarray`.

        Returns
        -------
        xarray.DataArray
            Dimensions ``(*batch_dims, "channel", *grid.names)``.
        """
        from .io.convert import field_to_dataarray

        return field_to_dataarray(self, batch_dims)

    @classmethod
    def from_xarray(cls, obj, names: Iterable[str] | None = None,
                    grid_dims: Sequence[str] | None = None, **kw) -> "Field":
        """Field from a Dataset or DataArray; see :func:`opflow.io.convert.to_field`.

        Parameters
        ----------
        obj : xarray.Dataset or xarray.DataArray
            Each selected Dataset variable becomes a channel.
        names : iterable of str, optional
            Dataset variables to use (default: all data variables).
        grid_dims : sequence of str, optional
            Which dimensions form the grid (default: those opflow recorded,
            else the trailing dimensions that have coordinates).
        **kw
            ``dtype`` and ``device``, passed to :func:`torch.as_tensor`.

        Returns
        -------
        Field
        """
        from .io.convert import to_field

        return to_field(obj, names=names, grid_dims=grid_dims, **kw)

    def plot(self, ax=None, **kw):
        """Plot one sample and channel (xarray, with units); see :func:`opflow.plot.plot_field`.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw (default: a new figure).
        **kw
            Passed to :func:`opflow.plot.plot_field`: ``index`` (which
            sample), ``channel``, ``title``, ``path`` and matplotlib options.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from .plot import plot_field

        return plot_field(self, ax, **kw)

    def __repr__(self) -> str:
        return (f"Field(names={list(self.names)}, batch={tuple(self.batch_shape)}, "
                f"dtype={self.dtype}, device={self.device}, grid={self.grid!r})")
