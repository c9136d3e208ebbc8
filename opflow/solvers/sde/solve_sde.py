"""``solve`` for :class:`SDEProblem` with the fixed-step SDE algorithms.

The user's state is flattened to ``(B, D)`` (with :class:`~opflow.solvers.ode.
state.StateLayout`; a plain ``(B, D)`` tensor is used as is), the time grid
is built once (each interval between save times split into equal steps no
longer than ``dt``), the Brownian increments of the whole grid are drawn
before the loop (one batched draw, or queried from a user's
:class:`BrownianInterval`), and the loop makes a few torch calls per step
with no host synchronisation. Each algorithm file provides the step.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional

import torch
import torch.autograd.forward_ad as fwad

from ...errors import InvalidArgumentError, ShapeError, SolverError
from ...progress import TimeProgress
from ...solution import ReturnCode, Solution, SolverStats
from ...solve import AbstractAlgorithm, register
from ..ode.base import check_step, check_tolerance
from ..ode.sensitivity import BacksolveAdjoint, DirectBackprop, collect_parameters
from ..ode.state import StateLayout, check_rhs_dtype
from ..saving import save_times_tensor
from .adaptive import adaptive_march
from .adjoint import sde_backsolve
from .backwards import ReversedBrownian, solve_backwards
from .brownian import BrownianInterval, grid_increments
from .problem import SDEProblem
from .reversible_adjoint import ReversibleAdjoint, reversible_adjoint

__all__ = ["SDEAlgorithm", "SDESystem", "diffusion_derivative", "solve_sde"]

Step = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class SDEAlgorithm(AbstractAlgorithm):
    """An SDE method, with fixed or adaptive steps.

    Parameters
    ----------
    dt : float
        Fixed steps: the largest step (each interval between save times is
        split into equal steps no longer than ``dt``, so save times are hit
        exactly). Adaptive steps: the first step.
    adaptive : bool
        Keyword only. Choose the steps by step doubling on one Brownian path
        (a :class:`BrownianInterval`: ``brownian=``, or one drawn from
        ``seed``): each attempt of step ``h`` is compared with two steps of
        ``h / 2`` on the same path, and an accepted attempt keeps the two
        half steps, so the solution is the fixed-grid solution on the grid of
        accepted half steps (see :mod:`opflow.solvers.sde.adaptive`). One step
        size serves the whole batch. ``stats.steps`` counts accepted attempts,
        ``stats.rejects`` rejected ones, ``stats.iterations`` all attempts.
    rtol, atol : float
        Keyword only; tolerances of the adaptive error estimate (finite,
        non-negative, not both zero): the RMS over each trajectory of the
        difference scaled by ``atol + rtol * max(|u|, |u+|)`` must be ``<= 1``.
    dtmin : float
        Keyword only; smallest adaptive step: an attempt of ``dtmin`` is
        accepted whatever its error (as torchsde's ``dt_min``), so a rough
        stretch of the path cannot stall the solve. Default 0.
    max_steps : int
        Keyword only; most adaptive attempts, accepted or rejected; reaching
        it ends the solve with ``ReturnCode.MaxIters`` (states not reached
        are NaN).
    """

    dt: float
    adaptive: bool = field(default=False, kw_only=True)
    rtol: float = field(default=1e-3, kw_only=True)
    atol: float = field(default=1e-6, kw_only=True)
    dtmin: float = field(default=0.0, kw_only=True)
    max_steps: int = field(default=100_000, kw_only=True)
    levy_area: ClassVar[bool] = False  # whether the step needs space-time Levy areas
    order: ClassVar[float] = 0.5  # strong order (for general noise)
    reversible: ClassVar[bool] = False  # whether ReversibleAdjoint can run it backwards

    def __post_init__(self):
        check_step(self.dt)
        if not isinstance(self.adaptive, bool):
            raise InvalidArgumentError("adaptive", "True or False", self.adaptive)
        check_tolerance(self.rtol, "rtol")
        check_tolerance(self.atol, "atol")
        if self.rtol == 0 and self.atol == 0:
            raise InvalidArgumentError("atol", "rtol and atol not both zero", (self.rtol,
                                                                                self.atol))
        if not (isinstance(self.dtmin, (int, float)) and not isinstance(self.dtmin, bool)
                and math.isfinite(self.dtmin) and self.dtmin >= 0):
            raise InvalidArgumentError("dtmin", "a finite step size >= 0", self.dtmin)
        n = self.max_steps
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError("max_steps", "a positive integer", n)

    def check(self, system: "SDESystem") -> None:
        """Raise :class:`SolverError` if the method cannot solve ``system``.

        Parameters
        ----------
        system : SDESystem
            The problem on flat ``(B, D)`` states.
        """

    def evals_per_step(self, system: "SDESystem") -> int:
        """Drift plus diffusion evaluations per step.

        Parameters
        ----------
        system : SDESystem
            The problem on flat ``(B, D)`` states.

        Returns
        -------
        int
        """
        raise NotImplementedError

    def evals_setup(self, system: "SDESystem") -> int:
        """Drift plus diffusion evaluations before the first step (none by default).

        Parameters
        ----------
        system : SDESystem
            The problem on flat ``(B, D)`` states.

        Returns
        -------
        int
        """
        return 0

    def stepper(self, system: "SDESystem") -> Step:
        """``step(t, t_next, h, y, dW, H) -> y_next`` (``H`` is None unless ``levy_area``).

        Parameters
        ----------
        system : SDESystem
            The problem on flat ``(B, D)`` states.

        Returns
        -------
        callable
            The step function.
        """
        raise NotImplementedError


class SDESystem:
    """An :class:`SDEProblem` on flat ``(B, D)`` states.

    Attributes
    ----------
    F : callable
        ``F(t, y) -> (B, D)``, the drift.
    G : callable
        ``G(t, y)``, the diffusion: ``(B, D)`` (diagonal, scalar, additive)
        or ``(B, D, m)`` when ``matrix`` (general, matrix additive).
    noise, sde_type : str
    matrix : bool
    m : int
        Brownian motions per trajectory; ``W`` has shape ``(B, m)``.
    """

    def __init__(self, prob: SDEProblem):
        self.noise, self.sde_type = prob.noise, prob.sde_type
        f, g, p = prob.drift, prob.diffusion, prob.p
        with_p = p is not None
        u0 = prob.u0
        self.direct = prob.batched and isinstance(u0, torch.Tensor) and u0.ndim == 2
        if self.direct:
            self.y0 = u0
            self.B, self.D = u0.shape
            self.batch_shape: tuple[int, ...] = (self.B,)
            self.to_user = _identity

            def call_f(t, y):
                out = f(t, y, p) if with_p else f(t, y)
                if getattr(out, "shape", None) != y.shape:
                    raise ShapeError("drift", f"a tensor of shape {tuple(y.shape)} (like u)", out)
                check_rhs_dtype(out, y.dtype, "drift")
                return out

            def call_g(t, y):
                return g(t, y, p) if with_p else g(t, y)

            self.unflatten, self.flatten = _identity, None
        else:
            layout = StateLayout(u0, prob.batched)
            self.y0 = layout.flatten(u0, "u0")
            self.B, self.D = layout.B, layout.D
            self.batch_shape = layout.batch_shape
            self.to_user = layout.unflatten

            def call_f(t, y):
                u = layout.unflatten(y)
                return layout.flatten(f(t, u, p) if with_p else f(t, u), name="drift",
                                      rhs="drift")

            def call_g(t, y):
                u = layout.unflatten(y)
                return g(t, u, p) if with_p else g(t, u)

            self.unflatten, self.flatten = layout.unflatten, layout.flatten
        self.F, self._g_raw = call_f, call_g
        self.dtype, self.device = self.y0.dtype, self.y0.device
        self.nfe_setup = 0
        self.matrix, self.m = self._diffusion_layout(prob)
        self.G = self._wrap_diffusion()

    # ------------------------------------------------------------ diffusion
    def _diffusion_layout(self, prob: SDEProblem) -> tuple[bool, int]:
        if self.noise == "diagonal":
            return False, self.D
        if self.noise == "scalar":
            return False, 1
        if self.noise == "general" and prob.brownian_dim is not None:
            return True, prob.brownian_dim
        # general without m, or additive: one evaluation of g at t0 tells the layout.
        t0 = torch.tensor(prob.tspan[0], dtype=self.dtype, device=self.device)
        with torch.no_grad():
            out = self._g_raw(t0, self.y0.detach())
        self.nfe_setup = 1
        lead = self.batch_shape + (self.D,)
        if isinstance(out, torch.Tensor) and out.ndim == len(lead) + 1 \
                and tuple(out.shape[:-1]) == lead:
            m = out.shape[-1]
            if prob.brownian_dim is not None and m != prob.brownian_dim:
                raise ShapeError("diffusion", f"shape {lead + (prob.brownian_dim,)} "
                                 f"(brownian_dim = {prob.brownian_dim})", out)
            return True, m
        if self.noise == "general":
            raise ShapeError("diffusion", f"a tensor of shape {lead + ('m',)} for "
                             "noise='general'", out)
        return False, self.D

    def _wrap_diffusion(self):
        g, noise = self._g_raw, self.noise
        if self.matrix:
            want = self.batch_shape + (self.D, self.m)
            B, D, m = self.B, self.D, self.m

            def G(t, y):
                out = g(t, y)
                if getattr(out, "shape", None) != want:
                    raise ShapeError("diffusion", f"a tensor of shape {want} for "
                                     f"noise={noise!r}", out)
                return out.reshape(B, D, m)

            return G
        if self.direct:
            def G(t, y):
                out = g(t, y)
                if getattr(out, "shape", None) != y.shape:
                    raise ShapeError("diffusion", f"a tensor of shape {tuple(y.shape)} (like u) "
                                     f"for noise={noise!r}", out)
                return out

            return G
        flatten = self.flatten

        def G(t, y):
            return flatten(g(t, y), name="diffusion")

        return G

    def noise_term(self, g: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        """``g dW``: elementwise, or a matrix-vector product per trajectory."""
        if self.matrix:
            return torch.matmul(g, dw.unsqueeze(-1)).squeeze(-1)
        return g * dw

    @property
    def state_dependent_noise(self) -> bool:
        return self.noise != "additive"

    def diffusion_and_correction(self, t, y) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``(g, c)``: the diffusion and ``c = sum_j (dG_j/du) G_j`` so that the
        Stratonovich drift of an Ito problem is ``f - c/2`` (``c`` is None when
        zero: additive noise, or a Stratonovich problem).

        Diagonal noise uses ``(dg_i/du_i) g_i`` (exact when ``g_i`` depends on
        ``u_i`` only); scalar noise is exact; general noise is not supported.
        Differentiable (forward-mode autograd inside).
        """
        if self.sde_type != "ito" or not self.state_dependent_noise:
            return self.G(t, y), None
        if self.matrix:
            raise SolverError("the Ito-Stratonovich correction is implemented for diagonal, "
                              "scalar and additive noise only")
        return diffusion_derivative(self.G, t, y, self.noise == "scalar")


def _identity(x):
    return x


_FORWARD_AD_READY = False


def _load_forward_ad() -> None:
    """torch loads its forward-mode decompositions on first use, through the
    deprecated ``torch.jit.script``: do it once, without the warnings."""
    global _FORWARD_AD_READY
    if not _FORWARD_AD_READY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with fwad.dual_level():
                fwad.make_dual(torch.zeros(1), torch.ones(1))
        _FORWARD_AD_READY = True


def diffusion_derivative(G, t, y, scalar: bool, method: str = "jvp"):
    """``(g, g' g)`` with ``g = G(t, y)`` and ``g' g = (dG/dy) g``, for diagonal or scalar noise.

    For diagonal noise ``g' g = (dg_i/dy_i) g_i`` (``g_i`` depends on ``y_i``
    only, so ``dg_i/dy_i`` is the i-th entry of ``(dG/dy) 1``); for scalar
    noise it is the Jacobian-vector product with ``g``.

    ``method="jvp"`` is exact and differentiable by reverse mode (direct
    backprop and the adjoint go through it): forward-mode autograd, one dual
    evaluation of ``G``. (A double-vjp in reverse mode would make every step
    walk the whole graph recorded so far: time quadratic in the steps.) ``method="fd"`` is a
    forward difference along ``g`` with a per-trajectory step
    ``sqrt(eps) (1 + |y|_inf) / |g|_inf`` (one more evaluation of ``G``, error
    about ``sqrt(eps)``; for a ``G`` without forward-mode support).
    """
    if method == "fd":
        g = G(t, y)
        tiny = torch.finfo(y.dtype).tiny
        step = math.sqrt(torch.finfo(y.dtype).eps) * (1 + y.abs().amax(-1, keepdim=True))
        step = step / g.abs().amax(-1, keepdim=True).clamp_min(tiny)
        return g, (G(t, y + step * g) - g) / step
    _load_forward_ad()
    try:
        # forward AD is switched off inside autograd.Function.forward (where the adjoint
        # runs the forward solve): switch it on, or the tangent is silently None and the
        # Milstein correction vanishes (the scheme becomes Euler-Maruyama)
        with fwad._set_fwd_grad_enabled(True), fwad.dual_level():
            if scalar:
                g = G(t, y)
                _, tangent = fwad.unpack_dual(G(t, fwad.make_dual(y, g)))
                gg = tangent
            else:
                g, tangent = fwad.unpack_dual(G(t, fwad.make_dual(y, torch.ones_like(y))))
                gg = None if tangent is None else tangent * g
    except RuntimeError as err:
        if "forward AD" not in str(err) and "forward-mode" not in str(err):
            raise
        raise SolverError(f"the diffusion does not support forward-mode autograd ({err}); "
                          "use Milstein(dt, derivative='fd')") from err
    return g, (torch.zeros_like(g) if gg is None else gg)


# ------------------------------------------------------------------ the grid
class _Grid:
    """Step start times, step sizes and the step count at every save time."""

    def __init__(self, t0: float, ts: torch.Tensor, dt: float):
        times, hs, saves = [t0], [], []
        t = t0
        for tk in ts.tolist():
            n = max(int(math.ceil((tk - t) / dt - 1e-9)), 0)
            if n:
                h = (tk - t) / n
                times.extend(t + j * h for j in range(1, n))
                times.append(tk)
                hs.extend([h] * n)
            t = tk
            saves.append(len(hs))
        self.times, self.hs, self.saves = times, hs, saves

    @classmethod
    def from_times(cls, times: list[float], saves: list[int]) -> "_Grid":
        """The grid through ``times`` (an adaptive solve's), saving at step counts ``saves``."""
        grid = cls.__new__(cls)
        grid.times, grid.saves = list(times), list(saves)
        grid.hs = [b - a for a, b in zip(times, times[1:])]
        return grid

    @property
    def steps(self) -> int:
        return len(self.hs)


def _increments(system: SDESystem, grid: _Grid, levy: bool, seed, brownian):
    """``(dW list, H list or Nones)`` for every step of the grid."""
    N, shape = grid.steps, (system.B, system.m)
    if N == 0:
        return [], []
    _check_path(seed, brownian, shape, grid.times[0], grid.times[-1])
    if brownian is not None:
        out = brownian.on_grid(grid.times, levy_area=levy)
        dw, H = out if levy else (out, None)
    else:
        gen = torch.Generator(device=system.device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()))
        gen.manual_seed(seed)
        out = grid_increments(grid.hs, shape, gen, system.dtype, system.device, levy)
        dw, H = out if levy else (out, None)
    dw = dw.to(dtype=system.dtype, device=system.device)
    H = [None] * N if H is None else list(H.to(dtype=system.dtype, device=system.device).unbind(0))
    return list(dw.unbind(0)), H


