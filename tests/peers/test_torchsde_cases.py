"""torchsde's own test cases, written against opflow's API.

Upstream (google-research/torchsde, ``tests/``): ``problems.py`` (ExDiagonal,
ExScalar, ExAdditive: examples 1-3 of Rackauckas and Nie 2017, with closed forms;
NeuralDiagonal/Scalar/Additive/General; BasicSDE1-4, whose drift and diffusion
ignore some states and parameters; CustomNamesSDE), ``test_sdeint.py`` (every
method, noise and SDE type runs or refuses, with fixed and adaptive steps, with
and without a Brownian interval; dependencies; reversible Heun's reversibility),
``test_adjoint.py`` (adjoint gradients, reversible Heun's exact adjoint
included, against finite differences and against direct backprop, parameter
flags untouched, with fixed and adaptive steps) and
``test_brownian_interval.py``, ``test_brownian_path.py``,
``test_brownian_tree.py`` (shapes, determinism beyond the cache, normality of
increments, Brownian bridges and space-time Levy areas by Kolmogorov-Smirnov
tests at the peer's alpha, additivity). Seeds are fixed; sizes, step sizes and
tolerances are the peer's (float64, as the peer sets by default), the
statistical batches smaller where opflow's Brownian tree caches whole nodes.
The strong and weak orders (torchsde checks them in ``diagnostics/``) are
measured on the three closed-form problems with one path for every step size.

Method map: ``euler`` -> :class:`EulerMaruyama` on Ito problems; ``euler_heun``
/``heun``/``midpoint`` -> :class:`EulerMaruyama` on Stratonovich problems (it
steps Euler-Heun there); ``milstein`` -> :class:`Milstein` (``grad_free`` ->
``derivative="fd"``); ``srk`` -> :class:`SRA1` (additive noise) or :class:`RKMil`
(diagonal and scalar noise); ``reversible_heun`` -> :class:`ReversibleHeun`;
``sdeint_adjoint`` -> ``sensealg=BacksolveAdjoint()``, and with
``adjoint_method="adjoint_reversible_heun"`` -> ``sensealg=ReversibleAdjoint()``;
``adaptive=True`` -> the method's ``adaptive=True`` at sdeint's defaults
(``rtol=1e-5``, ``atol=1e-4``, ``dt_min`` -> ``dtmin=1e-5``), torchsde's warning
for adaptive ``euler`` with non-additive noise -> opflow's ``UserWarning``
(asserted where torchsde warns, and absent elsewhere);
``BrownianPath``/``BrownianTree`` -> :class:`BrownianInterval` (opflow's one
queryable path).

Refused with reason (``pytest.raises`` on opflow's error): Milstein with general
noise (needs Levy areas, as torchsde), ``srk`` with general noise (RKMil and SRA1,
like torchsde's srk, take diagonal, scalar or additive noise), both with fixed and
adaptive steps, the Ito-to-Stratonovich correction of general noise, the
``logqp`` option, and gradients with respect to save times or the span.

Found while porting: adaptive Euler-Maruyama on an Ito problem with non-additive
noise converges to a biased answer (the accepted steps depend on the increments
they take); torchsde warns, opflow gave it without a word and now warns.

Not ported yet: reversed spans (``t1 < t0``), which upstream appear only inside
test_reversibility, whose backward pass continues the forward's carried state
(``extra_solver_state``) that ``solve`` does not take: the port drives
reversible Heun's step on the time-reversed problem instead (opflow's reversed
spans are tested in tests/test_sde_methods.py); the space-space Levy
areas (``return_A``: Davie and Foster approximations, which no opflow method
uses); ``names=`` and the ``f_and_g``/``g_prod`` specialised functions (opflow
takes the drift and diffusion as callables, so renaming is passing another
callable: ported as test_rename_methods); ``BrownianPath(w0=...)``/``W=``
endpoints given by the user.

Counts: 265 ported, 237 passing, 28 refused with reason
(collected cases, slow ones included; checked against ``docs/peers.md`` by
:func:`test_docs_state_the_collected_counts`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kstest
from torch import nn

from opflow import solve
from opflow.errors import InvalidArgumentError, SolverError
from opflow.solvers.ode import BacksolveAdjoint, DirectBackprop
from opflow.solvers.sde import (
    SRA1,
    BrownianInterval,
    EulerMaruyama,
    Milstein,
    ReversibleAdjoint,
    ReversibleHeun,
    RKMil,
    SDEProblem,
)
from opflow.solvers.sde.backwards import ReversedBrownian
from opflow.solvers.sde.solve_sde import SDESystem

from ._counting import README, collected_counts, docstring_counts, documented_counts

F64 = torch.float64
BATCH, D, M = 4, 3, 2
T0, T1, T_SIZE, DT = 0.0, 0.3, 5, 0.05
ALPHA = 1e-5


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------- problems.py
class ExDiagonal(nn.Module):
    """Geometric Brownian motion per component: y = y0 exp((mu - sigma^2/2) t + sigma W)."""

    noise = "diagonal"

    def __init__(self, d=D, sde_type="ito", seed=0, **_):
        super().__init__()
        g = _gen(seed)
        sigma = torch.sigmoid(torch.randn(d, generator=g, dtype=F64))
        self.mu = nn.Parameter(-sigma**2 - torch.sigmoid(torch.randn(d, generator=g, dtype=F64)))
        self.sigma = nn.Parameter(sigma)
        self.sde_type = sde_type

    def f(self, t, y):
        if self.sde_type == "ito":
            return self.mu * y
        return self.mu * y - 0.5 * self.sigma**2 * y

    def g(self, t, y):
        return self.sigma * y

    def exact(self, y0, t, W):
        return y0 * torch.exp((self.mu - 0.5 * self.sigma**2) * t + self.sigma * W)


class ExScalar(nn.Module):
    """dy = -p^2 sin y cos^3 y dt + p cos^2 y dW (one W): y = arctan(p W + tan y0)."""

    noise = "scalar"

    def __init__(self, d=D, sde_type="ito", seed=0, **_):
        super().__init__()
        self.p = nn.Parameter(torch.sigmoid(torch.randn(d, generator=_gen(seed), dtype=F64)))
        self.sde_type = sde_type

    def f(self, t, y):
        if self.sde_type == "ito":
            return -self.p**2 * torch.sin(y) * torch.cos(y) ** 3
        return torch.zeros_like(y)

    def g(self, t, y):  # opflow's scalar noise: g shaped like y, one W per trajectory
        return self.p * torch.cos(y) ** 2

    def exact(self, y0, t, W):
        return torch.atan(self.p * W + torch.tan(y0))


class ExAdditive(nn.Module):
    """dy = (b / sqrt(1 + t) - y / (2 + 2t)) dt + a b / sqrt(1 + t) dW (m motions):
    y = y0 / sqrt(1 + t) + b (t + a sum_j W_j) / sqrt(1 + t)."""

    noise = "additive"

    def __init__(self, d=D, m=M, sde_type="ito", seed=0, **_):
        super().__init__()
        g = _gen(seed)
        self.a = nn.Parameter(torch.sigmoid(torch.randn(d, generator=g, dtype=F64)))
        self.b = nn.Parameter(torch.sigmoid(torch.randn(d, generator=g, dtype=F64)))
        self.m, self.sde_type = m, sde_type

    def f(self, t, y):
        return self.b / torch.sqrt(1.0 + t) - y / (2.0 + 2.0 * t)

    def g(self, t, y):
        fill = self.a * self.b / torch.sqrt(1.0 + t)
        return fill[None, :, None].expand(y.shape[0], -1, self.m)

    def exact(self, y0, t, W):
        s = math.sqrt(1.0 + t)
        return y0 / s + self.b * (t + self.a * W.sum(-1, keepdim=True)) / s


def _mlp(n_in, n_out, seed, sigmoid=True):
    torch.manual_seed(seed)
    layers = [nn.Linear(n_in, 8), nn.Softplus(), nn.Linear(8, n_out)]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else [])).to(F64)


class NeuralDiagonal(nn.Module):
    noise = "diagonal"

    def __init__(self, d=D, sde_type="ito", seed=0, **_):
        super().__init__()
        self.f_net, self.g_net = _mlp(d + 1, d, seed, False), _mlp(d + 1, d, seed + 1)
        self.sde_type = sde_type

    def _ty(self, t, y):
        return torch.cat([t.expand(y.size(0), 1), y], dim=1)

    def f(self, t, y):
        return self.f_net(self._ty(t, y))

    def g(self, t, y):
        return 0.1 * self.g_net(self._ty(t, y))  # small noise, as the peer


class NeuralScalar(NeuralDiagonal):
    noise = "scalar"


class NeuralAdditive(NeuralDiagonal):
    noise = "additive"

    def __init__(self, d=D, m=M, sde_type="ito", seed=0, **_):
        super().__init__(d, sde_type, seed)
        self.g_net = _mlp(1, d * m, seed + 1)
        self.d, self.m = d, m

    def g(self, t, y):
        return self.g_net(t.expand(y.size(0), 1)).view(y.size(0), self.d, self.m)


class NeuralGeneral(NeuralDiagonal):
    noise = "general"

    def __init__(self, d=D, m=M, sde_type="ito", seed=0, **_):
        super().__init__(d, sde_type, seed)
        self.g_net = _mlp(d + 1, d * m, seed + 1)
        self.d, self.m = d, m

    def g(self, t, y):
        return self.g_net(self._ty(t, y)).reshape(y.size(0), self.d, self.m)


NEURAL = [NeuralDiagonal, NeuralScalar, NeuralAdditive, NeuralGeneral]


class _Basic(nn.Module):
    noise, sde_type = "diagonal", "ito"

    def __init__(self, d=10, flags=(True, False, False, True), seed=0):
        super().__init__()
        g = _gen(seed)
        names = ("shared_param", "no_grad_param", "unused_param1", "unused_param2")
        for name, flag in zip(names, flags):
            setattr(self, name, nn.Parameter(torch.randn(1, d, generator=g, dtype=F64),
                                             requires_grad=flag))

    def h(self, t, y):
        return torch.sigmoid(y)


class BasicSDE1(_Basic):
    def f(self, t, y):
        return (self.shared_param * torch.sin(y) * 0.2 + torch.cos(y**2.0) * 0.1 + torch.cos(t)
                + self.no_grad_param * y)

    def g(self, t, y):
        return (torch.sigmoid(self.shared_param * torch.cos(y) * 0.3 + torch.sin(t))
                + torch.sigmoid(self.no_grad_param * y) + 0.1)


class BasicSDE2(_Basic):
    def f(self, t, y):
        return self.shared_param * 0.2 + self.no_grad_param + torch.zeros_like(y)

    def g(self, t, y):
        return (torch.sigmoid(self.shared_param * 0.3) + torch.sigmoid(self.no_grad_param)
                + torch.zeros_like(y) + 0.1)


class BasicSDE3(BasicSDE2):
    def __init__(self, d=10):
        super().__init__(d, flags=(False, False, True, False))


class BasicSDE4(_Basic):
    def f(self, t, y):
        return torch.zeros_like(y).fill_(0.1)

    def g(self, t, y):
        return torch.sigmoid(torch.zeros_like(y)) + 0.1


class CustomNamesSDE(nn.Module):
    noise, sde_type = "diagonal", "ito"

    def forward(self, t, y):
        return y * t

    def g(self, t, y):
        return torch.sigmoid(t * y)


def _slow_if(condition):
    return [pytest.mark.slow] if condition else []


def brownian_dim(sde, d=D):
    return {"diagonal": d, "scalar": 1}.get(sde.noise, getattr(sde, "m", M))


def problem(sde, y0, t0, t1, drift=None):
    return SDEProblem(drift or sde.f, sde.g, y0, (t0, t1), noise=sde.noise,
                      sde_type=sde.sde_type)


METHODS = {"euler": lambda dt, sde=None: EulerMaruyama(dt=dt),
           "milstein": lambda dt, sde=None: Milstein(dt=dt),
           "milstein_grad_free": lambda dt, sde=None: Milstein(dt=dt, derivative="fd"),
           # torchsde's srk: SRI-type for diagonal/scalar noise, SRA for additive noise
           "srk": lambda dt, sde=None: (SRA1(dt=dt) if sde is None or sde.noise == "additive"
                                        else RKMil(dt=dt))}


def refusal(method, sde) -> str | None:
    """What opflow refuses for ``method`` on ``sde`` (a pattern of its message), or None."""
    if method.startswith("milstein") and sde.noise == "general":
        return "Levy areas"
    if method == "srk" and sde.noise == "general":
        return "diagonal', 'scalar' or 'additive'"
    return None


def adaptive(alg):
    """``alg`` with adaptive steps at sdeint's defaults (rtol 1e-5, atol 1e-4, dt_min 1e-5;
    ``dt`` is then the first step)."""
    return dataclasses.replace(alg, adaptive=True, rtol=1e-5, atol=1e-4, dtmin=1e-5)


def warns_adaptive_euler(method, sde, is_adaptive) -> bool:
    """Whether torchsde warns (check_contract): adaptive ``euler`` with non-additive noise
    (``euler`` here on a Stratonovich problem steps Euler-Heun, which neither warns)."""
    return (is_adaptive and method == "euler" and sde.sde_type == "ito"
            and sde.noise != "additive")


@contextlib.contextmanager
def euler_warning(expected: bool):
    """opflow's warning about adaptive Euler-Maruyama is given exactly when ``expected``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    hits = [w for w in caught
            if w.category is UserWarning and "EulerMaruyama with adaptive" in str(w.message)]
    assert bool(hits) == expected, [str(w.message) for w in caught]


