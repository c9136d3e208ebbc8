"""Families of 1-D periodic PDEs for meta-learning, solved with opflow's spectral steppers.

Every family is a special case of one equation on ``x in [0, 1)`` (periodic)::

    u_t + c u_x + b (u^2 / 2)_x = nu u_xx + r u (1 - u) + d (u^2)_xx

=====================  ==========================================  =====================
family                 equation                                    sampled coefficients
=====================  ==========================================  =====================
``advection``          ``u_t + c u_x = 0``                         ``c``
``diffusion``          ``u_t = nu u_xx``                           ``nu``
``burgers``            ``u_t + b (u^2/2)_x = nu u_xx``             ``b``, ``nu``
``reaction_diffusion`` ``u_t = nu u_xx + r u (1 - u)`` (Fisher-KPP) ``nu``, ``r``
``porous_medium``      ``u_t = d (u^2)_xx``                        ``d``
=====================  ==========================================  =====================

The coefficients not sampled by a family are zero. A sample maps
``u0 -> u(t_end)``; ``u0 = sigmoid(g)`` with ``g`` a periodic Gaussian random
field, so ``0 < u0 < 1`` for every family (the logistic and porous-medium
terms need a non-negative state; one input law for all families keeps a
held-out family a change of equation, not of data).

Because every coefficient is given to the model as a constant input
channel, the families are points of one coefficient space: an operator
pretrained on some of them meets a held-out family as a new region of that
space (a coefficient it has only seen as zero).

Numerics
--------
A family is a :class:`FamilyProblem`, solved through :func:`opflow.solve`
with :class:`~opflow.solvers.pde.PseudoSpectral`: ETDRK4 in Fourier space,
2/3-rule dealiasing of the quadratic terms, on a grid ``fine_factor`` times
finer than the stored one. The
linear part ``L = -(nu + d max(u0)) k^2`` is integrated exactly; the rest of
the porous-medium term, ``d (u^2 - max(u0) u)_xx``, whose diffusivity lies
within ``+-d max(u0)`` by the maximum principle, is explicit. Advection with
constant ``c`` commutes with every other term, so it is applied exactly to
each saved state as the Fourier shift ``exp(-i k c t)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, cast

import numpy as np
import torch
import xarray as xr

from ..errors import InvalidArgumentError, SolverError, UnknownVariableError
from ..field import Field
from ..grid import Grid
from ..problems import check_tspan
from ..progress import Progress
from ..solve import solve
from ..solvers.pde.spectral import PseudoSpectral, register_spectral
from ..solvers.pde.spectral.fourier import FourierBasis
from ..solvers.pde.spectral.system import SemilinearSystem

__all__ = [
    "COEFFICIENTS",
    "COEFFICIENT_SCALES",
    "FAMILIES",
    "INPUTS",
    "Family",
    "FamilyProblem",
    "family_dataset",
    "generate_family",
    "save_family",
    "solve_family",
]

COEFFICIENTS: tuple[str, ...] = ("c", "b", "nu", "r", "d")
"""Coefficient names: velocity, Burgers flux factor, viscosity, reaction rate,
porous-medium diffusivity."""

COEFFICIENT_SCALES: dict[str, float] = {"c": 0.5, "b": 1.5, "nu": 0.05, "r": 4.0, "d": 0.05}
"""Largest sampled value of each coefficient: models see ``coefficient / scale``."""

INPUTS: tuple[str, ...] = ("u0", *COEFFICIENTS)
"""Input variables of a family data set, in channel order (output: ``"u"``)."""


@dataclass(frozen=True)
class Family:
    """A PDE family: the coefficients it samples (uniformly in ``ranges``), others zero.

    Parameters
    ----------
    name : str
        The family's name (``"advection"``, ...).
    ranges : mapping of str to (float, float)
        The coefficients it samples and their ranges.
    equation : str
        The equation as text (recorded in the attributes of generated data).
    """

    name: str
    ranges: Mapping[str, tuple[float, float]]
    equation: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("advection", {"c": (0.1, 0.5)}, "u_t + c u_x = 0"),
    Family("diffusion", {"nu": (0.005, 0.05)}, "u_t = nu u_xx"),
    Family("burgers", {"b": (0.5, 1.5), "nu": (0.01, 0.05)}, "u_t + b (u^2/2)_x = nu u_xx"),
    Family("reaction_diffusion", {"nu": (0.005, 0.02), "r": (1.0, 4.0)},
           "u_t = nu u_xx + r u (1 - u)"),
    Family("porous_medium", {"d": (0.01, 0.05)}, "u_t = d (u^2)_xx"),
)}


def _family(name: str) -> Family:
    if name not in FAMILIES:
        raise UnknownVariableError("family", name, FAMILIES)
    return FAMILIES[name]


# ------------------------------------------------------------------ solver
def _coefficient_tensors(coefficients: Mapping[str, object], batch: int,
                         dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every coefficient as a ``(batch, 1, 1)`` tensor (missing ones are zero)."""
    unknown = set(coefficients) - set(COEFFICIENTS)
    if unknown:
        raise UnknownVariableError("coefficients", sorted(unknown)[0], COEFFICIENTS)
    out = {}
    for name in COEFFICIENTS:
        value = torch.as_tensor(coefficients.get(name, 0.0), dtype=dtype).reshape(-1)
        if value.numel() not in (1, batch) or not torch.isfinite(value).all():
            raise InvalidArgumentError(f"coefficients[{name!r}]",
                                       f"a finite number or {batch} of them", value)
        out[name] = value.expand(batch).reshape(batch, 1, 1).clone()
    if (out["nu"] < 0).any() or (out["d"] < 0).any():
        raise InvalidArgumentError("coefficients", "non-negative 'nu' and 'd'", coefficients)
    return out


