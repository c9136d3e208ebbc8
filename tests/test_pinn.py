"""Tests of the physics-informed solvers (opflow.solvers.pinn)."""

from __future__ import annotations

import math

import pytest
import torch

from opflow import Grid, solve
from opflow.errors import InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.solution import ReturnCode
from opflow.solvers.pinn import (
    LPINN,
    PINN,
    Box,
    ConvectionProblem,
    Coordinates,
    Dirichlet,
    Disk,
    Initial,
    Interval,
    Neumann,
    Periodic,
    PINNFunction,
    PINNProblem,
    Rectangle,
    TimeSpace,
    d,
    gradient,
    hard_dirichlet,
    laplacian,
    latin_hypercube,
    sample_unit,
    sobol,
    uniform,
)


def mlp(dim_in: int, width: int = 20, depth: int = 2, dim_out: int = 1) -> torch.nn.Module:
    layers, n = [], dim_in
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width), torch.nn.Tanh()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, dim_out))


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------ derivatives
def points(n: int, names=("x", "y"), seed: int = 0) -> Coordinates:
    g = torch.Generator().manual_seed(seed)
    return Coordinates(torch.rand(n, len(names), generator=g, dtype=torch.float64)
                       .requires_grad_(True), names)


def test_d_matches_analytic_derivatives():
    x = points(50)
    u = torch.sin(x["x"]) * x["y"] ** 3
    assert torch.allclose(d(u, x, "x"), torch.cos(x["x"]) * x["y"] ** 3)
    assert torch.allclose(d(u, x, "x", 2), -torch.sin(x["x"]) * x["y"] ** 3)
    assert torch.allclose(d(u, x, "y", 3), 6 * torch.sin(x["x"]))
    assert torch.allclose(d(u, x, 1, 2), 6 * torch.sin(x["x"]) * x["y"])
    assert torch.allclose(d(u[:, 0], x, "x"), (torch.cos(x["x"]) * x["y"] ** 3)[:, 0])
    g = gradient(u, x)
    assert g.shape == (50, 2)
    assert torch.allclose(g[:, 1:], 3 * torch.sin(x["x"]) * x["y"] ** 2)


def test_laplacian_and_time_axis_excluded():
    x = points(40, ("t", "x", "y"))
    u = x["t"] ** 2 * (x["x"] ** 2 + torch.exp(x["y"]))
    lap = laplacian(u, x)
    assert torch.allclose(lap, x["t"] ** 2 * (2 + torch.exp(x["y"])))
    assert torch.allclose(laplacian(u, x, axes=["t"]), 2 * (x["x"] ** 2 + torch.exp(x["y"])))


def test_derivatives_stay_differentiable_and_handle_constants():
    x = points(10)
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    u = torch.sin(w * x["x"])
    loss = d(u, x, "x", 2).sum()
    loss.backward()  # d/dw of -w^2 sin(w x) summed
    xx = x["x"].detach()
    expected = (-2 * w * torch.sin(w * xx) - w ** 2 * xx * torch.cos(w * xx)).sum()
    assert torch.allclose(w.grad, expected.detach())
    assert torch.equal(d(x["y"] * 0 + 1.0, x, "x"), torch.zeros(10, 1, dtype=torch.float64))


def test_derivative_bad_inputs():
    x = points(8)
    u = x["x"] ** 2
    with pytest.raises(UnknownVariableError, match="axis"):
        d(u, x, "z")
    with pytest.raises(InvalidArgumentError, match="order"):
        d(u, x, "x", 0)
    with pytest.raises(ShapeError, match="`u`"):
        d(torch.cat([u, u], dim=1), x, "x")
    with pytest.raises(ShapeError, match="`values`"):
        Coordinates(torch.zeros(3, 2), ("x",))


# ------------------------------------------------------------------- sampling
@pytest.mark.parametrize("method", ["uniform", "latin_hypercube", "sobol"])
def test_samplers_shape_range_reproducible(method):
    a = sample_unit(100, 3, method, seed=5)
    assert a.shape == (100, 3) and a.dtype == torch.get_default_dtype()
    assert float(a.min()) >= 0 and float(a.max()) < 1
    assert torch.equal(a, sample_unit(100, 3, method, seed=5))
    assert not torch.equal(a, sample_unit(100, 3, method, seed=6))
    assert sample_unit(0, 2, method).shape == (0, 2)


def test_latin_hypercube_is_stratified():
    s = latin_hypercube(64, 2, seed=1)
    for j in range(2):
        assert torch.equal(torch.sort((s[:, j] * 64).floor().long()).values, torch.arange(64))