# ------------------------------------------------------------- test_sdeint.py
def test_rename_methods():
    """test_rename_methods: the drift is the module's ``forward`` (torchsde's
    ``names={'drift': 'forward'}``; in opflow the drift is whatever callable is passed)."""
    sde = CustomNamesSDE()
    ts = torch.linspace(T0, T1, T_SIZE, dtype=F64)
    y0 = torch.ones(BATCH, D, dtype=F64)
    sol = solve(problem(sde, y0, T0, T1, drift=sde), EulerMaruyama(dt=DT), saveat=ts, seed=0)
    assert sol.u.shape == (T_SIZE, BATCH, D)


def test_refuses_logqp():
    """test_rename_methods_logqp: opflow has no ``logqp`` (the KL term of latent SDEs);
    ``solve`` names the keyword it does not accept."""
    sde = CustomNamesSDE()
    y0 = torch.ones(BATCH, D, dtype=F64)
    with pytest.raises(InvalidArgumentError, match="logqp"):
        solve(problem(sde, y0, T0, T1, drift=sde), EulerMaruyama(dt=DT), seed=0, logqp=True)


SHAPE_CLASSES = [ExDiagonal, ExScalar, ExAdditive, NeuralGeneral]


def _shape_cases(refused: bool):
    for cls in SHAPE_CLASSES:
        for sde_type in ("ito", "stratonovich"):
            for method in METHODS:
                for use_bm in (False, True):
                    for is_adaptive in (False, True):
                        if (refusal(method, cls(sde_type=sde_type)) is not None) != refused:
                            continue
                        # adaptive Euler-Maruyama on GBM and ExScalar: 300-700 steps, 2-4 s
                        slow = (is_adaptive and method == "euler" and sde_type == "ito"
                                and cls in (ExDiagonal, ExScalar))
                        name = (f"{cls.__name__}-{sde_type}-{method}-"
                                f"{'bm' if use_bm else 'seed'}{'-adaptive' if is_adaptive else ''}")
                        yield pytest.param(cls, sde_type, method, use_bm, is_adaptive,
                                           marks=_slow_if(slow), id=name)


