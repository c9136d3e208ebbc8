"""The one optimisation loop core: every training loop in opflow steps through it.

Two pieces, used by the :class:`~opflow.train.Trainer` (epochs over a data
loader), multi-task transfer (:func:`opflow.train.fit_steps` callers in
:mod:`opflow.operators.transfer`), LeMON pretraining and fine-tuning
(:mod:`opflow.meta`):

* :class:`OptimizerStep` does one update: zero the gradients, backpropagate
  the loss (through an AMP grad scaler when given), clip, step the
  optimiser and the per-step scheduler.
* :func:`fit_steps` is the step-counted loop (Adam, cosine decay to zero,
  a divergence guard, progress through :class:`opflow.progress.Progress`: a
  bar on a terminal, log lines elsewhere) for the loops that count steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import InvalidArgumentError, OpflowError
from ..progress import Progress, progress_mode

__all__ = ["OptimizerStep", "TrainingDivergedError", "fit_steps", "minibatches",
           "show_progress"]


class TrainingDivergedError(OpflowError, RuntimeError):
    """The training loss became NaN or infinite.

    Parameters
    ----------
    epoch, batch : int
        Where it happened (both counted from 1; a step-counted loop reports
        epoch 1 and the step as the batch); also attributes.
    batches : int
        Batches per epoch (for the message).
    value : float
        The non-finite loss; also an attribute.
    lr : float or None
        The learning rate (for the advice in the message).
    grad_clip : float or None
        The gradient clipping in force (for the advice in the message).
    saved : str
        Where the last good weights are (appended to the message).
    """

    def __init__(self, epoch: int, batch: int, batches: int, value: float, lr: float | None,
                 grad_clip: float | None, saved: str = "The weights of the last finished "
                 "epoch are in last.pt."):
        self.epoch, self.batch, self.value = epoch, batch, value
        clip = ("enable gradient clipping (grad_clip=1.0)" if grad_clip is None
                else f"clip gradients harder (grad_clip is {grad_clip:g})")
        lr_text = "" if lr is None else f" (it is {lr:.3g})"
        super().__init__(
            f"training diverged: the loss is {value} at epoch {epoch}, batch {batch} of "
            f"{batches}. Lower the learning rate{lr_text} or {clip}, and check the data for "
            f"NaN/Inf values. {saved}".rstrip())


def show_progress(progress: bool | str) -> bool:
    """Whether a progress bar is drawn: ``"always"``, or ``True`` on a terminal (elsewhere
    ``True`` prints log lines instead; see :func:`opflow.progress.progress_mode`).

    Parameters
    ----------
    progress : bool or "always"
        The ``progress`` argument.

    Returns
    -------
    bool
    """
    return progress_mode(progress) == "bar"


class OptimizerStep:
    """One optimisation update of ``params`` from a loss.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    params : iterable of nn.Parameter
        What ``grad_clip`` clips (the optimiser's parameters).
    scheduler : optional
        Stepped after every update (a ``ReduceLROnPlateau`` is not: it
        steps on validation metrics, by its owner).
    grad_clip : float, optional
        Largest gradient norm.
    scaler : torch.amp.GradScaler, optional
        Mixed-precision loss scaling.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter],
                 scheduler=None, grad_clip: float | None = None, scaler=None):
        self.optimizer, self.params = optimizer, list(params)
        self.scheduler, self.grad_clip, self.scaler = scheduler, grad_clip, scaler

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self, loss: torch.Tensor | None) -> None:
        """Update from ``loss`` (None: the gradients are already in ``.grad``).

        Gradients are zeroed first only when a loss is given: a caller
        passing None set them itself after :meth:`zero_grad`.
        """
        if loss is not None:
            self.zero_grad()
        if self.scaler is not None:
            if loss is not None:
                self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if loss is not None:
                loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.optimizer.step()
        if self.scheduler is not None and not isinstance(
                self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()


def minibatches(n: int, size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless minibatch indices: ``min(size, n)`` samples without replacement, a new
    permutation of ``range(n)`` every pass over the data."""
    size = min(size, n)
    order, pos = torch.randperm(n, generator=generator), 0
    while True:
        if pos + size > n:
            order, pos = torch.randperm(n, generator=generator), 0
        yield order[pos:pos + size]
        pos += size


def _check(steps: int, lr: float, params: Sequence[nn.Parameter], allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < low:
        raise InvalidArgumentError("steps", "a non-negative integer" if allow_zero
                                   else "a positive integer", steps)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
            math.isfinite(lr) and lr > 0):
        raise InvalidArgumentError("lr", "a positive learning rate", lr)
    if not params:
        raise InvalidArgumentError("model", "at least one trainable parameter", params)


def fit_steps(params: Iterable[nn.Parameter], step_loss: Callable[[int], torch.Tensor | float],
              steps: int, lr: float, *, schedule: str | None = "cosine",
              progress: bool | str = False, desc: str = "train", log_every: int = 0,
              allow_zero: bool = False) -> list[float]:
    """Take ``steps`` Adam steps on ``params``; the loss of each step from ``step_loss``.

    Parameters
    ----------
    params : iterable of nn.Parameter
        The trainable parameters (at least one).
    step_loss : callable ``(step) -> torch.Tensor or float``
        Called once per step (``step`` counts from 0) after the gradients
        were zeroed. A scalar tensor is backpropagated here; a float means
        ``step_loss`` put the gradients into ``.grad`` itself (first-order
        MAML) and only reports its loss.
    steps : int
        Number of optimiser steps.
    lr : float
        Adam learning rate (decayed to 0 over ``steps`` with ``"cosine"``).
    schedule : {"cosine", None}
    progress : bool or "always"
        A bar over the steps on a terminal; elsewhere lines on stderr (step,
        loss, elapsed time) at most every few seconds (``"always"``: a bar
        anywhere; False: nothing). See :class:`opflow.progress.Progress`.
    desc : str
        Label of the bar and the log lines.
    log_every : int
        When lines are printed, one every ``log_every`` steps instead of one
        every few seconds (0).
    allow_zero : bool
        Accept ``steps=0`` (returns an empty history).

    Returns
    -------
    list of float
        The loss of every step.

    Raises
    ------
    TrainingDivergedError
        A step's loss is NaN or infinite (the parameters keep the values of
        the step before).
    """
    params = [p for p in params if p.requires_grad]
    _check(steps, lr, params, allow_zero)
    if schedule not in ("cosine", None):
        raise InvalidArgumentError("schedule", "'cosine' or None", schedule)
    optimizer = torch.optim.Adam(params, lr=lr)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
                 if schedule == "cosine" and steps > 0 else None)
    update = OptimizerStep(optimizer, params, scheduler)
    history: list[float] = []
    with Progress(steps, desc, progress, unit="step", every=max(0, log_every),
                  leave=False) as bar:
        for step in range(steps):
            update.zero_grad()
            loss = step_loss(step)
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            if not math.isfinite(value):
                raise TrainingDivergedError(1, step + 1, steps, value,
                                            optimizer.param_groups[0]["lr"], None, saved="")
            update(loss if isinstance(loss, torch.Tensor) else None)
            history.append(value)
            bar.update(1, loss=value)
    return history
