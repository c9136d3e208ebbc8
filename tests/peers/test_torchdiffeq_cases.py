"""torchdiffeq's own test cases, written against opflow's API.

Upstream (rtqichen/torchdiffeq, ``tests/``): ``problems.py`` (ConstantODE, SineODE,
LinearODE, ExpODE on ``t = linspace(1, 8, 10)``, forward and reversed),
``odeint_tests.py`` (accuracy of every method, the adjoint's forward values, no
integration, discontinuities, perturbed fixed steps, grid constructor, min/max
step), ``gradient_tests.py`` (gradcheck in float64, adjoint against direct
backprop, unused parameters), ``event_tests.py`` (terminal events, forward and
reversed, under the adjoint) and ``norm_tests.py`` (states of 0 dimensions and
tuples, a larger error norm). The cases, tolerances and step sizes are the
peer's; torchdiffeq's default tolerances (``rtol=1e-7, atol=1e-9``) are passed
explicitly where the peer relies on them.

Method map: fixed steps ``euler``/``rk4`` -> :class:`Euler`/:class:`RK4` (step
the peer's: the spacing of the time grid, or ``step_size``); adaptive
``tsit5``/``dopri5`` -> :class:`Tsit5`/:class:`Dopri5`; the implicit methods ->
opflow's stiff methods (:class:`ImplicitEuler`, :class:`Rosenbrock23`,
:class:`Rodas4`, :class:`Kvaerno5`, :class:`KenCarp4`); ``odeint_adjoint`` ->
``sensealg=BacksolveAdjoint()`` and ``InterpolatingAdjoint()``.

Refused with reason (each asserted with ``pytest.raises`` on opflow's error):
gradients with respect to the time points (save times or ``tspan`` requiring
grad: torchdiffeq supports them, opflow says to detach), the solver options
``jump_t``, ``perturb`` and ``norm`` (unknown keywords of ``solve``), events on
a reversed span, events under an adjoint, and the interpolating adjoint with a
fixed-step method.

Not ported (no counterpart in opflow): the methods opflow does not have
(midpoint, heun2/3, Adams, Bosh3, Fehlberg2, adaptive Heun, Dopri8, Gauss-Legendre,
Radau IIA, SDIRK2, TR-BDF2, scipy_solver), complex dtypes, the per-step hooks
``callback_step``/``callback_accept_step`` and their warnings, the adjoint's
``seminorm`` option, and ``api_tests.py`` (torchdiffeq's own function signatures).

Counts: 346 ported, 322 passing, 24 refused with reason
(collected cases, slow ones included; checked against ``docs/peers.md`` by
:func:`test_docs_state_the_collected_counts`).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from opflow import ODEProblem, ReturnCode, solve
from opflow.errors import InvalidArgumentError
from opflow.solvers.ode import (
    RK4,
    BacksolveAdjoint,
    ContinuousCallback,
    DirectBackprop,
    Dopri5,
    Euler,
    ImplicitEuler,
    InterpolatingAdjoint,
    Kvaerno5,
    Rodas4,
    Rosenbrock23,
    Tsit5,
)

from ._counting import README, collected_counts, docstring_counts, documented_counts

F32, F64 = torch.float32, torch.float64
TOL = dict(rtol=1e-7, atol=1e-9)  # torchdiffeq's defaults
GRID_STEP = 7 / 9  # linspace(1, 8, 10): the step of a fixed method without step_size


# ----------------------------------------------------------------- problems.py
class ConstantODE(nn.Module):
    """y' = a + (y - (a t + b))^5, solved by y = a t + b."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.2))
        self.b = nn.Parameter(torch.tensor(3.0))

    def forward(self, t, y):
        return self.a + (y - (self.a * t + self.b)) ** 5

    def y_exact(self, t):
        return self.a * t + self.b


class SineODE(nn.Module):
    """y' = 2 y / t + t^4 sin 2t - t^2 + 4 t^3, with a closed form."""

    def forward(self, t, y):
        return 2 * y / t + t**4 * torch.sin(2 * t) - t**2 + 4 * t**3

    def y_exact(self, t):
        return (-0.5 * t**4 * torch.cos(2 * t) + 0.5 * t**3 * torch.sin(2 * t)
                + 0.25 * t**2 * torch.cos(2 * t) - t**3 + 2 * t**4 + (math.pi - 0.25) * t**2)


