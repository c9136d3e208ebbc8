"""Derivatives: convergence orders, spectral exactness, gradcheck."""

import math

import numpy as np
import pytest
import torch

from opflow import Field, Grid, calculus, norms


def _observed_order(errors, ns):
    return np.polyfit(np.log(ns), np.log(errors), 1)[0] * -1


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("accuracy", [2, 4])
def test_finite_difference_order_including_boundaries(order, accuracy):
    errors, ns = [], [128, 256, 512, 1024]  # asymptotic range
    for n in ns:
        g = Grid.uniform(x=(0.0, 1.0, n + 1))
        (x,) = g.mesh(torch.float64)
        u = torch.exp(torch.sin(3 * x))
        exact = (3 * torch.cos(3 * x) * u if order == 1
                 else (9 * torch.cos(3 * x) ** 2 - 9 * torch.sin(3 * x)) * u)
        d = calculus.partial(u, g, "x", order, accuracy=accuracy)
        errors.append(float((d - exact).abs().max()))
    # the one-sided stencils at the ends approach their order from above in this range
    # (4.22 for the second derivative at accuracy 4: error ratios 19.9, 18.1, 18.2)
    assert -0.2 < _observed_order(errors, ns) - accuracy < 0.3, errors


@pytest.mark.parametrize("accuracy", [2, 4])
def test_periodic_finite_difference_order(accuracy):
    errors, ns = [], [32, 64, 128]
    for n in ns:
        g = Grid.uniform(x=(0.0, 2 * math.pi, n), periodic=("x",))
        (x,) = g.mesh(torch.float64)
        d = calculus.partial(torch.sin(x) ** 3, g, "x", 1, method="fd", accuracy=accuracy)
        errors.append(float((d - 3 * torch.sin(x) ** 2 * torch.cos(x)).abs().max()))
    assert abs(_observed_order(errors, ns) - accuracy) < 0.2, errors


def test_spectral_derivatives_exact_on_band_limited_data():
    g = Grid.uniform(x=(0, 2 * math.pi, 32), y=(0, 1, 24), periodic=("x", "y"))
    x, y = g.mesh(torch.float64)
    u = torch.sin(3 * x) * torch.cos(2 * math.pi * 5 * y) + torch.cos(7 * x)
    ux = 3 * torch.cos(3 * x) * torch.cos(2 * math.pi * 5 * y) - 7 * torch.sin(7 * x)
    uyy = -(10 * math.pi) ** 2 * torch.sin(3 * x) * torch.cos(2 * math.pi * 5 * y)
    assert float((calculus.partial(u, g, "x") - ux).abs().max()) < 1e-10
    assert float((calculus.partial(u, g, "y", 2) - uyy).abs().max()) < 1e-10 * (10 * math.pi) ** 2
    lap = calculus.laplacian(u, g)
    div_grad = calculus.divergence(calculus.gradient(u, g), g)
    assert float((lap - div_grad).abs().max()) < 1e-8


def test_field_methods_and_batch_layout():
    g = Grid.uniform(x=(0, 2 * math.pi, 16), y=(0, 2 * math.pi, 16), periodic=("x", "y"))
    x, y = g.mesh(torch.float64)
    u = Field(torch.stack([torch.sin(x) * torch.sin(y)] * 3)[:, None], g, names="psi")
    assert u.batch_shape == (3,) and u.channels == 1
    gr = u.grad()
    assert gr.channels == 2 and gr.names == ("dpsi_dx", "dpsi_dy")
    lap = u.laplacian()
    assert float((lap.values + 2 * u.values).abs().max()) < 1e-10
    assert float((gr.div().values - lap.values).abs().max()) < 1e-10


def test_gradcheck_through_derivatives_and_norms():
    g = Grid.uniform(x=(0, 1, 7), y=(0, 1, 6), periodic=("y",))
    u = torch.randn(2, 1, 7, 6, dtype=torch.float64, requires_grad=True)

    def fn(v):
        f = Field(v, g)
        return (calculus.laplacian(v, g, accuracy=4).square().sum()
                + norms.h1(f).sum() + norms.rel_l2(f, Field(v.detach() + 1, g)).sum())

    assert torch.autograd.gradcheck(fn, (u,))


def test_norms_match_analytic_values():
    g = Grid.uniform(x=(0, 1, 257))
    (x,) = g.mesh(torch.float64)
    f = Field(torch.sin(math.pi * x)[None, None], g)
    assert float(norms.l2(f)) == pytest.approx(math.sqrt(0.5), rel=1e-4)
    h1 = math.sqrt(0.5 + math.pi**2 / 2)
    assert float(norms.h1(f)) == pytest.approx(h1, rel=1e-3)
    assert float(norms.rel_l2(f * 1.1, f)) == pytest.approx(0.1, rel=1e-9)


def test_fd_weights_reproduce_known_stencils():
    np.testing.assert_allclose(calculus.fd_weights((-1, 0, 1), 2), [1, -2, 1], atol=1e-12)
    np.testing.assert_allclose(calculus.fd_weights((-2, -1, 0, 1, 2), 1),
                               np.array([1, -8, 0, 8, -1]) / 12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_and_returned_in_float32(dtype):
    g = Grid.uniform(x=(0, 2 * math.pi, 32), periodic=("x",))
    (x,) = g.mesh(torch.float64)
    u = torch.sin(x)[None]
    half = Field(u.to(dtype), g)
    d = half.partial("x")
    assert d.dtype == torch.float32
    ref = Field(u.to(dtype).float(), g).partial("x")
    torch.testing.assert_close(d.values, ref.values)
    torch.testing.assert_close(d.values.double(), torch.cos(x)[None], atol=2e-2, rtol=0)
    assert half.norm().dtype == torch.float32
