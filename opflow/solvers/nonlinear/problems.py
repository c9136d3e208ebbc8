"""Nonlinear problems: roots of ``f(u, p) = 0`` and minimisers of ``||r(u, p)||^2``.

Problems are frozen dataclasses like :class:`~opflow.ODEProblem`
(``opflow.remake`` works), solved through :func:`opflow.solve` with
:class:`NewtonRaphson`, :class:`NewtonKrylov` (roots) or :class:`GaussNewton`,
:class:`LevenbergMarquardt` (least squares).

States are a tensor, a Field or a tuple of tensors. With ``batched=True`` the
leading dimension (a Field's batch dimensions) indexes independent problems:
each sample converges on its own, in one call, and ``f`` must not mix
samples (``f``'s output for sample ``i`` may depend on ``u[i]`` only: the
per-sample Jacobians are read off one batched derivative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...errors import InvalidArgumentError
from ...problems import check_arity, check_initial_state

__all__ = ["NonlinearLeastSquaresProblem", "NonlinearProblem"]


def _check(fn, name: str, u0, p, batched, jac) -> None:
    if not callable(fn):
        raise InvalidArgumentError(name, f"a callable {name}(u) or {name}(u, p)", fn)
    check_initial_state(u0)
    check_arity(fn, p, name, args=("u",))
    if not isinstance(batched, bool):
        raise InvalidArgumentError("batched", "True or False", batched)
    if jac is not None:
        if not callable(jac):
            raise InvalidArgumentError("jac", "a callable jac(u) or jac(u, p)", jac)
        check_arity(jac, p, "jac", args=("u",))


@dataclass(frozen=True)
class NonlinearProblem:
    """Find ``u`` with ``f(u, p) = 0``.

    Parameters
    ----------
    f : callable or nn.Module
        ``f(u)`` (``p`` None) or ``f(u, p)``: a residual shaped like ``u``.
        Its parameters and the tensors of ``p`` that require grad receive
        gradients through :func:`opflow.solve` (``sensealg``).
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        Initial guess, floating point and finite.
    p : any, optional
        Parameters handed to ``f``.
    batched : bool
        The leading dimension of ``u0`` (a Field's batch dimensions) holds
        independent problems, each solved to its own tolerance.
    jac : callable, optional
        ``jac(u)`` or ``jac(u, p)``: the Jacobian of the flattened residuals
        with respect to the flattened state, ``(B, M, D)`` per sample when
        ``batched`` (``(M, D)`` otherwise). Default: forward-mode (or
        reverse-mode) autograd. Give it when the structure makes it cheaper,
        e.g. a residual of a linear combination whose columns are known.
        The matrix-free :class:`NewtonKrylov` forms no Jacobian and does not
        call it.
    """

    f: Callable
    u0: Any
    p: Any = None
    batched: bool = False
    jac: Optional[Callable] = None

    def __post_init__(self):
        _check(self.f, "f", self.u0, self.p, self.batched, self.jac)


@dataclass(frozen=True)
class NonlinearLeastSquaresProblem:
    """Find ``u`` minimising ``1/2 ||r(u, p)||^2``.

    Parameters
    ----------
    r : callable or nn.Module
        ``r(u)`` or ``r(u, p)``: residuals of any shape (with the leading
        batch dimension of ``u`` when ``batched``); at least as many
        residuals as unknowns are usual but not required.
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        Initial guess.
    p : any, optional
    batched : bool
        As for :class:`NonlinearProblem`.
    jac : callable, optional
        As for :class:`NonlinearProblem`: ``(B, M, D)`` for ``M`` residuals.
    """

    r: Callable
    u0: Any
    p: Any = None
    batched: bool = False
    jac: Optional[Callable] = None

    def __post_init__(self):
        _check(self.r, "r", self.u0, self.p, self.batched, self.jac)
