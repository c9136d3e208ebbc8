"""PDEBench diffusion-sorption by the method of lines and opflow's stiff integrators."""

import numpy as np
import pytest
import torch

from opflow.catalog import named_problems
from opflow.data import generate
from opflow.data.diffusion_sorption import diffusion_sorption_rhs, solve_diffusion_sorption


def test_rodas4_agrees_with_scipy_bdf_on_the_semi_discrete_problem():
    integrate = pytest.importorskip("scipy.integrate")
    nx, t_end = 32, 100.0
    u0 = torch.full((1, nx), 0.1, dtype=torch.float64)
    got = solve_diffusion_sorption(u0, t_end=t_end, n_t=3, rtol=1e-8)[0]
    f = diffusion_sorption_rhs(nx)
    ref = integrate.solve_ivp(lambda t, y: f(torch.tensor(t), torch.tensor(y)[None])[0].numpy(),
                              (0.0, t_end), u0[0].numpy(), method="BDF", rtol=1e-11,
                              atol=1e-14, t_eval=[0.0, t_end / 2, t_end])
    np.testing.assert_allclose(got.numpy(), ref.y.T, rtol=1e-5, atol=1e-7)


def test_generated_data_set_has_the_pdebench_layout_and_physics():
    ds = generate("diffusion-sorption", n=2, resolution=16, seed=3, progress=False, n_t=5,
                  t_end=200.0)
    assert ds["u"].dims == ("sample", "t", "x") and ds["u"].shape == (2, 5, 16)
    u0 = ds["u0"].values
    assert np.allclose(u0, u0[:, :1]) and (0 <= u0).all() and (u0 <= 0.2).all()
    np.testing.assert_allclose(ds["u"].values[:, 0], u0)
    u = ds["u"].values
    # the contaminant enters from the left (u = 1 there) and stays within [0, 1]
    assert (u >= -1e-9).all() and (u <= 1 + 1e-9).all()
    assert (np.diff(u[:, :, 0], axis=1) > 0).all()
    assert float(ds.attrs["param_n_f"]) == 0.874
    assert "diffusion-sorption" in {p.name for p in named_problems() if p.recipe}
