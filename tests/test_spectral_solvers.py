"""Pseudo-spectral solvers: Burgers (Cole-Hopf), Navier-Stokes (Taylor-Green), UDE closures."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import opflow
from opflow import Field, Grid, ReturnCode, solve
from opflow.errors import InvalidArgumentError, OpflowError, ShapeError, SolverError
from opflow.solvers.pde.spectral import (
    BurgersProblem,
    NavierStokes2DProblem,
    PseudoSpectral,
    burgers_recipe_solve,
    etdrk4_coefficients,
    navier_stokes_forcing,
    navier_stokes_recipe_solve,
    velocity_from_vorticity,
)
from opflow.solvers.pde.spectral.navier_stokes import navier_stokes_system

SCHEMES = ("cnab2", "cnheun", "etdrk4")
ORDER = {"cnab2": 2, "cnheun": 2, "etdrk4": 4}
F64 = torch.float64


# ----------------------------------------------------------------- helpers
def line(n: int) -> Grid:
    return Grid.uniform(x=(0.0, 1.0, n), periodic=("x",))


def torus(n: int) -> Grid:
    return Grid.uniform(x=(0.0, 1.0, n), y=(0.0, 1.0, n), periodic=("x", "y"))


def cole_hopf(x: torch.Tensor, t: float, nu: float, eps: torch.Tensor) -> torch.Tensor:
    """Exact Burgers solution ``-2 nu theta_x / theta`` for the heat-equation
    solution ``theta = 1 + eps exp(-nu k^2 t) cos(k x)``, ``k = 2 pi``.

    ``eps`` of shape (B,) gives a batch ``(B, 1, n)``.
    """
    k = 2 * math.pi
    e = eps.reshape(-1, 1, 1) * math.exp(-nu * k * k * t)
    return 2 * nu * k * e * torch.sin(k * x) / (1 + e * torch.cos(k * x))


def burgers_case(n=64, eps=(0.9, 0.5), nu=0.1, dtype=F64):
    g = line(n)
    (x,) = g.mesh(dtype=F64)
    eps = torch.tensor(eps, dtype=F64)
    u0 = Field(cole_hopf(x, 0.0, nu, eps).to(dtype), g)
    return u0, x, eps


def taylor_green(n=32, m=2, amplitude=1.0):
    g = torus(n)
    x, y = g.mesh(dtype=F64)
    k = 2 * math.pi * m
    return Field((amplitude * 2 * k * torch.cos(k * x) * torch.cos(k * y))[None], g), k


# ----------------------------------------------------------------- Burgers
def test_burgers_matches_cole_hopf_batched_with_exact_save_times():
    nu, T = 0.1, 0.5
    u0, x, eps = burgers_case(n=256, nu=nu)  # resolves eps = 0.9 at t = 0 to rounding
    saveat = [0.0, 0.013, 0.25, 0.5]
    sol = solve(BurgersProblem(u0, nu, (0.0, T)), PseudoSpectral(dt=T / 2000, scheme="etdrk4"),
                saveat=saveat)
    assert sol.retcode == ReturnCode.Success
    assert sol.t.tolist() == saveat
    assert tuple(sol.u.values.shape) == (4, 2, 1, 256)
    for i, t in enumerate(saveat):
        err = (sol.u.values[i] - cole_hopf(x, t, nu, eps)).abs().max().item()
        assert err < 1e-8, (t, err)  # |u_x| near 70 early on: time error dominates
    assert torch.equal(sol.u.values[0], u0.values)  # t0 is u0 itself


@pytest.mark.parametrize("scheme", SCHEMES)
def test_burgers_observed_time_order(scheme):
    nu, T = 0.1, 0.5
    u0, x, eps = burgers_case(eps=(0.9,), nu=nu)
    exact = cole_hopf(x, T, nu, eps)
    base = 20 if scheme == "etdrk4" else 80
    errs = []
    for steps in (base, 2 * base):
        sol = solve(BurgersProblem(u0, nu, (0.0, T)), PseudoSpectral(dt=T / steps, scheme=scheme))
        errs.append((sol.u.values[-1] - exact).abs().max().item())
        assert sol.stats.steps == steps
    order = math.log2(errs[0] / errs[1])
    assert abs(order - ORDER[scheme]) < 0.15, (errs, order)


def test_float32_runs_in_float32():
    nu, T = 0.1, 0.2
    u0, x, eps = burgers_case(nu=nu, dtype=torch.float32)
    sol = solve(BurgersProblem(u0, nu, (0.0, T)), PseudoSpectral(dt=T / 50, scheme="etdrk4"))
    assert sol.u.dtype == torch.float32 and sol.t.dtype == torch.float32
    err = (sol.u.values[-1].double() - cole_hopf(x, T, nu, eps)).abs().max().item()
    assert err < 1e-5


def test_saveat_interval_and_stats():
    u0, _, _ = burgers_case(n=32)
    alg = PseudoSpectral(dt=0.07, scheme="cnheun")
    sol = solve(BurgersProblem(u0, 0.1, (0.0, 1.0)), alg, saveat=0.3)
    assert sol.t.tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-7)
    assert sol.stats.steps == 5 + 5 + 5 + 2  # ceil(0.3 / 0.07) = 5, ceil(0.1 / 0.07) = 2
    assert sol.stats.nfe == 2 * sol.stats.steps
    assert sol.stats.wall_time > 0
    ds = sol.to_xarray()
    assert ds["u"].dims == ("t", "sample", "x")
    sol = solve(BurgersProblem(u0, 0.1, (0.0, 0.1)), alg, progress="always")
    assert sol.success


# ----------------------------------------------------------- Navier-Stokes
@pytest.mark.parametrize("scheme", SCHEMES)
def test_taylor_green_decay(scheme):
    nu, dt, T = 0.01, 0.01, 0.5
    w0, k = taylor_green()
    sol = solve(NavierStokes2DProblem(w0, nu, tspan=(0.0, T)), PseudoSpectral(dt, scheme),
                saveat=0.1)
    rate = 2 * nu * k * k
    exact = torch.stack([w0.values * math.exp(-rate * t) for t in sol.t.tolist()])
    scale = w0.values.abs().max()
    if scheme == "etdrk4":  # diffusion integrated exactly: only rounding is left
        assert ((sol.u.values - exact).abs().max() / scale).item() < 1e-13
    else:  # exact in space: the state follows the Crank-Nicolson factor to rounding
        z = -rate * dt
        steps = [round(t / dt) for t in sol.t.tolist()]
        cn = torch.stack([w0.values * ((1 + z / 2) / (1 - z / 2)) ** s for s in steps])
        assert ((sol.u.values - cn).abs().max() / scale).item() < 1e-13
        assert ((sol.u.values - exact).abs().max() / scale).item() < 1e-4


def test_velocity_sign_convention():
    g = torus(32)
    x, y = g.mesh(dtype=F64)
    a, b = 2 * math.pi, 4 * math.pi
    psi = torch.sin(a * x) * torch.sin(b * y)
    w = Field(((a * a + b * b) * psi)[None], g)  # w = -Laplacian psi
    vel = velocity_from_vorticity(w)
    assert vel.names == ("u", "v")
    u_exact = b * torch.sin(a * x) * torch.cos(b * y)  # d psi / dy
    v_exact = -a * torch.cos(a * x) * torch.sin(b * y)  # -d psi / dx
    assert (vel.values[0] - u_exact).abs().max().item() < 1e-12
    assert (vel.values[1] - v_exact).abs().max().item() < 1e-12
    curl = vel["v"].partial("x").values - vel["u"].partial("y").values
    assert (curl - w.values).abs().max().item() < 1e-10
    assert vel.div().values.abs().max().item() < 1e-10


def test_advection_term_matches_calculus():
    g = torus(32)
    x, y = g.mesh(dtype=F64)
    p = 2 * math.pi
    w = Field((torch.sin(p * x) * torch.cos(2 * p * y) + 0.5 * torch.cos(p * (x - y)))[None], g)
    system = navier_stokes_system(NavierStokes2DProblem(w, 0.0), dealias=False)
    n = system.basis.inverse(system.explicit(0.0, system.basis.forward(w.values)))
    vel = velocity_from_vorticity(w)
    expected = -(vel.values[0:1] * w.partial("x").values + vel.values[1:2] * w.partial("y").values)
    assert (n - expected).abs().max().item() < 1e-11
    assert expected.abs().max().item() > 0.1  # a real nonlinear interaction


def test_forcing_recipe_runs_and_matches_exact_growth():
    g = torus(32)
    gen = torch.Generator().manual_seed(0)
    w0 = Field(torch.randn(2, 1, 32, 32, generator=gen), g)
    traj = navier_stokes_recipe_solve(w0, t_end=5e-4, n_saves=5, dt=1e-4)
    assert tuple(traj.values.shape) == (5, 2, 1, 32, 32)
    assert bool(torch.isfinite(traj.values).all())
    # A forcing of x + y only is a steady Euler flow: w(t) = f (1 - exp(-nu K t)) / (nu K).
    f = navier_stokes_forcing(g, dtype=F64)
    x, y = g.mesh(dtype=F64)
    phase = 2 * math.pi * (x + y)
    assert (f.values[0] - 0.1 * (torch.sin(phase) + torch.cos(phase))).abs().max() < 1e-15
    nu, T, K = 1e-3, 2.0, 8 * math.pi**2
    prob = NavierStokes2DProblem(Field(torch.zeros(1, 32, 32, dtype=F64), g), nu, forcing=f,
                                 tspan=(0.0, T))
    sol = solve(prob, PseudoSpectral(dt=0.05, scheme="etdrk4"))
    exact = f.values * (-math.expm1(-nu * K * T)) / (nu * K)
    assert (sol.u.values[-1] - exact).abs().max().item() < 1e-14


# ------------------------------------------------------ closures, gradients
class LinearClosure(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.3, dtype=F64))
        self.conv = nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular", dtype=F64)

    def forward(self, t, u):
        return u.with_values(self.a * torch.tanh(u.values) * (1 + t) + self.conv(u.values))


def test_closure_gradient_matches_finite_difference():
    u0, _, _ = burgers_case(n=32)
    closure = LinearClosure()
    alg = PseudoSpectral(dt=0.02, scheme="cnab2")

    def loss():
        sol = solve(BurgersProblem(u0, 0.05, (0.0, 0.2), closure=closure), alg)
        return sol.u.values[-1].square().sum()

    loss().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0)
               for p in closure.parameters())
    eps = 1e-6
    with torch.no_grad():
        closure.a += eps
        up = loss().item()
        closure.a -= 2 * eps
        down = loss().item()
        closure.a += eps
    fd = (up - down) / (2 * eps)
    assert closure.a.grad.item() == pytest.approx(fd, rel=1e-6)


def test_closure_receives_stage_times():
    g = line(16)
    u0 = Field(torch.zeros(1, 16, dtype=F64), g)

    def closure(t, u):  # u_t = cos(t): u = sin(t)
        return torch.cos(t) * torch.ones_like(u.values)

    sol = solve(BurgersProblem(u0, 0.1, (0.0, 1.0), closure=closure),
                PseudoSpectral(dt=0.05, scheme="etdrk4"))
    assert (sol.u.values[-1] - math.sin(1.0)).abs().max().item() < 1e-8


def test_navier_stokes_closure_is_added():
    nu, alpha, T = 0.01, 0.5, 0.5
    w0, k = taylor_green(n=16, m=1)
    prob = NavierStokes2DProblem(w0, nu, tspan=(0.0, T), closure=lambda t, w: -alpha * w)
    sol = solve(prob, PseudoSpectral(dt=0.01, scheme="etdrk4"))
    exact = w0.values * math.exp(-(2 * nu * k * k + alpha) * T)
    assert ((sol.u.values[-1] - exact).abs().max() / w0.values.abs().max()).item() < 1e-9


@pytest.mark.parametrize("scheme", SCHEMES)
def test_u0_gradcheck(scheme):
    g = line(12)
    (x,) = g.mesh(dtype=F64)
    u0 = (torch.sin(2 * math.pi * x) + 0.3 * torch.cos(4 * math.pi * x))[None]
    u0 = u0.clone().requires_grad_(True)

    def run(u):
        prob = BurgersProblem(Field(u, g), 0.05, (0.0, 0.03))
        return solve(prob, PseudoSpectral(dt=0.01, scheme=scheme)).u.values

    assert torch.autograd.gradcheck(run, (u0,))


def test_w0_gradcheck_navier_stokes():
    g = torus(6)
    gen = torch.Generator().manual_seed(1)
    w0 = torch.randn(1, 6, 6, dtype=F64, generator=gen).requires_grad_(True)

    def run(w):
        prob = NavierStokes2DProblem(Field(w, g), 0.01, tspan=(0.0, 0.02))
        return solve(prob, PseudoSpectral(dt=0.01)).u.values

    assert torch.autograd.gradcheck(run, (w0,))


# ------------------------------------------------------- failures, inputs
@pytest.mark.parametrize("scheme", SCHEMES)
def test_absurd_dt_is_unstable_not_a_crash(scheme):
    g = line(64)
    (x,) = g.mesh()
    u0 = Field(torch.sin(2 * math.pi * x)[None], g)
    sol = solve(BurgersProblem(u0, 1e-3, (0.0, 100.0)), PseudoSpectral(dt=1.0, scheme=scheme),
                saveat=10.0)
    assert sol.retcode == ReturnCode.Unstable and not sol.success
    assert len(sol.t) == 11 and bool(torch.isnan(sol.u.values[-1]).all())
    with pytest.raises(SolverError, match="Unstable"):
        burgers_recipe_solve(u0, nu=1e-3, t_end=100.0, dt=1.0)


def _bad_inputs():
    u0, _, _ = burgers_case(n=16)
    closed = Grid.uniform(x=(0.0, 1.0, 16))
    two = Field(torch.zeros(2, 16, dtype=F64), line(16))
    w0, _ = taylor_green(n=8)
    ok = BurgersProblem(u0, 0.1)

    def truncating(t, u):
        return u.values[..., :3]

    return [
        ("u0", lambda: BurgersProblem(Field(torch.zeros(1, 16), closed), 0.1)),
        ("u0", lambda: BurgersProblem(two, 0.1)),
        ("u0", lambda: BurgersProblem(w0, 0.1)),
        ("u0", lambda: BurgersProblem(u0.values, 0.1)),
        ("nu", lambda: BurgersProblem(u0, -0.1)),
        ("nu", lambda: opflow.remake(ok, nu=-1.0)),
        ("tspan", lambda: BurgersProblem(u0, 0.1, (1.0, 0.0))),
        ("closure", lambda: BurgersProblem(u0, 0.1, closure=3)),
        ("w0", lambda: NavierStokes2DProblem(u0, 0.1)),
        ("nu", lambda: NavierStokes2DProblem(w0, -1e-3)),
        ("forcing", lambda: NavierStokes2DProblem(w0, 1e-3, forcing=u0)),
        ("forcing", lambda: NavierStokes2DProblem(
            w0, 1e-3, forcing=Field(torch.zeros(3, 1, 8, 8, dtype=F64), w0.grid))),
        ("dt", lambda: PseudoSpectral(dt=0.0)),
        ("dt", lambda: PseudoSpectral(dt=-1e-3)),
        ("scheme", lambda: PseudoSpectral(dt=0.1, scheme="rk4")),
        ("check_every", lambda: PseudoSpectral(dt=0.1, check_every=0)),
        ("saveat", lambda: solve(ok, PseudoSpectral(dt=0.1), saveat=[0.5, 1.5])),
        ("saveat", lambda: solve(ok, PseudoSpectral(dt=0.1), saveat=[-0.1, 0.5])),
        ("saveat", lambda: solve(ok, PseudoSpectral(dt=0.1), saveat=[0.5, 0.2])),
        ("saveat", lambda: solve(ok, PseudoSpectral(dt=0.1), saveat=-0.1)),
        ("closure(t, u)", lambda: solve(BurgersProblem(u0, 0.1, closure=truncating),
                                        PseudoSpectral(dt=0.1))),
        ("sensealg", lambda: solve(ok, PseudoSpectral(dt=0.1), sensealg=None)),
        ("n_saves", lambda: navier_stokes_recipe_solve(w0, n_saves=0)),
    ]


@pytest.mark.parametrize("index", range(len(_bad_inputs())))
def test_bad_inputs_name_the_argument(index):
    argument, make = _bad_inputs()[index]
    with pytest.raises(OpflowError) as info:
        make()
    assert isinstance(info.value, InvalidArgumentError)
    assert info.value.argument == argument
    assert f"`{argument}`" in str(info.value)


def test_wrong_layout_is_a_shape_error():
    u0 = Field(torch.zeros(2, 16, dtype=F64), line(16))
    with pytest.raises(ShapeError):
        BurgersProblem(u0, 0.1)


# --------------------------------------------------------- recipes, parts
def test_burgers_recipe_matches_cole_hopf():
    nu, T = 0.1, 0.2
    u0, x, eps = burgers_case(n=64, nu=nu)
    out = burgers_recipe_solve(u0, nu=nu, t_end=T)
    assert isinstance(out, Field) and tuple(out.values.shape) == (2, 1, 64)
    assert (out.values - cole_hopf(x, T, nu, eps)).abs().max().item() < 1e-9


def test_etdrk4_coefficients_limits_and_values():
    h = 0.1
    lin = torch.tensor([0.0, -3.0 / h, -1e6], dtype=F64)
    em1, e2m1, q, f1, f2, f3 = etdrk4_coefficients(lin, h)
    assert q[0].item() == pytest.approx(h / 2, rel=1e-14)
    for f in (f1, f2, f3):
        assert f[0].item() == pytest.approx(h / 6, rel=1e-13)
    z = -3.0
    ez = math.exp(z)
    assert em1[1].item() == pytest.approx(math.expm1(z), rel=1e-15)
    assert q[1].item() == pytest.approx(h * math.expm1(z / 2) / z, rel=1e-13)
    assert f1[1].item() == pytest.approx(h * (-4 - z + ez * (4 - 3 * z + z * z)) / z**3, rel=1e-13)
    assert f2[1].item() == pytest.approx(h * (2 + z + ez * (z - 2)) / z**3, rel=1e-13)
    assert f3[1].item() == pytest.approx(h * (-4 - 3 * z - z * z + ez * (4 - z)) / z**3, rel=1e-13)
    assert bool(torch.isfinite(torch.stack([em1, e2m1, q, f1, f2, f3])).all())


# -------------------------------------------------------------------- heat
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_heat_problem_is_exact_in_one_etdrk4_step(ndim):
    from opflow.solvers.pde import HeatProblem

    n = (32, 16, 8)[ndim - 1]
    grid = Grid.uniform(**{a: (0.0, 1.0, n) for a in "xyz"[:ndim]}, periodic=tuple("xyz"[:ndim]))
    mesh = grid.mesh(dtype=F64)
    modes = [1, 2, 1][:ndim]
    u0 = sum(torch.sin(2 * math.pi * m * x) for m, x in zip(modes, mesh))
    nu, T = 0.05, 0.7
    sol = solve(HeatProblem(Field(u0[None, None], grid), nu, (0.0, T)),
                PseudoSpectral(dt=T, scheme="etdrk4"), saveat=[T])
    exact = sum(math.exp(-nu * (2 * math.pi * m) ** 2 * T) * torch.sin(2 * math.pi * m * x)
                for m, x in zip(modes, mesh))
    assert sol.success and sol.stats.steps == 1
    torch.testing.assert_close(sol.u.values[0, 0, 0], exact, rtol=0, atol=1e-12)


def test_family_problem_goes_through_solve_and_advects_exactly():
    from opflow.meta.families import FamilyProblem, solve_family

    grid = Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    (x,) = grid.mesh(dtype=F64)
    u0 = Field((0.5 + 0.25 * torch.sin(2 * math.pi * x)).expand(2, 1, 64).clone(), grid, "u")
    c, T = torch.tensor([0.3, -0.2], dtype=F64), 0.9
    sol = solve(FamilyProblem(u0, {"c": c}, (0.0, T)), PseudoSpectral(dt=T / 10,
                                                                        scheme="etdrk4"),
                saveat=[0.0, T / 2, T])
    for k, t in enumerate([0.0, T / 2, T]):
        exact = 0.5 + 0.25 * torch.sin(2 * math.pi * (x - c[:, None, None] * t))
        torch.testing.assert_close(sol.u.values[k], exact, rtol=0, atol=1e-12)
    torch.testing.assert_close(solve_family(u0, {"c": c}, T).values, sol.u.values[-1])
