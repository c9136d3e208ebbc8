"""Milstein's method: strong order 1 for diagonal and scalar noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ...errors import InvalidArgumentError, SolverError
from .solve_sde import SDEAlgorithm, SDESystem, Step, diffusion_derivative

__all__ = ["Milstein"]


@dataclass(frozen=True)
class Milstein(SDEAlgorithm):
    """Milstein's method with step ``dt`` (strong order 1, weak order 1).

    Ito: ``u+ = u + f h + g dW + 1/2 (g' g) (dW^2 - h)``;
    Stratonovich: ``u+ = u + f h + g dW + 1/2 (g' g) dW^2``, with
    ``g' g = (dg/du) g`` the derivative of the diffusion along itself
    (elementwise products, ``dW`` of shape ``(B, D)`` or ``(B, 1)``).

    Noise: ``diagonal`` (with ``g_i`` depending on ``u_i`` only, where
    ``(dg/du) g`` is ``g_i dg_i/du_i``), ``scalar`` (always commutative) and
    ``additive`` (where ``g' = 0`` and the method is Euler-Maruyama).
    General noise would need iterated integrals (Levy areas): not supported.

    Parameters
    ----------
    dt : float
        Step.
    derivative : {"jvp", "fd"}
        How ``(dg/du) g`` is computed: ``"jvp"`` exactly by autograd
        (differentiable by direct backprop: two reverse-mode passes through
        ``g`` when the state carries a graph, else one forward-mode dual
        evaluation, two for scalar noise); ``"fd"`` by a forward difference
        along ``g`` (one more evaluation of ``g``, error about ``sqrt(eps)``;
        for a ``g`` whose operations lack forward-mode autograd).
    adaptive, rtol, atol, dtmin, max_steps : bool, float, float, float, int
        Keyword only: adaptive steps by step doubling on one Brownian path
        (``dt`` is then the first step), as for every
        :class:`~opflow.solvers.sde.solve_sde.SDEAlgorithm`.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * u, torch.ones(16, 1),
    ...                          tspan=(0.0, 1.0))  # diagonal noise
    >>> opflow.solve(prob, opflow.Milstein(dt=0.01), seed=0).success
    True
    """

    derivative: str = "jvp"
    order: ClassVar[float] = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.derivative not in ("jvp", "fd"):
            raise InvalidArgumentError("derivative", "'jvp' or 'fd'", self.derivative)

    def check(self, system: SDESystem) -> None:
        if system.matrix and system.state_dependent_noise:
            raise SolverError("Milstein supports noise='diagonal', 'scalar' or 'additive' "
                              "(general noise needs Levy areas); use EulerMaruyama")

    def evals_per_step(self, system: SDESystem) -> int:
        if not system.state_dependent_noise:
            return 2
        return 2 if self.derivative == "jvp" and system.noise == "diagonal" else 3

    def stepper(self, system: SDESystem) -> Step:
        F, G, term = system.F, system.G, system.noise_term
        if not system.state_dependent_noise:  # g' = 0: Euler-Maruyama
            def step(t, tn, h, y, dw, H):
                return torch.add(y, F(t, y), alpha=h).add_(term(G(t, y), dw))
            return step
        ito, method, scalar = system.sde_type == "ito", self.derivative, system.noise == "scalar"

        def step(t, tn, h, y, dw, H):  # type: ignore[no-redef]
            g, gg = diffusion_derivative(G, t, y, scalar, method)
            ww = dw * dw - h if ito else dw * dw
            y_new = torch.add(y, F(t, y), alpha=h).addcmul_(g, dw)
            return y_new.addcmul_(gg, ww, value=0.5)

        return step
