"""One save-times checker serves the ODE, SDE and spectral solvers."""

import math

import pytest
import torch

from opflow import BurgersProblem, Field, Grid, ODEProblem, PseudoSpectral, Tsit5, solve
from opflow.errors import InvalidArgumentError
from opflow.solvers.saving import MAX_SAVED_ELEMENTS, save_times
from opflow.solvers.sde import EulerMaruyama, SDEProblem


def _ode():
    return ODEProblem(lambda t, u: -u, torch.ones(2), (0.0, 1.0))


def _sde():
    return SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * u, torch.ones(3, 1), (0.0, 1.0))


def _burgers():
    grid = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))
    (x,) = grid.mesh()
    u0 = Field(torch.sin(2 * math.pi * x)[None], grid)
    return BurgersProblem(u0, 0.1, (0.0, 1.0))


SOLVES = {
    "ode": lambda saveat: solve(_ode(), Tsit5(), saveat=saveat),
    "sde": lambda saveat: solve(_sde(), EulerMaruyama(dt=0.1), saveat=saveat, seed=0),
    "spectral": lambda saveat: solve(_burgers(), PseudoSpectral(dt=0.01), saveat=saveat),
}
BAD = {
    "nan": ([0.0, float("nan"), 1.0], "finite"),
    "inf-interval": (float("inf"), "positive interval"),
    "negative-interval": (-0.1, "positive interval"),
    "decreasing": ([0.5, 0.2], "non-decreasing"),
    "outside": ([0.5, 2.0], "within tspan"),
    "empty": ([], "at least one"),
    "text": ("often", "sequence of times"),
    "requires-grad": (torch.tensor([0.5, 1.0], requires_grad=True), "require grad"),
    "terabytes": (1e-12, "saved numbers"),
}


@pytest.mark.parametrize("solver", sorted(SOLVES))
@pytest.mark.parametrize("case", sorted(BAD))
def test_every_time_marching_solver_refuses_the_same_bad_saveat(solver, case):
    saveat, expected = BAD[case]
    with pytest.raises(InvalidArgumentError, match="saveat") as info:
        SOLVES[solver](saveat)
    assert expected in str(info.value)


@pytest.mark.parametrize("solver", sorted(SOLVES))
def test_every_time_marching_solver_saves_at_the_same_times(solver):
    sol = SOLVES[solver](0.3)
    torch.testing.assert_close(sol.t.double(), torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0],
                                                            dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_interval_that_divides_the_span_ends_exactly_at_t1():
    assert save_times(0.25, 0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert save_times(None, 2.0, 3.0) == [2.0, 3.0]
    # rounding just past t1 is clamped back onto the span
    assert save_times([0.0, 1.0 + 1e-15], 0.0, 1.0) == [0.0, 1.0]


def test_size_check_counts_the_state():
    state = MAX_SAVED_ELEMENTS // 10
    assert len(save_times(0.25, 0.0, 1.0, state_numel=state)) == 5
    with pytest.raises(InvalidArgumentError, match="saveat"):
        save_times(0.01, 0.0, 1.0, state_numel=state)


# ------------------------------------------------------- solve's one registry
def test_registered_pairs_is_the_public_view_of_the_registry():
    from opflow.solve import registered_pairs

    pairs = registered_pairs()
    names = {(p.__name__, a.__name__) for p, a in pairs}
    assert ("ODEProblem", "AdaptiveRK") in names and ("BurgersProblem", "PseudoSpectral") in names
    assert pairs == sorted(pairs, key=lambda k: (k[0].__name__, k[1].__name__))


@pytest.mark.parametrize("solver", sorted(SOLVES))
def test_an_unknown_keyword_names_itself_and_lists_the_accepted_ones(solver):
    problem = {"ode": _ode, "sde": _sde, "spectral": _burgers}[solver]()
    alg = {"ode": Tsit5(), "sde": EulerMaruyama(dt=0.1), "spectral": PseudoSpectral(dt=0.01)}
    with pytest.raises(InvalidArgumentError, match="savat") as info:
        solve(problem, alg[solver], savat=0.1)
    assert "saveat" in str(info.value) and "progress" in str(info.value)
