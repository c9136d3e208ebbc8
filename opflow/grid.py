"""Structured grids with named axes.

A :class:`Grid` is the geometry every :class:`~opflow.Field` lives on: an
ordered set of named axes, each with coordinates, bounds, units and a flag for
periodicity. Grids are immutable and hashable, so they can be compared cheaply
(two Fields interact only when their grids are equal) and used as dict keys.

Conventions
-----------
* A **periodic** axis of ``n`` points on ``[start, stop)`` has spacing
  ``(stop - start) / n`` and does not contain ``stop`` (it is ``start``).
* A **non-periodic** axis of ``n`` points on ``[start, stop]`` contains both
  ends (vertex-centred), spacing ``(stop - start) / (n - 1)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from .errors import InvalidArgumentError, UnknownVariableError

__all__ = ["Axis", "Grid", "MAX_AXIS_POINTS"]

# More points than this on one axis is a mistake (the coordinates alone would take
# gigabytes): refuse it before allocating them.
MAX_AXIS_POINTS = 100_000_000


def _finite_number(value: Any, argument: str, got: Any) -> float:
    """``value`` as a finite float (not a bool or a string), or an error naming ``argument``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (numbers.Real, np.ndarray, torch.Tensor)):
        raise InvalidArgumentError(argument, "finite numbers", got)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(argument, "finite numbers", got) from None
    if not math.isfinite(number):
        raise InvalidArgumentError(argument, "finite numbers (no NaN or Inf)", got)
    return number


def _point_count(n: Any, argument: str, got: Any) -> int:
    """A number of points ``2 <= n <= MAX_AXIS_POINTS`` (an integral number, not a bool)."""
    # apart: n narrowed to numbers.Real would fail int() and 2 <= n in typeshed's stubs
    real = not isinstance(n, (bool, np.bool_)) and isinstance(n, numbers.Real)
    ok = real and math.isfinite(n) and int(n) == n and 2 <= n <= MAX_AXIS_POINTS
    if not ok:
        raise InvalidArgumentError(
            argument, f"an integer number of points n >= 2 (at most {MAX_AXIS_POINTS:,})", got)
    return int(n)


def _check_coords(name: str, coords: Any) -> np.ndarray:
    """Coordinates as a read-only float64 copy: 1-D, numeric, finite, strictly increasing."""
    raw = np.asarray(coords)
    if raw.dtype.kind not in "iuf":
        raise InvalidArgumentError(name, "numeric coordinates", coords)
    if raw.ndim != 1:
        raise InvalidArgumentError(name, "a 1-D array of coordinates", raw)
    c = raw.astype(np.float64)
    if c.size < 2:
        raise InvalidArgumentError(name, "an axis of at least 2 points", c.size)
    if not np.all(np.isfinite(c)):
        raise InvalidArgumentError(name, "finite coordinates (no NaN or Inf)", c)
    if not np.all(np.diff(c) > 0):
        raise InvalidArgumentError(name, "strictly increasing coordinates", c)
    c.setflags(write=False)
    return c


def _check_bounds(name: str, bounds: Any, coords: np.ndarray,
                  periodic: bool) -> tuple[float, float]:
    """``(start, stop)``: finite, increasing, and containing ``coords`` (a periodic axis
    excludes ``stop``, the image of ``start``)."""
    argument = f"bounds[{name!r}]"
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise InvalidArgumentError(argument, "a pair (start, stop)", bounds)
    lo, hi = (_finite_number(b, argument, bounds) for b in bounds)
    if not hi > lo:
        raise InvalidArgumentError(argument, "start < stop", bounds)
    slack = 1e-9 * (hi - lo)  # rounding of coordinates computed from the bounds
    last_ok = coords[-1] < hi if periodic else coords[-1] <= hi + slack
    if not (lo - slack <= coords[0] and last_ok):
        where = "last point < stop on a periodic axis" if periodic else "last point <= stop"
        raise InvalidArgumentError(
            argument, f"bounds containing the coordinates [{coords[0]:g}, {coords[-1]:g}] "
            f"(start <= first point, {where})", bounds)
    return lo, hi