class LinearODE(nn.Module):
    """y' = A y with A antisymmetric (10 x 10), y(0) = 1: y = expm(A t) 1."""

    def __init__(self, dim: int = 10):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        U = torch.randn(dim, dim, generator=gen) * 0.1
        self.dim = dim
        self.A = nn.Parameter(2 * U - (U + U.T))
        self.nfe = 0

    def forward(self, t, y):
        self.nfe += 1
        return (self.A @ y.reshape(self.dim, 1)).reshape(-1)

    def y_exact(self, t):
        A = self.A.detach().to(F64)
        return torch.stack([torch.linalg.matrix_exp(A * ti) @ torch.ones(self.dim, dtype=F64)
                            for ti in t.to(F64)])


class ExpODE(nn.Module):
    """y' = -0.1 exp(-0.1 t): the right-hand side does not depend on the state."""

    def forward(self, t, y):
        return -0.1 * self.y_exact(t) * torch.ones_like(y)

    def y_exact(self, t):
        return torch.exp(-0.1 * t)


PROBLEMS = {"constant": ConstantODE, "linear": LinearODE, "sine": SineODE, "exp": ExpODE}


def construct_problem(ode="constant", dtype=F64, reverse=False, npts=10):
    """``(f, y0, t, sol)`` as torchdiffeq's ``construct_problem`` (``y0`` requires grad)."""
    f = PROBLEMS[ode]().to(dtype)
    t = torch.linspace(1, 8, npts, dtype=F64)
    with torch.no_grad():
        sol = f.y_exact(t).to(dtype)
    if reverse:
        t, sol = t.flip(0), sol.flip(0)
    return f, sol[0].clone().requires_grad_(True), t, sol


def odeint(f, y0, t, alg, **kwargs):
    """torchdiffeq's ``odeint(f, y0, t)``: the states at the times ``t`` (first and last
    are the span)."""
    prob = ODEProblem(f, y0, (float(t[0]), float(t[-1])))
    return solve(prob, alg, saveat=t, **kwargs)


def rel_error(true, estimate):
    return ((true - estimate) / true).abs().max()


FIXED = {"euler": Euler, "rk4": RK4}
ADAPTIVE = {"tsit5": Tsit5, "dopri5": Dopri5}
STIFF = {"implicit_euler": ImplicitEuler, "rosenbrock23": Rosenbrock23, "rodas4": Rodas4,
         "kvaerno5": Kvaerno5}
METHODS = {**FIXED, **ADAPTIVE, **STIFF}


def make_alg(method, dt=GRID_STEP, **tol):
    if method in FIXED:
        return FIXED[method](dt=dt)
    if method == "implicit_euler":  # first order: the peer's is a fixed step on the grid
        tol = {"rtol": 1e-5, "atol": 1e-7, **tol}
    return METHODS[method](**{**TOL, **tol})


def _slow_if(condition):
    return [pytest.mark.slow] if condition else []


# ------------------------------------------------------------ odeint_tests.py
def _solver_error_cases():
    for reverse in (False, True):
        for dtype in (F32, F64):
            for method in METHODS:
                # the peer runs its fixed explicit methods on "constant", its implicit
                # ones on "constant" and "exp", its adaptive ones on every problem
                problems = {**dict.fromkeys(FIXED, ("constant",)),
                            **dict.fromkeys(STIFF, ("constant", "exp"))}.get(method, PROBLEMS)
                for ode in problems:
                    slow = method in STIFF and dtype == F32
                    yield pytest.param(reverse, dtype, method, ode, marks=_slow_if(slow),
                                       id=f"{'rev' if reverse else 'fwd'}-{dtype}-{method}-{ode}")


@pytest.mark.parametrize("reverse,dtype,method,ode", list(_solver_error_cases()))
def test_odeint_accuracy(reverse, dtype, method, ode):
    """TestSolverError.test_odeint: every method on the peer's problems, both directions."""
    if method in ("implicit_euler",):
        eps = 4e-3  # first order, as the peer's low-order adaptive methods
    elif ode == "linear":
        eps = 2e-3
    elif ode == "exp":
        eps = 5e-2
    else:
        eps = 3e-4
    f, y0, t, sol = construct_problem(ode, dtype, reverse)
    out = odeint(f, y0, t, make_alg(method))
    assert out.success
    assert out.u.shape == sol.shape
    assert rel_error(sol, out.u) < eps


@pytest.mark.parametrize("sensealg", [BacksolveAdjoint(), InterpolatingAdjoint()],
                         ids=["backsolve", "interpolating"])
