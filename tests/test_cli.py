import subprocess
import sys

import numpy as np
import xarray as xr

from opflow.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "demo" in out and "info" in out


def test_info_lists_registered_solvers(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "solve(ODEProblem, AdaptiveRK)" in out and "solve(ODEProblem, FixedStepRK)" in out
    # one list of named problems, each with what generate and solve can do with it
    rows = {line.split()[0]: line.split()[1] for line in out.split("named problems")[1]
            .splitlines()[1:] if line.strip()}
    assert rows["darcy"] == "generate/solve" and rows["heat"] == "solve"
    assert rows["navier-stokes"] == "generate" and "multitask" in rows


def test_catalog_views_are_one_list():
    from opflow.batch.problems import PROBLEMS
    from opflow.catalog import named_problems
    from opflow.data.generation import RECIPES

    names = [p.name for p in named_problems()]
    assert names == sorted(set(RECIPES) | set(PROBLEMS))
    assert all((p.recipe is not None) == (p.name in RECIPES)
               and (p.solver is not None) == (p.name in PROBLEMS) for p in named_problems())


def test_demo_writes_netcdf_and_png_with_small_error(tmp_path, capsys):
    assert main(["demo", "heat", "--out", str(tmp_path), "--resolution", "16", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    err = float(out.split("t=0.5: ")[1].split()[0])
    assert err < 1e-6
    ds = xr.open_dataset(tmp_path / "heat.nc")
    assert ds["u"].dims == ("t", "sample", "x", "y") and ds["u"].attrs["units"] == "K"
    assert (tmp_path / "heat.png").stat().st_size > 1000


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "opflow.cli", "--help"], capture_output=True,
                          text=True, check=True)
    assert "usage: opflow" in proc.stdout


def test_generate_command_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "g.nc"
    assert main(["generate", "grf", "--n", "3", "--resolution", "8", "--out", str(out),
                 "--option", "tau=4.0"]) == 0
    ds = xr.open_dataset(out)
    assert ds["g"].shape == (3, 8, 8) and '"tau": 4.0' in ds.attrs["opflow_generate"]


def test_darcy_demo_trains_both_models_and_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--resolution", "17", "--n-train", "8",
                 "--n-test", "4", "--epochs-scale", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "MgNO" in out and "DeepONet" in out and "test rel L2" in out
    first = out.splitlines()[0]  # says up front how long the demo takes
    assert first.startswith("Darcy demo:") and "minutes on a 2-core laptop CPU" in first
    for name in ("darcy.nc", "mgno_predictions.nc", "deeponet_predictions.nc",
                 "darcy_predictions.png", "mgno/best.pt"):
        assert (tmp_path / name).exists(), name
    pred = xr.open_dataset(tmp_path / "mgno_predictions.nc")
    assert pred["rel_l2"].shape == (4,) and float(pred["rel_l2"].max()) < 10


def test_train_and_predict_commands_with_lowercase_model_names(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "darcy_sample.nc"
    run = tmp_path / "run"
    assert main(["train", "--model", "mgno", "--data", str(data), "--vars", "a", "--targets",
                 "u", "--epochs", "1", "--out", str(run), "--width", "4", "--quiet"]) == 0
    pred = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "--out", str(pred)]) == 0
    ds = xr.open_dataset(pred)
    assert ds.sizes["sample"] == 32 and np.isfinite(ds[list(ds.data_vars)[0]].values).all()
