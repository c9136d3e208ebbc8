"""The Trainer: fit a neural operator on pairs of Fields, evaluate it, predict with it.

A model maps an input Field ``(B, C_in, *grid_in)`` to an output Field
``(B, C_out, *grid_out)``. The Trainer normalises inputs, un-normalises
outputs, and computes the loss in physical units::

    pred = out_normalizer.decode(model(in_normalizer.encode(a)))
    loss = loss_fn(pred, u)

It writes ``metrics.json``/``metrics.csv`` and the ``best.pt``/``last.pt``
checkpoints (all atomically) every epoch, resumes an interrupted run so that
it ends with exactly the weights an uninterrupted run would have (on CPU),
stops on a non-finite loss with a message saying where, and runs unchanged
under ``torchrun`` (see :mod:`opflow.train.distributed`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .. import norms
from .._version import __version__
from ..data.collate import collate_fields
from ..data.normalizer import RunningMoments, UnitGaussianNormalizer
from ..data.operator_dataset import OperatorDataset
from ..errors import InvalidArgumentError, OpflowError, ShapeError
from ..field import SAMPLE_ATTR, Field, sample_labels
from ..io import atomic_path
from ..io.files import save
from ..progress import Progress
from .checkpoint import (
    normalizers_from_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from .distributed import (
    all_reduce_sum,
    distributed_sampler,
    setup_distributed,
    shard_sampler,
    wrap_model,
)
from .loop import OptimizerStep, TrainingDivergedError
from .losses import LossFn, resolve_loss, takes_input

__all__ = ["Trainer", "TrainingDivergedError", "build_model"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]
Builder = Callable[[dict], nn.Module]


def build_model(config: Mapping[str, Any], builder: Builder | None = None) -> nn.Module:
    """The model described by ``config``, built by ``builder`` or ``build_operator``.

    Parameters
    ----------
    config : mapping
        Model config with a ``"name"`` (as stored in checkpoints).
    builder : callable, optional
        ``builder(config) -> nn.Module``; default
        :func:`opflow.operators.build_operator` (imported on first use).
    """
    if not isinstance(config, Mapping):
        raise InvalidArgumentError("config", "a model config dict with a 'name'", config)
    if builder is None:
        try:
            from ..operators import build_operator
        except ImportError as e:
            raise OpflowError(
                "opflow.operators.build_operator is not available in this installation "
                f"({e}); pass builder=... to build the model yourself") from e
        builder = build_operator
    model = builder(dict(config))
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("builder", "a callable returning a torch.nn.Module", model)
    return model


# ------------------------------------------------------------------- data
class _FieldPairs(Dataset):
    """A pair of batched Fields ``(a, u)`` seen as a dataset of ``(a[i], u[i])``."""

    def __init__(self, a: Field, u: Field):
        self.a, self.u = a, u

    def __len__(self) -> int:
        return self.a.batch_shape[0]

    def __getitem__(self, i: int) -> tuple[Field, Field]:
        return self.a[i], self.u[i]


def _describe_item(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        inner = ", ".join(type(x).__name__ for x in item)
        return f"items of type {type(item).__name__}({inner})"
    return f"items of type {type(item).__name__}"


_PAIRS = ("a map-style Dataset yielding (input Field, output Field) pairs, e.g. an "
          "opflow.data.OperatorDataset, or a pair of Fields with a batch dim")


def _as_dataset(data: Any, argument: str) -> Dataset:
    """``data`` as a non-empty map-style dataset of Field pairs (checked on item 0)."""
    if (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(f, Field) for f in data)):
        a, u = data
        if not a.batch_shape or not u.batch_shape or a.batch_shape[0] != u.batch_shape[0]:
            raise ShapeError(argument, "two Fields with the same leading batch size",
                             f"batch shapes {tuple(a.batch_shape)} and {tuple(u.batch_shape)}")
        data = _FieldPairs(a, u)
    if isinstance(data, IterableDataset) or not hasattr(data, "__getitem__") \
            or not hasattr(data, "__len__"):
        raise InvalidArgumentError(argument, _PAIRS, data)
    if len(data) == 0:
        raise InvalidArgumentError(argument, "a non-empty dataset of (input Field, output Field) "
                                   "pairs", "an empty dataset (0 samples)")
    item = data[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 2
            and all(isinstance(f, Field) for f in item)):
        raise InvalidArgumentError(argument, _PAIRS, f"a dataset yielding {_describe_item(item)}")
    return data


def _check_data_dtype(model: nn.Module, first: tuple[Field, Field], argument: str) -> None:
    """Refuse floating-point data of another dtype than the model's weights before the first
    step (a plain ``nn.Module`` would fail deep in a matmul with torch's message)."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        return  # no weights, or mixed on purpose: nothing to compare with
    (weights,) = dtypes
    a, u = first
    for name, f in (("inputs", a), ("targets", u)):
        if f.values.is_floating_point() and f.dtype != weights:
            raise InvalidArgumentError(
                argument, f"{name} of the model's dtype {weights} (cast the data, e.g. "
                f"Field.to({weights}), or the model, e.g. model.to({f.dtype}))",
                f"{name} of dtype {f.dtype}")


def _fit_normalizers(data: Dataset, batch_size: int,
                     eps: float = 1e-5) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer]:
    """Per-channel statistics of a dataset of Field pairs, accumulated batch by batch."""
    if isinstance(data, OperatorDataset):
        return data.fit_normalizers(batch_size=batch_size, eps=eps)
    moments: list[RunningMoments] = []
    channel_dims, dtypes = [], []
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
        for k, f in enumerate(batch):
            if len(moments) <= k:
                cdim = f.channel_dim
                moments.append(RunningMoments(d for d in range(f.values.ndim) if d != cdim))
                channel_dims.append(cdim)
                dtypes.append(f.dtype)
            moments[k].update(f.values)
    return tuple(UnitGaussianNormalizer.from_moments(m, c, t, eps)  # type: ignore[return-value]
                 for m, c, t in zip(moments, channel_dims, dtypes))


