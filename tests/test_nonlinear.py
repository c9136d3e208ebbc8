"""Nonlinear solves: classic test functions, batched families, quadratic convergence,
implicit gradients against finite differences and unrolled backprop, flat memory."""

import math

import numpy as np
import pytest
import torch

from opflow import Field, Grid, ReturnCode, solve
from opflow.errors import InvalidArgumentError, ShapeError, SolverError
from opflow.solvers.nonlinear import (
    GaussNewton,
    ImplicitAdjoint,
    LevenbergMarquardt,
    NewtonKrylov,
    NewtonRaphson,
    NonlinearLeastSquaresProblem,
    NonlinearProblem,
)
from opflow.solvers.ode import DirectBackprop

F64 = torch.float64


def rosenbrock(u):
    return torch.stack([10.0 * (u[1] - u[0] ** 2), 1.0 - u[0]])


def powell_singular(u):
    return torch.stack([u[0] + 10 * u[1], math.sqrt(5) * (u[2] - u[3]),
                        (u[1] - 2 * u[2]) ** 2, math.sqrt(10) * (u[0] - u[3]) ** 2])


@pytest.mark.parametrize("alg", [NewtonRaphson(), LevenbergMarquardt(), GaussNewton()],
                         ids=["newton", "lm", "gauss-newton"])
def test_rosenbrock_root(alg):
    sol = solve(NonlinearProblem(rosenbrock, torch.tensor([-1.2, 1.0], dtype=F64)), alg)
    assert sol.retcode == ReturnCode.Success and sol.kind == "steady"
    torch.testing.assert_close(sol.u, torch.ones(2, dtype=F64), rtol=0, atol=1e-8)
    assert sol.stats.iterations < 40 and sol.stats.jacobians >= 1 and sol.stats.nfe > 0


@pytest.mark.parametrize("alg", [NewtonRaphson(max_iters=200), LevenbergMarquardt(max_iters=500)],
                         ids=["newton", "lm"])
def test_powell_singular_function(alg):
    # the Jacobian is singular at the root: Newton converges, but only linearly
    sol = solve(NonlinearProblem(powell_singular, torch.tensor([3.0, -1.0, 0.0, 1.0], dtype=F64)),
                alg)
    assert sol.retcode == ReturnCode.Success
    assert float(sol.u.abs().max()) < 1e-4
    assert float(powell_singular(sol.u).abs().max()) <= 1e-8


def test_newton_converges_quadratically():
    sol = solve(NonlinearProblem(lambda u: torch.cos(u) - u ** 3, torch.tensor([1.5], dtype=F64)),
                NewtonRaphson(abstol=1e-15, reltol=0.0))
    r = [h for h in sol.record["history"] if h > 1e-14]
    assert len(r) >= 4
    # e_{k+1} / e_k^2 stays bounded while e_k falls: order 2 (1.8 to leave room)
    orders = [math.log(r[k + 1]) / math.log(r[k]) for k in range(len(r) - 2, len(r) - 1)
              if r[k] < 0.1]
    assert orders and min(orders) > 1.8, (r, orders)


def test_batched_family_each_sample_converges_on_its_own():
    p = torch.linspace(-20.0, 50.0, 16, dtype=F64)[:, None]
    prob = NonlinearProblem(lambda u, p: u ** 3 + u - p, torch.zeros(16, 1, dtype=F64), p,
                            batched=True)
    sol = solve(prob, NewtonRaphson())
    assert sol.retcode == ReturnCode.Success and sol.record["retcodes"] == ["Success"] * 16
    torch.testing.assert_close(sol.u ** 3 + sol.u, p, rtol=0, atol=1e-9)
    # the hardest sample sets the iteration count; the easy ones froze early
    assert sol.stats.iterations > 3


def test_field_state_and_tuple_state():
    grid = Grid.uniform(x=(0.0, 1.0, 8))
    u0 = Field(torch.ones(1, 8, dtype=F64), grid)
    sol = solve(NonlinearProblem(lambda u: u * u - 4.0, u0), NewtonRaphson())
    assert isinstance(sol.u, Field) and sol.u.grid == grid
    torch.testing.assert_close(sol.u.values, torch.full((1, 8), 2.0, dtype=F64))
    sol = solve(NonlinearProblem(lambda u: (u[0] - u[1] ** 2, u[1] - 3.0),
                                 (torch.ones(1, dtype=F64), torch.ones(1, dtype=F64))),
                NewtonRaphson())
    torch.testing.assert_close(sol.u[0], torch.tensor([9.0], dtype=F64))


