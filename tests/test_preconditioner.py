"""Multigrid as a preconditioner of implicit diffusion steps, and Jacobian-free Newton-Krylov."""

import pytest
import torch

from opflow import Field, Grid
from opflow.errors import InvalidArgumentError
from opflow.solve import solve
from opflow.solvers.linear import gmres
from opflow.solvers.nonlinear import NewtonKrylov, NonlinearProblem
from opflow.solvers.pde import multigrid_preconditioner

F64 = torch.float64
N = 32


def _periodic_step(c: torch.Tensor, channels: int = 2):
    """``x -> x - c Laplacian x`` on a periodic N^2 grid, flat ``(B, channels N^2)``."""
    grid = Grid.uniform(x=(0.0, 1.0, N), y=(0.0, 1.0, N), periodic=("x", "y"))
    h = grid.spacing[0]

    def matvec(x):
        v = x.reshape(c.shape[0], channels, N, N)
        lap = (v.roll(1, -1) + v.roll(-1, -1) + v.roll(1, -2) + v.roll(-1, -2) - 4 * v) / h**2
        return (v - c.reshape(-1, 1, 1, 1) * lap).reshape(c.shape[0], -1)

    return grid, matvec


def _precond(pre, c, channels=2):
    return lambda r: pre(r.reshape(c.shape[0], channels, N, N)).reshape(c.shape[0], -1)


def test_implicit_step_preconditioner_works_at_every_step_size():
    """(I - c Lap)^-1 by multigrid: a few GMRES iterations from tiny to large c, per sample;
    the Laplacian alone is a poor preconditioner when c is small against h^2."""
    c = torch.tensor([1e-6, 1e-1], dtype=F64)
    grid, matvec = _periodic_step(c)
    b = torch.randn(2, 2 * N * N, dtype=F64, generator=torch.Generator().manual_seed(0))
    x, info = gmres(matvec, b, precond=_precond(multigrid_preconditioner(grid, c, bc="periodic"),
                                                c), tol=1e-10)
    assert bool(info.converged.all()) and info.iterations <= 12
    torch.testing.assert_close(matvec(x), b, rtol=0, atol=1e-8 * float(b.norm()))
    _, laplacian_only = gmres(matvec, b, tol=1e-10, maxiter=400, precond=_precond(
        multigrid_preconditioner(grid, c, bc="periodic", identity=False), c))
    assert laplacian_only.iterations > 3 * info.iterations


def test_laplacian_only_preconditioner_passes_the_mean_through():
    """On a periodic grid (-c Lap) is singular: a constant comes back unchanged, as
    (I - c Lap)^-1 returns it."""
    grid = Grid.uniform(x=(0.0, 1.0, N), y=(0.0, 1.0, N), periodic=("x", "y"))
    pre = multigrid_preconditioner(grid, 0.5, bc="periodic", identity=False)
    const = Field(torch.full((1, 1, N, N), 3.0, dtype=F64), grid)
    torch.testing.assert_close(pre(const).values, const.values, rtol=1e-12, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="identity"):
        multigrid_preconditioner(grid, 0.5, bc="periodic", identity="yes")


def _bratu(n=64):
    h = 1.0 / (n + 1)

    def f(u):
        lap = (torch.nn.functional.pad(u, (1, 1)).unfold(-1, 3, 1)
               * torch.tensor([1.0, -2.0, 1.0], dtype=u.dtype)).sum(-1) / h**2
        return -lap + u ** 3 - 10.0

    return f


def test_difference_products_match_forward_mode():
    """Jacobian-free Newton-Krylov reaches the same root as exact products."""
    f = _bratu()
    u0 = torch.zeros(2, 64, dtype=F64)
    exact = solve(NonlinearProblem(f, u0, batched=True), NewtonKrylov(linear_rtol=1e-8))
    free = solve(NonlinearProblem(f, u0, batched=True),
                 NewtonKrylov(linear_rtol=1e-8, jvp="difference"))
    assert exact.success and free.success
    torch.testing.assert_close(free.u, exact.u, rtol=1e-8, atol=1e-10)
    with pytest.raises(InvalidArgumentError, match="jvp"):
        NewtonKrylov(jvp="fd")


def test_brusselator_example_matches_dense_stages():
    """examples/brusselator_imex.py at 16^2: matrix-free multigrid-preconditioned stages give
    the dense-stage solution (the composition of KenCarp4, NewtonKrylov and Multigrid)."""
    import importlib.util
    from pathlib import Path

    from opflow.solvers.ode import KenCarp4

    path = Path(__file__).parents[1] / "examples" / "brusselator_imex.py"
    spec = importlib.util.spec_from_file_location("brusselator_imex", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    free = example.main(16, rtol=1e-7)
    prob, _ = example.brusselator(16)
    with torch.no_grad():
        dense = solve(prob, KenCarp4(rtol=1e-7, atol=1e-7), saveat=[0.0, 0.5, 1.0])
    assert free.success and dense.success
    torch.testing.assert_close(free.u.values, dense.u.values, rtol=0, atol=1e-5)