def test_sobol_has_lower_discrepancy_than_uniform():
    qmc = pytest.importorskip("scipy.stats.qmc")
    for seed in range(3):
        disc_sobol = qmc.discrepancy(sobol(256, 2, seed=seed).double().numpy())
        disc_unif = qmc.discrepancy(uniform(256, 2, seed=seed).double().numpy())
        assert disc_sobol < 0.5 * disc_unif


def test_sampler_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="`method`"):
        sample_unit(10, 2, "halton")
    with pytest.raises(InvalidArgumentError, match="`n`"):
        sample_unit(-1, 2, "sobol")
    with pytest.raises(InvalidArgumentError, match="`n`"):
        Interval(0, 1).sample_interior(2.5)


# -------------------------------------------------------------------- domains
def test_box_samples_inside_and_boundary_on_faces():
    box = Rectangle({"x": (0.0, 1.0), "y": (-1.0, 3.0)})
    assert box.names == ("x", "y") and Box is Rectangle
    inside = box.sample_interior(200, "lhs", seed=2)
    assert bool(box.contains(inside).all())
    b = box.sample_boundary(100, "sobol", seed=3)
    on_face = ((b[:, 0] == 0) | (b[:, 0] == 1) | (b[:, 1] == -1) | (b[:, 1] == 3))
    assert bool(on_face.all()) and bool(box.contains(b).all())
    # faces x = 0, 1 have length 4, faces y = -1, 3 length 1: 40 / 40 / 10 / 10 points
    assert int((b[:, 0] == 0).sum()) == 40 and int((b[:, 1] == 3).sum()) == 10
    n = box.normals(b)
    assert torch.allclose(n.norm(dim=1), torch.ones(100))
    assert bool((n[b[:, 0] == 1] == torch.tensor([1.0, 0.0])).all())
    with pytest.raises(InvalidArgumentError, match="bounds"):
        Box({"x": (1.0, 0.0)})


def test_interval_disk_timespace():
    iv = Interval(-2.0, 3.0, name="x")
    b = iv.sample_boundary(5)
    assert b.flatten().tolist() == [-2.0, 3.0, -2.0, 3.0, -2.0]
    assert iv.normals(b).flatten().tolist() == [-1.0, 1.0, -1.0, 1.0, -1.0]
    disk = Disk((1.0, 2.0), 0.5)
    p = disk.sample_interior(500, seed=1)
    assert bool(disk.contains(p).all())
    q = disk.sample_boundary(50, "sobol")
    assert torch.allclose((q - torch.tensor([1.0, 2.0])).norm(dim=1), torch.full((50,), 0.5))
    assert torch.allclose(disk.normals(q), (q - torch.tensor([1.0, 2.0])) / 0.5, atol=1e-6)
    ts = TimeSpace((0.0, 2.0), Disk())
    assert ts.names == ("t", "x", "y") and ts.box["t"] == (0.0, 2.0)
    init = ts.sample_initial(30)
    assert bool((init[:, 0] == 0).all()) and bool(ts.contains(init).all())
    lat = ts.sample_boundary(30, "lhs")
    assert torch.allclose(lat[:, 1:].norm(dim=1), torch.ones(30))
    assert bool(ts.contains(ts.sample_interior(100, "sobol")).all())
    with pytest.raises(InvalidArgumentError, match="tspan"):
        TimeSpace((1.0, 0.0), Interval(0, 1))
    with pytest.raises(InvalidArgumentError, match="radius"):
        Disk(radius=-1.0)


# ----------------------------------------------------------------- conditions
def exact_model(fn):
    return lambda x: fn(x).reshape(len(x), 1)


def test_condition_losses_vanish_for_exact_solutions():
    iv = Interval(0.0, 1.0)
    x = Coordinates(iv.sample_boundary(4), iv.names)
    sq = exact_model(lambda x: x["x"] ** 2)
    assert float(Dirichlet(lambda x: x["x"] ** 2).loss(sq, x, iv)) == 0.0
    assert float(Dirichlet(0.0).loss(sq, x, iv)) > 0
    # du/dn of x^2: 0 at x = 0 (n = -1), 2 at x = 1 (n = +1)
    assert Neumann(lambda x: 2 * x["x"]).loss(sq, x, iv).item() < 1e-12
    ts = TimeSpace((0.0, 1.0), Interval(0.0, 2 * math.pi))
    wave = exact_model(lambda x: torch.sin(x["x"] - x["t"]))
    pts = Coordinates(Periodic("x").sample(ts, 32), ts.names)
    assert Periodic("x", derivatives=2).loss(wave, pts, ts).item() < 1e-10
    assert float(Periodic("x").loss(exact_model(lambda x: x["x"]), pts, ts)) > 1
    init = Coordinates(Initial().sample(ts, 16), ts.names)
    assert float(Initial(lambda x: torch.sin(x["x"])).loss(wave, init, ts)) < 1e-12
    assert Initial(lambda x: -torch.cos(x["x"]), derivative=1).loss(wave, init, ts).item() < 1e-10
    with pytest.raises(InvalidArgumentError, match="domain"):
        Initial(0.0).sample(iv, 4)
    with pytest.raises(InvalidArgumentError, match="weight"):
        Dirichlet(0.0, weight=-1.0)


