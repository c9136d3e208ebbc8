"""SDE methods added for issue #17: RKMil, ReversibleHeun and its exact adjoint,
adaptive steps, reversed and empty spans."""

import math
import warnings

import numpy as np
import pytest
import torch

import opflow
from opflow import ReturnCode, remake, solve
from opflow.errors import InvalidArgumentError, SolverError
from opflow.solvers.sde import BrownianInterval, EulerMaruyama, Milstein, RKMil, SDEProblem

F64 = torch.float64


def _order(ks, errors):
    """Slope of log(error) against log(dt) for dt = 2**-k."""
    return np.polyfit(np.log([2.0**-k for k in ks]), np.log(np.abs(errors)), 1)[0]


def _gbm(mu, sigma, B, sde_type="ito", tspan=(0.0, 1.0)):
    u0 = torch.ones(B, 1, dtype=F64)
    return SDEProblem(lambda t, u: mu * u, lambda t, u: sigma * u, u0, tspan, sde_type=sde_type)


def _gbm_exact(mu, sigma, W, t=1.0, sde_type="ito"):
    drift = mu - 0.5 * sigma**2 if sde_type == "ito" else mu
    return torch.exp(drift * t + sigma * W)


def _strong_errors(prob, alg, ks, bm, exact, **kw):
    return [float((solve(prob, alg(dt=2.0**-k, **kw), brownian=bm).u[-1] - exact).abs().mean())
            for k in ks]


# -------------------------------------------------------------------- RKMil
@pytest.mark.parametrize("sde_type", ["ito", "stratonovich"])
def test_rkmil_strong_order_one_on_geometric_brownian_motion(sde_type):
    """E|u_N - u(1)| against the closed form driven by the same Brownian path."""
    mu, sigma, B, ks = 0.5, 1.0, 2000, range(3, 9)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=1234, dtype=F64)
    exact = _gbm_exact(mu, sigma, bm(1.0), sde_type=sde_type)
    errors = _strong_errors(_gbm(mu, sigma, B, sde_type), RKMil, ks, bm, exact)
    observed = _order(ks, errors)
    assert 0.8 < observed < 1.2, (errors, observed)
    if sde_type == "ito":  # (Euler-Heun, the Stratonovich EM, is order 1 on scalar noise)
        em = _strong_errors(_gbm(mu, sigma, B, sde_type), EulerMaruyama, [8], bm, exact)[0]
        assert errors[-1] < em / 2


@pytest.mark.parametrize("noise, sde_type", [("diagonal", "ito"), ("diagonal", "stratonovich"),
                                             ("scalar", "ito"), ("scalar", "stratonovich")])
def test_rkmil_agrees_with_milstein(noise, sde_type):
    """Nonlinear diffusion: both are order 1 on one path, so they differ by O(dt)."""
    B, D = 100, 2
    m = 1 if noise == "scalar" else D
    u0 = torch.linspace(-1.0, 1.0, B * D, dtype=F64).reshape(B, D)
    if noise == "scalar":
        def g(t, u):
            return 0.5 * torch.cos(u + u.flip(-1))  # g_i depends on every u_j
    else:
        def g(t, u):
            return 0.6 * (1.0 + 0.5 * torch.sin(2.0 * u))
    prob = SDEProblem(lambda t, u: torch.sin(u) - 0.5 * u, g, u0, (0.0, 1.0), noise=noise,
                      sde_type=sde_type)
    bm = BrownianInterval(0.0, 1.0, (B, m), seed=5, dtype=F64)
    ref = solve(prob, Milstein(dt=2.0**-10), brownian=bm).u[-1]
    ks = range(3, 7)
    gaps, rk_err, mil_err = [], [], []
    for k in ks:
        rk = solve(prob, RKMil(dt=2.0**-k), brownian=bm).u[-1]
        mil = solve(prob, Milstein(dt=2.0**-k), brownian=bm).u[-1]
        gaps.append(float((rk - mil).abs().mean()))
        rk_err.append(float((rk - ref).abs().mean()))
        mil_err.append(float((mil - ref).abs().mean()))
    assert _order(ks, gaps) > 0.8, gaps
    assert _order(ks, rk_err) > 0.8, rk_err
    assert rk_err[-1] < 2 * mil_err[-1] + 1e-3, (rk_err, mil_err)