def _default_dt(u0: torch.Tensor, co: dict[str, torch.Tensor], basis: FourierBasis,
                t_end: float) -> float:
    """A stable step for the explicit terms (advection by ``b u``, reaction, porous part)."""
    k_max = float(basis.k[0].abs().max()) * 2.0 / 3.0  # dealiased modes only
    u_max = float(u0.abs().max())
    rates = [float((co["b"].abs() * u_max).max()) * k_max,
             float(co["r"].abs().max()) * (1.0 + 2.0 * u_max),
             float((co["d"] * u_max).max()) * k_max ** 2 / 2.0]
    fastest = max(rates)
    return t_end / 20 if fastest == 0 else min(t_end / 20, 1.0 / fastest)


@dataclass(frozen=True, eq=False)
class FamilyProblem:
    """``u_t + c u_x + b (u^2/2)_x = nu u_xx + r u (1 - u) + d (u^2)_xx`` on a 1-D torus.

    Solved by ``opflow.solve(prob, PseudoSpectral(dt=..., scheme="etdrk4"))``
    (see the module notes for the numerics); :func:`solve_family` picks a
    stable step.

    Parameters
    ----------
    u0 : Field, values of shape (B, 1, n)
        Initial states on a 1-D periodic uniform grid.
    coefficients : mapping
        Any of ``"c", "b", "nu", "r", "d"``: a number or ``B`` numbers each;
        missing ones are zero. ``nu`` and ``d`` must be non-negative, and
        ``u0`` too where ``d > 0``. Stored as ``(B, 1, 1)`` tensors of every
        coefficient.
    tspan : (float, float)
    """

    u0: Field
    coefficients: Mapping[str, object]
    tspan: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        u0 = self.u0
        if not isinstance(u0, Field) or u0.grid.ndim != 1 or not u0.grid.axes[0].periodic:
            raise InvalidArgumentError("u0", "a Field on a 1-D periodic grid", u0)
        if u0.values.ndim != 3 or u0.channels != 1:
            raise InvalidArgumentError("u0", "values of shape (B, 1, n)", u0.values)
        object.__setattr__(self, "tspan", check_tspan(self.tspan))
        co = _coefficient_tensors(self.coefficients, u0.values.shape[0], u0.values.dtype)
        if bool(((co["d"] > 0) & (u0.values < 0).any(dim=-1, keepdim=True)).any()):
            raise InvalidArgumentError("u0", "non-negative states where d > 0 (the porous-"
                                       "medium term is backward diffusion for u < 0)", u0.values)
        object.__setattr__(self, "coefficients", co)