def _axis_names(value: Any, argument: str) -> set[str]:
    """A set of axis names from an iterable of names (a string is its characters:
    ``"xy"`` is ``("x", "y")``, as ``set("xy")``)."""
    try:
        names = set(value)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise InvalidArgumentError(argument, "axis names (an iterable of strings)", value)
    return names


def _per_axis(value: Any, argument: str) -> dict:
    """A per-axis mapping (``None``: empty), or an error naming ``argument``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(argument, "a mapping from axis name to value, e.g. "
                                   "{'x': ...}", value)
    return dict(value)


def _check_known(axes: Iterable[str], **named: Iterable[str]) -> None:
    """Every key of each named argument must be an axis name."""
    axes = list(axes)
    for argument, keys in named.items():
        for key in keys:
            if key not in axes:
                raise UnknownVariableError(argument, key, axes)


@dataclass(frozen=True, eq=False)
class Axis:
    """One named axis of a :class:`Grid`.

    Parameters
    ----------
    name : str
        Axis name, used as the xarray dimension name (``"x"``, ``"t"``, ...).
    coords : numpy.ndarray, shape (n,)
        At least 2 finite, strictly increasing coordinates (stored as a
        read-only float64 copy). A 2-D array is refused, not flattened.
    periodic : bool
        Whether the axis wraps around: the point after the last is the first.
    bounds : tuple of float
        ``(start, stop)``, finite with ``start < stop``, containing the
        coordinates; for a periodic axis ``stop - start`` is the period and
        ``stop`` lies beyond the last point.
    units : str
        Units of the coordinate (free text, CF style, e.g. ``"m"``).

    Raises
    ------
    opflow.errors.InvalidArgumentError
        Any of the above does not hold; the message names the axis.

    Examples
    --------
    >>> import opflow
    >>> opflow.Grid.uniform(x=(0.0, 1.0, 8), periodic=("x",)).axes[0]
    Axis(name='x', periodic=True, bounds=(0.0, 1.0), units='')
    """

    name: str
    coords: np.ndarray = field(repr=False)
    periodic: bool = False
    bounds: tuple[float, float] = (0.0, 1.0)
    units: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError("name", "a non-empty string", self.name)
        if not isinstance(self.periodic, (bool, np.bool_)):
            raise InvalidArgumentError("periodic", f"True or False for axis {self.name!r}",
                                       self.periodic)
        if not isinstance(self.units, str):
            raise InvalidArgumentError(f"units[{self.name!r}]", "a unit string such as 'm' "
                                       "('' for none)", self.units)
        coords = _check_coords(self.name, self.coords)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "periodic", bool(self.periodic))
        object.__setattr__(self, "bounds",
                           _check_bounds(self.name, self.bounds, coords, self.periodic))

    @property
    def size(self) -> int:
        return int(self.coords.size)

    @property
    def length(self) -> float:
        """Period for a periodic axis, ``stop - start`` otherwise."""
        return self.bounds[1] - self.bounds[0]

    @property
    def is_uniform(self) -> bool:
        d = np.diff(self.coords)
        return bool(np.allclose(d, d[0], rtol=1e-9, atol=0.0))

    @property
    def spacing(self) -> float:
        """Uniform grid spacing (mean spacing on a non-uniform axis)."""
        if self.periodic:
            return self.length / self.size
        return float(self.coords[-1] - self.coords[0]) / (self.size - 1)

    def _key(self):
        return (self.name, self.coords.tobytes(), self.periodic, self.bounds, self.units)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Axis) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _uniform_spec(name: str, spec: Any) -> tuple[float, float, int]:
    """``(start, stop, n)`` of :meth:`Grid.uniform`, checked; errors name the axis."""
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__len__") or len(spec) != 3:
        raise InvalidArgumentError(name, "a tuple (start, stop, n)", spec)
    start, stop = (_finite_number(v, name, spec) for v in spec[:2])
    n = _point_count(spec[2], name, spec)
    if not stop > start:
        raise InvalidArgumentError(name, "stop > start", spec)
    return start, stop, n


class Grid:
    """An immutable structured grid: an ordered tuple of named :class:`Axis`.

    Build one with :meth:`Grid.uniform` (the common case) or from axes.

    Parameters
    ----------
    axes : iterable of Axis
        At least one, with distinct names; their order is the order of the
        trailing dimensions of every Field on this grid.

    Examples
    --------
    >>> g = Grid.uniform(x=(0.0, 1.0, 64), y=(0.0, 1.0, 64), periodic=("x", "y"))
    >>> g.shape, g.names, g.spacing
    ((64, 64), ('x', 'y'), (0.015625, 0.015625))
    """

    __slots__ = ("_axes", "_hash")
    _axes: tuple[Axis, ...]
    _hash: int

    def __init__(self, axes: Iterable[Axis]):
        axes = tuple(axes) if isinstance(axes, Iterable) else axes
        if not isinstance(axes, tuple) or not axes or \
                not all(isinstance(a, Axis) for a in axes):
            raise InvalidArgumentError("axes", "at least one Axis", axes)
        names = [a.name for a in axes]
        if len(set(names)) != len(names):
            raise InvalidArgumentError("axes", "distinct axis names", names)
        object.__setattr__(self, "_axes", axes)
        object.__setattr__(self, "_hash", hash(tuple(a._key() for a in axes)))

    def __setattr__(self, name, value):
        raise AttributeError("Grid is immutable")

    def __reduce__(self):  # pickling (DataLoader workers) rebuilds through __init__
        return (Grid, (self._axes,))

    # ------------------------------------------------------------------ build
    @classmethod
    def uniform(
        cls,
        *,
        periodic: Iterable[str] = (),
        units: Mapping[str, str] | None = None,
        **axes: tuple[float, float, int],
    ) -> "Grid":
        """Uniform grid from ``name=(start, stop, n)`` keyword arguments.

        Parameters
        ----------
        periodic : iterable of str
            Names of the periodic axes (``stop`` excluded on those).
        units : mapping of str to str, optional
            Units per axis name.
        **axes : (start, stop, n)
            One entry per axis, in order: finite numbers ``start < stop`` and
            an integer ``2 <= n <= MAX_AXIS_POINTS``.

        Raises
        ------
        opflow.errors.InvalidArgumentError
            A bad ``(start, stop, n)`` (named after its axis), ``periodic`` or ``units``.
        opflow.errors.UnknownVariableError
            ``periodic`` or ``units`` names an axis that is not given.
        """
        if not axes:
            raise InvalidArgumentError("axes", "at least one name=(start, stop, n)", axes)
        periodic = _axis_names(periodic, "periodic")
        units = _per_axis(units, "units")
        _check_known(axes, periodic=sorted(periodic), units=units)
        built = []
        for name, spec in axes.items():
            start, stop, n = _uniform_spec(name, spec)
            is_periodic = name in periodic
            coords = (
                start + (stop - start) * np.arange(n) / n
                if is_periodic
                else np.linspace(start, stop, n)
            )
            built.append(Axis(name, coords, is_periodic, (start, stop), units.get(name, "")))
        return cls(built)

    @classmethod
    def from_coords(
        cls,
        coords: Mapping[str, np.ndarray],
        *,
        periodic: Iterable[str] = (),
        bounds: Mapping[str, tuple[float, float]] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> "Grid":
        """Grid from coordinate arrays; bounds are inferred where not given.

        A periodic axis with uniform spacing ``h`` gets ``(c[0], c[-1] + h)``.

        Parameters
        ----------
        coords : mapping of str to 1-D array
            Finite, strictly increasing coordinates per axis, in order.
        periodic : iterable of str
            Names of the periodic axes.
        bounds : mapping of str to (float, float), optional
            ``(start, stop)`` per axis; must contain the coordinates.
        units : mapping of str to str, optional
            Units per axis name.

        Raises
        ------
        opflow.errors.InvalidArgumentError
            Bad coordinates, bounds or units (see :class:`Axis`).
        opflow.errors.UnknownVariableError
            ``periodic``, ``bounds`` or ``units`` names an axis not in ``coords``.
        """
        if not isinstance(coords, Mapping) or not coords:
            raise InvalidArgumentError("coords", "a mapping from axis name to a 1-D array of "
                                       "coordinates (at least one axis)", coords)
        periodic = _axis_names(periodic, "periodic")
        bounds, units = _per_axis(bounds, "bounds"), _per_axis(units, "units")
        _check_known(coords, periodic=sorted(periodic), bounds=bounds, units=units)
        axes = []
        for name, c in coords.items():
            c = _check_coords(name, c)
            if name in bounds:
                b = bounds[name]
            elif name in periodic:
                b = (c[0], c[-1] + (c[-1] - c[0]) / (c.size - 1))
            else:
                b = (c[0], c[-1])
            axes.append(Axis(name, c, name in periodic, b, units.get(name, "")))
        return cls(axes)

    # ------------------------------------------------------------- properties
    @property
    def axes(self) -> tuple[Axis, ...]:
        return self._axes

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self._axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self._axes)

    @property
    def ndim(self) -> int:
        return len(self._axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(a.spacing for a in self._axes)

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        return tuple(a.bounds for a in self._axes)

    @property
    def periodic(self) -> tuple[bool, ...]:
        return tuple(a.periodic for a in self._axes)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(a.units for a in self._axes)

    @property
    def coords(self) -> dict[str, np.ndarray]:
        return {a.name: a.coords for a in self._axes}

    def axis(self, name: str | int) -> Axis:
        """The axis called ``name`` (or at position ``name``).

        Parameters
        ----------
        name : str or int
            Axis name, or position (negative counts from the end).

        Returns
        -------
        Axis
        """
        return self._axes[self.index(name)]

    def index(self, name: str | int) -> int:
        """Position of an axis given by name or by (possibly negative) index.

        Parameters
        ----------
        name : str or int
            Axis name, or position (negative counts from the end).

        Returns
        -------
        int
            In ``range(grid.ndim)``.
        """
        if isinstance(name, (int, np.integer)):
            if -self.ndim <= name < self.ndim:
                return int(name) % self.ndim
            raise InvalidArgumentError("axis", f"an index in [-{self.ndim}, {self.ndim})", name)
        for i, a in enumerate(self._axes):
            if a.name == name:
                return i
        raise UnknownVariableError("axis", name, self.names)

    # -------------------------------------------------------------- derived
    def mesh(self, dtype=torch.float32, device=None) -> tuple[torch.Tensor, ...]:
        """Coordinate tensors, each of shape ``grid.shape`` (``indexing='ij'``).

        Parameters
        ----------
        dtype : torch.dtype
            Of the result.
        device : torch.device or str, optional
            Of the result (default: the CPU).

        Returns
        -------
        tuple of torch.Tensor, each of shape grid.shape
            One per axis, in the grid's axis order.

        Examples
        --------
        >>> x, y = Grid.uniform(x=(0.0, 1.0, 3), y=(0.0, 2.0, 2)).mesh()
        >>> x.tolist(), y.tolist()
        ([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]], [[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]])
        """
        c = [torch.tensor(a.coords, dtype=dtype, device=device) for a in self._axes]
        return torch.meshgrid(*c, indexing="ij")

    def wavenumbers(self, dtype=torch.float64, device=None) -> tuple[torch.Tensor, ...]:
        """Angular wavenumbers of each periodic axis, in FFT order.

        Returns one 1-D tensor ``2 pi fftfreq(n, h)`` per axis. Only periodic
        axes have a Fourier basis; asking on a grid with a non-periodic axis
        raises :class:`~opflow.errors.InvalidArgumentError`.

        Parameters
        ----------
        dtype : torch.dtype
            Of the result.
        device : torch.device or str, optional
            Of the result (default: the CPU).

        Returns
        -------
        tuple of torch.Tensor, shapes (n_axis,)
        """
        out = []
        for a in self._axes:
            if not a.periodic:
                raise InvalidArgumentError(
                    "grid", f"periodic axes for wavenumbers (axis {a.name!r} is not)", self.names
                )
            out.append(
                torch.fft.fftfreq(a.size, d=a.spacing, dtype=dtype, device=device) * 2 * math.pi
            )
        return tuple(out)

    def quadrature_weights(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Weights ``w`` of shape ``grid.shape`` with ``sum(w * u)`` ~ integral of ``u``.

        Rectangle rule on periodic axes (spectrally accurate), trapezoid rule
        on the others (exact for piecewise-linear data on non-uniform axes).

        Parameters
        ----------
        dtype : torch.dtype
            Of the result.
        device : torch.device or str, optional
            Of the result (default: the CPU).

        Returns
        -------
        torch.Tensor, shape grid.shape
        """
        w = torch.ones((), dtype=dtype, device=device)
        for a in self._axes:
            if a.periodic:
                wa = np.full(a.size, a.spacing)
            else:
                d = np.diff(a.coords)
                wa = np.zeros(a.size)
                wa[:-1] += d / 2
                wa[1:] += d / 2
            w = w[..., None] * torch.as_tensor(wa, dtype=dtype, device=device)
        return w

    @property
    def volume(self) -> float:
        return math.prod(a.length for a in self._axes)

    def coarsen(self, factor: int = 2) -> "Grid":
        """Grid with every ``factor``-th point (used by multigrid).

        A periodic axis of ``n`` points needs ``n % factor == 0``; a
        non-periodic (vertex-centred) one needs ``(n - 1) % factor == 0`` so
        that both end points are kept.

        Parameters
        ----------
        factor : int
            Positive.

        Returns
        -------
        Grid
        """
        if int(factor) != factor or factor < 1:
            raise InvalidArgumentError("factor", "a positive integer", factor)
        factor = int(factor)
        axes = []
        for a in self._axes:
            n = a.size if a.periodic else a.size - 1
            if n % factor or n // factor < 1 or (not a.periodic and n // factor < 1):
                need = "n" if a.periodic else "n - 1"
                raise InvalidArgumentError(
                    "factor", f"a divisor of {need} = {n} on axis {a.name!r}", factor
                )
            axes.append(Axis(a.name, a.coords[::factor], a.periodic, a.bounds, a.units))
        return Grid(axes)

    def refine(self, factor: int = 2) -> "Grid":
        """Uniform grid with ``factor`` times finer spacing on the same bounds.

        Parameters
        ----------
        factor : int
            Positive.

        Returns
        -------
        Grid
            Same axis names, periodicity and units.
        """
        if int(factor) != factor or factor < 1:
            raise InvalidArgumentError("factor", "a positive integer", factor)
        factor = int(factor)
        spec = {}
        for a in self._axes:
            n = a.size * factor if a.periodic else (a.size - 1) * factor + 1
            spec[a.name] = (a.bounds[0], a.bounds[1], n)
        return Grid.uniform(
            periodic=[a.name for a in self._axes if a.periodic],
            units={a.name: a.units for a in self._axes},
            **spec,
        )

    def with_shape(self, **sizes: int) -> "Grid":
        """Uniform grid on the same bounds with new numbers of points per axis.

        Parameters
        ----------
        **sizes : int
            New number of points, by axis name; axes not named keep theirs.

        Returns
        -------
        Grid
            Same axis names, bounds, periodicity and units.

        Examples
        --------
        >>> Grid.uniform(x=(0.0, 1.0, 65), y=(0.0, 1.0, 65)).with_shape(x=33).shape
        (33, 65)
        """
        for name in sizes:
            if name not in self.names:
                raise UnknownVariableError("sizes", name, self.names)
        spec = {a.name: (a.bounds[0], a.bounds[1], sizes.get(a.name, a.size)) for a in self._axes}
        return Grid.uniform(
            periodic=[a.name for a in self._axes if a.periodic],
            units={a.name: a.units for a in self._axes},
            **spec,
        )

    # ------------------------------------------------------------- protocol
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self._hash == other._hash and self._axes == other._axes

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        parts = []
        for a in self._axes:
            p = ", periodic" if a.periodic else ""
            u = f" {a.units}" if a.units else ""
            parts.append(f"{a.name}: {a.size} on [{a.bounds[0]:g}, {a.bounds[1]:g}]{u}{p}")
        return "Grid(" + "; ".join(parts) + ")"