# ------------------------------------------------------------------- solving
def poisson_problem(**kw) -> PINNProblem:
    def residual(x, u):
        return -d(u, x, "x", 2) - math.pi ** 2 * torch.sin(math.pi * x["x"])

    return PINNProblem(residual, Interval(0.0, 1.0), **kw)


def poisson_error(sol) -> float:
    grid = Grid.uniform(x=(0.0, 1.0, 201))
    f = sol.u(grid)
    exact = torch.sin(math.pi * torch.tensor(grid.coords["x"], dtype=torch.float32))
    return rel_l2(f.values[0], exact)


def test_poisson_1d_soft_dirichlet():
    prob = poisson_problem(conditions=[Dirichlet(0.0, weight=10.0)])
    alg = PINN(mlp(1), n_interior=128, n_boundary=2, lr=1e-2, iterations=300,
               lbfgs_iterations=150, seed=0)
    sol = solve(prob, alg)
    assert sol.retcode == ReturnCode.Success and sol.t.numel() == 0
    assert isinstance(sol.u, PINNFunction) and sol.interpolant is sol.u
    err = poisson_error(sol)
    assert err < 1e-2, err
    assert sol.stats.iterations >= 300 and sol.stats.wall_time > 0
    assert set(sol.u.losses) == {"residual", "dirichlet"}
    assert len(sol.u.history["total"]) >= 300
    f = sol.u(Grid.uniform(x=(0.0, 1.0, 11)))
    assert f.names == ("u",) and "loss_residual" in f.attrs
    pts = torch.linspace(0, 1, 5)[:, None]
    assert sol.u(pts).shape == (5, 1)


def test_poisson_1d_hard_constraint():
    transform = hard_dirichlet(lambda x: x["x"] * (1 - x["x"]))
    prob = poisson_problem(transform=transform)
    sol = solve(prob, PINN(mlp(1), n_interior=64, optimizer="lbfgs", iterations=150))
    assert poisson_error(sol) < 1e-2
    f = sol.u(Grid.uniform(x=(0.0, 1.0, 5)))
    assert float(f.values[0, 0]) == 0.0 and float(f.values[0, -1]) == 0.0


def test_convection_beta1_periodic():
    beta = 1.0
    domain = TimeSpace((0.0, 1.0), Interval(0.0, 2 * math.pi))
    prob = PINNProblem(lambda x, u: d(u, x, "t") + beta * d(u, x, "x"), domain,
                       [Initial(lambda x: torch.sin(x["x"]), weight=10.0), Periodic("x")])
    alg = PINN(mlp(2, 32, 3), n_interior=500, n_boundary=100, lr=3e-3, iterations=300,
               lbfgs_iterations=200, seed=0)
    sol = solve(prob, alg)
    grid = Grid.uniform(x=(0.0, 2 * math.pi, 64), t=(0.0, 1.0, 21), periodic=("x",))
    f = sol.u(grid)  # grid axes in another order than the domain's
    x, t = grid.mesh()
    err = rel_l2(f.values[0], torch.sin(x - beta * t))
    assert err < 5e-2, err
    assert set(sol.u.losses) == {"residual", "initial", "periodic"}


def test_lra_weights_adapt_and_progress_bar(capsys):
    prob = poisson_problem(conditions=[Dirichlet(0.0, name="bc")])
    alg = PINN(mlp(1, 8, 1), n_interior=16, n_boundary=2, iterations=12, adaptive="lra",
               lra_every=5, progress="always", weights={"residual": 2.0})
    sol = solve(prob, alg)
    assert sol.u.weights["residual"] == 2.0 and sol.u.weights["bc"] != 1.0
    assert "bc=" in capsys.readouterr().err


