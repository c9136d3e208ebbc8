"""``opflow train --model NAME`` with only the data flags, and the bad inputs of train/predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from opflow.cli import main
from opflow.data import generate
from opflow.io import save
from opflow.train import read_checkpoint
from opflow.train.model_setup import complete_config


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_models")
    ds = generate("grf", n=14, resolution=16, seed=0, progress=False)
    ds["u"] = ds["g"] ** 2 + 0.5 * ds["g"]
    save(ds, d / "train.nc")
    save(ds.isel(sample=slice(0, 1)), d / "one.nc")
    save(ds.rename({"g": "h"}), d / "renamed.nc")
    fine = generate("grf", n=3, resolution=20, seed=1, progress=False)
    save(fine.assign(u=fine["g"]), d / "fine.nc")
    return d


def _train(files, model: str, out, *extra: str) -> int:
    return main(["train", "--model", model, "--data", str(files / "train.nc"), "--vars", "g",
                 "--targets", "u", "--epochs", "2", "--batch-size", "4", "--out", str(out),
                 "--quiet", *extra])


@pytest.mark.parametrize("model", ["fno", "mgno", "deeponet", "pod-deeponet"])
def test_every_model_trains_and_predicts_from_data_flags_alone(files, tmp_path, model, capsys):
    run = tmp_path / "run"
    assert _train(files, model, run) == 0, capsys.readouterr().err
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])
    config = read_checkpoint(run / "best.pt")["model_config"]
    pred = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data",
                 str(files / "train.nc"), "--out", str(pred), "--quiet"]) == 0
    with xr.open_dataset(pred) as ds:
        values = ds["u"].values
    assert values.shape == (14, 16, 16) and np.isfinite(values).all()
    if model == "pod-deeponet":
        # 13 training samples (one held out): 12 modes
        assert config["output_shape"] == [16, 16] and config["branch_layers"][-1] == 12
    if model == "deeponet":
        assert config["branch_layers"][0] == 256 and config["trunk_layers"][0] == 2


def test_pod_modes_span_the_normalised_training_outputs(files, tmp_path):
    """Before any training the POD basis reproduces the training outputs it was built from."""
    from opflow.data import OperatorDataset
    from opflow.operators import build_operator
    from opflow.train.model_setup import prepare_model

    data = OperatorDataset(files / "train.nc", "g", "u")
    cfg = complete_config({"name": "pod-deeponet", "in_channels": 1, "out_channels": 1},
                          (16, 16), (16, 16), n_train=14)
    cfg["branch_layers"][-1] = 13  # centred rank of 14 samples: an exact basis
    model = build_operator(cfg)
    prepare_model(model, data)
    u = torch.stack([data[i][1].values for i in range(len(data))]).reshape(14, -1).double()
    basis = torch.cat([model.modes.double(), model.mean.double()[:, None]], dim=1)
    coef = torch.linalg.lstsq(basis, u.T).solution
    assert float((basis @ coef - u.T).norm() / u.norm()) < 1e-5
    data.close()


def test_width_and_layers_flags_reach_each_model():
    cfg = complete_config({"name": "deeponet", "in_channels": 2, "out_channels": 3, "width": 8,
                           "layers": 2}, (5, 6), (5, 6), n_train=10)
    assert cfg == {"name": "deeponet", "branch_layers": [60, 8, 8], "trunk_layers": [2, 8, 8],
                   "n_outputs": 3}
    cfg = complete_config({"name": "FNO", "in_channels": 1, "out_channels": 1, "layers": 2},
                          (9, 40), (9, 40), n_train=10)
    assert cfg["modes"] == [4, 12] and cfg["n_layers"] == 2 and "layers" not in cfg
    assert complete_config({"name": "mgno", "in_channels": 1, "out_channels": 1},
                           (33, 33), (33, 33), 5)["levels"] == 5
    assert complete_config({"name": "mgno", "in_channels": 1, "out_channels": 1},
                           (9,), (9,), 5) | {} == {"name": "mgno", "in_channels": 1,
                                                   "out_channels": 1, "levels": 4, "width": 16,
                                                   "n_layers": 4, "ndim": 1}
    given = complete_config({"name": "fno", "modes": [3, 3], "width": 5}, (16, 16), (16, 16), 4)
    assert given["modes"] == [3, 3] and given["width"] == 5


def test_bad_inputs_of_train_and_predict_fail_on_one_line(files, tmp_path, capsys):
    assert main(["train", "--model", "fno", "--data", str(files / "one.nc"), "--vars", "g",
                 "--targets", "u", "--out", str(tmp_path / "r1"), "--quiet"]) == 1
    assert "argument `--data`" in capsys.readouterr().err
    run = tmp_path / "run"
    assert _train(files, "deeponet", run) == 0
    capsys.readouterr()
    # the input file lacks the variable the model was trained on
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data",
                 str(files / "renamed.nc"), "--out", str(tmp_path / "p1.nc")]) == 1
    err = capsys.readouterr().err
    assert "'g'" in err and "available" in err
    # DeepONet's branch is tied to the training grid: a finer grid is refused by name
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data",
                 str(files / "fine.nc"), "--out", str(tmp_path / "p2.nc")]) == 1
    assert "argument `u`" in capsys.readouterr().err
    assert not (tmp_path / "p1.nc").exists() and not (tmp_path / "p2.nc").exists()
    # a data file given as the checkpoint
    assert main(["predict", "--checkpoint", str(files / "train.nc"), "--data",
                 str(files / "train.nc"), "--out", str(tmp_path / "p3.nc")]) == 1
    assert "checkpoint" in capsys.readouterr().err


def test_fno_trained_on_one_grid_predicts_on_a_finer_one(files, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(files, "fno", run, "--width", "8", "--modes", "4") == 0
    pred = tmp_path / "fine_pred.nc"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data",
                 str(files / "fine.nc"), "--out", str(pred), "--quiet"]) == 0
    with xr.open_dataset(pred) as ds:
        assert ds["u"].shape == (3, 20, 20) and np.isfinite(ds["u"].values).all()


def test_the_same_seed_gives_the_same_weights(files, tmp_path):
    """`opflow train --seed S` seeds the model's initial weights too: same seed, same data,
    same machine, the same state dict (bit for bit); another seed, other weights."""
    weights = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert _train(files, "fno", tmp_path / name, "--width", "4", "--modes", "2",
                      "--epochs", "1", "--seed", seed) == 0
        weights[name] = read_checkpoint(tmp_path / name / "last.pt")["model"]
    assert weights["a"].keys() == weights["b"].keys()
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])
