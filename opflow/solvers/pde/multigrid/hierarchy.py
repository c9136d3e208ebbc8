"""The grid hierarchy of a multigrid solve: level sizes, per-level operators,
smoother data and the solver on the coarsest level.

Sizes
-----
Each coarsening keeps every other node: a non-periodic (vertex-centred) axis
of ``n`` nodes needs ``n - 1`` even and gives ``(n - 1) / 2 + 1`` nodes (at
least 3); a periodic axis needs ``n`` even and gives ``n / 2`` (at least 2).
So ``n - 1 = m * 2**L`` gives ``L`` coarsenings down to ``m + 1`` nodes:
65, 129, 257, 513 go down to 9 x 9, 85 (``= 21 * 4 + 1``) to 22 x 22, 141
(``= 35 * 4 + 1``) to 36 x 36, 421 (``= 105 * 4 + 1``) to 106 x 106.

Coarsest level
--------------
Up to :data:`DENSE_COARSEST_NODES` nodes: a dense batched LU factorisation
(``torch.linalg.lu_factor``, once per solve) and one ``lu_solve`` per cycle,
exact. Larger coarsest grids (sizes with a large odd factor ``m``, such as
85 or 421) would make the factorisation the dominant cost (``N**3`` per
sample), so they are solved approximately by a fixed number
(``3 max(shape)``, about a 1e-3 residual reduction) of Jacobi-preconditioned
conjugate-gradient iterations: no host synchronisation, and the outer
iteration still reaches any tolerance (flexible CG with ``krylov="cg"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ....errors import InvalidArgumentError
from . import operators as ops

__all__ = ["Level", "Hierarchy", "plan_levels", "AUTO_COARSEST_NODES", "DENSE_COARSEST_NODES",
           "MAX_COARSEST_NODES"]

AUTO_COARSEST_NODES = 100
"""Automatic level choice: stop coarsening once a grid has at most this many nodes."""

DENSE_COARSEST_NODES = 256
"""Largest coarsest grid (in nodes) solved by dense LU; larger ones by CG."""

MAX_COARSEST_NODES = 1 << 16
"""Largest coarsest grid accepted (beyond it the coarsest CG dominates everything)."""

SIZES_HELP = ("non-periodic axes with n - 1 = m * 2**L nodes (L >= 1, m >= 2: e.g. 17, 33, 65, "
              "129, 257, 513, or 85 = 21 * 4 + 1) and periodic axes with an even n >= 4")


def cycle_kernels(ndim: int, device: torch.device):
    """The module whose ``residual``, ``jacobi``, ``rbgs``, ``restrict`` and ``prolong``
    the cycles call: the fused Triton kernels for 2-D grids when the kernel backend
    (:func:`opflow.kernels.use`) is ``"triton"``, or ``"auto"`` on CUDA with triton
    installed; the torch reference (:mod:`.operators`) otherwise (3-D, or CPU under
    ``"auto"``)."""
    from ....kernels.backend import resolve_backend, triton_available, triton_module

    backend = resolve_backend(None)
    fused = backend == "triton" or (backend == "auto" and torch.device(device).type == "cuda"
                                    and triton_available())
    return triton_module("triton_multigrid") if fused and ndim == 2 else ops


def _can_coarsen(n: int, kind: str) -> bool:
    if kind == "P":
        return n % 2 == 0 and n // 2 >= 2
    return (n - 1) % 2 == 0 and (n - 1) // 2 >= 2


def _coarse(shape: Sequence[int], kinds: Sequence[str]) -> tuple[int, ...]:
    return tuple(n // 2 if k == "P" else (n - 1) // 2 + 1 for n, k in zip(shape, kinds))


def plan_levels(grid, kinds: Sequence[str], levels: Optional[int]) -> list[tuple[int, ...]]:
    """Shapes of the grids from finest to coarsest.

    Parameters
    ----------
    grid : Grid
        The finest grid.
    kinds : sequence of {"P", "N", "D"}
        Boundary kind per axis.
    levels : int or None
        Number of grids (at least 2); ``None`` coarsens while possible and
        while the grid has more than :data:`AUTO_COARSEST_NODES` nodes.

    Raises
    ------
    InvalidArgumentError
        ``grid`` when it cannot be coarsened at all or its coarsest grid has
        more than :data:`MAX_COARSEST_NODES` nodes; ``levels`` when more
        levels are asked for than the grid allows, or too few.
    """
    shapes = [tuple(grid.shape)]
    stuck = [f"{a.name}: n = {a.size}{' (periodic)' if k == 'P' else ''}"
             for a, k in zip(grid.axes, kinds) if not _can_coarsen(a.size, k)]
    if stuck:
        raise InvalidArgumentError("grid", f"a grid that multigrid can coarsen: {SIZES_HELP}",
                                   f"{grid} ({'; '.join(stuck)})")

    def coarsenable(shape):
        return all(_can_coarsen(n, k) for n, k in zip(shape, kinds))

    if levels is None:
        while coarsenable(shapes[-1]) and math.prod(shapes[-1]) > AUTO_COARSEST_NODES:
            shapes.append(_coarse(shapes[-1], kinds))
        if math.prod(shapes[-1]) > MAX_COARSEST_NODES:
            raise InvalidArgumentError(
                "grid", f"a grid that coarsens to at most {MAX_COARSEST_NODES} nodes: "
                f"{SIZES_HELP}",
                f"{grid}, whose coarsest grid is {shapes[-1]}")
        return shapes
    for _ in range(levels - 1):
        if not coarsenable(shapes[-1]):
            raise InvalidArgumentError(
                "levels", f"at most {len(shapes)} levels for a grid of shape {shapes[0]} "
                f"(coarsest {shapes[-1]})", levels)
        shapes.append(_coarse(shapes[-1], kinds))
    if math.prod(shapes[-1]) > MAX_COARSEST_NODES:
        raise InvalidArgumentError(
            "levels", f"more levels: the coarsest grid {shapes[-1]} has more than "
            f"{MAX_COARSEST_NODES} nodes", levels)
    return shapes


@dataclass
class Level:
    """One grid of the hierarchy (tensors ``(batch or 1, *shape)``).

    Attributes
    ----------
    shape : tuple of int
    coef : list of torch.Tensor
        Face coefficients over ``h**2`` per axis (see :func:`operators.stencil`).
    diag : torch.Tensor
        Diagonal of the operator.
    free : torch.Tensor
        1 on unknown nodes, 0 on fixed ones (floating point).
    smooth_a, smooth_b : torch.Tensor
        Red-black: ``red * free / diag`` and ``black * free / diag``; Jacobi:
        ``w * free / diag`` (and ``smooth_b`` unused).
    """

    shape: tuple[int, ...]
    coef: list
    diag: torch.Tensor
    free: torch.Tensor
    smooth_a: torch.Tensor
    smooth_b: Optional[torch.Tensor]


class Hierarchy:
    """All levels of one multigrid solve, built once from the coefficient.

    Parameters
    ----------
    a : torch.Tensor, shape (Bc, *shape)
        Node coefficients (``Bc`` is 1 or the number of samples).
    free : torch.Tensor of bool, shape (Bm, *shape)
        Unknown nodes on the finest grid (``Bm`` is 1 or the number of samples).
    spacing : tuple of float
        Finest grid spacing per axis.
    kinds : tuple of {"P", "N", "D"}
    shapes : list of tuple
        From :func:`plan_levels`.
    smoother : {"rbgs", "jacobi"}
    jacobi_weight : float
    singular : bool
        No fixed node: the coarsest solve is bordered with the mean constraint.
    masked : bool
        The problem has a mask: coarse faces account for mask boundaries
        between coarse nodes (see :func:`operators.coarsen_faces`).
    cycle_dtype : torch.dtype, optional
        Precision of the levels (smoothing, transfers, coarsest solve);
        default that of ``a``. The finest-level residual that drives the
        iteration (:meth:`exact_residual`) keeps the dtype of ``a``.
    shift : float or torch.Tensor of shape (B,), optional
        ``s`` in the operator ``s I + A`` (a Helmholtz-type shift, e.g. ``1/c``
        for an implicit diffusion step ``I - c Laplacian`` scaled by ``1/c``),
        added on every level; per sample when a tensor.
    """

    def __init__(self, a: torch.Tensor, free: torch.Tensor, spacing, kinds, shapes, smoother: str,
                 jacobi_weight: float, singular: bool, masked: bool = False,
                 cycle_dtype: Optional[torch.dtype] = None, shift=None):
        if isinstance(shift, torch.Tensor) and shift.numel() > 1:
            shift = shift.reshape(-1, *([1] * len(kinds))).to(a.dtype)
            a = a.expand(shift.shape[0], *a.shape[1:])  # a per-sample operator
            free = free.expand(shift.shape[0], *free.shape[1:])
        self.kinds = tuple(kinds)
        self.ndim = len(self.kinds)
        self.smoother = smoother
        self.singular = singular
        self.nfe = 0
        self.dtype = a.dtype
        dtype, device = cycle_dtype or a.dtype, a.device
        self.cycle_dtype = dtype
        self.exact_weights = ops.boundary_weights(shapes[0], self.kinds, a.dtype, device)
        self._exact = None
        if dtype != a.dtype:
            coef, diag = ops.stencil(ops.face_coefficients(a, self.kinds), spacing, self.kinds)
            self._exact = (coef, diag, free.to(a.dtype))
            a = a.to(dtype)
        self.kernels = cycle_kernels(self.ndim, device)
        self.weights = [ops.boundary_weights(s, self.kinds, dtype, device) for s in shapes]
        faces = ops.face_coefficients(a, self.kinds)
        free_l = free.to(dtype)
        h = tuple(spacing)
        self.levels: list[Level] = []
        for depth, shape in enumerate(shapes):
            if depth > 0:
                faces = ops.coarsen_faces(faces, self.kinds, free_l if masked else None)
                free_l = ops.inject(free_l, self.ndim)
                h = tuple(2 * hd for hd in h)
            coef, diag = ops.stencil(faces, h, self.kinds)
            if shift is not None:
                diag = diag + shift
            inv = free_l / diag
            if smoother == "rbgs":
                red, black = ops.red_black(shape, dtype, device)
                sa, sb = red * inv, black * inv
            else:
                sa, sb = jacobi_weight * inv, None
            self.levels.append(Level(shape, coef, diag, free_l.contiguous(), sa, sb))
        self._factor_coarsest(shapes[-1])

    # ----------------------------------------------------------------- pieces
    @property
    def depth(self) -> int:
        return len(self.levels)

    def residual(self, level: int, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``free * (f - A u)`` on ``level`` (in the cycle dtype)."""
        lv = self.levels[level]
        self.nfe += 1
        return self.kernels.residual(u, f, lv.coef, lv.diag, self.kinds).mul_(lv.free)

    def exact_residual(self, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``free * (f - A u)`` on the finest level in the problem's dtype."""
        if self._exact is None:
            return self.residual(0, u, f)
        coef, diag, free = self._exact
        self.nfe += 1
        return ops.residual(u, f, coef, diag, self.kinds).mul_(free)

    def project_exact(self, u: torch.Tensor) -> torch.Tensor:
        """Remove the weighted mean of a finest-level tensor in place (singular
        problems only; identity otherwise)."""
        if not self.singular:
            return u
        return u.sub_(ops.weighted_mean(u, self.exact_weights))

    def smooth(self, level: int, u: torch.Tensor, f: torch.Tensor, sweeps: int,
               post: bool) -> None:
        """``sweeps`` smoothing sweeps in place (post-smoothing reverses the colours)."""
        if sweeps <= 0:
            return
        lv = self.levels[level]
        if self.smoother == "rbgs":
            first, second = (lv.smooth_b, lv.smooth_a) if post else (lv.smooth_a, lv.smooth_b)
            self.nfe += self.kernels.rbgs(u, f, lv.coef, lv.diag, self.kinds, first, second,
                                          sweeps)
        else:
            self.nfe += self.kernels.jacobi(u, f, lv.coef, lv.diag, self.kinds, lv.smooth_a,
                                            sweeps)

    def restrict(self, level: int, r: torch.Tensor) -> torch.Tensor:
        """Full-weighting restriction from ``level`` to ``level + 1`` (masked)."""
        return self.kernels.restrict(r, self.kinds).mul_(self.levels[level + 1].free)

    def correct(self, level: int, u: torch.Tensor, e_coarse: torch.Tensor) -> None:
        """``u += free * P e_coarse`` in place on ``level``."""
        u.addcmul_(self.kernels.prolong(e_coarse, self.kinds), self.levels[level].free)

    # ---------------------------------------------------------- coarsest solve
    def _factor_coarsest(self, shape) -> None:
        lv = self.levels[-1]
        self._coarse_iterations = 0
        if math.prod(shape) > DENSE_COARSEST_NODES:
            self._coarse_iterations = 3 * max(shape)
            self._coarse_inverse = (lv.free / lv.diag).contiguous()
            return
        mat = ops.dense_operator(lv.coef, lv.diag, self.kinds, lv.free, shape)
        n = mat.shape[-1]
        if self.singular:
            # Bordered system [[A, 1], [w^T, 0]]: A x + mu 1 = r, w^T x = 0.
            border = mat.new_zeros(mat.shape[0], n + 1, n + 1)
            border[:, :n, :n] = mat
            border[:, :n, n] = 1
            border[:, n, :n] = self.weights[-1].reshape(-1)
            mat = border
        self._lu, self._pivots = torch.linalg.lu_factor(mat)
        self._coarse_size = n

    def coarse_solve(self, f: torch.Tensor) -> torch.Tensor:
        """Solve on the coarsest level: ``(B, *shape) -> (B, *shape)`` (``f``
        zero on fixed nodes); exact (dense LU) or by CG, see the module notes."""
        if self._coarse_iterations:
            return self._coarse_cg(f)
        self.nfe += 1
        batch, shape = f.shape[0], f.shape[1:]
        rhs = f.reshape(batch, -1)
        if self.singular:
            rhs = torch.cat([rhs, rhs.new_zeros(batch, 1)], dim=1)
        if self._lu.shape[0] == 1:
            x = torch.linalg.lu_solve(self._lu[0], self._pivots[0], rhs.T).T
        else:
            x = torch.linalg.lu_solve(self._lu, self._pivots, rhs.unsqueeze(-1)).squeeze(-1)
        return x[:, : self._coarse_size].reshape(batch, *shape).contiguous()

    def _coarse_cg(self, f: torch.Tensor) -> torch.Tensor:
        """Fixed number of Jacobi-preconditioned CG iterations from ``x = 0``, in
        the ``W`` inner product where ``A`` and ``D^-1`` are self-adjoint."""
        lv, w = self.levels[-1], self.weights[-1]
        dims = tuple(range(1, f.ndim))
        zero = torch.zeros_like(f)

        def dot(x, y):
            return (x * y * w).sum(dims, keepdim=True)

        def project(x):
            return x.sub_(ops.weighted_mean(x, w)) if self.singular else x

        x = torch.zeros_like(f)
        r = project(f * lv.free)
        z = project(r * self._coarse_inverse)
        p, rz = z.clone(), dot(r, z)
        for _ in range(self._coarse_iterations):
            q = ops.residual(p, zero, lv.coef, lv.diag, self.kinds).mul_(lv.free).neg_()
            pq = dot(p, q)
            alpha = torch.where(pq > 0, rz / pq, torch.zeros_like(pq))
            x.addcmul_(p, alpha)
            r.addcmul_(q, alpha, value=-1.0)
            z = project(r * self._coarse_inverse)
            rz_new = dot(r, z)
            beta = torch.where(rz > 0, rz_new / rz, torch.zeros_like(rz))
            p = torch.addcmul(z, p, beta)
            rz = rz_new
        self.nfe += self._coarse_iterations
        return x
