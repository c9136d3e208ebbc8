"""Taylor-mode derivatives (opflow.solvers.pinn.jet) and PINN(compile=True).

The jet must give the same value, gradient and pure second derivatives as
autograd (float64, to rounding) for every supported activation, and a PINN
trained with compile=True must follow the same loss history as the default path.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from opflow import solve
from opflow.errors import InvalidArgumentError
from opflow.solvers.pinn import (
    PINN,
    Coordinates,
    Dirichlet,
    Interval,
    PINNProblem,
    Rectangle,
    d,
    gradient,
    hard_dirichlet,
    laplacian,
)
from opflow.solvers.pinn.jet import MLPJet, jet_of


def mlp(dim_in: int, act: type = torch.nn.Tanh, depth: int = 2, width: int = 16,
        bias: bool = True, seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers, n = [], dim_in
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width, bias=bias), act()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1)).double()


def coords(n: int, dim: int) -> Coordinates:
    g = torch.Generator().manual_seed(1)
    names = ("t", "x", "y")[:dim]
    return Coordinates(torch.rand(n, dim, generator=g, dtype=torch.float64)
                       .requires_grad_(True), names)


def autograd_derivatives(net, x: Coordinates):
    u = net(x.values)
    (g,) = torch.autograd.grad(u.sum(), x.values, create_graph=True)
    second = torch.stack([torch.autograd.grad(g[:, i].sum(), x.values, create_graph=True)[0][:, i]
                          for i in range(x.dim)], 1)
    return u, g, second


@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.SiLU])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_jet_matches_autograd(act, dim):
    net, x = mlp(dim, act, depth=3), coords(40, dim)
    u_ref, g_ref, s_ref = autograd_derivatives(net, x)
    u = MLPJet(net)(x.values)
    torch.testing.assert_close(u, u_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gradient(u, x), g_ref, rtol=1e-11, atol=1e-12)
    for i, name in enumerate(x.names):
        torch.testing.assert_close(d(u, x, name), g_ref[:, i:i + 1], rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(d(u, x, name, 2), s_ref[:, i:i + 1], rtol=1e-10,
                                   atol=1e-11)
    # the default Laplacian leaves out "t" (column 0 here)
    torch.testing.assert_close(laplacian(u, x), s_ref[:, 1:].sum(1, keepdim=True),
                               rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(laplacian(u, x, x.names), s_ref.sum(1, keepdim=True),
                               rtol=1e-10, atol=1e-11)


def test_jet_parameter_gradients_match_autograd():
    net, x = mlp(2, bias=False), coords(30, 2)
    params = list(net.parameters())[:-1]  # the output bias does not reach u''
    _, _, s_ref = autograd_derivatives(net, x)
    ref = torch.autograd.grad(s_ref.pow(2).sum(), params)
    u = MLPJet(net)(x.values)
    got = torch.autograd.grad((d(u, x, "t", 2).pow(2) + d(u, x, "x", 2).pow(2)).sum(), params)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_affine_network_and_fallback_derivatives():
    net, x = torch.nn.Sequential(torch.nn.Linear(2, 1)).double(), coords(10, 2)
    u = MLPJet(net)(x.values)
    assert torch.equal(d(u, x, "x", 2), torch.zeros(10, 1, dtype=torch.float64))
    torch.testing.assert_close(gradient(u, x), net[0].weight.expand(10, 2))
    # a mixed and a third derivative are not in the jet: autograd gives them
    net, x = mlp(2, depth=2), coords(20, 2)
    u = MLPJet(net)(x.values)
    u_ref = net(x.values)
    torch.testing.assert_close(d(d(u, x, "t"), x, "x"), d(d(u_ref, x, "t"), x, "x"))
    torch.testing.assert_close(d(u, x, "x", 3), d(u_ref, x, "x", 3))
    assert jet_of(u, x.values) is not None and jet_of(u, x.values.clone()) is None


def test_unsupported_networks_are_refused():
    assert not MLPJet.supports(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(),
                                                   torch.nn.Linear(4, 1)))
    assert not MLPJet.supports(torch.nn.Linear(2, 1))  # not a Sequential
    assert not MLPJet.supports(torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(2, 1)))
    assert MLPJet.supports(mlp(2, torch.nn.SiLU))
    with pytest.raises(InvalidArgumentError, match="net"):
        MLPJet(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU()))


# ------------------------------------------------------------------ PINN(compile=True)
def _poisson2d() -> PINNProblem:
    def residual(x, u):
        src = 2 * math.pi ** 2 * torch.sin(math.pi * x["x"]) * torch.sin(math.pi * x["y"])
        return -laplacian(u, x) - src + 0.1 * d(d(u, x, "x"), x, "y")  # mixed via the twin

    return PINNProblem(residual, Rectangle({"x": (0.0, 1.0), "y": (0.0, 1.0)}), [Dirichlet(0.0)])


def test_compiled_pinn_follows_the_autograd_path():
    def net():
        return mlp(2, depth=2, width=20).float()

    runs = {c: solve(_poisson2d(), PINN(net(), n_interior=256, n_boundary=64, iterations=30,
                                        compile=c)) for c in (False, True)}
    for term in ("residual", "dirichlet", "total"):
        a, b = runs[False].u.history[term], runs[True].u.history[term]
        assert len(a) == len(b) == 30
        torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-4, atol=1e-6)
    assert runs[True].u.history["total"][-1] < runs[True].u.history["total"][0]


def test_compiled_pinn_rejects_derived_tensors_and_warns_when_unsupported():
    def residual(x, u):
        return d(u.squeeze(1), x, "x") - 1.0  # differentiates a reshape of u

    prob = PINNProblem(residual, Interval(0.0, 1.0, name="x"), [Dirichlet(0.0)])
    with pytest.raises(InvalidArgumentError, match="compile=False"):
        solve(prob, PINN(mlp(1).float(), n_interior=32, n_boundary=4, iterations=1,
                         compile=True))
    hard = PINNProblem(lambda x, u: d(u, x, "x") - 1.0, Interval(0.0, 1.0, name="x"),
                       transform=hard_dirichlet(lambda x: x["x"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve(hard, PINN(mlp(1).float(), n_interior=32, n_boundary=0, iterations=2,
                               compile=True))
    assert any("output transform" in str(w.message) for w in caught)
    assert len(sol.u.history["total"]) == 2
    with pytest.raises(InvalidArgumentError, match="compile"):
        PINN(mlp(1), compile="yes")


def test_compiled_pinn_with_adaptive_weights_refinement_and_lbfgs():
    """RAR grows the point set (a new shape for the compiled graph); LRA differentiates
    the loss terms with retain_graph; L-BFGS re-evaluates the loss in its closure."""
    from opflow.solvers.pinn import RAR

    prob = PINNProblem(lambda x, u: -d(u, x, "x", 2) - 1.0, Interval(0.0, 1.0, name="x"),
                       [Dirichlet(0.0)])
    runs = {c: solve(prob, PINN(mlp(1, width=12).float(), n_interior=64, n_boundary=4,
                                iterations=12, lbfgs_iterations=4, adaptive="lra",
                                lra_every=3, refine=RAR(every=5, k=8, candidates=64),
                                compile=c)) for c in (False, True)}
    assert runs[True].u.added_points.shape == (16, 1)
    torch.testing.assert_close(runs[True].u.added_points, runs[False].u.added_points)
    torch.testing.assert_close(torch.tensor(runs[True].u.history["total"]),
                               torch.tensor(runs[False].u.history["total"]), rtol=1e-4,
                               atol=1e-6)


def test_failed_compilation_falls_back_to_eager_with_a_warning(monkeypatch):
    import torch._dynamo

    from opflow.solvers.pinn import jet as jet_module

    def broken():
        def run(*args):
            raise torch._dynamo.exc.BackendCompilerFailed(
                None, RuntimeError("no C++ compiler"), None)
        return run

    monkeypatch.setattr(jet_module, "_compiled", broken)
    monkeypatch.setattr(jet_module, "_compile_failed", False)
    net, x = mlp(2), coords(20, 2)
    evaluator = MLPJet(net, compile=True)
    with pytest.warns(UserWarning, match="uncompiled"):
        u = evaluator(x.values)
    assert not evaluator.compiled and jet_module._compile_failed
    _, _, s_ref = autograd_derivatives(net, x)
    torch.testing.assert_close(d(u, x, "x", 2), s_ref[:, 1:2], rtol=1e-10, atol=1e-11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # later jets skip compilation without warning again
        MLPJet(net, compile=True)(x.values)


def test_nets_whose_forward_differs_from_their_layers_are_refused():
    class Shifted(torch.nn.Sequential):
        def forward(self, x):
            return super().forward(2 * x - 1)

    class ScaledLinear(torch.nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    base = mlp(2)
    assert not MLPJet.supports(Shifted(*base))
    assert not MLPJet.supports(torch.nn.Sequential(ScaledLinear(2, 4), torch.nn.Tanh(),
                                                   torch.nn.Linear(4, 1)))
    hooked = mlp(2)
    hooked[-1].register_forward_hook(lambda module, inp, out: out * 3)
    assert not MLPJet.supports(hooked)
    normed = mlp(2)
    torch.nn.utils.spectral_norm(normed[0])  # a forward pre-hook rewrites the weight
    assert not MLPJet.supports(normed)


def test_in_place_change_of_the_output_drops_the_jet():
    net, x = mlp(1), coords(15, 1)
    u = MLPJet(net)(x.values)
    u_ref = net(x.values).clone()
    scale = x["t"] * (1 - x["t"])
    u *= scale
    u_ref = u_ref * scale
    assert jet_of(u, x.values) is None
    torch.testing.assert_close(d(u, x, "t"), d(u_ref, x, "t"))


def test_uncompiled_jet_outputs_are_freed_without_the_cycle_collector():
    import gc
    import weakref

    net, x = mlp(2), coords(50, 2)
    u = MLPJet(net)(x.values)
    d(u, x, "x", 2)
    ref = weakref.ref(u)
    gc.disable()
    try:
        del u
        assert ref() is None  # no reference cycle through the jet
    finally:
        gc.enable()


def test_residual_weight_zero_and_constant_higher_derivatives():
    prob = PINNProblem(lambda x, u: torch.zeros_like(x["x"]), Interval(0.0, 1.0, name="x"),
                       [Dirichlet(1.0)])  # boundary fitting only
    sol = solve(prob, PINN(mlp(1).float(), n_interior=8, n_boundary=4, iterations=3,
                           weights={"residual": 0.0}))
    assert sol.stats.nfe == 4  # three steps and the final evaluation
    x = coords(5, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a constant first derivative is not an unconnected u
        assert torch.equal(d(3 * x["t"], x, "t", 2), torch.zeros(5, 1, dtype=torch.float64))


def test_channels_of_a_multi_output_net():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 3)).double()
    x = coords(25, 2)
    u_ref, u = net(x.values), MLPJet(net)(x.values)
    for k in range(3):
        col = u_ref[:, k:k + 1]
        torch.testing.assert_close(gradient(u, x, channel=k), gradient(col, x))
        torch.testing.assert_close(d(u, x, "x", 2, channel=k), d(col, x, "x", 2))
        torch.testing.assert_close(laplacian(u, x, x.names, channel=k),
                                   laplacian(col, x, x.names))
        torch.testing.assert_close(d(u_ref, x, "t", channel=k), d(col, x, "t"))  # autograd
    torch.testing.assert_close(d(u, x, "x", channel=-1), d(u_ref[:, 2:], x, "x"))
    for bad in (3, -4, 1.0, True):
        with pytest.raises(InvalidArgumentError, match="`channel`"):
            d(u, x, "x", channel=bad)


def test_compiled_pinn_on_a_system_follows_the_autograd_path():
    """u'' = v, v = -pi^2 sin(pi x) on [0, 1] (u = sin(pi x)), two output channels."""
    def residual(x, uv):
        source = -math.pi ** 2 * torch.sin(math.pi * x["x"])
        return torch.cat([d(uv, x, "x", 2, channel=0) - uv[:, 1:2], uv[:, 1:2] - source], 1)

    prob = PINNProblem(residual, Interval(0.0, 1.0, name="x"), [Dirichlet(0.0)],
                       names=("u", "v"))

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(),
                                   torch.nn.Linear(16, 2))

    runs = {c: solve(prob, PINN(net(), n_interior=64, n_boundary=4, iterations=20,
                                compile=c)) for c in (False, True)}
    torch.testing.assert_close(torch.tensor(runs[True].u.history["total"]),
                               torch.tensor(runs[False].u.history["total"]), rtol=1e-4,
                               atol=1e-6)