@register_spectral(FamilyProblem, "u0")
def family_system(prob: FamilyProblem, dealias: bool = True) -> SemilinearSystem:
    """The semilinear system of a :class:`FamilyProblem`, marched in the frame moving with
    ``c`` (the advection is applied exactly as a Fourier shift when states are saved)."""
    values = prob.u0.values
    co = cast("dict[str, torch.Tensor]", prob.coefficients)  # tensors since __post_init__
    basis = FourierBasis(prob.u0.grid, values.dtype, values.device)
    k2, ik = basis.k2, basis.derivative(0)
    mask = basis.dealias if dealias else torch.ones_like(basis.dealias)
    u_ref = values.amax(dim=-1, keepdim=True).clamp_min(0.0)  # (B, 1, 1)
    d_ref = co["d"] * u_ref
    t0 = prob.tspan[0]

    def explicit(t: float, v: torch.Tensor) -> torch.Tensor:
        u = basis.inverse(v * mask)
        square = basis.forward(u * u) * mask
        n = (-0.5 * co["b"] * ik - co["d"] * k2) * square + d_ref * k2 * v
        return n + co["r"] * (basis.forward(u) - square)

    def observe(t: float, v: torch.Tensor) -> torch.Tensor:
        return v * torch.exp(-ik * (co["c"] * (t - t0)))

    return SemilinearSystem(basis=basis, linear=-(co["nu"] + d_ref) * k2, explicit=explicit,
                            observe=observe)


def solve_family(u0: Field, coefficients: Mapping[str, object], t_end: float = 1.0,
                 dt: float | None = None) -> Field:
    """``u(t_end)`` of a :class:`~opflow.meta.families.FamilyProblem` from ``t = 0``.

    Solved through :func:`opflow.solve`.

    Parameters
    ----------
    u0 : Field, values of shape (B, 1, n)
    coefficients : mapping
        As for :class:`FamilyProblem`.
    t_end : float
        Final time.
    dt : float, optional
        Largest time step (default: a stable step for the explicit terms).

    Returns
    -------
    Field, values of shape (B, 1, n)
        The state at ``t_end`` (same grid, dtype and channel name as ``u0``).

    Raises
    ------
    SolverError
        The march became unstable (pass a smaller ``dt``).
    """
    if not (isinstance(t_end, (int, float)) and math.isfinite(t_end) and t_end > 0):
        raise InvalidArgumentError("t_end", "a positive finite time", t_end)
    prob = FamilyProblem(u0, coefficients, (0.0, float(t_end)))
    if dt is None:
        basis = FourierBasis(u0.grid, u0.values.dtype, u0.values.device)
        dt = _default_dt(u0.values, cast("dict[str, torch.Tensor]", prob.coefficients), basis,
                         float(t_end))
    sol = solve(prob, PseudoSpectral(dt=dt, scheme="etdrk4"), saveat=[float(t_end)])
    if not sol.success:
        raise SolverError(f"solve_family: unstable at dt={dt:g} ({sol.retcode}); "
                          "use a smaller dt")
    return sol.u[0]


# -------------------------------------------------------------------- data
def _initial_states(grid: Grid, n: int, generator: torch.Generator) -> torch.Tensor:
    from ..data.grf import grf

    g = grf(grid, alpha=2.0, tau=5.0, sigma=1.5 * 5.0 ** 1.5, batch=n, generator=generator)
    return torch.sigmoid(g.values)


