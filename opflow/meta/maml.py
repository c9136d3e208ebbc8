"""Pretraining one operator on several PDE families: first-order MAML or joint training.

A :class:`Task` holds the samples of one family as tensors on one grid. The
operator (an FNO or a DeepONet, :func:`build_backbone`) sees the input
channels ``u0, c/scale, b/scale, ...`` and predicts ``u(t_end)``.

First-order MAML (Finn et al. 2017; Nichol et al. 2018), one outer step::

    for each task T of the meta-batch:
        theta_T <- theta - inner_lr * grad L(theta; support_T)     (inner_steps SGD steps)
        g_T     <- grad L(theta_T; query_T)                         (first-order: no
                                                                     second derivatives)
    theta <- Adam(theta, mean_T g_T)

with ``L`` the relative L2 error. ``method="joint"`` instead takes Adam steps
on the loss of the same samples pooled over tasks (multi-task learning, the
usual baseline of meta-learning).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import xarray as xr
from torch import nn

from .. import norms
from ..errors import GridMismatchError, InvalidArgumentError
from ..field import Field
from ..grid import Grid
from ..train.loop import fit_steps
from .families import COEFFICIENT_SCALES, INPUTS

__all__ = ["Task", "build_backbone", "check_tasks", "pretrain", "predict", "task_error",
           "task_from_dataset"]


@dataclass(frozen=True)
class Task:
    """Samples of one PDE family (one task of meta-learning).

    The parameters are also the attributes of the same names.

    Parameters
    ----------
    name : str
        The family's name.
    inputs : torch.Tensor, shape (N, C_in, n)
        Model inputs (coefficient channels already divided by their scale).
    outputs : torch.Tensor, shape (N, C_out, n)
        Targets.
    grid : Grid
        The 1-D grid of the samples.
    variables : tuple of str
        Names of the input channels, then of the output channels.
    """

    name: str
    inputs: torch.Tensor
    outputs: torch.Tensor
    grid: Grid
    variables: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, index: torch.Tensor) -> "Task":
        """The task restricted to the samples ``index``.

        Parameters
        ----------
        index : torch.Tensor
            Sample positions (integers) or a boolean mask.

        Returns
        -------
        Task
        """
        return Task(self.name, self.inputs[index], self.outputs[index], self.grid,
                    self.variables)

    def split(self, k: int, seed: int = 0) -> tuple["Task", "Task"]:
        """``(k random samples, the other samples)``; a clear error if ``k > len(self)``.

        Parameters
        ----------
        k : int
            Samples in the first part.
        seed : int
            Seed of the draw.

        Returns
        -------
        tuple of Task
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self):
            raise InvalidArgumentError(
                "shots", f"a support size between 1 and the {len(self)} samples of task "
                f"{self.name!r}", k)
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(int(seed)))
        return self.subset(perm[:k]), self.subset(perm[k:])


def task_from_dataset(source: xr.Dataset | str | os.PathLike, name: str | None = None,
                      inputs: Sequence[str] = INPUTS, output: str = "u",
                      dtype: torch.dtype = torch.float32) -> Task:
    """A :class:`Task` from a family data set (:func:`~.families.generate_family` or its file).

    Coefficient channels (names in :data:`~.families.COEFFICIENT_SCALES`)
    are divided by their scale, so every input channel is of order one.

    Parameters
    ----------
    source : xarray.Dataset, str or os.PathLike
        A family data set (:func:`~opflow.meta.families.generate_family`) or its file.
    name : str, optional
        The task's name (default: the data set's family).
    inputs : sequence of str
        The input channels: ``u0`` and coefficient names.
    output : str
        The output variable.
    dtype : torch.dtype
        Of the tensors.

    Returns
    -------
    Task
    """
    from ..data import OperatorDataset

    data = OperatorDataset(source, inputs=list(inputs), outputs=output, dtype=dtype)
    a, u = next(iter(torch.utils.data.DataLoader(data, batch_size=len(data))))
    scale = torch.tensor([COEFFICIENT_SCALES.get(v, 1.0) for v in inputs], dtype=dtype)
    if name is None:
        attrs = source.attrs if isinstance(source, xr.Dataset) else a.attrs
        name = str(attrs.get("family", "task"))
    return Task(name, a.values / scale[:, None], u.values, a.grid, (*inputs, output))


