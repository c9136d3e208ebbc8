"""Tests of the PINN toolkit additions: residual-based adaptive refinement, mask
domains on a Grid, the float64 path and the Lagrangian PINN for Burgers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from opflow import Field, Grid, solve
from opflow.errors import InvalidArgumentError, ShapeError, UnknownVariableError
from opflow.solvers.pde.spectral import BurgersProblem, PseudoSpectral
from opflow.solvers.pinn import (
    LPINN,
    PINN,
    RAR,
    Coordinates,
    Dirichlet,
    Disk,
    Interval,
    MaskDomain,
    Neumann,
    PINNProblem,
    Rectangle,
    TimeSpace,
    ViscousBurgersProblem,
    d,
    hard_dirichlet,
    laplacian,
)


def mlp(dim_in: int, width: int = 32, depth: int = 2, dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    layers, n = [], dim_in
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width), torch.nn.Tanh()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1)).to(dtype)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------ RAR
SHARP = 20.0  # u = tanh(20 x): a layer of width ~0.05 at x = 0


def sharp_problem() -> PINNProblem:
    def residual(x, u):
        t = torch.tanh(SHARP * x["x"])
        return -d(u, x, "x", 2) - 2 * SHARP ** 2 * t * (1 - t * t)

    return PINNProblem(residual, Interval(-1.0, 1.0), transform=hard_dirichlet(
        lambda x: 1 - x["x"] ** 2, lambda x: x["x"] * math.tanh(SHARP)))


def test_rar_places_points_at_the_layer_and_beats_uniform():
    # Same final point count (48), same network, optimiser and budget. Measured (seed 0):
    # uniform (Sobol) 48 points rel. L2 0.232, RAR 24 + 4 x 6 points 2.1e-3; seeds 1, 2 gave
    # 0.132 / 6.2e-3 and 0.380 / 4.5e-2.
    prob, grid = sharp_problem(), Grid.uniform(x=(-1.0, 1.0, 1001))
    exact = torch.tanh(SHARP * torch.tensor(grid.coords["x"], dtype=torch.float32))
    common = dict(n_boundary=0, lr=3e-3, iterations=600, lbfgs_iterations=200)
    plain = solve(prob, PINN(mlp(1), n_interior=48, **common))
    rar = RAR(every=100, k=6, candidates=2000, rounds=4)
    refined = solve(prob, PINN(mlp(1), n_interior=24, refine=rar, **common))
    added = refined.u.added_points
    assert added.shape == (24, 1) and plain.u.added_points.shape == (0, 1)
    assert float(added.abs().max()) < 0.1  # all inside the layer (|x| < 2 widths)
    err_plain = rel_l2(plain.u(grid).values[0], exact)
    err_rar = rel_l2(refined.u(grid).values[0], exact)
    assert err_rar < 0.2 * err_plain and err_rar < 2e-2, (err_rar, err_plain)


def test_rar_bad_inputs():
    for kwargs, arg in [({"every": 0}, "every"), ({"k": 0}, "k"),
                        ({"k": 10, "candidates": 5}, "candidates"), ({"rounds": -1}, "rounds"),
                        ({"sampler": "grid"}, "sampler")]:
        with pytest.raises(InvalidArgumentError, match=arg):
            RAR(**kwargs)
    with pytest.raises(InvalidArgumentError, match="refine"):
        PINN(mlp(1), refine={"every": 10})


# ------------------------------------------------------------------ mask domain
def l_shape(n: int = 16) -> MaskDomain:
    """[0, 1]^2 without the quarter (0.5, 1]^2, as 16 x 16 cells (points at cell centres)."""
    centres = (np.arange(n) + 0.5) / n
    grid = Grid.from_coords({"x": centres, "y": centres})
    x, y = grid.mesh()
    return MaskDomain(grid, Field((~((x > 0.5) & (y > 0.5)))[None].float(), grid))


def in_notch(p: torch.Tensor) -> torch.Tensor:
    return (p[:, 0] > 0.5 + 1e-6) & (p[:, 1] > 0.5 + 1e-6)


def test_mask_domain_samples_inside_the_mask():
    dom = l_shape()
    assert dom.names == ("x", "y") and dom.box == {"x": (0.0, 1.0), "y": (0.0, 1.0)}
    assert dom.volume == pytest.approx(0.75)
    for method in ("uniform", "sobol"):
        p = dom.sample_interior(3000, method, seed=1)
        assert p.shape == (3000, 2) and bool(dom.contains(p).all())
        assert not bool(in_notch(p).any()) and bool(((p >= 0) & (p <= 1)).all())
        # uniform in area: each of the three unit quarters gets about a third of the points
        quarter = (p[:, 0] > 0.5).long() + 2 * (p[:, 1] > 0.5).long()
        counts = torch.bincount(quarter, minlength=4).double() / 3000
        assert torch.allclose(counts[:3], torch.full((3,), 1 / 3, dtype=torch.float64),
                              atol=0.03) and counts[3] == 0
    b = dom.sample_boundary(800, "sobol", seed=2)
    on_outer = (b <= 1e-6).any(dim=1) | (b >= 1 - 1e-6).any(dim=1)
    on_notch = ((b - 0.5).abs() < 1e-6).any(dim=1) & (b >= 0.5 - 1e-6).all(dim=1)
    assert bool((on_outer | on_notch).all()) and not bool(in_notch(b).any())
    assert 0.1 < float(on_notch.double().mean()) < 0.4  # notch edges: 1/4 of the perimeter
    n = dom.normals(b)
    assert torch.allclose(n.norm(dim=1), torch.ones(800))
    # outward: a step along -n stays inside, a step along +n leaves the domain
    assert bool(dom.contains(b - 1e-3 * n, tol=0).all())
    assert not bool(dom.contains(b + 1e-3 * n, tol=0).any())
    probe = torch.tensor([[0.75, 0.75], [0.25, 0.75], [1.01, 0.2]])
    assert dom.contains(probe).tolist() == [False, True, False]


def test_mask_domain_bad_inputs():
    grid = Grid.uniform(x=(0.0, 1.0, 8), y=(0.0, 1.0, 8))
    with pytest.raises(ShapeError, match="mask"):
        MaskDomain(grid, torch.ones(8, 7, dtype=torch.bool))
    with pytest.raises(InvalidArgumentError, match="mask"):
        MaskDomain(grid, torch.zeros(8, 8, dtype=torch.bool))
    other = Grid.uniform(x=(0.0, 2.0, 8), y=(0.0, 1.0, 8))
    with pytest.raises(InvalidArgumentError, match="mask"):
        MaskDomain(grid, Field(torch.ones(1, 8, 8), other))
    with pytest.raises(InvalidArgumentError, match="grid"):
        MaskDomain("grid", torch.ones(8, 8))


def test_poisson_on_l_shaped_mask():
    # -Lap u = 2 pi^2 sin(pi x) sin(pi y) with the exact solution as Dirichlet data on the
    # L's boundary. Measured: relative L2 3.9e-3 on the L's points of a 41 x 41 grid.
    def exact(x):
        return torch.sin(math.pi * x["x"]) * torch.sin(math.pi * x["y"])

    prob = PINNProblem(lambda x, u: -laplacian(u, x) - 2 * math.pi ** 2 * exact(x), l_shape(),
                       [Dirichlet(exact, weight=10.0)])
    sol = solve(prob, PINN(mlp(2), n_interior=500, n_boundary=200, lr=3e-3, iterations=500,
                           lbfgs_iterations=300))
    grid = Grid.uniform(x=(0.0, 1.0, 41), y=(0.0, 1.0, 41))
    x, y = grid.mesh()
    inside = ~((x > 0.5) & (y > 0.5))
    u = torch.sin(math.pi * x) * torch.sin(math.pi * y)
    err = rel_l2(sol.u(grid).values[0][inside], u[inside])
    assert err < 2e-2, err


# ------------------------------------------------------------------ float64
def test_float64_end_to_end_is_accurate():
    # -u'' = pi^2 sin(pi x), u(0) = u(1) = 0 (hard), 128 points, 300 Adam steps then at most
    # 500 L-BFGS iterations. Measured: float64 3.9e-7 (all 500); float32 3.1e-7 (its
    # L-BFGS stopped after 303 iterations, at 1.19e-6, before lbfgs_refine restarted it
    # after an early stop, #17).
    def residual(x, u):
        assert x.values.dtype == dtype and u.dtype == dtype  # points and outputs in float64
        return -d(u, x, "x", 2) - math.pi ** 2 * torch.sin(math.pi * x["x"])

    grid = Grid.uniform(x=(0.0, 1.0, 201))
    errs = {}
    for dtype in (torch.float32, torch.float64):
        prob = PINNProblem(residual, Interval(0.0, 1.0),
                           transform=hard_dirichlet(lambda x: x["x"] * (1 - x["x"])))
        sol = solve(prob, PINN(mlp(1, 20, 2, dtype=dtype), n_interior=128, lr=3e-3,
                               iterations=300, lbfgs_iterations=500))
        f = sol.u(grid)
        assert f.values.dtype == dtype
        exact = torch.sin(math.pi * torch.tensor(grid.coords["x"], dtype=torch.float64))
        errs[dtype] = rel_l2(f.values[0].double(), exact)
        assert isinstance(sol.u.losses["residual"], float)
    assert errs[torch.float64] < 8e-7 and errs[torch.float32] < 2e-6, errs


# ------------------------------------------------------------------ LPINN for Burgers
def burgers_reference(nu: float, t_end: float, ts: list[float], n: int = 1024) -> torch.Tensor:
    """opflow's pseudo-spectral Burgers solution of u0 = -sin(pi x) on [-1, 1), (len(ts), n)."""
    grid = Grid.uniform(x=(-1.0, 1.0, n), periodic=("x",))
    (x,) = grid.mesh(dtype=torch.float64)
    u0 = Field(-torch.sin(math.pi * x)[None], grid)
    sol = solve(BurgersProblem(u0, nu, (0.0, t_end)), PseudoSpectral(dt=5e-5, scheme="etdrk4"),
                saveat=ts)
    return sol.u.values[:, 0]