def _run_shape(cls, sde_type, method, use_bm, is_adaptive, drift_name="f"):
    sde = cls(sde_type=sde_type)
    y0 = torch.ones(BATCH, D, dtype=F64)
    ts = torch.linspace(T0, T1, T_SIZE, dtype=F64)
    kw = {"seed": 0}
    if use_bm:
        kw = {"brownian": BrownianInterval(T0, T1, (BATCH, brownian_dim(sde)), seed=0,
                                           dtype=F64)}
    drift = getattr(sde, drift_name, None) or (lambda t, y: torch.zeros_like(y))
    alg = METHODS[method](DT, sde)
    with torch.no_grad(), euler_warning(warns_adaptive_euler(method, sde, is_adaptive)):
        return solve(problem(sde, y0, T0, T1, drift=drift),
                     adaptive(alg) if is_adaptive else alg, saveat=ts, **kw)


@pytest.mark.parametrize("cls,sde_type,method,use_bm,is_adaptive",
                         list(_shape_cases(refused=False)))
def test_sdeint_run_shape_method(cls, sde_type, method, use_bm, is_adaptive):
    """test_sdeint_run_shape_method: runs, with the shape (T, batch, d), both drifts, with
    fixed and adaptive steps; adaptive ``euler`` on Ito problems with non-additive noise
    warns (torchsde's UserWarning), no other run does."""
    for drift in ("f", "h"):  # the peer also solves with ``h`` (zero here) as the drift
        sol = _run_shape(cls, sde_type, method, use_bm, is_adaptive, drift)
        assert sol.success
        assert sol.u.shape == (T_SIZE, BATCH, D)