def _march(step: Step, grid: _Grid, y0, times, dws, Hs, progress) -> torch.Tensor:
    """Run the fixed-step loop; states at the save times stacked ``(K, B, D)``."""
    out, y, n, hs = [], y0, 0, grid.hs
    bar = TimeProgress(grid.times[0], grid.times[-1], progress, desc="sde")
    try:
        for s in grid.saves:
            while n < s:
                y = step(times[n], times[n + 1], hs[n], y, dws[n], Hs[n])
                n += 1
            out.append(y)
            bar.update(grid.times[n])
    finally:
        bar.close()
    return torch.stack(out)


@register(SDEProblem, SDEAlgorithm)
def solve_sde(prob: SDEProblem, alg: SDEAlgorithm, saveat=None, seed: Optional[int] = None,
              brownian: Optional[BrownianInterval] = None, sensealg=None,
              progress: bool | str = False) -> Solution:
    """Solve an :class:`SDEProblem` with a fixed-step algorithm.

    Parameters
    ----------
    prob : SDEProblem
    alg : EulerMaruyama, Milstein, RKMil, SRA1 or ReversibleHeun
    saveat : float or sequence of float, optional
        Save interval or save times within ``tspan``; default ``(t0, t1)``.
        A reversed span (``t1 < t0``) is solved backwards in time, save times
        running from ``t0`` down to ``t1`` (see
        :mod:`opflow.solvers.sde.backwards`); an empty one returns ``u0``.
    seed : int, optional
        Seed of the Brownian increments, drawn for the whole time grid in
        one batched call. The same seed, problem and ``dt`` give the same
        path, bit for bit on CPU. Without it a seed is drawn from torch's
        global generator.
    brownian : BrownianInterval, optional
        A path of shape ``(B, m)`` to drive the solve instead (use it to
        solve with several ``dt`` on one path, or to compare with an exact
        solution written with that path).
    sensealg : DirectBackprop, BacksolveAdjoint or ReversibleAdjoint, optional
        Direct backprop (default) records every step. ``ReversibleAdjoint()``
        (with ``ReversibleHeun`` only) gives direct backprop's gradients
        without a graph, by running the method backwards (see its class). ``BacksolveAdjoint()``
        is the stochastic adjoint: the forward runs without a graph, and the
        backward pass solves the adjoint SDE in reverse time with the
        *same* Brownian increments, by the stochastic Heun method on the
        Stratonovich form (Ito problems get the drift correction
        ``-1/2 (dg/du) g``; supported for diagonal, scalar and additive noise,
        and for general noise in Stratonovich form). Its gradients are those of
        the continuous SDE: they approach direct backprop's as ``dt -> 0``.
        Memory: no autograd graph, only the increments (``B m`` numbers a
        step) and the saved states. Gradients go to ``sensealg.params``, by
        default the parameters of ``drift``/``diffusion`` modules and the
        tensors in ``p`` that require grad (list tensors captured in closures
        explicitly). Its ``rtol``/``atol`` are not used (the backward grid is
        the forward one).
    progress : bool or "always"
        Progress bar over simulated time.

    Returns
    -------
    Solution
        ``sol.u`` of shape ``(K, B, D)`` for a ``(B, D)`` state (``K`` save
        times); ``retcode`` is ``Unstable`` if a saved state is not finite;
        ``stats.nfe`` counts drift and diffusion evaluations.
    """
    backwards = solve_backwards(solve_sde, prob, alg, saveat, brownian, sensealg, seed=seed,
                                progress=progress)
    if backwards is not None:
        return backwards
    start = time.perf_counter()
    sensealg = DirectBackprop() if sensealg is None else sensealg
    if not isinstance(sensealg, (DirectBackprop, BacksolveAdjoint, ReversibleAdjoint)):
        raise InvalidArgumentError("sensealg", "DirectBackprop(), BacksolveAdjoint() or "
                                   "ReversibleAdjoint()", sensealg)
    if isinstance(sensealg, ReversibleAdjoint) and not alg.reversible:
        raise InvalidArgumentError("sensealg", "ReversibleAdjoint() with ReversibleHeun only "
                                   f"(the one reversible method), not {type(alg).__name__}",
                                   sensealg)
    system = SDESystem(prob)
    alg.check(system)
    if isinstance(sensealg, BacksolveAdjoint) and prob.sde_type == "ito" and system.matrix \
            and system.state_dependent_noise:
        raise SolverError("BacksolveAdjoint supports general noise in Stratonovich form "
                          "only (sde_type='stratonovich'); use DirectBackprop()")
    t0, t1 = prob.tspan
    ts = save_times_tensor(saveat, t0, t1, system.dtype, system.device, system.y0.numel())
    direct = isinstance(sensealg, DirectBackprop)
    retcode, rejects, attempts, ys = ReturnCode.Success, 0, 0, None
    if alg.adaptive:
        bm = _adaptive_path(system, t0, float(ts[-1]), seed, brownian)
        found = adaptive_march(  # its own stepper: steppers may carry state (ReversibleHeun)
            alg.stepper(system), system.y0, t0, ts.tolist(), bm, dt=alg.dt, rtol=alg.rtol,
            atol=alg.atol, dtmin=alg.dtmin, max_steps=alg.max_steps, order=alg.order,
            levy=alg.levy_area, keep_states=direct, progress=progress)
        grid = _Grid.from_times(found.times, found.saves)
        retcode, rejects, attempts = found.retcode, found.rejected, found.attempts
        if direct:
            ys = found.ys
        else:
            dws, Hs = _increments(system, grid, alg.levy_area, None, bm)
    else:
        grid = _Grid(t0, ts, alg.dt)
        dws, Hs = _increments(system, grid, alg.levy_area, seed, brownian)
    times = list(torch.tensor(grid.times, dtype=system.dtype, device=system.device).unbind(0))
    step = alg.stepper(system)

    def forward(y0):
        return _march(step, grid, y0, times, dws, Hs, progress)

    if isinstance(sensealg, (BacksolveAdjoint, ReversibleAdjoint)):
        params = list(sensealg.params) if sensealg.params is not None else collect_parameters(
            (prob.drift, prob.diffusion), prob.p)
    if ys is not None or not grid.saves:
        pass  # adaptive with direct backprop: the march kept the states
    elif isinstance(sensealg, ReversibleAdjoint):
        ys = reversible_adjoint(system, forward, step, system.y0, times, grid.hs, dws,
                                grid.saves, params)
    elif isinstance(sensealg, BacksolveAdjoint):
        ys = sde_backsolve(system, forward, system.y0, times, grid.hs, dws, grid.saves, params)
    else:
        ys = forward(system.y0)
    K = ts.shape[0]
    if ys is None or ys.shape[0] < K:  # an adaptive solve stopped early: NaN where not reached
        rows = 0 if ys is None else ys.shape[0]
        missing = system.y0.new_full((K - rows, *system.y0.shape), math.nan)
        ys = missing if ys is None else torch.cat([ys, missing])
    elif not bool(torch.isfinite(ys).all()):
        retcode = ReturnCode.Unstable
    N = grid.steps
    per_step = alg.evals_per_step(system)
    nfe = N * per_step + system.nfe_setup + (alg.evals_setup(system) if N else 0)
    if alg.adaptive:  # three steps an attempt, and the final pass unless kept
        nfe += 3 * attempts * per_step - (N * per_step if direct else 0)
    stats = SolverStats(steps=N // 2 if alg.adaptive else N, rejects=rejects, nfe=nfe,
                        iterations=attempts if alg.adaptive else N,
                        wall_time=time.perf_counter() - start)
    return Solution(t=ts, u=system.to_user(ys), retcode=retcode, stats=stats, problem=prob,
                    alg=alg)