def test_lpinn_burgers_matches_spectral_reference():
    # nu = 0.01 / pi up to t = 0.3 (the inviscid shock forms at 1/pi). Measured: relative L2
    # 1.36e-2 over the 11 x 256 (t, x) grid (2 x 32 networks, 800 iterations, about 14 s).
    nu, t_end = 0.01 / math.pi, 0.3
    ts = [t_end * k / 10 for k in range(11)]
    ref = burgers_reference(nu, t_end, ts)[:, ::4]
    grid = Grid.uniform(t=(0.0, t_end, 11), x=(-1.0, 1.0, 256), periodic=("x",))
    prob = ViscousBurgersProblem(nu, tspan=(0.0, t_end))
    assert prob.xspan == (-1.0, 1.0) and prob.velocity_scale == pytest.approx(1.0)
    sol = solve(prob, LPINN(mlp(3), mlp(3), n_interior=1000, lr=3e-3, iterations=500,
                            lbfgs_iterations=300))
    f = sol.u(grid).values[0].double()
    assert float((f[0] - ref[0]).abs().max()) < 1e-6  # hard initial condition
    err = rel_l2(f, ref)
    assert err < 3e-2, err
    assert set(sol.u.losses) == {"characteristic", "transport"}
    # the characteristics have not crossed: X is increasing in xi at the final time
    xi = torch.linspace(-1.0, 1.0, 401)
    with torch.no_grad():
        X, _ = sol.u.lagrangian(xi, torch.full_like(xi, t_end))
    assert bool((X.diff() > 0).all())