@pytest.mark.parametrize("cls,sde_type,method,use_bm,is_adaptive",
                         list(_shape_cases(refused=True)))
def test_sdeint_refuses_method_for_noise(cls, sde_type, method, use_bm, is_adaptive):
    """test_sdeint_run_shape_method's should_fail rows that opflow shares: Milstein with
    general noise, srk (RKMil) with general noise, with fixed and adaptive steps."""
    with pytest.raises(SolverError, match=refusal(method, cls(sde_type=sde_type))):
        _run_shape(cls, sde_type, method, use_bm, is_adaptive)


BASIC = [BasicSDE1, BasicSDE2, BasicSDE3, BasicSDE4]


def _basic_cases():
    for cls in BASIC:
        for method in METHODS:
            for is_adaptive in (False, True):
                yield pytest.param(cls, method, is_adaptive,
                                   id=f"{cls.__name__}-{method}"
                                      f"{'-adaptive' if is_adaptive else ''}")


@pytest.mark.parametrize("cls,method,is_adaptive", list(_basic_cases()))
def test_sdeint_dependencies(cls, method, is_adaptive):
    """test_sdeint_dependencies: drift/diffusion that ignore the state or parameters, and
    parameters that do not require grad, run with the right shapes, with fixed and
    adaptive steps (adaptive ``euler`` warns: the noise is diagonal)."""
    sde = cls(d=D)
    y0 = torch.ones(BATCH, D, dtype=F64)
    ts = torch.linspace(T0, T1, T_SIZE, dtype=F64)
    alg = METHODS[method](DT, sde)
    alg = adaptive(alg) if is_adaptive else alg
    for drift in (sde.f, sde.h):
        with euler_warning(warns_adaptive_euler(method, sde, is_adaptive)):
            sol = solve(problem(sde, y0, T0, T1, drift=drift), alg, saveat=ts, seed=0)
        assert sol.success and sol.u.shape == (T_SIZE, BATCH, D)


def _heun_march(sde, y0, times, increments, state=None):
    """Reversible Heun's step (the stepper ``solve`` uses) over ``times`` with the given
    increments, from ``state`` (a fresh start at ``y0`` if None): the states and the
    final carried state ``(z, z^, f(z^), g(z^))``."""
    tspan = (times[0], times[-1])
    step = ReversibleHeun(dt=1.0).stepper(SDESystem(problem(sde, y0, *tspan)))  # dt unused
    if state is None:
        state = step.start(torch.tensor(times[0], dtype=F64), y0)
    zs = [state[0]]
    for ta, tb, dw in zip(times, times[1:], increments):
        state = step.advance(torch.tensor(tb, dtype=F64), tb - ta, state, dw)
        zs.append(state[0])
    return torch.stack(zs), state


