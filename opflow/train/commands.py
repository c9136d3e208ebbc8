"""``opflow train`` and ``opflow predict``: the command line of the Trainer.

::

    opflow train --model fno --data darcy.nc --vars a --targets u --epochs 100 --out run \\
        [--config run.toml] [--batch-size 20] [--lr 1e-3] [--width 32] [--modes 12 12] ...
    opflow predict --checkpoint run/best.pt --data new.nc --out pred.nc [--chunk 64]

Every subcommand names its input file ``--data FILE`` and its input variables
``--vars VAR ...``; the old spellings (``train --input/--output``,
``predict --input/--input-vars``) still work, hidden, with a warning.

``opflow train`` builds the model with ``opflow.operators.build_operator(
{"name": NAME, "in_channels": C_in, "out_channels": C_out, **model options})``
(channel counts from the data; see :data:`CHANNEL_KEYS`),
splits the data into train/validation sets, fits with normalisers fitted on
the training split, and writes ``RUN_DIR/{config.json, metrics.json,
metrics.csv, best.pt, last.pt}``. ``--resume`` continues an interrupted run.
A TOML file may hold the same settings in three tables; command-line flags
win over it::

    [model]                   # passed to build_operator
    name = "fno"
    width = 32
    modes = [12, 12]

    [data]
    path = "darcy.nc"
    vars = ["a"]              # or input = [...]
    targets = ["u"]           # or output = [...]
    sample_dim = "sample"
    val_fraction = 0.1

    [train]                   # Trainer options
    epochs = 500
    batch_size = 20
    lr = 1e-3
    scheduler = "onecycle"    # "none", "onecycle" or "cosine"

``opflow predict`` rebuilds the model from the config stored in the
checkpoint (no model flags), reads the input variables recorded at training
time lazily, ``--chunk`` samples at a time (dask chunks of
:func:`opflow.io.open_dataset`), and appends each chunk's predictions to a
temporary netCDF4 file that is renamed to ``--out`` when complete, so memory
use is bounded by one chunk and ``--out`` never holds a partial file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .._argparse import add_alias, add_quiet, command_errors, flag_message, key_value, require
from .._version import __version__
from ..batch.jobs import run_job
from ..errors import FileFormatError, InvalidArgumentError, OpflowError, UnknownVariableError
from ..io import atomic_path
from ..io.convert import flip_decreasing, grid_from_xarray, to_field
from ..io.files import open_dataset
from ..io.outputs import check_output_path
from .model_setup import complete_config, model_choices, model_name, prepare_model
from .trainer import Builder, Trainer, _fit_normalizers, build_model

__all__ = ["add_predict_parser", "add_train_parser", "predict_command", "predict_file",
           "train_command"]

_DATA_KEYS = ("path", "vars", "targets", "input", "output", "sample_dim", "val_fraction")
# [data] keys of the one CLI vocabulary -> the keys config.json records.
_DATA_SYNONYMS = {"vars": "input", "targets": "output"}
_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100, "batch_size": 32, "lr": 1e-3, "seed": 0, "loss": "rel_l2",
    "grad_clip": None, "amp": False, "early_stopping": None, "scheduler": "none",
    "normalize": True, "device": None, "num_workers": 0,
}
_SCHEDULERS = ("none", "onecycle", "cosine")
# Files `opflow train` writes in its run folder.
RUN_FILES = ("config.json", "metrics.json", "metrics.csv", "best.pt", "last.pt")
# Argument names raised by the code `opflow train` / `opflow predict` run -> their flags.
TRAIN_FLAGS = {"path": "--data", "source": "--data", "obj": "--data", "inputs": "--vars",
               "outputs": "--targets", "sample_dim": "--sample-dim", "config": "--model",
               "config['name']": "--model", "model": "--model",
               "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
               "scheduler": "--scheduler", "loss": "--loss", "seed": "--seed",
               "grad_clip": "--grad-clip", "early_stopping": "--early-stopping",
               "device": "--device", "num_workers": "--num-workers", "width": "--width",
               "modes": "--modes", "n_layers": "--layers", "layers": "--layers"}
PREDICT_FLAGS = {"checkpoint": "--checkpoint", "input": "--data", "path": "--data",
                 "obj": "--data", "out": "--out", "x": "--vars", "grid_dims": "--vars",
                 "chunk": "--chunk", "batch_size": "--batch-size", "variables": "--vars",
                 "sample_dim": "--sample-dim", "device": "--device"}
# Config keys through which `opflow train` tells the model its channel counts (set with
# setdefault, so a [model] table or --option value wins).
CHANNEL_KEYS = ("in_channels", "out_channels")


# ------------------------------------------------------------------ parsers

def add_train_parser(subparsers: argparse._SubParsersAction,
                     builder: Builder | None = None) -> argparse.ArgumentParser:
    """Add ``opflow train`` to ``subparsers`` (from ``parser.add_subparsers()``).

    Parameters
    ----------
    subparsers
        The object returned by ``ArgumentParser.add_subparsers``.
    builder : callable, optional
        ``builder(config) -> nn.Module`` replacing
        ``opflow.operators.build_operator`` (tests, custom models).

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser; ``args.func(args)`` runs it.
    """
    p = subparsers.add_parser(
        "train", help="train a neural operator on a netCDF data set",
        description="Train a neural operator (opflow.operators) on input/output variables of "
                    "a netCDF/HDF5 file. Flags override the --config TOML file.")
    if builder is None:
        p.add_argument("--model", type=model_name, choices=list(model_choices()),
                       help="the operator (class names are accepted too, in any case)")
    else:
        p.add_argument("--model", help="model name passed to the builder")
    p.add_argument("--data", metavar="FILE", help="netCDF/HDF5 file with the samples")
    p.add_argument("--vars", nargs="+", metavar="VAR", help="input variable(s) of --data")
    p.add_argument("--targets", nargs="+", metavar="VAR",
                   help="output variable(s) of --data: what the model learns to predict")
    add_alias(p, "--input", "--vars", "vars", nargs="+", metavar="VAR")
    add_alias(p, "--output", "--targets", "targets", nargs="+", metavar="VAR")
    p.add_argument("--out", required=True, metavar="RUN_DIR",
                   help="run folder for checkpoints and metrics")
    p.add_argument("--config", metavar="FILE.toml",
                   help="TOML file with [model], [data] and [train] tables")
    p.add_argument("--sample-dim", help="dimension indexing samples (default: sample)")
    p.add_argument("--val-fraction", type=float,
                   help="fraction of samples held out for validation (default: 0.1)")
    p.add_argument("--epochs", type=int, help="number of epochs (default: 100)")
    p.add_argument("--batch-size", type=int, help="samples per batch and process (default: 32)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--scheduler", choices=_SCHEDULERS, help="learning-rate schedule (per step)")
    p.add_argument("--loss", choices=["rel_l2", "rel_h1", "residual"],
                   help="training loss (default: rel_l2); residual: the model's PDE "
                        "residual alone, no solution data (hard-constraint)")
    p.add_argument("--seed", type=int,
                   help="seed of the initial weights, the split and the shuffling (default: 0)")
    p.add_argument("--grad-clip", type=float, help="max gradient norm")
    p.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision on CUDA (ignored on CPU)")
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", default=None,
                   help="do not normalise inputs and outputs")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    add_quiet(p)
    model = p.add_argument_group("model options (passed to build_operator)")
    model.add_argument("--width", type=int, help="channel width")
    model.add_argument("--modes", type=int, nargs="+", help="Fourier modes (one or per axis)")
    model.add_argument("--layers", type=int, help="number of layers")
    model.add_argument("--option", type=key_value, action="append", metavar="KEY=VALUE",
                       help="any other model option; VALUE is read as JSON when it parses "
                            "(e.g. --option modes=[12,12]) (repeatable)")
    p.set_defaults(func=functools.partial(train_command, builder=builder))
    return p


def add_predict_parser(subparsers: argparse._SubParsersAction,
                       builder: Builder | None = None) -> argparse.ArgumentParser:
    """Add ``opflow predict`` to ``subparsers``; see :func:`add_train_parser`."""
    p = subparsers.add_parser(
        "predict", help="run a trained operator on a netCDF file, chunk by chunk",
        description="Rebuild the model from a checkpoint and write its predictions for the "
                    "samples of a netCDF/HDF5 file; reads and writes --chunk samples at a time.")
    p.add_argument("--checkpoint", required=True, help="checkpoint (RUN_DIR/best.pt)")
    p.add_argument("--data", metavar="FILE", help="netCDF/HDF5 file of inputs (required)")
    add_alias(p, "--input", "--data", "data", metavar="FILE")
    p.add_argument("--out", required=True, metavar="PRED.nc", help="netCDF file to write")
    p.add_argument("--chunk", type=int, default=64, help="samples per chunk (default: 64)")
    p.add_argument("--batch-size", type=int, help="samples per model call (default: --chunk)")
    p.add_argument("--vars", nargs="+", metavar="VAR",
                   help="input variables of --data (default: those the model was trained on)")
    add_alias(p, "--input-vars", "--vars", "vars", nargs="+", metavar="VAR")
    p.add_argument("--sample-dim", help="dimension indexing samples (default: as trained)")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument("--restart", action="store_true",
                   help="discard an unfinished run with other inputs or settings")
    add_quiet(p)
    p.set_defaults(func=functools.partial(predict_command, builder=builder))
    return p


# -------------------------------------------------------------------- train
def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise OpflowError("reading --config needs Python >= 3.11 or the tomli "
                              "package") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "opflow train --config: no such file", str(path))
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidArgumentError("--config", "a TOML file", f"{str(path)!r}: {e}") from None
    unknown = sorted(set(config) - {"model", "data", "train"})
    if unknown:
        raise UnknownVariableError("--config", unknown[0], ["model", "data", "train"])
    for table in config.values():
        if not isinstance(table, Mapping):
            raise InvalidArgumentError("--config", "tables [model], [data] and [train]", config)
    return config


def _resolve(args: argparse.Namespace, builder: Builder | None = None
             ) -> dict[str, dict[str, Any]]:
    """Model, data and train settings: flags over the TOML file over defaults."""
    toml = _read_toml(args.config) if args.config else {}
    model = dict(toml.get("model", {}))
    data = dict(toml.get("data", {}))
    train = dict(toml.get("train", {}))
    for key in list(data):
        if key not in _DATA_KEYS:
            raise UnknownVariableError("--config [data]", key, _DATA_KEYS)
        if key in _DATA_SYNONYMS:
            data[_DATA_SYNONYMS[key]] = data.pop(key)
    for key in train:
        if key not in _TRAIN_DEFAULTS:
            raise UnknownVariableError("--config [train]", key, list(_TRAIN_DEFAULTS))
    if args.model is not None:
        model["name"] = args.model
    if builder is None and model.get("name") is not None:
        model["name"] = model_name(str(model["name"]))
        if model["name"] not in model_choices():
            raise UnknownVariableError("--model", model["name"], list(model_choices()))
    for key in ("width", "layers"):
        if getattr(args, key) is not None:
            model[key] = getattr(args, key)
    if args.modes is not None:
        model["modes"] = args.modes[0] if len(args.modes) == 1 else list(args.modes)
    for key, value in args.option or []:
        model[key] = value
    flags = {"path": args.data, "input": args.vars, "output": args.targets,
             "sample_dim": args.sample_dim, "val_fraction": args.val_fraction}
    data.update({k: v for k, v in flags.items() if v is not None})
    data.setdefault("sample_dim", "sample")
    data.setdefault("val_fraction", 0.1)
    for key in ("input", "output"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    for key in _TRAIN_DEFAULTS:
        if getattr(args, key, None) is not None:
            train[key] = getattr(args, key)
    train = {**_TRAIN_DEFAULTS, **train}
    missing = [(flag, what) for flag, what in (("--model", model.get("name")),
                                               ("--data", data.get("path")),
                                               ("--vars", data.get("input")),
                                               ("--targets", data.get("output"))) if not what]
    if missing:
        flag = missing[0][0]
        raise InvalidArgumentError(flag, f"a value for {flag} (or in the --config TOML file)",
                                   None)
    if CHANNEL_KEYS:
        model.setdefault(CHANNEL_KEYS[0], len(data["input"]))
        model.setdefault(CHANNEL_KEYS[1], len(data["output"]))
    return {"model": model, "data": data, "train": train}


def _scheduler_factory(name: str, lr: float) -> Callable | None:
    if name == "none":
        return None
    if name == "onecycle":
        return lambda opt, steps: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr,
                                                                      total_steps=steps)
    if name == "cosine":
        return lambda opt, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    raise InvalidArgumentError("scheduler", f"one of {list(_SCHEDULERS)}", name)


@command_errors("train", TRAIN_FLAGS)
def train_command(args: argparse.Namespace, builder: Builder | None = None) -> int:
    """Run ``opflow train`` with parsed ``args``; returns the exit status.

    Errors opflow raises on purpose (and missing files) are printed as one
    line on stderr, naming the flag, with exit status 1.
    """
    return _train(args, builder)


def _check_val_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InvalidArgumentError("--val-fraction", "a fraction in [0, 1) leaving training "
                                   "samples", value)
    return float(value)


def _train(args: argparse.Namespace, builder: Builder | None) -> int:
    from ..data.operator_dataset import OperatorDataset

    settings = _resolve(args, builder)
    model_cfg, data, train = settings["model"], settings["data"], settings["train"]
    fraction = _check_val_fraction(data["val_fraction"])
    check_output_path(args.out, folder=True, writes=RUN_FILES, argument="--out",
                      inputs={"--data": data["path"], "--config": args.config})
    dataset = OperatorDataset(data["path"], data["input"], data["output"],
                              sample_dim=data["sample_dim"])
    try:
        if len(dataset) < 2:
            raise InvalidArgumentError("--data", "a data set with at least 2 samples",
                                       f"{len(dataset)} sample(s) in {data['path']}")
        n_val = int(round(fraction * len(dataset)))
        if not 0 <= n_val < len(dataset):
            raise InvalidArgumentError("--val-fraction", "a fraction in [0, 1) leaving training "
                                       "samples", data["val_fraction"])
        if n_val:
            train_set, val_set = dataset.split([len(dataset) - n_val, n_val], seed=train["seed"])
        else:
            train_set, val_set = dataset, None
        a0, u0 = dataset[0]
        cells = [round(a.length / a.spacing) if a.is_uniform else a.size - 1
                 for a in a0.grid.axes]
        model_cfg = complete_config(model_cfg, a0.grid.shape, u0.grid.shape, len(train_set),
                                    in_cells=cells)
        settings["model"] = model_cfg
        if builder is None:
            _check_model_options(model_cfg, {key for key, _ in args.option or []})
        torch.manual_seed(train["seed"])  # the initial weights: same --seed, same model
        if builder is None:  # a listed name may differ from the registered one
            model_cfg = {**model_cfg, "name": model_choices().get(model_cfg["name"],
                                                                  model_cfg["name"])}
        model = build_model(model_cfg, builder)
        if getattr(model, "config", None) is None:
            model.config = dict(model_cfg)  # type: ignore[assignment]  # a builder's module
        # a model whose PDE holds in physical units (hard-constraint) sees the data as is
        physical = bool(getattr(model, "physical_units", False))
        normalizers: Any = "auto" if train["normalize"] and not physical else None
        if not (args.resume and (Path(args.out) / "last.pt").exists()):
            if normalizers == "auto":  # fitted here: POD modes live in normalised units
                normalizers = _fit_normalizers(train_set, train["batch_size"])
            prepare_model(model, train_set, normalizers[1] if normalizers else None)
        trainer = Trainer(
            model, loss=_loss(train["loss"], model),
            scheduler=_scheduler_factory(train["scheduler"], train["lr"]),
            epochs=train["epochs"], batch_size=train["batch_size"],
            normalizers=normalizers, grad_clip=train["grad_clip"],
            amp=train["amp"] if isinstance(train["amp"], str) else bool(train["amp"]),
            early_stopping=train["early_stopping"], out_dir=args.out,
            device=train["device"], progress=not args.quiet, seed=train["seed"],
            lr=train["lr"], resume=bool(args.resume), num_workers=train["num_workers"],
            metadata={"data": {"path": str(data["path"]), "sample_dim": data["sample_dim"]},
                      "command": "opflow train"})
        if trainer.is_main:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            resolved = {**settings, "model": model.config, "opflow_version": __version__}
            with atomic_path(Path(args.out) / "config.json") as tmp:
                tmp.write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
        history = trainer.fit(train_set, val_set)
    finally:
        dataset.close()
    if trainer.is_main and history:
        last = history[-1]
        losses = ", ".join(f"{k}={last[k]:.4g}" for k in ("train_loss", "val_loss", "val_rel_l2")
                           if k in last)
        epochs = f"{trainer.epoch} epoch{'s' if trainer.epoch != 1 else ''}"
        print(f"opflow train: {epochs}, {losses}; best {trainer.monitor}="
              f"{trainer.best:.4g} at epoch {trainer.best_epoch}; wrote {args.out}/best.pt")
    return 0


def _loss(name: str, model: torch.nn.Module) -> Any:
    """The Trainer's loss for ``--loss``: a name, or the model's own residual loss."""
    if name != "residual":
        return name
    residual = getattr(model, "residual_loss", None)
    if not callable(residual):
        raise InvalidArgumentError("--loss", "rel_l2 or rel_h1 (residual needs a model with a "
                                   "PDE residual: --model hard-constraint)", name)
    return residual


def _check_model_options(config: Mapping[str, Any], from_flags: set[str]) -> None:
    """Refuse model options the operator does not take, naming the flag or table that
    gave them (before the constructor's own TypeError)."""
    import inspect

    from ..operators import registered_operators

    cls = registered_operators().get(model_choices().get(str(config.get("name")), ""))
    if cls is None:
        return
    params = inspect.signature(cls).parameters  # the constructor's, without self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = sorted(k for k in params if k != "self")
    for key in config:
        if key != "name" and key not in params:
            where = "--option" if key in from_flags else "--config [model]"
            raise UnknownVariableError(where, key, accepted)


# ------------------------------------------------------------------ predict
@command_errors("predict", PREDICT_FLAGS)
def predict_command(args: argparse.Namespace, builder: Builder | None = None) -> int:
    """Run ``opflow predict`` with parsed ``args``; returns the exit status."""
    data = require(args, "data", "--data", "a netCDF/HDF5 file of inputs")
    path = predict_file(args.checkpoint, data, args.out, chunk=args.chunk,
                        batch_size=args.batch_size, variables=args.vars,
                        sample_dim=args.sample_dim, device=args.device, builder=builder,
                        progress=not args.quiet, restart=getattr(args, "restart", False))
    print(f"opflow predict: wrote {path}")
    return 0


def predict_file(
    checkpoint: str | os.PathLike,
    input: str | os.PathLike,  # noqa: A002 - mirrors the --input flag
    out: str | os.PathLike,
    *,
    chunk: int = 64,
    batch_size: int | None = None,
    variables: Sequence[str] | None = None,
    sample_dim: str | None = None,
    device: str | torch.device | None = None,
    builder: Builder | None = None,
    progress: bool | str = False,
    restart: bool = False,
) -> Path:
    """Predictions of a checkpointed model for every sample of a file, chunk by chunk.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        Written by :class:`~opflow.train.Trainer`; the model is rebuilt from
        its stored config with ``builder`` (default
        ``opflow.operators.build_operator``), with its normalisers.
    input : str or os.PathLike
        netCDF/HDF5 file with the input variables along ``sample_dim``.
    out : str or os.PathLike
        netCDF4 file to write (atomically): the output variables (named as
        in training) with dims ``(sample_dim, *grid)``, and the
        ``sample_dim`` coordinate of the input when it has one.
    chunk : int
        Samples read, predicted and written at a time.
    batch_size : int, optional
        Samples per model call (default ``chunk``).
    variables : sequence of str, optional
        Input variables (default: those recorded at training time).
    sample_dim : str, optional
        Default: the one recorded at training time, else ``"sample"``.
    device, progress
        As for :class:`~opflow.train.Trainer`.
    restart : bool
        Discard an unfinished run of other inputs or settings (see
        :func:`opflow.batch.run_job`) instead of raising.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    for name, value in (("chunk", chunk), ("batch_size", chunk if batch_size is None
                                               else batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(name, "a positive number of samples", value)
    out = check_output_path(out, suffix=False, inputs={"input": input, "checkpoint": checkpoint})
    trainer = _trainer_from(checkpoint, builder, device, batch_size or chunk)
    info = trainer.metadata.get("data", {})
    names = list(variables or info.get("inputs") or [])
    if not names:
        raise InvalidArgumentError("variables", "the input variable names (the checkpoint does "
                                   "not record them)", variables)
    sample_dim = sample_dim or info.get("sample_dim") or "sample"
    params = list(trainer.model.parameters())
    dtype = params[0].dtype if params else torch.float32
    with warnings.catch_warnings():  # --chunk need not align with the file's own chunks
        warnings.filterwarnings("ignore", message="The specified chunks separate")
        ds = open_dataset(input, chunks={sample_dim: chunk})
    try:
        for name in names:
            if name not in ds.data_vars:
                raise UnknownVariableError("variables", name, list(ds.data_vars))
        if sample_dim not in ds[names[0]].dims:
            raise UnknownVariableError("sample_dim", sample_dim, list(ds[names[0]].dims))
        grid_dims = info.get("input_grid") if not variables else None
        grid_dims = list(grid_dims or [d for d in ds[names[0]].dims if d != sample_dim])
        # a bad grid is refused before the job starts (decreasing axes are flipped per chunk)
        grid_from_xarray(flip_decreasing(ds[names], grid_dims)[0], grid_dims)
        settings = {"command": "predict", "variables": names, "sample_dim": sample_dim,
                    "grid_dims": grid_dims, "batch_size": batch_size or chunk,
                    "device": str(trainer.device), "model_config": trainer.config}
        attrs = {"source": str(input), "checkpoint": str(checkpoint),
                 "model_config": json.dumps(trainer.config)}
        task = functools.partial(_predict_chunk, trainer, names, grid_dims, dtype, sample_dim)
        return run_job(ds, task, out, variables=names, sample_dim=sample_dim, chunk=chunk,
                       settings=settings, inputs={"input": input, "checkpoint": checkpoint},
                       attrs=attrs, progress=progress, restart=restart, desc="predict")
    finally:
        ds.close()


def _trainer_from(checkpoint: str | os.PathLike, builder: Builder | None,
                  device: str | torch.device | None, batch_size: int) -> Trainer:
    """``Trainer.from_checkpoint``; a damaged or foreign file is named as ``checkpoint``."""
    try:
        return Trainer.from_checkpoint(checkpoint, builder, device=device, batch_size=batch_size)
    except FileFormatError as e:  # read_checkpoint calls its file `path`, like open_dataset
        raise type(e)(flag_message(e, {"path": "checkpoint"})) from e


def _predict_chunk(trainer: Trainer, names: list[str], grid_dims: list[str], dtype: torch.dtype,
                   sample_dim: str, sub):
    """Predictions for the samples of one chunk, as a Dataset with ``sample_dim`` first."""
    a = to_field(sub[names], names=names, grid_dims=grid_dims, dtype=dtype)
    pred = trainer.predict(a)
    dims = [sample_dim, *(f"batch_{i}" for i in range(1, len(pred.batch_shape)))]
    part = pred.to_xarray(batch_dims=dims)
    if sample_dim in sub.coords:
        part = part.assign_coords({sample_dim: sub[sample_dim].values})
    return part
