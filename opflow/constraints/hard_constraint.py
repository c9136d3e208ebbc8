"""``HardConstraint``: a PDE imposed exactly at sampled points by a differentiable solve.

PI-HC (Chalapathi, Du and Krishnapriyan, ICLR 2024): a basis network maps
the input ``a`` to ``n`` basis fields ``b_1 .. b_n`` on a space-time grid;
the output is ``u = sum_i b_i w_i`` where the weights solve, per sample,

    min_w  sum_{points} |R(u_w)|^2 + sum_{condition rows} weight |C(u_w, a)|^2
           + ridge |w|^2,

``R`` the PDE residual and ``C`` initial/boundary conditions, both written
like a :class:`~opflow.solvers.pinn.PINNProblem` residual and evaluated on
the grid by finite differences (:class:`~opflow.solvers.pinn.GridCoordinates`).
The solve is a batched :class:`~opflow.solvers.nonlinear.NonlinearLeastSquaresProblem`
in float64 (one Levenberg-Marquardt step suffices for a linear PDE), and its
gradient with respect to the basis fields (hence the basis network) comes from
:class:`~opflow.solvers.nonlinear.ImplicitAdjoint`: the implicit function
theorem at the solution, no backpropagation through the iterations.

PI-HC-MoE: with a :class:`~opflow.constraints.Partition` each block of the
grid is an expert with its own weights ``w_k``, fitted to the rows in its
block only; the experts are independent problems solved together (batch
dimension samples x experts) and the output is stitched from the blocks.

``hard=False`` is the soft-constraint baseline on the same basis network: the
weights are trainable parameters shared by all samples, and the residual
enters only the loss (:meth:`HardConstraint.residual_loss`, the loss of both
variants, so comparisons train with the same objective).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import InvalidArgumentError, ShapeError
from ..field import Field
from ..grid import Grid
from ..solution import ReturnCode, Solution
from ..solve import solve
from ..solvers.nonlinear import (
    GaussNewton,
    ImplicitAdjoint,
    LevenbergMarquardt,
    NonlinearLeastSquaresProblem,
)
from ..solvers.ode.sensitivity import DirectBackprop
from ..solvers.pinn.derivatives import GridCoordinates
from .conditions import GridCondition
from .distributed import expert_group, experts_of, gather_codes, gather_samples, sum_over_processes
from .partition import Partition
from .windows import ExpertWindows

__all__ = ["HardConstraint", "PDEResidual"]

PDEResidual = Callable[[GridCoordinates, torch.Tensor], torch.Tensor]
"""``(x, u (N, channels)) -> (N,) or (N, k)``: a PDE residual in the PINN convention."""

Points = Union[str, int, torch.Tensor]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(name, "a positive integer", value)
    return value


def _pick(candidates: torch.Tensor, count: Optional[int], generator: torch.Generator
          ) -> torch.Tensor:
    """``count`` of the flat node indices ``candidates`` at random (all: None), sorted."""
    if count is None or candidates.numel() <= count:
        return candidates
    chosen = torch.randperm(candidates.numel(), generator=generator)[:count]
    return candidates[chosen.sort().values]


def _padded(per_expert: list[torch.Tensor], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(K, M)`` and row weights ``(K, M)`` (zero on padding)."""
    m = max(1, max(int(i.numel()) for i in per_expert))
    idx = torch.zeros(len(per_expert), m, dtype=torch.int64)
    wt = torch.zeros(len(per_expert), m, dtype=torch.float64)
    for k, i in enumerate(per_expert):
        idx[k, :i.numel()] = i
        wt[k, :i.numel()] = scale
    return idx, wt


