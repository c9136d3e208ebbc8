"""The one Solution contract: trajectory, steady and function solutions."""

import math

import pytest
import torch

from opflow import (
    BurgersProblem,
    Field,
    Grid,
    Multigrid,
    ODEProblem,
    PoissonProblem,
    PseudoSpectral,
    Tsit5,
    solve,
)
from opflow.errors import InvalidArgumentError, SolverError
from opflow.solvers.pinn import PINN, Dirichlet, Interval, PINNProblem, laplacian


def _ode_solution(dense: bool):
    return solve(ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64), (0.0, 1.0)),
                 Tsit5(rtol=1e-8, atol=1e-10), dense=dense)


def test_trajectory_interpolates_with_dense_output():
    sol = _ode_solution(dense=True)
    assert sol.kind == "trajectory" and sol.t.shape == (2,)
    torch.testing.assert_close(sol(0.5), torch.full((2,), math.exp(-0.5), dtype=torch.float64),
                               rtol=1e-6, atol=0)
    assert sol(torch.tensor([0.25, 0.75])).shape == (2, 2)
    with pytest.raises(InvalidArgumentError, match="`t`"):
        sol(1.5)


def test_trajectory_without_dense_output_says_how_to_get_it():
    with pytest.raises(SolverError, match=r"dense=True"):
        _ode_solution(dense=False)(0.5)
    grid = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))
    (x,) = grid.mesh()
    sol = solve(BurgersProblem(Field(torch.sin(2 * math.pi * x)[None], grid), 0.1),
                PseudoSpectral(dt=0.01))
    assert sol.kind == "trajectory"
    with pytest.raises(SolverError, match=r"no dense output.*saveat") as info:
        sol(0.5)
    assert "dense=True" not in str(info.value)  # PseudoSpectral refuses dense=


def test_steady_solution_has_no_time():
    grid = Grid.uniform(x=(0.0, 1.0, 17), y=(0.0, 1.0, 17))
    sol = solve(PoissonProblem(Field(torch.ones(1, 17, 17), grid)), Multigrid())
    assert sol.kind == "steady" and sol.t.numel() == 0 and isinstance(sol.u, Field)
    with pytest.raises(SolverError, match=r"steady.*sol\.u") as info:
        sol(0.5)
    assert "dense" not in str(info.value)  # Multigrid refuses dense=
    assert "u" in sol.to_xarray()


def test_function_solution_is_called_on_points_or_a_grid():
    prob = PINNProblem(lambda x, u: -laplacian(u, x) - 1.0, Interval(0.0, 1.0), [Dirichlet(0.0)])
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    sol = solve(prob, PINN(net, n_interior=16, n_boundary=2, iterations=3, seed=0))
    assert sol.kind == "function" and sol.t.numel() == 0
    grid = Grid.uniform(x=(0.0, 1.0, 5))
    torch.testing.assert_close(sol(grid).values, sol.u(grid).values)
    pts = torch.linspace(0, 1, 3)[:, None]
    torch.testing.assert_close(sol(pts), sol.u(pts))
    with pytest.raises(SolverError, match=r"sol\.u\(grid\)\.to_xarray"):
        sol.to_xarray()


def test_solving_leaves_the_algorithm_and_its_network_unchanged():
    prob = PINNProblem(lambda x, u: -laplacian(u, x) - 1.0, Interval(0.0, 1.0), [Dirichlet(0.0)])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    alg = PINN(net, n_interior=16, n_boundary=2, iterations=20, lr=1e-2, seed=0)
    first, second = solve(prob, alg), solve(prob, alg)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # the passed network is the initial one
    assert first.alg is alg and first.u.net is not net
    trained = dict(first.u.net.state_dict())
    assert any(not torch.equal(trained[k], before[k]) for k in before)
    for k, v in second.u.net.state_dict().items():  # same start, same result
        assert torch.equal(v, trained[k]), k
