"""ODE solvers: convergence orders, agreement with scipy, gradients, retcodes."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import opflow
from opflow import Field, Grid, ODEProblem, ReturnCode, Tsit5, remake, solve
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.solvers.ode import Rodas4
from opflow.solvers.ode.runge_kutta import integrate_fixed

ALL_TABLEAUS = [(opflow.Euler, 1), (opflow.RK4, 4), (opflow.Tsit5, 5), (opflow.Dopri5, 5)]


def _rotating(t, y):  # y' = A y with rotation + decay; exact solution known
    return torch.stack([-0.5 * y[:, 0] - y[:, 1], y[:, 0] - 0.5 * y[:, 1]], dim=1)


def _rotating_exact(t):
    r = math.exp(-0.5 * t)
    return torch.tensor([[r * math.cos(t), r * math.sin(t)]], dtype=torch.float64)


@pytest.mark.parametrize("alg, order", ALL_TABLEAUS)
def test_observed_convergence_order(alg, order):
    """Every tableau (adaptive ones run with fixed steps) has its order."""
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    ns = [16, 32, 64] if order == 5 else ([16, 32, 64] if order == 4 else [100, 200, 400])
    errors = []
    for n in ns:
        ts = torch.tensor([2.0], dtype=torch.float64)
        ys, _, _ = integrate_fixed(_rotating, alg.tableau, y0, 0.0, ts, 2.0 / n)
        errors.append(float((ys[-1] - _rotating_exact(2.0)).abs().max()))
    observed = np.polyfit(np.log(ns), np.log(errors), 1)[0] * -1
    assert abs(observed - order) < 0.2, (errors, observed)


@pytest.mark.parametrize("alg", [opflow.Tsit5, opflow.Dopri5, opflow.RK4])
def test_dense_output_is_accurate_between_steps(alg):
    """Dense output error shrinks at least like h^3 (RK4) / h^4 (5th-order pairs)."""
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    prob = ODEProblem(lambda t, y: _rotating(t, y[None])[0], y0, (0.0, 2.0))
    tq = torch.linspace(0.05, 1.95, 39, dtype=torch.float64)
    exact = torch.cat([_rotating_exact(float(t)) for t in tq])
    errors, ns = [], [8, 16, 32]
    for n in ns:
        a = alg(dt=2.0 / n) if alg is opflow.RK4 else alg(dt0=2.0 / n, rtol=1e3, atol=1e3,
                                                          dtmax=2.0 / n)
        sol = solve(prob, a, dense=True)
        errors.append(float((sol(tq) - exact).abs().max()))
    observed = np.polyfit(np.log(ns), np.log(errors), 1)[0] * -1
    assert observed > (2.8 if alg is opflow.RK4 else 3.8), (errors, observed)


def _lotka_volterra(t, u):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.5 * x - x * y, -3.0 * y + x * y], dim=-1)


@pytest.mark.parametrize("alg", [opflow.Tsit5, opflow.Dopri5])
def test_agreement_with_scipy_solve_ivp(alg):
    scipy_integrate = pytest.importorskip("scipy.integrate")
    ts = np.linspace(0, 5, 11)
    ref = scipy_integrate.solve_ivp(
        lambda t, u: _lotka_volterra(t, torch.tensor(u)).numpy(), (0, 5), [1.0, 1.0],
        method="DOP853", t_eval=ts, rtol=1e-12, atol=1e-12).y.T
    prob = ODEProblem(_lotka_volterra, torch.tensor([1.0, 1.0], dtype=torch.float64), (0.0, 5.0))
    sol = solve(prob, alg(rtol=1e-10, atol=1e-12), saveat=ts)
    assert sol.retcode == ReturnCode.Success
    np.testing.assert_allclose(sol.u.numpy(), ref, rtol=1e-8, atol=1e-8)


def test_tolerance_proportionality():
    prob = ODEProblem(_lotka_volterra, torch.tensor([1.0, 1.0], dtype=torch.float64), (0.0, 5.0))
    ref = solve(prob, opflow.Dopri5(rtol=1e-12, atol=1e-14)).u[-1]
    errs = [float((solve(prob, opflow.Tsit5(rtol=tol, atol=tol)).u[-1] - ref).abs().max())
            for tol in (1e-4, 1e-6, 1e-8)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-6


def test_batched_trajectories_take_their_own_steps():
    rates = torch.tensor([0.1, 1.0, 20.0], dtype=torch.float64)[:, None]
    u0 = torch.ones(3, 2, dtype=torch.float64)
    prob = ODEProblem(lambda t, u: -rates * u * (1 + t), u0, (0.0, 1.0), batched=True)
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    sol = solve(prob, opflow.Tsit5(rtol=1e-8, atol=1e-10), saveat=ts)
    exact = torch.exp(-rates.T * (ts + ts**2 / 2)[:, None])
    assert float((sol.u[..., 0] - exact).abs().max()) < 1e-7
    # The slow trajectory alone needs far fewer steps than the fast one.
    slow = solve(remake(prob, u0=u0[:1], f=lambda t, u: -rates[:1] * u * (1 + t)),
                 opflow.Tsit5(rtol=1e-8, atol=1e-10))
    assert slow.stats.steps < sol.stats.steps
    assert sol.u.shape == (5, 3, 2)


def test_field_and_tuple_states():
    g = Grid.uniform(x=(0, 2 * math.pi, 16), periodic=("x",))
    (x,) = g.mesh(torch.float64)
    u0 = Field(torch.sin(x)[None, None].repeat(2, 1, 1), g, names="u")
    # Heat equation u_t = u_xx on a periodic grid: sin(x) decays like exp(-t).
    prob = ODEProblem(lambda t, u: u.laplacian(), u0, (0.0, 0.5), batched=True)
    sol = solve(prob, opflow.Dopri5(rtol=1e-9, atol=1e-12), saveat=[0.0, 0.5])
    assert isinstance(sol.u, Field) and sol.u.batch_shape == (2, 2)
    assert float((sol.u.values[-1] - math.exp(-0.5) * u0.values).abs().max()) < 1e-8
    ds = sol.to_xarray()
    assert ds["u"].dims == ("t", "sample", "x")
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    tup = ODEProblem(lambda t, s: (s[1], -s[0]), (one, zero),
                     (0.0, math.pi / 2))
    pos, vel = solve(tup, opflow.Tsit5(rtol=1e-9, atol=1e-12)).u
    assert abs(float(pos[-1])) < 1e-7 and abs(float(vel[-1]) + 1) < 1e-7


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()

    def forward(self, t, u):
        return self.net(u)


@pytest.mark.parametrize("sensealg", [
    None, opflow.BacksolveAdjoint(rtol=1e-10, atol=1e-12),
    opflow.InterpolatingAdjoint(steps_per_checkpoint=3, rtol=1e-10, atol=1e-12)])
def test_gradients_agree_with_finite_differences(sensealg):
    torch.manual_seed(1)
    f = _MLP()
    u0 = torch.tensor([[0.3, -0.2], [0.1, 0.5]], dtype=torch.float64, requires_grad=True)
    alg = opflow.Dopri5(rtol=1e-10, atol=1e-12)

    def loss():
        prob = ODEProblem(f, u0, (0.0, 1.0))
        sol = solve(prob, alg, saveat=[0.0, 0.4, 1.0], sensealg=sensealg)
        return (sol.u[1:] ** 2).sum()

    loss().backward()
    w = f.net[0].weight
    for tensor, index in [(u0, (0, 1)), (w, (3, 0))]:
        grad = (u0.grad if tensor is u0 else w.grad)[index].item()
        with torch.no_grad():
            eps = 1e-6
            tensor[index] += eps
            up = loss().item()
            tensor[index] -= 2 * eps
            down = loss().item()
            tensor[index] += eps
        assert grad == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_backsolve_matches_direct_with_parameter_in_p():
    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    grads = []
    for sensealg in (None, opflow.BacksolveAdjoint(), opflow.InterpolatingAdjoint(4)):
        prob = ODEProblem(lambda t, u, p: -p * u * torch.cos(t), torch.ones(3, dtype=torch.float64),
                          (0.0, 2.0), p=k)
        sol = solve(prob, opflow.Tsit5(rtol=1e-10, atol=1e-12), saveat=[1.0, 2.0],
                    sensealg=sensealg)
        (g,) = torch.autograd.grad(sol.u.sum(), k)
        grads.append(float(g))
    exact = sum(-3 * math.sin(t) * math.exp(-0.7 * math.sin(t)) for t in (1.0, 2.0))
    assert grads == pytest.approx([exact] * 3, rel=1e-7)


def test_interpolating_adjoint_matches_the_closed_form_gradient():
    """y' = -k (y - cos t), y(0) = 0 has a closed form; d y(T) / dk by central differences
    of it (float64) against the interpolating adjoint over many checkpoint segments."""
    T = 4.0

    def closed(k):
        return (k / (k * k + 1)) * (k * math.cos(T) + math.sin(T)) - (
            k * k / (k * k + 1)) * math.exp(-k * T)

    for kk in (0.5, 8.0):
        k = torch.tensor(kk, dtype=torch.float64, requires_grad=True)
        prob = ODEProblem(lambda t, u, p: -p * (u - torch.cos(t)),
                          torch.zeros(1, dtype=torch.float64), (0.0, T), p=k)
        sol = solve(prob, opflow.Tsit5(rtol=1e-10, atol=1e-12),
                    sensealg=opflow.InterpolatingAdjoint(steps_per_checkpoint=8))
        (g,) = torch.autograd.grad(sol.u[-1].sum(), k)
        exact = (closed(kk + 1e-6) - closed(kk - 1e-6)) / 2e-6
        assert float(g) == pytest.approx(exact, rel=1e-6)


def test_interpolating_adjoint_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="steps_per_checkpoint"):
        opflow.InterpolatingAdjoint(steps_per_checkpoint=0)
    prob = ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="sensealg"):
        solve(prob, opflow.RK4(dt=0.1), sensealg=opflow.InterpolatingAdjoint())


def test_gradcheck_fixed_step():
    def fn(u0, k):
        prob = ODEProblem(lambda t, u, p: -p * u**2, u0, (0.0, 1.0), p=k)
        return solve(prob, opflow.RK4(dt=0.1)).u

    u0 = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    k = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (u0, k))


def test_stiff_problem_stops_with_retcode_instead_of_hanging():
    prob = ODEProblem(lambda t, u: -1e6 * (u - torch.cos(t)), torch.zeros(1, dtype=torch.float64),
                      (0.0, 1.0))
    sol = solve(prob, opflow.Dopri5(max_steps=300))
    assert sol.retcode == ReturnCode.MaxIters and not sol.success
    assert torch.isnan(sol.u[-1]).all()  # never reached: NaN, not a silent value


def test_blow_up_is_reported():
    prob = ODEProblem(lambda t, u: u**2, torch.ones(1, dtype=torch.float64), (0.0, 2.0))
    sol = solve(prob, opflow.Tsit5())  # exact solution 1/(1-t) blows up at t=1
    assert sol.retcode in (ReturnCode.DtLessThanMin, ReturnCode.Unstable, ReturnCode.MaxIters)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ODEProblem(lambda t, u: u, torch.ones(2), (0.0, math.inf)), "tspan"),
        (lambda: ODEProblem(lambda t, u: u, torch.tensor([1.0, math.nan]), (0.0, 1.0)), "u0"),
        (lambda: ODEProblem(lambda t, u: u, [1.0, 2.0], (0.0, 1.0)), "u0"),
        (lambda: ODEProblem(lambda t, u: u, torch.ones(2), (0.0,)), "tspan"),
        (lambda: ODEProblem(lambda t, u: u, torch.ones(2, dtype=torch.long), (0.0, 1.0)), "u0"),
        (lambda: opflow.Tsit5(rtol=-1.0), "rtol"),
        (lambda: opflow.Euler(dt=0.0), "dt"),
    ],
)
def test_bad_problem_input(make, match):
    with pytest.raises(InvalidArgumentError, match=match):
        make()


def test_bad_solve_input():
    prob = ODEProblem(lambda t, u: u, torch.ones(2), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="saveat"):
        solve(prob, opflow.Tsit5(), saveat=[0.5, 2.0])
    with pytest.raises(InvalidArgumentError, match="alg"):
        solve(prob, "tsit5")
    with pytest.raises(ShapeError, match=r"f\(t, u\)"):
        solve(remake(prob, f=lambda t, u: u[:1]), opflow.Tsit5())
    with pytest.raises(InvalidArgumentError, match="not_a_field"):
        remake(prob, not_a_field=1)
    with pytest.raises(opflow.errors.SolverError, match="dense=True"):
        solve(prob, opflow.Tsit5())(0.5)


def test_saveat_interval_and_solution_call():
    prob = ODEProblem(lambda t, u: -u, torch.ones(1, dtype=torch.float64), (0.0, 1.0))
    sol = solve(prob, opflow.Tsit5(rtol=1e-10, atol=1e-12), saveat=0.25, dense=True)
    np.testing.assert_allclose(sol.t.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    assert float(sol(0.3)) == pytest.approx(math.exp(-0.3), rel=1e-8)
    assert sol(torch.tensor([0.1, 0.2])).shape == (2, 1)
    with pytest.raises(InvalidArgumentError, match="within"):
        sol(1.5)


def test_rhs_arity_with_p_and_modules():
    class Decay(nn.Module):
        def forward(self, t, u):
            return -u

    sol = solve(ODEProblem(Decay(), torch.ones(1), (0.0, 1.0)), opflow.Tsit5())
    assert sol.retcode == ReturnCode.Success
    with_default = ODEProblem(lambda t, u, p=2.0: -p * u, torch.ones(1), (0.0, 1.0))
    assert float(solve(with_default, opflow.Tsit5()).u[-1]) == pytest.approx(math.exp(-2), 1e-5)
    with pytest.raises(InvalidArgumentError, match="`p`"):
        ODEProblem(Decay(), torch.ones(1), (0.0, 1.0), p=torch.ones(1))


def test_rhs_dtype_is_checked_for_field_and_tuple_states():
    g = Grid.uniform(x=(0, 1, 4), periodic=("x",))
    field = Field(torch.ones(1, 4, dtype=torch.float64), g)
    prob = ODEProblem(lambda t, u: (-u).to(torch.float32), field, (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="torch.float64"):
        solve(prob, opflow.RK4(dt=0.1))
    mixed = (torch.ones(2), torch.ones(3, dtype=torch.float64))
    ok = ODEProblem(lambda t, u: (-u[0], -u[1]), mixed, (0.0, 1.0))
    assert solve(ok, opflow.RK4(dt=0.1)).u[1].dtype == torch.float64
    bad = ODEProblem(lambda t, u: (-u[0], -u[1].float()), mixed, (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="`f`"):
        solve(bad, opflow.RK4(dt=0.1))


# ------------------------------------------- cases from torchdiffeq's own suite
@pytest.mark.parametrize("alg", [opflow.Euler(dt=0.01), opflow.RK4(dt=0.05), opflow.Tsit5(),
                                 opflow.Dopri5()], ids=["euler", "rk4", "tsit5", "dopri5"])
def test_zero_dimensional_states_and_tuples_of_them(alg):
    """torchdiffeq's ConstantODE/ExpODE use 0-dim states (they crashed the layout)."""
    u0 = torch.tensor(1.0, dtype=torch.float64)
    sol = solve(ODEProblem(lambda t, u: -u, u0, (0.0, 1.0)), alg)
    assert sol.u.shape == (2,) and abs(float(sol.u[-1]) - math.exp(-1.0)) < 2e-2
    pair = solve(ODEProblem(lambda t, u: (-u[0], -2 * u[1]), (u0, u0), (0.0, 1.0)), alg)
    assert [x.shape for x in pair.u] == [(2,), (2,)]
    assert abs(float(pair.u[1][-1]) - math.exp(-2.0)) < 5e-2


