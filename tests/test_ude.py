"""UDE on Lotka-Volterra (examples/ude_lotka_volterra.py): the learned interaction terms.

Setting: three trajectories, 30 observations each on [0, 3], 1% relative noise;
collocation start then L-BFGS through ``solve`` (Tsit5, direct backprop).
Measured interaction-term relative L2 errors on the training range (one thread,
busy 2-core machine):

* fast run (seed 0, collocation 1000 + L-BFGS 60, ~20 s): misfit 1.84e-4 -> 1.40e-5,
  interaction error 1.26 %, trajectory error 0.56 %;
* full run (collocation 2000 + L-BFGS 300, 35-80 s per seed): seeds 0-6 give
  1.17 / 1.52 / 1.04 / 1.10 / 1.39 / 1.19 / 0.74 %; the slow test asserts < 5 % (the
  issue's target) for seeds 0-4.

With the single trajectory from U0 (the previous setting) the fit reaches the noise
floor but the error is 3.0 / 11.6 / 3.6 / 8.6 / 8.8 % (Adam 300 + L-BFGS 200) or
6.3 / 6.3 / 7.4 / 6.8 / 23.5 % (collocation + L-BFGS 300): see the example's
docstring.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from opflow.errors import InvalidArgumentError, ShapeError

_PATH = Path(__file__).resolve().parents[1] / "examples" / "ude_lotka_volterra.py"


def _example():
    spec = importlib.util.spec_from_file_location("ude_lotka_volterra", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoothed_derivative_is_exact_for_quadratics():
    t = torch.linspace(0.0, 3.0, 30, dtype=torch.float64)
    u = torch.stack([1 + 2 * t - 0.5 * t**2, 3 * t**2], dim=1)
    du = _example().smoothed_derivative(t, u)
    exact = torch.stack([2 - t, 6 * t], dim=1)
    assert torch.allclose(du, exact, atol=1e-10)


def test_bad_arguments_name_the_argument():
    ex = _example()
    with pytest.raises(ShapeError, match="`initial_states`"):
        ex.fit_lotka_volterra(initial_states=(1.0, 2.0, 3.0), quiet=True)
    with pytest.raises(InvalidArgumentError, match="`n_obs`"):
        ex.fit_lotka_volterra(n_obs=5, quiet=True)


def test_ude_lotka_volterra_fast():
    result = _example().fit_lotka_volterra(seed=0, collocation=1000, lbfgs_iterations=60,
                                           quiet=True)
    assert result["final_loss"] <= result["initial_loss"] / 5
    assert result["trajectory_error"] < 0.02
    assert result["interaction_error"] < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_ude_lotka_volterra_within_five_percent_over_seeds(seed):
    result = _example().fit_lotka_volterra(seed=seed, quiet=True)
    assert result["final_loss"] <= result["initial_loss"] / 5
    assert result["interaction_error"] < 0.05
