"""Geometries for physics-informed training: where collocation points live.

Every domain has ordered axis ``names``, a bounding ``box`` per name, and
seeded samplers for its interior and boundary. :class:`TimeSpace` also
samples the initial slice ``t = t0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch

from ...errors import InvalidArgumentError, UnknownVariableError
from .sampling import check_count, sample_unit

__all__ = ["Domain", "Interval", "Box", "Rectangle", "Disk", "PointCloud", "TimeSpace"]


def _split(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` into integer parts proportional to ``weights`` (summing to ``n``)."""
    total = sum(weights)
    raw = [n * w / total for w in weights]
    parts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: parts[k] - raw[k])
    for k in order[: n - sum(parts)]:
        parts[k] += 1
    return parts


class Domain:
    """Base class of the geometries. Subclasses set ``names`` and implement the samplers."""

    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        """Bounding box ``{name: (lo, hi)}``."""
        raise NotImplementedError

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        """``n`` points inside the domain, shape ``(n, dim)``, columns ordered as ``names``.

        Parameters
        ----------
        n : int
            Number of points.
        method : {"uniform", "latin_hypercube", "lhs", "sobol"}
            Sampler (:data:`SAMPLERS`).
        seed : int
            Seed of the sampler: the same seed gives the same points.

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        raise NotImplementedError

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        """``n`` points on the boundary (for :class:`TimeSpace`: the lateral boundary),
        or on its parts named in ``on`` (see :attr:`boundaries`).

        Parameters
        ----------
        n : int
            Number of points.
        method : {"uniform", "latin_hypercube", "lhs", "sobol"}
            Sampler (:data:`SAMPLERS`).
        seed : int
            Seed of the sampler: the same seed gives the same points.
        on : tuple of str, optional
            Boundary parts to sample (default: the whole boundary).

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        raise NotImplementedError

    @property
    def boundaries(self) -> tuple[str, ...]:
        """Names of the boundary parts a condition can select with ``on=``
        (empty: the boundary is taken whole)."""
        return ()

    def boundary_parts(self, on: str | Sequence[str] | None) -> Optional[tuple[str, ...]]:
        """``on`` checked against :attr:`boundaries`, as a tuple (None: the whole boundary).

        Parameters
        ----------
        on : str, sequence of str or None
            Boundary part names, as given to a condition's ``on=``.

        Returns
        -------
        tuple of str or None

        Raises
        ------
        UnknownVariableError
            A name that is not a boundary part of this domain.
        """
        if on is None:
            return None
        parts = (on,) if isinstance(on, str) else tuple(on)
        if not parts:
            raise InvalidArgumentError("on", f"boundary part names among {self.boundaries}", on)
        for part in parts:
            if part not in self.boundaries:
                raise UnknownVariableError("on", part, self.boundaries)
        return parts

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """Outward unit normals, shape ``(n, dim)``, at boundary ``points``.

        Parameters
        ----------
        points : torch.Tensor, shape (n, dim)
            Points on the boundary.

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        raise NotImplementedError

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        """Boolean ``(n,)``: which points lie in the closed domain.

        Parameters
        ----------
        points : torch.Tensor, shape (n, dim)
            Columns ordered as ``names``.
        tol : float
            Points up to ``tol`` outside still count as inside.

        Returns
        -------
        torch.Tensor of bool, shape (n,)
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Box(Domain):
    """Axis-aligned box ``prod_i [lo_i, hi_i]``.

    Parameters
    ----------
    bounds : mapping of str to (float, float)
        ``{name: (lo, hi)}`` in axis order, e.g. ``{"x": (0, 1), "y": (0, 2)}``.
    """

    bounds: Mapping[str, tuple[float, float]]

    def __post_init__(self):
        if not isinstance(self.bounds, Mapping) or not self.bounds:
            raise InvalidArgumentError("bounds", "a non-empty mapping {name: (lo, hi)}",
                                       self.bounds)
        clean = {}
        for name, b in self.bounds.items():
            try:
                lo, hi = float(b[0]), float(b[1])
            except (TypeError, ValueError, IndexError):
                raise InvalidArgumentError("bounds", "(lo, hi) pairs of numbers", b) from None
            if not hi > lo:
                raise InvalidArgumentError("bounds", f"hi > lo for axis {name!r}", b)
            clean[str(name)] = (lo, hi)
        object.__setattr__(self, "bounds", clean)

    @property
    def names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.bounds)

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        return dict(self.bounds)

    def _lo_hi(self, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        lo = torch.tensor([b[0] for b in self.bounds.values()], dtype=dtype)
        hi = torch.tensor([b[1] for b in self.bounds.values()], dtype=dtype)
        return lo, hi

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        s = sample_unit(n, self.dim, method, seed)
        lo, hi = self._lo_hi(s.dtype)
        return lo + (hi - lo) * s

    @property
    def boundaries(self) -> tuple[str, ...]:
        """Faces ``"<axis>_min"`` and ``"<axis>_max"`` per axis, e.g. ``"x_min"``."""
        return tuple(f"{name}_{end}" for name in self.names for end in ("min", "max"))

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        """Points on the ``2 dim`` faces (or the faces named in ``on``), as many per face
        as its measure warrants (in 1-D: the end points, alternately).

        Parameters
        ----------
        n : int
            Number of points.
        method : {"uniform", "latin_hypercube", "lhs", "sobol"}
            Sampler.
        seed : int
            Seed of the sampler.
        on : tuple of str, optional
            The faces to sample (``"x_min"``, ...); default all of them.

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        check_count(n)
        wanted = self.boundary_parts(on) or self.boundaries
        faces = [k for k, part in enumerate(self.boundaries) if part in wanted]
        s = sample_unit(n, self.dim, method, seed)
        lo, hi = self._lo_hi(s.dtype)
        pts = lo + (hi - lo) * s
        lengths = (hi - lo).tolist()
        if self.dim == 1:
            ends = torch.stack([lo, hi])[torch.tensor(faces)]  # (faces, 1)
            return ends[torch.arange(n) % len(faces)].clone()
        measure = [math.prod(lengths[:i] + lengths[i + 1:]) for i in range(self.dim)]
        counts = _split(n, [measure[face // 2] for face in faces])
        start = 0
        for face, c in zip(faces, counts):
            i, side = divmod(face, 2)
            pts[start:start + c, i] = hi[i] if side else lo[i]
            start += c
        return pts

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        lo, hi = self._lo_hi(points.dtype)
        dist = torch.cat([(points - lo).abs(), (hi - points).abs()], dim=1)  # (n, 2 dim)
        face = dist.argmin(dim=1)
        out = torch.zeros_like(points)
        i = face % self.dim
        sign = torch.where(face >= self.dim, 1.0, -1.0).to(points.dtype)
        out[torch.arange(len(points)), i] = sign
        return out

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        lo, hi = self._lo_hi(points.dtype)
        return ((points >= lo - tol) & (points <= hi + tol)).all(dim=1)


Rectangle = Box


def Interval(lo: float, hi: float, name: str = "x") -> Box:  # noqa: N802 - reads as a class
    """The interval ``[lo, hi]`` on the axis ``name``: a one-dimensional :class:`Box`.

    Parameters
    ----------
    lo, hi : float
        The end points, ``lo < hi``.
    name : str
        The axis name.

    Returns
    -------
    Box

    Examples
    --------
    >>> from opflow.solvers.pinn import Interval
    >>> Interval(0.0, 2.0).box
    {'x': (0.0, 2.0)}
    """
    return Box({name: (lo, hi)})


@dataclass(frozen=True)
class Disk(Domain):
    """Disk of ``radius`` around ``center`` in the plane of the axes ``names``.

    Parameters
    ----------
    center : pair of float
        Centre, in the order of ``names``.
    radius : float
        Positive.
    names : pair of str
        The two axis names.
    """

    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 1.0
    names: tuple[str, str] = ("x", "y")  # type: ignore[assignment]

    def __post_init__(self):
        if not float(self.radius) > 0:
            raise InvalidArgumentError("radius", "a positive number", self.radius)
        if len(tuple(self.center)) != 2 or len(tuple(self.names)) != 2:
            raise InvalidArgumentError("center/names", "two coordinates and two axis names",
                                       (self.center, self.names))
        object.__setattr__(self, "center", tuple(float(c) for c in self.center))
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        r = float(self.radius)
        return {n: (c - r, c + r) for n, c in zip(self.names, self.center)}

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        s = sample_unit(n, 2, method, seed)
        r = self.radius * s[:, 0].sqrt()  # area-uniform radius
        theta = 2 * math.pi * s[:, 1]
        c = torch.tensor(self.center, dtype=s.dtype)
        return c + torch.stack([r * theta.cos(), r * theta.sin()], dim=1)

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        self.boundary_parts(on)  # a circle has no named parts
        s = sample_unit(n, 1, method, seed)
        theta = 2 * math.pi * s[:, 0]
        c = torch.tensor(self.center, dtype=s.dtype)
        return c + self.radius * torch.stack([theta.cos(), theta.sin()], dim=1)

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        v = points - torch.tensor(self.center, dtype=points.dtype)
        return v / v.norm(dim=1, keepdim=True).clamp_min(1e-30)

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        v = points - torch.tensor(self.center, dtype=points.dtype)
        return v.norm(dim=1) <= self.radius + tol


def _check_cloud(points: object, argument: str, dim: int | None = None) -> torch.Tensor:
    if not (isinstance(points, torch.Tensor) and points.ndim == 2 and len(points) > 0
            and points.is_floating_point() and bool(torch.isfinite(points).all())):
        raise InvalidArgumentError(argument, "a finite floating-point tensor of shape (N, dim), "
                                   "N >= 1", points)
    if dim is not None and points.shape[1] != dim:
        raise InvalidArgumentError(argument, f"{dim} columns, as the interior points", points)
    return points.detach()


def _subset(points: torch.Tensor, n: int, seed: int, argument: str) -> torch.Tensor:
    """All the points for ``n == len(points)``, else a seeded subset of ``n`` of them."""
    check_count(n, "n", 1)
    if n > len(points):
        raise InvalidArgumentError("n", f"at most the {len(points)} {argument} points of the "
                                   "cloud (a point cloud cannot make new points)", n)
    if n == len(points):
        return points
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(int(seed)))
    return points[order[:n]]


@dataclass(frozen=True, eq=False)
class PointCloud(Domain):
    """A geometry given by points (DeepXDE's ``PointCloud``): a scanned part, a mesh's
    nodes, a region known only through samples.

    Collocation points are drawn from the given ones (all of them, or a seeded
    subset without replacement; the ``method`` of a sampler is not used):
    ``PINN(n_interior=len(points))`` uses every point.

    Parameters
    ----------
    points : torch.Tensor, shape (N, dim)
        Interior points, columns in the order of ``names``.
    boundary_points : torch.Tensor, shape (M, dim), optional
        Boundary points (needed by boundary conditions).
    boundary_normals : torch.Tensor, shape (M, dim), optional
        Outward normals at the boundary points (needed by Neumann conditions;
        normalised here).
    names : sequence of str
        Axis names, one per column (default ``("x", "y")`` for 2 columns,
        ``("x", "y", "z")`` for 3, ``("x",)`` for 1).

    Examples
    --------
    >>> import torch
    >>> from opflow.solvers.pinn import PointCloud
    >>> cloud = PointCloud(torch.rand(100, 2), boundary_points=torch.rand(20, 2))
    >>> cloud.sample_interior(10, seed=0).shape
    torch.Size([10, 2])
    """

    points: torch.Tensor
    boundary_points: Optional[torch.Tensor] = None
    boundary_normals: Optional[torch.Tensor] = None
    names: tuple[str, ...] = ()  # type: ignore[assignment]

    def __post_init__(self):
        points = _check_cloud(self.points, "points")
        dim = points.shape[1]
        names = tuple(self.names) or {1: ("x",), 2: ("x", "y"), 3: ("x", "y", "z")}.get(dim, ())
        if len(names) != dim or len(set(names)) != dim or not all(
                isinstance(n, str) for n in names):
            raise InvalidArgumentError("names", f"{dim} distinct axis names, one per column",
                                       self.names)
        boundary = normals = None
        if self.boundary_points is not None:
            boundary = _check_cloud(self.boundary_points, "boundary_points", dim)
        if self.boundary_normals is not None:
            if boundary is None:
                raise InvalidArgumentError("boundary_normals", "normals together with "
                                           "boundary_points", "normals without points")
            normals = _check_cloud(self.boundary_normals, "boundary_normals", dim)
            if normals.shape != boundary.shape or bool((normals.norm(dim=1) == 0).any()):
                raise InvalidArgumentError("boundary_normals", f"{len(boundary)} non-zero "
                                           "normals, one per boundary point", normals)
            normals = normals / normals.norm(dim=1, keepdim=True)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "boundary_points", boundary)
        object.__setattr__(self, "boundary_normals", normals)
        object.__setattr__(self, "names", names)

    def _all(self) -> torch.Tensor:
        if self.boundary_points is None:
            return self.points
        return torch.cat([self.points, self.boundary_points.to(self.points.dtype)])

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        pts = self._all()
        lo, hi = pts.min(0).values, pts.max(0).values
        return {n: (float(a), float(b)) for n, a, b in zip(self.names, lo, hi)}

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        return _subset(self.points, n, seed, "interior")

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        self.boundary_parts(on)  # a cloud's boundary has no named parts
        if self.boundary_points is None:
            raise InvalidArgumentError("boundary_points", "boundary points of the PointCloud "
                                       "(a boundary condition needs them)", None)
        return _subset(self.boundary_points, n, seed, "boundary")

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        if self.boundary_normals is None:
            raise InvalidArgumentError("boundary_normals", "normals of the PointCloud's "
                                       "boundary points (a Neumann condition needs them)", None)
        bp = self.boundary_points
        assert bp is not None  # normals come with points (__post_init__)
        dist = torch.cdist(points.detach().to(bp.dtype), bp,
                           compute_mode="donot_use_mm_for_euclid_dist")  # exact distances
        nearest = dist.min(dim=1)
        if bool((nearest.values > 1e-6 * (1 + bp.abs().max())).any()):
            raise InvalidArgumentError("points", "boundary points of the PointCloud (normals "
                                       "are known there only)", points)
        return self.boundary_normals[nearest.indices].to(points.dtype)

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        cloud = self._all()
        dist = torch.cdist(points.detach().to(cloud.dtype), cloud,
                           compute_mode="donot_use_mm_for_euclid_dist")
        return dist.min(dim=1).values <= tol


@dataclass(frozen=True)
class TimeSpace(Domain):
    """Space-time cylinder ``[t0, t1] x space``; columns ordered ``(time_name, *space.names)``.

    Parameters
    ----------
    tspan : (float, float)
        ``(t0, t1)``.
    space : Domain
    time_name : str
    """

    tspan: tuple[float, float]
    space: Domain
    time_name: str = "t"

    def __post_init__(self):
        try:
            t0, t1 = float(self.tspan[0]), float(self.tspan[1])
        except (TypeError, ValueError, IndexError):
            raise InvalidArgumentError("tspan", "a pair (t0, t1)", self.tspan) from None
        if not t1 > t0:
            raise InvalidArgumentError("tspan", "t1 > t0", self.tspan)
        if not isinstance(self.space, Domain) or isinstance(self.space, TimeSpace):
            raise InvalidArgumentError("space", "a spatial Domain (Interval, Box, Disk)",
                                       self.space)
        if self.time_name in self.space.names:
            raise InvalidArgumentError("time_name", f"a name not in {self.space.names}",
                                       self.time_name)
        object.__setattr__(self, "tspan", (t0, t1))

    @property
    def names(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.time_name, *self.space.names)

    @property
    def box(self) -> dict[str, tuple[float, float]]:
        return {self.time_name: self.tspan, **self.space.box}

    def _with_time(self, space_pts: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t.reshape(-1, 1).to(space_pts.dtype), space_pts], dim=1)

    def _times(self, n: int, method: str, seed: int) -> torch.Tensor:
        t0, t1 = self.tspan
        return t0 + (t1 - t0) * sample_unit(n, 1, method, seed + 7919)[:, 0]

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        s = sample_unit(n, self.dim, method, seed)  # one joint design keeps LHS / Sobol properties
        t0, t1 = self.tspan
        space = self.space.sample_interior(n, method, seed + 1)
        if isinstance(self.space, Box):
            lo, hi = self.space._lo_hi(s.dtype)
            space = lo + (hi - lo) * s[:, 1:]
        return self._with_time(space, t0 + (t1 - t0) * s[:, 0])

    @property
    def boundaries(self) -> tuple[str, ...]:
        """The boundary parts of ``space`` (the lateral boundary)."""
        return self.space.boundaries

    def sample_boundary(self, n: int, method: str = "uniform", seed: int = 0,
                        on: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        return self._with_time(self.space.sample_boundary(n, method, seed, on=on),
                               self._times(n, method, seed))

    def sample_initial(self, n: int, method: str = "uniform", seed: int = 0) -> torch.Tensor:
        """``n`` points on the slice ``t = t0``.

        Parameters
        ----------
        n : int
            Number of points.
        method : {"uniform", "latin_hypercube", "lhs", "sobol"}
            Sampler.
        seed : int
            Seed of the sampler.

        Returns
        -------
        torch.Tensor, shape (n, dim)
        """
        space = self.space.sample_interior(n, method, seed)
        return self._with_time(space, torch.full((n,), self.tspan[0], dtype=space.dtype))

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        n_space = self.space.normals(points[:, 1:])
        return torch.cat([torch.zeros_like(points[:, :1]), n_space], dim=1)

    def contains(self, points: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
        t = points[:, 0]
        inside_t = (t >= self.tspan[0] - tol) & (t <= self.tspan[1] + tol)
        return inside_t & self.space.contains(points[:, 1:], tol)
