"""opflow.train: losses, Trainer, checkpoints, resume, and the train/predict commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from opflow import Field, Grid, norms
from opflow.data import OperatorDataset, UnitGaussianNormalizer
from opflow.errors import CorruptFileError, InvalidArgumentError, OpflowError, ShapeError
from opflow.io import open_dataset, save
from opflow.train import (
    Trainer,
    TrainingDivergedError,
    commands,
    load_checkpoint,
    read_checkpoint,
    rel_h1,
    rel_l2,
    resolve_loss,
    save_checkpoint,
)

N, X = 24, 16
GRID = Grid.uniform(x=(0.0, 1.0, X), periodic=("x",), units={"x": "m"})


class Tiny(nn.Module):
    """A two-layer periodic convolution: enough to learn a 3-point stencil."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 8,
                 dropout: float = 0.0, name: str = "tiny"):
        super().__init__()
        self.config = {"name": name, "in_channels": in_channels, "out_channels": out_channels,
                       "width": width, "dropout": dropout}
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, width, 3, padding=1, padding_mode="circular"), nn.GELU(),
            nn.Dropout(dropout), nn.Conv1d(width, out_channels, 1))

    def forward(self, a: Field) -> Field:
        return Field(self.net(a.values), a.grid)


def tiny_builder(config: dict) -> nn.Module:
    assert config["name"] == "tiny"
    return Tiny(**{k: v for k, v in config.items() if k != "name"})


