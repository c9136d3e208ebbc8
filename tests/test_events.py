"""Events: bouncing ball against the closed form, terminal events, a differentiable
event time, discrete callbacks, bad input."""

import math

import pytest
import torch

from opflow import ODEProblem, ReturnCode, Tsit5, solve
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.solvers.ode import ContinuousCallback, DiscreteCallback, Rodas4

F64 = torch.float64
G = 9.81


def _fall(t, u):
    return torch.stack([u[1], torch.full_like(u[1], -G)])


def _bounces(h0=1.0, e=0.9, n=4):
    t = math.sqrt(2 * h0 / G)
    times, v = [t], G * t
    for k in range(1, n):
        times.append(times[-1] + 2 * e ** k * v / G)
    return times


BOUNCE = ContinuousCallback(lambda t, u: u[0], lambda t, u: torch.stack([u[0], -0.9 * u[1]]),
                            direction=-1)


@pytest.mark.parametrize("alg", [Tsit5(rtol=1e-10, atol=1e-12), Rodas4(rtol=1e-10, atol=1e-12)],
                         ids=["tsit5", "rodas4"])
def test_bouncing_ball_event_times_match_the_closed_form(alg):
    sol = solve(ODEProblem(_fall, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 3.0)), alg,
                callback=BOUNCE, saveat=[0.0, 3.0])
    got = [float(e.t) for e in sol.record["events"]]
    want = _bounces(n=4)
    assert sol.retcode == ReturnCode.Success and len(got) == 4
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-8
    # the states at the events are on the floor, moving down; the solution ends at t = 3
    assert all(abs(float(e.u[0])) < 1e-8 and float(e.u[1]) < 0 for e in sol.record["events"])
    assert float(sol.t[-1]) == 3.0 and float(sol.t[0]) == 0.0


def test_terminal_event_stops_the_solve():
    stop = ContinuousCallback(lambda t, u: u[0] - 0.5, terminate=True)
    sol = solve(ODEProblem(_fall, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 3.0)),
                Tsit5(rtol=1e-10, atol=1e-12), callback=stop, saveat=0.1)
    t_hit = math.sqrt(2 * 0.5 / G)
    assert abs(float(sol.t[-1]) - t_hit) < 1e-9 and abs(float(sol.u[-1, 0]) - 0.5) < 1e-9
    assert all(float(t) <= t_hit + 1e-12 for t in sol.t)


def test_event_time_gradient_matches_the_closed_form_and_finite_differences():
    h0 = torch.tensor(2.0, dtype=F64, requires_grad=True)
    floor = ContinuousCallback(lambda t, u: u[0], direction=-1, terminate=True)

    def landing(h):
        u0 = torch.stack([h, torch.zeros((), dtype=F64)])
        sol = solve(ODEProblem(_fall, u0, (0.0, 5.0)), Tsit5(rtol=1e-10, atol=1e-12),
                    callback=floor)
        return sol.record["events"][0].t

    t_star = landing(h0)
    (grad,) = torch.autograd.grad(t_star, h0)
    exact = 1.0 / math.sqrt(2 * G * 2.0)  # d sqrt(2 h / g) / dh
    fd = (float(landing(torch.tensor(2.0 + 1e-6, dtype=F64)))
          - float(landing(torch.tensor(2.0 - 1e-6, dtype=F64)))) / 2e-6
    assert abs(float(grad) - exact) < 1e-7 and abs(fd - exact) < 1e-6


def test_discrete_callback_acts_at_the_first_step_end_where_it_holds():
    kick = DiscreteCallback(lambda t, u: bool(t >= 0.5), lambda t, u: u + 1.0)
    sol = solve(ODEProblem(lambda t, u: torch.cos(10 * t) * torch.ones_like(u),
                           torch.zeros(1, dtype=F64), (0.0, 1.0)),
                Tsit5(rtol=1e-10, atol=1e-12), callback=kick)
    events = sol.record["events"]
    assert len(events) == 1 and 0.5 <= float(events[0].t) < 1.0
    # the kick happened once (the condition stays true afterwards), the state kept it
    assert abs(float(sol.u[-1, 0]) - (math.sin(10.0) / 10 + 1.0)) < 1e-8


def test_callback_bad_input():
    prob = ODEProblem(_fall, torch.tensor([1.0, 0.0], dtype=F64), (0.0, 1.0))
    with pytest.raises(InvalidArgumentError, match="callback"):
        solve(prob, Tsit5(), callback="bounce")
    with pytest.raises(InvalidArgumentError, match="direction"):
        ContinuousCallback(lambda t, u: u[0], direction=2)
    with pytest.raises(ShapeError, match="condition"):
        solve(prob, Tsit5(), callback=ContinuousCallback(lambda t, u: u))
    batched = ODEProblem(lambda t, u: -u, torch.ones(2, 1, dtype=F64), (0.0, 1.0), batched=True)
    with pytest.raises(InvalidArgumentError, match="callback"):
        solve(batched, Tsit5(), callback=BOUNCE)