def check_tasks(tasks: Sequence[Task], argument: str = "tasks") -> None:
    """Raise unless ``tasks`` is a non-empty list of Tasks on one grid with one set of variables.

    Parameters
    ----------
    tasks : sequence of Task
        The tasks to check.
    argument : str
        The argument's name, for the error.
    """
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        raise InvalidArgumentError(argument, "a non-empty sequence of Task objects", tasks)
    ref = tasks[0]
    for t in tasks[1:]:
        if t.grid != ref.grid:
            raise GridMismatchError(argument, f"every task on the grid of {ref.name!r} "
                                    f"({ref.grid})", f"{t.name!r} on {t.grid}")
        if t.variables != ref.variables:
            raise InvalidArgumentError(argument, f"every task with the variables of {ref.name!r} "
                                       f"{list(ref.variables)}",
                                       f"{t.name!r} with {list(t.variables)}")


# ---------------------------------------------------------------- models
BACKBONES = ("fno", "deeponet")


def build_backbone(backbone: str, in_channels: int, resolution: int, *, width: int = 32,
                   modes: int = 12, layers: int = 4, seed: int = 0) -> nn.Module:
    """A fresh operator for 1-D tasks: ``"fno"`` or ``"deeponet"``.

    Parameters
    ----------
    backbone : {"fno", "deeponet"}
    in_channels : int
        Input channels (``u0`` and the coefficients).
    resolution : int
        Grid points (the DeepONet's branch reads all ``in_channels * resolution`` values).
    width, modes, layers : int
        FNO width, Fourier modes and layers; DeepONet hidden width ``4 * width``,
        ``layers - 1`` hidden layers and ``p = 2 * width`` basis functions.
    seed : int
        Seed of the initial weights.
    """
    from ..operators import FNO, DeepONet

    if backbone not in BACKBONES:
        raise InvalidArgumentError("backbone", f"one of {list(BACKBONES)}", backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if backbone == "fno":
            return FNO(in_channels, 1, modes=(modes,), width=width, n_layers=layers,
                       projection_channels=2 * width)
        hidden, p = [4 * width] * max(layers - 1, 1), 2 * width
        return DeepONet([in_channels * resolution, *hidden, p], [1, *hidden, p],
                        activation="gelu")


def predict(model: nn.Module, inputs: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``model`` on inputs ``(B, C_in, n)`` given as a Field on ``grid``: ``(B, C_out, n)``."""
    out = model(Field(inputs, grid))
    return out.values if isinstance(out, Field) else out


def task_error(model: nn.Module, task: Task) -> torch.Tensor:
    """Mean relative L2 error (:func:`opflow.norms.rel_l2`) of ``model`` on ``task``, shape ()."""
    pred = predict(model, task.inputs, task.grid)
    return norms.rel_l2(Field(pred, task.grid), Field(task.outputs, task.grid),
                        reduction="mean")


# -------------------------------------------------------------- pretrain
def _check_counts(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidArgumentError(name, "a positive integer", v)


def _check_rates(**values: Any) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                math.isfinite(v) and v > 0):
            raise InvalidArgumentError(name, "a positive finite number", v)


def _episode(task: Task, support: int, query: int, gen: torch.Generator) -> tuple[Task, Task]:
    idx = torch.randperm(len(task), generator=gen)[:support + query]
    return task.subset(idx[:support]), task.subset(idx[support:])


def _fomaml_grads(model: nn.Module, fast: nn.Module, s: Task, q: Task, inner_steps: int,
                  inner_lr: float) -> tuple[list[torch.Tensor], float]:
    """Query-loss gradient at the inner-adapted weights (first-order MAML)."""
    fast.load_state_dict(model.state_dict())
    params = [p for p in fast.parameters() if p.requires_grad]
    for _ in range(inner_steps):
        grads = torch.autograd.grad(task_error(fast, s), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(inner_lr * g)
    loss = task_error(fast, q)
    return list(torch.autograd.grad(loss, params)), float(loss.detach())


def pretrain(
    model: nn.Module,
    tasks: Sequence[Task],
    *,
    method: str = "fomaml",
    steps: int = 500,
    lr: float = 1e-3,
    inner_steps: int = 5,
    inner_lr: float = 1e-3,
    support: int = 10,
    query: int = 20,
    meta_batch: int | None = None,
    seed: int = 0,
    progress: bool | str = False,
) -> list[dict[str, float]]:
    """Pretrain ``model`` in place on several tasks.

    Parameters
    ----------
    model : nn.Module
        An operator from :func:`build_backbone` (or any model called on a
        Field ``(B, C_in, n)`` returning ``(B, C_out, n)``).
    tasks : sequence of Task
        One per family; same grid and variables (checked).
    method : {"fomaml", "joint"}
        First-order MAML, or plain training on the pooled samples.
    steps : int
        Outer (Adam) steps.
    lr : float
        Adam learning rate of the outer update (cosine-annealed to zero).
    inner_steps, inner_lr : int, float
        SGD steps and step size of the inner adaptation (``fomaml`` only).
    support, query : int
        Samples per task and step: the support set of the inner steps and
        the query set of the outer loss (``joint`` trains on both).
    meta_batch : int, optional
        Tasks per outer step (default: all).
    seed : int
        Seed of the episode sampling.
    progress : bool or "always"
        Progress bar over steps (on a terminal).

    Returns
    -------
    list of dict
        Per step: ``{"step", "loss"}`` (mean query loss after adaptation for
        ``fomaml``, the training loss for ``joint``).
    """
    check_tasks(tasks)
    if method not in ("fomaml", "joint"):
        raise InvalidArgumentError("method", "'fomaml' or 'joint'", method)
    _check_counts(steps=steps, inner_steps=inner_steps, support=support, query=query)
    _check_rates(lr=lr, inner_lr=inner_lr)
    smallest = min(tasks, key=len)
    if support + query > len(smallest):
        raise InvalidArgumentError(
            "support", f"support + query <= the {len(smallest)} samples of task "
            f"{smallest.name!r}", f"{support} + {query}")
    n_batch = len(tasks) if meta_batch is None else meta_batch
    if isinstance(n_batch, bool) or not isinstance(n_batch, int) or not 1 <= n_batch <= len(
            tasks):
        raise InvalidArgumentError("meta_batch", f"an integer in [1, {len(tasks)}]", meta_batch)
    params = [p for p in model.parameters() if p.requires_grad]
    fast = copy.deepcopy(model) if method == "fomaml" else None
    gen = torch.Generator().manual_seed(int(seed))

    def step_loss(_: int) -> torch.Tensor | float:
        order = torch.randperm(len(tasks), generator=gen)[:n_batch].tolist()
        episodes = [_episode(tasks[i], support, query, gen) for i in order]
        if fast is None:
            return sum(task_error(model, t) for ep in episodes for t in ep) / (2 * n_batch)
        value = 0.0
        for s, q in episodes:
            grads, lq = _fomaml_grads(model, fast, s, q, inner_steps, inner_lr)
            value += lq / n_batch
            for p, g in zip(params, grads):
                p.grad = g / n_batch if p.grad is None else p.grad + g / n_batch
        return value

    model.train()
    try:
        losses = fit_steps(params, step_loss, steps, lr, progress=progress,
                           desc=f"pretrain/{method}", log_every=max(1, steps // 20))
    finally:
        model.eval()
    return [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]