def test_rkmil_layouts_and_refusals():
    B, D = 4, 3
    u0 = torch.randn(B, D, dtype=F64)
    prob = SDEProblem(lambda t, u: -u, lambda t, u: 0.2 * u, u0, (0.0, 1.0))
    sol = solve(prob, RKMil(dt=0.1), seed=0)
    assert sol.stats.nfe == 30 and sol.u.shape == (2, B, D)
    strat = solve(remake(prob, sde_type="stratonovich"), RKMil(dt=0.1), seed=0)
    assert strat.stats.nfe == 40
    add = SDEProblem(lambda t, u: -u, lambda t, u: torch.ones_like(u), u0, (0.0, 1.0),
                     noise="additive")
    a = solve(add, RKMil(dt=0.1), seed=3).u
    assert torch.equal(a, solve(add, EulerMaruyama(dt=0.1), seed=3).u)
    general = remake(prob, diffusion=lambda t, u: u[..., None], noise="general")
    with pytest.raises(SolverError, match="RKMil"):
        solve(general, RKMil(dt=0.1), seed=0)
    with pytest.raises(InvalidArgumentError, match="dt"):
        RKMil(dt=-1.0)


# ---------------------------------------------------------- reversible Heun
def _levy_exact(bm, n_fine=2**12):
    """du1 = dW1, du2 = u1 o dW2 from 0: u2(1) = int W1 o dW2, the Stratonovich integral
    (trapezoidal sums on a fine grid of the same path; needs the Levy area of (W1, W2))."""
    ts = torch.linspace(0, 1, n_fine + 1, dtype=F64)
    W = torch.cat([torch.zeros(1, *bm.shape, dtype=F64), bm.on_grid(ts).cumsum(0)])
    dW2 = W[1:, :, 1] - W[:-1, :, 1]
    return torch.stack([W[-1, :, 0], (0.5 * (W[1:, :, 0] + W[:-1, :, 0]) * dW2).sum(0)], -1)


def test_reversible_heun_strong_order_one_half_on_noncommutative_noise():
    B, ks = 500, range(2, 8)
    bm = BrownianInterval(0.0, 1.0, (B, 2), seed=11, dtype=F64)

    def g(t, u):
        out = torch.zeros(*u.shape, 2, dtype=u.dtype)
        out[..., 0, 0] = 1.0
        out[..., 1, 1] = u[..., 0]
        return out

    prob = SDEProblem(lambda t, u: torch.zeros_like(u), g, torch.zeros(B, 2, dtype=F64),
                      (0.0, 1.0), noise="general", sde_type="stratonovich")
    exact = _levy_exact(bm)
    errors = _strong_errors(prob, opflow.ReversibleHeun, ks, bm, exact)
    observed = _order(ks, errors)
    assert 0.35 < observed < 0.7, (errors, observed)


def test_reversible_heun_strong_order_one_on_additive_noise():
    """Ornstein-Uhlenbeck du = -theta u dt + sigma dW against its exact solution."""
    theta, sigma, B, ks = 2.0, 0.5, 500, range(2, 7)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=77, dtype=F64)
    u0 = torch.ones(B, 1, dtype=F64)
    ts = torch.linspace(0, 1, 2**10 + 1, dtype=F64)
    dW, H = bm.on_grid(ts, levy_area=True)
    d = 2.0**-10
    weight = torch.exp(-theta * (1 - ts[:-1]))[:, None, None]
    exact = math.exp(-theta) * u0 + sigma * (weight * (dW + theta * d * (0.5 * dW - H))).sum(0)
    prob = SDEProblem(lambda t, u: -theta * u, lambda t, u: sigma * torch.ones_like(u), u0,
                      (0.0, 1.0), noise="additive")  # Ito = Stratonovich: accepted
    errors = _strong_errors(prob, opflow.ReversibleHeun, ks, bm, exact)
    observed = _order(ks, errors)
    assert 0.8 < observed < 1.3, (errors, observed)


def test_reversible_heun_order_on_geometric_brownian_motion():
    """Scalar (commutative) multiplicative noise: measured order about 1."""
    mu, sigma, B, ks = 0.5, 1.0, 2000, range(3, 9)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=1234, dtype=F64)
    exact = _gbm_exact(mu, sigma, bm(1.0), sde_type="stratonovich")
    errors = _strong_errors(_gbm(mu, sigma, B, "stratonovich"), opflow.ReversibleHeun, ks, bm,
                            exact)
    assert _order(ks, errors) > 0.8, errors


