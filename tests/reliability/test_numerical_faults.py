"""NaN/Inf during training or solving is reported (step, sample, a suggestion) or ends in a
non-success retcode; iteration limits stop solvers in bounded time (no hangs)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import GRID1, Stencil, pairs

import opflow
from opflow import Field, Grid, ReturnCode, solve
from opflow.train import Trainer, TrainingDivergedError, read_checkpoint

# No wall-clock assertions: bounded work is checked by counts (evaluations, steps, cycles).
NFE_LIMIT = 10_000


class PoisonAfter(Stencil):
    """A model whose output turns NaN (or Inf) from its ``k``-th training call on."""

    def __init__(self, k: int, value: float = math.nan):
        super().__init__()
        self.k, self.calls, self.value = k, 0, value

    def forward(self, a: Field) -> Field:
        out = super().forward(a)
        self.calls += self.training
        if self.training and self.calls >= self.k:
            return out.with_values(out.values * self.value)
        return out


@pytest.mark.parametrize("k, value", [(1, math.nan), (5, math.nan), (7, math.inf)],
                         ids=["first-batch-nan", "epoch2-nan", "epoch3-inf"])
def test_training_divergence_names_epoch_batch_and_a_fix(k, value, tmp_path):
    model = PoisonAfter(k, value)
    trainer = Trainer(model, epochs=4, batch_size=4, progress=False, device="cpu",
                      out_dir=tmp_path / "run")
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit(pairs(12))  # 3 batches per epoch
    epoch, batch = (k - 1) // 3 + 1, (k - 1) % 3 + 1
    msg = str(info.value)
    assert f"epoch {epoch}, batch {batch} of 3" in msg, msg
    assert "learning rate" in msg and "grad_clip" in msg and "NaN/Inf" in msg
    last = tmp_path / "run" / "last.pt"
    if epoch > 1:  # the weights of the last finished epoch are kept, and finite
        state = read_checkpoint(last)
        assert state["epoch"] == epoch - 1
        assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("alg", [lambda: opflow.Tsit5(), lambda: opflow.RK4(dt=0.01),
                                 lambda: opflow.Dopri5(), lambda: opflow.Euler(dt=0.01)],
                         ids=["tsit5", "rk4", "dopri5", "euler"])
def test_ode_rhs_turning_nan_is_unstable_not_success(alg):
    def f(t, u):
        return torch.where(t > 0.5, torch.full_like(u, math.nan), -u)

    sol = solve(opflow.ODEProblem(f, torch.ones(3), (0.0, 1.0)), alg())
    assert sol.retcode is not ReturnCode.Success
    assert sol.stats.nfe < NFE_LIMIT  # it stopped soon after the NaN, not at a step cap


def test_ode_finite_time_blow_up_stops_at_the_step_limit():
    # u' = u^2, u(0) = 1 blows up at t = 1: the adaptive step collapses or hits max_steps
    prob = opflow.ODEProblem(lambda t, u: u * u, torch.ones(1), (0.0, 2.0))
    sol = solve(prob, opflow.Tsit5(max_steps=500))
    assert sol.retcode in (ReturnCode.MaxIters, ReturnCode.DtLessThanMin, ReturnCode.Unstable)
    assert sol.stats.steps + sol.stats.rejects <= 500 + 1 and sol.stats.nfe < NFE_LIMIT


def test_sde_drift_turning_nan_is_reported():
    prob = opflow.SDEProblem(lambda t, u: torch.where(t > 0.5, u * math.nan, -u),
                             lambda t, u: 0.1 * torch.ones_like(u), torch.ones(4, 1), (0.0, 1.0))
    sol = solve(prob, opflow.EulerMaruyama(dt=0.01), seed=0)
    assert sol.retcode is not ReturnCode.Success


def test_multigrid_stops_at_max_cycles_with_maxiters():
    g = Grid.uniform(x=(0.0, 1.0, 33), y=(0.0, 1.0, 33))
    coeff = Field(torch.rand(1, 33, 33, generator=torch.Generator().manual_seed(0)) * 1e4 + 1e-4,
                  g)
    sol = solve(opflow.DarcyProblem(coeff, 1.0), opflow.Multigrid(rtol=1e-14, max_cycles=2))
    assert sol.retcode is ReturnCode.MaxIters
    assert sol.stats.iterations == 2


def test_spectral_blow_up_is_unstable_with_the_state_reported():
    u0 = Field(3 * torch.sin(2 * math.pi * GRID1.mesh()[0])[None], GRID1)
    prob = opflow.BurgersProblem(u0, 1e-4, tspan=(0.0, 50.0))
    sol = solve(prob, opflow.PseudoSpectral(dt=0.5, check_every=1))
    assert sol.retcode is ReturnCode.Unstable
    assert sol.stats.steps < 100  # stopped at the blow-up, before the 100 steps to t = 50


def test_an_absurd_fixed_step_count_is_refused_before_marching():
    calls = []
    prob = opflow.ODEProblem(lambda t, u: calls.append(t) or -u, torch.ones(1), (0.0, 1e12))
    with pytest.raises(opflow.errors.InvalidArgumentError, match="`dt`"):
        solve(prob, opflow.RK4(dt=1e-3))
    assert calls == []  # refused before the first evaluation


def test_wall_clock_limits_end_long_solves_with_maxtime():
    """A solve that would run far longer stops at ``max_seconds`` with ``MaxTime``."""

    import opflow
    from opflow import Field, Grid, ODEProblem, ReturnCode, solve
    from opflow.solvers.pde import BurgersProblem, PseudoSpectral

    # stiff enough that Tsit5 would need millions of steps
    prob = ODEProblem(lambda t, u: -1e7 * (u - torch.cos(t)), torch.zeros(4, dtype=torch.float64),
                      (0.0, 100.0))
    sol = solve(prob, opflow.Tsit5(max_steps=10**9, max_seconds=0.3))
    assert sol.retcode == ReturnCode.MaxTime
    assert torch.isnan(sol.u[-1]).all()
    batched = ODEProblem(lambda t, u: -1e7 * (u - 1.0),
                         torch.zeros(3, 2, dtype=torch.float64), (0.0, 100.0), batched=True)
    assert solve(batched, opflow.Dopri5(max_steps=10**9, max_seconds=0.3)).retcode \
        == ReturnCode.MaxTime
    grid = Grid.uniform(x=(0.0, 1.0, 64), periodic=("x",))
    x = grid.mesh(torch.float64)[0]
    burgers = BurgersProblem(Field(torch.sin(2 * torch.pi * x)[None], grid), nu=0.1,
                             tspan=(0.0, 1e4))
    sol = solve(burgers, PseudoSpectral(dt=1e-4, max_seconds=0.3))
    assert sol.retcode == ReturnCode.MaxTime and sol.stats.steps < 10**8
    with pytest.raises(opflow.errors.InvalidArgumentError, match="max_seconds"):
        opflow.Tsit5(max_seconds=0)
    with pytest.raises(opflow.errors.InvalidArgumentError, match="max_seconds"):
        PseudoSpectral(dt=0.1, max_seconds=-1.0)
