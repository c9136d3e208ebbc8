"""KenCarp4: Kennedy and Carpenter's additive (IMEX) Runge-Kutta method of order 4(3)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import torch

from ...errors import InvalidArgumentError
from ..linear import DenseLU
from ..nonlinear.chord import chord_solve
from .esdirk import AdaptiveESDIRK

__all__ = ["KenCarp4"]

_G = 0.25
_B = (82889 / 524892, 0.0, 15625 / 83664, 69875 / 102672, -2260 / 8211, _G)
_B_EMBEDDED = (4586570599 / 29645900160, 0.0, 178811875 / 945068544,
               814220225 / 1159782912, -3700637 / 11593932, 61727 / 225920)
_C = (0.0, 0.5, 83 / 250, 31 / 50, 17 / 20, 1.0)
_A_EXPLICIT = (
    (),
    (0.5,),
    (13861 / 62500, 6889 / 62500),
    (-116923316275 / 2393684061468, -2731218467317 / 15368042101831,
     9408046702089 / 11113171139209),
    (-451086348788 / 2902428689909, -2682348792572 / 7519795681897,
     12662868775082 / 11960479115383, 3355817975965 / 11060851509271),
    (647845179188 / 3216320057751, 73281519250 / 8382639484533,
     552539513391 / 3454668386233, 3354512671639 / 8306763924573, 4040 / 17871),
)
_A_IMPLICIT = (
    (),
    (_G,),
    (8611 / 62500, -1743 / 31250),
    (5012029 / 34652500, -654441 / 2922500, 174375 / 388108),
    (15267082809 / 155376265600, -71443401 / 120774400, 730878875 / 902184768,
     2285395 / 8070912),
    _B[:-1],
)


@dataclass(frozen=True)
class KenCarp4(AdaptiveESDIRK):
    """Kennedy and Carpenter's 6-stage IMEX method: ``f_stiff`` by an L-stable,
    stiffly accurate ESDIRK, ``f_nonstiff`` by an explicit Runge-Kutta method,
    order 4 with an embedded order 3 (ARK4(3)6L[2]SA).

    Solves a :class:`~opflow.problems.SplitODEProblem`; only the Jacobian of
    ``f_stiff`` is formed and the stage solves involve ``f_stiff`` alone, so a
    stiff linear diffusion with a nonlinear, non-stiff reaction costs one LU
    per step. Parameters as :class:`~opflow.solvers.ode.esdirk.AdaptiveESDIRK`.

    Matrix-free stages (a PDE on a grid): with ``stage_solver=NewtonKrylov(...)``
    no Jacobian is formed; each implicit stage ``k = f_stiff(t_i, z + h gamma k)``
    is solved by Newton-Krylov (Jacobian-vector products), preconditioned by
    ``preconditioner(h_gamma)``, a factory called once per step with the
    per-sample ``h gamma`` (shape ``(B,)``) that returns ``precond(r)`` on
    states of the user's type: for diffusion ``D Laplacian`` for example
    ``lambda hg: multigrid_preconditioner(grid, hg * D)``
    (:func:`opflow.solvers.pde.multigrid_preconditioner`).

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
    newton_tol, newton_max_iters : float, int
        The chord iteration of the dense stages (see ``AdaptiveESDIRK``).
    stage_solver : NewtonKrylov, optional
        Matrix-free stages (no Jacobian formed).
    preconditioner : callable, optional
        ``preconditioner(h_gamma) -> precond``, called once per step.

    References
    ----------
    C. A. Kennedy and M. H. Carpenter, "Additive Runge-Kutta schemes for
    convection-diffusion-reaction equations", Appl. Numer. Math. 44 (2003).
    """

    stage_solver: Optional[Any] = None
    preconditioner: Optional[Callable[[torch.Tensor], Callable]] = None

    imex = True
    order = 4
    error_order = 4
    stages = 16

    def __post_init__(self):
        super().__post_init__()
        from ..nonlinear import NewtonKrylov

        if self.stage_solver is not None and not isinstance(self.stage_solver, NewtonKrylov):
            raise InvalidArgumentError("stage_solver", "None (dense chord iteration) or a "
                                       "NewtonKrylov(...)", self.stage_solver)
        if self.preconditioner is not None and not callable(self.preconditioner):
            raise InvalidArgumentError("preconditioner", "a callable h_gamma -> precond",
                                       self.preconditioner)

    @property
    def matrix_free(self) -> bool:
        return self.stage_solver is not None

    def step(self, F, t, y, f0, h, J, dfdt):
        # F carries F.stiff and F.nonstiff, the flat parts (AdaptiveImplicit.step)
        stiff, nonstiff = getattr(F, "stiff", None), getattr(F, "nonstiff", None)
        if stiff is None or nonstiff is None:
            raise InvalidArgumentError("prob", "a SplitODEProblem for KenCarp4", F)
        hc = h[:, None]
        hg = hc * _G
        solve_stage = self._krylov_stage(F, h) if self.matrix_free else self._chord_stage(
            y, h, J)

        k_imp = [stiff(t, y)]
        k_exp = [f0 - k_imp[0]]
        converged = torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
        for i in range(1, 6):
            base = y + hc * sum(_A_EXPLICIT[i][j] * k_exp[j] + _A_IMPLICIT[i][j] * k_imp[j]
                                for j in range(i))
            ti = t + _C[i] * h

            def G(k, base=base, ti=ti):
                return k - stiff(ti, base + hg * k)

            k, ok = solve_stage(G, k_imp[-1])
            converged = converged & ok
            k_imp.append(k)
            k_exp.append(nonstiff(ti, base + hg * k))
        slopes = [a + b for a, b in zip(k_exp, k_imp)]
        y_new = y + hc * sum(w * s for w, s in zip(_B, slopes) if w != 0.0)
        err = hc * sum((w - v) * s for w, v, s in zip(_B, _B_EMBEDDED, slopes))
        err = torch.where(converged[:, None], err, torch.full_like(err, float("inf")))
        return y_new, err, None

    def _chord_stage(self, y, h, J):
        """Stage solves by the chord iteration with ``I - h gamma J`` factored once."""
        D = y.shape[1]
        hg = (h * _G)[:, None].detach()
        lu = DenseLU(torch.eye(D, dtype=y.dtype, device=y.device) - (h * _G)[:, None, None] * J)
        scale = (self.atol + self.rtol * y.abs()).detach()

        def norm(dk):
            return torch.sqrt(torch.mean((hg * dk / scale) ** 2, dim=1))

        def solve_stage(G, k0):
            k, ok, _ = chord_solve(G, k0, lu, norm, self.newton_tol, self.newton_max_iters)
            return k, ok

        return solve_stage

    def _krylov_stage(self, F, h):
        """Stage solves by Newton-Krylov on the user's state type (for the preconditioner)."""
        from ..nonlinear import NonlinearProblem, solve_nonlinear

        layout = F.layout
        solver = self.stage_solver
        if self.preconditioner is not None:
            solver = replace(solver, precond=self.preconditioner((h * _G).detach()))

        def solve_stage(G, k0):
            def residual(k_user):
                return layout.unflatten(G(layout.flatten(k_user, "k")))

            prob = NonlinearProblem(residual, layout.unflatten(k0.detach()),
                                    batched=layout.batched)
            sol = solve_nonlinear(prob, solver)
            ok = torch.tensor([c == "Success" for c in sol.record["retcodes"]],
                              device=k0.device)
            return layout.flatten(sol.u, "k").detach(), ok

        return solve_stage
