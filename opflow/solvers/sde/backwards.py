"""SDE solves backwards in time and over an empty span.

A span ``(t0, t1)`` with ``t1 < t0`` is solved as the forward problem in
``s = -t``: with ``B(s) = W(-s)``, itself a Brownian motion,
``du = -f(-s, u) ds + g(-s, u) dB(s)`` from ``s = -t0`` to ``-t1``. A step
from ``t`` to ``t - h`` thus takes the increment ``W(t - h) - W(t)`` of the
same path ``W`` (as torchsde does with decreasing times), and every method,
adaptive steps and adjoint serve unchanged. A user's
:class:`~opflow.solvers.sde.BrownianInterval` on ``[t1, t0]`` is read
through :class:`ReversedBrownian`. A span with ``t1 == t0`` returns the
initial state without a step.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ...problems import remake
from ...solution import Solution
from .._time_reversal import empty_span_solution, reversed_rhs, reversed_saveat
from ..ode.sensitivity import collect_parameters
from .brownian import BrownianInterval

__all__ = ["ReversedBrownian", "solve_backwards"]


class ReversedBrownian:
    """``B(s) = W(-s)`` for a :class:`BrownianInterval` ``W`` on ``[a, b]``: a path on ``[-b, -a]``.

    Increments are those of ``W`` with the sign and order reversed; the
    space-time Levy area of an interval is that of its mirror image (the
    Brownian bridge is symmetric in time).

    Parameters
    ----------
    inner : BrownianInterval
    """

    def __init__(self, inner: BrownianInterval):
        self.inner = inner
        self.t0, self.t1, self.shape = -inner.t1, -inner.t0, inner.shape

    def on_grid(self, ts, levy_area: bool = False):
        """Increments (and Levy areas) between consecutive times ``ts`` (increasing) of ``B``.

        Parameters
        ----------
        ts : sequence of float or 1-D tensor
        levy_area : bool

        Returns
        -------
        dW : torch.Tensor, shape (N, *shape)
        H : torch.Tensor, shape (N, *shape), only with ``levy_area=True``
        """
        ts = [float(t) for t in (ts.tolist() if isinstance(ts, torch.Tensor) else ts)]
        out = self.inner.on_grid([-t for t in reversed(ts)], levy_area=levy_area)
        if not levy_area:
            return -out.flip(0)
        dw, H = out
        return -dw.flip(0), H.flip(0)


def solve_backwards(solver: Callable, prob, alg, saveat=None, brownian=None, sensealg=None,
                    **kwargs) -> Solution | None:
    """Solve ``prob`` with ``solver`` when its span is reversed or empty, else None.

    Parameters
    ----------
    solver : callable
        The registered solve function (called on the problem in ``s = -t``).
    prob : SDEProblem
    alg : SDEAlgorithm
    saveat : float, sequence of float or torch.Tensor, optional
        Save interval, or save times from ``t0`` down to ``t1``.
    brownian : BrownianInterval, optional
        A path covering ``[t1, t0]``.
    sensealg : optional
        An adjoint without ``params`` gets those of the original drift and
        diffusion.
    **kwargs
        Passed to ``solver``.

    Returns
    -------
    Solution or None
        None when the span runs forward (the caller solves it).
    """
    t0, t1 = prob.tspan
    if t1 > t0:
        return None
    if t1 == t0:
        return empty_span_solution(prob, alg)
    f, g = prob.drift, prob.diffusion

    drift = reversed_rhs(f)

    def diffusion(t, u, *args):
        return g(-t, u, *args)

    if getattr(sensealg, "params", False) is None:  # an adjoint: find them on the user's f, g
        sensealg = dataclasses.replace(sensealg, params=collect_parameters((f, g), prob.p))
    flipped = remake(prob, drift=drift, diffusion=diffusion, tspan=(-t0, -t1))
    if isinstance(brownian, BrownianInterval):
        brownian = ReversedBrownian(brownian)
    sol = solver(flipped, alg, saveat=reversed_saveat(saveat), brownian=brownian,
                 sensealg=sensealg, **kwargs)
    return Solution(t=-sol.t, u=sol.u, retcode=sol.retcode, stats=sol.stats, problem=prob,
                    alg=alg)
