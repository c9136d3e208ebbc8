"""SDE solvers: strong and weak orders, Brownian paths, gradients, bad inputs."""

import math

import numpy as np
import pytest
import torch

import opflow
from opflow import Field, Grid, ReturnCode, remake, solve
from opflow.errors import InvalidArgumentError, ShapeError, SolverError
from opflow.solvers.sde import SRA1, BrownianInterval, EulerMaruyama, Milstein, SDEProblem

F64 = torch.float64


def _order(ks, errors):
    """Slope of log(error) against log(dt) for dt = 2**-k."""
    return np.polyfit(np.log([2.0**-k for k in ks]), np.log(np.abs(errors)), 1)[0]


def _gbm(mu, sigma, B, sde_type="ito"):
    u0 = torch.ones(B, 1, dtype=F64)
    return SDEProblem(lambda t, u: mu * u, lambda t, u: sigma * u, u0, (0.0, 1.0),
                      sde_type=sde_type)


def _gbm_exact(mu, sigma, W1, sde_type="ito"):
    drift = mu - 0.5 * sigma**2 if sde_type == "ito" else mu
    return torch.exp(drift + sigma * W1)


# ------------------------------------------------------------------- strong
@pytest.mark.parametrize("alg, kw, sde_type, order", [
    (EulerMaruyama, {}, "ito", 0.5),
    (Milstein, {}, "ito", 1.0),
    (Milstein, {"derivative": "fd"}, "stratonovich", 1.0),
])
def test_strong_order_on_geometric_brownian_motion(alg, kw, sde_type, order):
    """E|u_N - u(1)| against the exact solution written with the same path."""
    mu, sigma, B, ks = 0.5, 1.0, 2000, range(3, 9)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=1234, dtype=F64)
    prob = _gbm(mu, sigma, B, sde_type)
    exact = _gbm_exact(mu, sigma, bm(1.0), sde_type)
    errors = [float((solve(prob, alg(dt=2.0**-k, **kw), brownian=bm).u[-1] - exact)
                    .abs().mean()) for k in ks]
    observed = _order(ks, errors)
    assert abs(observed - order) < 0.15, (errors, observed)


def _ou_exact(theta, sigma, u0, bm, n_fine=2**10):
    """u0 e^{-theta} + sigma int_0^1 e^{-theta (1 - s)} dW_s on a fine grid of the same path.

    On a cell ``[a, a + d]``: ``int e^{-theta(1-s)} dW = e^{-theta(1-a)} (dW + theta d (dW/2 -
    H))`` up to O(d^2.5) (``int (s - a) dW = d (dW/2 - H)``, H the Levy area).
    """
    ts = torch.linspace(0, 1, n_fine + 1, dtype=F64)
    dW, H = bm.on_grid(ts, levy_area=True)
    d = 1.0 / n_fine
    weight = torch.exp(-theta * (1 - ts[:-1]))[:, None, None]
    integral = (weight * (dW + theta * d * (0.5 * dW - H))).sum(0)
    return math.exp(-theta) * u0 + sigma * integral


def test_sra1_on_ornstein_uhlenbeck_against_exact_solution():
    """Linear drift, additive noise: SRA1 is at least order 1.5 (it reaches 2 here,
    since the terms that limit it to 1.5 need a nonlinear drift)."""
    theta, sigma, B, ks = 2.0, 0.5, 500, range(2, 6)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=77, dtype=F64)
    u0 = torch.ones(B, 1, dtype=F64)
    prob = SDEProblem(lambda t, u: -theta * u, lambda t, u: sigma * torch.ones_like(u), u0,
                      (0.0, 1.0), noise="additive")
    exact = _ou_exact(theta, sigma, u0, bm)
    errors = [float((solve(prob, SRA1(dt=2.0**-k), brownian=bm).u[-1] - exact).abs().mean())
              for k in ks]
    observed = _order(ks, errors)
    assert observed > 1.5 - 0.15, (errors, observed)
    em = float((solve(prob, EulerMaruyama(dt=2.0**-5), brownian=bm).u[-1] - exact).abs().mean())
    assert errors[-1] < em / 10


def test_sra1_strong_order_one_and_a_half_on_nonlinear_drift():
    """du = sin(3u) dt + dW: error against SRA1 on a 16x finer grid of the same path."""
    B, ks = 500, range(2, 7)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=1, dtype=F64)
    u0 = torch.full((B, 1), 0.5, dtype=F64)
    prob = SDEProblem(lambda t, u: torch.sin(3 * u), lambda t, u: torch.ones_like(u), u0,
                      (0.0, 1.0), noise="additive")
    ref = solve(prob, SRA1(dt=2.0**-10), brownian=bm).u[-1]
    errors = [float((solve(prob, SRA1(dt=2.0**-k), brownian=bm).u[-1] - ref).abs().mean())
              for k in ks]
    observed = _order(ks, errors)
    assert abs(observed - 1.5) < 0.15, (errors, observed)