def pairs(n: int = N, seed: int = 1, offset: float = 0.0) -> tuple[Field, Field]:
    """a ~ N(offset, 1); u = a_xx-like stencil of a plus a: a learnable linear map."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 1, X, generator=g) + offset
    u = torch.roll(a, 1, -1) - 2 * a + torch.roll(a, -1, -1) + 0.5 * a + 3.0
    return Field(a, GRID, "a", "K"), Field(u, GRID, "u", "m s-1")


def trainer(**kw) -> Trainer:
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_size", 8)
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    model = kw.pop("model", None) or Tiny(dropout=kw.pop("dropout", 0.0))
    return Trainer(model, **kw)


def split(a: Field, u: Field, n_train: int = 16):
    return (a[:n_train], u[:n_train]), (a[n_train:], u[n_train:])


# -------------------------------------------------------------------- losses
def test_losses_wrap_norms_and_resolve():
    a, u = pairs(4)
    pred = u + 0.1 * a
    assert torch.allclose(rel_l2(pred, u), norms.rel_l2(pred, u).mean())
    assert torch.allclose(rel_h1(pred, u), norms.rel_h1(pred, u).mean())
    assert rel_l2(pred, u).shape == ()
    assert resolve_loss("rel_h1") is rel_h1
    fn = lambda p, t: ((p - t).values ** 2).mean()  # noqa: E731
    assert resolve_loss(fn) is fn
    with pytest.raises(InvalidArgumentError, match="`loss`.*'rel_l3'"):
        resolve_loss("rel_l3")
    with pytest.raises(InvalidArgumentError, match="`loss`"):
        resolve_loss(3)
    with pytest.raises(ShapeError, match="`pred`"):
        rel_l2(u[:2], u)


# ------------------------------------------------------------------- fitting
def test_fit_reduces_the_loss_and_predicts():
    train, val = split(*pairs())
    t = trainer(epochs=15, lr=1e-2, normalizers="auto")
    history = t.fit(train, val)
    assert [r["epoch"] for r in history] == list(range(1, 16))
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.3 * history[0]["val_loss"]
    assert set(history[0]) >= {"train_loss", "val_loss", "val_rel_l2", "lr", "seconds"}
    out = t.predict(val[0])
    assert isinstance(out, Field) and out.shape == (8, 1, X) and out.names == ("u",)
    assert out.units == ("m s-1",) and out.device.type == "cpu"
    one = t.predict(val[0][0])
    assert one.shape == (1, X)
    torch.testing.assert_close(one.values, out.values[0])
    torch.testing.assert_close(t.predict([val[0][0], val[0][1]]).values, out.values[:2])


def test_auto_normalizers_are_fitted_on_the_train_split_only():
    a, u = pairs(20)
    a = a.with_values(a.values + torch.arange(20.0).reshape(20, 1, 1))  # trend across samples
    ds = xr.merge([a.to_xarray(), u.to_xarray()], combine_attrs="override")
    data = OperatorDataset(ds, "a", "u")
    train, val = data.split([0.5, 0.5], seed=3)
    t = trainer(epochs=1, normalizers="auto")
    t.fit(train, val)
    want_in, want_out = train.fit_normalizers()
    torch.testing.assert_close(t.normalizers[0].mean, want_in.mean)
    torch.testing.assert_close(t.normalizers[1].std, want_out.std)
    everything = data.fit_normalizers()[0]
    assert not torch.allclose(t.normalizers[0].mean, everything.mean, atol=0.5)
    # generic datasets (a pair of Fields): the same statistics as fitting the tensor
    t2 = trainer(epochs=1, normalizers="auto")
    t2.fit((a[:10], u[:10]), (a[10:], u[10:]))
    ref = UnitGaussianNormalizer.fit(a[:10])
    torch.testing.assert_close(t2.normalizers[0].mean, ref.mean)
    torch.testing.assert_close(t2.normalizers[0].std, ref.std)


def test_metrics_files_and_best_last_checkpoints(tmp_path):
    train, val = split(*pairs())
    t = trainer(epochs=3, lr=1e-2, out_dir=tmp_path / "run")
    history = t.fit(train, val)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "metrics.csv",
                                                     "metrics.json"]  # no temporary files
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"] == "val_loss" and len(metrics["history"]) == 3
    assert metrics["history"] == json.loads(json.dumps(history))
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["epoch", "train_loss", "val_loss"] and len(lines) == 4
    best_epoch = 1 + int(np.argmin([r["val_loss"] for r in history]))
    assert metrics["best_epoch"] == best_epoch
    assert read_checkpoint(run / "best.pt")["epoch"] == best_epoch
    last = torch.load(run / "last.pt", weights_only=True)  # plain tensors and containers only
    assert last["epoch"] == 3 and last["model_config"] == t.config
    assert last["metadata"]["data"]["inputs"] == ["a"]
    assert set(last["normalizers"] or {}) <= {"input", "output"}
    fresh = Tiny()
    fresh.load_state_dict(last["model"])
    for p, q in zip(fresh.parameters(), t.model.parameters()):
        assert torch.equal(p, q)


def test_resume_ends_with_bit_for_bit_the_same_weights(tmp_path):
    train, val = split(*pairs())

    def run(epochs, out_dir, resume=False):
        torch.manual_seed(123)  # a different init each time would not matter after resume
        return trainer(dropout=0.2, epochs=epochs, lr=5e-3, normalizers="auto", out_dir=out_dir,
                       seed=7, resume=resume, grad_clip=1.0,
                       scheduler=lambda opt, n: torch.optim.lr_scheduler.StepLR(opt, 3, 0.5))

    straight = run(4, tmp_path / "a")
    straight.fit(train, val)
    first = run(2, tmp_path / "b")
    first.fit(train, val)
    torch.manual_seed(999)  # the global RNG is restored from the checkpoint
    second = run(4, tmp_path / "b", resume=True)
    assert second.epoch == 0
    history = second.fit(train, val)
    assert second.epoch == 4 and len(history) == 4
    a, b = straight.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in straight.history]
    assert second.scheduler.state_dict()["last_epoch"] == straight.scheduler.last_epoch
    sa, sb = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_non_finite_loss_stops_with_a_helpful_error(tmp_path):
    class Exploding(Tiny):
        calls = 0

        def forward(self, a):
            Exploding.calls += 1
            out = super().forward(a)
            return out * float("nan") if Exploding.calls >= 3 else out

    train = pairs(16)
    t = trainer(model=Exploding(), epochs=3, out_dir=tmp_path)
    with pytest.raises(TrainingDivergedError) as info:
        t.fit(train)
    assert isinstance(info.value, OpflowError)
    message = str(info.value)
    assert "epoch 2, batch 1 of 2" in message and "nan" in message
    assert "learning rate" in message and "grad_clip" in message
    assert info.value.epoch == 2 and info.value.batch == 1
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_early_stopping_plateau_scheduler_and_progress_bars(capsys):
    t = trainer(epochs=10, early_stopping=2, optimizer=lambda p: torch.optim.SGD(p, lr=0.0),
                progress="always",
                scheduler=lambda opt, n: torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt, patience=0, factor=0.5))
    a, u = pairs(1)
    same = (a.with_values(a.values.expand(16, 1, X)), u.with_values(u.values.expand(16, 1, X)))
    history = t.fit(same)  # lr 0 and identical samples: the loss stays exactly the same
    assert len(history) == 3 and t.stopped_early and t.best_epoch == 1
    assert t.scheduler.last_epoch == 3  # ReduceLROnPlateau steps once per epoch
    assert t.epoch == 3 and t.fit(same) == history  # a stopped run stays stopped
    assert "loss=" in capsys.readouterr().err


# --------------------------------------------------------------- checkpoints
@pytest.fixture
def checkpoint(tmp_path) -> Path:
    model = Tiny()
    opt = torch.optim.Adam(model.parameters())
    norm = UnitGaussianNormalizer(torch.zeros(1, 1), torch.ones(1, 1))
    return save_checkpoint(tmp_path / "c.pt", model, optimizer=opt, epoch=5,
                           normalizers=(norm, norm), metrics=[{"epoch": 5, "loss": 0.5}])


def test_checkpoint_round_trip_and_weights_only(checkpoint):
    raw = torch.load(checkpoint, weights_only=True)
    assert raw["format"] == "opflow.checkpoint" and raw["opflow_version"]
    assert raw["epoch"] == 5 and raw["metrics"] == [{"epoch": 5, "loss": 0.5}]
    assert isinstance(raw["rng"]["torch"], torch.Tensor)
    assert isinstance(raw["rng"]["numpy"]["keys"], torch.Tensor)
    assert len(raw["sha256"]) == 64
    model = Tiny()
    ckpt = load_checkpoint(checkpoint, model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ckpt["model"].items())


def test_corrupted_checkpoints_raise_corrupt_file_error(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated.pt"):
        load_checkpoint(truncated, Tiny())
    payload = torch.load(checkpoint, weights_only=True)
    payload["model"]["net.0.weight"][0, 0, 0] += 1.0  # a silently changed weight
    tampered = tmp_path / "tampered.pt"
    torch.save(payload, tampered)
    with pytest.raises(CorruptFileError, match=r"tampered.pt.*SHA-256"):
        read_checkpoint(tampered)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptFileError, match="garbage.pt"):
        read_checkpoint(garbage)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_another_model_config_is_refused(checkpoint, tmp_path):
    with pytest.raises(InvalidArgumentError, match="width") as info:
        load_checkpoint(checkpoint, Tiny(width=4))
    assert info.value.argument == "checkpoint" and "c.pt" in str(info.value)
    with pytest.raises(InvalidArgumentError) as info:
        load_checkpoint(checkpoint, nn.Linear(2, 2))  # no config: the weights do not fit
    assert info.value.argument == "checkpoint"
    with pytest.raises(InvalidArgumentError) as info:  # resuming with another model
        trainer(model=Tiny(width=4), resume=checkpoint).fit(pairs(8))
    assert info.value.argument == "checkpoint"


# -------------------------------------------------------------- evaluation
def test_evaluate_returns_and_writes_per_sample_errors(tmp_path):
    a, u = pairs(10)
    t = trainer(epochs=2, normalizers="auto")
    t.fit((a, u))
    result = t.evaluate((a, u), out=tmp_path / "eval.nc", batch_size=4)
    pred = t.predict(a)
    torch.testing.assert_close(result["rel_l2"], norms.rel_l2(pred, u))
    torch.testing.assert_close(result["rel_h1"], norms.rel_h1(pred, u))
    assert result["n"] == 10 and result["rel_l2"].shape == (10,)
    assert result["rel_l2_mean"] == pytest.approx(float(result["rel_l2"].mean()))
    with open_dataset(tmp_path / "eval.nc") as ds:
        assert {"u_pred", "u_true", "rel_l2", "rel_h1"} <= set(ds.data_vars)
        assert ds["rel_l2"].dims == ("sample",) and ds["u_pred"].dims == ("sample", "x")
        np.testing.assert_allclose(ds["rel_l2"].values, result["rel_l2"].numpy())
        np.testing.assert_allclose(ds["u_true"].values, u.values[:, 0].numpy())
        np.testing.assert_allclose(ds["u_pred"].values, pred.values[:, 0].numpy(), rtol=1e-6)
        assert ds["u_true"].attrs["units"] == "m s-1"


# -------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_argument():
    a, u = pairs(4)
    with pytest.raises(InvalidArgumentError, match="empty") as info:
        trainer().fit((a[:0], u[:0]))
    assert info.value.argument == "train"

    class Tensors(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(1, X), torch.zeros(1, X)

    with pytest.raises(InvalidArgumentError, match=r"Field.*tuple\(Tensor, Tensor\)") as info:
        trainer().fit(Tensors())
    assert info.value.argument == "train"
    with pytest.raises(InvalidArgumentError) as info:
        trainer().fit((a, u), val=[])
    assert info.value.argument == "val"
    with pytest.raises(InvalidArgumentError, match="rel_l3"):
        trainer(loss="rel_l3")
    for kw, arg in [({"epochs": 0}, "epochs"), ({"batch_size": 1.5}, "batch_size"),
                    ({"normalizers": "yes"}, "normalizers"), ({"grad_clip": -1}, "grad_clip"),
                    ({"amp": "fp8"}, "amp"), ({"resume": True}, "resume")]:
        with pytest.raises(InvalidArgumentError) as info:
            trainer(**kw)
        assert info.value.argument == arg
    with pytest.raises(InvalidArgumentError, match="scalar") as info:
        trainer(loss=lambda p, t: (p - t).values).fit((a, u))


def test_models_may_return_tensors_but_not_wrong_shapes():
    class TensorOut(Tiny):
        def forward(self, a):
            return self.net(a.values)

    class Halved(Tiny):
        def forward(self, a):
            return Field(self.net(a.values)[..., ::2], a.grid.with_shape(x=X // 2))

    a, u = pairs(8)
    t = trainer(model=TensorOut())
    assert len(t.fit((a, u))) == 2
    out = t.predict(a)
    assert isinstance(out, Field) and out.names == ("u",) and out.grid == GRID
    with pytest.raises(ShapeError, match=r"\(8, 1, 16\)") as info:
        trainer(model=Halved()).fit((a, u))
    assert info.value.argument == "model"


def test_amp_is_a_noted_no_op_on_cpu():
    with pytest.warns(UserWarning, match="amp=True is ignored on cpu"):
        t = trainer(amp=True)
    assert t.amp_dtype is None and t.scaler is None and t.notes
    t.fit(pairs(8))


# ------------------------------------------------------------------ commands
def _parser(builder=tiny_builder) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opflow")
    sub = parser.add_subparsers(dest="command")
    commands.add_train_parser(sub, builder=builder)
    commands.add_predict_parser(sub, builder=builder)
    return parser


def _run(argv: list[str], builder=tiny_builder) -> int:
    args = _parser(builder).parse_args(argv)
    return args.func(args)


@pytest.fixture
def data_file(tmp_path) -> Path:
    a, u = pairs(N)
    ds = xr.merge([a.to_xarray(), u.to_xarray()], combine_attrs="override")
    return save(ds, tmp_path / "data.nc")


def test_train_and_predict_commands_end_to_end(tmp_path, data_file, capsys, monkeypatch):
    run = tmp_path / "run"
    assert _run(["train", "--model", "tiny", "--data", str(data_file), "--vars", "a",
                 "--targets", "u", "--epochs", "3", "--out", str(run), "--batch-size", "8",
                 "--lr", "0.01", "--width", "6", "--option", "dropout=0.1", "--quiet"]) == 0
    assert "best val_loss" in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == {"name": "tiny", "width": 6, "dropout": 0.1, "in_channels": 1,
                               "out_channels": 1}
    ckpt = read_checkpoint(run / "best.pt")
    assert ckpt["model_config"] == config["model"]
    assert ckpt["metadata"]["data"]["sample_dim"] == "sample"

    chunks_seen = []

    def spy(path, *args, **kwargs):
        chunks_seen.append(kwargs.get("chunks"))
        return open_dataset(path, *args, **kwargs)

    monkeypatch.setattr(commands, "open_dataset", spy)
    out = tmp_path / "pred.nc"
    assert _run(["predict", "--checkpoint", str(run / "best.pt"), "--data", str(data_file),
                 "--out", str(out), "--chunk", "5", "--quiet"]) == 0
    assert chunks_seen == [{"sample": 5}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.nc", "pred.nc", "run"]
    restored = Trainer.from_checkpoint(run / "best.pt", tiny_builder, device="cpu")
    a, _ = pairs(N)
    want = restored.predict(a)
    with open_dataset(out) as ds:
        assert ds["u"].dims == ("sample", "x") and ds.sizes["sample"] == N
        assert ds["u"].attrs["units"] == "m s-1"
        assert json.loads(ds.attrs["model_config"]) == config["model"]
        np.testing.assert_allclose(ds["u"].values, want.values[:, 0].numpy(), rtol=1e-5,
                                   atol=1e-6)

    # resuming a finished run does no more epochs; a longer one continues
    assert _run(["train", "--model", "tiny", "--data", str(data_file), "--vars", "a",
                 "--targets", "u", "--epochs", "4", "--out", str(run), "--batch-size", "8",
                 "--width", "6", "--option", "dropout=0.1", "--resume", "--quiet"]) == 0
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 4


def test_train_command_reads_a_toml_config_and_flags_win(tmp_path, data_file, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(f"""
[model]
name = "tiny"
width = 5

