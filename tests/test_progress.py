"""Progress outside a terminal: one line per epoch or chunk with the elapsed time and the
loss, rate-limited, silenced by --quiet / progress=False (pytest's stderr is no tty)."""

from __future__ import annotations

import re
import sys

import pytest
import torch

import opflow
from opflow import progress as progress_module
from opflow.cli import main
from opflow.data import OperatorDataset
from opflow.progress import Progress, TimeProgress, progress_mode
from opflow.train import Trainer
from opflow.train.loop import fit_steps, show_progress

GRID = opflow.Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))
EPOCH_LINE = re.compile(r"^train: epoch (\d+)/(\d+), train_loss=[\d.e+-]+, "
                        r"val_loss=[\d.e+-]+, val_rel_l2=[\d.e+-]+ \[[\d.]+ s\]$")


def _splits():
    a = opflow.Field(torch.randn(24, 1, 16, generator=torch.Generator().manual_seed(0)), GRID,
                     names="a")
    ds = a.to_xarray().assign(u=lambda d: 2 * d["a"])
    return OperatorDataset(ds, "a", "u").split([0.75, 0.25], seed=0)


def _fit(progress, epochs: int = 4) -> None:
    train, val = _splits()
    model = opflow.operators.FNO(1, 1, modes=4, width=4, n_layers=1)
    Trainer(model, epochs=epochs, batch_size=6, progress=progress, device="cpu").fit(train, val)


def test_the_mode_follows_the_terminal(monkeypatch):
    assert not sys.stderr.isatty()
    assert progress_mode(True) == "lines" and progress_mode(False) is None
    assert progress_mode("always") == "bar" and not show_progress(True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_mode(True) == "bar" and show_progress(True)


def test_trainer_prints_one_line_per_epoch_when_not_a_terminal(capfd, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    _fit(True)
    lines = capfd.readouterr().err.splitlines()
    epochs = [EPOCH_LINE.match(line) for line in lines if line.startswith("train: ")]
    assert [int(m.group(1)) for m in epochs if m] == [1, 2, 3, 4], lines
    # within an epoch: batch lines with the running loss
    assert any(re.match(r"^train epoch 1/4: batch \d/3, loss=[\d.e+-]+ \[", line)
               for line in lines), lines


def test_lines_are_rate_limited(capfd, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 3600.0)
    _fit(True, epochs=5)
    lines = capfd.readouterr().err.splitlines()
    # the first and the last epoch only; no batch lines
    assert [line.split(",")[0] for line in lines] == ["train: epoch 1/5", "train: epoch 5/5"]


def test_quiet_prints_nothing(capfd):
    _fit(False)
    assert capfd.readouterr().err == ""


def test_progress_lines_and_close(capfd, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 3600.0)
    with Progress(10, "work", True, unit="chunk") as bar:
        for _ in range(4):
            bar.update(1, loss=0.25)
    err = capfd.readouterr().err.splitlines()
    # the first update, then (not finished, nothing due) the state at close
    assert [line.split(" [")[0] for line in err] == ["work: chunk 1/10, loss=0.25",
                                                     "work: chunk 4/10, loss=0.25"]
    every = Progress(6, "steps", True, unit="step", every=2)
    for _ in range(6):
        every.update(1)
    every.close()
    assert [line.split(" [")[0] for line in capfd.readouterr().err.splitlines()] == [
        "steps: step 2/6", "steps: step 4/6", "steps: step 6/6"]


def test_fit_steps_and_time_progress_print_lines(capfd, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    w = torch.nn.Parameter(torch.ones(2))
    fit_steps([w], lambda step: (w ** 2).sum(), 3, 0.1, progress=True, desc="fit")
    err = capfd.readouterr().err
    assert "fit: step 3/3, loss=" in err
    bar = TimeProgress(0.0, 2.0, True, desc="ode")
    for t in (0.5, 1.0, 2.0):
        bar.update(t)
    bar.close()
    err = capfd.readouterr().err
    assert "ode: 25/100%, t=0.5" in err and "ode: 100/100%, t=2" in err


def test_generate_and_train_commands_print_progress_unless_quiet(tmp_path, capfd):
    data = tmp_path / "g.nc"
    assert main(["generate", "grf", "--n", "6", "--resolution", "8", "--chunk", "3",
                 "--out", str(data)]) == 0
    err = capfd.readouterr().err
    assert "generate grf: sample 3/6 [" in err and "generate grf: sample 6/6 [" in err
    assert main(["generate", "grf", "--n", "6", "--resolution", "8", "--chunk", "3",
                 "--out", str(tmp_path / "q.nc"), "--quiet"]) == 0
    assert capfd.readouterr().err == ""
    argv = ["train", "--model", "fno", "--data", str(data), "--vars", "g", "--targets", "g",
            "--epochs", "2", "--batch-size", "5"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    err = capfd.readouterr().err
    assert "train: epoch 1/2, train_loss=" in err and "train: epoch 2/2, train_loss=" in err
    assert main([*argv, "--out", str(tmp_path / "run2"), "-q"]) == 0
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("progress", [True, False])
def test_ode_solve_progress(progress, capfd):
    prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2), tspan=(0.0, 1.0))
    sol = opflow.solve(prob, opflow.Tsit5(), progress=progress)
    assert sol.success
    err = capfd.readouterr().err
    assert ("100/100%" in err) == progress


def test_pinn_training_prints_lines_with_its_loss_terms(capfd, monkeypatch):
    from opflow.solvers.pinn import PINN, Dirichlet, Interval, PINNProblem, d

    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    prob = PINNProblem(lambda x, u: -d(u, x, "x", 2) - 1.0, Interval(0.0, 1.0),
                       conditions=[Dirichlet(0.0)])
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opflow.solve(prob, PINN(net, n_interior=16, n_boundary=2, iterations=3, seed=0),
                 progress=True)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("PINN")]
    assert len(lines) >= 2 and "3/3" in lines[-1], lines
    assert "residual" in lines[-1] and re.search(r"\[[\d.]+ s\]$", lines[-1]), lines


@pytest.mark.parametrize("krylov", [None, "cg"])
def test_multigrid_cycles_print_lines_with_the_residual(krylov, capfd, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    grid = opflow.Grid.uniform(x=(0.0, 1.0, 33), y=(0.0, 1.0, 33))
    prob = opflow.PoissonProblem(opflow.Field(torch.ones(1, 1, 33, 33), grid))
    sol = opflow.solve(prob, opflow.Multigrid(rtol=1e-5, krylov=krylov), progress=True)
    assert sol.success
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("multigrid")]
    assert len(lines) >= 2 and f"cycle {len(lines)}/50," in lines[-1], lines
    assert re.search(r"residual=[\d.e+-]+ \[[\d.]+ s\]$", lines[-1]), lines
    opflow.solve(prob, opflow.Multigrid(rtol=1e-5, krylov=krylov), progress=False)
    assert "multigrid" not in capfd.readouterr().err
