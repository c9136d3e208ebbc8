"""Figures of Fields, training curves and model errors (matplotlib, through xarray).

Every function draws on a given ``ax`` or on a new figure, labels axes and
colour bars with the variable names and units the Field carries (xarray's
plotting reads the CF ``long_name``/``units`` attributes), and, given a
``path``, writes the figure atomically (temporary file, then rename).

matplotlib is imported on first use only, so ``import opflow`` stays light.
Nothing here calls ``plt.show()`` or picks a backend: headless runs use
matplotlib's default (Agg without a display) and notebooks show the returned
figures inline.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from .errors import (
    FileFormatError,
    GridMismatchError,
    InvalidArgumentError,
    ShapeError,
    UnknownVariableError,
)
from .field import Field
from .io import atomic_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_field", "plot_training", "plot_error_map", "comparison_panel", "save_figure"]

# Columns of the Trainer's metrics that are bookkeeping, not curves to draw.
_NOT_CURVES = ("epoch", "lr", "seconds")


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` atomically; the format follows the suffix (png, pdf, svg).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Where to write it.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    pathlib.Path
        ``path``. Nothing appears under that name unless the write succeeds.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, bbox_inches="tight")
    return path


def _root_figure(ax: Axes) -> Figure:
    """The Figure holding ``ax``: for an Axes in a SubFigure (which cannot be saved),
    the Figure the SubFigure belongs to."""
    from matplotlib.figure import SubFigure

    fig = ax.figure
    while isinstance(fig, SubFigure):
        fig = fig.figure
    return fig


def _new_axes(ax: Axes | None, figsize=(5.0, 3.8)) -> Axes:
    if ax is not None:
        from matplotlib.axes import Axes

        if not isinstance(ax, Axes):
            raise InvalidArgumentError("ax", "a matplotlib Axes or None (pass a batch "
                                       "index as index=...)", ax)
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


# ------------------------------------------------------------ one Field
def _check_field(field: Any, argument: str) -> Field:
    if not isinstance(field, Field):
        raise InvalidArgumentError(argument, "an opflow.Field", field)
    if field.grid.ndim not in (1, 2):
        raise InvalidArgumentError(
            argument, "a Field on a 1D or 2D grid (select a slice of higher-dimensional grids)",
            f"a grid with axes {field.grid.names}")
    return field


def _channel_index(field: Field, channel: str | int | None, argument: str = "channel") -> int:
    if channel is None:
        return 0
    if isinstance(channel, str):
        if channel not in field.names:
            raise UnknownVariableError(argument, channel, field.names)
        return field.names.index(channel)
    if isinstance(channel, int) and not isinstance(channel, bool) and \
            -field.channels <= channel < field.channels:
        return channel % field.channels
    raise InvalidArgumentError(argument, f"a channel name in {list(field.names)} or an integer "
                               f"in [0, {field.channels})", channel)


def _sample(field: Field, index: int | Sequence[int], channel: str | int | None,
            argument: str = "field") -> Field:
    """One sample and one channel: a Field of shape ``(1, *grid.shape)``."""
    nb = len(field.batch_shape)
    idx = (index,) * nb if isinstance(index, int) else tuple(index)
    if len(idx) != nb or not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
        raise InvalidArgumentError("index", f"an integer or {nb} integers (one per batch dim "
                                   f"of {argument})", index)
    for i, size in zip(idx, field.batch_shape):
        if not -size <= i < size:
            raise InvalidArgumentError("index", f"indices within the batch shape "
                                       f"{tuple(field.batch_shape)} of {argument}", index)
    c = _channel_index(field, channel)
    values = field.values.detach()[idx][c:c + 1]
    return Field(values, field.grid, field.names[c], field.units[c], field.attrs)


def _draw(sample: Field, ax: Axes, **kwargs) -> Any:
    """Line (1D) or pcolormesh (2D) of a one-sample, one-channel Field via xarray."""
    da = sample.to_xarray()[sample.names[0]]
    if sample.grid.ndim == 1:
        return da.plot.line(ax=ax, x=sample.grid.names[0], **kwargs)
    x, y = sample.grid.names
    kwargs.setdefault("shading", "auto")
    return da.plot.pcolormesh(ax=ax, x=x, y=y, **kwargs)


def plot_field(field: Field, ax: Axes | None = None, *, index: int | Sequence[int] = 0,
               channel: str | int | None = None, title: str | None = None,
               path: str | os.PathLike | None = None, **kwargs: Any) -> Axes:
    """Plot one sample and one channel of a Field: a line in 1D, a pcolormesh in 2D.

    Parameters
    ----------
    field : Field, shape (*batch, channels, *grid.shape)
        On a 1D or 2D grid.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    index : int or sequence of int
        Batch entry to plot: one integer for every batch dim, or one per dim.
        Ignored for a Field without batch dims.
    channel : str or int, optional
        Channel name or position (default: the first).
    title : str, optional
        Axes title (default: xarray's, empty for one sample).
    path : str or os.PathLike, optional
        Write the figure there (atomically).
    **kwargs
        Passed to ``DataArray.plot.line`` / ``DataArray.plot.pcolormesh``
        (``cmap``, ``vmin``, ``vmax``, ``add_colorbar``, ...).

    Returns
    -------
    matplotlib.axes.Axes
        Axis labels read ``name [units]`` (grid axes and values alike).

    Raises
    ------
    opflow.errors.InvalidArgumentError
        Not a Field, a grid of 3 or more dims, or ``index`` out of range.
    opflow.errors.UnknownVariableError
        ``channel`` is not a channel name.
    """
    field = _check_field(field, "field")
    sample = _sample(field, index, channel)
    ax = _new_axes(ax)
    _draw(sample, ax, **kwargs)
    if title is not None:
        ax.set_title(title)
    if path is not None:
        save_figure(_root_figure(ax), path)
    return ax


def plot_error_map(prediction: Field, truth: Field, ax: Axes | None = None, *,
                   index: int | Sequence[int] = 0, channel: str | int | None = None,
                   signed: bool = False, path: str | os.PathLike | None = None,
                   **kwargs: Any) -> Axes:
    """Map of the pointwise error ``|prediction - truth|`` of one sample and channel.

    Parameters
    ----------
    prediction, truth : Field, shape (*batch, channels, *grid.shape)
        Same grid and shape.
    ax, index, channel, path
        As for :func:`plot_field`.
    signed : bool
        Plot ``prediction - truth`` with a diverging colour map centred on
        zero instead of the absolute error.
    **kwargs
        Passed to :func:`plot_field`.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    opflow.errors.GridMismatchError
        The Fields are on different grids.
    opflow.errors.ShapeError
        Their shapes differ.
    """
    err = _error_field(prediction, truth, signed)
    channel = _channel_index(truth, channel)  # a name of truth's, not of the error Field
    if signed:
        lim = float(err.values.abs().max()) or 1.0
        kwargs = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim, **kwargs}
    else:
        kwargs = {"cmap": "inferno", "vmin": 0.0, **kwargs}
    return plot_field(err, ax, index=index, channel=channel, path=path, **kwargs)


def _error_field(prediction: Any, truth: Any, signed: bool) -> Field:
    prediction = _check_field(prediction, "prediction")
    truth = _check_field(truth, "truth")
    if prediction.grid != truth.grid:
        raise GridMismatchError("prediction", f"a Field on the grid of truth {truth.grid}",
                                prediction.grid)
    if prediction.shape != truth.shape:
        raise ShapeError("prediction", f"the shape of truth {tuple(truth.shape)}",
                         prediction.values)
    diff = prediction.values.detach() - truth.values.detach()
    names = [f"{n} error" if signed else f"|{n} error|" for n in truth.names]
    return Field(diff if signed else diff.abs(), truth.grid, names, truth.units)


# ------------------------------------------------------------ comparison
def _stack(field: Any, argument: str) -> Field:
    """A Field with exactly one batch dim (a single sample gets one of size 1)."""
    field = _check_field(field, argument)
    nb = len(field.batch_shape)
    if nb == 0:
        return field.with_values(field.values[None])
    if nb != 1:
        raise ShapeError(argument, "a Field with one batch dim (N, channels, *grid.shape)",
                         field.values)
    return field


def comparison_panel(inputs: Field, truth: Field, prediction: Field | Mapping[str, Field],
                     n: int = 3, path: str | os.PathLike | None = None, *,
                     channel: str | int | None = None, input_channel: str | int | None = None,
                     dpi: int = 90, title: str | None = None) -> Figure:
    """Rows of samples, columns input | truth | prediction | error.

    Truth and predictions of a row share one colour scale, so they compare
    by eye; the error column shows ``|prediction - truth|``. An error that is
    the same everywhere (to 1% of its size) would show as one flat colour:
    its title then gives its value (``= 3.5e-10 everywhere``).

    Parameters
    ----------
    inputs : Field, shape (N, C_in, *grid_in)
        Model inputs (any 1D or 2D grid; a single sample without batch dim
        is accepted).
    truth : Field, shape (N, C_out, *grid)
        Reference outputs.
    prediction : Field or mapping of str to Field, shape (N, C_out, *grid)
        Model outputs on the grid of ``truth``; a mapping ``{model name:
        Field}`` gives a prediction and an error column per model.
    n : int
        Rows to draw: the first ``min(n, N)`` samples.
    path : str or os.PathLike, optional
        Write the figure there (atomically).
    channel, input_channel : str or int, optional
        Output and input channel to show (default: the first of each).
    dpi : int
        Resolution of the written file.
    title : str, optional
        A title over the whole figure (what the columns show, the time).

    Returns
    -------
    matplotlib.figure.Figure
        Columns titled ``input <name>``, ``truth``, ``<model> prediction``,
        ``<model> |error|``; close it with ``plt.close(fig)`` when done.

    Raises
    ------
    opflow.errors.InvalidArgumentError, ShapeError, GridMismatchError
        Bad ``n``, non-Field arguments, more than one batch dim, or
        predictions whose grid or shape differ from ``truth``, or sample
        counts that differ.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidArgumentError("n", "a positive integer (rows to draw)", n)
    preds = dict(prediction) if isinstance(prediction, Mapping) else {"": prediction}
    if not preds:
        raise InvalidArgumentError("prediction", "a Field or a non-empty mapping of Fields",
                                   prediction)
    inputs, truth = _stack(inputs, "inputs"), _stack(truth, "truth")
    preds = {k: _stack(v, f"prediction[{k!r}]" if k else "prediction") for k, v in preds.items()}
    count = truth.batch_shape[0]
    if inputs.batch_shape[0] != count:
        raise ShapeError("inputs", f"{count} samples like truth", inputs.values)
    errors = {k: _error_field(v, truth, signed=False) for k, v in preds.items()}
    c_in, c_out = _channel_index(inputs, input_channel, "input_channel"), \
        _channel_index(truth, channel)
    rows = min(n, count)
    columns = 2 + 2 * len(preds)
    size = (3.4, 2.6) if truth.grid.ndim == 2 else (3.2, 2.2)  # room for the colour bars
    fig, axes = _pyplot().subplots(rows, columns, squeeze=False, layout="constrained",
                                   figsize=(size[0] * columns, size[1] * rows))
    for r in range(rows):
        _panel_row(axes[r], r, inputs, truth, preds, errors, c_in, c_out)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def _uniform_note(values: torch.Tensor) -> str:
    """A second title line ``"= 3.5e-10 everywhere"`` for a field that is one value to 1%
    (a flat colour map says nothing by itself), else ``""``."""
    v = values.detach()[torch.isfinite(values.detach())]
    if not v.numel():
        return ""
    lo, hi = float(v.min()), float(v.max())
    return f"\n= {hi:.1e} everywhere" if hi - lo <= 0.01 * max(abs(hi), abs(lo)) else ""


def _panel_row(axes, r: int, inputs: Field, truth: Field, preds: dict[str, Field],
               errors: dict[str, Field], c_in: int, c_out: int) -> None:
    """Draw sample ``r``: input, truth, then prediction and error per model."""
    shown = torch.cat([f.values[r, c_out].detach().flatten() for f in [truth, *preds.values()]])
    shown = shown[torch.isfinite(shown)]  # a diverged prediction must not blank the row
    lo, hi = (float(shown.min()), float(shown.max())) if shown.numel() else (0.0, 1.0)
    shared: dict[str, object] = (
        {"cmap": "viridis", "vmin": lo, "vmax": hi} if truth.grid.ndim == 2 else {})
    cells: list[tuple[Field, int, str, dict[str, object], bool]] = [
        (inputs, c_in, f"input {inputs.names[c_in]}", {"cmap": "viridis"}, False)]
    cells.append((truth, c_out, "truth", shared, True))
    for name in preds:
        label = f"{name} " if name else ""
        cells.append((preds[name], c_out, f"{label}prediction", shared, True))
        cells.append((errors[name], c_out, f"{label}|error|", {"cmap": "inferno", "vmin": 0.0},
                      False))
    error_ids = {id(e) for e in errors.values()}
    for ax, (field, c, title, kw, same_scale) in zip(axes, cells):
        sample = _sample(field, r, c)
        _draw(sample, ax, **(kw if field.grid.ndim == 2 else {}))
        note = _uniform_note(sample.values) if id(field) in error_ids else ""
        ax.set_title(f"{title}, sample {r}{note}" if r == 0 else f"sample {r}{note}",
                     fontsize=9)
        if same_scale and field.grid.ndim == 1 and hi > lo:  # 1D: the same y range
            pad = 0.05 * (hi - lo)
            ax.set_ylim(lo - pad, hi + pad)


# ------------------------------------------------------------ training
def _read_history(metrics: Any) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Rows of the Trainer's history and the summary (empty for CSV and lists)."""
    if isinstance(metrics, (str, os.PathLike)):
        path = Path(metrics)
        if path.is_dir():
            path = path / "metrics.json"
        if not path.is_file():
            raise InvalidArgumentError("metrics", "a metrics.json/metrics.csv file or a run "
                                       "folder holding metrics.json", str(metrics))
        text = path.read_text()
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            return [{k: _number(v) for k, v in row.items()} for row in rows], {}
        try:
            metrics = json.loads(text)
        except json.JSONDecodeError as e:
            raise FileFormatError(f"{path}: not a JSON metrics file ({e})") from None
    if isinstance(metrics, Mapping):
        if "history" not in metrics:
            raise InvalidArgumentError("metrics", "the Trainer's summary with a 'history' list",
                                       sorted(metrics))
        return list(metrics["history"]), dict(metrics)
    if isinstance(metrics, Sequence) and all(isinstance(r, Mapping) for r in metrics):
        return list(metrics), {}
    raise InvalidArgumentError("metrics", "a path, the Trainer's metrics dict or a list of rows",
                               metrics)


def _number(text: str | None) -> float:
    if text is None:  # a short CSV row
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def plot_training(metrics: str | os.PathLike | Mapping[str, Any] | Sequence[Mapping],
                  ax: Axes | None = None, *, keys: Sequence[str] | None = None,
                  logy: bool | None = None, path: str | os.PathLike | None = None) -> Axes:
    """Training curves (loss and metrics per epoch) from the Trainer's records.

    Parameters
    ----------
    metrics : path, dict or list of dict
        ``metrics.json`` or ``metrics.csv`` written by
        :class:`~opflow.train.Trainer`, the run folder holding them, the
        parsed JSON summary, or ``Trainer.history`` (rows with ``epoch``).
    ax : matplotlib.axes.Axes, optional
    keys : sequence of str, optional
        Columns to draw (default: every column except ``epoch``, ``lr``
        and ``seconds``).
    logy : bool, optional
        Logarithmic y axis (default: when every drawn value is positive).
    path : str or os.PathLike, optional
        Write the figure there (atomically).

    Returns
    -------
    matplotlib.axes.Axes
        One line per key, labelled with the key; the best epoch of the
        summary, when known, is marked by a dotted vertical line.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        A missing file, an empty history or rows without ``epoch``.
    opflow.errors.UnknownVariableError
        A key that is not a column.
    opflow.errors.FileFormatError
        A file that is not JSON.
    """
    rows, summary = _read_history(metrics)
    if not rows or any("epoch" not in r for r in rows):
        raise InvalidArgumentError("metrics", "a non-empty history whose rows have 'epoch'",
                                   rows[:2])
    columns = [k for k in dict.fromkeys(k for r in rows for k in r)]
    keys = [k for k in columns if k not in _NOT_CURVES] if keys is None else list(keys)
    for k in keys:
        if k not in columns:
            raise UnknownVariableError("keys", k, columns)
    epochs = np.array([float(r["epoch"]) for r in rows])
    curves = {k: np.array([float(r.get(k, math.nan)) for r in rows]) for k in keys}
    finite = np.concatenate([v[np.isfinite(v)] for v in curves.values()] or [np.zeros(0)])
    if logy is None:
        logy = finite.size > 0 and bool((finite > 0).all())
    ax = _new_axes(ax)
    for k, v in curves.items():
        ax.plot(epochs, v, marker="o" if len(epochs) < 30 else None, ms=3, label=k)
    if summary.get("best_epoch"):
        ax.axvline(summary["best_epoch"], color="0.5", ls=":",
                   label=f"best ({summary.get('monitor', 'loss')})")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / metric")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(_root_figure(ax), path)
    return ax