@pytest.mark.parametrize("ode", list(PROBLEMS))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_adjoint_forward_values(reverse, dtype, ode, sensealg):
    """TestSolverError.test_adjoint: odeint_adjoint (dopri5) gives the solution."""
    eps = 2e-3 if ode == "linear" else 1e-4
    f, y0, t, sol = construct_problem(ode, dtype, reverse)
    out = odeint(f, y0, t, Dopri5(**TOL), sensealg=sensealg)
    assert rel_error(sol, out.u) < eps


@pytest.mark.parametrize("ode", list(PROBLEMS))
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_no_integration(reverse, dtype, method, ode):
    """TestNoIntegration: a single time point (an empty span) returns the initial state."""
    f, y0, t, sol = construct_problem(ode, dtype, reverse)
    out = solve(ODEProblem(f, y0, (float(t[0]), float(t[0]))), make_alg(method))
    assert out.u.shape == (1, *sol[0].shape)
    assert (sol[0] - out.u[-1]).abs().max() < 1e-12


class JumpF:
    """-x/2 before t = 0.5, x^2 after: a discontinuity in time."""

    def __init__(self):
        self.nfe = 0

    def __call__(self, t, x):
        self.nfe += 1
        return -0.5 * x if t < 0.5 else x**2


@pytest.mark.parametrize("method", list(ADAPTIVE))
@pytest.mark.parametrize("sensealg", [DirectBackprop(), BacksolveAdjoint()],
                         ids=["direct", "backsolve"])
