"""What ``solve`` returns: values, times, a return code and statistics."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .errors import InvalidArgumentError, SolverError
from .field import Field

__all__ = ["ReturnCode", "SolverStats", "Solution"]


class ReturnCode(str, enum.Enum):
    """Why a solve stopped. Only ``Success`` means the whole span was covered."""

    Success = "Success"
    MaxIters = "MaxIters"            # hit the step limit (stiff or too tight a tolerance)
    MaxTime = "MaxTime"              # hit the wall-clock limit (``max_seconds``)
    DtLessThanMin = "DtLessThanMin"  # the step size collapsed
    Unstable = "Unstable"            # the state became NaN or Inf
    Stalled = "Stalled"              # an iteration stopped making progress short of the tolerance
    Failure = "Failure"              # anything else (an iterative solver did not converge)

    def __str__(self) -> str:
        return self.value


@dataclass
class SolverStats:
    """Work done by a solve: accepted steps (the most any trajectory took),
    rejected steps (summed over trajectories), right-hand-side evaluations
    (each evaluates the whole batch), loop iterations, Jacobian evaluations,
    linear-solver iterations (Krylov operator applications, or one per dense
    solve) and wall time in s.

    Parameters
    ----------
    steps : int
        Accepted steps (the most any trajectory took; multigrid: 0).
    rejects : int
        Rejected steps, summed over trajectories.
    nfe : int
        Right-hand-side evaluations (multigrid: operator applications).
    iterations : int
        Loop iterations (multigrid: cycles).
    wall_time : float
        Wall-clock time of the solve, in seconds.
    jacobians : int
        Jacobian evaluations (implicit methods, Newton iterations).
    linear_iterations : int
        Linear-solver work: Krylov operator applications, or one per dense solve.

    Examples
    --------
    >>> import opflow
    >>> opflow.SolverStats(steps=3, nfe=18).as_dict()["nfe"]
    18
    """

    steps: int = 0
    rejects: int = 0
    nfe: int = 0
    iterations: int = 0
    wall_time: float = 0.0
    jacobians: int = 0
    linear_iterations: int = 0

    def as_dict(self) -> dict:
        """The statistics as a plain dict (for files and logs)."""
        return dict(steps=self.steps, rejects=self.rejects, nfe=self.nfe,
                    iterations=self.iterations, wall_time=self.wall_time,
                    jacobians=self.jacobians, linear_iterations=self.linear_iterations)


@dataclass
class Solution:
    """Result of :func:`opflow.solve`: the one contract every solver returns.

    Three kinds of solution share it (``sol.kind``):

    ``"trajectory"`` (ODE, SDE, pseudo-spectral, neural ODE)
        ``t`` holds the ``K`` save times; ``u`` stacks the states at ``t``
        along a new leading dimension; ``sol(t)`` is the state at any time
        in ``tspan`` by the solver's dense output, where it keeps one
        (ODE solvers with ``dense=True``). Without one, ``sol(t)`` raises a
        :class:`~opflow.errors.SolverError` that says how to get the times
        you want (``dense=True``, or ``saveat``).
    ``"steady"`` (multigrid)
        ``t`` is empty; ``u`` is the solution Field (no time dimension);
        ``sol(...)`` raises a :class:`~opflow.errors.SolverError`: there is
        no time to ask for.
    ``"function"`` (PINN, LPINN)
        ``t`` is empty; ``u`` is the trained function: ``sol.u(grid)``
        gives a Field on an :class:`~opflow.Grid`, ``sol.u(points)`` a
        tensor; ``sol(x)`` is the same call.

    The parameters below are also the attributes of the same names.

    Parameters
    ----------
    t : torch.Tensor, shape (K,)
        Save times (empty for steady and function solutions).
    u : torch.Tensor, Field, tuple or callable
        Trajectory: the states at ``t``, a tensor of shape ``(K,
        *u0.shape)``, a Field whose batch dims are ``(K, *u0.batch_shape)``,
        or a tuple of such tensors. Steady: a Field. Function: the trained
        function (see above).
    retcode : ReturnCode
        Only ``Success`` means the whole problem was solved.
    stats : SolverStats
        The work done.
    problem, alg : problem and algorithm objects, optional
        The inputs of the solve.
    interpolant : callable, optional
        ``t -> state``: the dense output behind ``sol(t)``, when kept.
    record : optional
        The solver's per-step data when kept (``dense=True`` for ODEs: step
        starts, sizes, states and stage slopes), e.g. for error regularizers.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.ODEProblem(lambda t, u: -u, torch.ones(2, dtype=torch.float64),
    ...                          tspan=(0.0, 1.0))
    >>> sol = opflow.solve(prob, opflow.Dopri5(rtol=1e-8, atol=1e-10), dense=True)
    >>> sol.success, sol.stats.steps > 0
    (True, True)
    >>> round(float(sol(0.25)[0]), 6)  # dense output: exp(-0.25)
    0.778801
    """

    t: torch.Tensor
    u: Any
    retcode: ReturnCode
    stats: SolverStats
    problem: Any = None
    alg: Any = None
    # t -> state; a function solution's trained function (LPINN's takes a Grid)
    interpolant: Optional[Callable[..., Any]] = field(default=None, repr=False)
    record: Any = field(default=None, repr=False)  # per-step solver data (dense solves)

    @property
    def success(self) -> bool:
        return self.retcode == ReturnCode.Success

    @property
    def kind(self) -> str:
        """``"trajectory"``, ``"steady"`` or ``"function"`` (see the class notes)."""
        if callable(self.u) and not isinstance(self.u, (torch.Tensor, Field, tuple)):
            return "function"
        return "steady" if self.t.numel() == 0 else "trajectory"

    def __call__(self, t, *args, **kwargs) -> Any:
        """Trajectory: the state at time(s) ``t``; function: ``sol.u(t, ...)``.

        For a trajectory, a scalar ``t`` gives a state shaped like ``u0``
        and a 1-D ``t`` of length ``M`` stacks ``M`` states like ``u``.

        Raises
        ------
        SolverError
            A steady solution, or a trajectory without dense output.
        InvalidArgumentError
            A time outside the solved span.
        """
        kind = self.kind
        if kind == "function":
            return self.u(t, *args, **kwargs)
        name = type(self.alg).__name__ if self.alg is not None else "the solver"
        if kind == "steady":
            raise SolverError(f"this is a steady solution ({name}): it has no time axis; "
                              "the solution is sol.u")
        if self.interpolant is None:
            raise SolverError(self._no_interpolant_advice(name))
        return self._interpolate(t)

    def _no_interpolant_advice(self, name: str) -> str:
        from .solve import solver_keywords

        keywords = solver_keywords(self.problem, self.alg) if self.problem is not None else None
        if keywords is not None and "dense" in keywords:
            return (f"this Solution ({name}) kept no dense output: call solve(..., dense=True) "
                    "to evaluate sol(t) between save times")
        return (f"{name} has no dense output: pass the times you want as "
                "solve(..., saveat=[...]) and read sol.u")

    def _interpolate(self, t) -> Any:
        tq = torch.as_tensor(t, dtype=self.t.dtype)
        scalar = tq.ndim == 0
        tq = tq.reshape(-1)
        ends = self.problem.tspan if self.problem is not None else (self.t[0], self.t[-1])
        lo, hi = min(ends), max(ends)  # a span solved backwards runs from t0 down to t1
        if bool(((tq < lo - 1e-12) | (tq > hi + 1e-12)).any()):
            raise InvalidArgumentError("t", f"times within the solved span [{lo}, {hi}]", t)
        out = self.interpolant(tq)  # type: ignore[misc]  # None was refused above
        if not scalar:
            return out
        if isinstance(out, Field):
            return out[0]
        return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]

    def to_xarray(self):
        """``xarray.Dataset`` with a ``t`` dimension (and ``sample`` when batched)."""
        import xarray as xr

        if self.kind == "function":
            raise SolverError(f"a {type(self.alg).__name__} solution is a function, not values: "
                              "evaluate it on a grid first, sol.u(grid).to_xarray()")
        batched = bool(getattr(self.problem, "batched", False))
        t = self.t.detach().cpu().numpy()
        attrs = {"retcode": str(self.retcode), "solver": type(self.alg).__name__,
                 **{f"stats_{k}": v for k, v in self.stats.as_dict().items()}}
        if self.t.numel() == 0 and isinstance(self.u, Field):  # steady problem: no time axis
            ds = self.u.with_values(self.u.values, attrs={}).to_xarray()
            ds.attrs.update(attrs)
            return ds
        if isinstance(self.u, Field):
            nb = len(self.u.batch_shape) - 1
            bdims = ["t"] + (["sample"] if nb == 1 else [f"batch_{i}" for i in range(nb)])
            ds = self.u.to_xarray(batch_dims=bdims)
            ds = ds.assign_coords(t=("t", t, {"long_name": "time"}))
            ds.attrs.update(attrs)
            return ds
        tensors = self.u if isinstance(self.u, tuple) else (self.u,)
        names = ["u"] if len(tensors) == 1 else [f"u{i}" for i in range(len(tensors))]
        data_vars = {}
        for name, v in zip(names, tensors):
            arr = v.detach().cpu().numpy()
            lead = ["t"] + (["sample"] if batched else [])
            rest = [f"{name}_dim{i}" for i in range(arr.ndim - len(lead))]
            data_vars[name] = ((*lead, *rest), arr)
        return xr.Dataset(data_vars, coords={"t": ("t", t, {"long_name": "time"})}, attrs=attrs)
