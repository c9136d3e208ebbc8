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
    Failure = "Failure"              # anything else (an iterative solver did not converge)

    def __str__(self) -> str:
        return self.value


@dataclass
class SolverStats:
    """Work done by a solve: accepted steps (the most any trajectory took),
    rejected steps (summed over trajectories), right-hand-side evaluations
    (each evaluates the whole batch), loop iterations and wall time in s."""

    steps: int = 0
    rejects: int = 0
    nfe: int = 0
    iterations: int = 0
    wall_time: float = 0.0

    def as_dict(self) -> dict:
        return dict(steps=self.steps, rejects=self.rejects, nfe=self.nfe,
                    iterations=self.iterations, wall_time=self.wall_time)


@dataclass
class Solution:
    """Result of :func:`opflow.solve`.

    Attributes
    ----------
    t : torch.Tensor, shape (K,)
        Save times (empty for a steady problem, whose ``u`` has no time dim).
    u : torch.Tensor, Field or tuple
        States at ``t`` stacked along a new leading dimension: a tensor of
        shape ``(K, *u0.shape)``, a Field whose batch dims are
        ``(K, *u0.batch_shape)``, or a tuple of such tensors.
    retcode : ReturnCode
    stats : SolverStats
    problem, alg : the inputs of the solve.
    record : optional
        The solver's per-step data when kept (``dense=True`` for ODEs: step
        starts, sizes, states and stage slopes), e.g. for error regularizers.
    """

    t: torch.Tensor
    u: Any
    retcode: ReturnCode
    stats: SolverStats
    problem: Any = None
    alg: Any = None
    interpolant: Optional[Callable[[torch.Tensor], Any]] = field(default=None, repr=False)
    record: Any = field(default=None, repr=False)  # per-step solver data (dense solves)

    @property
    def success(self) -> bool:
        return self.retcode == ReturnCode.Success

    def __call__(self, t) -> Any:
        """State at time(s) ``t`` by the solver's interpolant.

        A scalar ``t`` gives a state shaped like ``u0``; a 1-D ``t`` of
        length ``M`` stacks ``M`` states like ``u``. Needs ``dense=True``
        in ``solve`` for adaptive methods.
        """
        if self.interpolant is None:
            raise SolverError("this Solution has no interpolant: call solve(..., dense=True)")
        tq = torch.as_tensor(t, dtype=self.t.dtype)
        scalar = tq.ndim == 0
        tq = tq.reshape(-1)
        lo, hi = self.problem.tspan if self.problem is not None else (self.t[0], self.t[-1])
        if bool(((tq < lo - 1e-12) | (tq > hi + 1e-12)).any()):
            raise InvalidArgumentError("t", f"times within the solved span [{lo}, {hi}]", t)
        out = self.interpolant(tq)
        if not scalar:
            return out
        if isinstance(out, Field):
            return out[0]
        return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]

    def to_xarray(self):
        """``xarray.Dataset`` with a ``t`` dimension (and ``sample`` when batched)."""
        import xarray as xr

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