def test_viscous_burgers_problem_bad_inputs():
    for kwargs, arg in [({"nu": -1.0}, "nu"), ({"nu": float("nan")}, "nu"),
                        ({"nu": 0.1, "u0": 2.0}, "u0"), ({"nu": 0.1, "tspan": (1.0, 0.0)},
                                                         "tspan")]:
        with pytest.raises(InvalidArgumentError, match=arg):
            ViscousBurgersProblem(**kwargs)


# ------------------------------------------------------------------ named boundary parts
def test_conditions_on_named_faces():
    """-u'' = 0 on [0, 1], u(0) = 0 on x_min only, u'(1) = 1 on x_max only: u = x."""
    box = Interval(0.0, 1.0)
    assert box.boundaries == ("x_min", "x_max")
    prob = PINNProblem(lambda x, u: d(u, x, "x", 2), box,
                       [Dirichlet(0.0, on="x_min"), Neumann(1.0, on="x_max")])
    sol = solve(prob, PINN(mlp(1), n_interior=64, n_boundary=8, iterations=1500, lr=3e-3))
    x = torch.linspace(0, 1, 41)[:, None]
    with torch.no_grad():
        u = sol.u.net(x)
    assert rel_l2(u, x) < 2e-2
    rect = Rectangle({"x": (0.0, 1.0), "y": (0.0, 2.0)})
    pts = Dirichlet(0.0, on=("x_min", "y_max")).sample(rect, 30)
    on_x_min, on_y_max = pts[:, 0] == 0.0, pts[:, 1] == 2.0
    assert bool((on_x_min | on_y_max).all())
    assert int(on_x_min.sum()) == 20  # faces in proportion to their length (2 : 1)
    space_time = TimeSpace((0.0, 1.0), Interval(-1.0, 1.0))
    assert bool((Dirichlet(0.0, on="x_max").sample(space_time, 10)[:, 1] == 1.0).all())