# ----------------------------------------------------------------- gradients
def _family(p):
    return NonlinearProblem(lambda u, p: torch.stack([u[0] ** 3 + p[0] * u[0] - p[1],
                                                      torch.sin(u[1]) + u[1] - p[0] * u[0]]),
                            torch.tensor([1.0, 0.5], dtype=F64), p)


def _loss(u):
    return (u ** 2).sum() + u[0] * u[1]


def test_implicit_gradient_matches_finite_differences_and_unrolled_backprop():
    p = torch.tensor([2.0, 3.0], dtype=F64, requires_grad=True)
    _loss(solve(_family(p), NewtonRaphson()).u).backward()
    implicit = p.grad.clone()
    p.grad = None
    _loss(solve(_family(p), NewtonRaphson(), sensealg=DirectBackprop()).u).backward()
    unrolled = p.grad.clone()
    fd = torch.zeros(2, dtype=F64)
    for i in range(2):
        e = torch.zeros(2, dtype=F64)
        e[i] = 1e-6
        hi = _loss(solve(_family((p + e).detach()), NewtonRaphson()).u)
        lo = _loss(solve(_family((p - e).detach()), NewtonRaphson()).u)
        fd[i] = (hi - lo) / 2e-6
    torch.testing.assert_close(implicit, fd, rtol=1e-6, atol=1e-8)
    # unrolled backprop differentiates the last Newton step, taken a tolerance away
    torch.testing.assert_close(implicit, unrolled, rtol=1e-5, atol=1e-8)


def test_implicit_gradient_reaches_module_parameters():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3).double()

    def f(u):
        return u + 0.1 * torch.tanh(net(u)) - 1.0

    u0 = torch.zeros(4, 3, dtype=F64)
    sol = solve(NonlinearProblem(f, u0, batched=True), NewtonRaphson())
    sol.u.square().sum().backward()
    got = net.weight.grad.clone()
    # finite differences on one weight entry
    with torch.no_grad():
        w = net.weight[1, 2].item()
        vals = []
        for d in (1e-6, -1e-6):
            net.weight[1, 2] = w + d
            vals.append(float(solve(NonlinearProblem(f, u0, batched=True),
                                    NewtonRaphson()).u.square().sum()))
        net.weight[1, 2] = w
    assert abs(got[1, 2].item() - (vals[0] - vals[1]) / 2e-6) < 1e-7


def _count_saved(fn):
    count = [0]

    def pack(t):
        count[0] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return count[0]


def test_implicit_adjoint_memory_does_not_grow_with_iterations():
    p = torch.tensor([2.0, 3.0], dtype=F64, requires_grad=True)

    def run(u0, sensealg):
        prob = NonlinearProblem(lambda u, p: torch.stack([u[0] ** 3 + p[0] * u[0] - p[1],
                                                          u[1] - p[0]]), u0, p)
        return lambda: solve(prob, NewtonRaphson(), sensealg=sensealg)

    near, far = torch.tensor([1.1, 2.1], dtype=F64), torch.tensor([40.0, 2.0], dtype=F64)
    assert solve(_family(p), NewtonRaphson()).stats.iterations > 0
    implicit = [_count_saved(run(u0, ImplicitAdjoint())) for u0 in (near, far)]
    unrolled = [_count_saved(run(u0, DirectBackprop())) for u0 in (near, far)]
    assert implicit[0] == implicit[1] <= 2
    assert unrolled[1] > unrolled[0] > implicit[0]


# -------------------------------------------------------------- least squares
def _exp_fit(data, t):
    return NonlinearLeastSquaresProblem(lambda u, d: u[0] * torch.exp(u[1] * t) - d,
                                        torch.tensor([1.0, 0.0], dtype=F64), data)


