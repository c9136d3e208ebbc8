"""Batched linear solves: dense LU, CG and GMRES against torch's dense solver."""

import pytest
import torch

from opflow.errors import InvalidArgumentError, ShapeError
from opflow.solvers.linear import cg, dense_solve, gmres

F64 = torch.float64


def _spd(B, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(B, D, D, generator=g, dtype=F64)
    return Q @ Q.transpose(1, 2) + D * torch.eye(D, dtype=F64)


def _matvec(A):
    return lambda x: torch.einsum("bij,bj->bi", A, x)


def test_dense_solve_matches_torch_and_isolates_singular_samples():
    A = _spd(4, 6)
    A[2] = 0.0  # singular
    A[3, 0, 0] = float("nan")
    b = torch.randn(4, 6, dtype=F64)
    x = dense_solve(A, b)
    want = torch.linalg.solve(A[:2], b[:2])
    torch.testing.assert_close(x[:2], want, rtol=1e-12, atol=1e-12)
    assert torch.isnan(x[2:]).all()
    with pytest.raises(ShapeError, match="A"):
        dense_solve(A[:, :5], b)


def test_cg_solves_spd_systems_per_sample():
    A = _spd(3, 20)
    b = torch.randn(3, 20, dtype=F64)
    x, info = cg(_matvec(A), b, tol=1e-12, maxiter=200)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)
    assert bool(info.converged.all()) and info.iterations <= 41
    # a Jacobi preconditioner changes nothing in the answer
    diag = torch.diagonal(A, dim1=1, dim2=2)
    xp, _ = cg(_matvec(A), b, precond=lambda r: r / diag, tol=1e-12)
    torch.testing.assert_close(xp, x, rtol=1e-9, atol=1e-10)


def test_gmres_nonsymmetric_with_restarts_and_a_preconditioner():
    g = torch.Generator().manual_seed(1)
    D = 40
    A = torch.eye(D, dtype=F64) * 4 + 0.5 * torch.randn(2, D, D, generator=g, dtype=F64) / D**0.5
    b = torch.randn(2, D, dtype=F64, generator=g)
    want = torch.linalg.solve(A, b)
    x, info = gmres(_matvec(A), b, tol=1e-11, restart=10, maxiter=400)
    torch.testing.assert_close(x, want, rtol=1e-8, atol=1e-9)
    assert bool(info.converged.all())
    # the exact inverse as preconditioner: one Krylov vector suffices
    inv = torch.linalg.inv(A)
    xp, infop = gmres(_matvec(A), b, precond=_matvec(inv), tol=1e-11)
    torch.testing.assert_close(xp, want, rtol=1e-8, atol=1e-9)
    assert infop.iterations < info.iterations and infop.iterations <= 3


def test_krylov_bad_input():
    b = torch.ones(1, 3)
    with pytest.raises(InvalidArgumentError, match="tol"):
        cg(lambda x: x, b, tol=0.0)
    with pytest.raises(InvalidArgumentError, match="restart"):
        gmres(lambda x: x, b, restart=0)
    with pytest.raises(ShapeError, match="b"):
        gmres(lambda x: x, torch.ones(3))


def test_gmres_stops_each_sample_when_it_converges():
    """A batch mixing an easy and a hard system: each gets its own answer.

    GMRES checks every sample's residual after each Arnoldi step, so the easy
    one stops building its basis early and the hard one's later steps do not
    touch it; a cluster of 3 eigenvalues needs 3 steps, not a whole cycle.
    """
    D = 30
    g = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64))
    easy = Q @ torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=F64).repeat(10)) @ Q.T
    hard = torch.eye(D, dtype=F64) * 3 + torch.randn(D, D, generator=g, dtype=F64) / D**0.5
    A = torch.stack([easy, hard])
    b = torch.randn(2, D, dtype=F64, generator=g)
    x, info = gmres(_matvec(A), b, tol=1e-12, restart=D)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-9, atol=1e-10)
    assert bool(info.converged.all())
    only_easy, info_easy = gmres(_matvec(A[:1]), b[:1], tol=1e-12, restart=D)
    assert info_easy.iterations <= 4  # three Arnoldi steps plus the final residual
    torch.testing.assert_close(only_easy, x[:1], rtol=1e-10, atol=1e-12)