def test_unknown_boundary_parts_are_refused_when_the_problem_is_built():
    with pytest.raises(UnknownVariableError, match="`on`.*'left'.*x_min"):
        PINNProblem(lambda x, u: u, Rectangle({"x": (0, 1), "y": (0, 1)}),
                    [Dirichlet(0.0, on="left")])
    with pytest.raises(UnknownVariableError, match="`on`"):  # a circle has no named parts
        PINNProblem(lambda x, u: u, Disk(), [Neumann(0.0, on="x_min")])
    with pytest.raises(InvalidArgumentError, match="`on`"):
        PINNProblem(lambda x, u: u, Interval(0.0, 1.0), [Dirichlet(0.0, on=())])


def test_each_condition_may_set_its_number_of_points(monkeypatch):
    """DeepXDE's num_boundary and num_initial differ: a condition's own ``points`` wins over
    the PINN's n_boundary, which still serves the conditions that give none."""
    from opflow.solvers.pinn import Initial
    from opflow.solvers.pinn.conditions import Condition

    asked = []

    def recording(real):
        def sample(self, domain, n, *args, **kwargs):
            asked.append((self.kind, n))
            return real(self, domain, n, *args, **kwargs)
        return sample

    for cls in (Condition, Initial):  # Initial samples the t = t0 face itself
        monkeypatch.setattr(cls, "sample", recording(cls.sample))
    prob = PINNProblem(lambda x, u: d(u, x, "t") - 0.1 * d(u, x, "x", 2),
                       TimeSpace((0.0, 1.0), Interval(-1.0, 1.0)),
                       [Dirichlet(0.0, points=40), Initial(0.0, points=20),
                        Neumann(0.0, on="x_max")])
    sol = solve(prob, PINN(mlp(2), n_interior=32, n_boundary=7, iterations=2, seed=0))
    assert sol.success and asked == [("dirichlet", 40), ("initial", 20), ("neumann", 7)]
    sol = solve(PINNProblem(prob.residual, prob.domain, [Initial(0.0, points=5)]),
                PINN(mlp(2), n_interior=32, n_boundary=0, iterations=1))
    assert sol.success  # n_boundary=0 is fine when every condition has its points
    with pytest.raises(InvalidArgumentError, match="`n_boundary`.*own `points`"):
        solve(prob, PINN(mlp(2), n_interior=32, n_boundary=0, iterations=1))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="`points`"):
            Dirichlet(0.0, points=bad)


