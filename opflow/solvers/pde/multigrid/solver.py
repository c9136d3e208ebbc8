"""The :class:`Multigrid` algorithm and ``solve`` for Poisson and Darcy problems.

What a solve computes
---------------------
The vertex-centred discretisation of :mod:`.operators` (harmonic-mean face
coefficients, second order) on every sample of the batch, iterated with
geometric multigrid cycles until the relative residual

    ||f - A u||_2 / ||b||_2 <= rtol        for every sample,

where the norms run over the free nodes and ``b = f - A u_b`` is the
right-hand side of the system for the unknowns (``u_b`` holds the Dirichlet
boundary values and zeros elsewhere, so ``b = f`` when ``bc_value = 0``; a
sample with ``b = 0`` is measured in absolute terms).

Singular problems (``bc="neumann"`` or ``"periodic"`` without a mask): the
forcing is first projected onto the range of ``A`` by removing its weighted
mean ``sum(w f) / sum(w)`` (``w``: 1/2 per Neumann boundary a node lies on,
the trapezoid rule), which is the solvability condition of the continuous
problem; the solution returned is the one of zero weighted mean, and the
coarsest level is solved with the mean constraint as a bordered system.

Gradients flow to ``coeff`` and ``forcing`` (when their values require
grad) through one adjoint multigrid solve: see :mod:`.adjoint`.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

from ....errors import GridMismatchError, InvalidArgumentError, ShapeError
from ....field import Field
from ....solution import ReturnCode, Solution, SolverStats
from ....solve import AbstractAlgorithm, register
from . import operators as ops
from .adjoint import ImplicitSolve
from .cycles import CYCLES, iterate, iterate_cg
from .hierarchy import Hierarchy, plan_levels
from .problems import DarcyProblem, PoissonProblem, free_nodes

__all__ = ["Multigrid", "SMOOTHERS", "KRYLOV", "CPU_CHUNK_NODES", "solve_elliptic",
           "discrete_residual"]

SMOOTHERS = ("rbgs", "jacobi")
KRYLOV = (None, "cg")

CPU_CHUNK_NODES = 1 << 18
"""On CPU a batch is solved in chunks of about this many grid nodes (e.g. 15
samples of 129^2), so that a chunk's working set stays in cache: about twice
as fast per sample as one pass over a batch of 256 (memory-bound kernels)."""


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class Multigrid(AbstractAlgorithm):
    """Geometric multigrid for :class:`PoissonProblem` and :class:`DarcyProblem`.

    Parameters
    ----------
    cycle : {"V", "W", "F"}
        Cycle type: one coarse-grid visit per level (V), two (W), or an
        F-cycle then a V-cycle on the coarse grid (F).
    smoother : {"rbgs", "jacobi"}
        Red-black Gauss-Seidel (pre-smoothing red then black, post-smoothing
        black then red) or weighted Jacobi.
    pre_smooth, post_smooth : int
        Smoothing sweeps before and after the coarse-grid correction.
    levels : int, optional
        Number of grids, finest included (at least 2). Default: coarsen
        while every axis allows it (``n - 1`` even on non-periodic axes,
        ``n`` even on periodic ones) and the grid has more than 100 nodes
        (so a grid of at most 100 nodes is solved directly). The coarsest
        grid is solved by dense batched LU up to 256 nodes, by a fixed number
        of Jacobi-preconditioned CG iterations beyond (e.g. 22 x 22 for
        n = 85, 106 x 106 for n = 421).
    rtol : float
        Target relative residual of every sample (see the module notes).
        Use float64 (or float64 with ``cycle_dtype=torch.float32``) for
        ``rtol`` below about ``1e-4``: in float32 the computed residual
        stalls at its rounding level (on the 3/12 Darcy problem about 3e-5
        at 85^2, 6e-5 at 129^2, 2e-4 at 257^2, although the solution is
        then accurate to about 1e-7) and the solve ends with
        ``ReturnCode.Failure``.
    max_cycles : int
        Most cycles before giving up (``ReturnCode.MaxIters``).
    jacobi_weight : float
        Damping ``w`` of the Jacobi smoother, in ``(0, 1]``. The default 0.8
        (= 4/5) minimises the smoothing factor of the 2-D five-point stencil;
        the optimum is 2/3 in 1-D and 6/7 in 3-D (``2d / (2d + 1)``).
    chunk_size : int, optional
        Samples solved together. Default: the whole batch on GPU; on CPU
        chunks of about :data:`CPU_CHUNK_NODES` grid nodes, which keep the
        working set in cache. Each chunk iterates until its own samples
        converge.
    krylov : {None, "cg"}
        ``"cg"``: use the cycle as the preconditioner of (flexible)
        conjugate gradients, one cycle per iteration. Fewer iterations where
        plain cycles slow down (jumping coefficients, masks: about 40% fewer
        on the 3/12 Darcy benchmark) at the cost of one extra operator
        application and three inner products per iteration.
    cycle_dtype : torch.dtype, optional
        Precision of the cycles (smoothing, transfers, coarsest solve).
        Default: the problem's. ``torch.float32`` on a float64 problem gives
        mixed-precision iterative refinement: each cycle solves for the
        correction ``A e = r`` in float32 while the residual ``r``, the
        solution and the convergence test stay in float64, so ``rtol`` far
        below float32 rounding is still reached, with about half the memory
        traffic in the cycles.

    Notes
    -----
    Coarse grids rediscretise the operator with averaged coefficients (no
    Galerkin product): face coefficients are combined harmonically along the
    flux and arithmetically across it, and a mask boundary that falls
    between coarse nodes keeps its true distance. Residuals are restricted
    by full weighting and corrections interpolated (bi/tri-)linearly.
    Everything is batched torch code, device- and dtype-agnostic; the only
    host synchronisation is the convergence test once per cycle.

    Measured (float64, V(2,2), red-black Gauss-Seidel, rtol 1e-8): Poisson
    needs 6 cycles from 33^2 to 513^2; the 3/12 piecewise-constant Darcy
    problem 8-13 cycles, 6-9 with ``krylov="cg"``.

    Examples
    --------
    >>> g = Grid.uniform(x=(0, 1, 129), y=(0, 1, 129))
    >>> a = Field(torch.where(torch.rand(16, 1, 129, 129) > 0.5, 12.0, 3.0).double(), g)
    >>> sol = opflow.solve(DarcyProblem(a, 1.0), Multigrid(krylov="cg"))
    >>> sol.retcode, sol.stats.iterations, sol.u.shape
    (<ReturnCode.Success: 'Success'>, ..., torch.Size([16, 1, 129, 129]))
    """

    cycle: str = "V"
    smoother: str = "rbgs"
    pre_smooth: int = 2
    post_smooth: int = 2
    levels: Optional[int] = None
    rtol: float = 1e-8
    max_cycles: int = 50
    jacobi_weight: float = 0.8
    chunk_size: Optional[int] = None
    krylov: Optional[str] = None
    cycle_dtype: Optional[torch.dtype] = None

    def __post_init__(self):
        cyc = self.cycle.upper() if isinstance(self.cycle, str) else self.cycle
        if cyc not in CYCLES:
            raise InvalidArgumentError("cycle", f"one of {CYCLES}", self.cycle)
        object.__setattr__(self, "cycle", cyc)
        if self.smoother not in SMOOTHERS:
            raise InvalidArgumentError("smoother", f"one of {SMOOTHERS}", self.smoother)
        for name in ("pre_smooth", "post_smooth"):
            v = getattr(self, name)
            if not (_is_int(v) and v >= 0):
                raise InvalidArgumentError(name, "a non-negative integer", v)
        if self.pre_smooth + self.post_smooth == 0:
            raise InvalidArgumentError("post_smooth", "at least one smoothing sweep in all",
                                       (self.pre_smooth, self.post_smooth))
        if self.levels is not None and not (_is_int(self.levels) and self.levels >= 2):
            raise InvalidArgumentError("levels", "None or an integer >= 2", self.levels)
        if not (isinstance(self.rtol, numbers.Real) and not isinstance(self.rtol, bool)
                and 0 < self.rtol < math.inf):
            raise InvalidArgumentError("rtol", "a positive tolerance", self.rtol)
        if not (_is_int(self.max_cycles) and self.max_cycles >= 1):
            raise InvalidArgumentError("max_cycles", "a positive integer", self.max_cycles)
        if not (isinstance(self.jacobi_weight, numbers.Real)
                and 0 < self.jacobi_weight <= 1):
            raise InvalidArgumentError("jacobi_weight", "a damping factor in (0, 1]",
                                       self.jacobi_weight)
        if self.chunk_size is not None and not (_is_int(self.chunk_size)
                                                and self.chunk_size >= 1):
            raise InvalidArgumentError("chunk_size", "None or a positive integer",
                                       self.chunk_size)
        if self.krylov not in KRYLOV:
            raise InvalidArgumentError("krylov", f"one of {KRYLOV}", self.krylov)
        if self.cycle_dtype is not None and not (isinstance(self.cycle_dtype, torch.dtype)
                                                 and self.cycle_dtype.is_floating_point):
            raise InvalidArgumentError("cycle_dtype", "None or a floating torch.dtype",
                                       self.cycle_dtype)


# ------------------------------------------------------------------ the data
def _samples(values: torch.Tensor, ndim: int, batch_shape, count: int,
             keep_shared: bool) -> torch.Tensor:
    """``(*b, 1, *shape) -> (count, *shape)`` (or ``(1, *shape)`` when shared)."""
    v = values.squeeze(values.ndim - ndim - 1)
    shape = tuple(v.shape[v.ndim - ndim:])
    if keep_shared and math.prod(v.shape[: v.ndim - ndim]) == 1:
        return v.reshape(1, *shape)
    return v.expand(*batch_shape, *shape).reshape(count, *shape)


class _Data:
    """Tensors of a problem, flattened to ``(samples, *shape)``."""

    def __init__(self, prob):
        grid = prob.grid
        self.grid, self.ndim, self.shape = grid, grid.ndim, tuple(grid.shape)
        self.batch_shape = tuple(prob.batch_shape)
        self.count = math.prod(self.batch_shape)
        self.kinds = prob.axis_kinds
        coeff = prob.coeff
        forcing = prob.forcing
        ref = coeff if coeff is not None else forcing
        dtype = ref.dtype
        if coeff is not None and isinstance(forcing, Field):
            dtype = torch.promote_types(coeff.dtype, forcing.dtype)
        self.dtype, self.device = dtype, ref.device
        if coeff is None:
            self.a = torch.ones((1, *self.shape), dtype=dtype, device=self.device)
        else:
            self.a = _samples(coeff.values, self.ndim, self.batch_shape, self.count,
                              True).to(dtype)
        if isinstance(forcing, Field):
            self.f = _samples(forcing.values, self.ndim, self.batch_shape, self.count,
                              False).to(dtype)
        else:
            self.f = torch.full((self.count, *self.shape), float(forcing), dtype=dtype,
                                device=self.device)
        free = free_nodes(grid, prob.bc, prob.mask).to(self.device)
        self.free = _samples(free, self.ndim, self.batch_shape, self.count, True)
        boundary = free_nodes(grid, prob.bc, None).to(self.device).logical_not()  # (1, *shape)
        if prob.mask is not None:
            boundary = boundary & _samples(prob.mask.values, self.ndim, self.batch_shape,
                                           self.count, True)
        self.u_boundary = boundary.to(dtype) * prob.bc_value


class _System:
    """A factored problem: the hierarchy plus the forward and adjoint solves
    (the ``system`` of :class:`~.adjoint.ImplicitSolve`)."""

    def __init__(self, prob, alg: Multigrid, data: _Data, u0: Optional[torch.Tensor], progress):
        self.alg, self.data, self.u0, self.progress = alg, data, u0, progress
        self.kinds, self.spacing = data.kinds, prob.grid.spacing
        self.singular = prob.singular
        shapes = plan_levels(prob.grid, self.kinds, alg.levels)
        count = data.count
        size = alg.chunk_size or count
        if alg.chunk_size is None and data.device.type == "cpu":
            size = max(1, CPU_CHUNK_NODES // math.prod(data.shape))
        a, free = data.a.detach(), data.free
        shared = a.shape[0] == 1 and free.shape[0] == 1
        self.chunks: list[tuple[slice, Hierarchy]] = []
        for start in range(0, count, size):
            part = slice(start, min(count, start + size))
            if shared and self.chunks:
                hier = self.chunks[0][1]
            else:
                hier = Hierarchy(_rows(a, part), _rows(free, part), self.spacing, self.kinds,
                                 shapes, alg.smoother, alg.jacobi_weight, self.singular,
                                 masked=prob.mask is not None, cycle_dtype=alg.cycle_dtype)
            self.chunks.append((part, hier))
        self.depth = self.chunks[0][1].depth
        self.weights = self.chunks[0][1].exact_weights
        self.info: dict = {}

    @staticmethod
    def _scale(b: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(b.reshape(b.shape[0], -1), dim=1)
        return torch.where(norm > 0, norm, torch.ones_like(norm))

    def _solve(self, u, u_ref, f, desc):
        """Iterate every chunk; returns ``u``, per-sample histories, max cycles,
        operator applications and whether any chunk stalled."""
        alg = self.alg
        outs, histories, cycles, nfe, stalled = [], [], 0, 0, False
        label = desc
        for k, (part, hier) in enumerate(self.chunks):
            if len(self.chunks) > 1:
                label = f"{desc} {k + 1}/{len(self.chunks)}"
            nfe0 = hier.nfe
            fc = f[part]
            scale = self._scale(hier.exact_residual(u_ref[part], fc))
            run = iterate_cg if alg.krylov == "cg" else iterate
            uc, hist, cyc, stall = run(hier, u[part].contiguous(), fc, scale, alg.cycle,
                                        alg.pre_smooth, alg.post_smooth, alg.rtol,
                                        alg.max_cycles, self.progress, label)
            outs.append(uc)
            histories.extend(torch.stack(hist, 1).cpu().tolist())
            cycles, nfe, stalled = max(cycles, cyc), nfe + hier.nfe - nfe0, stalled or stall
        u = torch.cat(outs) if len(outs) > 1 else outs[0]
        return u, histories, cycles, nfe, stalled

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        count, free = f.shape[0], self.data.free
        if self.singular:
            f = f - ops.weighted_mean(f, self.weights)
        u_b = self.data.u_boundary.to(f.dtype).expand(count, *self.data.shape)
        if self.u0 is None:
            u = u_b.clone()
        else:
            u = torch.where(free, self.u0, u_b)
            if self.singular:
                u = u - ops.weighted_mean(u, self.weights)
        u, histories, cycles, nfe, stalled = self._solve(u, u_b, f, "multigrid")
        self.info = dict(histories=histories, cycles=cycles, nfe=nfe, stalled=stalled)
        return u

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        free = self.data.free.to(g.dtype)
        rhs = (g / self.weights) * free
        if self.singular:
            rhs = rhs - ops.weighted_mean(rhs, self.weights)
        lam = torch.zeros_like(rhs)
        lam, histories, cycles, _, _ = self._solve(lam, lam, rhs, "multigrid adjoint")
        worst = max(h[-1] for h in histories)
        if not worst <= self.alg.rtol:
            warnings.warn(f"multigrid adjoint solve stopped after {cycles} cycles at relative "
                          f"residual {worst:.3e} > rtol={self.alg.rtol:g}; gradients are "
                          "inaccurate", RuntimeWarning, stacklevel=3)
        return lam * self.weights * free

    def apply(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``A(a) u`` on every node, differentiable in ``a``."""
        coef, diag = ops.stencil(ops.face_coefficients(a, self.kinds), self.spacing, self.kinds)
        return ops.apply_operator(u, coef, diag, self.kinds)


