"""Adjoint sensitivities of the stiff methods: against exact gradients, direct backprop
and finite differences, with per-sample parameters, modules and split problems."""

import math

import pytest
import torch

from opflow import ODEProblem, solve
from opflow.problems import SplitODEProblem
from opflow.solvers.ode import (
    BacksolveAdjoint,
    DirectBackprop,
    InterpolatingAdjoint,
    KenCarp4,
    Kvaerno5,
    Rodas4,
    Rosenbrock23,
)

F64 = torch.float64
SAVE = [0.0, 0.002, 0.01, 1.0]
WEIGHTS = torch.tensor([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0], [0.5, 1.0]], dtype=F64)


def _decay(t, u, p):
    return -p * u


def _exact_grad(p):
    """d/dp of sum_k w_k . exp(-p t_k) (u0 = 1): -t_k w_k exp(-p t_k)."""
    t = torch.tensor(SAVE, dtype=F64)[:, None]
    return (-t * WEIGHTS * torch.exp(-p.detach() * t)).sum(0)


@pytest.mark.parametrize("alg", [Rodas4(rtol=1e-8, atol=1e-12), Kvaerno5(rtol=1e-8, atol=1e-12),
                                 Rosenbrock23(rtol=1e-7, atol=1e-11)],
                         ids=["rodas4", "kvaerno5", "rosenbrock23"])
def test_interpolating_adjoint_matches_the_exact_gradient_of_a_stiff_decay(alg):
    p = torch.tensor([1.0, 500.0], dtype=F64, requires_grad=True)
    sol = solve(ODEProblem(_decay, torch.ones(2, dtype=F64), (0.0, 1.0), p), alg,
                saveat=SAVE, sensealg=InterpolatingAdjoint())
    (grad,) = torch.autograd.grad((sol.u * WEIGHTS).sum(), p)
    rtol = 2e-5 if isinstance(alg, Rosenbrock23) else 2e-6
    torch.testing.assert_close(grad, _exact_grad(p), rtol=rtol, atol=1e-9)


def test_backsolve_adjoint_on_a_mildly_stiff_problem():
    """Backwards the state's decaying modes grow: fine at eigenvalue -20, not at -1e4."""
    p = torch.tensor([1.0, 20.0], dtype=F64, requires_grad=True)
    u0 = torch.ones(2, dtype=F64, requires_grad=True)
    sol = solve(ODEProblem(_decay, u0, (0.0, 1.0), p), Rodas4(rtol=1e-9, atol=1e-12),
                saveat=SAVE, sensealg=BacksolveAdjoint())
    gp, gu = torch.autograd.grad((sol.u * WEIGHTS).sum(), (p, u0))
    torch.testing.assert_close(gp, _exact_grad(p), rtol=1e-5, atol=1e-9)
    t = torch.tensor(SAVE, dtype=F64)[:, None]
    want_u0 = (WEIGHTS * torch.exp(-p.detach() * t)).sum(0)
    torch.testing.assert_close(gu, want_u0, rtol=1e-6, atol=1e-9)


def _rober(t, u, p):
    k1, k2, k3 = p[..., 0:1], p[..., 1:2], p[..., 2:3]
    y1, y2, y3 = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    return torch.cat([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 ** 2 - k3 * y2 * y3,
                      k2 * y2 ** 2], -1)


def test_robertson_with_per_sample_rates_matches_direct_backprop():
    """Two Robertson systems, each with its own rate constants, losses at two times."""
    rates = torch.tensor([[0.04, 3e7, 1e4], [0.07, 1.5e7, 2e4]], dtype=F64)
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=F64).expand(2, 3)

    def grads(sensealg):
        p = rates.clone().requires_grad_(True)
        y0 = u0.clone().requires_grad_(True)
        sol = solve(ODEProblem(_rober, y0, (0.0, 0.2), p, batched=True),
                    Kvaerno5(rtol=1e-8, atol=1e-12), saveat=[0.0, 0.05, 0.2], sensealg=sensealg)
        loss = (sol.u[-1, :, 0] + 1e3 * sol.u[1, :, 2]).sum()
        return torch.autograd.grad(loss, (p, y0))

    (gp, gu), (wp, wu) = grads(InterpolatingAdjoint()), grads(DirectBackprop())
    torch.testing.assert_close(gp * rates, wp * rates, rtol=1e-5, atol=1e-10)
    torch.testing.assert_close(gu, wu, rtol=1e-5, atol=1e-8)


def test_module_parameters_and_a_state_independent_term():
    """A universal differential equation: a stiff linear part plus a small network, and a
    forcing that does not depend on the state (its adjoint term is zero, not an error)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 2)).double()
    forcing = torch.tensor(0.3, dtype=F64, requires_grad=True)
    A = torch.tensor([[-300.0, 1.0], [0.0, -2.0]], dtype=F64)

    def f(t, u):
        return u @ A.T + 0.1 * net(u) + forcing * torch.exp(-t) * torch.ones_like(u)

    def grads(sensealg):
        sol = solve(ODEProblem(f, torch.tensor([1.0, -0.5], dtype=F64), (0.0, 1.0)),
                    Kvaerno5(rtol=1e-8, atol=1e-12), saveat=[0.0, 0.5, 1.0], sensealg=sensealg)
        loss = sol.u[1:].square().sum()
        return torch.autograd.grad(loss, [forcing, *net.parameters()])

    for got, want in zip(grads(InterpolatingAdjoint()), grads(DirectBackprop())):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-9)


def test_kencarp4_adjoint_of_a_split_problem():
    """IMEX: the adjoint keeps the split (the stiff part's transpose implicit)."""
    lam = torch.tensor(400.0, dtype=F64, requires_grad=True)
    omega = torch.tensor(1.5, dtype=F64, requires_grad=True)

    def stiff(t, u):
        return -lam * u

    def rotation(t, u):
        return omega * torch.stack([u[..., 1], -u[..., 0]], -1)

    def loss(sensealg):
        prob = SplitODEProblem(stiff, rotation, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 0.01))
        sol = solve(prob, KenCarp4(rtol=1e-9, atol=1e-13), sensealg=sensealg)
        return sol.u[-1, 0] + 2 * sol.u[-1, 1]

    (gl, go) = torch.autograd.grad(loss(InterpolatingAdjoint()), (lam, omega))
    # exact: u(t) = exp(-lam t) (cos wt, -sin wt)
    t, lam_, om = 0.01, lam.detach(), omega.detach()
    value = math.exp(-float(lam_) * t) * (torch.cos(om * t) - 2 * torch.sin(om * t))
    torch.testing.assert_close(gl, -t * value, rtol=1e-6, atol=1e-12)
    want_o = math.exp(-float(lam_) * t) * t * (-torch.sin(om * t) - 2 * torch.cos(om * t))
    torch.testing.assert_close(go, want_o, rtol=1e-6, atol=1e-12)


def test_adjoint_is_not_run_without_gradients():
    """Under no_grad, or with nothing to differentiate, the forward solve alone runs."""
    p = torch.tensor([1.0, 500.0], dtype=F64)
    sol = solve(ODEProblem(_decay, torch.ones(2, dtype=F64), (0.0, 1.0), p), Rodas4(),
                sensealg=InterpolatingAdjoint())
    assert sol.success and not sol.u.requires_grad