class _TimeReversed:
    """The problem in ``s = -t`` as ``solve`` poses a span with ``t1 < t0``: drift
    ``-f(-s, y)``, diffusion ``g(-s, y)`` on the path ``B(s) = W(-s)``."""

    def __init__(self, sde):
        self.sde, self.noise, self.sde_type = sde, sde.noise, sde.sde_type

    def f(self, s, y):
        return -self.sde.f(-s, y)

    def g(self, s, y):
        return self.sde.g(-s, y)


@pytest.mark.parametrize("cls", NEURAL, ids=[c.__name__ for c in NEURAL])
def test_reversibility(cls):
    """test_reversibility: reversible Heun forward (Stratonovich, batch 32, d 4, 19 steps of
    0.1, every state saved), then the same step on the time-reversed problem, read
    backwards on the path, from the final carried state with its drift negated (the
    method's algebraic inverse): every saved state comes back within rtol = atol = 1e-6.
    The stepper's forward march is ``solve``'s, bit for bit."""
    batch, d, n, dt = 32, 4, 20, 0.1
    sde = cls(d=d, sde_type="stratonovich")
    times = [k * dt for k in range(n)]
    y0 = torch.full((batch, d), 0.1, dtype=F64)
    bm = BrownianInterval(0.0, times[-1], (batch, brownian_dim(sde, d)), seed=0, dtype=F64)
    with torch.no_grad():
        ys = solve(problem(sde, y0, 0.0, times[-1]), ReversibleHeun(dt=dt), saveat=times,
                   brownian=bm).u
        zs, (z, zh, mu, sigma) = _heun_march(sde, y0, times, bm.on_grid(times))
        assert torch.equal(zs, ys)
        back = [-t for t in reversed(times)]
        zs_back, _ = _heun_march(_TimeReversed(sde), z, back, ReversedBrownian(bm).on_grid(back),
                                 state=(z, zh, -mu, sigma))
    torch.testing.assert_close(zs_back.flip(0), ys, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ test_adjoint.py
ADJOINT_METHODS = [("ito", "milstein"), ("ito", "srk"), ("stratonovich", "midpoint"),
                   ("stratonovich", "reversible_heun")]


def _alg(method, dt, sde=None):
    if method == "reversible_heun":
        return ReversibleHeun(dt=dt)
    return EulerMaruyama(dt=dt) if method == "midpoint" else METHODS[method](dt, sde)


def _sensealg(method):
    """sdeint_adjoint's backward pass: ``adjoint_reversible_heun`` for reversible Heun (the
    exact adjoint), the stochastic adjoint otherwise."""
    return ReversibleAdjoint() if method == "reversible_heun" else BacksolveAdjoint()


def _adjoint_cases(classes):
    for cls in classes:
        for sde_type, method in ADJOINT_METHODS:
            sde = cls(sde_type=sde_type)
            if sde.noise == "general" and method in ("milstein", "srk"):
                continue  # the peer skips these too
            marks = [pytest.mark.slow]  # 500 or 1000 steps each, FD per parameter
            yield pytest.param(cls, sde_type, method, marks=marks,
                               id=f"{cls.__name__}-{sde_type}-{method}")


def _assert_central_differences(loss, params, grads, eps, tol):
    """Each entry of ``grads`` against the central difference of ``loss()`` in that entry
    of ``params``: ``|grad - fd| <= tol + tol |fd|``."""
    with torch.no_grad():
        for p, g in zip(params, grads):
            flat, gflat = p.view(-1), g.reshape(-1)
            for i in range(flat.numel()):
                flat[i] += eps
                up = loss()
                flat[i] -= 2 * eps
                down = loss()
                flat[i] += eps
                fd = (up - down) / (2 * eps)
                assert abs(float(gflat[i] - fd)) <= tol + tol * abs(float(fd)), (i, gflat[i], fd)


@pytest.mark.parametrize("cls,sde_type,method",
                         list(_adjoint_cases([ExDiagonal, ExScalar, ExAdditive, NeuralGeneral])))
def test_adjoint_against_numerical(cls, sde_type, method):
    """test_against_numerical: adjoint gradients of E|y(0.5)|^2 with respect to every
    parameter against central differences on one Brownian path (dt 1e-3, eps 1e-6,
    rtol = atol = 1e-2; 1e-6 for reversible Heun, whose adjoint is exact for the
    discretisation)."""
    sde = cls(sde_type=sde_type)
    y0 = torch.full((BATCH, D), 0.1, dtype=F64)
    bm = BrownianInterval(0.0, 0.5, (BATCH, brownian_dim(sde)), seed=1, dtype=F64)
    alg = _alg(method, 1e-3, sde)

    def loss(sensealg=None):
        ys = solve(problem(sde, y0, 0.0, 0.5), alg, brownian=bm, sensealg=sensealg).u
        return (ys[-1] ** 2).sum(dim=1).mean(dim=0)

    params = [p for p in sde.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss(_sensealg(method)), params)
    tol = 1e-6 if method == "reversible_heun" else 1e-2
    _assert_central_differences(loss, params, grads, eps=1e-6, tol=tol)


def _against_sdeint_cases():
    for len_ts in (2, 9):
        for case in _adjoint_cases(NEURAL):
            cls, sde_type, method = case.values
            if method != "reversible_heun":
                yield pytest.param(cls, sde_type, method, len_ts, 1e-3, 1e-2, 1e-2,
                                   marks=[pytest.mark.slow], id=f"{case.id}-len{len_ts}")
                continue
            for dt in (2.0**-3, 1e-3):  # the peer's two steps for reversible Heun
                yield pytest.param(cls, sde_type, method, len_ts, dt, 1e-3, 1e-4,
                                   marks=_slow_if(dt < 0.1), id=f"{case.id}-len{len_ts}-dt{dt:g}")


@pytest.mark.parametrize("cls,sde_type,method,len_ts,dt,rtol,atol", list(_against_sdeint_cases()))
def test_adjoint_against_sdeint(cls, sde_type, method, len_ts, dt, rtol, atol):
    """test_against_sdeint: on one path, the adjoint's forward values equal direct
    backprop's, and its gradients of y0 and every parameter agree within the peer's
    tolerance on [0, 1]: rtol = atol = 1e-2 at dt 1e-3; for reversible Heun's exact
    adjoint rtol 1e-3, atol 1e-4 at dt 2^-3 and 1e-3."""
    sde = cls(sde_type=sde_type)
    ts = torch.linspace(0.0, 1.0, len_ts, dtype=F64)
    y0 = torch.full((BATCH, D), 0.1, dtype=F64, requires_grad=True)
    bm = BrownianInterval(0.0, 1.0, (BATCH, brownian_dim(sde)), seed=2, dtype=F64)
    alg, inputs = _alg(method, dt, sde), [y0, *sde.parameters()]

    def run(sensealg):
        return solve(problem(sde, y0, 0.0, 1.0), alg, saveat=ts, brownian=bm,
                     sensealg=sensealg).u

    ys_true = run(DirectBackprop())
    grad = torch.randn(ys_true.shape, generator=_gen(3), dtype=F64)
    true_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ys_true, inputs, grad)])
    ys_test = run(_sensealg(method))
    test_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ys_test, inputs, grad)])
    torch.testing.assert_close(ys_test, ys_true)
    torch.testing.assert_close(test_grad, true_grad, rtol=rtol, atol=atol)


