"""Gaussian random fields: the sampled covariance is the prescribed one."""

import math

import numpy as np
import pytest
import torch

from opflow import Grid
from opflow.data import grf, grf_basis
from opflow.errors import InvalidArgumentError

CASES = [
    (Grid.uniform(x=(0, 1, 24), periodic=("x",)), "periodic", 2.0, 5.0, 25.0),
    (Grid.uniform(x=(0, 2, 17)), "neumann", 2.0, 3.0, 1.0),
    (Grid.uniform(x=(0, 1, 17)), "dirichlet", 1.5, 2.0, 1.0),
    (Grid.uniform(x=(0, 1, 9), y=(0, 1, 8), periodic=("y",)), ["neumann", "periodic"], 2.5, 7.0,
     7**0.75),
]


@pytest.mark.parametrize("grid, bc, alpha, tau, sigma", CASES)
def test_mode_variances_match_the_spectrum(grid, bc, alpha, tau, sigma):
    """Project samples on the eigenbasis; each mode's variance is lambda_m.

    With B samples the variance estimate of a mode has relative standard
    deviation sqrt(2 / B); every mode must lie within 5 of those, and the
    average ratio over all modes within 3 / sqrt(B * modes / 2).
    """
    B = 3000
    u = grf(grid, alpha, tau, sigma, batch=B, seed=3, bc=bc).values[:, 0].numpy()
    bases, std = grf_basis(grid, alpha, tau, sigma, bc)
    coeffs = u
    for axis, phi in enumerate(bases):  # invert Phi (full column rank) along each axis
        moved = np.moveaxis(coeffs, axis + 1, -1)
        coeffs = np.moveaxis(moved @ np.linalg.pinv(phi).T, -1, axis + 1)
    ratio = coeffs.var(axis=0) / std**2
    assert np.abs(ratio - 1).max() < 5 * math.sqrt(2 / B)
    assert abs(ratio.mean() - 1) < 3 / math.sqrt(B * ratio.size / 2)


def test_pointwise_variance_formula_and_reproducibility():
    g = Grid.uniform(x=(0, 1, 33), y=(0, 1, 33))
    a = grf(g, 2.0, 3.0, batch=2, seed=11)
    b = grf(g, 2.0, 3.0, batch=2, seed=11)
    c = grf(g, 2.0, 3.0, batch=2, seed=12)
    assert torch.equal(a.values, b.values) and not torch.equal(a.values, c.values)
    assert a.shape == (2, 1, 33, 33) and a.grid == g


def test_zero_mean_drops_the_constant_mode():
    g = Grid.uniform(x=(0, 1, 16), periodic=("x",))
    u = grf(g, 2.0, 1.0, batch=500, seed=0, zero_mean=True).values
    assert float(u.mean(dim=-1).abs().max()) < 1e-12


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": -1.0}, "alpha"), ({"tau": 0.0}, "tau"), ({"batch": 0}, "batch"),
    ({"bc": "periodic"}, "bc"), ({"bc": "robin"}, "bc"), ({"sigma": -2.0}, "sigma"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        grf(Grid.uniform(x=(0, 1, 8)), **kwargs)
