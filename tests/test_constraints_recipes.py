"""The hard constraint from the command line: recipes, HardConstraintOperator, ``opflow train
--model hard-constraint --loss residual`` and ``opflow predict``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from opflow import Field, Grid
from opflow.cli import main
from opflow.constraints import HardConstraintOperator, constraint_recipe
from opflow.data import generate
from opflow.errors import InvalidArgumentError, UnknownVariableError
from opflow.io import save
from opflow.solvers.pinn import GridCoordinates
from opflow.train import read_checkpoint


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("hc") / "ds.nc"
    save(generate("diffusion-sorption", 10, resolution=32, seed=0, progress=False,
                  n_t=21, t_end=500.0), path)
    return path


def _loss(u: torch.Tensor, u0: torch.Tensor, grid: Grid) -> float:
    """The recipe's residual loss (PDE on every node, initial and wall rows) of ``u``."""
    rec = constraint_recipe("diffusion-sorption")
    B = u.shape[0]
    x = GridCoordinates(grid, B, dtype=torch.float64)
    pts = u.reshape(-1, 1)
    a = u0[:, None, :].expand(u.shape).reshape(-1, 1)
    loss = float(rec.residual(x, pts).square().mean())
    for c in rec.conditions:
        face = c.mask(grid).reshape(-1).repeat(B)
        loss += float(c.residual(x, pts, a)[face].square().mean())
    return loss


def test_the_generated_solution_satisfies_the_recipe_and_a_wrong_one_does_not(data):
    with xr.open_dataset(data) as ds:
        u = torch.as_tensor(ds["u"].values, dtype=torch.float64)        # (B, t, x)
        u0 = torch.as_tensor(ds["u0"].values, dtype=torch.float64)
        grid = Grid.uniform(t=(0.0, 500.0, 21), x=(1 / 64, 1 - 1 / 64, 32))
        assert np.allclose(ds["x"].values, grid.axis("x").coords)
    true = _loss(u, u0, grid)
    still = _loss(u0[:, None, :].expand(u.shape).contiguous(), u0, grid)   # no evolution
    jump = u.clone()
    jump[:, 1:] = 1.0                                                     # u = 1 after t = 0
    # measured: 0.022, 0.79 and 3.96
    assert true < 0.05 and still > 10 * true and _loss(jump, u0, grid) > 10 * true


def test_operator_lifts_the_initial_state_and_refuses_other_grids():
    model = HardConstraintOperator(n_t=5, experts=2, points=6, width=4, modes=(2, 2))
    grid = Grid.uniform(x=(1 / 16, 15 / 16, 8))
    a = Field(torch.full((2, 1, 8), 0.1), grid)
    lifted = model.lift(a)
    assert lifted.values.shape == (2, 3, 5, 8) and lifted.grid.names == ("t", "x")
    assert torch.equal(lifted.values[:, 0, 3], a.values[:, 0])
    u = model(a)
    assert u.values.shape == (2, 1, 5, 8) and u.attrs["retcode"] == "Success"
    with pytest.raises(InvalidArgumentError, match="argument `a`"):
        model(Field(torch.zeros(2, 1, 8), Grid.uniform(y=(0.0, 1.0, 8))))
    with pytest.raises(UnknownVariableError, match="recipe"):
        HardConstraintOperator(recipe="heat")
    with pytest.raises(InvalidArgumentError, match="n_t"):
        HardConstraintOperator(n_t=1)


def test_train_with_the_residual_loss_and_predict_from_the_command_line(data, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "hard-constraint", "--data", str(data), "--vars", "u0",
                 "--targets", "u", "--epochs", "2", "--batch-size", "4", "--loss", "residual",
                 "--option", "experts=2", "--option", "points=8", "--width", "8",
                 "--out", str(run), "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["n_t"] == 21 and config["model"]["experts"] == 2
    assert config["train"]["loss"] == "residual"
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    assert read_checkpoint(run / "best.pt")["normalizers"] is None   # physical units
    pred = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "--out", str(pred), "--quiet"]) == 0
    with xr.open_dataset(pred) as ds:
        assert ds["u"].dims == ("sample", "t", "x") and ds["u"].shape == (10, 21, 32)
        assert np.isfinite(ds["u"].values).all()


def test_residual_loss_needs_a_model_with_a_pde(data, tmp_path, capsys):
    code = main(["train", "--model", "fno", "--data", str(data), "--vars", "u0", "--targets",
                 "u0", "--epochs", "1", "--loss", "residual", "--out", str(tmp_path / "r"),
                 "--quiet"])
    assert code == 1 and "--loss" in capsys.readouterr().err
