"""Neural ODE / SDE layers and the natural cubic spline (opflow.layers)."""

import warnings

import pytest
import torch
from torch import nn

from opflow import ODEProblem, solve
from opflow.errors import InvalidArgumentError, ShapeError, SolverError
from opflow.layers import (
    ErrorRegularizer,
    GeometricSDE,
    LangevinSDE,
    LinearNoiseSDE,
    NaturalCubicSpline,
    NeuralODE,
    NeuralSDE,
    StiffnessRegularizer,
    local_error_estimates,
    stiffness_estimates,
)
from opflow.layers.regularizers import _step_record
from opflow.solvers.ode import (
    RK4,
    BacksolveAdjoint,
    DirectBackprop,
    Dopri5,
    InterpolatingAdjoint,
    Tsit5,
)

F64 = torch.float64
SDE_CLASSES = [LangevinSDE, LinearNoiseSDE, GeometricSDE, NeuralSDE]


class TimeMLP(nn.Module):
    """A non-autonomous vector field f(t, y) that accepts a 0-dim or a (B, 1) time."""

    def __init__(self, dim=2, width=16, dtype=F64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.Tanh(),
                                 nn.Linear(width, dim)).to(dtype)

    def forward(self, t, y):
        tc = t.reshape(-1, 1).expand(y.shape[0], 1) if t.ndim else t.expand(y.shape[0], 1)
        return self.net(torch.cat([tc, y], dim=-1))