class _Rows:
    """Where the rows of each expert's least-squares problem sit in its window of a grid."""

    def __init__(self, grid: Grid, labels: torch.Tensor, n_experts: int, points: Points,
                 conditions: Sequence[GridCondition], seed: int, windows: ExpertWindows):
        self.windows = windows
        gen = torch.Generator().manual_seed(seed)
        flat = labels.reshape(-1)
        if isinstance(points, torch.Tensor):
            mask = points.reshape(-1)
            count = None
        else:
            mask = torch.ones_like(flat, dtype=torch.bool)
            count = None if points == "all" else int(points)
        pde = [_pick(torch.nonzero(mask & (flat == k)).reshape(-1), count, gen)
               for k in range(n_experts)]
        empty = [k for k, i in enumerate(pde) if i.numel() == 0]
        if empty:
            raise InvalidArgumentError(
                "partition", f"every expert with at least one residual point (experts "
                f"{empty} of {n_experts} have none among the points)", points
                if isinstance(points, (str, int)) else "a mask")
        self.pde = _padded(windows.local(pde), 1.0)
        # which window nodes lie in the expert's own block, and on each condition's faces
        index = windows.index
        self.own = flat[index] == torch.arange(n_experts)[:, None]          # (K, Gw)
        self.faces = [c.mask(grid).reshape(-1)[index] & self.own for c in conditions]
        self.n_faces = [int(c.mask(grid).sum()) for c in conditions]
        self.n_nodes = grid.size
        self.conditions = []
        for c in conditions:
            face = c.mask(grid).reshape(-1)
            rows = [_pick(torch.nonzero(face & (flat == k)).reshape(-1), c.points, gen)
                    for k in range(n_experts)]
            self.conditions.append(_padded(windows.local(rows), math.sqrt(c.weight)))

    def subset(self, experts: Sequence[int]) -> "_Rows":
        """The rows of ``experts`` only, in that order."""
        out = copy.copy(self)
        keep = torch.as_tensor(list(experts), dtype=torch.int64)
        out.windows = self.windows.subset(experts)
        out.pde = (self.pde[0][keep], self.pde[1][keep])
        out.conditions = [(i[keep], w[keep]) for i, w in self.conditions]
        out.own, out.faces = self.own[keep], [f[keep] for f in self.faces]
        return out

    def windowed(self, values: torch.Tensor) -> torch.Tensor:
        """``values (B, ..., G)`` on every expert's window: ``(B * K, ..., window nodes)``."""
        index = self.windows.index.to(values.device)              # (K, Gw)
        out = values[..., index]                                  # (B, ..., K, Gw)
        out = out.movedim(-2, 1)                                  # (B, K, ..., Gw)
        return out.reshape(-1, *out.shape[2:])

    @staticmethod
    def take(values: torch.Tensor, where: tuple[torch.Tensor, torch.Tensor], batch: int
             ) -> torch.Tensor:
        """Rows of ``values (S, G, k)`` for samples ``S = batch * K``: ``(S, M * k)``."""
        idx, wt = where
        idx = idx.to(values.device).repeat(batch, 1)
        wt = wt.to(device=values.device, dtype=values.dtype).repeat(batch, 1)
        k = values.shape[-1]
        rows = values.gather(1, idx[..., None].expand(-1, -1, k)) * wt[..., None]
        return rows.reshape(values.shape[0], -1)


class _ExpertFields:
    """What :meth:`HardConstraint.residual_loss` needs of the latest forward pass: the
    experts' weights ``(B, K, n)``, basis and input on their windows, and the output."""

    def __init__(self, weights: torch.Tensor, basis: torch.Tensor, inputs: torch.Tensor,
                 rows: _Rows, batch: int):
        self.weights, self.basis, self.inputs = weights, basis, inputs
        self.rows, self.batch = rows, batch
        self.output: Optional[torch.Tensor] = None