# ------------------------------------------------------------------ given points, bad residuals
def test_given_points_are_used_and_checked():
    seen = []

    def residual(x, u):
        seen.append(len(x))
        return d(u, x, "x", 2) + 1.0

    prob = PINNProblem(residual, Interval(0.0, 1.0), [Dirichlet(0.0)])
    pts = torch.linspace(0.05, 0.95, 19)[:, None]
    solve(prob, PINN(mlp(1), points=pts, n_boundary=2, iterations=3))
    assert set(seen) == {19}
    for bad, what in [(torch.tensor([[0.5], [1.5]]), "1 of 2 lie outside"),
                      (torch.tensor([[0.5], [float("nan")]]), "not finite"),
                      (torch.rand(4, 2), "one column per domain axis")]:
        with pytest.raises(InvalidArgumentError, match=f"`points`.*{what}"):
            solve(prob, PINN(mlp(1), points=bad, n_boundary=2, iterations=1))
    with pytest.raises(InvalidArgumentError, match="`points`"):
        PINN(mlp(1), points=torch.empty(0, 1))


def test_residual_that_ignores_the_network_is_refused():
    prob = PINNProblem(lambda x, u: torch.sin(x["x"]), Interval(0.0, 1.0), [Dirichlet(0.0)])
    with pytest.raises(InvalidArgumentError, match="`residual`.*gradient"):
        solve(prob, PINN(mlp(1), n_interior=8, n_boundary=2, iterations=1))


def test_derivative_of_a_tensor_not_computed_from_the_points_warns():
    x = Coordinates(torch.rand(6, 1, requires_grad=True), ("x",))
    detached = mlp(1)(x.values.detach())  # computed from a copy of the points
    with pytest.warns(UserWarning, match="does not depend on the points"):
        assert torch.equal(d(detached, x, "x"), torch.zeros(6, 1))
    with pytest.warns(UserWarning, match="does not depend on the points"):
        d(torch.ones(6, 1), x, "x")


def test_neumann_on_one_face_of_a_rectangle_and_on_argument_checks():
    """u = x^2 y: du/dn on y_max (normal +y) is x^2, on x_max (normal +x) 2 x y."""
    rect = Rectangle({"x": (0.0, 1.0), "y": (0.0, 1.0)})

    def model(x):
        return x["x"] ** 2 * x["y"]

    faces = {"y_max": lambda x: x["x"] ** 2, "x_max": lambda x: 2 * x["x"] * x["y"]}
    samples = {on: Coordinates(Neumann(0.0, on=on).sample(rect, 40), rect.names)
               for on in faces}
    for on, flux in faces.items():
        other = "x_max" if on == "y_max" else "y_max"
        assert float(Neumann(flux, on=on).loss(model, samples[on], rect).detach()) < 1e-10
        assert float(Neumann(flux, on=on).loss(model, samples[other], rect).detach()) > 1e-3
    assert Dirichlet(0.0, on=["x_min", "y_max"]).on == ("x_min", "y_max")  # hashable tuple
    hash(Dirichlet(0.0, on=["x_min"]))
    with pytest.raises(InvalidArgumentError, match="`on`"):
        Dirichlet(0.0, on=5)
    net, points = mlp(2), torch.rand(4, 2)
    assert PINN(net, points=points) == PINN(net, points=points.clone())  # no tensor compare


# ------------------------------------------------------------------ inverse problems
def test_an_inverse_problem_identifies_an_unknown_coefficient():
    """u' = -C u on [0, 1], u(0) = 1, C unknown (guess 0.5): ten observations of
    u = exp(-2 x) identify C = 2 (DeepXDE's dde.Variable examples, at test size)."""
    from opflow.solvers.pinn import Observation

    torch.manual_seed(0)
    x_obs = torch.linspace(0.0, 1.0, 10)[:, None]
    prob = PINNProblem(lambda x, u, p: d(u, x, "x") + p["C"] * u, Interval(0.0, 1.0),
                       [Observation(x_obs, torch.exp(-2.0 * x_obs))], unknowns={"C": 0.5})
    sol = solve(prob, PINN(mlp(1), n_interior=64, iterations=1500, lr=3e-3,
                           lbfgs_iterations=300, seed=0))
    assert sol.success and set(sol.u.losses) == {"residual", "observation"}
    assert abs(sol.u.unknowns["C"] - 2.0) < 0.02, sol.u.unknowns
    history = sol.u.unknown_history["C"]
    assert history[0] == pytest.approx(0.5, abs=0.01) and len(history) == len(
        sol.u.history["total"])
    grid = Grid.uniform(x=(0.0, 1.0, 21))
    u = sol.u(grid).values[0]
    assert float((u - torch.exp(-2.0 * grid.mesh()[0])).abs().max()) < 0.01
    assert prob.unknowns == {"C": 0.5}  # the problem is unchanged: the guess stays a guess