def test_refuses_jump_times(sensealg, method):
    """TestDiscontinuities.test_odeint_jump_t: opflow has no ``jump_t`` option (a solve
    with a known discontinuity is split there by the caller); ``solve`` names the
    keyword it does not accept."""
    x0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    prob = ODEProblem(JumpF(), x0, (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="jump_t"):
        solve(prob, make_alg(method, rtol=1e-6, atol=1e-6), sensealg=sensealg,
              jump_t=torch.tensor([0.5]))


@pytest.mark.parametrize("method", list(FIXED))
def test_refuses_perturbed_steps(method):
    """TestDiscontinuities.test_odeint_perturb: no ``perturb`` option for fixed steps."""
    prob = ODEProblem(lambda t, x: -x, torch.tensor([1.0, 2.0]), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="perturb"):
        solve(prob, FIXED[method](dt=0.5), perturb=True)


@pytest.mark.parametrize("sensealg", [DirectBackprop(), BacksolveAdjoint()],
                         ids=["direct", "backsolve"])
def test_grid_constructor(sensealg):
    """TestGridConstructor: Euler on a grid of 10 steps: x1 = 1.1^10 x0, d x1/d x0 = 1.1^10
    (the grid constructor's ``linspace(0, 1, 11)`` is ``Euler(dt=0.1)``)."""
    x0 = torch.tensor(1.0, dtype=F64, requires_grad=True)
    xs = solve(ODEProblem(lambda t, x: x, x0, (0.0, 1.0)), Euler(dt=0.1), sensealg=sensealg).u
    assert abs(float(xs[1]) - 1.1**10) < 1e-6
    (grad,) = torch.autograd.grad(xs[1], x0)
    assert abs(float(grad) - 1.1**10) < 1e-6


@pytest.mark.parametrize("dtmax", [None, 5.0], ids=["dtmax-none", "dtmax-5"])
@pytest.mark.parametrize("dtmin", [None, 2.0], ids=["dtmin-none", "dtmin-2"])
def test_min_max_step(dtmin, dtmax):
    """TestMinMaxStep: a minimum step of 2 makes far fewer evaluations (< 50), none makes
    over 100. torchdiffeq clamps the step to ``min_step`` and goes on; opflow stops the
    solve at the first step the controller wants below ``dtmin`` and says so
    (``ReturnCode.DtLessThanMin``), so no answer of unknown accuracy comes back as a
    success."""
    f, y0, t, sol = construct_problem("linear")
    out = odeint(f, y0, t, Dopri5(dtmin=dtmin, dtmax=dtmax, **TOL))
    if dtmin:
        assert f.nfe < 50
        assert out.retcode == ReturnCode.DtLessThanMin
    else:
        assert f.nfe > 100
        assert out.success


# ---------------------------------------------------------- gradient_tests.py
def _gradcheck_cases(adjoint: bool):
    sensealgs = {"backsolve": BacksolveAdjoint(), "interpolating": InterpolatingAdjoint()}
    for method in METHODS:
        for name, sensealg in (sensealgs.items() if adjoint else [("direct", DirectBackprop())]):
            if name == "interpolating" and method in FIXED:
                continue  # refused: test_refuses_interpolating_adjoint_with_fixed_steps
            yield pytest.param(method, sensealg, id=f"{method}-{name}",
                               marks=_slow_if(method in STIFF or name == "interpolating"))


@pytest.mark.parametrize("method,sensealg", list(_gradcheck_cases(adjoint=False)))
def test_gradcheck(method, sensealg):
    """TestGradient.test_odeint: gradcheck in float64 with respect to y0 (the time points
    are refused: test_refuses_gradients_wrt_time_points)."""
    f, y0, t, _ = construct_problem()

    def func(y0):
        return odeint(f, y0, t, make_alg(method), sensealg=sensealg).u

    assert torch.autograd.gradcheck(func, (y0,))


@pytest.mark.parametrize("method,sensealg", list(_gradcheck_cases(adjoint=True)))
def test_gradcheck_adjoint(method, sensealg):
    """TestGradient.test_adjoint: gradcheck of the adjoints in float64."""
    f, y0, t, _ = construct_problem()

    def func(y0):
        return odeint(f, y0, t, make_alg(method), sensealg=sensealg).u

    assert torch.autograd.gradcheck(func, (y0,))


@pytest.mark.parametrize("method", list(FIXED))
def test_refuses_interpolating_adjoint_with_fixed_steps(method):
    """The interpolating adjoint reads the forward state from the dense output of an
    adaptive method; with a fixed-step one it is refused, naming BacksolveAdjoint."""
    f, y0, t, _ = construct_problem()
    with pytest.raises(InvalidArgumentError, match="BacksolveAdjoint"):
        odeint(f, y0, t, make_alg(method), sensealg=InterpolatingAdjoint())


@pytest.mark.parametrize("sensealg", [DirectBackprop(), BacksolveAdjoint(),
                                      InterpolatingAdjoint()],
                         ids=["direct", "backsolve", "interpolating"])
@pytest.mark.parametrize("where", ["saveat", "tspan"])
def test_refuses_gradients_wrt_time_points(where, sensealg):
    """gradient_tests check d y / d t_points (gradcheck, t_grad=True): opflow does not
    differentiate with respect to times, and says so instead of returning no gradient."""
    f, y0, t, _ = construct_problem()
    t = t.clone().requires_grad_(True)
    if where == "saveat":
        with pytest.raises(InvalidArgumentError, match="saveat"):
            solve(ODEProblem(f, y0, (1.0, 8.0)), Dopri5(**TOL), saveat=t, sensealg=sensealg)
    else:
        with pytest.raises(InvalidArgumentError, match="tspan"):
            solve(ODEProblem(f, y0, (t[0], t[-1])), Dopri5(**TOL), sensealg=sensealg)


@pytest.mark.parametrize("sensealg", [BacksolveAdjoint(), InterpolatingAdjoint()],
                         ids=["backsolve", "interpolating"])
@pytest.mark.parametrize("ode", list(PROBLEMS))
def test_adjoint_against_direct_backprop(ode, sensealg):
    """TestGradient.test_adjoint_against_odeint: adjoint gradients of y0 and the parameters
    equal direct backprop's at rtol=1e-9, atol=1e-12 (the peer's eps per problem)."""
    eps = {"constant": 1e-12, "linear": 1e-5, "sine": 5e-3, "exp": 1e-2}[ode]
    f, y0, t, _ = construct_problem(ode)
    params = [y0, *f.parameters()]
    alg = Dopri5(rtol=1e-9, atol=1e-12)
    ys = odeint(f, y0, t, alg).u
    gradys = torch.rand(ys.shape, generator=torch.Generator().manual_seed(0), dtype=ys.dtype)
    direct = torch.autograd.grad(ys, params, gradys)
    ys = odeint(f, y0, t, alg, sensealg=sensealg).u
    adjoint = torch.autograd.grad(ys, params, gradys)
    for d, a in zip(direct, adjoint):
        assert (d - a).abs().max() < eps


class Odefunc(nn.Module):
    def __init__(self):
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]]))
        self.unused_module = nn.Linear(2, 5)

    def forward(self, t, y):
        return torch.mm(y**3, self.A)


