"""Flattening of ODE states (tensor, Field, tuple of tensors) to ``(B, D)``.

The integrators work on one tensor ``y`` of shape ``(B, D)``: ``B``
trajectories with ``D`` unknowns each (``B = 1`` for an unbatched problem).
:class:`StateLayout` converts the user's state to that form and back, and
wraps the user's right-hand side so the integrators never see the structure.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch

from ...errors import InvalidArgumentError, ShapeError
from ...field import Field

__all__ = ["StateLayout", "DirectState", "check_rhs_dtype"]


def check_rhs_dtype(out: torch.Tensor, dtype: torch.dtype, argument: str) -> None:
    """Refuse a right-hand side value whose dtype is not the state's.

    Checked at every evaluation, so the first one fails: torch would either
    stop deep inside a stage sum (float32 weights against a float64 state) or,
    worse, promote silently and integrate in a precision nobody chose.
    """
    if out.dtype != dtype:
        raise InvalidArgumentError(
            argument, f"a function returning the dtype of u0, {dtype} (convert its output "
            "or u0)", out)


class StateLayout:
    """How a user state maps to and from a flat ``(B, D)`` tensor."""

    def __init__(self, u0: Any, batched: bool):
        self.kind = "field" if isinstance(u0, Field) else (
            "tensor" if isinstance(u0, torch.Tensor) else "tuple")
        self.template = u0
        tensors = self._tensors(u0)
        self.batched = batched
        if batched:
            lead = len(u0.batch_shape) if self.kind == "field" else 1
        else:
            lead = 0
        self.lead = lead
        self.batch_shape = tuple(tensors[0].shape[:lead])
        self.B = math.prod(self.batch_shape)
        self.shapes = [tuple(t.shape[lead:]) for t in tensors]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.D = sum(self.sizes)
        self.dtype, self.device = tensors[0].dtype, tensors[0].device
        # the integrators' (B, D) state: one dtype, the promotion of those of u0
        self.state_dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])

    def _tensors(self, u) -> list[torch.Tensor]:
        if self.kind == "field":
            return [u.values]
        if self.kind == "tensor":
            return [u]
        return list(u)

    def flatten(self, u: Any, name: str = "u", rhs: str | None = None) -> torch.Tensor:
        """User state -> ``(B, D)``.

        ``rhs``: the name of the function that returned ``u``; its tensors must then
        also have the dtype of the flat state (see :func:`check_rhs_dtype`).
        """
        tensors = self._tensors(u) if self.kind != "tuple" or isinstance(u, (tuple, list)) else [u]
        if len(tensors) != len(self.shapes):
            raise ShapeError(name, f"{len(self.shapes)} tensors like u0", u)
        flat = []
        for t, shape in zip(tensors, self.shapes):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != self.batch_shape + shape:
                raise ShapeError(name, f"shape {self.batch_shape + shape} (like u0)", t)
            if rhs is not None:
                check_rhs_dtype(t, self.state_dtype, rhs)
            flat.append(t.reshape(self.B, -1))
        return flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)

    def unflatten(self, y: torch.Tensor) -> Any:
        """``(..., B, D)`` -> user state with the leading ``...`` dims kept."""
        lead = tuple(y.shape[:-2])
        parts = [y] if len(self.sizes) == 1 else torch.split(y, self.sizes, dim=-1)
        tensors = [p.reshape((*lead, *self.batch_shape, *s)) for p, s in zip(parts, self.shapes)]
        if self.kind == "field":
            return self.template.with_values(tensors[0])
        if self.kind == "tensor":
            return tensors[0]
        return tuple(tensors)

    def time_for_user(self, t: torch.Tensor) -> torch.Tensor:
        """Per-trajectory times ``(B,)`` in the shape handed to ``f``."""
        if not self.batched:
            return t.reshape(())
        ndim = len(self.batch_shape) + len(self.shapes[0])
        if self.kind == "field":
            return t.reshape((*self.batch_shape, *([1] * len(self.shapes[0]))))
        return t.reshape(self.B, *([1] * (ndim - 1)))

    def wrap(self, f: Callable, p: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``F(t (B,), y (B, D)) -> (B, D)`` calling the user's ``f``."""
        with_p = p is not None

        def rhs(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            u = self.unflatten(y)
            tu = self.time_for_user(t)
            out = f(tu, u, p) if with_p else f(tu, u)
            return self.flatten(out, name="f(t, u)", rhs="f")

        return rhs


class DirectState:
    """An unbatched tensor or Field state handed to the integrator as is.

    The shared-step integrator works on tensors of any shape, so a plain
    tensor (or a Field's values) needs no flattening: ``f`` sees exactly the
    tensor the integrator holds. Tuples go through :class:`StateLayout`.
    """

    def __init__(self, u0: Any):
        self.template = u0
        self.is_field = isinstance(u0, Field)
        self.y0 = u0.values if self.is_field else u0
        self.shape = tuple(self.y0.shape)

    @staticmethod
    def supports(u0: Any, batched: bool) -> bool:
        return not batched and isinstance(u0, (torch.Tensor, Field))

    def to_user(self, ys: torch.Tensor) -> Any:
        """``(..., *shape)`` -> tensor or Field with the leading dims kept."""
        return self.template.with_values(ys) if self.is_field else ys

    def wrap(self, f: Callable, p: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``F(t (0-dim), y) -> dy/dt`` calling the user's ``f`` on the user's type."""
        with_p, shape, template = p is not None, self.shape, self.template

        def rhs(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            u = template.with_values(y) if self.is_field else y
            out = f(t, u, p) if with_p else f(t, u)
            out = out.values if isinstance(out, Field) else out
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
                raise ShapeError("f(t, u)", f"a tensor of shape {shape} (like u0)", out)
            check_rhs_dtype(out, y.dtype, "f")
            return out

        return rhs
