"""Multi-task training and transfer to a new geometry (Kumar et al.'s multi-task DeepONet).

* :func:`masked_rel_l2`: the loss, the relative L2 error inside the geometry
  only (the ``"mask"`` channel of the target), computed by
  :func:`opflow.norms.rel_l2`; usable as ``Trainer(loss=masked_rel_l2)``.
* :func:`freeze` leaves only chosen layers trainable, :func:`fine_tune`
  trains them on a few samples; :func:`fit` is the step-counted training
  both use (also from scratch), on the one loop core
  :func:`opflow.train.loop.fit_steps`.
* :func:`evaluate_by_geometry`: the mean error per geometry.

The model is :class:`opflow.operators.MultiTaskDeepONet`; the data
:class:`opflow.data.multitask.MultiTaskData`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from .. import norms
from ..data.multitask import MultiTaskData
from ..errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from ..field import Field
from .loop import fit_steps, minibatches

__all__ = [
    "evaluate_by_geometry",
    "fine_tune",
    "fit",
    "freeze",
    "masked_rel_l2",
    "trainable_names",
]


# ----------------------------------------------------------------- the loss
def masked_rel_l2(pred: Field, true: Field, mask: torch.Tensor | Field | None = None,
                  eps: float = 1e-12, reduction: str = "mean") -> torch.Tensor:
    """Mean over the batch of ``||m (pred - true)||_2 / ||m true||_2``.

    Usable as ``Trainer(loss=masked_rel_l2)`` with the Fields of
    :meth:`MultiTaskData.pairs` and :class:`MultiTaskDeepONet`.

    Parameters
    ----------
    pred, true : Field, shape (B, C, nx, ny)
        With ``mask=None``, ``true`` must have a ``"mask"`` channel (0/1):
        the ``"u"`` channels are compared (the only other channel when there
        is no ``"u"``). With a mask, all channels are compared.
    mask : Field or tensor, optional
        ``(B, 1, nx, ny)`` (or broadcastable), bool or 0/1.
    eps : float
        Added to the norm of the target.
    reduction : {"mean", "none"}
        Mean over the batch, or one error per sample.

    Returns
    -------
    torch.Tensor, shape () or (B,)
        Differentiable in ``pred``; nodes where the mask is 0 do not count.
    """
    if reduction not in ("mean", "none"):
        raise InvalidArgumentError("reduction", "'mean' or 'none'", reduction)
    if not isinstance(pred, Field) or not isinstance(true, Field):
        raise InvalidArgumentError("pred", "two Fields (pred, true)", (type(pred), type(true)))
    if pred.grid != true.grid:
        raise GridMismatchError("pred", f"a Field on the target's grid ({true.grid})", pred.grid)
    if mask is None:
        if "mask" not in true.names:
            raise UnknownVariableError("true", "mask", true.names)
        mask = true["mask"].values
        keep = ["u"] if "u" in true.names else [n for n in true.names if n != "mask"]
        pred, true = pred[keep], true[keep]
    if pred.shape != true.shape:
        raise ShapeError("pred", f"shape {tuple(true.shape)} (that of the target)", pred.values)
    return norms.rel_l2(pred, true, reduction=reduction, eps=eps, mask=mask)


# --------------------------------------------------------------- transfer
def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require grad."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _resolve(model: nn.Module, name: str) -> str:
    """``"branch.last"`` -> ``"branch.linears.2"``: ``last`` is the last entry of a
    ModuleList/Sequential, and a module holding only ``linears`` is stepped into."""
    module: nn.Module | nn.Parameter = model
    parts: list[str] = []
    for part in name.split("."):
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and part in ("last", "first"):
            part = str(len(module) - 1 if part == "last" else 0)
        elif part in ("last", "first") and isinstance(
                linears := getattr(module, "linears", None), nn.ModuleList):
            module = linears
            parts.append("linears")
            part = str(len(module) - 1 if part == "last" else 0)
        child = getattr(module, part, None) if not part.isdigit() else (
            module[int(part)] if isinstance(module, (nn.ModuleList, nn.Sequential))
            and int(part) < len(module) else None)
        if not isinstance(child, (nn.Module, nn.Parameter)):
            available = [n for n, _ in model.named_modules() if n] + \
                        [n for n, _ in model.named_parameters()]
            raise UnknownVariableError("train", name, available)
        module = child
        parts.append(part)
    return ".".join(parts)


def freeze(model: nn.Module, train: Sequence[str] | str) -> list[str]:
    """Make only the named layers trainable (``requires_grad``); freeze the rest.

    Parameters
    ----------
    model : nn.Module
    train : str or sequence of str
        Module or parameter names (``"branch"``, ``"trunk.linears.2"``,
        ``"b0"``); ``"last"``/``"first"`` stand for the last/first layer of a
        net (``"branch.last"``).

    Returns
    -------
    list of str
        The parameter names left trainable.

    Raises
    ------
    UnknownVariableError
        A name that is no module or parameter of ``model`` (the message
        lists the available ones).
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", "a torch.nn.Module", model)
    names = [train] if isinstance(train, str) else list(train)
    if not names or not all(isinstance(n, str) for n in names):
        raise InvalidArgumentError("train", "one or more module/parameter names", train)
    prefixes = [_resolve(model, n) for n in names]  # all checked before any change
    for pname, param in model.named_parameters():
        param.requires_grad_(any(pname == q or pname.startswith(q + ".") for q in prefixes))
    return trainable_names(model)