@pytest.mark.parametrize("alg", [GaussNewton(), LevenbergMarquardt()], ids=["gn", "lm"])
def test_least_squares_matches_scipy(alg):
    scipy_opt = pytest.importorskip("scipy.optimize")
    t = torch.linspace(0, 1, 20, dtype=F64)
    g = torch.Generator().manual_seed(3)
    data = 2.0 * torch.exp(-1.3 * t) + 0.05 * torch.randn(20, generator=g, dtype=F64)
    sol = solve(_exp_fit(data, t), alg)
    ref = scipy_opt.least_squares(
        lambda u: u[0] * np.exp(u[1] * t.numpy()) - data.numpy(), [1.0, 0.0],
        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert sol.retcode == ReturnCode.Success
    np.testing.assert_allclose(sol.u.numpy(), ref.x, rtol=1e-8)


def test_least_squares_implicit_gradient_with_nonzero_residual():
    t = torch.linspace(0, 1, 12, dtype=F64)
    data = (2.0 * torch.exp(-1.3 * t) + 0.1 * torch.sin(9 * t)).requires_grad_(True)
    weights = torch.linspace(1, 2, 2, dtype=F64)
    tight = LevenbergMarquardt(abstol=1e-14, reltol=1e-15)
    (solve(_exp_fit(data, t), tight).u * weights).sum().backward()
    got = data.grad.clone()
    for i in (0, 5, 11):
        e = torch.zeros(12, dtype=F64)
        e[i] = 1e-5
        hi = (solve(_exp_fit((data + e).detach(), t), tight).u * weights).sum()
        lo = (solve(_exp_fit((data - e).detach(), t), tight).u * weights).sum()
        assert abs(got[i].item() - float(hi - lo) / 2e-5) < 1e-7


def _exp_fit_jacobian(t):
    """The exact Jacobian of `_exp_fit`'s residuals, counting its calls."""
    calls = []

    def jac(u, d):
        calls.append(1)
        e = torch.exp(u[1] * t)
        return torch.stack([e, u[0] * t * e], dim=1)

    return jac, calls


@pytest.mark.parametrize("alg", [GaussNewton(), LevenbergMarquardt()], ids=["gn", "lm"])
def test_a_given_jacobian_is_used_and_gives_the_same_solution_and_gradient(alg):
    t = torch.linspace(0, 1, 12, dtype=F64)
    data = (2.0 * torch.exp(-1.3 * t) + 0.1 * torch.sin(9 * t)).requires_grad_(True)
    jac, calls = _exp_fit_jacobian(t)
    auto = solve(_exp_fit(data, t), alg)
    (g_auto,) = torch.autograd.grad(auto.u.sum(), data)
    prob = NonlinearLeastSquaresProblem(_exp_fit(data, t).r, torch.tensor([1.0, 0.0], dtype=F64),
                                        data, jac=jac)
    given = solve(prob, alg)
    (g_given,) = torch.autograd.grad(given.u.sum(), data)
    assert calls and given.stats.jacobians == len(calls)
    torch.testing.assert_close(given.u, auto.u, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_given, g_auto, rtol=1e-8, atol=1e-10)


def test_a_batched_jacobian_per_sample():
    t = torch.linspace(0, 1, 10, dtype=F64)
    data = torch.stack([2.0 * torch.exp(-1.3 * t), 0.5 * torch.exp(0.4 * t)])

    def r(u, d):
        return u[:, :1] * torch.exp(u[:, 1:] * t) - d

    def jac(u, d):
        e = torch.exp(u[:, 1:] * t)                                # (B, M)
        return torch.stack([e, u[:, :1] * t * e], dim=2)           # (B, M, D)

    u0 = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    sol = solve(NonlinearLeastSquaresProblem(r, u0, data, batched=True, jac=jac),
                LevenbergMarquardt())
    torch.testing.assert_close(sol.u, torch.tensor([[2.0, -1.3], [0.5, 0.4]], dtype=F64),
                               rtol=1e-8, atol=1e-8)


def test_a_bad_jacobian_is_named():
    t = torch.linspace(0, 1, 6, dtype=F64)
    with pytest.raises(InvalidArgumentError, match="jac"):
        NonlinearLeastSquaresProblem(_exp_fit(t, t).r, torch.ones(2, dtype=F64), t, jac=3)
    wrong = NonlinearLeastSquaresProblem(_exp_fit(t, t).r, torch.ones(2, dtype=F64), t,
                                         jac=lambda u, d: torch.ones(6, 3, dtype=F64))
    with pytest.raises(ShapeError, match="jac"):
        solve(wrong, GaussNewton())
    transposed = NonlinearLeastSquaresProblem(_exp_fit(t, t).r, torch.ones(2, dtype=F64), t,
                                              jac=lambda u, d: torch.ones(2, 6, dtype=F64))
    with pytest.raises(ShapeError, match="jac"):     # same size, wrong layout
        solve(transposed, GaussNewton())


# ------------------------------------------------------------- Newton-Krylov
def _bratu(n=64):
    """-u'' + u^3 = 10 on (0, 1), u = 0 at both ends; n interior points."""
    h = 1.0 / (n + 1)

    def f(u):
        lap = (torch.nn.functional.pad(u, (1, 1)).unfold(-1, 3, 1)
               * torch.tensor([1.0, -2.0, 1.0], dtype=u.dtype)).sum(-1) / h**2
        return -lap + u ** 3 - 10.0

    return f, h


@pytest.mark.parametrize("krylov", ["gmres", "cg"])
def test_newton_krylov_matches_dense_newton(krylov):
    f, h = _bratu()
    u0 = torch.zeros(1, 64, dtype=F64)
    dense = solve(NonlinearProblem(f, u0, batched=True), NewtonRaphson())
    plain = solve(NonlinearProblem(f, u0, batched=True),
                  NewtonKrylov(krylov=krylov, linear_rtol=1e-10, max_linear_iters=500))
    assert plain.retcode == ReturnCode.Success
    torch.testing.assert_close(plain.u, dense.u, rtol=1e-8, atol=1e-10)
    # the exact inverse of the Laplacian part as a preconditioner cuts the Krylov work
    lap = (torch.diag(torch.full((64,), 2.0, dtype=F64)) - torch.diag(torch.ones(63, dtype=F64), 1)
           - torch.diag(torch.ones(63, dtype=F64), -1)) / h**2
    inv = torch.linalg.inv(lap)
    pre = solve(NonlinearProblem(f, u0, batched=True),
                NewtonKrylov(krylov=krylov, linear_rtol=1e-10, precond=lambda r: r @ inv.T))
    torch.testing.assert_close(pre.u, dense.u, rtol=1e-8, atol=1e-10)
    assert pre.stats.linear_iterations < plain.stats.linear_iterations / 2


# -------------------------------------------------------------- bad input
def test_bad_input_gets_a_retcode_or_a_named_error():
    one = torch.ones(1, dtype=F64)
    # no real root: the line search cannot decrease |u^2 + 1|
    sol = solve(NonlinearProblem(lambda u: u ** 2 + 1.0, one), NewtonRaphson())
    assert sol.retcode in (ReturnCode.Stalled, ReturnCode.MaxIters)
    # a residual that becomes NaN
    sol = solve(NonlinearProblem(lambda u: torch.log(u - 2.0), one), NewtonRaphson())
    assert sol.retcode == ReturnCode.Unstable
    # a diverging full-step Newton (arctan from far away) never reports Success
    far = torch.tensor([10.0], dtype=F64)
    assert solve(NonlinearProblem(torch.atan, far), NewtonRaphson(linesearch=False,
                                                                  max_iters=20)).retcode \
        != ReturnCode.Success
    assert solve(NonlinearProblem(torch.atan, far), NewtonRaphson()).retcode == ReturnCode.Success
    with pytest.raises(ShapeError, match="f\\(u\\)"):
        solve(NonlinearProblem(lambda u: u[:1], torch.ones(2, dtype=F64)), NewtonRaphson())
    with pytest.raises(InvalidArgumentError, match="`p`"):
        solve(NonlinearProblem(lambda u, p: u - 1.0, one,
                               torch.ones(1, dtype=F64, requires_grad=True)), NewtonRaphson())
    with pytest.raises(InvalidArgumentError, match="`p`"):
        NonlinearProblem(lambda u: u, one, p=1.0)
    with pytest.raises(InvalidArgumentError, match="abstol"):
        NewtonRaphson(abstol=-1.0)
    with pytest.raises(SolverError, match="GaussNewton"):  # lists what is registered
        solve(NonlinearLeastSquaresProblem(lambda u: u, one), NewtonKrylov())
    with pytest.raises(InvalidArgumentError, match="sensealg"):
        solve(NonlinearProblem(lambda u: u, one), NewtonRaphson(), sensealg="implicit")