# --------------------------------------------------------------------- weak
def test_euler_maruyama_weak_order_on_gbm_moments():
    """Mean and second moment at t = 1 converge like dt.

    The weak error ``E[u_N] - E[u(1)]`` is estimated as the sample mean of
    ``u_N - u(1)`` on shared paths (an unbiased estimator whose noise is the
    strong error over sqrt(B), far below the weak error), and is also
    compared with EM's exact expectations (1 + mu h)^N and
    ((1 + mu h)^2 + sigma^2 h)^N.
    """
    mu, sigma, B, ks = 1.0, 0.5, 20000, range(3, 8)
    bm = BrownianInterval(0.0, 1.0, (B, 1), seed=0, dtype=F64)
    prob = _gbm(mu, sigma, B)
    exact = _gbm_exact(mu, sigma, bm(1.0))
    e1, e2 = [], []
    for k in ks:
        h, n = 2.0**-k, 2**k
        uN = solve(prob, EulerMaruyama(dt=h), brownian=bm).u[-1]
        e1.append(float((uN - exact).mean()))
        e2.append(float((uN**2 - exact**2).mean()))
        theory1 = (1 + mu * h) ** n - math.exp(mu)
        theory2 = ((1 + mu * h) ** 2 + sigma**2 * h) ** n - math.exp(2 * mu + sigma**2)
        assert 0.85 < e1[-1] / theory1 < 1.15 and 0.85 < e2[-1] / theory2 < 1.15
    for errors in (e1, e2):
        observed = _order(ks, errors)
        assert abs(observed - 1.0) < 0.15, (errors, observed)


# ----------------------------------------------------------------- Brownian
def test_brownian_interval_is_reproducible_and_order_independent():
    shape, times = (5, 3), [0.9, 0.1, 0.55, 0.3, 0.123, 1.0, 0.7]
    a = BrownianInterval(0.0, 1.0, shape, seed=42, dtype=F64)
    b = BrownianInterval(0.0, 1.0, shape, seed=42, dtype=F64)
    wa = {t: a(t) for t in times}
    wb = {t: b(t) for t in reversed(sorted(times))}
    for t in times:
        assert torch.equal(wa[t], wb[t])
    # increments, Levy areas and grid queries agree with point queries, in any order
    assert torch.equal(a(0.3, 0.55), b(0.3, 0.55))
    assert torch.equal(a.space_time_levy_area(0.1, 0.7), b.space_time_levy_area(0.1, 0.7))
    dW = b.on_grid([0.0, 0.3, 0.7, 1.0])
    assert torch.allclose(dW[1], wa[0.7] - wa[0.3], atol=1e-14)
    # a fine grid refines the coarse one: increments add, Levy areas combine
    fine_w, fine_h = a.on_grid(torch.linspace(0, 1, 9, dtype=F64), levy_area=True)
    coarse_w, coarse_h = b.on_grid(torch.linspace(0, 1, 5, dtype=F64), levy_area=True)
    assert torch.allclose(fine_w[0::2] + fine_w[1::2], coarse_w, atol=1e-13)
    combined = 0.5 * (fine_h[0::2] + fine_h[1::2]) + 0.25 * (fine_w[0::2] - fine_w[1::2])
    assert torch.allclose(combined, coarse_h, atol=1e-13)
    c = BrownianInterval(0.0, 1.0, shape, seed=43, dtype=F64)
    assert not torch.equal(c(0.5), a(0.5))


def test_brownian_interval_statistics():
    bm = BrownianInterval(0.0, 2.0, (40000,), seed=3, dtype=F64)
    w1, w2 = bm(0.6), bm(1.3)
    assert abs(float(w1.var()) - 0.6) < 0.03
    assert abs(float((w1 * w2).mean()) - 0.6) < 0.03
    assert abs(float((w2 - w1).var()) - 0.7) < 0.03
    H = bm.space_time_levy_area(0.25, 1.0)
    assert abs(float(H.var()) * 12 / 0.75 - 1) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([H, bm(0.25, 1.0)]))[0, 1])) < 0.03


