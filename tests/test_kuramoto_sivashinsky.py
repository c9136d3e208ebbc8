"""Kuramoto-Sivashinsky: fourth order in time against a manufactured solution, the
conserved mean, and ``opflow generate kuramoto-sivashinsky``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import opflow
from opflow import Field, Grid
from opflow.errors import InvalidArgumentError
from opflow.solvers.pde import KuramotoSivashinskyProblem


def _manufactured(dt: float, t_end: float = 1.0) -> float:
    """Max error at t_end for u = A(t) sin x, A = 0.5 cos t, forced to solve KS exactly."""
    grid = Grid.uniform(x=(0.0, 2 * math.pi, 32), periodic=("x",))
    (x,) = grid.mesh(dtype=torch.float64)

    def amplitude(t):
        return 0.5 * torch.cos(t)

    def forcing(t, u):  # u_t + u u_x + u_xx + u_xxxx for the exact u (the last two cancel)
        a = amplitude(t)
        return (-0.5 * torch.sin(t) * torch.sin(x) + 0.5 * a**2 * torch.sin(2 * x))[None]

    u0 = Field((0.5 * torch.sin(x))[None], grid)
    prob = KuramotoSivashinskyProblem(u0, tspan=(0.0, t_end), closure=forcing)
    sol = opflow.solve(prob, opflow.PseudoSpectral(dt=dt, scheme="etdrk4"), saveat=[t_end])
    exact = amplitude(torch.tensor(t_end, dtype=torch.float64)) * torch.sin(x)
    return float((sol.u.values[-1, 0] - exact).abs().max())


def test_etdrk4_converges_at_fourth_order_on_a_manufactured_solution():
    errors = [_manufactured(dt) for dt in (0.2, 0.1, 0.05)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert errors[-1] < 1e-6 and min(orders) > 3.5, (errors, orders)


def test_the_mean_is_conserved_and_long_waves_grow():
    grid = Grid.uniform(x=(0.0, 22.0, 64), periodic=("x",))
    (x,) = grid.mesh(dtype=torch.float64)
    u0 = Field((0.2 + 0.01 * torch.cos(2 * math.pi * x / 22.0))[None], grid)
    sol = opflow.solve(KuramotoSivashinskyProblem(u0, tspan=(0.0, 20.0)),
                       opflow.PseudoSpectral(dt=0.25, scheme="etdrk4"), saveat=[20.0])
    u = sol.u.values[-1, 0]
    assert abs(float(u.mean()) - 0.2) < 1e-12
    # the unstable mode k = 2 pi / 22 grew at its linear rate k^2 - k^4 (small amplitude)
    k = 2 * math.pi / 22.0
    amplitude = 2 * float(torch.fft.rfft(u)[1].abs()) / 64
    expected = 0.01 * math.exp((k**2 - k**4) * 20.0)
    assert abs(amplitude / expected - 1) < 0.02, (amplitude, expected)
    with pytest.raises(InvalidArgumentError, match="argument `u0`"):
        KuramotoSivashinskyProblem(Field(torch.zeros(1, 8), Grid.uniform(x=(0.0, 1.0, 8))))


def test_generate_kuramoto_sivashinsky(tmp_path):
    from opflow.cli import main

    out = tmp_path / "ks.nc"
    assert main(["generate", "kuramoto-sivashinsky", "--n", "2", "--resolution", "64",
                 "--out", str(out), "--seed", "3", "--option", "length=22.0",
                 "--option", "t_start=20", "--option", "n_saves=3"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds["u0"].dims == ("sample", "x") and ds["u"].dims == ("sample", "t", "x")
        assert ds["u"].shape == (2, 3, 64) and np.allclose(ds["t"].values, [21.0, 22.0, 23.0])
        u, u0 = ds["u"].values, ds["u0"].values
        assert abs(float(ds["x"].values[1]) - 22.0 / 64) < 1e-12
    assert np.isfinite(u).all() and 0.3 < u.std() < 3.0  # on the attractor, not blown up
    np.testing.assert_allclose(u.mean(axis=-1), u0.mean(axis=-1)[:, None].repeat(3, 1),
                               atol=1e-10)
    # the same seed gives the same samples whatever the chunking
    again = opflow.data.generate("kuramoto-sivashinsky", n=2, resolution=64, seed=3, chunk=1,
                                 progress=False, length=22.0, t_start=20, n_saves=3)
    np.testing.assert_array_equal(again["u"].values, u)