def _heun_problem(noise, B=16):
    p = torch.tensor([0.8, 1.0, 0.4], dtype=F64, requires_grad=True)
    u0 = torch.linspace(-1, 1, 2 * B, dtype=F64).reshape(B, 2).requires_grad_(True)
    mix = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=F64)
    diffusions = {
        "diagonal": lambda t, u, p: p[2] * (1 + 0.5 * torch.sin(u)),
        "scalar": lambda t, u, p: p[2] * torch.cos(u @ mix),
        "general": lambda t, u, p: p[2] * torch.tanh(u)[..., None] * mix,
        "additive": lambda t, u, p: p[2] * (1 + t) * torch.ones_like(u),
    }
    prob = SDEProblem(lambda t, u, p: p[0] * torch.tanh(u) - p[1] * u, diffusions[noise], u0,
                      (0.0, 1.0), p=p, noise=noise, sde_type="stratonovich")
    return prob, p, u0, (1 if noise == "scalar" else 2)


@pytest.mark.parametrize("noise", ["diagonal", "scalar", "general", "additive"])
def test_reversible_adjoint_equals_direct_backprop(noise):
    """The backward pass reconstructs the forward states: direct backprop's gradient
    through the same discretisation, to rounding (float64)."""
    prob, p, u0, m = _heun_problem(noise)
    results = []
    for sensealg in (opflow.DirectBackprop(), opflow.ReversibleAdjoint()):
        bm = BrownianInterval(0.0, 1.0, (16, m), seed=3, dtype=F64)
        sol = solve(prob, opflow.ReversibleHeun(dt=2.0**-7), brownian=bm,
                    saveat=[0.0, 0.3, 1.0], sensealg=sensealg)
        loss = sol.u.square().mean() + sol.u[-1].sum()
        results.append((sol.u.detach(), torch.autograd.grad(loss, [p, u0])))
    (u_direct, g_direct), (u_rev, g_rev) = results
    assert torch.equal(u_direct, u_rev)
    for a, b in zip(g_direct, g_rev):
        assert float((a - b).norm() / a.norm()) < 1e-8


def test_reversible_adjoint_with_seed_module_and_refusals():
    net = torch.nn.Linear(2, 2).double()
    prob = SDEProblem(lambda t, u: net(u), lambda t, u: 0.2 * torch.sigmoid(u),
                      torch.ones(4, 2, dtype=F64), (0.0, 1.0), sde_type="stratonovich")
    grads = []
    for sensealg in (None, opflow.ReversibleAdjoint()):
        sol = solve(prob, opflow.ReversibleHeun(dt=0.05), seed=2, sensealg=sensealg)
        grads.append(torch.autograd.grad(sol.u[-1].sum(), list(net.parameters())))
        assert sol.stats.nfe == 42
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)
    with pytest.raises(SolverError, match="Stratonovich"):
        solve(remake(prob, sde_type="ito"), opflow.ReversibleHeun(dt=0.1), seed=0)
    with pytest.raises(InvalidArgumentError, match="sensealg"):
        solve(prob, EulerMaruyama(dt=0.1), seed=0, sensealg=opflow.ReversibleAdjoint())


# ----------------------------------------------------------- adaptive steps
def test_adaptive_error_drops_as_rtol_tightens_on_gbm():
    """The path drawn from ``seed`` is BrownianInterval(seed=...)'s: the closed form
    written with that path is what the adaptive solves converge to."""
    mu, sigma, B = 0.5, 1.0, 100
    prob = _gbm(mu, sigma, B)
    exact = _gbm_exact(mu, sigma, BrownianInterval(0.0, 1.0, (B, 1), seed=21, dtype=F64)(1.0))
    errors, steps = [], []
    for rtol in (1e-1, 1e-2, 1e-3):
        sol = solve(prob, RKMil(dt=0.1, adaptive=True, rtol=rtol, atol=rtol / 100), seed=21)
        assert sol.retcode == ReturnCode.Success
        errors.append(float((sol.u[-1] - exact).abs().mean()))
        steps.append(sol.stats.steps)
    assert errors[0] > errors[1] > errors[2] and errors[2] < errors[0] / 5, errors
    assert steps[0] < steps[1] < steps[2], steps