def test_same_seed_gives_identical_solutions():
    prob = _gbm(0.3, 0.8, 64)
    a = solve(prob, EulerMaruyama(dt=0.01), seed=7, saveat=0.1)
    b = solve(prob, EulerMaruyama(dt=0.01), seed=7, saveat=0.1)
    c = solve(prob, EulerMaruyama(dt=0.01), seed=8, saveat=0.1)
    assert torch.equal(a.u, b.u) and not torch.equal(a.u, c.u)
    torch.manual_seed(5)  # without a seed, the path is drawn from torch's global generator
    e = solve(prob, Milstein(dt=0.01))
    torch.manual_seed(5)
    f = solve(prob, Milstein(dt=0.01))
    assert torch.equal(e.u, f.u)


# ---------------------------------------------------------- layouts, stats
def test_solution_layout_stats_and_noise_types():
    B, D = 8, 3
    u0 = torch.randn(B, D, dtype=F64)
    f = lambda t, u: -u  # noqa: E731
    sol = solve(SDEProblem(f, lambda t, u: 0.1 * u, u0, (0.0, 1.0)), EulerMaruyama(dt=0.1),
                saveat=torch.linspace(0, 1, 6, dtype=F64), seed=0)
    assert sol.u.shape == (6, B, D) and torch.equal(sol.u[0], u0)
    assert sol.retcode == ReturnCode.Success and sol.stats.steps == 10 and sol.stats.nfe == 20
    # scalar noise: one Brownian motion per trajectory, shared by its components
    prob = SDEProblem(f, lambda t, u: torch.ones_like(u), torch.zeros(B, D, dtype=F64),
                      (0.0, 1.0), noise="scalar")
    u = solve(prob, EulerMaruyama(dt=0.5), seed=0).u[-1]
    assert torch.allclose(u[:, 0], u[:, 1]) and not torch.allclose(u[0], u[1])
    # general noise (B, D, m) and the m found from g; matrix additive noise with SRA1
    mix = torch.randn(D, 2, dtype=F64)
    gen = SDEProblem(f, lambda t, u: u[..., None] * mix, u0, (0.0, 1.0), noise="general")
    assert solve(gen, EulerMaruyama(dt=0.1), seed=0).u.shape == (2, B, D)
    strat = remake(gen, sde_type="stratonovich")
    assert solve(strat, EulerMaruyama(dt=0.1), seed=0).stats.nfe == 31  # 3 per step + probe of g
    add = SDEProblem(f, lambda t, u: mix.expand(B, D, 2), u0, (0.0, 1.0), noise="additive")
    assert solve(add, SRA1(dt=0.1), seed=0, brownian=None).u.shape == (2, B, D)
    bm = BrownianInterval(0.0, 1.0, (B, 2), seed=0, dtype=F64)
    assert solve(add, SRA1(dt=0.1), brownian=bm).success


def test_field_tuple_and_unbatched_states():
    g = Grid.uniform(x=(0, 1, 6))
    field = Field(torch.ones(4, 1, 6, dtype=F64), g)
    prob = SDEProblem(lambda t, u: -u, lambda t, u: u * 0.2, field, (0.0, 1.0))
    sol = solve(prob, Milstein(dt=0.1), seed=0)
    assert isinstance(sol.u, Field) and sol.u.values.shape == (2, 4, 1, 6)
    pair = (torch.ones(4, 2, dtype=F64), torch.zeros(4, 1, dtype=F64))
    prob = SDEProblem(lambda t, u: (-u[0], u[1]), lambda t, u: (u[0], torch.ones_like(u[1])),
                      pair, (0.0, 1.0))
    y1, y2 = solve(prob, EulerMaruyama(dt=0.1), seed=0).u
    assert y1.shape == (2, 4, 2) and y2.shape == (2, 4, 1)
    single = SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * u, torch.ones(3, dtype=F64),
                        (0.0, 1.0), batched=False)
    assert solve(single, EulerMaruyama(dt=0.1), seed=0).u.shape == (2, 3)


def test_unstable_retcode():
    prob = SDEProblem(lambda t, u: u**3, lambda t, u: u, torch.full((4, 1), 3.0), (0.0, 1.0))
    assert solve(prob, EulerMaruyama(dt=0.1), seed=0).retcode == ReturnCode.Unstable


# ---------------------------------------------------------------- gradients
def _drift(t, u, p):
    return p[0] * torch.tanh(u) - p[1] * u


def _diag_diffusion(t, u, p):
    return p[2] * (1 + 0.5 * torch.sin(u))  # g_i depends on u_i only


def _additive_diffusion(t, u, p):
    return p[2] * (1 + t) * torch.ones_like(u)