@pytest.mark.parametrize("sensealg", [BacksolveAdjoint(),
                                      pytest.param(InterpolatingAdjoint(), marks=pytest.mark.slow)],
                         ids=["backsolve", "interpolating"])
def test_compare_adjoint_gradient(sensealg):
    """TestCompareAdjointGradient: y' = y^3 A on [0, 25] (float32): adjoint against direct
    dopri5 within (3e-4, 2e-3) for y0 and A; the unused module's gradients are zero."""
    torch.manual_seed(0)
    func = Odefunc()
    y0 = torch.tensor([[2.0, 0.0]], requires_grad=True)
    t = torch.linspace(0.0, 25.0, 10)
    ys = odeint(func, y0, t, Dopri5(**TOL), sensealg=sensealg).u
    gradys = torch.rand_like(ys) * 0.1
    ys.backward(gradys)
    adj_y0, adj_A = y0.grad.clone(), func.A.grad.clone()
    assert float(func.unused_module.weight.grad.abs().max()) == 0
    assert float(func.unused_module.bias.grad.abs().max()) == 0

    y0.grad, func.A.grad = None, None
    odeint(func, y0, t, Dopri5(**TOL)).u.backward(gradys)
    assert (y0.grad - adj_y0).abs().max() < 3e-4
    assert (func.A.grad - adj_A).abs().max() < 2e-3


# -------------------------------------------------------------- event_tests.py
def _event_tol(method):
    return 5e-3 if method in ("euler", "implicit_euler") else 1e-4


@pytest.mark.parametrize("ode", ["constant", "sine"])
@pytest.mark.parametrize("method", [pytest.param(m, marks=_slow_if(m not in ADAPTIVE))
                                    for m in METHODS])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_event(dtype, method, ode):
    """TestEventHandling.test_odeint: a terminal event where sum(y - sol[2]) = 0 stops
    at t[2] with y = sol[2] (fixed methods with step 0.01, as the peer)."""
    tol = _event_tol(method)
    f, y0, t, sol = construct_problem(ode, dtype)
    target = sol[2]
    event = ContinuousCallback(lambda s, y: torch.sum(y - target), terminate=True)
    out = solve(ODEProblem(f, y0, (float(t[0]), float(t[-1]))), make_alg(method, dt=0.01),
                callback=event)
    assert rel_error(target, out.u[-1]) < tol
    assert rel_error(t[2], out.t[-1]) < tol


@pytest.mark.parametrize("method", list(METHODS))
def test_refuses_event_on_reversed_span(method):
    """TestEventHandling.test_odeint with reverse=True: opflow refuses events on a span
    that runs backwards (naming ``callback``)."""
    f, y0, t, sol = construct_problem("constant", reverse=True)
    event = ContinuousCallback(lambda s, y: torch.sum(y - sol[2]), terminate=True)
    with pytest.raises(InvalidArgumentError, match="callback"):
        solve(ODEProblem(f, y0, (float(t[0]), float(t[-1]))), make_alg(method, dt=0.01),
              callback=event)


def test_event_time_and_state_are_differentiable():
    """TestEventHandling.test_adjoint, with direct backprop: the event time and the state
    there are found and both can be backpropagated."""
    f, y0, t, sol = construct_problem("constant")
    target = sol[-1]
    event = ContinuousCallback(lambda s, y: torch.sum(y - target), terminate=True)
    out = solve(ODEProblem(f, y0, (1.0, 10.0)), Dopri5(**TOL), callback=event)
    te, ye = out.t[-1], out.u[-1]
    assert rel_error(target, ye) < 1e-4
    assert rel_error(t[-1], te) < 1e-4
    te.backward(retain_graph=True)
    ye.sum().backward()
    assert y0.grad is not None and torch.isfinite(y0.grad).all()


def test_refuses_event_under_the_adjoint():
    """TestEventHandling.test_adjoint: events take direct backprop only (the segments
    between events are differentiated through); an adjoint is refused."""
    f, y0, t, sol = construct_problem("constant")
    event = ContinuousCallback(lambda s, y: torch.sum(y - sol[-1]), terminate=True)
    with pytest.raises(InvalidArgumentError, match="sensealg"):
        solve(ODEProblem(f, y0, (1.0, 10.0)), Dopri5(**TOL), callback=event,
              sensealg=BacksolveAdjoint())


