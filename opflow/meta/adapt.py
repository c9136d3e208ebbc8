"""Few-shot adaptation of a pretrained operator to a new PDE family.

Three ways to use ``K`` samples of the new family, all with the same number
of full-batch Adam steps on the support set, so that they are compared at
equal cost:

* ``"lora"``: train only low-rank adapters (:func:`opflow.operators.lora.add_lora`)
  on the pretrained weights, which stay frozen;
* ``"full"``: train every weight, starting from the pretrained ones;
* ``"scratch"``: train a freshly initialised model of the same architecture
  (the baseline that shows what pretraining is worth).

The adapted model is a copy; the pretrained one is left untouched.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..operators.lora import add_lora
from ..train.loop import fit_steps
from .maml import Task, check_tasks, task_error

__all__ = ["MODES", "check_compatible", "evaluate", "finetune", "trainable_parameters"]

MODES = ("lora", "full", "scratch")
_DEFAULT_LR = {"lora": 1e-2, "full": 1e-3, "scratch": 1e-3}


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters with ``requires_grad``.

    Parameters
    ----------
    model : torch.nn.Module
        Any model.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """A newly initialised model of the same architecture (from ``model.config``)."""
    from ..operators import build_operator

    config = getattr(model, "config", None)
    if config is None:
        raise InvalidArgumentError("model", "an opflow operator with a config (for 'scratch')",
                                   type(model).__name__)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build_operator(config)


def finetune(
    model: nn.Module,
    support: Task,
    *,
    mode: str = "lora",
    steps: int = 200,
    lr: float | None = None,
    rank: int = 4,
    targets: Sequence[str] | None = None,
    seed: int = 0,
    like: Task | None = None,
    progress: bool | str = False,
) -> tuple[nn.Module, dict]:
    """Adapt a copy of ``model`` to the samples of ``support``.

    Parameters
    ----------
    model : nn.Module
        The pretrained operator (not modified).
    support : Task
        The ``K`` samples to fit (full batch).
    mode : {"lora", "full", "scratch"}
        What is trained (see the module notes).
    steps : int
        Adam steps (the same budget for every mode).
    lr : float, optional
        Adam learning rate (default 1e-2 for ``lora``, 1e-3 otherwise).
    rank : int
        LoRA rank (``lora`` only).
    targets : sequence of str, optional
        Layers to adapt (``lora`` only; default every linear and 1x1-conv layer).
    seed : int
        Seed of the adapters' or the fresh model's initialisation.
    like : Task, optional
        A task the model was pretrained on: ``support`` must have its grid
        and variables (a clear error otherwise, before any training).
    progress : bool or "always"
        Progress bar over steps (on a terminal).

    Returns
    -------
    model : nn.Module
        The adapted copy (in eval mode; LoRA adapters left unmerged).
    info : dict
        ``{"mode", "steps", "trainable", "losses"}``: trainable parameter
        count and the support loss after each step.
    """
    if not isinstance(support, Task):
        raise InvalidArgumentError("support", "a Task", support)
    if like is not None:
        check_compatible([like], support)
    if mode not in MODES:
        raise InvalidArgumentError("mode", f"one of {list(MODES)}", mode)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidArgumentError("steps", "a non-negative integer", steps)
    lr = _DEFAULT_LR[mode] if lr is None else lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr)
                                                                         and lr > 0):
        raise InvalidArgumentError("lr", "a positive learning rate", lr)
    if mode == "scratch":
        adapted = _fresh_copy(model, seed)
    else:
        adapted = copy.deepcopy(model)
        for p in adapted.parameters():
            p.requires_grad_(True)
        if mode == "lora":
            add_lora(adapted, rank, targets, seed=seed)
    adapted.train()
    try:
        losses = fit_steps(adapted.parameters(), lambda _: task_error(adapted, support), steps,
                           lr, schedule=None, progress=progress, desc=f"finetune/{mode}",
                           log_every=max(1, steps // 20), allow_zero=True)
    finally:
        adapted.eval()
    return adapted, {"mode": mode, "steps": steps, "trainable": trainable_parameters(adapted),
                     "losses": losses}


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, batch_size: int = 256) -> float:
    """Mean relative L2 error of ``model`` over the samples of ``task``.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``task.inputs`` to outputs shaped like ``task.outputs``.
    task : Task
        The samples.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    float
    """
    if not isinstance(task, Task) or len(task) == 0:
        raise InvalidArgumentError("task", "a Task with at least one sample", task)
    total = 0.0
    for s in range(0, len(task), batch_size):
        part = task.subset(torch.arange(s, min(s + batch_size, len(task))))
        total += float(task_error(model, part)) * len(part)
    return total / len(task)


def check_compatible(pretrained: Sequence[Task], new: Task) -> None:
    """Raise unless ``new`` has the grid and variables of the ``pretrained`` tasks."""
    check_tasks([*pretrained, new], argument="task")
