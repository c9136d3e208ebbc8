"""``PINN``: train a network on a :class:`PINNProblem`, registered with :func:`opflow.solve`.

Training minimises ``sum_k w_k L_k`` over the loss terms ``L_k``: the mean
square PDE residual at ``n_interior`` fixed collocation points (term
``"residual"``) and one term per condition at ``n_boundary`` points each.
Adam runs for ``iterations`` steps, then optionally L-BFGS (strong Wolfe line
search) for ``lbfgs_iterations``. With ``adaptive="lra"`` the condition
weights follow learning-rate annealing (Wang, Teng, Perdikaris 2021): every
``lra_every`` Adam steps ``w_k <- (1 - a) w_k + a max|grad L_res| / mean|grad L_k|``.
With ``refine=RAR(...)`` the interior set grows during Adam by residual-based
adaptive refinement (:mod:`~opflow.solvers.pinn.refinement`).

Everything runs in the dtype of the network's parameters: a float64 network
(``net.double()``) gets float64 points, losses and evaluated Fields.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Protocol, Sequence, cast

import torch

from ...errors import InvalidArgumentError
from ...field import Field
from ...grid import Grid
from ...progress import Progress
from ...solution import ReturnCode, Solution, SolverStats
from ...solve import AbstractAlgorithm, register
from ...train.loop import OptimizerStep
from .derivatives import Coordinates
from .jet import MLPJet, retained_backward
from .problem import PINNProblem
from .refinement import RAR, rar_select
from .sampling import SAMPLERS, check_count

__all__ = ["PINN", "PINNFunction", "solve_pinn"]


@dataclass(frozen=True)
class PINN(AbstractAlgorithm):
    """Physics-informed neural network training.

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``(N, dim)`` points (columns in ``domain.names`` order) to ``(N, channels)``.
        The initial network: ``solve`` trains a copy and leaves ``net`` unchanged (so
        solving twice starts from the same weights); the trained network is
        ``sol.u.net``.
    n_interior : int
        Interior collocation points (> 0).
    n_boundary : int
        Points per condition (>= 0), unless the condition gives its own
        ``points``.
    optimizer : {"adam", "lbfgs"}
        First-phase optimiser (``"lbfgs"`` skips Adam: ``iterations`` L-BFGS iterations).
    lr : float
        Adam learning rate.
    iterations : int
        Adam steps.
    lbfgs_iterations : int
        L-BFGS iterations after Adam (0: none).
    weights : mapping of str to float, optional
        Loss weights by term name (``"residual"`` or a condition's name), overriding
        the conditions' own ``weight``.
    adaptive : {None, "lra"}
        Adaptive condition weights (learning-rate annealing) during Adam.
    sampler : {"uniform", "latin_hypercube", "lhs", "sobol"}
    seed : int
        Seed of the point samplers.
    progress : bool or "always"
        a bar with every loss term on a terminal, else a line with them every few
        seconds (log files); "always": a bar anywhere.
    lra_every, lra_alpha : int, float
        Update period and smoothing of ``adaptive="lra"``.
    refine : RAR, optional
        Residual-based adaptive refinement of the interior points during Adam; the final
        set has ``n_interior + rounds * k`` points (see ``PINNFunction.added_points``).
    points : torch.Tensor, shape (N, dim), optional
        Interior collocation points to use instead of sampling ``n_interior`` of them;
        they must lie in the domain (columns in ``domain.names`` order).
    compile : bool
        Take the residual's derivatives in Taylor mode (:mod:`~opflow.solvers.pinn.jet`)
        compiled with ``torch.compile``: for a ``Sequential`` MLP of ``Linear`` layers and
        tanh / sigmoid / SiLU activations and no output transform (otherwise a warning,
        and autograd). Results agree with the autograd path to rounding; the first step
        compiles (about 10 s), later steps run about 1.6x faster on CPU
        (``benchmarks/RESULTS.md``, ``pinn``). The residual must differentiate the network
        output ``u`` itself, or a channel with ``channel=k`` (a slice or reshape of ``u``
        cannot be differentiated twice through the compiled graph: an error says so).
        Where ``torch.compile`` fails (no C++ compiler), a warning, and Taylor mode runs
        uncompiled.

    Examples
    --------
    >>> import math, torch, opflow
    >>> from opflow.solvers.pinn import PINNProblem, Interval, Dirichlet, d
    >>> def residual(x, u):  # u'' = -pi^2 sin(pi x), u(0) = u(1) = 0
    ...     return d(u, x, "x", 2) + math.pi ** 2 * torch.sin(math.pi * x["x"])
    >>> prob = PINNProblem(residual, Interval(0.0, 1.0), [Dirichlet(0.0)])
    >>> net = torch.nn.Sequential(torch.nn.Linear(1, 20), torch.nn.Tanh(), torch.nn.Linear(20, 1))
    >>> sol = opflow.solve(prob, opflow.PINN(net, n_interior=64, n_boundary=2, iterations=20))
    >>> len(sol.u.history["total"])  # one loss per iteration
    20
    >>> tuple(sol.u(opflow.Grid.uniform(x=(0.0, 1.0, 11))).shape)  # a Field on any grid
    (1, 11)
    """

    net: torch.nn.Module
    n_interior: int = 1000
    n_boundary: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    iterations: int = 1000
    lbfgs_iterations: int = 0
    weights: Optional[Mapping[str, float]] = None
    adaptive: Optional[str] = None
    sampler: str = "sobol"
    seed: int = 0
    progress: bool | str = False
    lra_every: int = 10
    lra_alpha: float = 0.1
    refine: Optional[RAR] = None
    points: Optional[torch.Tensor] = field(default=None, compare=False, repr=False)
    compile: bool = False

    def __post_init__(self):
        if not isinstance(self.net, torch.nn.Module):
            raise InvalidArgumentError("net", "a torch.nn.Module", self.net)
        check_count(self.n_interior, "n_interior", 1)
        check_count(self.n_boundary, "n_boundary", 0)
        check_count(self.iterations, "iterations", 0)
        check_count(self.lbfgs_iterations, "lbfgs_iterations", 0)
        check_count(self.lra_every, "lra_every", 1)
        if self.optimizer not in ("adam", "lbfgs"):
            raise InvalidArgumentError("optimizer", "'adam' or 'lbfgs'", self.optimizer)
        if self.adaptive not in (None, "lra"):
            raise InvalidArgumentError("adaptive", "None or 'lra'", self.adaptive)
        if self.sampler not in SAMPLERS:
            raise InvalidArgumentError("sampler", f"one of {sorted(SAMPLERS)}", self.sampler)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InvalidArgumentError("lr", "a positive number", self.lr)
        if self.weights is not None and not isinstance(self.weights, Mapping):
            raise InvalidArgumentError("weights", "a mapping {term name: weight}", self.weights)
        if self.refine is not None and not isinstance(self.refine, RAR):
            raise InvalidArgumentError("refine", "None or an RAR(...) setting", self.refine)
        if self.points is not None and not (
                isinstance(self.points, torch.Tensor) and self.points.ndim == 2
                and self.points.is_floating_point() and len(self.points) > 0):
            raise InvalidArgumentError("points", "a floating-point tensor (N, dim) of N >= 1 "
                                       "interior points", self.points)
        if not isinstance(self.compile, bool):
            raise InvalidArgumentError("compile", "True or False", self.compile)


class PINNFunction:
    """The trained solution: evaluates the network on a Grid (as a Field) or on points.

    Parameters
    ----------
    net : torch.nn.Module
        The trained network.
    problem : PINNProblem
        The problem it was trained on.

    Attributes
    ----------
    net : torch.nn.Module
    problem : PINNProblem
    losses : dict of str to float
        Final unweighted loss terms.
    weights : dict of str to float
        Final term weights (changed by ``adaptive="lra"``).
    history : dict of str to list of float
        Unweighted loss terms per Adam step / L-BFGS evaluation, plus ``"total"``.
    added_points : torch.Tensor, shape (M, dim)
        Interior points added by residual-based refinement (empty without ``refine``).
    unknowns : dict of str to float
        An inverse problem's identified coefficients (the problem's ``unknowns``;
        empty for a forward problem).
    unknown_history : dict of str to list of float
        Their values per Adam step / L-BFGS evaluation.
    """

    def __init__(self, net: torch.nn.Module, problem: PINNProblem):
        self.net, self.problem = net, problem
        self.added_points = torch.empty(0, problem.domain.dim)
        self.losses: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}
        self.unknowns: dict[str, float] = {}
        self.unknown_history: dict[str, list[float]] = {}

    def points(self, x: torch.Tensor, requires_grad: bool = False) -> torch.Tensor:
        """Values at ``x`` of shape ``(N, dim)``: a tensor ``(N, channels)``.

        Parameters
        ----------
        x : torch.Tensor, shape (N, dim)
            The points, columns in the domain's axis order.
        requires_grad : bool
            Keep the graph to the points (for derivatives).

        Returns
        -------
        torch.Tensor, shape (N, channels)
        """
        c = Coordinates(x.requires_grad_(requires_grad) if requires_grad else x,
                        self.problem.domain.names)
        return self.problem.model(self.net)(c)

    def __call__(self, grid: Grid | torch.Tensor, chunk: int = 65536) -> Field | torch.Tensor:
        """Evaluate on ``grid`` (axes named as the domain, any order) -> Field of shape
        ``(channels, *grid.shape)``; a ``(N, dim)`` tensor gives a ``(N, channels)`` tensor.
        Without autograd (an output transform needing gradients is not supported here)."""
        if isinstance(grid, torch.Tensor):
            with torch.no_grad():
                return self.points(grid)
        if not isinstance(grid, Grid):
            raise InvalidArgumentError("grid", "an opflow.Grid or a (N, dim) tensor", grid)
        names = self.problem.domain.names
        if sorted(grid.names) != sorted(names):
            raise InvalidArgumentError("grid", f"a Grid with the axes {names}", grid.names)
        dtype = next(iter(self.net.parameters()), torch.empty(0)).dtype
        mesh = dict(zip(grid.names, grid.mesh(dtype=dtype)))
        pts = torch.stack([mesh[n].reshape(-1) for n in names], dim=1)
        with torch.no_grad():
            out = torch.cat([self.points(pts[i:i + chunk]) for i in range(0, len(pts), chunk)])
        values = out.T.reshape(self.problem.channels, *grid.shape)
        return Field(values, grid, names=self.problem.names, attrs={
            "solver": "PINN", **{f"loss_{k}": v for k, v in self.losses.items()}})

    def __repr__(self) -> str:
        return f"PINNFunction(names={self.problem.names}, losses={self.losses})"


class _Term(Protocol):
    """What a loss term reads of a Condition: fields of every condition class, which the
    base class leaves to its subclasses (a dataclass field there would come first)."""

    kind: str
    weight: float
    name: str | None


def _terms(prob: PINNProblem) -> Sequence[_Term]:
    return cast("Sequence[_Term]", prob.conditions)


def _term_names(prob: PINNProblem) -> list[str]:
    names, seen = ["residual"], {"residual"}
    for c in _terms(prob):
        base = c.name or c.kind
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}{k}"
        seen.add(name)
        names.append(name)
    return names


def lbfgs_refine(params, iterations: int, loss, record) -> int:
    """Refine ``params`` with at most ``iterations`` L-BFGS steps (strong Wolfe).

    ``loss() -> (terms, total)`` evaluates the loss terms and their weighted
    sum; ``record(terms, total)`` sees every evaluation (progress, history).
    Returns the number of L-BFGS iterations taken. Shared by PINN and LPINN.

    In float32 the line search can find no decrease along a poor quasi-Newton
    direction (it returns a zero step) and torch's L-BFGS then stops, long
    before its budget and its gradient tolerance: DeepXDE's Burgers example
    stopped after 5 of 15000 iterations, at its Adam result (relative error
    0.179 instead of 0.013). Such an early stop is followed by a fresh L-BFGS
    (history cleared, so its first step is along the gradient) on the iterations
    left, for as long as each run lowers the loss.
    """
    params = list(params)
    seen: list[float] = []  # the losses evaluated by the current run

    def closure() -> torch.Tensor:
        for p in params:
            p.grad = None
        terms, total = loss()
        total.backward()
        record(terms, total)
        seen.append(float(total.detach()))
        return total

    done = 0
    while done < iterations:
        left = iterations - done
        lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=left, max_eval=2 * left,
                                  history_size=50, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")
        seen.clear()
        lbfgs.step(closure)
        state = lbfgs.state[lbfgs._params[0]]
        done += int(state.get("n_iter", 0))
        grads = [p.grad.abs().max() for p in params if p.grad is not None]
        converged = not grads or float(torch.stack(grads).max()) <= 1e-10
        spent = done >= iterations or int(state.get("func_evals", 0)) >= 2 * left
        if converged or spent or not min(seen) < seen[0]:  # done, or no decrease: stop
            break
    return done


def _interior_points(domain, alg: PINN) -> torch.Tensor:
    """``alg.points`` checked against the domain, or ``n_interior`` sampled points."""
    if alg.points is None:
        return domain.sample_interior(alg.n_interior, alg.sampler, alg.seed)
    pts = alg.points.detach()
    if pts.shape[1] != domain.dim:
        raise InvalidArgumentError("points", f"a tensor (N, {domain.dim}): one column per "
                                   f"domain axis {domain.names}", tuple(pts.shape))
    inside = domain.contains(pts) & torch.isfinite(pts).all(dim=1)
    if not bool(inside.all()):
        bad = pts[~inside]
        raise InvalidArgumentError(
            "points", f"points inside the domain (axes {domain.names}, box {domain.box}): "
            f"{len(bad)} of {len(pts)} lie outside or are not finite, e.g. {bad[0].tolist()}",
            tuple(pts.shape))
    return pts.clone()


def _check_residual_reaches(residual: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
    """Refuse a residual whose loss has no gradient with respect to the network: training
    could not change it (typically a residual not computed from ``u``)."""
    reaches = residual.grad_fn is not None and any(
        g is not None for g in torch.autograd.grad(residual, params, retain_graph=True,
                                                   allow_unused=True))
    if not reaches:
        raise InvalidArgumentError(
            "residual", "a residual computed from the network output u: its loss has no "
            "gradient with respect to the network's parameters, so training cannot reduce it",
            residual.detach())


def _taylor_forward(prob: PINNProblem, alg: PINN) -> Optional[MLPJet]:
    """The compiled Taylor-mode evaluator when ``alg.compile`` asks and the setup allows."""
    if not alg.compile:
        return None
    why = ("the problem has an output transform" if prob.transform is not None else
           None if MLPJet.supports(alg.net) else
           "net is not a Sequential MLP of Linear layers and tanh/sigmoid/SiLU activations")
    if why is not None:
        warnings.warn(f"PINN(compile=True): {why}; derivatives use autograd", UserWarning,
                      stacklevel=3)
        return None
    return MLPJet(alg.net, compile=True)


@register(PINNProblem, PINN)
def solve_pinn(prob: PINNProblem, alg: PINN, progress: bool | str | None = None) -> Solution:
    """Train a copy of ``alg.net`` on ``prob``; the ``solve(prob, PINN(...))`` implementation.

    ``alg`` is not changed: the trained network is ``sol.u.net``.

    Parameters
    ----------
    prob : PINNProblem
        The problem.
    alg : PINN
        The algorithm; it is not changed (the networks trained are copies).
    progress : bool, "always" or None
        Progress bar (default: the algorithm's ``progress``).

    Returns
    -------
    Solution
        ``u`` and ``interpolant`` are the same :class:`PINNFunction`: call
        ``sol.u(grid)`` (or ``sol(grid)``) for a Field (the "function" kind of
        :class:`~opflow.Solution`). ``t`` is empty; ``stats.iterations`` counts optimiser
        iterations, ``stats.nfe`` loss evaluations, ``stats.wall_time`` seconds; the loss
        terms are in ``sol.u.losses`` / ``sol.u.history`` and in the evaluated Field's
        ``attrs``.
        ``retcode`` is ``Unstable`` when the loss became NaN or Inf.
    """
    counts = [getattr(c, "points", None) or alg.n_boundary for c in prob.conditions]
    if 0 in counts:
        raise InvalidArgumentError("n_boundary", "an integer >= 1 for a problem with conditions "
                                   "that do not give their own `points`", alg.n_boundary)
    given, alg = alg, replace(alg, net=copy.deepcopy(alg.net))  # train a copy
    start = time.perf_counter()
    domain, names = prob.domain, _term_names(prob)
    cols = domain.names
    interior = Coordinates(_interior_points(domain, alg).requires_grad_(True), cols)
    cond_pts = [Coordinates(c.sample(domain, n, alg.sampler, alg.seed + 101 * (k + 1)), cols)
                for k, (c, n) in enumerate(zip(prob.conditions, counts))]
    pdtype = next(iter(alg.net.parameters()), torch.empty(0)).dtype
    if pdtype != interior.values.dtype:
        interior = Coordinates(interior.values.detach().to(pdtype).requires_grad_(True), cols)
    # each condition's points in the network's dtype too: an Observation's own points (or
    # given `points`) may be in another dtype than the network's
    cond_pts = [p if p.values.dtype == pdtype else Coordinates(p.values.to(pdtype), cols)
                for p in cond_pts]
    weights = {"residual": 1.0, **{n: float(c.weight) for n, c in zip(names[1:], _terms(prob))}}
    for key, w in dict(alg.weights or {}).items():
        if key not in weights:
            raise InvalidArgumentError("weights", f"keys among the loss terms {names}", key)
        weights[key] = float(w)
    model = prob.model(alg.net)
    forward = _taylor_forward(prob, alg)
    # an inverse problem's unknown coefficients, trained with the network
    unknowns: dict[str, torch.nn.Parameter] | None = None if prob.unknowns is None else {
        k: torch.nn.Parameter(torch.tensor(v, dtype=pdtype)) for k, v in prob.unknowns.items()}
    net_params = [p for p in alg.net.parameters() if p.requires_grad]
    params = net_params + ([] if unknowns is None else list(unknowns.values()))
    history: dict[str, list[float]] = {n: [] for n in [*names, "total"]}
    unknown_history: dict[str, list[float]] = {k: [] for k in prob.unknowns or {}}
    stats = SolverStats()

    added: list[torch.Tensor] = []

    def refine(step: int) -> None:
        nonlocal interior
        rar = alg.refine
        assert rar is not None  # refine() runs with alg.refine set only
        new = rar_select(lambda p: prob.residual_at(alg.net, Coordinates(p, cols), None, unknowns),
                         domain,
                         rar.k, rar.candidates, rar.sampler, alg.seed + 7 * step + 1, pdtype)
        added.append(new)
        interior = Coordinates(torch.cat([interior.values.detach(), new]).requires_grad_(True),
                               cols)

    def terms() -> dict[str, torch.Tensor]:
        out = {"residual": prob.residual_at(alg.net, interior, forward, unknowns).pow(2).mean()}
        for name, c, x in zip(names[1:], prob.conditions, cond_pts):
            out[name] = c.loss(model, x, domain)
        stats.nfe += 1
        return out

    def record(t: dict[str, torch.Tensor], total: torch.Tensor) -> dict[str, float]:
        vals = {k: float(v.detach()) for k, v in t.items()}
        for k, v in vals.items():
            history[k].append(v)
        history["total"].append(float(total.detach()))
        for k, c in (unknowns or {}).items():
            unknown_history[k].append(float(c.detach()))
        bar.update(1, **vals)
        return vals

    def lra_update(t: dict[str, torch.Tensor]) -> None:
        g_res = torch.autograd.grad(t["residual"], params, retain_graph=True, allow_unused=True)
        g_max = max(float(g.abs().max()) for g in g_res if g is not None)
        for name in names[1:]:
            g = torch.autograd.grad(t[name], params, retain_graph=True, allow_unused=True)
            flat = torch.cat([x.abs().reshape(-1) for x in g if x is not None] or [torch.zeros(1)])
            mean = float(flat.mean())
            if mean > 0 and math.isfinite(g_max):
                hat = g_max / mean
                weights[name] = (1 - alg.lra_alpha) * weights[name] + alg.lra_alpha * hat

    if net_params and weights["residual"] != 0:
        with retained_backward():
            _check_residual_reaches(prob.residual_at(alg.net, interior, forward, unknowns)
                                    .pow(2).mean(), net_params)
    n_adam = alg.iterations if alg.optimizer == "adam" else 0
    n_lbfgs = alg.lbfgs_iterations + (alg.iterations if alg.optimizer == "lbfgs" else 0)
    # a bar on a terminal, else a line with the loss terms every few seconds (log files)
    bar = Progress(n_adam + n_lbfgs, "PINN", alg.progress if progress is None else progress,
                   unit="iteration")
    retcode = ReturnCode.Success
    try:
        if n_adam:
            update = OptimizerStep(torch.optim.Adam(params, lr=alg.lr), params)
            for step in range(n_adam):
                if alg.refine is not None and alg.refine.due(step, len(added)):
                    refine(step)
                t = terms()
                if alg.adaptive == "lra" and step % alg.lra_every == 0:
                    with retained_backward():
                        lra_update(t)
                # not the empty sum 0: t holds the residual term
                total = cast(torch.Tensor, sum(weights[k] * v for k, v in t.items()))
                if not torch.isfinite(total):
                    retcode = ReturnCode.Unstable
                    break
                update(total)
                stats.iterations += 1
                record(t, total)
        if n_lbfgs and retcode == ReturnCode.Success:
            def loss() -> tuple[dict, torch.Tensor]:
                t = terms()
                return t, cast(torch.Tensor, sum(weights[k] * v for k, v in t.items()))

            stats.iterations += lbfgs_refine(params, n_lbfgs, loss, record)
    finally:
        bar.close()
    final = {k: v.detach() for k, v in terms().items()}
    if not all(torch.isfinite(v) for v in final.values()):
        retcode = ReturnCode.Unstable
    stats.wall_time = time.perf_counter() - start
    fn = PINNFunction(alg.net, prob)
    fn.losses = {k: float(v) for k, v in final.items()}
    fn.weights, fn.history = dict(weights), history
    if unknowns is not None:
        fn.unknowns = {k: float(v.detach()) for k, v in unknowns.items()}
        fn.unknown_history = unknown_history
    if added:
        fn.added_points = torch.cat(added)
    return Solution(t=torch.empty(0), u=fn, retcode=retcode, stats=stats, problem=prob,
                    alg=given, interpolant=fn)
