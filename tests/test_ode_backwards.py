"""ODE solves backwards in time and over an empty span (torchdiffeq's reversed-time cases)."""

import math

import pytest
import torch

from opflow import ODEProblem, solve
from opflow.errors import InvalidArgumentError
from opflow.solvers.ode import (
    RK4,
    BacksolveAdjoint,
    ContinuousCallback,
    Dopri5,
    InterpolatingAdjoint,
    Rodas4,
    Tsit5,
)

F64 = torch.float64


def _rhs(t, u, k):
    return -k * u + torch.sin(t) * torch.ones_like(u)


def _exact(t, k, u0, t0):
    """Solution of u' = -k u + sin t through u(t0) = u0."""
    def particular(s):
        return (k * math.sin(s) - math.cos(s)) / (k**2 + 1)
    return (u0 - particular(t0)) * math.exp(-k * (t - t0)) + particular(t)


@pytest.mark.parametrize("alg", [Tsit5(rtol=1e-10, atol=1e-12), Dopri5(rtol=1e-10, atol=1e-12),
                                 RK4(dt=1e-3), Rodas4(rtol=1e-9, atol=1e-12)],
                         ids=["tsit5", "dopri5", "rk4", "rodas4"])
def test_backwards_in_time_matches_the_exact_solution(alg):
    k = torch.tensor(0.7, dtype=F64)
    u1 = torch.tensor([1.0, -2.0], dtype=F64)
    saves = [2.0, 1.5, 0.5]
    sol = solve(ODEProblem(_rhs, u1, (2.0, 0.5), k), alg, saveat=saves)
    assert sol.success
    torch.testing.assert_close(sol.t, torch.tensor(saves, dtype=F64))
    want = torch.tensor([[_exact(t, 0.7, float(v), 2.0) for v in u1] for t in saves], dtype=F64)
    torch.testing.assert_close(sol.u, want, rtol=1e-7, atol=1e-8)


def test_forward_then_backward_returns_to_the_start_with_dense_output():
    u0 = torch.tensor([0.3], dtype=F64)
    k = torch.tensor(0.5, dtype=F64)
    alg = Tsit5(rtol=1e-11, atol=1e-13)
    there = solve(ODEProblem(_rhs, u0, (0.0, 3.0), k), alg)
    back = solve(ODEProblem(_rhs, there.u[-1], (3.0, 0.0), k), alg, dense=True)
    torch.testing.assert_close(back.u[-1], u0, rtol=1e-8, atol=1e-9)
    mid = float(back(1.2)[0])
    assert abs(mid - _exact(1.2, 0.5, 0.3, 0.0)) < 1e-7


@pytest.mark.parametrize("sensealg", [None, BacksolveAdjoint(), InterpolatingAdjoint()],
                         ids=["direct", "backsolve", "interpolating"])
def test_gradients_backwards_in_time(sensealg):
    """d u(t1) / d k and d u(t1) / d u(t0) for t1 < t0, against the closed form."""
    k = torch.tensor(0.7, dtype=F64, requires_grad=True)
    u1 = torch.tensor([1.0], dtype=F64, requires_grad=True)
    sol = solve(ODEProblem(_rhs, u1, (2.0, 0.5), k), Tsit5(rtol=1e-10, atol=1e-12),
                sensealg=sensealg)
    gk, gu = torch.autograd.grad(sol.u[-1].sum(), (k, u1))
    eps = 1e-6
    fd = (_exact(0.5, 0.7 + eps, 1.0, 2.0) - _exact(0.5, 0.7 - eps, 1.0, 2.0)) / (2 * eps)
    assert abs(float(gk) - fd) < 1e-6 * max(1.0, abs(fd))
    assert abs(float(gu) - math.exp(-0.7 * (0.5 - 2.0))) < 1e-7


def test_empty_span_returns_the_initial_state():
    u0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    sol = solve(ODEProblem(lambda t, u: -u, u0, (1.0, 1.0)), Tsit5())
    assert sol.success and sol.stats.steps == 0
    torch.testing.assert_close(sol.t, torch.tensor([1.0], dtype=F64))
    torch.testing.assert_close(sol.u, u0[None].detach())
    (g,) = torch.autograd.grad(sol.u.sum(), u0)  # the identity map
    torch.testing.assert_close(g, torch.ones(2, dtype=F64))


def test_callbacks_are_refused_backwards():
    cb = ContinuousCallback(lambda t, u: u[0] - 0.5, terminate=True)
    with pytest.raises(InvalidArgumentError, match="callback"):
        solve(ODEProblem(lambda t, u: -u, torch.ones(1, dtype=F64), (1.0, 0.0)), Tsit5(),
              callback=cb)