def test_observation_points_of_another_dtype_than_the_network():
    """An Observation built from float32 data trains a float64 network given float64
    collocation points, and float64 data a float32 one (it was a raw dtype error)."""
    from opflow.solvers.pinn import Observation

    for net_dtype, data_dtype in [(torch.float64, torch.float32),
                                  (torch.float32, torch.float64)]:
        x_obs = torch.linspace(0.0, 1.0, 5, dtype=data_dtype)[:, None]
        prob = PINNProblem(lambda x, u: d(u, x, "x", 2), Interval(0.0, 1.0),
                           [Observation(x_obs, 2.0 * x_obs)])
        pts = torch.linspace(0.05, 0.95, 16, dtype=net_dtype)[:, None]
        sol = solve(prob, PINN(mlp(1, dtype=net_dtype), points=pts, iterations=3,
                               lbfgs_iterations=2))
        assert sol.success and sol.u(Grid.uniform(x=(0.0, 1.0, 5))).values.dtype == net_dtype


def test_inverse_problem_bad_input():
    from opflow.solvers.pinn import Observation

    def residual(x, u, p):
        return d(u, x, "x") + p["C"] * u

    for bad in ({}, {"C": float("nan")}, {"1C": 1.0}, {"C": "one"}, [("C", 1.0)]):
        with pytest.raises(InvalidArgumentError, match="`unknowns`"):
            PINNProblem(residual, Interval(0.0, 1.0), unknowns=bad)
    with pytest.raises(InvalidArgumentError, match="`residual`.*third argument"):
        PINNProblem(lambda x, u: u, Interval(0.0, 1.0), unknowns={"C": 1.0})
    x = torch.rand(5, 1)
    with pytest.raises(ShapeError, match="`values`"):
        Observation(x, torch.rand(4))
    with pytest.raises(ShapeError, match="`x`"):
        Observation(torch.rand(5), torch.rand(5))
    with pytest.raises(ShapeError, match="`values`"):
        Observation(x, torch.rand(5, 2), channel=0)
    with pytest.raises(InvalidArgumentError, match="`channel`"):
        Observation(x, torch.rand(5), channel=-1)
    prob = PINNProblem(residual, Rectangle({"x": (0, 1), "y": (0, 1)}),
                       [Observation(x, torch.rand(5))], unknowns={"C": 1.0})
    with pytest.raises(ShapeError, match="`x`.*2 columns"):
        solve(prob, PINN(mlp(2), n_interior=8, iterations=1))


# ------------------------------------------------------------------ point clouds
def test_a_point_cloud_domain_solves_poisson_on_a_disk_given_by_points():
    """-lap u = 4 on the unit disk, u = 0 on the circle (u = 1 - r^2), the disk known only
    through 300 interior and 64 boundary points (DeepXDE's PointCloud)."""
    from opflow.solvers.pinn import PointCloud

    disk = Disk()
    inside, edge = disk.sample_interior(300, "sobol", 1), disk.sample_boundary(64, "sobol", 2)
    cloud = PointCloud(inside, boundary_points=edge, boundary_normals=disk.normals(edge))
    assert cloud.names == ("x", "y") and cloud.box["x"][0] >= -1.0
    torch.testing.assert_close(cloud.normals(edge[:5]), disk.normals(edge[:5]))
    assert bool(cloud.contains(inside[:7]).all()) and not bool(
        cloud.contains(torch.tensor([[5.0, 5.0]])).any())
    prob = PINNProblem(lambda x, u: -laplacian(u, x) - 4.0, cloud, [Dirichlet(0.0)])
    sol = solve(prob, PINN(mlp(2), n_interior=300, n_boundary=64, iterations=400, lr=3e-3,
                           lbfgs_iterations=200, seed=0))
    test = disk.sample_interior(200, "uniform", 9)
    exact = 1.0 - test.pow(2).sum(1, keepdim=True)
    err = float((sol.u.points(test).detach() - exact).norm() / exact.norm())
    assert sol.success and err < 0.03, err