def test_adjoint_refuses_ito_general_noise():
    """The Ito adjoint of general noise needs a correction term opflow does not form;
    refused with the way out (Stratonovich form or direct backprop)."""
    sde = NeuralGeneral(sde_type="ito")
    with pytest.raises(SolverError, match="Stratonovich"):
        solve(problem(sde, torch.full((BATCH, D), 0.1, dtype=F64), 0.0, 0.5),
              EulerMaruyama(dt=1e-2), seed=0, sensealg=BacksolveAdjoint())


def _count_differentiable_params(module):
    return len([p for p in module.parameters() if p.requires_grad])


@pytest.mark.parametrize("is_adaptive", [False, True], ids=["fixed", "adaptive"])
@pytest.mark.parametrize("method", ["milstein", "srk"])
@pytest.mark.parametrize("cls", [pytest.param(c, marks=_slow_if(c is BasicSDE1)) for c in BASIC],
                         ids=[c.__name__ for c in BASIC])
def test_adjoint_basic(cls, method, is_adaptive):
    """test_basic: the adjoint runs on drifts given as bound methods of a module (its
    parameters are found) and leaves every parameter's requires_grad flag as it was
    (batch 128, d 10, dt 1e-3 on [0, 0.5], fixed and adaptive steps; srk is RKMil on this
    diagonal noise)."""
    sde = cls(d=10)
    y0 = torch.full((128, 10), 0.1, dtype=F64)
    before = _count_differentiable_params(sde)
    sde.zero_grad()
    alg = METHODS[method](1e-3, sde)
    ys = solve(problem(sde, y0, 0.0, 0.5), adaptive(alg) if is_adaptive else alg, seed=0,
               sensealg=BacksolveAdjoint()).u
    assert ys.shape == (2, 128, 10)
    loss = ys[-1].sum(dim=1).mean(dim=0)
    if loss.requires_grad:  # BasicSDE4 has no parameter that the solve uses
        loss.backward()
    assert _count_differentiable_params(sde) == before


@pytest.mark.parametrize("where", ["saveat", "tspan"])
def test_refuses_gradients_wrt_time_points(where):
    """A time tensor requiring grad as save times or span: refused, not silently cut."""
    sde = ExDiagonal()
    ts = torch.linspace(0.0, 0.5, 3, dtype=F64, requires_grad=True)
    y0 = torch.full((BATCH, D), 0.1, dtype=F64)
    with pytest.raises(InvalidArgumentError, match=where):
        if where == "saveat":
            solve(problem(sde, y0, 0.0, 0.5), Milstein(dt=1e-2), saveat=ts, seed=0)
        else:
            solve(problem(sde, y0, ts[0], ts[-1]), Milstein(dt=1e-2), seed=0)