def _check_batch(batch: Any, argument: str) -> tuple[Field, Field]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2
            and all(isinstance(f, Field) for f in batch)):
        raise InvalidArgumentError(argument, _PAIRS, f"a batch of {_describe_item(batch)}")
    return batch[0], batch[1]


# ---------------------------------------------------------------- helpers
@overload
def _positive_int(value: Any, argument: str, allow_none: Literal[False] = False) -> int: ...
@overload
def _positive_int(value: Any, argument: str, allow_none: bool) -> int | None: ...


def _positive_int(value: Any, argument: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(argument, "a positive integer" + (" or None" if allow_none
                                                                     else ""), value)
    return value


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _batch_dims(f: Field) -> list[str]:
    return ["sample", *(f"batch_{i}" for i in range(1, len(f.batch_shape)))]


def _joined(parts: Sequence[Field], inputs: Sequence[Field] | None = None) -> Field:
    """``parts`` concatenated along the first batch dim, with the sample coordinate of
    the ``inputs`` (default: of the parts) when every one of them has it."""
    attrs = {k: v for k, v in parts[0].attrs.items() if k != SAMPLE_ATTR}
    labels = [sample_labels(f) for f in (parts if inputs is None else inputs)]
    arrays = [lab for lab in labels if lab is not None]
    if labels and len(arrays) == len(labels):
        joined = np.concatenate(arrays)
        if joined.shape[0] == sum(p.batch_shape[0] for p in parts):
            attrs[SAMPLE_ATTR] = joined
    return parts[0].with_values(torch.cat([p.values for p in parts]), attrs=attrs)


def _renamed(f: Field, suffix: str) -> Field:
    return f.with_values(f.values, names=[f"{n}{suffix}" for n in f.names])


# ---------------------------------------------------------------- trainer
class Trainer:
    """Train, evaluate and run a neural operator on pairs of Fields.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(a: Field (B, C_in, *grid_in)) -> Field (B, C_out, *grid_out)``
        (a tensor of the target's shape is accepted too). Its ``config``
        dict, if it has one, goes into every checkpoint so the model can be
        rebuilt (``opflow predict``, :meth:`from_checkpoint`).
    loss : {"rel_l2", "rel_h1"} or callable
        Training loss, ``loss(pred: Field, true: Field) -> scalar tensor``,
        computed on un-normalised values (see :mod:`opflow.train.losses`).
        A callable with three required positional parameters receives the
        input Field too, ``loss(pred, true, a)``: a physics loss that uses
        no solution data (e.g. :meth:`opflow.constraints.HardConstraint.residual_loss`).
    optimizer : callable or torch.optim.Optimizer, optional
        A factory ``optimizer(parameters) -> Optimizer`` (or a ready
        optimizer over ``model.parameters()``). Default: Adam with ``lr``.
    scheduler : callable, optional
        A factory ``scheduler(optimizer, total_steps) -> LRScheduler`` called
        at the start of :meth:`fit` with ``total_steps = epochs *
        batches_per_epoch``. The scheduler steps after every optimizer step
        (e.g. ``lambda opt, n: OneCycleLR(opt, 1e-2, total_steps=n)``),
        except ``ReduceLROnPlateau``, which steps once per epoch on the
        monitored loss.
    epochs : int
        Total number of epochs (a resumed run continues up to it).
    batch_size : int
        Samples per batch (per process under ``torchrun``).
    normalizers : None, "auto" or (UnitGaussianNormalizer, UnitGaussianNormalizer)
        Input and output normalisation. ``"auto"`` fits per-channel
        statistics on the training data passed to :meth:`fit` (only those).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    amp : bool or {"fp16", "bf16"}
        Mixed precision (autocast; fp16 with a GradScaler) on CUDA. On CPU it
        is ignored with a warning and training runs in full precision.
    early_stopping : int, optional
        Stop after this many epochs without improvement of the monitored
        loss (``val_loss`` with validation data, else ``train_loss``).
    out_dir : str or os.PathLike, optional
        Folder for ``metrics.json``, ``metrics.csv``, ``best.pt`` and
        ``last.pt``, rewritten atomically after every epoch.
    device : str or torch.device, optional
        Default: CUDA when available (``cuda:<LOCAL_RANK>`` under torchrun).
    progress : bool or "always"
        Rank 0 shows progress with the live loss: bars on a terminal; outside
        one (a log file, a batch job) one line per epoch with the elapsed time
        and the losses, at most one every few seconds (lines per batch too when
        an epoch is longer). ``"always"``: bars anywhere; ``False``: nothing
        (``opflow train --quiet``). See :class:`opflow.progress.Progress`.
    seed : int
        Seeds the data shuffling (a ``torch.Generator``) and, at the start of
        a fresh :meth:`fit`, torch's global RNG (dropout, random layers);
        their states are checkpointed.
    lr : float
        Learning rate of the default Adam optimizer.
    resume : bool or str or os.PathLike
        ``True``: continue from ``out_dir/last.pt`` when it exists (start
        fresh otherwise); a path: continue from that checkpoint.
    num_workers : int
        DataLoader worker processes.
    metadata : mapping, optional
        Extra JSON-compatible metadata stored in checkpoints. The variable
        names and grid dims of the data are recorded under ``"data"``.

    Notes
    -----
    Resuming restores model, optimizer, scheduler, GradScaler, RNG states,
    the shuffling generator, normalizers, metrics and the epoch counter. A
    run resumed with the same arguments ends with bit-for-bit the weights of
    an uninterrupted run on CPU, in one process. (``scheduler`` factories that
    depend on ``total_steps`` need the same ``epochs`` in both runs.)

    Examples
    --------
    >>> train, val = OperatorDataset("darcy.nc", "a", "u").split([0.9, 0.1])  # doctest: +SKIP
    >>> trainer = Trainer(model, epochs=100, normalizers="auto", out_dir="run")  # doctest: +SKIP
    >>> history = trainer.fit(train, val)                                   # doctest: +SKIP
    >>> trainer.evaluate(val, out="run/val.nc")["rel_l2_mean"]              # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str | LossFn = "rel_l2",
        optimizer: OptimizerFactory | torch.optim.Optimizer | None = None,
        scheduler: SchedulerFactory | None = None,
        epochs: int = 10,
        batch_size: int = 32,
        normalizers: str | Sequence[UnitGaussianNormalizer] | None = None,
        grad_clip: float | None = None,
        amp: bool | str = False,
        early_stopping: int | None = None,
        out_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        progress: bool | str = True,
        seed: int = 0,
        *,
        lr: float = 1e-3,
        resume: bool | str | os.PathLike = False,
        num_workers: int = 0,
        metadata: Mapping[str, Any] | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError("model", "a torch.nn.Module", model)
        self.epochs = _positive_int(epochs, "epochs")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.early_stopping = _positive_int(early_stopping, "early_stopping", allow_none=True)
        if grad_clip is not None and not (isinstance(grad_clip, (int, float))
                                          and not isinstance(grad_clip, bool) and grad_clip > 0):
            raise InvalidArgumentError("grad_clip", "a positive max gradient norm or None",
                                       grad_clip)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError("seed", "an integer", seed)
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
            raise InvalidArgumentError("lr", "a positive learning rate", lr)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise InvalidArgumentError("num_workers", "a non-negative integer", num_workers)
        if progress not in (True, False, "always"):
            raise InvalidArgumentError("progress", "True, False or 'always'", progress)
        if resume and not isinstance(resume, (bool, str, os.PathLike)):
            raise InvalidArgumentError("resume", "a bool or a checkpoint path", resume)
        if resume is True and out_dir is None:
            raise InvalidArgumentError("resume", "a checkpoint path, or True together with "
                                       "out_dir (to resume from out_dir/last.pt)", resume)
        self.seed, self.lr, self.num_workers = seed, float(lr), num_workers
        self.progress, self.resume = progress, resume
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.loss_fn = resolve_loss(loss)
        self._loss_takes_input = takes_input(self.loss_fn)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self._normalizer_mode, self.normalizers = self._check_normalizers(normalizers)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.notes: list[str] = []

        self.ctx = setup_distributed(device)
        self.device = self.ctx.device
        self.amp_dtype = self._check_amp(amp)
        self.model = model.to(self.device)
        self.config = getattr(model, "config", None)
        self._train_model = wrap_model(self.model, self.ctx)
        self.optimizer = self._make_optimizer(optimizer)
        self._scheduler_factory = self._check_scheduler(scheduler)
        self.scheduler: Any = None
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16
                       else None)
        self.generator = torch.Generator().manual_seed(seed)

        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.monitor = "train_loss"
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_early = False
        self._bad_epochs = 0

    # ---------------------------------------------------------- checking
    @staticmethod
    def _check_normalizers(normalizers):
        if normalizers is None:
            return None, None
        if isinstance(normalizers, str):
            if normalizers != "auto":
                raise InvalidArgumentError("normalizers", "None, 'auto' or a pair of "
                                           "UnitGaussianNormalizer", normalizers)
            return "auto", None
        if (isinstance(normalizers, (tuple, list)) and len(normalizers) == 2
                and all(isinstance(n, UnitGaussianNormalizer) for n in normalizers)):
            return "given", tuple(normalizers)
        raise InvalidArgumentError("normalizers", "None, 'auto' or a pair (input, output) of "
                                   "UnitGaussianNormalizer", normalizers)

    def _check_amp(self, amp) -> torch.dtype | None:
        choices = {False: None, True: torch.float16, "fp16": torch.float16,
                   "bf16": torch.bfloat16}
        if not isinstance(amp, (bool, str)) or amp not in choices:
            raise InvalidArgumentError("amp", "False, True, 'fp16' or 'bf16'", amp)
        dtype = choices[amp]
        if dtype is not None and self.device.type != "cuda":
            note = (f"amp={amp!r} is ignored on {self.device.type}: mixed precision runs on "
                    "CUDA only, so training runs in full precision")
            self.notes.append(note)
            warnings.warn(note, UserWarning, stacklevel=3)
            return None
        return dtype

    def _make_optimizer(self, optimizer) -> torch.optim.Optimizer:
        if optimizer is None:
            return torch.optim.Adam(self.model.parameters(), lr=self.lr)
        if isinstance(optimizer, torch.optim.Optimizer):
            return optimizer
        if callable(optimizer):
            opt = optimizer(self.model.parameters())
            if not isinstance(opt, torch.optim.Optimizer):
                raise InvalidArgumentError("optimizer", "a factory returning a "
                                           "torch.optim.Optimizer", opt)
            return opt
        raise InvalidArgumentError("optimizer", "None, a torch.optim.Optimizer or a factory "
                                   "parameters -> Optimizer", optimizer)

    @staticmethod
    def _check_scheduler(scheduler):
        if scheduler is not None and not callable(scheduler):
            raise InvalidArgumentError("scheduler", "None or a factory (optimizer, total_steps) "
                                       "-> LRScheduler", scheduler)
        return scheduler

    # ---------------------------------------------------------- plumbing
    @property
    def is_main(self) -> bool:
        """True in the process that writes files (always, outside torchrun)."""
        return self.ctx.is_main

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loader(self, data: Dataset, shuffle: bool, distributed: bool,
                batch_size: int | None = None) -> DataLoader:
        # training shards are padded to equal length (DDP steps in lockstep); evaluation
        # shards are not, so every sample counts once in validation metrics
        sampler = None if not distributed else (
            distributed_sampler(data, self.ctx, shuffle=True, seed=self.seed) if shuffle
            else shard_sampler(data, self.ctx))
        return DataLoader(data, batch_size=batch_size or self.batch_size,
                          shuffle=shuffle and sampler is None, sampler=sampler,
                          generator=self.generator if shuffle else None,
                          num_workers=self.num_workers)

    def _to_device(self, f: Field) -> Field:
        return f.to(self.device, non_blocking=True) if f.device != self.device else f

    def _output_field(self, out: Any, a: Field, like: Field | None) -> Field:
        data = self.metadata.get("data", {})
        if isinstance(out, torch.Tensor):
            if like is not None and out.shape == like.shape:
                return like.with_values(out)
            if tuple(out.shape[out.ndim - a.grid.ndim:]) == a.grid.shape and out.ndim > a.grid.ndim:
                names = data.get("outputs")
                channels = out.shape[out.ndim - a.grid.ndim - 1]
                if names is None or len(names) != channels:
                    names = None
                return Field(out, a.grid, names)
            expected = tuple(like.shape) if like is not None else "(*batch, C_out, *grid)"
            raise ShapeError("model", f"an output Field (or a tensor of shape {expected})", out)
        if not isinstance(out, Field):
            raise InvalidArgumentError("model", "a model returning an opflow.Field", out)
        if like is not None and out.shape != like.shape:
            raise ShapeError("model", f"an output of shape {tuple(like.shape)} (that of the "
                             "target)", out.values)
        if like is None and data.get("outputs") and len(data["outputs"]) == out.channels:
            out = out.with_values(out.values, names=data["outputs"],
                                  units=data.get("output_units"))
        return out

    def _forward(self, model: nn.Module, a: Field, like: Field | None = None) -> Field:
        """``decode(model(encode(a)))`` as a Field in float precision."""
        x = self.normalizers[0].encode(a) if self.normalizers else a
        with self._autocast():
            out = model(x)
        out = self._output_field(out, a, like)
        if self.amp_dtype is not None and out.values.dtype != torch.float32:
            out = out.with_values(out.values.float())
        return self.normalizers[1].decode(out) if self.normalizers else out

    def _loss(self, pred: Field, true: Field, a: Field) -> torch.Tensor:
        value = (self.loss_fn(pred, true, a) if self._loss_takes_input  # type: ignore[call-arg]
                 else self.loss_fn(pred, true))
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise InvalidArgumentError("loss", "a callable returning a scalar tensor", value)
        return value.reshape(())

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _record_data(self, first: tuple[Field, Field]) -> None:
        a, u = first
        info = {"inputs": list(a.names), "input_units": list(a.units),
                "input_grid": list(a.grid.names), "outputs": list(u.names),
                "output_units": list(u.units), "output_grid": list(u.grid.names)}
        info.update(self.metadata.get("data", {}))
        self.metadata["data"] = info

    # ----------------------------------------------------------- fitting
    def fit(self, train: Any, val: Any = None, *,
            resume: bool | str | os.PathLike | None = None) -> list[dict[str, Any]]:
        """Train for the remaining epochs (up to ``epochs``).

        Parameters
        ----------
        train : Dataset or (Field, Field)
            Map-style dataset yielding ``(input Field, output Field)`` pairs
            (e.g. an :class:`~opflow.data.OperatorDataset` split), or a pair
            of Fields of shapes ``(N, C_in, *grid_in)`` and ``(N, C_out, *grid_out)``.
        val : Dataset or (Field, Field), optional
            Validation data, evaluated after every epoch; its loss selects
            ``best.pt`` and drives early stopping.
        resume : bool or path, optional
            Overrides the ``resume`` given to the constructor.

        Returns
        -------
        list of dict
            One row per epoch: ``epoch``, ``train_loss``, ``val_loss`` and
            ``val_rel_l2`` (with ``val``), ``lr``, ``seconds``.

        Raises
        ------
        TrainingDivergedError
            The loss became NaN/Inf (the message names the epoch and batch).
        opflow.errors.InvalidArgumentError
            Empty data or data that do not yield pairs of Fields (the
            message names ``train`` or ``val``).
        """
        train = _as_dataset(train, "train")
        val = None if val is None else _as_dataset(val, "val")
        resume = self.resume if resume is None else resume
        if resume is True and self.out_dir is None:
            raise InvalidArgumentError("resume", "a checkpoint path, or True together with "
                                       "out_dir (to resume from out_dir/last.pt)", resume)
        first = train[0]  # one read: metadata and the dtype check
        self._record_data(first)
        _check_data_dtype(self.model, first, "train")
        if val is not None:
            _check_data_dtype(self.model, val[0], "val")
        self.monitor = "val_loss" if val is not None else "train_loss"
        loader = self._loader(train, shuffle=True, distributed=True)
        val_loader = None if val is None else self._loader(val, shuffle=False, distributed=True)
        if self.scheduler is None and self._scheduler_factory is not None:
            self.scheduler = self._scheduler_factory(self.optimizer, self.epochs * len(loader))
            if not hasattr(self.scheduler, "step") or not hasattr(self.scheduler, "state_dict"):
                raise InvalidArgumentError("scheduler", "a factory returning an LR scheduler",
                                           self.scheduler)
        start = self._maybe_resume(resume)
        if start is None and self.epoch == 0:
            torch.manual_seed(self.seed + self.ctx.rank)
        if self._normalizer_mode == "auto" and self.normalizers is None:
            self.normalizers = _fit_normalizers(train, self.batch_size)
        if self.normalizers is not None:
            self.normalizers = tuple(n.to(self.device) for n in self.normalizers)
        if self.out_dir is not None and self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            from ..io import remove_stale_temporaries

            remove_stale_temporaries(self.out_dir, ".")  # debris of a run killed mid-write
        if self.stopped_early:
            return self.history

        epochs_bar = Progress(self.epochs, "train", self.progress if self.is_main else False,
                              unit="epoch", initial=self.epoch)
        try:
            for epoch in range(self.epoch, self.epochs):
                if self._fit_epoch(epoch, loader, val_loader, epochs_bar):
                    break
        finally:
            epochs_bar.close()
        return self.history

    def _fit_epoch(self, epoch: int, loader: DataLoader, val_loader: DataLoader | None,
                   epochs_bar: Progress) -> bool:
        """One epoch of training, validation and bookkeeping; True to stop early."""
        t0 = time.perf_counter()
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": self._train_epoch(epoch, loader,
                                                                                   epochs_bar)}
        if val_loader is not None:
            row.update(self._validate(val_loader))
        row["lr"] = self._current_lr()
        row["seconds"] = round(time.perf_counter() - t0, 4)
        value = row[self.monitor]
        improved = self.best is None or value < self.best
        if improved:
            self.best, self.best_epoch, self._bad_epochs = value, epoch + 1, 0
        else:
            self._bad_epochs += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(value)
        self.epoch = epoch + 1
        self.stopped_early = (self.early_stopping is not None
                              and self._bad_epochs >= self.early_stopping)
        self.history.append(row)
        if self.out_dir is not None and self.is_main:
            if improved:
                self.save_checkpoint(self.out_dir / "best.pt")
            self.save_checkpoint(self.out_dir / "last.pt")
            self._write_metrics()
        epochs_bar.update(1, **{k: float(v) for k, v in row.items()
                                if k in ("train_loss", "val_loss", "val_rel_l2")})
        return self.stopped_early

    def _train_epoch(self, epoch: int, loader: DataLoader, epochs_bar: Progress) -> float:
        model = self._train_model
        model.train()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        bar = Progress(len(loader), f"train epoch {epoch + 1}/{self.epochs}",
                       self.progress if self.is_main else False, unit="batch",
                       parent=epochs_bar, edges=False, leave=False)
        try:
            for b, batch in enumerate(loader, start=1):
                a, u = _check_batch(batch, "train")
                a, u = self._to_device(a), self._to_device(u)
                loss = self._loss(self._forward(model, a, like=u), u, a)
                n = float(u.batch_shape[0]) if u.batch_shape else 1.0
                stat = torch.stack([loss.detach().to(torch.float64) * n,
                                    torch.tensor(n, dtype=torch.float64, device=self.device)])
                all_reduce_sum(stat, self.ctx)
                value = float(stat[0] / stat[1])
                if not math.isfinite(value):
                    raise TrainingDivergedError(epoch + 1, b, len(loader), value,
                                                self._current_lr(), self.grad_clip)
                self._step(loss)
                total += stat
                bar.update(1, loss=value)
        finally:
            bar.close()
        return float(total[0] / total[1])

    def _step(self, loss: torch.Tensor) -> None:
        OptimizerStep(self.optimizer, self.model.parameters(), self.scheduler, self.grad_clip,
                      self.scaler)(loss)

    @torch.no_grad()
    def _validate(self, loader: DataLoader) -> dict[str, float]:
        self.model.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        for batch in loader:
            a, u = _check_batch(batch, "val")
            a, u = self._to_device(a), self._to_device(u)
            pred = self._forward(self.model, a, like=u)
            n = float(u.batch_shape[0]) if u.batch_shape else 1.0
            rel = norms.rel_l2(pred, u).to(torch.float64)
            sums += torch.stack([self._loss(pred, u, a).to(torch.float64) * n,
                                 torch.tensor(n, dtype=torch.float64, device=self.device),
                                 rel.sum(), torch.tensor(float(rel.numel()),
                                                         dtype=torch.float64,
                                                         device=self.device)])
        all_reduce_sum(sums, self.ctx)
        return {"val_loss": float(sums[0] / sums[1]), "val_rel_l2": float(sums[2] / sums[3])}

    # ----------------------------------------------------- checkpointing
    def _trainer_state(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self._bad_epochs,
                "monitor": self.monitor, "stopped_early": self.stopped_early,
                "epochs": self.epochs, "seed": self.seed, "loss": str(self.loss_name),
                "world_size": self.ctx.world_size}

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the full training state to ``path`` (atomically); see :mod:`.checkpoint`.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.

        Returns
        -------
        pathlib.Path
        """
        return save_checkpoint(
            path, self.model, config=self.config, optimizer=self.optimizer,
            scheduler=self.scheduler, scaler=self.scaler, epoch=self.epoch,
            normalizers=self.normalizers, metrics=self.history, generator=self.generator,
            trainer=self._trainer_state(), metadata=self.metadata)

    def _maybe_resume(self, resume) -> int | None:
        """Restore from the resume checkpoint if there is one; the epoch restored, or None."""
        if not resume:
            return None
        if resume is True:
            assert self.out_dir is not None  # fit() refuses resume=True without out_dir
            path = self.out_dir / "last.pt"
        else:
            path = Path(resume)
        if not path.exists():
            if resume is True:
                return None
            raise FileNotFoundError(2, "Trainer(resume=...): no such checkpoint", str(path))
        ckpt = read_checkpoint(path, map_location="cpu")
        restore_checkpoint(ckpt, self.model, config=self.config, optimizer=self.optimizer,
                           scheduler=self.scheduler, scaler=self.scaler, restore_rng=True,
                           generator=self.generator, source=repr(str(path)))
        stored = normalizers_from_checkpoint(ckpt)
        if stored is not None:
            self.normalizers = stored
        state = ckpt.get("trainer", {})
        self.epoch = int(ckpt["epoch"])
        self.history = [dict(r) for r in ckpt.get("metrics", [])]
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self._bad_epochs = int(state.get("bad_epochs", 0))
        self.stopped_early = bool(state.get("stopped_early", False))
        meta = dict(ckpt.get("metadata") or {})
        meta.update(self.metadata)
        self.metadata = meta
        return self.epoch

    def _write_metrics(self) -> None:
        assert self.out_dir is not None  # called for a run with an out_dir only
        summary = {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch,
                   "epochs_done": self.epoch, "epochs": self.epochs,
                   "stopped_early": self.stopped_early, "opflow_version": __version__,
                   "history": self.history}
        _write_text(self.out_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
        columns: list[str] = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        _write_text(self.out_dir / "metrics.csv", buf.getvalue())

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, builder: Builder | None = None,
                        **kwargs: Any) -> Trainer:
        """A Trainer around the model saved in a checkpoint, ready to predict/evaluate.

        Parameters
        ----------
        path : str or os.PathLike
            A checkpoint written by a Trainer (``best.pt``, ``last.pt``).
        builder : callable, optional
            ``builder(config) -> nn.Module`` (default
            ``opflow.operators.build_operator``), called with the stored config.
        **kwargs
            Passed to :class:`Trainer` (``device``, ``batch_size``, ...).

        Raises
        ------
        opflow.errors.InvalidArgumentError
            (argument ``checkpoint``) it holds no model config to rebuild from.
        """
        ckpt = read_checkpoint(path, map_location="cpu")
        config = ckpt.get("model_config")
        if not config:
            raise InvalidArgumentError(
                "checkpoint", "a checkpoint with a model config (from model.config) to rebuild "
                "the model from", str(path))
        model = build_model(config, builder)
        kwargs.setdefault("progress", False)
        trainer = cls(model, **kwargs)
        restore_checkpoint(ckpt, trainer.model, config=config, source=repr(str(path)))
        trainer.config = config
        stored = normalizers_from_checkpoint(ckpt)
        if stored is not None:
            trainer.normalizers = tuple(n.to(trainer.device) for n in stored)
            trainer._normalizer_mode = "given"
        trainer.metadata = {**dict(ckpt.get("metadata") or {}), **trainer.metadata}
        trainer.epoch = int(ckpt["epoch"])
        trainer.history = [dict(r) for r in ckpt.get("metrics", [])]
        return trainer

    # ------------------------------------------------------ using a model
    @torch.no_grad()
    def evaluate(self, test: Any, out: str | os.PathLike | None = None, *,
                 batch_size: int | None = None) -> dict[str, Any]:
        """Per-sample relative L2 and H1 errors on ``test``.

        Parameters
        ----------
        test : Dataset or (Field, Field)
            As ``train`` in :meth:`fit`; read in order.
        out : str or os.PathLike, optional
            netCDF file (written atomically with :func:`opflow.save`, rank 0
            only) with the predictions ``<name>_pred``, the truth
            ``<name>_true`` and the per-sample errors ``rel_l2``, ``rel_h1``
            along ``sample``. Everything is held in memory; for large inputs
            use ``opflow predict``.
        batch_size : int, optional
            Default: the training batch size.

        Returns
        -------
        dict
            ``rel_l2``, ``rel_h1``: tensors of shape ``(N, *extra batch)``;
            ``rel_l2_mean``, ``rel_h1_mean``, ``loss`` (mean training loss):
            floats; ``n``: number of samples.
        """
        data = _as_dataset(test, "test")
        loader = self._loader(data, shuffle=False, distributed=False, batch_size=batch_size)
        self.model.eval()
        l2s, h1s, preds, trues = [], [], [], []
        loss_sum, count = 0.0, 0
        for batch in loader:
            a, u = _check_batch(batch, "test")
            a, u = self._to_device(a), self._to_device(u)
            pred = self._forward(self.model, a, like=u)
            n = u.batch_shape[0] if u.batch_shape else 1
            loss_sum += float(self._loss(pred, u, a)) * n
            count += n
            l2s.append(norms.rel_l2(pred, u).cpu())
            h1s.append(norms.rel_h1(pred, u).cpu())
            if out is not None:
                preds.append(pred.detach().to("cpu"))
                trues.append(u.detach().to("cpu"))
        rel_l2, rel_h1 = torch.cat(l2s), torch.cat(h1s)
        result = {"rel_l2": rel_l2, "rel_h1": rel_h1, "rel_l2_mean": float(rel_l2.mean()),
                  "rel_h1_mean": float(rel_h1.mean()), "loss": loss_sum / max(count, 1),
                  "n": int(rel_l2.shape[0])}
        if out is not None and self.is_main:
            self._write_evaluation(Path(out), preds, trues, result)
        return result

    def _write_evaluation(self, path: Path, preds: list[Field], trues: list[Field],
                          result: dict[str, Any]) -> None:
        true = _joined(trues)
        pred = _joined(preds, trues)
        dims = _batch_dims(true)
        ds = xr.merge([_renamed(pred, "_pred").to_xarray(dims),
                       _renamed(true, "_true").to_xarray(dims)], combine_attrs="override")
        for name, long_name in (("rel_l2", "relative L2 error"), ("rel_h1", "relative H1 error")):
            ds[name] = xr.Variable(dims, result[name].numpy(), {"long_name": long_name})
            ds.attrs[f"{name}_mean"] = result[f"{name}_mean"]
        ds.attrs["opflow_version"] = __version__
        if self.config is not None:
            ds.attrs["model_config"] = json.dumps(self.config)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        save(ds, path)

    @torch.no_grad()
    def predict(self, data: Any, *, batch_size: int | None = None) -> Field:
        """Model outputs (un-normalised), computed batch by batch, on CPU.

        Parameters
        ----------
        data : Field, sequence of Field, or Dataset
            A Field ``(C_in, *grid)`` (one sample) or ``(N, C_in, *grid)``; a
            sequence of sample Fields; or a dataset yielding input Fields or
            ``(input, output)`` pairs (outputs are ignored).
        batch_size : int, optional
            Default: the training batch size.

        Returns
        -------
        Field
            ``(C_out, *grid_out)`` for one sample, else ``(N, C_out, *grid_out)``,
            named after the training outputs when known. It keeps the inputs'
            sample coordinate (``attrs["opflow_sample"]``: for an
            :class:`~opflow.data.OperatorDataset` or a split of one, the source's
            sample coordinate, else the positions in the file), so
            ``predict(test).to_xarray()`` has a ``sample`` coordinate that
            matches each prediction to its source sample.

        Examples
        --------
        >>> import numpy as np, torch, opflow
        >>> from opflow.data import OperatorDataset
        >>> from opflow.train import Trainer
        >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))
        >>> a = opflow.Field(torch.randn(10, 1, 16), grid, names="a")
        >>> ds = a.to_xarray().assign(u=lambda d: 2 * d["a"])
        >>> train, test = OperatorDataset(ds, "a", "u").split([0.7, 0.3], seed=0)
        >>> trainer = Trainer(opflow.operators.FNO(1, 1, modes=4, width=8), epochs=1,
        ...                   progress=False)
        >>> _ = trainer.fit(train)
        >>> pred = trainer.predict(test).to_xarray()
        >>> bool((pred["sample"].values == test.indices).all())
        True
        """
        batch_size = _positive_int(batch_size or self.batch_size, "batch_size")
        self.model.eval()
        if isinstance(data, (list, tuple)) and data and all(isinstance(f, Field) for f in data):
            data = collate_fields(list(data))
        if isinstance(data, Field):
            if not data.batch_shape:
                return self.predict(data.with_values(data.values[None]),
                                    batch_size=batch_size)[0]
            if data.batch_shape[0] == 0:
                raise InvalidArgumentError("data", "a Field with at least one sample", data.values)
            self._check_in_channels(data)
            inputs = [data[i:i + batch_size] for i in range(0, data.batch_shape[0], batch_size)]
            parts = [self._forward(self.model, self._to_device(a)).to("cpu") for a in inputs]
        elif isinstance(data, Dataset) and hasattr(data, "__len__"):
            if len(data) == 0:
                raise InvalidArgumentError("data", "a non-empty dataset", "an empty dataset")
            parts, inputs = [], []
            for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
                a = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not isinstance(a, Field):
                    raise InvalidArgumentError("data", "a dataset yielding input Fields or "
                                               "(input, output) pairs", a)
                self._check_in_channels(a)
                inputs.append(a)
                parts.append(self._forward(self.model, self._to_device(a)).to("cpu"))
        else:
            raise InvalidArgumentError("data", "a Field, a sequence of Fields or a Dataset", data)
        return _joined(parts, inputs)

    def _check_in_channels(self, a: Field) -> None:
        """Refuse inputs whose channel count differs from the model's config (not a torch error)."""
        expected = (getattr(self.model, "config", None) or {}).get("in_channels")
        if isinstance(expected, int) and a.channels != expected:
            raise ShapeError("data", f"{expected} input channel(s), as the model was built with",
                             a.values)

    def __repr__(self) -> str:
        return (f"Trainer(model={type(self.model).__name__}, loss={self.loss_name!r}, "
                f"epoch={self.epoch}/{self.epochs}, device={self.device}, "
                f"world_size={self.ctx.world_size})")