def generate_family(
    family: str,
    n: int,
    resolution: int = 64,
    seed: int = 0,
    t_end: float = 1.0,
    fine_factor: int = 2,
    chunk: int = 64,
    progress: bool | str = False,
) -> xr.Dataset:
    """Samples ``(u0, coefficients) -> u(t_end)`` of one PDE family.

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES`.
    n : int
        Number of samples.
    resolution : int
        Stored grid points on ``[0, 1)``.
    seed : int
        Seed; the same arguments give bit-identical data on CPU.
    t_end : float
        Final time of the map.
    fine_factor : int
        The solve runs on ``resolution * fine_factor`` points (then subsampled).
    chunk : int
        Samples per solver call.
    progress : bool or "always"
        Progress over samples (see :class:`opflow.progress.Progress`).

    Returns
    -------
    xarray.Dataset
        Variables ``u0``, ``u`` and the coefficients ``c``, ``b``, ``nu``,
        ``r``, ``d`` (as constant fields), each of dims ``(sample, x)`` on the
        periodic grid of ``resolution`` points; attrs ``family``,
        ``equation``, ``t_end``, ``seed``.
    """
    spec = _family(family)
    for arg, v, low in (("n", n, 1), ("resolution", resolution, 8),
                        ("fine_factor", fine_factor, 1), ("chunk", chunk, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise InvalidArgumentError(arg, f"an integer >= {low}", v)
    gen = torch.Generator().manual_seed(int(seed))
    fine = Grid.uniform(x=(0.0, 1.0, resolution * fine_factor), periodic=("x",))
    grid = Grid.uniform(x=(0.0, 1.0, resolution), periodic=("x",))
    u0 = _initial_states(fine, n, gen)
    co = {k: lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
          for k, (lo, hi) in spec.ranges.items()}
    outs = []
    with Progress(n, f"solve {family}", progress, unit="sample") as bar:
        for s in range(0, n, chunk):
            part = {k: v[s:s + chunk] for k, v in co.items()}
            outs.append(solve_family(Field(u0[s:s + chunk], fine, "u"), part, t_end).values)
            bar.update(len(outs[-1]))
    sub = slice(None, None, fine_factor)
    data = {"u0": u0[:, 0, sub], "u": torch.cat(outs)[:, 0, sub]}
    for k in COEFFICIENTS:
        data[k] = co.get(k, torch.zeros(n, dtype=torch.float64))[:, None].expand(n, resolution)
    names = list(data)
    ds = Field(torch.stack([data[k] for k in names], dim=1), grid, names).to_xarray(
        batch_dims=["sample"])
    ds = ds.assign_coords(sample=("sample", np.arange(n, dtype=np.int64)))
    ds.attrs.update({"family": family, "equation": spec.equation, "t_end": float(t_end),
                     "seed": int(seed)})
    return ds


def save_family(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a family data set to netCDF (atomically, via :func:`opflow.io.save`).

    Parameters
    ----------
    ds : xarray.Dataset
        A family data set.
    path : str or os.PathLike
        The file.

    Returns
    -------
    pathlib.Path
    """
    from ..io import save

    if not isinstance(ds, xr.Dataset) or "family" not in ds.attrs:
        raise InvalidArgumentError("ds", "a Dataset from generate_family", ds)
    return save(ds, path)


def family_dataset(source: xr.Dataset | str | os.PathLike,
                   inputs: Sequence[str] = INPUTS):
    """An :class:`~opflow.data.OperatorDataset` of a family data set (usable by the Trainer).

    Inputs are the channels ``inputs`` (default ``u0`` and the five
    coefficients, in physical units), the output is ``u``.

    Parameters
    ----------
    source : xarray.Dataset, str or os.PathLike
        A family data set (:func:`~opflow.meta.families.generate_family`) or its file.
    inputs : sequence of str
        The input channels: ``u0`` and coefficient names.

    Returns
    -------
    OperatorDataset
    """
    from ..data import OperatorDataset

    return OperatorDataset(source, inputs=list(inputs), outputs="u")
