"""Batched linear solves: the one place every implicit method solves ``A x = b``.

All functions work on a batch of independent systems: right-hand sides of
shape ``(B, D)``, each sample with its own matrix (dense: ``(B, D, D)``) or
its own action ``matvec(x) -> (B, D)`` (matrix-free: every sample's product
in one call). Krylov methods take a preconditioner slot: a callable
``precond(r) -> (B, D)`` approximating ``A^-1 r`` (for example one multigrid
V-cycle, :func:`opflow.solvers.pde.multigrid_preconditioner`).

* :func:`dense_solve`: LU with partial pivoting (``torch.linalg.solve``);
  a singular or non-finite matrix gives NaN for that sample, not an error
  for the batch.
* :func:`cg`: conjugate gradients for symmetric positive definite operators.
* :func:`gmres`: restarted GMRES (right preconditioning) for any operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import InvalidArgumentError, ShapeError

__all__ = ["DenseLU", "KrylovInfo", "MatVec", "cg", "dense_solve", "gmres"]

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class KrylovInfo:
    """Outcome of a Krylov solve.

    Attributes
    ----------
    iterations : int
        Operator applications (the most any sample needed).
    converged : torch.Tensor, bool, shape (B,)
        Whether each sample reached the tolerance.
    residual : torch.Tensor, shape (B,)
        Final residual norm of each sample, ``||b - A x||_2``.
    """

    iterations: int
    converged: torch.Tensor
    residual: torch.Tensor


def _check_rhs(b: torch.Tensor) -> None:
    if not isinstance(b, torch.Tensor) or b.ndim != 2:
        raise ShapeError("b", "a tensor of shape (B, D)", b)


class DenseLU:
    """LU factors of a batch of matrices ``A (B, D, D)``, for several right-hand sides.

    A singular or non-finite ``A[i]`` is replaced by the identity for the
    factorisation and flagged in ``ok``; :meth:`solve` returns NaN for it.
    """

    def __init__(self, A: torch.Tensor):
        if not isinstance(A, torch.Tensor) or A.ndim != 3 or A.shape[1] != A.shape[2]:
            raise ShapeError("A", "a tensor of shape (B, D, D)", A)
        finite = torch.isfinite(A.detach()).flatten(1).all(1)
        eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device).expand_as(A)
        self.lu, self.pivots, info = torch.linalg.lu_factor_ex(
            torch.where(finite[:, None, None], A, eye))
        self.ok = finite & (info == 0)
        self.shape = tuple(A.shape)

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``A^-1 b`` per sample: ``(B, D) -> (B, D)``; NaN rows for singular ``A[i]``."""
        _check_rhs(b)
        if tuple(b.shape) != self.shape[:2]:
            raise ShapeError("b", f"a tensor of shape {self.shape[:2]}", b)
        x = torch.linalg.lu_solve(self.lu, self.pivots, b[..., None])[..., 0]
        good = self.ok[:, None] & torch.isfinite(x.detach()).all(1, keepdim=True)
        return torch.where(good, x, torch.full_like(x, float("nan")))