class HardConstraint(nn.Module):
    """A basis network whose output satisfies a PDE at sampled points (PI-HC, PI-HC-MoE).

    Parameters
    ----------
    basis : nn.Module, optional
        Any operator mapping the input Field ``(B, in_channels, *grid)`` to
        ``n_basis * len(names)`` basis fields on the same grid (a Field or a
        tensor ``(B, n_basis * channels, *grid)``; channel ``i * channels + c``
        is basis function ``i`` of output channel ``c``). Default: an
        :class:`~opflow.operators.FNO` (``modes=8, width=32``; needs
        ``in_channels``).
    residual : callable ``(x, u) -> Tensor (N,) or (N, k)``
        The PDE residual, written as for
        :class:`~opflow.solvers.pinn.PINNProblem`: ``x`` are
        :class:`~opflow.solvers.pinn.GridCoordinates` (``N = samples *
        grid nodes``), ``u`` is ``(N, channels)``, derivatives come from
        :func:`~opflow.solvers.pinn.d` and :func:`~opflow.solvers.pinn.laplacian`
        (finite differences on the grid here).
    n_basis : int
        Number of basis functions (the unknowns of each expert's solve).
    partition : Partition or mapping, optional
        Split of the grid into experts (``Partition(x=4)`` or ``{"x": 4}``);
        default one expert on the whole grid.
    solver : GaussNewton or LevenbergMarquardt, optional
        The nonlinear least-squares algorithm (default ``GaussNewton()``,
        whose minimum-norm step solves a linear PDE's problem exactly in one
        iteration; see Notes).
    points : "all", int or torch.Tensor
        The residual rows of each expert: every node of its block, that many
        nodes of its block drawn at random (``seed``; the same nodes at every
        call), or a bool mask of ``grid.shape``. PI-HC takes fewer points than
        basis functions, so that the constraint can hold exactly.
    ridge : float
        Weight of ``|w|^2`` (makes the solve well posed), >= 0.
    conditions : sequence of GridCondition
        Initial and boundary rows, e.g. ``[initial_condition()]``.
    names : sequence of str
        Output channel names.
    hard : bool
        False: the soft-constraint baseline (trainable weights shared by all
        samples, the residual only in :meth:`residual_loss`).
    sensealg : ImplicitAdjoint or DirectBackprop, optional
        How the solve is differentiated (default ``ImplicitAdjoint()``, with
        respect to the basis fields, the input and the residual's parameters).
    seed : int
        Seed of the point sampling and of the soft weights.
    in_channels : int, optional
        Input channels of the default FNO basis.
    halo : int or None
        Nodes each expert's window reaches past its block along the split
        axes (see :class:`~opflow.constraints.windows.ExpertWindows`): an
        expert's residual is evaluated on its block plus this halo, not on
        the whole grid. Default 2 (first and second differences at
        ``accuracy`` 2, or first differences at 4); None evaluates every
        expert on the whole grid. The first call on a grid checks that the
        windows give the whole grid's rows and falls back (with a warning)
        when they do not, e.g. for spectral derivatives on a periodic axis.
    derivatives : {"auto", "fd"}
        How grid derivatives are taken (:class:`~opflow.solvers.pinn.GridCoordinates`'s
        ``method``): ``"auto"`` is spectral on periodic axes and finite
        differences otherwise; ``"fd"`` uses finite differences everywhere,
        which lets experts split a periodic axis into windows.
    distribute : bool
        Spread the experts over the processes of a ``torch.distributed`` job
        (the :class:`~opflow.train.Trainer`'s ``torchrun`` launch) while
        training: every process gathers all processes' samples, solves the
        experts ``k`` with ``k % world_size == rank`` for all of them, and the
        blocks are summed across processes (differentiably, so the gradients
        under DistributedDataParallel are those of one process). Every process
        must call the layer the same number of times in training mode (the
        Trainer's training loader does). In evaluation mode, or without a
        process group of several processes, each process solves every expert
        of its own samples.

    Attributes
    ----------
    last_solution : Solution or None
        The solve of the latest forward pass (per-expert retcodes in
        ``record["retcodes"]``, samples first: ``b * n_experts + k``).

    Notes
    -----
    Why Gauss-Newton by default: with fewer rows than basis functions, the
    directions of ``w`` that the rows do not see are fixed by the ridge
    alone. Levenberg-Marquardt's damping is scaled by the diagonal of
    ``J^T J`` and dwarfs a small ridge there, so it stops on short steps
    before those directions converge: its output is then not a smooth
    function of the basis, and the implicit gradient (exact at the optimum
    only) disagrees with finite differences. Gauss-Newton converges on them
    (one step for a linear PDE). Pass ``LevenbergMarquardt()`` for strongly
    nonlinear residuals with enough rows.

    The output Field's ``attrs["retcode"]`` is ``"Success"`` only if every
    expert of every sample converged; ``attrs["expert_retcodes"]`` lists them
    (comma-separated, samples first). A failed expert also raises a
    ``RuntimeWarning``.

    Examples
    --------
    >>> from opflow.solvers.pinn import d
    >>> heat = lambda x, u: d(u, x, "t") - 0.1 * d(u, x, "x", 2)
    >>> layer = HardConstraint(None, heat, n_basis=16, in_channels=1, points=8,
    ...                        conditions=[initial_condition(points=4)])  # doctest: +SKIP
    >>> u = layer(a)                         # a: Field (B, 1, nx, nt)  # doctest: +SKIP
    """

    def __init__(self, basis: Optional[nn.Module], residual: PDEResidual, n_basis: int,
                 partition: Union[Partition, dict, None] = None,
                 solver: Union[GaussNewton, LevenbergMarquardt, None] = None,
                 points: Points = "all", ridge: float = 1e-4, *,
                 conditions: Sequence[GridCondition] = (), names: Sequence[str] = ("u",),
                 hard: bool = True, sensealg: Union[ImplicitAdjoint, DirectBackprop, None] = None,
                 seed: int = 0, in_channels: Optional[int] = None, halo: Optional[int] = 2,
                 derivatives: str = "auto", distribute: bool = False):
        super().__init__()
        self.n_basis = _positive_int(n_basis, "n_basis")
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names or not all(isinstance(n, str) for n in names):
            raise InvalidArgumentError("names", "one or more channel names", names)
        self.names = names
        if basis is None:
            if in_channels is None:
                raise InvalidArgumentError("in_channels", "the input channels of the default "
                                           "FNO basis (or pass basis=)", in_channels)
            from ..operators import FNO
            basis = FNO(_positive_int(in_channels, "in_channels"), n_basis * len(names),
                        modes=8, width=32)
        if not isinstance(basis, nn.Module):
            raise InvalidArgumentError("basis", "an nn.Module (an opflow operator)", basis)
        self.basis = basis
        if not callable(residual):
            raise InvalidArgumentError("residual", "a callable (x, u) -> residual", residual)
        self.residual = residual
        if isinstance(partition, dict):
            partition = Partition(partition)
        if partition is not None and not isinstance(partition, Partition):
            raise InvalidArgumentError("partition", "a Partition, a mapping {axis: blocks} or "
                                       "None", partition)
        self.partition = partition
        solver = GaussNewton() if solver is None else solver
        if not isinstance(solver, (GaussNewton, LevenbergMarquardt)):
            raise InvalidArgumentError("solver", "GaussNewton() or LevenbergMarquardt()", solver)
        self.solver = solver
        if isinstance(points, str):
            if points != "all":
                raise InvalidArgumentError("points", "'all', a number of points per expert or a "
                                           "bool mask of the grid", points)
        elif isinstance(points, torch.Tensor):
            if points.dtype != torch.bool:
                raise InvalidArgumentError("points", "a bool mask of the grid", points)
        else:
            _positive_int(points, "points")
        self.points = points
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or \
                not (math.isfinite(ridge) and ridge >= 0):
            raise InvalidArgumentError("ridge", "a finite number >= 0", ridge)
        self.ridge = float(ridge)
        conditions = tuple(conditions)
        for c in conditions:
            if not isinstance(c, GridCondition):
                raise InvalidArgumentError("conditions", "GridCondition objects (e.g. "
                                           "initial_condition())", c)
        self.conditions = conditions
        if not isinstance(hard, bool):
            raise InvalidArgumentError("hard", "True or False", hard)
        self.hard = hard
        if sensealg is not None and not isinstance(sensealg, (ImplicitAdjoint, DirectBackprop)):
            raise InvalidArgumentError("sensealg", "ImplicitAdjoint() or DirectBackprop()",
                                       sensealg)
        self.sensealg = sensealg
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError("seed", "an integer", seed)
        self.seed = seed
        if halo is not None and (isinstance(halo, bool) or not isinstance(halo, int)
                                 or halo < 0):
            raise InvalidArgumentError("halo", "a number of nodes >= 0, or None (the whole "
                                       "grid per expert)", halo)
        self.halo = halo
        if derivatives not in ("auto", "fd"):
            raise InvalidArgumentError("derivatives", "'auto' or 'fd'", derivatives)
        self.derivatives = derivatives
        if not isinstance(distribute, bool):
            raise InvalidArgumentError("distribute", "True or False", distribute)
        self.distribute = distribute
        if not hard:
            gen = torch.Generator().manual_seed(seed)
            self.soft_weights = nn.Parameter(torch.randn(n_basis, generator=gen) / n_basis ** 0.5)
        self.last_solution: Optional[Solution] = None
        self._rows_cache: dict[Any, _Rows] = {}
        self._experts: Optional[_ExpertFields] = None

    @property
    def channels(self) -> int:
        """Output channels."""
        return len(self.names)

    @property
    def n_experts(self) -> int:
        """Experts (blocks of the partition; 1 without one)."""
        return 1 if self.partition is None else self.partition.n_experts

    # ------------------------------------------------------------------ helpers
    def _labels(self, grid: Grid) -> torch.Tensor:
        if self.partition is None:
            return torch.zeros(grid.shape, dtype=torch.int64)
        return self.partition.labels(grid)

    def _rows(self, grid: Grid, halo: Optional[int]) -> _Rows:
        if isinstance(self.points, torch.Tensor) and tuple(self.points.shape) != grid.shape:
            raise ShapeError("points", f"a bool mask of the grid's shape {grid.shape}",
                             self.points)
        windows = ExpertWindows(grid, self.partition, halo)
        return _Rows(grid, self._labels(grid), self.n_experts, self.points, self.conditions,
                     self.seed, windows)

    def _layout(self, grid: Grid, b64: torch.Tensor, a64: torch.Tensor) -> _Rows:
        """The rows of ``grid`` in the experts' windows, checked once against the whole grid."""
        if grid in self._rows_cache:
            return self._rows_cache[grid]
        rows = self._rows(grid, self.halo)
        if not rows.windows.is_whole_grid:
            whole = self._rows(grid, None)
            w = torch.randn(self.n_experts, self.n_basis, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(self.seed + 1)
                            ).to(b64.device)
            with torch.no_grad():
                near = self._row_values(w, rows, b64[:1], a64[:1])
                far = self._row_values(w, whole, b64[:1], a64[:1])
            scale = far.abs().max().clamp_min(1e-300)
            if not bool(((near - far).abs() <= 1e-8 * scale).all()):
                warnings.warn(
                    f"HardConstraint: the residual rows on the experts' windows (halo "
                    f"{self.halo}) differ from those on the whole grid (stencils reaching "
                    "further, or spectral derivatives on a periodic axis: pass a larger "
                    "halo= or derivatives='fd'); every expert is evaluated on the whole "
                    "grid", RuntimeWarning, stacklevel=4)
                rows = whole
        self._rows_cache[grid] = rows
        return rows

    def _coordinates(self, rows: _Rows, samples: int, device: torch.device
                     ) -> GridCoordinates:
        win = rows.windows
        nodes = win.nodes.to(device).repeat(samples // win.n_experts, 1, 1)
        return GridCoordinates(win.grid, samples, dtype=torch.float64, device=device,
                               method=self.derivatives, nodes=nodes.reshape(-1, win.grid.ndim))

    def _row_values(self, w: torch.Tensor, rows: _Rows, b64: torch.Tensor, a64: torch.Tensor
                    ) -> torch.Tensor:
        """Every expert's rows (PDE, then conditions) for weights ``w (B * K, n)``."""
        B = b64.shape[0]
        x = self._coordinates(rows, B * rows.windows.n_experts, b64.device)
        return self._stacked_rows(w, rows.windowed(b64), rows.windowed(a64), x, rows, B)

    def _stacked_rows(self, w: torch.Tensor, bs: torch.Tensor, as_: torch.Tensor,
                      x: GridCoordinates, rows: _Rows, B: int) -> torch.Tensor:
        return self._rows_of(torch.einsum("sn,sncg->scg", w, bs), as_, x, rows, B)

    def _rows_of(self, u: torch.Tensor, as_: torch.Tensor, x: GridCoordinates, rows: _Rows,
                 B: int) -> torch.Tensor:
        """Every expert's rows (PDE, then conditions) of the fields ``u (S, C, Gw)``."""
        pde, conds = self._residuals(x, u, as_)
        parts = [rows.take(pde, rows.pde, B)]
        parts += [rows.take(v, where, B) for v, where in zip(conds, rows.conditions)]
        return torch.cat(parts, dim=1)

    def _basis_values(self, a: Field) -> torch.Tensor:
        out = self.basis(a)
        values = out.values if isinstance(out, Field) else out
        want = (a.values.shape[0], self.n_basis * self.channels, *a.grid.shape)
        if not isinstance(values, torch.Tensor) or tuple(values.shape) != want:
            raise ShapeError("basis", f"an output of shape {want} (n_basis * channels basis "
                             "fields on the input's grid)", values)
        return values

    @staticmethod
    def _checked(out: Any, n: int, name: str) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.ndim not in (1, 2) or out.shape[0] != n:
            raise ShapeError(name, f"a callable returning shape ({n},) or ({n}, k): one "
                             "residual per grid node and sample", out)
        return out.reshape(n, -1)

    def _residuals(self, x: GridCoordinates, u: torch.Tensor, a: torch.Tensor
                   ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """PDE and condition residuals ``(S, G, k)`` of ``u (S, C, G)``, ``a (S, Cin, G)``."""
        s, g = u.shape[0], u.shape[-1]
        u_pts = u.transpose(1, 2).reshape(s * g, -1)
        a_pts = a.transpose(1, 2).reshape(s * g, -1)
        pde = self._checked(self.residual(x, u_pts), s * g, "residual").reshape(s, g, -1)
        conds = [self._checked(c.residual(x, u_pts, a_pts), s * g, "conditions")
                 .reshape(s, g, -1) for c in self.conditions]
        return pde, conds

    def _residual_parameters(self) -> list[torch.Tensor]:
        mods = [self.residual] + [c.residual for c in self.conditions]
        out: list[torch.Tensor] = []
        for m in mods:
            if isinstance(m, nn.Module):
                out.extend(q for q in m.parameters() if q.requires_grad)
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, a: Field) -> Field:
        """The constrained output for the input ``a``.

        Parameters
        ----------
        a : Field, shape (B, in_channels, *grid) or (in_channels, *grid)
            The input on the space-time grid of the output.

        Returns
        -------
        Field, shape (B, channels, *grid) (no batch dimension if ``a`` has none)
            ``attrs["retcode"]`` and ``attrs["expert_retcodes"]`` record the
            solves (hard mode).
        """
        if not isinstance(a, Field):
            raise InvalidArgumentError("a", "an opflow.Field on the space-time grid", a)
        unbatched = a.values.ndim == a.grid.ndim + 1
        if unbatched:
            a = a.with_values(a.values.unsqueeze(0))
        if a.values.ndim != a.grid.ndim + 2:
            raise ShapeError("a", "a Field of shape (B, in_channels, *grid)", a.values)
        b = self._basis_values(a)
        B, grid = b.shape[0], a.grid
        G = math.prod(grid.shape)
        basis = b.reshape(B, self.n_basis, self.channels, G)
        attrs = dict(a.attrs)
        if not self.hard:
            w = self.soft_weights.to(b.dtype)
            u = torch.einsum("n,bncg->bcg", w, basis)
        else:
            self._experts = None
            u, codes = self._solve(a, basis, grid)
            attrs["retcode"] = str(max(codes, key=_severity)) if codes else "Success"
            attrs["expert_retcodes"] = ",".join(str(c) for c in codes)
        out = Field(u.reshape(B, self.channels, *grid.shape), grid, self.names, attrs=attrs)
        if self._experts is not None:
            self._experts.output = out.values
        return out[0] if unbatched else out

    def _solve(self, a: Field, basis: torch.Tensor, grid: Grid
               ) -> tuple[torch.Tensor, list[ReturnCode]]:
        B, n, C, G = basis.shape
        K = self.n_experts
        b64 = basis.to(torch.float64)
        a64 = a.values.reshape(B, -1, G).to(torch.float64)
        group = expert_group() if self.distribute and self.training else None
        if group is None:
            b_all, a_all, mine, lo = b64, a64, list(range(K)), 0
        else:   # every process solves its share of the experts for every process's samples
            (b_all, a_all), lo = gather_samples((b64, a64), group)
            mine = experts_of(K, group)
        rows = self._layout(grid, b_all.detach(), a_all.detach())
        W, codes = self._solve_experts(b_all, a_all, rows.subset(mine))
        onehot = torch.nn.functional.one_hot(self._labels(grid).reshape(-1), K).to(
            device=basis.device, dtype=torch.float64).t()[mine]      # (experts here, G)
        u = torch.einsum("bkn,bncg,kg->bcg", W, b_all, onehot)
        if group is None:   # for residual_loss: every expert's own combination on its window
            self._experts = _ExpertFields(W, rows.windowed(b64), rows.windowed(a64), rows, B)
        if group is not None:
            u = sum_over_processes(u + 0 * b_all.sum(), group)[lo:lo + B]
            codes = gather_codes(codes, mine, K, group)[lo * K:(lo + B) * K]
        failed = [i for i, c in enumerate(codes) if c != ReturnCode.Success]
        if failed:
            warnings.warn(
                f"HardConstraint: {len(failed)} of {len(codes)} expert solves did not "
                f"converge (sample, expert, retcode: "
                f"{[(i // K, i % K, str(codes[i])) for i in failed[:8]]}); the output holds "
                "their last iterates and attrs['expert_retcodes'] records them",
                RuntimeWarning, stacklevel=3)
        return u.to(basis.dtype), codes

    def _solve_experts(self, b64: torch.Tensor, a64: torch.Tensor, rows: _Rows
                       ) -> tuple[torch.Tensor, list[ReturnCode]]:
        """Weights ``(B, experts, n)`` of the experts of ``rows`` for every sample, and
        their retcodes (samples first)."""
        B, n = b64.shape[0], self.n_basis
        k = rows.windows.n_experts
        if k == 0:   # more processes than experts: nothing to solve here
            return b64.new_zeros(B, 0, n), []
        S = B * k
        bK, aK = rows.windowed(b64), rows.windowed(a64)      # (S, n, C, Gw), (S, Cin, Gw)
        x = self._coordinates(rows, S, b64.device)
        root_ridge = math.sqrt(self.ridge)

        def r(w: torch.Tensor, p: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            out = self._stacked_rows(w, p[0], p[1], x, rows, B)
            return torch.cat([out, root_ridge * w], dim=1) if self.ridge > 0 else out

        def jac(w: torch.Tensor, p: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            # column i is the rows' derivative along basis field i: a JVP with the basis
            # field itself as tangent (the derivative of the combination along w_i). Pushing
            # unit tangents in w through the combination instead broadcasts the basis once
            # per tangent (8x the time of the whole step at 2 samples x 40960 nodes)
            bs, as_ = p
            u = torch.einsum("sn,sncg->scg", w, bs)

            def column(b_i: torch.Tensor) -> torch.Tensor:
                return torch.func.jvp(lambda v: self._rows_of(v, as_, x, rows, B), (u,),
                                      (b_i,))[1]

            J = torch.func.vmap(column, in_dims=1, out_dims=2)(bs)    # (S, M, n)
            if self.ridge > 0:
                eye = torch.eye(n, dtype=J.dtype, device=J.device).expand(S, n, n)
                J = torch.cat([J, root_ridge * eye], dim=1)
            return J

        w0 = torch.zeros(S, n, dtype=torch.float64, device=b64.device)
        prob = NonlinearLeastSquaresProblem(r, w0, (bK, aK), batched=True, jac=jac)
        sensealg = self.sensealg
        if sensealg is None:
            params = [t for t in (bK, aK) if t.requires_grad] + self._residual_parameters()
            sensealg = ImplicitAdjoint(params=params)
        sol = solve(prob, self.solver, sensealg=sensealg)
        self.last_solution = sol
        return sol.u.reshape(B, k, n), list(sol.record["retcodes"])

    # ------------------------------------------------------------------ losses
    def residual_loss(self, pred: Field, true: Field, a: Field) -> torch.Tensor:
        """The physics loss of PI-HC: mean squared PDE residual plus condition misfits.

        The PDE residual is averaged over every grid node, each condition
        over its face nodes (times its weight); no solution data is used
        (``true`` is ignored). Takes the input, so :class:`~opflow.train.Trainer`
        passes it: ``Trainer(layer, loss=layer.residual_loss)``.

        With experts, when ``pred`` is the layer's latest output, each node's
        residual is that of its own expert's combination, evaluated on the
        expert's window (as PI-HC-MoE's loss): the stitched output jumps at
        the interfaces, and differences taken across a jump are not the PDE's
        (they dominated the loss and made the experts worse than one solve).
        Otherwise (another Field, or experts spread over processes) the
        residual is that of ``pred`` itself.

        Parameters
        ----------
        pred : Field, shape (B, channels, *grid)
            The layer's output.
        true : Field
            The target (unused).
        a : Field, shape (B, in_channels, *grid)
            The layer's input (initial and boundary data).

        Returns
        -------
        torch.Tensor
            A scalar, in ``pred``'s dtype.
        """
        if not isinstance(pred, Field):
            raise InvalidArgumentError("pred", "an opflow.Field (the layer's output)", pred)
        if not isinstance(a, Field):
            raise InvalidArgumentError("a", "an opflow.Field (the layer's input)", a)
        st, dtype = self._experts, pred.values.dtype
        if st is not None and st.output is pred.values and self.hard:
            return self._expert_loss(st).to(dtype)
        grid = pred.grid
        G = math.prod(grid.shape)
        u = pred.values.reshape(-1, self.channels, G).to(torch.float64)
        v = a.values.reshape(u.shape[0], -1, G).to(torch.float64)
        x = GridCoordinates(grid, u.shape[0], dtype=torch.float64, device=u.device,
                            method=self.derivatives)
        pde, conds = self._residuals(x, u, v)
        loss = pde.square().mean()
        for c, v in zip(self.conditions, conds):
            face = c.mask(grid).reshape(-1).to(u.device)
            loss = loss + c.weight * v[:, face].square().mean()
        return loss.to(pred.values.dtype)

    def _expert_loss(self, st: "_ExpertFields") -> torch.Tensor:
        """:meth:`residual_loss` with every node's residual from its own expert."""
        rows, B = st.rows, st.batch
        S = st.weights.shape[0] * st.weights.shape[1]
        u = torch.einsum("sn,sncg->scg", st.weights.reshape(S, -1), st.basis)
        x = self._coordinates(rows, S, u.device)
        pde, conds = self._residuals(x, u, st.inputs)                       # (S, Gw, k)
        own = rows.own.to(u.device).repeat(B, 1)                             # (S, Gw)
        loss = pde[own].square().sum() / (B * rows.n_nodes * pde.shape[-1])
        for c, v, face, n in zip(self.conditions, conds, rows.faces, rows.n_faces):
            on = face.to(u.device).repeat(B, 1)
            loss = loss + c.weight * v[on].square().sum() / (B * n * v.shape[-1])
        return loss

    def extra_repr(self) -> str:
        """The settings shown in the module's repr.

        Returns
        -------
        str
        """
        return (f"n_basis={self.n_basis}, experts={self.n_experts}, hard={self.hard}, "
                f"points={self.points if not isinstance(self.points, torch.Tensor) else 'mask'}, "
                f"ridge={self.ridge:g}")


_ORDER = [ReturnCode.Success, ReturnCode.MaxIters, ReturnCode.Stalled, ReturnCode.Unstable]


def _severity(code: ReturnCode) -> int:
    return _ORDER.index(code) if code in _ORDER else len(_ORDER)