def _loss_grads(noise, sde_type, dt, sensealg, alg=EulerMaruyama, B=64, seed=3, p=None,
                u0_grad=True):
    p = torch.tensor([0.8, 1.0, 0.4], dtype=F64, requires_grad=True) if p is None else p
    u0 = torch.linspace(-1, 1, 2 * B, dtype=F64).reshape(B, 2).requires_grad_(u0_grad)
    g = _additive_diffusion if noise == "additive" else _diag_diffusion
    prob = SDEProblem(_drift, g, u0, (0.0, 1.0), p=p, noise=noise, sde_type=sde_type)
    bm = BrownianInterval(0.0, 1.0, (B, 2), seed=seed, dtype=F64)
    sol = solve(prob, alg(dt=dt), saveat=[0.5, 1.0], brownian=bm, sensealg=sensealg)
    loss = sol.u.square().mean()
    wrt = [x for x in (p, u0) if x.requires_grad]
    return loss, torch.autograd.grad(loss, wrt) if loss.requires_grad else None


@pytest.mark.parametrize("noise, sde_type", [("diagonal", "ito"), ("diagonal", "stratonovich"),
                                             ("additive", "ito")])
def test_stochastic_adjoint_matches_direct_backprop(noise, sde_type):
    """The adjoint (reverse stochastic Heun on the same path) approaches direct backprop."""
    rel = []
    for k in (4, 7):
        _, direct = _loss_grads(noise, sde_type, 2.0**-k, None)
        _, adjoint = _loss_grads(noise, sde_type, 2.0**-k, opflow.BacksolveAdjoint())
        rel.append(max(float((a - d).norm() / d.norm()) for a, d in zip(adjoint, direct)))
    assert rel[1] < 0.01 and rel[1] < 0.5 * rel[0], rel


def test_adjoint_scalar_and_general_noise():
    """Scalar noise (Ito and Stratonovich) and general noise (Stratonovich)."""
    B, D = 16, 2
    w = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=F64, requires_grad=True)
    u0 = torch.randn(B, D, dtype=F64)
    scalar = lambda t, u: 0.3 * torch.cos(u) @ w  # noqa: E731
    general = lambda t, u: torch.tanh(u)[..., None] * w  # noqa: E731
    for noise, g, sde_type, m in [("scalar", scalar, "ito", 1),
                                  ("scalar", scalar, "stratonovich", 1),
                                  ("general", general, "stratonovich", 2)]:
        prob = SDEProblem(lambda t, u: -u @ w, g, u0, (0.0, 1.0), noise=noise, sde_type=sde_type)
        grads = []
        for sensealg in (None, opflow.BacksolveAdjoint(params=[w])):  # w is in closures
            bm = BrownianInterval(0.0, 1.0, (B, m), seed=0, dtype=F64)
            sol = solve(prob, EulerMaruyama(dt=2.0**-7), brownian=bm, sensealg=sensealg)
            grads.append(torch.autograd.grad(sol.u[-1].square().mean(), w)[0])
        rel = float((grads[0] - grads[1]).norm() / grads[0].norm())
        assert rel < 0.01, (noise, sde_type, rel)
    ito = remake(prob, sde_type="ito")
    with pytest.raises(SolverError, match="Stratonovich"):
        solve(ito, EulerMaruyama(dt=0.1), seed=0, sensealg=opflow.BacksolveAdjoint())


@pytest.mark.parametrize("alg, noise", [(EulerMaruyama, "diagonal"), (Milstein, "diagonal"),
                                        (SRA1, "additive")])
def test_direct_gradient_matches_finite_differences(alg, noise):
    """Direct backprop is the exact derivative of the discrete solution (same path).

    ``u0`` carries no graph, so Milstein's first step takes (dg/du) g by forward
    mode and the later ones by double backward: both must pass gradients to p."""
    p = torch.tensor([0.8, 1.0, 0.4], dtype=F64, requires_grad=True)
    _, (grad,) = _loss_grads(noise, "ito", 0.1, None, alg=alg, B=3, p=p, u0_grad=False)
    eps = 1e-6
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = eps
        with torch.no_grad():
            up = _loss_grads(noise, "ito", 0.1, None, alg=alg, B=3, p=p + e)[0]
            down = _loss_grads(noise, "ito", 0.1, None, alg=alg, B=3, p=p - e)[0]
        assert abs(float((up - down) / (2 * eps)) - float(grad[i])) < 1e-7