def test_pinn_bad_inputs_name_the_argument():
    net = mlp(1, 4, 1)
    for kw, arg in [({"n_interior": -5}, "n_interior"), ({"n_boundary": -1}, "n_boundary"),
                    ({"sampler": "halton"}, "sampler"), ({"optimizer": "sgd"}, "optimizer"),
                    ({"adaptive": "ntk"}, "adaptive"), ({"lr": 0.0}, "lr")]:
        with pytest.raises(InvalidArgumentError, match=f"`{arg}`"):
            PINN(net, **kw)
    with pytest.raises(InvalidArgumentError, match="`net`"):
        PINN("not a net")
    bad = PINNProblem(lambda x, u: u[:3], Interval(0.0, 1.0))
    with pytest.raises(ShapeError, match="`residual`"):
        solve(bad, PINN(net, n_interior=8, iterations=1))
    with pytest.raises(InvalidArgumentError, match="`weights`"):
        solve(poisson_problem(), PINN(net, n_interior=8, iterations=1, weights={"bcs": 1.0}))
    with pytest.raises(InvalidArgumentError, match="`residual`"):
        PINNProblem("nope", Interval(0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="`conditions`"):
        PINNProblem(lambda x, u: u, Interval(0.0, 1.0), conditions=[0.0])
    with pytest.raises(InvalidArgumentError, match="`n_boundary`"):
        solve(poisson_problem(conditions=[Dirichlet(0.0)]), PINN(net, n_boundary=0))
    sol = solve(poisson_problem(), PINN(net, n_interior=8, iterations=1))
    with pytest.raises(InvalidArgumentError, match="`grid`"):
        sol.u(Grid.uniform(y=(0.0, 1.0, 4)))


def test_unstable_loss_reports_retcode():
    prob = PINNProblem(lambda x, u: u * float("nan"), Interval(0.0, 1.0))
    sol = solve(prob, PINN(mlp(1, 4, 1), n_interior=8, iterations=5))
    assert sol.retcode == ReturnCode.Unstable


# ---------------------------------------------------------------------- LPINN
def test_lpinn_convection_beta30():
    beta = 30.0
    alg = LPINN(mlp(3, 32, 2), mlp(3, 32, 2), n_interior=500, lr=3e-3, iterations=300,
                lbfgs_iterations=100, seed=0)
    sol = solve(ConvectionProblem(beta), alg)
    assert sol.retcode == ReturnCode.Success
    grid = Grid.uniform(t=(0.0, 1.0, 26), x=(0.0, 2 * math.pi, 128), periodic=("x",))
    f = sol.u(grid)
    t, x = grid.mesh()
    err = rel_l2(f.values[0], torch.sin(x - beta * t))
    assert err < 3e-2, err  # a vanilla PINN of this size gives about 0.9 here
    # characteristics move at beta
    with torch.no_grad():
        X, u = sol.u.lagrangian(torch.tensor([1.0]), torch.tensor([0.5]))
    assert abs(float(X) - (1.0 + 0.5 * beta)) < 0.1 and abs(float(u) - math.sin(1.0)) < 0.05
    xt = Grid.uniform(x=(0.0, 2 * math.pi, 16), t=(0.0, 1.0, 3), periodic=("x",))
    tx = Grid.uniform(t=(0.0, 1.0, 3), x=(0.0, 2 * math.pi, 16), periodic=("x",))
    assert torch.allclose(sol.u(xt).values[0].T, sol.u(tx).values[0])


def test_lpinn_soft_initial_and_bad_inputs():
    prob = ConvectionProblem(2.0, u0=torch.cos, xspan=(-1.0, 1.0))
    sol = solve(prob, LPINN(mlp(3, 8, 1), mlp(3, 8, 1), n_interior=32, n_initial=16,
                            iterations=3, hard_initial=False))
    assert set(sol.u.losses) == {"characteristic", "transport", "initial_x", "initial_u"}
    with pytest.raises(InvalidArgumentError, match="`net_u`"):
        LPINN(mlp(3), None)
    with pytest.raises(InvalidArgumentError, match="`n_interior`"):
        LPINN(mlp(3), mlp(3), n_interior=0)
    with pytest.raises(InvalidArgumentError, match="`n_initial`"):
        solve(prob, LPINN(mlp(3), mlp(3), n_initial=0, hard_initial=False))
    with pytest.raises(InvalidArgumentError, match="`u0`"):
        ConvectionProblem(1.0, u0=3.0)
    with pytest.raises(InvalidArgumentError, match="`grid`"):
        sol.u(Grid.uniform(x=(0.0, 1.0, 4)))