@pytest.mark.filterwarnings("ignore:EulerMaruyama with adaptive steps")
def test_adaptive_rejects_steps_on_a_stiff_problem_and_stays_accurate():
    B = 20
    prob = SDEProblem(lambda t, u: -30.0 * (u - torch.sin(4 * t)), lambda t, u: 0.1 * u,
                      torch.ones(B, 1, dtype=F64), (0.0, 1.0))
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=4, dtype=F64)
    sol = solve(prob, EulerMaruyama(dt=0.5, adaptive=True, rtol=1e-2, atol=1e-4), brownian=bm,
                saveat=[0.25, 0.5, 1.0])
    assert sol.retcode == ReturnCode.Success and sol.stats.rejects > 0
    assert sol.stats.iterations == sol.stats.steps + sol.stats.rejects
    fine = solve(prob, EulerMaruyama(dt=2.0**-11), brownian=bm, saveat=[0.25, 0.5, 1.0])
    assert float((sol.u - fine.u).abs().max()) < 0.05


def test_adaptive_solution_is_the_fixed_grid_solution_of_its_accepted_steps():
    """Direct backprop keeps the adaptive march's states; an adjoint re-runs the accepted
    grid with increments queried afresh: the two agree bit for bit, and so do the
    gradients of ReversibleHeun's exact adjoint."""
    prob, p, u0, m = _heun_problem("diagonal")
    alg = opflow.ReversibleHeun(dt=0.2, adaptive=True, rtol=1e-3, atol=1e-5)
    results = []
    for sensealg in (opflow.DirectBackprop(), opflow.ReversibleAdjoint(),
                     opflow.BacksolveAdjoint()):
        sol = solve(prob, alg, seed=9, saveat=[0.5, 1.0], sensealg=sensealg)
        assert sol.stats.rejects > 0
        results.append((sol.u.detach(), torch.autograd.grad(sol.u.square().sum(), [p, u0])))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][0],
                                                                     results[2][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert float((a - b).norm() / a.norm()) < 1e-8


@pytest.mark.filterwarnings("ignore:EulerMaruyama with adaptive steps")
def test_adaptive_limits_and_bad_options():
    prob = _gbm(0.5, 1.0, 8)
    sol = solve(prob, EulerMaruyama(dt=0.5, adaptive=True, rtol=1e-6, atol=1e-8, max_steps=5),
                seed=0, saveat=[0.0, 0.5, 1.0])
    assert sol.retcode == ReturnCode.MaxIters and sol.stats.iterations == 5
    assert torch.isfinite(sol.u[0]).all() and torch.isnan(sol.u[-1]).all()
    coarse = solve(prob, EulerMaruyama(dt=0.5, adaptive=True, rtol=1e-6, atol=1e-8,
                                       dtmin=0.25), seed=0)
    # the first attempt (0.5) is rejected, then steps of dtmin are accepted
    assert coarse.success and coarse.stats.rejects == 1 and coarse.stats.steps == 4
    for kw, name in [({"rtol": -1.0}, "rtol"), ({"atol": math.inf}, "atol"),
                     ({"rtol": 0.0, "atol": 0.0}, "atol"), ({"dtmin": -0.1}, "dtmin"),
                     ({"max_steps": 0}, "max_steps"), ({"adaptive": 1}, "adaptive")]:
        with pytest.raises(InvalidArgumentError, match=name):
            EulerMaruyama(dt=0.1, **kw)
    with pytest.raises(InvalidArgumentError, match="seed"):
        solve(prob, EulerMaruyama(dt=0.1, adaptive=True), seed=1,
              brownian=BrownianInterval(0.0, 1.0, (8, 1), seed=1))


def _em_warnings(prob, alg, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solve(prob, alg, seed=0, **kw)
    return [w for w in caught if "EulerMaruyama with adaptive steps" in str(w.message)]


def test_adaptive_euler_maruyama_warns_on_ito_state_dependent_noise():
    """Adaptive Euler-Maruyama on Ito GBM converges to a biased answer (the steps
    depend on the increments they take: pathwise error about 9e-3 at rtol 1e-4, nearly
    every path too high, where Milstein reaches 3e-4), so solve warns, as torchsde does; not
    for additive noise, the Stratonovich form (Euler-Heun), other methods or fixed steps."""
    u0 = torch.ones(4, 2, dtype=F64)
    gbm = SDEProblem(lambda t, u: 0.5 * u, lambda t, u: u, u0, (0.0, 0.5))
    adaptive = EulerMaruyama(dt=0.1, adaptive=True, rtol=1e-2, atol=1e-4)
    for prob in (gbm, remake(gbm, noise="scalar", diffusion=lambda t, u: u.mean(-1, True) * u),
                 remake(gbm, noise="general", diffusion=lambda t, u: u[..., None].repeat(1, 1, 3)),
                 remake(gbm, tspan=(0.5, 0.0))):
        (caught,) = _em_warnings(prob, adaptive)
        assert caught.category is UserWarning and "Ito" in str(caught.message)
    additive = remake(gbm, noise="additive", diffusion=lambda t, u: torch.ones_like(u))
    for prob, alg in [(additive, adaptive), (remake(gbm, sde_type="stratonovich"), adaptive),
                      (gbm, Milstein(dt=0.1, adaptive=True)), (gbm, RKMil(dt=0.1, adaptive=True)),
                      (gbm, EulerMaruyama(dt=0.1))]:
        assert not _em_warnings(prob, alg)


# ------------------------------------------------- reversed and empty spans
def test_empty_span_returns_the_initial_state():
    u0 = torch.randn(5, 2, dtype=F64)
    prob = SDEProblem(lambda t, u: -u, lambda t, u: u, u0, (0.5, 0.5))
    sol = solve(prob, Milstein(dt=0.1), seed=0)
    assert sol.success and sol.t.tolist() == [0.5] and torch.equal(sol.u[0], u0)
    assert sol.u.shape == (1, 5, 2) and sol.stats.nfe == 0


@pytest.mark.parametrize("alg", [RKMil, Milstein])
def test_backwards_in_time_on_stratonovich_gbm(alg):
    """u(t) = u(t0) exp(mu (t - t0) + sigma (W(t) - W(t0))) holds pathwise both ways: from
    t0 = 1 down to 0 on the same path, the error is order 1 in dt."""
    mu, sigma, B = 0.5, 0.8, 500
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=8, dtype=F64)
    prob = _gbm(mu, sigma, B, "stratonovich", tspan=(1.0, 0.0))
    w1 = bm(1.0)
    exact = torch.exp(-mu - sigma * w1)  # u(0), given u(1) = 1
    ks = range(3, 8)
    errors = _strong_errors(prob, alg, ks, bm, exact)
    assert 0.8 < _order(ks, errors) < 1.3, errors
    sol = solve(prob, alg(dt=2.0**-6), brownian=bm, saveat=[1.0, 0.75, 0.5, 0.0])
    assert sol.t.tolist() == [1.0, 0.75, 0.5, 0.0] and torch.equal(sol.u[0], prob.u0)
    mid = torch.exp(-mu * 0.5 + sigma * (bm(0.5) - w1))
    assert float((sol.u[2] - mid).abs().mean()) < 0.05


def test_backwards_adaptive_seeded_and_gradients():
    """A reversed span with a seed, adaptive steps and the reversible adjoint."""
    prob, p, u0, m = _heun_problem("diagonal")
    prob = remake(prob, tspan=(1.0, -0.5))
    alg = opflow.ReversibleHeun(dt=0.1, adaptive=True, rtol=1e-3, atol=1e-5)
    results = []
    for sensealg in (None, opflow.ReversibleAdjoint()):
        sol = solve(prob, alg, seed=4, saveat=0.5, sensealg=sensealg)
        assert sol.success and sol.t.tolist() == [1.0, 0.5, 0.0, -0.5]
        results.append((sol.u.detach(), torch.autograd.grad(sol.u.square().sum(), [p, u0])))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert float((a - b).norm() / a.norm()) < 1e-8
    short = BrownianInterval(0.0, 1.0, (16, m), seed=0, dtype=F64)
    with pytest.raises(InvalidArgumentError, match="brownian"):
        solve(prob, opflow.ReversibleHeun(dt=0.1), brownian=short)