# --------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_clear_errors():
    u0 = torch.ones(4, 2)
    f = g = lambda t, u: u  # noqa: E731
    with pytest.raises(InvalidArgumentError, match="noise"):
        SDEProblem(f, g, u0, (0.0, 1.0), noise="diag")
    with pytest.raises(InvalidArgumentError, match="sde_type"):
        SDEProblem(f, g, u0, (0.0, 1.0), sde_type="ito2")
    with pytest.raises(InvalidArgumentError, match="tspan"):
        SDEProblem(f, g, u0, (0.0, float("inf")))  # (a reversed span is solved backwards)
    with pytest.raises(InvalidArgumentError, match="u0"):
        SDEProblem(f, g, torch.tensor([[1.0, float("nan")]]), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="brownian_dim"):
        SDEProblem(f, g, u0, (0.0, 1.0), noise="scalar", brownian_dim=2)
    with pytest.raises(InvalidArgumentError, match="diffusion"):
        SDEProblem(f, 3.0, u0, (0.0, 1.0))
    for dt in (0.0, -0.1, float("nan")):
        with pytest.raises(InvalidArgumentError, match="dt"):
            EulerMaruyama(dt=dt)
    with pytest.raises(InvalidArgumentError, match="derivative"):
        Milstein(dt=0.1, derivative="exact")
    bad = SDEProblem(f, lambda t, u: u[:, :1], u0, (0.0, 1.0))
    with pytest.raises(ShapeError, match="diffusion"):
        solve(bad, EulerMaruyama(dt=0.1), seed=0)
    bad_general = SDEProblem(f, lambda t, u: u, u0, (0.0, 1.0), noise="general")
    with pytest.raises(ShapeError, match="diffusion"):
        solve(bad_general, EulerMaruyama(dt=0.1), seed=0)
    with pytest.raises(ShapeError, match="drift"):
        solve(SDEProblem(lambda t, u: u[:, 0], g, u0, (0.0, 1.0)), EulerMaruyama(dt=0.1))
    prob = SDEProblem(f, g, u0, (0.0, 1.0))
    with pytest.raises(SolverError, match="additive"):
        solve(prob, SRA1(dt=0.1))
    with pytest.raises(SolverError, match="Milstein"):
        solve(remake(prob, diffusion=lambda t, u: u[..., None], noise="general"),
              Milstein(dt=0.1))
    with pytest.raises(ShapeError, match="brownian"):
        solve(prob, EulerMaruyama(dt=0.1), brownian=BrownianInterval(0, 1, (4, 1), seed=0))
    with pytest.raises(InvalidArgumentError, match="seed"):
        solve(prob, EulerMaruyama(dt=0.1), seed=1, brownian=BrownianInterval(0, 1, (4, 2)))
    with pytest.raises(InvalidArgumentError, match="sensealg"):
        solve(prob, EulerMaruyama(dt=0.1), sensealg="adjoint")
    with pytest.raises(InvalidArgumentError, match="t"):
        BrownianInterval(0, 1, (2,), seed=0)(1.5)


def test_brownian_cache_is_bounded_and_does_not_change_the_path():
    ts = torch.linspace(0.0, 1.0, 257, dtype=torch.float64).tolist()
    big = BrownianInterval(0.0, 1.0, (3, 2), seed=7, dtype=torch.float64, cache_size=10**6)
    small = BrownianInterval(0.0, 1.0, (3, 2), seed=7, dtype=torch.float64, cache_size=4)
    want = [big(t) for t in ts]
    got = [small(t) for t in reversed(ts)][::-1]  # another order, nodes evicted and redrawn
    assert len(small._children) <= 4 < len(big._children)
    for a, b in zip(want, got):
        assert torch.equal(a, b)
    with pytest.raises(InvalidArgumentError, match="cache_size"):
        BrownianInterval(0.0, 1.0, (1,), seed=0, cache_size=0)


@pytest.mark.parametrize("sde_type", ["ito", "stratonovich"])
def test_milstein_forward_is_the_same_under_the_adjoint(sde_type):
    """The adjoint runs the forward solve inside an autograd Function, where forward-mode
    AD is off: the Milstein correction silently vanished there (Euler-Maruyama values)."""
    p = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    prob = SDEProblem(lambda t, u, p: p * u, lambda t, u, p: 0.8 * u,
                      torch.ones(4, 1, dtype=torch.float64), (0.0, 1.0), p, sde_type=sde_type)
    direct = solve(prob, Milstein(dt=0.01), seed=3).u.detach()
    adjoint = solve(prob, Milstein(dt=0.01), seed=3, sensealg=opflow.BacksolveAdjoint()).u
    assert torch.equal(direct, adjoint.detach())
    if sde_type == "ito":
        em = solve(prob, EulerMaruyama(dt=0.01), seed=3).u.detach()
        assert float((adjoint.detach() - em).abs().max()) > 1e-3