@contextlib.contextmanager
def _frozen(model: nn.Module, train) -> Iterator[list[str]]:
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        yield freeze(model, train)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


def _as_pairs(data, argument: str = "data") -> tuple[Field, Field]:
    if isinstance(data, MultiTaskData):
        return data.pairs()
    if isinstance(data, (tuple, list)) and len(data) == 2 and \
            all(isinstance(f, Field) for f in data):
        inp, tgt = data
        if inp.grid != tgt.grid:
            raise GridMismatchError(argument, "input and target on one grid",
                                    (inp.grid, tgt.grid))
        if inp.batch_shape[:1] != tgt.batch_shape[:1] or not inp.batch_shape:
            raise ShapeError(argument, "input and target with the same number of samples",
                             f"{tuple(inp.batch_shape)} and {tuple(tgt.batch_shape)}")
        return inp, tgt
    raise InvalidArgumentError(argument, "a MultiTaskData or a pair (input Field, target "
                               "Field)", data)


def fit(model: nn.Module, data, steps: int, lr: float = 1e-3, batch_size: int = 32,
        seed: int = 0, progress: bool | str = False) -> list[float]:
    """Train the trainable parameters with Adam and cosine decay on :func:`masked_rel_l2`.

    Parameters
    ----------
    model : nn.Module
        Maps the input Field to an output Field (e.g. :class:`MultiTaskDeepONet`).
    data : MultiTaskData or (input Field, target Field)
        See :meth:`MultiTaskData.pairs`; ``N`` samples.
    steps : int
        Optimiser steps; each draws ``min(batch_size, N)`` samples without
        replacement (a new permutation every pass over the data).
    lr : float
        Initial learning rate (cosine decay to 0 over ``steps``).
    batch_size : int
    seed : int
        Seed of the sample order (training is reproducible on CPU).
    progress : bool or "always"
        tqdm bar over the steps (on a terminal).

    Returns
    -------
    list of float
        The training loss of every step.
    """
    inp, tgt = _as_pairs(data)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError("batch_size", "a positive integer", batch_size)
    batches = minibatches(inp.batch_shape[0], batch_size, torch.Generator().manual_seed(seed))

    def step_loss(_: int) -> torch.Tensor:
        idx = next(batches)
        return masked_rel_l2(model(inp[idx]), tgt[idx])

    model.train()
    try:
        return fit_steps(model.parameters(), step_loss, steps, lr, progress=progress,
                         desc="fit", log_every=max(1, steps // 20))
    finally:
        model.eval()


def fine_tune(model: nn.Module, data,
              train: Sequence[str] | str = ("branch", "trunk.last", "b0"),
              steps: int = 500, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
              progress: bool | str = False) -> list[float]:
    """Fine-tune only the layers ``train`` of ``model`` on ``data`` (in place).

    The other parameters stay bit-identical; ``requires_grad`` flags are
    restored afterwards. Arguments as in :func:`freeze` and :func:`fit`.
    The default (the branch, the last trunk layer and the bias; the first
    trunk layers frozen) transferred best to the unseen disk in
    ``benchmarks/bench_multitask.py``: with 10-25 samples, about half the
    error of the branch alone, which cannot bend the frozen trunk basis to
    the new boundary.

    Parameters
    ----------
    model : nn.Module
        Maps the input Field to an output Field (e.g. :class:`MultiTaskDeepONet`).
    data : MultiTaskData or (input Field, target Field)
        The fine-tuning samples.
    train : str or sequence of str
        The module or parameter names to train, as for :func:`freeze`.
    steps : int
        Optimiser steps.
    lr : float
        Initial learning rate (cosine decay to 0 over ``steps``).
    batch_size : int
        Samples per step (at most the number of samples).
    seed : int
        Seed of the sample order.
    progress : bool or "always"
        tqdm bar over the steps (on a terminal).

    Returns
    -------
    list of float
        The training loss of every step.
    """
    _as_pairs(data)
    with _frozen(model, train):
        return fit(model, data, steps, lr=lr, batch_size=batch_size, seed=seed,
                   progress=progress)


@torch.no_grad()
def evaluate_by_geometry(model: nn.Module, data: MultiTaskData,
                         batch_size: int = 256) -> dict[str, float]:
    """Mean masked relative L2 error per geometry (and ``"all"``).

    Parameters
    ----------
    model : nn.Module
    data : MultiTaskData
    batch_size : int

    Returns
    -------
    dict
        ``{geometry: mean error, ..., "all": mean over every sample}``.
    """
    if not isinstance(data, MultiTaskData):
        raise InvalidArgumentError("data", "a MultiTaskData", data)
    inp, tgt = data.pairs()
    model.eval()
    errors: list[float] = []
    for s in range(0, len(data), batch_size):
        part = slice(s, s + batch_size)
        errors += masked_rel_l2(model(inp[part]), tgt[part], reduction="none").tolist()
    out = {}
    for g in sorted(set(data.geometry)):
        vals = [e for e, h in zip(errors, data.geometry) if h == g]
        out[g] = sum(vals) / len(vals)
    out["all"] = sum(errors) / len(errors)
    return out