@pytest.mark.parametrize("sensealg", [opflow.BacksolveAdjoint(), opflow.InterpolatingAdjoint()],
                         ids=["backsolve", "interpolating"])
def test_adjoint_of_a_vector_field_that_does_not_depend_on_the_state(sensealg):
    """y' = exp(t) p: dy(1)/dp = e - 1 (the adjoint used to crash on the missing state term)."""
    p = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    sol = solve(ODEProblem(lambda t, u, p: torch.exp(t) * p * torch.ones_like(u),
                           torch.zeros(1, dtype=torch.float64), (0.0, 1.0), p),
                opflow.Tsit5(rtol=1e-9, atol=1e-12), sensealg=sensealg)
    (grad,) = torch.autograd.grad(sol.u[-1].sum(), p)
    assert abs(float(grad) - (math.e - 1)) < 1e-6


def test_time_span_requiring_grad_is_refused():
    """A span of tensors in a graph (torchdiffeq users write ``t[0], t[-1]`` of a time
    tensor requiring grad) used to be read as floats silently, its gradient dropped."""
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(InvalidArgumentError, match="tspan"):
        ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64), (t[0], t[-1]))
    sol = solve(ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
                           (t[0].detach(), t[-1].detach())), Tsit5())
    assert sol.success


def test_dtmin_ends_an_unbatched_solve_as_a_batched_one():
    """Dopri5(dtmin=...) was ignored on the unbatched path while every accepted step was
    below it (torchdiffeq's min_step case: 266 evaluations and Success)."""
    A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    u0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    alg = opflow.Dopri5(rtol=1e-7, atol=1e-9, dtmin=2.0)
    single = solve(ODEProblem(lambda t, u: A @ u, u0, (1.0, 8.0)), alg)
    batch = solve(ODEProblem(lambda t, u: u @ A.T, u0[None], (1.0, 8.0), batched=True), alg)
    assert single.retcode == batch.retcode == ReturnCode.DtLessThanMin
    assert single.stats.nfe < 50
    ok = solve(ODEProblem(lambda t, u: A @ u, u0, (1.0, 8.0)),
               opflow.Dopri5(rtol=1e-7, atol=1e-9, dtmin=1e-3))
    assert ok.success


@pytest.mark.parametrize("alg", [opflow.Tsit5(), Rodas4()], ids=["tsit5", "rodas4"])
@pytest.mark.parametrize("sensealg", [opflow.BacksolveAdjoint(), opflow.InterpolatingAdjoint()],
                         ids=["backsolve", "interpolating"])
def test_adjoint_of_a_rhs_using_neither_state_nor_parameters(alg, sensealg):
    """y' = -0.1 exp(-0.1 t) (torchdiffeq's ExpODE): the adjoint's products had nothing to
    differentiate and autograd raised 'element 0 of tensors does not require grad'."""
    y0 = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    sol = solve(ODEProblem(lambda t, y: -0.1 * torch.exp(-0.1 * t) * torch.ones_like(y), y0,
                           (1.0, 8.0)), alg, sensealg=sensealg)
    (grad,) = torch.autograd.grad(sol.u[-1], y0)
    assert float(grad) == pytest.approx(1.0, abs=1e-9)
