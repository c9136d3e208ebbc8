"""ESDIRK methods: diagonally implicit Runge-Kutta stages solved by the chord iteration.

Stage ``i`` of an (explicit-first-stage) singly diagonally implicit method is
``k_i = f(t + c_i h, y + h sum_{j<i} a_ij k_j + h gamma k_i)``: a nonlinear
system per stage, solved per sample by :func:`~opflow.solvers.nonlinear.chord_solve`
with the one matrix ``I - h gamma J`` factored once per step (``J`` from the
step loop, reused after rejected steps). A stage whose iteration does not
converge rejects the step (the loop shrinks it). The step loop is
:func:`~.implicit.integrate_implicit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..linear import DenseLU
from ..nonlinear.chord import chord_solve
from .implicit import AdaptiveImplicit

__all__ = ["AdaptiveESDIRK", "ESDIRKTableau"]


@dataclass(frozen=True)
class ESDIRKTableau:
    """Coefficients of a singly diagonally implicit Runge-Kutta method.

    Parameters
    ----------
    a : tuple of tuple of float
        ``a[i]`` holds ``a_ij`` for ``j < i`` (row 0 empty).
    b, b_error : tuple of float
        Solution and error weights.
    c : tuple of float
        Stage times as fractions of the step.
    gamma : float
        The diagonal.
    order, error_order : int
        Order of the solution; of the error estimate plus one.
    explicit_first : bool
        Stage 0 is explicit (``k_0 = f(t, y)``).
    stiffly_accurate : bool
        The last stage is the solution (its slope is ``f`` at the new state).
    """

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...]
    c: tuple[float, ...]
    gamma: float
    order: int
    error_order: int
    explicit_first: bool = True
    stiffly_accurate: bool = True


@dataclass(frozen=True)
class AdaptiveESDIRK(AdaptiveImplicit):
    """An ESDIRK method given by an :class:`ESDIRKTableau` (parameters as
    :class:`~.implicit.AdaptiveImplicit`, plus the stage solves').

    Parameters
    ----------
    rtol, atol : float
        Local error tolerances (RMS norm per trajectory).
    dt0, dtmin, dtmax : float, optional
        First step, and bounds on the step.
    max_steps : int
        Most step attempts.
    dt : float, optional
        A fixed step instead of adaptive control.
    newton_tol : float
        A stage has converged when its estimated remaining error is below this
        fraction of the step's error tolerance.
    newton_max_iters : int
        Chord iterations per stage before the step is rejected.
    """

    newton_tol: float = 0.03
    newton_max_iters: int = 10
    tableau: ClassVar[ESDIRKTableau]

    @property
    def order(self) -> int:  # type: ignore[override]
        return self.tableau.order

    @property
    def error_order(self) -> int:  # type: ignore[override]
        return self.tableau.error_order

    @property
    def stages(self) -> int:  # type: ignore[override]
        return len(self.tableau.b) * 3  # about three chord iterations per stage

    def step(self, F, t, y, f0, h, J, dfdt):
        # each implicit stage by the chord iteration with I - h gamma J (AdaptiveImplicit.step)
        tab = self.tableau
        D = y.shape[1]
        hc = h[:, None]
        hg = hc * tab.gamma
        lu = DenseLU(torch.eye(D, dtype=y.dtype, device=y.device)
                     - (h * tab.gamma)[:, None, None] * J)
        scale = (self.atol + self.rtol * y.abs()).detach()

        def norm(dk):
            return torch.sqrt(torch.mean((hg.detach() * dk / scale) ** 2, dim=1))

        ks: list[torch.Tensor] = [f0] if tab.explicit_first else []
        converged = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
        for i in range(len(ks), len(tab.b)):
            base = y + hc * sum(tab.a[i][j] * ks[j] for j in range(i) if tab.a[i][j] != 0.0) \
                if i > 0 else y
            ti = t + tab.c[i] * h

            def G(k, base=base, ti=ti):
                return k - F(ti, base + hg * k)

            k, ok, _ = chord_solve(G, ks[-1] if ks else f0, lu, norm, self.newton_tol,
                                   self.newton_max_iters)
            converged = converged & ok
            ks.append(k)
        y_new = y + hc * sum(w * k for w, k in zip(tab.b, ks) if w != 0.0)
        err = hc * sum(w * k for w, k in zip(tab.b_error, ks) if w != 0.0)
        err = torch.where(converged[:, None], err, torch.full_like(err, float("inf")))
        return y_new, err, (ks[-1] if tab.stiffly_accurate else None)