def dense_solve(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``A[i] x[i] = b[i]`` for every sample.

    Parameters
    ----------
    A : torch.Tensor, shape (B, D, D)
    b : torch.Tensor, shape (B, D)

    Returns
    -------
    torch.Tensor, shape (B, D)
        NaN rows where ``A[i]`` is singular or not finite (the other samples
        are solved as usual).
    """
    _check_rhs(b)
    if A.ndim != 3 or A.shape[0] != b.shape[0] or A.shape[1] != A.shape[2] or \
            A.shape[2] != b.shape[1]:
        raise ShapeError("A", f"a tensor of shape ({b.shape[0]}, {b.shape[1]}, {b.shape[1]})", A)
    return DenseLU(A).solve(b)


def _check_krylov(tol: float, maxiter: int) -> None:
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InvalidArgumentError("tol", "a relative tolerance in (0, 1)", tol)
    if isinstance(maxiter, bool) or not isinstance(maxiter, int) or maxiter < 1:
        raise InvalidArgumentError("maxiter", "a positive integer", maxiter)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def cg(matvec: MatVec, b: torch.Tensor, x0: Optional[torch.Tensor] = None, *,
       precond: Optional[MatVec] = None, tol: float = 1e-8, atol: float = 0.0,
       maxiter: int = 1000) -> tuple[torch.Tensor, KrylovInfo]:
    """Preconditioned conjugate gradients for SPD operators, batched.

    Parameters
    ----------
    matvec : callable ``(B, D) -> (B, D)``
        The action of a symmetric positive definite ``A`` (per sample).
    b : torch.Tensor, shape (B, D)
    x0 : torch.Tensor, shape (B, D), optional
        Initial guess (default 0).
    precond : callable, optional
        SPD approximation of ``A^-1``.
    tol, atol : float
        A sample stops when ``||r|| <= max(tol ||b||, atol)``.
    maxiter : int

    Returns
    -------
    x : torch.Tensor, shape (B, D)
    info : KrylovInfo
    """
    _check_rhs(b)
    _check_krylov(tol, maxiter)
    M = precond or (lambda r: r)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    target = torch.clamp(tol * b.norm(dim=1), min=atol)
    z = M(r)
    p = z.clone()
    rz = _dot(r, z)
    done = r.norm(dim=1) <= target
    it = 0
    while it < maxiter and not bool(done.all()):
        Ap = matvec(p)
        pAp = _dot(p, Ap)
        alpha = torch.where(done | (pAp <= 0), torch.zeros_like(rz), rz / pAp)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * Ap
        done = done | (r.norm(dim=1) <= target) | (pAp <= 0)
        z = M(r)
        rz_new = _dot(r, z)
        beta = torch.where(done, torch.zeros_like(rz), rz_new / torch.where(rz == 0, 1, rz))
        p = z + beta[:, None] * p
        rz = rz_new
        it += 1
    res = (b - matvec(x)).norm(dim=1)
    return x, KrylovInfo(it + 1, res <= target * (1 + 1e-6), res)


def gmres(matvec: MatVec, b: torch.Tensor, x0: Optional[torch.Tensor] = None, *,
          precond: Optional[MatVec] = None, tol: float = 1e-8, atol: float = 0.0,
          restart: int = 30, maxiter: int = 300) -> tuple[torch.Tensor, KrylovInfo]:
    """Restarted GMRES with right preconditioning, batched.

    Each sample builds its own Krylov basis (all samples advance together);
    the small least-squares problem of every cycle is solved batched.

    Parameters
    ----------
    matvec : callable ``(B, D) -> (B, D)``
    b : torch.Tensor, shape (B, D)
    x0 : torch.Tensor, shape (B, D), optional
    precond : callable, optional
        Approximation of ``A^-1``; GMRES solves ``A M^-1 y = b``, ``x = M^-1 y``,
        so the residual it measures is the true one.
    tol, atol : float
        A sample is converged when ``||b - A x|| <= max(tol ||b||, atol)``.
    restart : int
        Krylov vectors per cycle.
    maxiter : int
        Most operator applications in all.

    Returns
    -------
    x : torch.Tensor, shape (B, D)
    info : KrylovInfo
    """
    _check_rhs(b)
    _check_krylov(tol, maxiter)
    if isinstance(restart, bool) or not isinstance(restart, int) or restart < 1:
        raise InvalidArgumentError("restart", "a positive integer", restart)
    M = precond or (lambda r: r)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    target = torch.clamp(tol * b.norm(dim=1), min=atol)
    used = 0
    r = b - matvec(x) if (x0 is not None) else b.clone()
    beta = r.norm(dim=1)
    while used < maxiter and not bool((beta <= target).all()):
        m = min(restart, maxiter - used)
        x, used_now = _gmres_cycle(matvec, M, x, r, beta, m, target)
        used += used_now
        r = b - matvec(x)
        beta = r.norm(dim=1)
    return x, KrylovInfo(used + 1, beta <= target * (1 + 1e-6), beta)


def _gmres_cycle(matvec: MatVec, M: MatVec, x: torch.Tensor, r: torch.Tensor,
                 beta: torch.Tensor, m: int, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """At most ``m`` Arnoldi steps from residual ``r``; the updated ``x`` and the steps taken.

    Givens rotations keep the least-squares residual of every sample known
    after each step, so the cycle stops as soon as all samples meet
    ``target``; a sample that is done (or whose Krylov space is exhausted)
    keeps only the basis vectors it had then, so later steps of the others
    cannot spoil its solution with vectors built from rounding noise.
    """
    B, D = r.shape
    dtype, device = r.dtype, r.device
    V = torch.zeros(B, m + 1, D, dtype=dtype, device=device)
    R = torch.zeros(B, m, m, dtype=dtype, device=device)  # rotated Hessenberg: upper triangular
    cs = torch.zeros(B, m, dtype=dtype, device=device)
    sn = torch.zeros(B, m, dtype=dtype, device=device)
    g = torch.zeros(B, m + 1, dtype=dtype, device=device)
    g[:, 0] = beta
    safe_beta = torch.where(beta > 0, beta, torch.ones_like(beta))
    V[:, 0] = r / safe_beta[:, None]
    used = torch.where(beta <= target, 0, m)  # basis size each sample keeps
    steps = 0
    for k in range(m):
        steps = k + 1
        w = matvec(M(V[:, k]))
        h = torch.zeros(B, k + 2, dtype=dtype, device=device)
        for j in range(k + 1):  # modified Gram-Schmidt
            h[:, j] = _dot(w, V[:, j])
            w = w - h[:, j, None] * V[:, j]
        hn = w.norm(dim=1)
        h[:, k + 1] = hn
        V[:, k + 1] = w / torch.where(hn > 0, hn, torch.ones_like(hn))[:, None]
        for j in range(k):  # earlier rotations on the new column
            hj, hj1 = h[:, j].clone(), h[:, j + 1].clone()
            h[:, j] = cs[:, j] * hj + sn[:, j] * hj1
            h[:, j + 1] = -sn[:, j] * hj + cs[:, j] * hj1
        rho = torch.hypot(h[:, k], h[:, k + 1])
        safe_rho = torch.where(rho > 0, rho, torch.ones_like(rho))
        cs[:, k] = torch.where(rho > 0, h[:, k] / safe_rho, torch.ones_like(rho))
        sn[:, k] = torch.where(rho > 0, h[:, k + 1] / safe_rho, torch.zeros_like(rho))
        R[:, :k, k] = h[:, :k]
        R[:, k, k] = rho
        g[:, k + 1] = -sn[:, k] * g[:, k]
        g[:, k] = cs[:, k] * g[:, k]
        finished = (g[:, k + 1].abs() <= target) | (hn <= 1e-14 * safe_beta) | (rho == 0)
        used = torch.where((used == m) & finished, k + 1 - (rho == 0).long(), used)
        if bool((used < m).all()):
            break
    n = steps
    keep = torch.arange(n, device=device)[None, :] < used[:, None]  # (B, n)
    eye = torch.eye(n, dtype=dtype, device=device).expand(B, n, n)
    mask2 = keep[:, None, :] & keep[:, :, None]
    Rn = torch.where(mask2, R[:, :n, :n], eye)
    gn = torch.where(keep, g[:, :n], torch.zeros_like(g[:, :n]))
    y = torch.linalg.solve_triangular(Rn, gn[..., None], upper=True)[..., 0]
    update = M(torch.einsum("bk,bkd->bd", y, V[:, :n]))
    done = beta <= target
    return torch.where(done[:, None], x, x + update), n