# ------------------------------------------------ strong and weak orders (diagnostics)
ORDER_CASES = [  # (problem, sde_type, method, strong order, slope tolerance)
    (ExDiagonal, "ito", "euler", 0.5, 0.15), (ExDiagonal, "ito", "milstein", 1.0, 0.15),
    (ExDiagonal, "stratonovich", "euler", 1.0, 0.15),
    (ExDiagonal, "stratonovich", "milstein", 1.0, 0.15),
    (ExScalar, "ito", "euler", 0.5, 0.15), (ExScalar, "ito", "milstein", 1.0, 0.15),
    (ExScalar, "ito", "milstein_grad_free", 1.0, 0.15),
    (ExAdditive, "ito", "euler", 1.0, 0.15), (ExAdditive, "ito", "srk", 1.5, 0.2),
]


@pytest.mark.parametrize("cls,sde_type,method,order,tol", ORDER_CASES,
                         ids=[f"{c.__name__}-{s}-{m}" for c, s, m, _, _ in ORDER_CASES])
def test_strong_order(cls, sde_type, method, order, tol):
    """Strong order on the closed forms: mean |y(1) - y_exact(1)| over 256 paths for
    dt = 2^-3 .. 2^-7 on one Brownian path per trajectory (fixed seed); the fitted slope
    is at least the method's order (Euler-Maruyama on GBM with this small noise and
    SRA1 on this linear drift converge faster at these steps: 0.7 and 2.0)."""
    sde = cls(sde_type=sde_type, seed=5)
    B = 256
    m = brownian_dim(sde)
    y0 = torch.full((B, D), 0.5, dtype=F64)
    bm = BrownianInterval(0.0, 1.0, (B, m), seed=7, dtype=F64)
    with torch.no_grad():
        W1 = bm(1.0)
        exact = sde.exact(y0, 1.0, W1)
        dts = [2.0**-k for k in range(3, 8)]
        errs = [float((solve(problem(sde, y0, 0.0, 1.0), METHODS[method](dt, sde), brownian=bm)
                       .u[-1] - exact).abs().mean()) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert slope > order - tol, (slope, errs)


@pytest.mark.parametrize("method", ["euler", "milstein"])
def test_weak_order_on_gbm_mean(method):
    """Weak order 1 on E y(1) = y0 exp(mu) (ExDiagonal, Ito): 2^14 paths, fixed seed, the
    bias halves with dt (dt = 1/4, 1/8, 1/16; Monte Carlo error kept far below)."""
    sde = ExDiagonal(seed=5)
    y0 = torch.full((2**14, D), 0.5, dtype=F64)
    want = 0.5 * torch.exp(sde.mu.detach())
    with torch.no_grad():
        dts = [1 / 4, 1 / 8, 1 / 16]
        bias = []
        for dt in dts:
            # the same increments summed to every dt: the Monte Carlo error cancels
            bm = BrownianInterval(0.0, 1.0, y0.shape, seed=11, dtype=F64)
            mean = solve(problem(sde, y0, 0.0, 1.0), METHODS[method](dt), brownian=bm).u[-1]
            bias.append(float((mean.mean(0) - want).abs().mean()))
    slope = np.polyfit(np.log(dts), np.log(bias), 1)[0]
    assert abs(slope - 1.0) < 0.3, (slope, bias)


# --------------------------------------------------- test_brownian_*.py
SHAPES = [(16, 3), (16,), ()]


def _interval(shape, seed=0, **kw):
    return BrownianInterval(0.0, 1.0, shape, seed=seed, dtype=F64, **kw)


def _two_times(seed):
    ta, tb = sorted(torch.rand(2, generator=_gen(seed), dtype=F64).tolist())
    return ta, tb


@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_brownian_shape(shape, levy):
    """test_brownian_interval.test_shape (W and space-time Levy area H; tree and path
    test_basic): every value has the motion's shape."""
    bm = _interval(shape)
    ta, tb = _two_times(0)
    for value in (bm(ta), bm(tb), bm(ta, tb)):
        assert value.shape == shape
    if levy:
        assert bm.space_time_levy_area(ta, tb).shape == shape
        dW, H = bm.on_grid([0.0, ta, tb], levy_area=True)
        assert dW.shape == H.shape == (2, *shape)


@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
def test_brownian_determinism_simple(levy):
    """test_determinism_simple (and the path's and tree's test_determinism)."""
    bm = _interval((16, 3))
    ta, tb = _two_times(1)
    query = bm.space_time_levy_area if levy else bm
    first = query(ta, tb)
    for _ in range(2):
        assert torch.equal(query(ta, tb), first)


@pytest.mark.slow
@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
def test_brownian_determinism_large(levy):
    """test_determinism_large: 500 random intervals (far more nodes than the cache holds),
    queried again: the same values, bit for bit."""
    bm = _interval((16, 3), cache_size=32)
    query = bm.space_time_levy_area if levy else bm
    times = [_two_times(100 + i) for i in range(500)]
    first = [query(ta, tb) for ta, tb in times]
    for (ta, tb), value in zip(times, first):
        assert torch.equal(query(ta, tb), value)


@pytest.mark.slow
@pytest.mark.parametrize("random_order", [False, True])
@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
def test_brownian_entropy_determinism(levy, random_order):
    """test_entropy_determinism: two intervals with one seed give the same 1000 values,
    also when the second is queried in another order."""
    points = torch.rand(2, 1000, generator=_gen(2), dtype=F64)
    pairs = [tuple(sorted(p)) for p in points.T.tolist()]
    first = _interval((), seed=56789)
    query = first.space_time_levy_area if levy else first
    outs = [query(a, b) for a, b in pairs]
    second = _interval((), seed=56789)
    query = second.space_time_levy_area if levy else second
    order = torch.randperm(1000, generator=_gen(3)).tolist() if random_order else range(1000)
    for i in order:
        assert torch.equal(query(*pairs[i]), outs[i])


LARGE = 2**15  # torchsde: 131072 (a node of opflow's tree caches 4 values of the batch)


def _ks(x) -> float:
    return kstest(x.numpy(), "norm").pvalue


def test_brownian_normality_simple():
    """test_normality_simple (and the path's and tree's test_normality): W(t) - W(0) ~
    N(0, t) and H ~ N(0, t/12) at a random t, by Kolmogorov-Smirnov at alpha 1e-5."""
    for rep in range(2):
        bm = _interval((LARGE,), seed=rep, cache_size=64)
        t = float(torch.rand((), generator=_gen(10 + rep), dtype=F64))
        assert _ks(bm(0.0, t) / math.sqrt(t)) >= ALPHA
        assert _ks(bm.space_time_levy_area(0.0, t) / math.sqrt(t / 12)) >= ALPHA


@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
def test_brownian_normality_conditional(levy):
    """test_normality_conditional: given W (and H) on [ta, tb], the parts on [ta, t] and
    [t, tb] follow the Brownian bridge's law (and the peer's law of the Levy areas)."""
    bm = _interval((LARGE,), seed=4, cache_size=64)
    g = _gen(5)
    for _ in range(5):
        ta, t_, tb = sorted(torch.rand(3, generator=g, dtype=F64).tolist())
        W, W1, W2 = bm(ta, tb), bm(ta, t_), bm(t_, tb)
        std = math.sqrt((tb - t_) * (t_ - ta) / (tb - ta))
        assert _ks((W1 - W * (t_ - ta) / (tb - ta)) / std) >= ALPHA
        assert _ks((W2 - W * (tb - t_) / (tb - ta)) / std) >= ALPHA
        if levy:
            h, h1, h2 = tb - ta, t_ - ta, tb - t_
            H = bm.space_time_levy_area(ta, tb)
            H1, H2 = bm.space_time_levy_area(ta, t_), bm.space_time_levy_area(t_, tb)
            denom = math.sqrt(h1**3 + h2**3)
            a = h1**3.5 * h2**0.5 / (2 * h * denom)
            b = h1**0.5 * h2**3.5 / (2 * h * denom)
            c = math.sqrt(3) * h1**1.5 * h2**1.5 / (6 * denom)
            assert _ks((H1 - H * (h1 / h) ** 2) / (math.sqrt(a**2 + c**2) / h1)) >= ALPHA
            assert _ks((H2 - H * (h2 / h) ** 2) / (math.sqrt(b**2 + c**2) / h2)) >= ALPHA


@pytest.mark.parametrize("levy", [False, True], ids=["none", "space-time"])
def test_brownian_consistency(levy):
    """test_consistency: W(ta, t) + W(t, tb) = W(ta, tb), and for U = h (H + W/2) (the
    integral of W - W(ta)): U1 + U2 + (tb - t) W1 = U, at rtol = atol = 1e-6."""
    bm = _interval((LARGE,), seed=6, cache_size=64)
    g = _gen(7)
    for _ in range(5):
        ta, t_, tb = sorted(torch.rand(3, generator=g, dtype=F64).tolist())
        W, W1, W2 = bm(ta, tb), bm(ta, t_), bm(t_, tb)
        torch.testing.assert_close(W1 + W2, W, rtol=1e-6, atol=1e-6)
        if levy:
            def U(s, e, w):
                return (e - s) * (bm.space_time_levy_area(s, e) + 0.5 * w)
            torch.testing.assert_close(U(ta, t_, W1) + U(t_, tb, W2) + (tb - t_) * W1,
                                       U(ta, tb, W), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------- the counts
def test_docs_state_the_collected_counts():
    """docs/peers.md and this module's docstring state the collected counts."""
    counts = collected_counts(Path(__file__), exclude="test_docs_state_the_collected_counts")
    assert documented_counts("torchsde") == counts
    assert documented_counts("torchsde", README) == counts
    assert docstring_counts(__doc__) == counts