def _adaptive_path(system: SDESystem, t0: float, t_end: float, seed,
                   brownian) -> BrownianInterval | ReversedBrownian:
    """The path adaptive steps read: the user's, or one drawn from ``seed``."""
    shape = (system.B, system.m)
    _check_path(seed, brownian, shape, t0, t_end)
    if brownian is not None:
        return brownian
    span = max(t_end - t0, 1e-12 * max(1.0, abs(t0)))
    return BrownianInterval(t0, t0 + span, shape, seed=seed, dtype=system.dtype,
                            device=system.device)


def _check_path(seed, brownian, shape, t_first: float, t_last: float) -> None:
    """A ``seed`` (integer or None) or a ``brownian`` path covering the span, not both."""
    if brownian is None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidArgumentError("seed", "an integer or None", seed)
        return
    if seed is not None:
        raise InvalidArgumentError("seed", "seed or brownian, not both", seed)
    if not isinstance(brownian, (BrownianInterval, ReversedBrownian)):
        raise InvalidArgumentError("brownian", "an opflow BrownianInterval", brownian)
    if tuple(brownian.shape) != shape:
        raise ShapeError("brownian", f"a Brownian motion of shape {shape} (B, m)",
                         f"shape {tuple(brownian.shape)}")
    eps = 1e-12 * max(1.0, abs(t_last))
    if brownian.t0 > t_first + eps or brownian.t1 < t_last - eps:
        raise InvalidArgumentError(
            "brownian", f"a path covering [{t_first}, {t_last}]",
            f"a path on [{brownian.t0}, {brownian.t1}]")