def test_point_cloud_bad_input():
    from opflow.solvers.pinn import PointCloud

    pts = torch.rand(10, 2)
    for bad in (torch.rand(10), torch.empty(0, 2), torch.full((3, 2), float("nan")), [[0.0]]):
        with pytest.raises(InvalidArgumentError, match="`points`"):
            PointCloud(bad)
    with pytest.raises(InvalidArgumentError, match="`boundary_points`"):
        PointCloud(pts, boundary_points=torch.rand(4, 3))
    with pytest.raises(InvalidArgumentError, match="`boundary_normals`"):
        PointCloud(pts, boundary_normals=torch.rand(4, 2))
    with pytest.raises(InvalidArgumentError, match="`boundary_normals`"):
        PointCloud(pts, boundary_points=torch.rand(4, 2), boundary_normals=torch.zeros(4, 2))
    with pytest.raises(InvalidArgumentError, match="`names`"):
        PointCloud(pts, names=("x",))
    cloud = PointCloud(pts)
    with pytest.raises(InvalidArgumentError, match="`n`.*at most the 10 interior"):
        cloud.sample_interior(11)
    with pytest.raises(InvalidArgumentError, match="`boundary_points`"):
        cloud.sample_boundary(2)
    with pytest.raises(InvalidArgumentError, match="`boundary_normals`"):
        cloud.normals(pts[:2])
    torch.testing.assert_close(cloud.sample_interior(10), pts)  # all of them, in order
    a, b = cloud.sample_interior(4, seed=3), cloud.sample_interior(4, seed=3)
    assert torch.equal(a, b) and len(set(map(tuple, a.tolist()))) == 4


# ------------------------------------------------------------------ L-BFGS restarts
def test_lbfgs_restarts_after_an_early_stop(monkeypatch):
    """A run of torch's L-BFGS that ends before its budget (in float32, a line search that
    found no decrease: DeepXDE's Burgers example stopped after 5 of 15000 iterations) is
    followed by a fresh one on the iterations left, while each run lowers the loss."""
    from opflow.solvers.pinn import algorithm

    budgets = []

    class FirstRunStopsEarly(torch.optim.LBFGS):
        def __init__(self, params, **kw):
            budgets.append(kw["max_iter"])
            if len(budgets) == 1:
                kw["max_iter"] = 3  # ends after 3 iterations, as a stalled line search does
            super().__init__(params, **kw)

    monkeypatch.setattr(torch.optim, "LBFGS", FirstRunStopsEarly)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 6, generator=gen), torch.randn(40, generator=gen)
    w = torch.zeros(6, requires_grad=True)
    evaluations = []

    def loss():
        total = (a @ w - b).pow(2).mean()
        return {"fit": total}, total

    n = algorithm.lbfgs_refine([w], 100, loss, lambda t, total: evaluations.append(total))
    assert budgets[:2] == [100, 97] and 3 < n <= 100
    best = torch.linalg.lstsq(a, b[:, None]).solution[:, 0]
    assert torch.allclose(w.detach(), best, atol=1e-4)
    # no decrease (here a zero gradient from the start): one run, no restart
    budgets.clear()
    c = torch.ones(3, requires_grad=True)
    flat = algorithm.lbfgs_refine([c], 50, lambda: ({"t": (0 * c).sum()}, (0 * c).sum()),
                                  lambda t, total: None)
    assert flat == 0 and budgets == [50]