# --------------------------------------------------------------- norm_tests.py
STATES = {
    "0-dim": lambda: torch.tensor(1.0, dtype=F64),
    "(1,)": lambda: torch.full((1,), 1.0, dtype=F64),
    "(2,2)": lambda: torch.full((2, 2), 1.0, dtype=F64),
    "tuple(0-dim)": lambda: (torch.tensor(1.0, dtype=F64),),
    "tuple(0-dim,(2,2))": lambda: (torch.tensor(1.0, dtype=F64),
                                   torch.tensor([[0.5, 0.5], [0.1, 0.1]], dtype=F64)),
}


def _identity_rhs(t, x):
    return tuple(x) if isinstance(x, tuple) else x


@pytest.mark.parametrize("sensealg", [DirectBackprop(), BacksolveAdjoint(),
                                      InterpolatingAdjoint()],
                         ids=["direct", "backsolve", "interpolating"])
@pytest.mark.parametrize("state", list(STATES))
def test_state_shapes(state, sensealg):
    """TestNorms.test_norm / test_adjoint_norm: x' = x from states of shape (), (1,), (2, 2)
    and tuples of them, with adjoint parameters f does not use: x(1) = e x0, dx(1)/dx0 = e,
    and the unused parameters get zero gradients."""
    x0 = STATES[state]()
    leaves = list(x0) if isinstance(x0, tuple) else [x0]
    for leaf in leaves:
        leaf.requires_grad_(True)
    unused = [torch.rand(7, dtype=F64, requires_grad=True),
              torch.rand((), dtype=F64, requires_grad=True)]
    if not isinstance(sensealg, DirectBackprop):
        sensealg = type(sensealg)(params=unused)
    sol = solve(ODEProblem(_identity_rhs, x0, (0.0, 1.0)), Tsit5(**TOL), sensealg=sensealg)
    xs = list(sol.u) if isinstance(x0, tuple) else [sol.u]
    for x, leaf in zip(xs, leaves):
        assert x.shape == (2, *leaf.shape)
        torch.testing.assert_close(x[-1], math.e * leaf.detach(), rtol=1e-6, atol=1e-9)
    loss = sum(x[-1].sum() for x in xs)
    grads = torch.autograd.grad(loss, leaves + unused, allow_unused=True)
    for g, leaf in zip(grads, leaves):
        torch.testing.assert_close(g, torch.full_like(leaf, math.e), rtol=1e-6, atol=1e-9)
    for g in grads[len(leaves):]:
        assert g is None or float(g.abs().max()) == 0


def test_refuses_norm_option():
    """TestNorms: opflow's error norm is the RMS over the state (per trajectory); a
    custom ``norm`` is an unknown keyword of ``solve``, named in the error."""
    prob = ODEProblem(lambda t, x: x, torch.tensor(1.0), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="norm"):
        solve(prob, Tsit5(), norm=lambda x: x.abs().max())


class NeuralF(nn.Module):
    def __init__(self, width, oscillate):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.linears = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2),
                                     nn.Tanh())
        with torch.no_grad():
            for p in self.linears.parameters():
                p.copy_(torch.rand(p.shape, generator=gen) * 2 - 1)
        self.nfe, self.oscillate = 0, oscillate

    def forward(self, t, x):
        self.nfe += 1
        out = self.linears(x)
        return out * t.mul(2).sin() if self.oscillate else out


@pytest.mark.parametrize("method", list(ADAPTIVE))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_stricter_error_control_takes_at_least_as_many_evaluations(dtype, method):
    """TestNorms.test_large_norm: a norm 10 times larger takes at least as many
    evaluations; in opflow the same error control is tolerances 10 times smaller."""
    x0 = torch.tensor([1.0, 2.0], dtype=dtype)
    norm_f = NeuralF(10, oscillate=True).to(dtype)
    solve(ODEProblem(norm_f, x0, (0.0, 1.0)), ADAPTIVE[method](**TOL))
    large_norm_f = NeuralF(10, oscillate=True).to(dtype)
    solve(ODEProblem(large_norm_f, x0, (0.0, 1.0)), ADAPTIVE[method](rtol=1e-8, atol=1e-10))
    assert norm_f.nfe <= large_norm_f.nfe


# ------------------------------------------------------------------- the counts
def test_docs_state_the_collected_counts():
    """docs/peers.md and this module's docstring state the collected counts."""
    counts = collected_counts(Path(__file__), exclude="test_docs_state_the_collected_counts")
    assert documented_counts("torchdiffeq") == counts
    assert documented_counts("torchdiffeq", README) == counts
    assert docstring_counts(__doc__) == counts