[data]
path = "{data_file.as_posix()}"
input = "a"
output = ["u"]
val_fraction = 0.25

[train]
epochs = 2
batch_size = 6
scheduler = "onecycle"
""")
    run = tmp_path / "run"
    assert _run(["train", "--config", str(toml), "--width", "3", "--out", str(run),
                 "--quiet"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["width"] == 3 and config["train"]["batch_size"] == 6
    assert config["train"]["scheduler"] == "onecycle" and config["data"]["input"] == ["a"]
    assert len(json.loads((run / "metrics.json").read_text())["history"]) == 2


def test_commands_report_errors_on_one_line(tmp_path, data_file, capsys):
    assert _run(["train", "--data", str(data_file), "--vars", "a", "--targets", "u",
                 "--out", str(tmp_path / "r")]) == 1
    assert "opflow train: error: argument `--model`" in capsys.readouterr().err
    assert _run(["train", "--model", "tiny", "--data", str(data_file), "--vars", "nope",
                 "--targets", "u", "--out", str(tmp_path / "r")]) == 1
    assert "'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    assert _run(["predict", "--checkpoint", str(bad), "--data", str(data_file),
                 "--out", str(tmp_path / "p.nc")]) == 1
    assert "bad.pt" in capsys.readouterr().err
    plain = save_checkpoint(tmp_path / "plain.pt", nn.Linear(2, 2))  # no model config
    with pytest.raises(InvalidArgumentError, match="config") as info:
        Trainer.from_checkpoint(plain, tiny_builder)
    assert info.value.argument == "checkpoint"


# ------------------------------------------------------- sample coordinate
def test_predictions_keep_the_sample_coordinate_of_a_shuffled_split(tmp_path):
    a, u = pairs(12)
    ds = xr.merge([a.to_xarray(), u.to_xarray()]).assign_coords(sample=np.arange(100, 112))
    train, test = OperatorDataset(ds, "a", "u").split([0.5, 0.5], seed=3)
    assert sorted(test.indices) != list(test.indices)  # shuffled
    t = trainer(epochs=1)
    t.fit(train)
    pred = t.predict(test, batch_size=4)
    out = pred.to_xarray()
    np.testing.assert_array_equal(out["sample"].values, 100 + test.indices)
    # each prediction is that of its own input
    by_field = t.predict(a[test.indices.tolist()])
    torch.testing.assert_close(pred.values, by_field.values)
    # a Field read from a file carries its sample coordinate too, slicing keeps it
    f = ds.opflow.to_field(["a"])
    assert f[[3, 1]].attrs["opflow_sample"].tolist() == [103, 101]
    assert t.predict(f[4:9], batch_size=2).to_xarray()["sample"].values.tolist() == \
        list(range(104, 109))
    assert "sample" not in f.with_values(f.values[:2]).to_xarray().coords  # stale: dropped
    # without a coordinate: positions in the file
    plain = OperatorDataset(xr.merge([a.to_xarray(), u.to_xarray()]), "a", "u")
    _, test2 = plain.split([0.5, 0.5], seed=3)
    np.testing.assert_array_equal(t.predict(test2).to_xarray()["sample"].values, test2.indices)
    # evaluate's file has it as well
    t.evaluate(test, tmp_path / "eval.nc")
    with xr.open_dataset(tmp_path / "eval.nc") as ev:
        np.testing.assert_array_equal(ev["sample"].values, 100 + test.indices)