def _rows(x: torch.Tensor, part: slice) -> torch.Tensor:
    """Samples ``part`` of ``x``, or ``x`` itself when it is shared (batch 1)."""
    return x if x.shape[0] == 1 else x[part]


def _initial_guess(u0, prob, data: _Data, detach: bool = True) -> Optional[torch.Tensor]:
    if u0 is None:
        return None
    if not isinstance(u0, Field):
        raise InvalidArgumentError("u0", "None or an opflow.Field initial guess", u0)
    if u0.grid != prob.grid:
        raise GridMismatchError("u0", f"a Field on the problem's grid ({prob.grid})", u0.grid)
    if u0.channels != 1:
        raise ShapeError("u0", "one channel: (*batch, 1, *grid.shape)", u0.values)
    try:
        torch.broadcast_shapes(u0.batch_shape, data.batch_shape)
        values = _samples(u0.values, data.ndim, data.batch_shape, data.count, False)
    except RuntimeError:
        raise ShapeError("u0", f"batch dimensions broadcasting to {data.batch_shape}",
                         u0.values) from None
    return (values.detach() if detach else values).to(data.dtype)


# ----------------------------------------------------------------------- solve
@register(PoissonProblem, Multigrid)
@register(DarcyProblem, Multigrid)
def solve_elliptic(prob, alg: Multigrid, *, u0: Optional[Field] = None,
                   progress=False) -> Solution:
    """Solve a :class:`PoissonProblem` or :class:`DarcyProblem` by multigrid.

    Called through ``opflow.solve(prob, Multigrid(...), **kwargs)``.

    Parameters
    ----------
    prob : PoissonProblem or DarcyProblem
    alg : Multigrid
    u0 : Field, optional
        Initial guess on the problem's grid (values at fixed nodes are
        replaced by the boundary values). Default: zero.
    progress : bool or "always"
        Progress over cycles (:func:`opflow.progress.progress_mode`: a bar
        on a terminal, lines with the worst residual in a log, nothing when
        False; default False).

    Returns
    -------
    Solution
        ``u``: Field named ``"u"`` of shape ``(*batch, 1, *grid.shape)`` on
        the problem's grid, differentiable in ``coeff`` and ``forcing``.
        ``t``: an empty tensor (a steady problem has no time axis).
        ``retcode``: ``Success`` when every sample reached ``rtol``;
        ``MaxIters`` after ``max_cycles`` cycles otherwise; ``Failure`` when
        the residual stalled earlier (after 10 cycles, no 10% decrease in the
        last 5: the rounding level, e.g. float32 with ``rtol`` below about
        1e-4, or divergence);
        ``Unstable`` on NaN/Inf.
        ``stats``: ``iterations`` = cycles (the most any chunk ran), ``nfe``
        = batched operator applications on all levels (smoothing sweeps,
        residuals, coarsest solves; summed over chunks), ``wall_time`` in
        seconds (forward solve, set-up included).
        ``u.attrs``: ``"relative_residual"`` (per sample, final; list of
        float), ``"residual_history"`` (per sample, the list of relative
        residuals before the first cycle and after each cycle of its chunk),
        ``"cycles"`` (the most any chunk ran) and ``"levels"``. Samples are
        listed in C order of the batch dims.
    """
    start = time.perf_counter()
    data = _Data(prob)
    guess = _initial_guess(u0, prob, data)
    system = _System(prob, alg, data, guess, progress)
    u = ImplicitSolve.apply(system, data.a, data.f)
    wall = time.perf_counter() - start
    histories = system.info["histories"]
    final = torch.tensor([h[-1] for h in histories], dtype=torch.float64)
    if not bool(torch.isfinite(final).all()):
        retcode = ReturnCode.Unstable
    elif bool((final <= alg.rtol).all()):
        retcode = ReturnCode.Success
    elif system.info["stalled"]:
        retcode = ReturnCode.Failure
    else:
        retcode = ReturnCode.MaxIters
    attrs = {
        "relative_residual": final.tolist(),
        "residual_history": histories,
        "cycles": system.info["cycles"],
        "levels": system.depth,
    }
    values = u.reshape(*data.batch_shape, 1, *data.shape)
    field = Field(values, prob.grid, names="u", attrs=attrs)
    stats = SolverStats(steps=0, rejects=0, nfe=system.info["nfe"],
                        iterations=system.info["cycles"], wall_time=wall)
    t = torch.zeros(0, dtype=data.dtype, device=data.device)
    return Solution(t=t, u=field, retcode=retcode, stats=stats, problem=prob, alg=alg)


def discrete_residual(prob, u: Field) -> Field:
    """``f - A u`` of the discretisation on the free nodes (0 on fixed nodes).

    For singular problems ``f`` is first projected (weighted mean removed),
    as in the solver. Differentiable; useful to check a solution.

    Parameters
    ----------
    prob : PoissonProblem or DarcyProblem
    u : Field, values of shape (*batch, 1, *grid.shape)

    Returns
    -------
    Field of shape ``(*batch, 1, *grid.shape)`` (the problem's batch shape).
    """
    data = _Data(prob)
    if u is None:
        raise InvalidArgumentError("u", "an opflow.Field", u)
    values = _initial_guess(u, prob, data, detach=False)
    assert values is not None  # u is not None
    f = data.f
    if prob.singular:
        f = f - ops.weighted_mean(f, ops.boundary_weights(data.shape, data.kinds, data.dtype,
                                                          data.device))
    coef, diag = ops.stencil(ops.face_coefficients(data.a, data.kinds), prob.grid.spacing,
                             data.kinds)
    r = (f - ops.apply_operator(values, coef, diag, data.kinds)) * data.free
    return Field(r.reshape(*data.batch_shape, 1, *data.shape), prob.grid, names="residual")
