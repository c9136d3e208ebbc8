"""Problems are data: frozen dataclasses describing *what* to solve.

``remake(prob, **changes)`` returns a copy with some fields replaced (it is
:func:`dataclasses.replace`, validated again).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .errors import InvalidArgumentError
from .field import Field

__all__ = ["ODEProblem", "SplitODEProblem", "remake", "check_tspan", "check_initial_state",
           "check_arity", "state_tensors"]


def check_tspan(tspan, reversible: bool = False) -> tuple[float, float]:
    """``(t0, t1)`` as floats with ``t1 > t0``, or an error naming ``tspan``.

    Parameters
    ----------
    tspan : pair of numbers
        Start and end time: Python numbers or tensors that do not require
        grad (gradients with respect to the span are not computed, so a time
        tensor in a graph is refused rather than silently cut from it).
    reversible : bool
        Also accept ``t1 <= t0`` (ODE problems: solved backwards in time, or
        an empty span).

    Returns
    -------
    tuple of float
    """
    try:
        if any(isinstance(t, torch.Tensor) and t.requires_grad for t in tspan):
            raise InvalidArgumentError(
                "tspan", "times that do not require grad (gradients with respect to the "
                "span are not supported: pass float(t) or t.detach())", tspan)
        t0, t1 = (float(t) for t in tspan)
    except (TypeError, ValueError):
        raise InvalidArgumentError("tspan", "a pair (t0, t1) of numbers", tspan) from None
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise InvalidArgumentError("tspan", "finite times", tspan)
    if not (t1 > t0 or reversible):
        raise InvalidArgumentError("tspan", "t1 > t0 (times in increasing order)", tspan)
    return t0, t1


def check_initial_state(u0) -> list[torch.Tensor]:
    """The tensors of a state (tensor, Field or tuple of tensors), checked to be
    non-empty, floating point and finite; errors name ``u0``.

    Parameters
    ----------
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        An initial state.

    Returns
    -------
    list of torch.Tensor
    """
    tensors = state_tensors(u0)
    for u in tensors:
        if u.numel() == 0:
            raise InvalidArgumentError("u0", "a non-empty state (no zero-size dimension)", u)
        if not u.is_floating_point():
            raise InvalidArgumentError("u0", "a floating-point state", u)
        if not bool(torch.isfinite(u.detach()).all()):
            raise InvalidArgumentError("u0", "finite values (no NaN or Inf)", u)
    return tensors


def check_arity(f, p, argument: str, args: tuple[str, ...] = ("t", "u")) -> None:
    """``f`` must accept ``(*args, p)`` when ``p`` is given and ``(*args)`` when it is None.

    Parameters
    ----------
    f : callable
        The right-hand side (an ``nn.Module`` is inspected through ``forward``).
    p : object or None
        The problem's parameters.
    argument : str
        Name of ``f`` in error messages (``"f"``, ``"drift"``, ...).
    args : tuple of str
        Names of the arguments before ``p`` (``("t", "u")`` for differential
        equations, ``("u",)`` for nonlinear problems).

    Raises
    ------
    InvalidArgumentError
        Naming ``p`` when ``f`` takes no ``p`` and ``p`` is given, and naming
        ``f`` when it needs ``p`` and none is given. Callables whose
        signature cannot be read pass unchecked.
    """
    try:
        signature = inspect.signature(f.forward if isinstance(f, nn.Module) else f)
    except (TypeError, ValueError):  # builtins and C callables
        return
    n = len(args) + (0 if p is None else 1)
    call = ", ".join(args)
    try:
        signature.bind(*range(n))
    except TypeError:
        if p is not None:
            raise InvalidArgumentError(
                "p", f"None for {argument}({call}) that takes no p (or define "
                f"{argument}({call}, p))", p) from None
        raise InvalidArgumentError(argument, f"a callable {argument}({call}) when p is None "
                                   "(or pass p=...)", f) from None


def state_tensors(u0) -> list[torch.Tensor]:
    """The tensors of a state: ``[u0.values]`` for a Field, ``[u0]`` or the tuple's items.

    Parameters
    ----------
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        A state.

    Returns
    -------
    list of torch.Tensor
    """
    if isinstance(u0, Field):
        return [u0.values]
    if isinstance(u0, torch.Tensor):
        return [u0]
    if isinstance(u0, (tuple, list)) and u0 and all(isinstance(u, torch.Tensor) for u in u0):
        return list(u0)
    raise InvalidArgumentError("u0", "a torch.Tensor, an opflow.Field or a tuple of tensors", u0)


@dataclass(frozen=True)
class ODEProblem:
    """The initial value problem ``du/dt = f(t, u[, p])``, ``u(t0) = u0``.

    Parameters
    ----------
    f : callable
        Right-hand side ``f(t, u)``, or ``f(t, u, p)`` when ``p`` is given.
        It returns something of the same structure and shape as ``u``. It
        may be an ``nn.Module`` (a neural ODE / universal differential
        equation): its parameters receive gradients through ``solve``.
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        Initial state. Floating point, finite, not empty. ``f`` must return
        the same dtype (checked at its first evaluation).
    tspan : (float, float)
        ``(t0, t1)``; ``t1 < t0`` is solved backwards in time (every method,
        adjoints included), ``t1 == t0`` returns ``u0``.
    p : optional
        Parameters passed as third argument to ``f`` (tensors in it may
        require grad).
    batched : bool
        If True, the leading dimension of ``u0`` (all batch dims for a Field)
        indexes independent trajectories: adaptive solvers then choose the
        step size of each trajectory separately, and ``t`` reaches ``f`` as a
        tensor of shape ``(B, 1, ..., 1)`` broadcastable against the state.
        If False, ``t`` is a 0-dim tensor.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> sol = opflow.solve(prob, opflow.Tsit5(rtol=1e-8, atol=1e-10))
    >>> round(float(sol.u[-1, 0]), 6)  # exp(-1)
    0.367879
    """

    f: Callable[..., Any]
    u0: Any
    tspan: tuple[float, float]
    p: Any = None
    batched: bool = False

    def __post_init__(self):
        if not callable(self.f):
            raise InvalidArgumentError("f", "a callable f(t, u) or f(t, u, p)", self.f)
        check_arity(self.f, self.p, "f")
        object.__setattr__(self, "tspan", check_tspan(self.tspan, reversible=True))
        _check_batched_state(self.u0, self.batched)


def _check_batched_state(u0, batched: bool) -> None:
    tensors = check_initial_state(u0)
    if batched:
        sizes = {u.shape[0] if u.ndim else None for u in tensors}
        if isinstance(u0, Field):
            sizes = {1} if u0.batch_shape else {None}
        if None in sizes or len(sizes) != 1:
            raise InvalidArgumentError(
                "u0", "a leading batch dimension shared by every tensor (batched=True)",
                [tuple(u.shape) for u in tensors],
            )


@dataclass(frozen=True)
class SplitODEProblem:
    """``du/dt = f_stiff(t, u[, p]) + f_nonstiff(t, u[, p])`` for IMEX methods.

    An implicit-explicit method (:class:`~opflow.solvers.ode.KenCarp4`) treats
    ``f_stiff`` implicitly (diffusion, fast reactions: only its Jacobian is
    formed) and ``f_nonstiff`` explicitly (advection, slow reactions); every
    other ODE method solves the sum ``f``.

    Parameters
    ----------
    f_stiff, f_nonstiff : callable or nn.Module
        Each like :class:`ODEProblem`'s ``f``, returning the structure of ``u``.
    u0, tspan, p, batched
        As for :class:`ODEProblem`.
    """

    f_stiff: Callable[..., Any]
    f_nonstiff: Callable[..., Any]
    u0: Any
    tspan: tuple[float, float]
    p: Any = None
    batched: bool = False

    def __post_init__(self):
        for name in ("f_stiff", "f_nonstiff"):
            fn = getattr(self, name)
            if not callable(fn):
                raise InvalidArgumentError(name, f"a callable {name}(t, u) or {name}(t, u, p)",
                                           fn)
            check_arity(fn, self.p, name)
        object.__setattr__(self, "tspan", check_tspan(self.tspan, reversible=True))
        _check_batched_state(self.u0, self.batched)

    @property
    def f(self) -> Callable[..., Any]:
        """The whole right-hand side ``f_stiff + f_nonstiff``."""
        return _SumOfParts(self.f_stiff, self.f_nonstiff, self.p)


class _SumOfParts:
    """``f = f_stiff + f_nonstiff`` on any state structure (tensor, Field, tuple)."""

    def __init__(self, stiff, nonstiff, p):
        self.stiff, self.nonstiff, self.with_p = stiff, nonstiff, p is not None

    def __call__(self, t, u, p=None):
        args = (t, u, p) if self.with_p else (t, u)
        a, b = self.stiff(*args), self.nonstiff(*args)
        if isinstance(a, tuple):
            return tuple(x + y for x, y in zip(a, b))
        return a + b


def remake(prob, **changes):
    """Copy of ``prob`` with ``changes`` applied (validated like a new problem).

    Parameters
    ----------
    prob : problem dataclass
        Any opflow problem (:class:`ODEProblem`, :class:`SDEProblem`, ...).
    **changes
        New values of the problem's fields, by name.

    Returns
    -------
    problem
        A new problem of the same type; ``prob`` is unchanged.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2), tspan=(0.0, 1.0))
    >>> opflow.remake(prob, tspan=(0.0, 2.0)).tspan
    (0.0, 2.0)
    """
    if not dataclasses.is_dataclass(prob):
        raise InvalidArgumentError("prob", "an opflow problem", prob)
    names = {f.name for f in dataclasses.fields(prob)}
    for key in changes:
        if key not in names:
            raise InvalidArgumentError(key, f"one of the fields {sorted(names)}", key)
    return dataclasses.replace(prob, **changes)
