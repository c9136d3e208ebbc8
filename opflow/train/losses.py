"""Training losses on Fields: relative L2 and H1 errors, averaged over the batch.

A loss is a callable ``loss(pred, true) -> scalar tensor`` taking two Fields of
shape ``(*batch, channels, *grid.shape)`` on the same Grid. The built-in ones
wrap :func:`opflow.norms.rel_l2` and :func:`opflow.norms.rel_h1` (grid
quadrature, channels combined) and take the mean over all batch entries, the
loss of the FNO and DeepONet papers. :func:`resolve_loss` turns the
``loss=`` argument of :class:`~opflow.train.Trainer` into such a callable.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from .. import norms
from ..errors import InvalidArgumentError, ShapeError
from ..field import Field

__all__ = ["LOSSES", "LossFn", "rel_h1", "rel_l2", "resolve_loss", "takes_input"]

LossFn = Callable[[Field, Field], torch.Tensor]


def _check_pair(pred: Field, true: Field) -> None:
    if not isinstance(pred, Field):
        raise InvalidArgumentError("pred", "an opflow.Field (the model output)", pred)
    if not isinstance(true, Field):
        raise InvalidArgumentError("true", "an opflow.Field (the target)", true)
    if pred.shape != true.shape:
        raise ShapeError("pred", f"shape {tuple(true.shape)} (that of the target)", pred.values)


def rel_l2(pred: Field, true: Field, eps: float = 1e-12) -> torch.Tensor:
    """Mean over the batch of ``||pred - true||_L2 / ||true||_L2``.

    Parameters
    ----------
    pred, true : Field, shape (*batch, channels, *grid.shape)
        Prediction and target on the same Grid.
    eps : float
        Added to the norm of ``true`` (an all-zero target does not divide by 0).

    Returns
    -------
    torch.Tensor, shape ()
        Differentiable with respect to ``pred``.
    """
    _check_pair(pred, true)
    return norms.rel_l2(pred, true, reduction="mean", eps=eps)


def rel_h1(pred: Field, true: Field, eps: float = 1e-12) -> torch.Tensor:
    """Mean over the batch of ``||pred - true||_H1 / ||true||_H1``.

    The H1 norm adds the L2 norm of the gradient (derivatives from
    :mod:`opflow.calculus`: spectral on periodic axes, finite differences
    otherwise), so this loss also penalises wrong derivatives.

    Parameters
    ----------
    pred, true : Field, shape (*batch, channels, *grid.shape)
    eps : float

    Returns
    -------
    torch.Tensor, shape ()
    """
    _check_pair(pred, true)
    return norms.rel_h1(pred, true, reduction="mean", eps=eps)


LOSSES: dict[str, LossFn] = {"rel_l2": rel_l2, "rel_h1": rel_h1}


def takes_input(loss: Callable) -> bool:
    """Whether ``loss`` takes the input Field too: ``loss(pred, true, a)``.

    True when it has at least three positional parameters without defaults
    (a physics loss needs the input's initial and boundary data, e.g.
    :meth:`opflow.constraints.HardConstraint.residual_loss`); the built-in
    losses take ``(pred, true)``.

    Parameters
    ----------
    loss : callable
        A loss.

    Returns
    -------
    bool
    """
    try:
        sig = inspect.signature(loss)
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [q for q in sig.parameters.values()
                if q.kind in kinds and q.default is inspect.Parameter.empty]
    return len(required) >= 3


def resolve_loss(loss: str | LossFn) -> LossFn:
    """The loss callable for ``loss``.

    Parameters
    ----------
    loss : {"rel_l2", "rel_h1"} or callable
        A name from :data:`LOSSES`, or a callable ``(pred: Field, true: Field)
        -> scalar tensor``, returned as is.

    Returns
    -------
    callable

    Raises
    ------
    opflow.errors.InvalidArgumentError
        Unknown name, or neither a string nor a callable.
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise InvalidArgumentError(
                "loss", f"one of {sorted(LOSSES)} or a callable (pred, true) -> scalar tensor",
                loss)
        return LOSSES[loss]
    if callable(loss):
        return loss
    raise InvalidArgumentError(
        "loss", f"one of {sorted(LOSSES)} or a callable (pred, true) -> scalar tensor", loss)