# ------------------------------------------------------------------ NeuralODE
def test_neural_ode_learns_linear_dynamics():
    A_true = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    ts = torch.linspace(0.0, 1.0, 10)
    y0 = torch.randn(16, 2)
    with torch.no_grad():
        target = torch.stack([y0 @ torch.linalg.matrix_exp(A_true * t).T for t in ts])
    field = nn.Linear(2, 2, bias=False)
    model = NeuralODE(field, solver=Tsit5(rtol=1e-5, atol=1e-7), t=ts, autonomous=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (model(y0) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 1e-3 * losses[0]
    assert torch.allclose(field.weight.detach(), A_true, atol=0.03)


@pytest.mark.parametrize("batched", [False, True])
def test_adjoint_and_direct_gradients_agree(batched):
    torch.manual_seed(1)
    field = TimeMLP()
    y0 = torch.randn(5, 2, dtype=F64)
    ts = torch.linspace(0.0, 1.0, 6, dtype=F64)
    solver = Tsit5(rtol=1e-9, atol=1e-11)
    grads = []
    for sensealg in (DirectBackprop(), BacksolveAdjoint(), InterpolatingAdjoint(5)):
        model = NeuralODE(field, solver=solver, sensealg=sensealg, t=ts, batched=batched)
        y = y0.clone().requires_grad_(True)
        loss = (model(y) ** 2).sum() + model(y)[-1, :, 0].sum()
        gs = torch.autograd.grad(loss, [y, *field.parameters()])
        grads.append(torch.cat([g.reshape(-1) for g in gs]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-8)
    assert torch.allclose(grads[0], grads[2], rtol=1e-6, atol=1e-8)


def test_stats_exposed_and_follow_tolerance():
    field = TimeMLP()
    y0 = torch.randn(3, 2, dtype=F64)
    loose = NeuralODE(field, solver=Tsit5(rtol=1e-3, atol=1e-5))
    tight = NeuralODE(field, solver=Tsit5(rtol=1e-10, atol=1e-12))
    assert loose.last_stats is None
    loose(y0)
    tight(y0)
    assert loose.last_stats.nfe > 0 and loose.last_stats.steps > 0
    assert tight.last_stats.nfe > loose.last_stats.nfe
    assert str(tight.last_retcode) == "Success"


def test_final_state_and_fixed_step_solver():
    A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=F64)
    field = nn.Linear(2, 2, bias=False).to(F64)
    with torch.no_grad():
        field.weight.copy_(A)
    y0 = torch.randn(4, 2, dtype=F64)
    exact = y0 @ torch.linalg.matrix_exp(A * 2.0).T
    for solver in (Tsit5(rtol=1e-10, atol=1e-12), RK4(dt=0.01)):
        model = NeuralODE(field, solver=solver, t=(0.0, 2.0), autonomous=True,
                          return_trajectory=False)
        out = model(y0)
        assert out.shape == (4, 2)
        assert torch.allclose(out, exact, atol=1e-8)
    assert model.last_stats.nfe == 200 * 4  # RK4: 4 evaluations per step


@pytest.mark.parametrize("sensealg", [DirectBackprop(), BacksolveAdjoint()])
def test_per_sample_times_match_separate_solves(sensealg):
    torch.manual_seed(2)
    field = TimeMLP()
    B, K = 4, 5
    y0 = torch.randn(B, 2, dtype=F64)
    t = torch.sort(torch.rand(B, K, dtype=F64) * 2.0, dim=1).values
    t[:, 0] = 0.0  # every sample starts at the common time 0
    t[1, 2] = t[1, 1]  # a repeated time within a row
    solver = Tsit5(rtol=1e-10, atol=1e-12)
    model = NeuralODE(field, solver=solver, sensealg=sensealg)
    out = model(y0, t)
    assert out.shape == (K, B, 2)
    for b in range(B):
        prob = ODEProblem(field, y0[b:b + 1], (0.0, float(t[b, -1])))
        ref = solve(prob, solver, saveat=t[b]).u[:, 0]
        assert torch.allclose(out[:, b], ref, atol=1e-8)
    # gradients flow through the gathered values
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in field.parameters())


def test_per_sample_times_shared_step_and_batched_agree():
    field = TimeMLP()
    y0 = torch.randn(3, 2, dtype=F64)
    t = torch.tensor([[0.0, 0.3, 1.0], [0.0, 0.5, 0.7], [0.1, 0.2, 0.9]], dtype=F64)
    solver = Tsit5(rtol=1e-10, atol=1e-12)
    a = NeuralODE(field, solver=solver, batched=True)(y0, t)
    b = NeuralODE(field, solver=solver, batched=False)(y0, t)
    assert torch.allclose(a, b, atol=1e-8)


def test_neural_ode_bad_inputs():
    field = nn.Linear(2, 2)
    with pytest.raises(InvalidArgumentError):
        NeuralODE(lambda t, y: y)
    with pytest.raises(InvalidArgumentError):
        NeuralODE(field, solver="tsit5")
    with pytest.raises(InvalidArgumentError):
        NeuralODE(field, t=(1.0, 0.0))
    model = NeuralODE(field, autonomous=True)
    with pytest.raises(ShapeError):
        model(torch.randn(3, 2), torch.rand(2, 4))  # per-sample times for 2 of 3 samples
    with pytest.raises(ShapeError):
        model(torch.randn(3, 2), torch.rand(3, 2, 2))


def test_neural_ode_warns_on_failed_solve():
    field = nn.Linear(2, 2)
    model = NeuralODE(field, autonomous=True, max_steps=2)
    with pytest.warns(RuntimeWarning, match="stopped early"):
        model(torch.randn(3, 2))
    assert str(model.last_retcode) == "MaxIters"


# -------------------------------------------------------------------- spline
def test_spline_interpolates_data_exactly():
    t = torch.sort(torch.rand(3, 9, dtype=F64), dim=1).values  # per-sample irregular times
    x = torch.randn(3, 9, 2, dtype=F64)
    spline = NaturalCubicSpline(t, x)
    for b in range(3):
        single = NaturalCubicSpline(t[b], x[b:b + 1])
        assert torch.allclose(single(t[b])[0], x[b], atol=1e-12)
    assert torch.allclose(spline(t), x, atol=1e-12)


def test_spline_matches_known_cubic():
    # Knots (0, 0), (1, 1), (2, 0): M_1 = -3, so S(t) = 1.5 t - 0.5 t^3 on [0, 1]
    # and S(t) = S(2 - t) on [1, 2].
    spline = NaturalCubicSpline(torch.tensor([0.0, 1.0, 2.0], dtype=F64),
                                torch.tensor([[[0.0], [1.0], [0.0]]], dtype=F64))
    tq = torch.linspace(0.0, 2.0, 41, dtype=F64)
    s = torch.where(tq <= 1, tq, 2 - tq)
    exact = 1.5 * s - 0.5 * s**3
    dexact = torch.where(tq <= 1, 1.0, -1.0) * (1.5 - 1.5 * s**2)
    assert torch.allclose(spline(tq)[0, :, 0], exact, atol=1e-13)
    assert torch.allclose(spline.derivative(tq)[0, :, 0], dexact, atol=1e-13)
    # a straight line is reproduced exactly everywhere (natural end conditions hold)
    t = torch.tensor([0.0, 0.3, 1.1, 1.5, 2.0], dtype=F64)
    line = NaturalCubicSpline(t, (2 * t - 1).reshape(1, -1, 1))
    assert torch.allclose(line(tq)[0, :, 0], 2 * tq - 1, atol=1e-13)


def test_spline_matches_scipy_and_is_differentiable():
    interpolate = pytest.importorskip("scipy.interpolate")
    t = torch.sort(torch.rand(8, dtype=F64), dim=0).values
    x = torch.randn(2, 8, 3, dtype=F64)
    tq = torch.linspace(float(t[0]), float(t[-1]), 33, dtype=F64)
    spline = NaturalCubicSpline(t, x)
    ref = interpolate.CubicSpline(t.numpy(), x[1].numpy(), bc_type="natural")
    assert torch.allclose(spline(tq)[1], torch.from_numpy(ref(tq.numpy())), atol=1e-10)
    assert torch.allclose(spline.derivative(tq)[1], torch.from_numpy(ref(tq.numpy(), 1)),
                          atol=1e-9)
    xs = x[:1, :5, :1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: NaturalCubicSpline(t[:5], v)(tq[:7]), (xs,))


def test_spline_bad_inputs():
    with pytest.raises(ShapeError):
        NaturalCubicSpline(torch.arange(3.0), torch.randn(3, 2))
    with pytest.raises(ShapeError):
        NaturalCubicSpline(torch.arange(1.0), torch.randn(2, 1, 2))
    with pytest.raises(InvalidArgumentError):
        NaturalCubicSpline(torch.tensor([0.0, 2.0, 1.0]), torch.randn(2, 3, 1))


# ----------------------------------------------------------------- neural SDE
def _series(B=8, N=6, C=2, dtype=torch.float32):
    t = torch.sort(torch.rand(B, N, dtype=dtype), dim=1).values
    t[:, 0], t[:, -1] = 0.0, 1.0
    x = torch.randn(B, N, C, dtype=dtype)
    return t, x


@pytest.mark.parametrize("cls", SDE_CLASSES)
def test_sde_shapes_and_gradients(cls):
    t, x = _series()
    model = cls(2, 6, 3, width=16, dt=0.1)
    out = model(t, x, seed=0)
    assert out.shape == (8, 3)
    t_out = torch.linspace(0.0, 1.0, 5)
    assert model(t, x, t_out=t_out, seed=0).shape == (5, 8, 3)
    assert model.latent(t, x, t_out=t_out, seed=0).shape == (5, 8, 6)
    assert model.last_stats.steps == 12  # 4 intervals of 0.25 -> 3 steps of dt <= 0.1
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad and p.grad is not None)
    assert model.readout.weight.grad is not None and model.initial.weight.grad is not None


