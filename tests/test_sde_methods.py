"""SDE methods added for issue #17: RKMil, ReversibleHeun and its exact adjoint,
adaptive steps, reversed and empty spans."""


import numpy as np
import pytest
import torch

from opflow import remake, solve
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
