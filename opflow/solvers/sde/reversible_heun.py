"""The reversible Heun method (Kidger et al., 2021): algebraically reversible, Stratonovich."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...errors import SolverError
from .solve_sde import SDEAlgorithm, SDESystem

__all__ = ["ReversibleHeun", "ReversibleHeunStepper"]


@dataclass(frozen=True)
class ReversibleHeun(SDEAlgorithm):
    """The reversible Heun method with step ``dt`` for Stratonovich SDEs.

    Kidger, Foster, Li and Lyons (2021), *Efficient and accurate gradients
    for neural SDEs*. Besides the solution ``z`` the method carries a second
    state ``z^`` and the drift and diffusion evaluated there,
    ``mu = f(t, z^)`` and ``sigma = g(t, z^)``; with ``z^_0 = z_0``::

        z^+    = 2 z - z^ + mu h + sigma dW
        mu+    = f(t + h, z^+),  sigma+ = g(t + h, z^+)
        z+     = z + (mu + mu+) h / 2 + (sigma + sigma+) dW / 2

    One drift and one diffusion evaluation per step (plus one of each at
    ``t0``). The step can be run backwards exactly in exact arithmetic
    (``z^ = 2 z+ - z^+ - mu+ h - sigma+ dW``, then ``z`` from ``z+``), which is
    what :class:`~opflow.solvers.sde.ReversibleAdjoint` uses for gradients
    equal to direct backprop's at ``O(1)`` memory in the steps.

    Strong order 0.5 for general noise and 1 for additive noise; converges to
    the Stratonovich solution, so Ito problems are refused unless the noise is
    additive (where both readings agree). Any noise type.

    Parameters
    ----------
    dt : float
        Step.
    adaptive, rtol, atol, dtmin, max_steps : bool, float, float, float, int
        Keyword only: adaptive steps by step doubling on one Brownian path
        (``dt`` is then the first step), as for every
        :class:`~opflow.solvers.sde.solve_sde.SDEAlgorithm`.

    Examples
    --------
    >>> import torch, opflow
    >>> w = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    >>> prob = opflow.SDEProblem(lambda t, u, p: -p * u, lambda t, u, p: 0.3 * torch.sin(u),
    ...                          torch.ones(8, 2, dtype=torch.float64), (0.0, 1.0), p=w,
    ...                          sde_type="stratonovich")
    >>> sol = opflow.solve(prob, opflow.ReversibleHeun(dt=0.05), seed=0,
    ...                    sensealg=opflow.ReversibleAdjoint())
    >>> (grad,) = torch.autograd.grad(sol.u[-1].sum(), w)  # exact for this discretisation
    >>> sol.stats.nfe  # 20 steps, one drift and one diffusion each, and both at t0
    42
    """

    reversible: ClassVar[bool] = True

    def check(self, system: SDESystem) -> None:
        if system.sde_type == "ito" and system.state_dependent_noise:
            raise SolverError("ReversibleHeun converges to the Stratonovich solution: give "
                              "sde_type='stratonovich' (or additive noise), or use "
                              "EulerMaruyama / Milstein for an Ito problem")

    def evals_per_step(self, system: SDESystem) -> int:
        return 2

    def evals_setup(self, system: SDESystem) -> int:
        return 2

    def stepper(self, system: SDESystem) -> "ReversibleHeunStepper":
        return ReversibleHeunStepper(system)


class ReversibleHeunStepper:
    """The step ``(t, t_next, h, y, dW, H) -> y_next`` of :class:`ReversibleHeun`.

    The carried state ``(z^, mu, sigma)`` of every output tensor still alive
    is kept (weakly keyed by the tensor), so that a step from an output of
    this stepper continues its state, whichever steps were tried from it
    (adaptive steps try several), and a step from any other tensor starts
    afresh (``z^ = z``). ``last`` is the full state ``(z, z^, mu, sigma)``
    after the latest step.
    """

    def __init__(self, system: SDESystem):
        self.system = system
        self.states: dict[int, tuple] = {}
        self.last: tuple[torch.Tensor, ...] | None = None

    def start(self, t, y) -> tuple[torch.Tensor, ...]:
        """The state at ``(t, y)`` for a fresh start: ``(y, y, f(t, y), g(t, y))``."""
        return (y, y, self.system.F(t, y), self.system.G(t, y))

    def advance(self, tn, h: float, state, dw) -> tuple[torch.Tensor, ...]:
        """One forward step of the carried state ``(z, z^, mu, sigma)``."""
        system = self.system
        term = system.noise_term
        z, zh, mu, sigma = state
        zh_new = torch.add(2.0 * z - zh, mu, alpha=h).add_(term(sigma, dw))
        mu_new, sigma_new = system.F(tn, zh_new), system.G(tn, zh_new)
        z_new = torch.add(z, mu + mu_new, alpha=0.5 * h).add_(term(sigma + sigma_new, dw),
                                                               alpha=0.5)
        return (z_new, zh_new, mu_new, sigma_new)

    def __call__(self, t, tn, h, y, dw, H):
        entry = self.states.get(id(y))
        if entry is not None and entry[0]() is y:
            state = (y, *entry[1:])
        else:
            state = self.start(t, y)
        new = self.advance(tn, h, state, dw)
        z = new[0]
        key = id(z)
        self.states[key] = (weakref.ref(z), *new[1:])
        weakref.finalize(z, self.states.pop, key, None)
        self.last = new
        return z
