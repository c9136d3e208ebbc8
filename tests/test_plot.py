"""opflow.plot: labels and units on the axes, the data drawn, atomic files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from opflow import Field, Grid  # noqa: E402
from opflow.errors import (  # noqa: E402
    FileFormatError,
    GridMismatchError,
    InvalidArgumentError,
    ShapeError,
    UnknownVariableError,
)
from opflow.plot import (  # noqa: E402
    comparison_panel,
    plot_error_map,
    plot_field,
    plot_training,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def grid2d() -> Grid:
    return Grid.uniform(x=(0.0, 1.0, 12), y=(0.0, 2.0, 8), units={"x": "m", "y": "km"})


def field2d(batch=(3,), seed=0) -> Field:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(*batch, 2, 12, 8, generator=g, dtype=torch.float64)
    return Field(values, grid2d(), names=["p", "T"], units=["Pa", "K"])


def field1d(n=3, seed=0) -> Field:
    g = torch.Generator().manual_seed(seed)
    grid = Grid.uniform(x=(0.0, 2.0, 20), periodic=("x",), units={"x": "m"})
    return Field(torch.randn(n, 1, 20, generator=g), grid, names="u", units="m/s")


def mesh_data(ax) -> np.ndarray:
    """The (y, x) image a pcolormesh on ``ax`` shows."""
    (mesh,) = ax.collections
    return np.asarray(mesh.get_array()).reshape(8, 12)


def test_plot_field_2d_labels_units_and_data():
    f = field2d()
    ax = plot_field(f, index=2, channel="T")
    assert ax.get_xlabel() == "x [m]" and ax.get_ylabel() == "y [km]"
    assert ax.collections[0].colorbar.ax.get_ylabel() == "T [K]"
    np.testing.assert_array_equal(mesh_data(ax), f.values[2, 1].numpy().T)
    # the method delegates with the same arguments; channel by position
    ax2 = f.plot(index=0, channel=0)
    np.testing.assert_array_equal(mesh_data(ax2), f.values[0, 0].numpy().T)
    assert ax2.collections[0].colorbar.ax.get_ylabel() == "p [Pa]"


def test_plot_field_1d_line_and_batch_index_per_dim():
    f = field1d()
    ax = plot_field(f, index=1)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), f.grid.axes[0].coords)
    np.testing.assert_array_equal(line.get_ydata(), f.values[1, 0].numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x [m]", "u [m/s]")
    two = field2d(batch=(2, 3))
    ax = plot_field(two, index=(1, 2), channel="p")
    np.testing.assert_array_equal(mesh_data(ax), two.values[1, 2, 0].numpy().T)
    single = Field(two.values[0, 0], two.grid, two.names, two.units)  # no batch dims
    np.testing.assert_array_equal(mesh_data(plot_field(single)), two.values[0, 0, 0].numpy().T)


def test_plot_field_draws_on_given_axes_and_writes_atomically(tmp_path):
    fig, axes = plt.subplots(1, 2)
    assert plot_field(field2d(), axes[1]) is axes[1]
    path = tmp_path / "f.png"
    plot_field(field1d(), path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary left


def test_axes_in_a_subfigure_save_the_whole_figure(tmp_path):
    # ax.figure of such an Axes is the SubFigure, which has no savefig: the root Figure is saved
    fig = plt.figure()
    left, right = fig.subfigures(1, 2)
    plot_field(field1d(), left.subplots(), path=tmp_path / "field.png")
    assert (tmp_path / "field.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run, _ = write_metrics(tmp_path)
    plot_training(run, right.subplots(), path=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        plot_field(field1d(), path=tmp_path / "missing_dir" / "f.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_field_bad_input_names_the_argument():
    f = field2d()
    with pytest.raises(InvalidArgumentError, match="`field`"):
        plot_field(f.values)
    with pytest.raises(InvalidArgumentError, match="`ax`"):
        f.plot(1)  # the batch index goes by keyword
    with pytest.raises(UnknownVariableError, match="`channel`"):
        plot_field(f, channel="rho")
    with pytest.raises(InvalidArgumentError, match="`channel`"):
        plot_field(f, channel=2)
    with pytest.raises(InvalidArgumentError, match="`index`"):
        plot_field(f, index=3)
    with pytest.raises(InvalidArgumentError, match="`index`"):
        plot_field(f, index=(0, 0))
    g3 = Grid.uniform(x=(0, 1, 3), y=(0, 1, 3), z=(0, 1, 3))
    with pytest.raises(InvalidArgumentError, match="1D or 2D"):
        plot_field(Field(torch.zeros(1, 3, 3, 3), g3))


def test_error_map_is_absolute_difference_and_checks_grids():
    truth, pred = field2d(seed=0), field2d(seed=1)
    ax = plot_error_map(pred, truth, index=1, channel="p")
    expected = (pred.values[1, 0] - truth.values[1, 0]).abs().numpy().T
    np.testing.assert_allclose(mesh_data(ax), expected)
    assert ax.collections[0].colorbar.ax.get_ylabel() == "|p error| [Pa]"
    ax = plot_error_map(pred, truth, signed=True)
    data = mesh_data(ax)
    np.testing.assert_allclose(data, (pred.values[0, 0] - truth.values[0, 0]).numpy().T)
    lo, hi = ax.collections[0].get_clim()
    assert lo == -hi == -float((pred.values - truth.values).abs().max())  # centred on zero
    other = Field(truth.values, Grid.uniform(x=(0.0, 1.0, 12), y=(0.0, 1.0, 8)), truth.names)
    with pytest.raises(GridMismatchError, match="`prediction`"):
        plot_error_map(other, truth)
    with pytest.raises(ShapeError, match="`prediction`"):
        plot_error_map(pred[:2], truth)


def test_comparison_panel_columns_and_error_images(tmp_path):
    a = field2d(seed=3)["p"]
    truth, pred1, pred2 = (field2d(seed=s)["T"] for s in (4, 5, 6))
    path = tmp_path / "panel.png"
    fig = comparison_panel(a, truth, {"A": pred1, "B": pred2}, n=2, path=path)
    assert path.stat().st_size > 1000
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 2 * 6
    titles = [ax.get_title() for ax in axes[:6]]
    assert titles == ["input p, sample 0", "truth, sample 0", "A prediction, sample 0",
                      "A |error|, sample 0", "B prediction, sample 0", "B |error|, sample 0"]
    for row in range(2):
        cells = axes[6 * row: 6 * row + 6]
        np.testing.assert_array_equal(mesh_data(cells[0]), a.values[row, 0].numpy().T)
        np.testing.assert_array_equal(mesh_data(cells[1]), truth.values[row, 0].numpy().T)
        for k, pred in ((2, pred1), (4, pred2)):
            np.testing.assert_array_equal(mesh_data(cells[k]), pred.values[row, 0].numpy().T)
            expected = (pred.values[row, 0] - truth.values[row, 0]).abs().numpy().T
            np.testing.assert_allclose(mesh_data(cells[k + 1]), expected, rtol=0, atol=0)
            assert cells[k].collections[0].get_clim() == cells[1].collections[0].get_clim()
    for ax in axes:
        assert ax.get_xlabel() == "x [m]" and ax.get_ylabel() == "y [km]"


def test_a_flat_error_map_says_its_value_and_the_figure_takes_a_title():
    truth = field2d(seed=4)["T"]
    checkerboard = torch.tensor([[(-1.0) ** (i + j) for j in range(truth.grid.shape[1])]
                                 for i in range(truth.grid.shape[0])], dtype=truth.dtype)
    pred = truth + 3.5e-10 * checkerboard  # |error| the same everywhere: a flat colour map
    fig = comparison_panel(truth, truth, {"A": pred, "B": truth * 1.5}, n=1, title="what")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes[3].get_title() == "A |error|, sample 0\n= 3.5e-10 everywhere"
    assert axes[5].get_title() == "B |error|, sample 0"  # an error that varies: no note
    assert fig.get_suptitle() == "what"


def test_comparison_panel_1d_single_prediction_and_row_count():
    u0, u = field1d(seed=0), field1d(seed=1)
    pred = u * 0.5
    fig = comparison_panel(u0, u, pred, n=10)  # more rows than samples: all 3
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 3 * 4
    err_line = axes[4 * 2 + 3].get_lines()[0]
    np.testing.assert_allclose(err_line.get_ydata(), (0.5 * u.values[2, 0]).abs().numpy(),
                               rtol=1e-6)
    assert axes[3].get_ylabel() == "|u error| [m/s]"
    assert axes[1].get_ylim() == axes[2].get_ylim()  # truth and prediction share the range


def test_comparison_panel_bad_input():
    a, u = field2d(), field2d(seed=1)
    with pytest.raises(InvalidArgumentError, match="`n`"):
        comparison_panel(a, u, u, n=0)
    with pytest.raises(ShapeError, match="`inputs`"):
        comparison_panel(a[:2], u, u)
    with pytest.raises(ShapeError, match="`prediction`"):
        comparison_panel(a, u, u[:2])
    with pytest.raises(ShapeError, match="`truth`"):
        comparison_panel(a, field2d(batch=(1, 3)), u)
    with pytest.raises(InvalidArgumentError, match="`prediction`"):
        comparison_panel(a, u, {})
    with pytest.raises(InvalidArgumentError, match="`prediction\\['m'\\]`"):
        comparison_panel(a, u, {"m": u.values})
    with pytest.raises(UnknownVariableError, match="`channel`"):
        comparison_panel(a, u, u, channel="rho")
    with pytest.raises(UnknownVariableError, match="`input_channel`"):
        comparison_panel(a, u, u, input_channel="rho")


def write_metrics(tmp_path):
    """A small training run writes metrics.json and metrics.csv."""
    from torch import nn

    from opflow.train import Trainer

    grid = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))

    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Conv1d(1, 1, 3, padding=1, padding_mode="circular")

        def forward(self, a):
            return Field(self.net(a.values), a.grid)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 1, 16, generator=g)
    u = torch.roll(a, 1, -1) - a
    data = (Field(a, grid, "a"), Field(u, grid, "u"))
    trainer = Trainer(Conv(), epochs=4, batch_size=4, out_dir=tmp_path / "run", progress=False,
                      device="cpu", lr=1e-2)
    trainer.fit(data, data)
    return tmp_path / "run", trainer


def test_plot_training_from_json_csv_dict_and_history(tmp_path):
    run, trainer = write_metrics(tmp_path)
    summary = json.loads((run / "metrics.json").read_text())
    expected = [row["train_loss"] for row in trainer.history]
    for source in (run, run / "metrics.json", run / "metrics.csv", summary, trainer.history):
        ax = plot_training(source)
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert {"train_loss", "val_loss"} <= set(lines)
        assert "lr" not in lines and "seconds" not in lines
        np.testing.assert_allclose(lines["train_loss"].get_ydata(), expected, rtol=1e-12)
        np.testing.assert_array_equal(lines["train_loss"].get_xdata(), [1, 2, 3, 4])
        assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
        plt.close(ax.figure)
    ax = plot_training(summary, keys=["lr"], logy=False)
    assert [ln.get_label() for ln in ax.get_lines()][0] == "lr"
    best = [ln for ln in ax.get_lines() if ln.get_label().startswith("best")]
    assert best and best[0].get_xdata()[0] == summary["best_epoch"]
    out = tmp_path / "curves.png"
    plot_training(run, path=out)
    assert out.stat().st_size > 1000


def test_plot_training_bad_input(tmp_path):
    with pytest.raises(InvalidArgumentError, match="`metrics`"):
        plot_training(tmp_path / "nothing.json")
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(FileFormatError, match="metrics.json"):
        plot_training(bad)
    with pytest.raises(InvalidArgumentError, match="`metrics`"):
        plot_training({"best": 1.0})
    with pytest.raises(InvalidArgumentError, match="`metrics`"):
        plot_training([])
    with pytest.raises(InvalidArgumentError, match="`metrics`"):
        plot_training(42)
    with pytest.raises(UnknownVariableError, match="`keys`"):
        plot_training([{"epoch": 1, "train_loss": 0.5}], keys=["val_loss"])


def test_import_opflow_does_not_import_matplotlib():
    code = "import sys, opflow; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