@pytest.mark.parametrize("cls", SDE_CLASSES)
def test_sde_seeded_reproducibility(cls):
    t, x = _series()
    model = cls(2, 6, 1, width=16, dt=0.05)
    a, b = model(t, x, seed=7), model(t, x, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, model(t, x, seed=8))


def test_geometric_sde_stays_positive():
    t, x = _series(B=64)
    model = GeometricSDE(2, 4, 1, width=16, dt=0.1, sigma_max=4.0)  # large noise
    z = model.latent(t, x, t_out=torch.linspace(0.0, 1.0, 21), seed=3)
    assert bool((z > 0).all()) and bool(torch.isfinite(z).all())


def test_controlled_path_steers_the_drift():
    t, x = _series()
    x2 = x.clone()
    x2[:, 3:] += 1.0  # change later observations only (x0 unchanged)
    stable = LangevinSDE(2, 6, 1, width=16, dt=0.1)
    naive = NeuralSDE(2, 6, 1, width=16, dt=0.1)
    assert not torch.allclose(stable(t, x, seed=1), stable(t, x2, seed=1))
    assert torch.equal(naive(t, x, seed=1), naive(t, x2, seed=1))  # x enters via x0 only


def _train_frequency_regression(cls, steps=80):
    """Regress the frequency of irregularly sampled sines; returns the loss history."""
    torch.manual_seed(4)
    B, N = 32, 8
    t = torch.sort(torch.rand(B, N), dim=1).values
    t[:, 0], t[:, -1] = 0.0, 1.0
    freq = torch.rand(B, 1) * 3 + 1
    x = torch.sin(freq * t * 3.0)[..., None]
    y = freq - 2.5
    model = cls(1, 8, 1, width=32, dt=0.1, sigma_max=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = (model(t, x, seed=step) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("cls", [LangevinSDE, LinearNoiseSDE, GeometricSDE])
def test_sde_training_reduces_loss(cls):
    losses = _train_frequency_regression(cls)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_controlled_path_beats_naive_sde_on_irregular_series():
    # the naive SDE sees the series through x0 only, so it cannot read the frequency
    stable = _train_frequency_regression(LangevinSDE)
    naive = _train_frequency_regression(NeuralSDE)
    assert sum(stable[-5:]) < 0.7 * sum(naive[-5:])


def test_sde_bad_inputs():
    with pytest.raises(InvalidArgumentError):
        LangevinSDE(0, 4, 1)
    with pytest.raises(InvalidArgumentError):
        LangevinSDE(2, 4, 1, solver=Tsit5())
    model = LangevinSDE(2, 4, 1)
    with pytest.raises(ShapeError):
        model(torch.linspace(0, 1, 5), torch.randn(3, 5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.linspace(0, 1, 5), torch.randn(3, 5, 2), seed=0)


# --------------------------------------------------------------- regularizer
@pytest.mark.parametrize("batched", [False, True])
def test_error_estimates_are_the_controllers(batched):
    torch.manual_seed(5)
    field = TimeMLP()
    rtol, atol = 1e-4, 1e-6
    model = NeuralODE(field, solver=Tsit5(rtol=rtol, atol=atol), record_steps=True,
                      batched=batched, t=(0.0, 3.0))
    model(torch.randn(6, 2, dtype=F64))
    err, h = local_error_estimates(model.last_solution)
    r = _step_record(model.last_solution)
    b = torch.tensor(Tsit5.tableau.b, dtype=F64)
    y_new = r.y + r.h[..., None] * torch.einsum("s,nsbd->nbd", b, r.k)
    scale = atol + rtol * torch.maximum(r.y.abs(), y_new.abs())
    scaled = (err / scale).square().mean(-1).sqrt()
    accepted = h > 0
    assert int(accepted.sum()) >= model.last_stats.steps
    assert bool((scaled[accepted] <= 1.0 + 1e-12).all())  # every accepted step passed the test


def test_error_regularizer_value_and_gradient():
    torch.manual_seed(6)
    field = TimeMLP()
    y0 = torch.randn(4, 2, dtype=F64)
    values = []
    for rtol in (1e-3, 1e-7):
        model = NeuralODE(field, solver=Tsit5(rtol=rtol, atol=rtol * 1e-2), record_steps=True)
        model(y0)
        values.append(ErrorRegularizer(weight=2.0)(model))
    assert values[1] < values[0]  # tighter tolerance: smaller local errors
    grads = torch.autograd.grad(values[0], list(field.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # minimising R alone makes the dynamics cheaper to integrate
    model = NeuralODE(field, solver=Tsit5(rtol=1e-6, atol=1e-8), record_steps=True, t=(0, 2))
    opt = torch.optim.Adam(field.parameters(), lr=0.02)
    reg = ErrorRegularizer(1e4)
    history = []
    for _ in range(30):
        opt.zero_grad()
        model(y0)
        loss = reg(model)
        loss.backward()
        opt.step()
        history.append((float(loss.detach()), model.last_stats.nfe))
    assert history[-1][0] < 0.5 * history[0][0]
    assert history[-1][1] <= history[0][1]


def test_error_regularizer_bad_inputs():
    field = TimeMLP()
    model = NeuralODE(field)  # no recorded steps
    model(torch.randn(2, 2, dtype=F64))
    with pytest.raises(SolverError):
        ErrorRegularizer()(model)
    fixed = NeuralODE(field, solver=RK4(dt=0.1), record_steps=True)
    fixed(torch.randn(2, 2, dtype=F64))
    with pytest.raises(InvalidArgumentError):
        ErrorRegularizer()(fixed)
    with pytest.raises(InvalidArgumentError):
        ErrorRegularizer(weight=-1.0)
    with pytest.raises(InvalidArgumentError):
        ErrorRegularizer()(NeuralODE(field))  # no forward pass yet


def test_adjoint_finds_parameters_of_an_autonomous_field():
    field = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).to(F64)
    y0 = torch.randn(3, 2, dtype=F64)
    grads = []
    for sensealg in (None, BacksolveAdjoint()):
        model = NeuralODE(field, solver=Tsit5(rtol=1e-9, atol=1e-11), sensealg=sensealg,
                          autonomous=True)
        grads.append(torch.autograd.grad(model(y0).sum(), list(field.parameters())))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in model.named_parameters()
                                                        if n.startswith("vector_field.")]


@pytest.mark.parametrize("solver", [Tsit5, Dopri5])
def test_stiffness_estimate_is_exact_for_scalar_linear_decay(solver):
    """y' = -lam y: every stage slope is -lam times its stage state, so the estimate is lam."""
    rates = torch.tensor([[0.5], [3.0], [40.0]], dtype=F64)

    class Decay(torch.nn.Module):
        def forward(self, t, y):
            return -rates * y

    model = NeuralODE(Decay(), solver=solver(rtol=1e-6, atol=1e-9), record_steps=True,
                      t=(0.0, 1.0), batched=True)  # per-sample steps and estimates
    model(torch.ones(3, 1, dtype=F64))
    lam, h = stiffness_estimates(model.last_solution)
    accepted = h > 0
    expected = rates[:, 0].expand_as(lam)
    assert torch.allclose(lam[accepted], expected[accepted], rtol=1e-6)
    assert bool((lam[~accepted] == 0).all())


def test_stiffness_regularizer_gradient_reduces_stiffness():
    """Minimising R_S alone on y' = A y lowers A's dominant eigenvalue magnitude."""
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor([[-20.0, 1.0], [0.0, -2.0]], dtype=F64))

        def forward(self, t, y):
            return y @ self.a.T

    field = Linear()
    model = NeuralODE(field, solver=Tsit5(rtol=1e-5, atol=1e-8), record_steps=True, t=(0, 1))
    y0 = torch.randn(4, 2, dtype=F64)
    reg = StiffnessRegularizer(weight=0.01)
    opt = torch.optim.Adam(field.parameters(), lr=0.5)
    first = None
    for _ in range(20):
        opt.zero_grad()
        model(y0)
        loss = reg(model)
        first = first if first is not None else (float(loss.detach()), model.last_stats.nfe)
        loss.backward()
        opt.step()
    model(y0)
    spectral = float(torch.linalg.eigvals(field.a.detach()).abs().max())
    assert spectral < 10.0  # from 20
    assert float(reg(model).detach()) < 0.5 * first[0] and model.last_stats.nfe < first[1]
    with pytest.raises(InvalidArgumentError):
        StiffnessRegularizer(weight=-1.0)
    plain = NeuralODE(field)  # steps not recorded
    plain(y0)
    with pytest.raises(SolverError):
        StiffnessRegularizer()(plain)
