"""``NeuralODE``: an ``nn.Module`` whose forward pass solves ``dy/dt = f_theta(t, y)``."""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..errors import InvalidArgumentError, ShapeError
from ..problems import ODEProblem
from ..solution import ReturnCode, Solution, SolverStats
from ..solve import AbstractAlgorithm, solve
from ..solvers.ode import BacksolveAdjoint, DirectBackprop, InterpolatingAdjoint, Tsit5

__all__ = ["NeuralODE"]

TimeLike = Union[Sequence[float], torch.Tensor]


class _Autonomous(nn.Module):
    """``f(t, y) = field(y)``: lets a plain network (``nn.Sequential``) be a vector field."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.field(y)


class NeuralODE(nn.Module):
    """Neural ODE layer: maps ``y0`` to the solution of ``dy/dt = f(t, y)``.

    Parameters
    ----------
    vector_field : nn.Module
        Called as ``vector_field(t, y)`` with ``y`` of shape ``(B, D)``
        (``autonomous=False``) or as ``vector_field(y)`` (``autonomous=True``),
        returning ``dy/dt`` of shape ``(B, D)``. ``t`` is a 0-dim tensor when
        the batch shares one step size and a ``(B, 1)`` tensor when each
        trajectory has its own (``batched``).
    solver : opflow ODE algorithm, optional
        Any algorithm ``solve`` accepts for an :class:`~opflow.ODEProblem`
        (``Tsit5``, ``Dopri5``, ``RK4(dt)``, ``Euler(dt)``). Default
        ``Tsit5(rtol=1e-6, atol=1e-8)``.
    sensealg : DirectBackprop, BacksolveAdjoint or InterpolatingAdjoint, optional
        How gradients flow back: ``None`` / ``DirectBackprop()`` records the
        steps; ``BacksolveAdjoint()`` solves the continuous adjoint
        (O(1) memory in steps). The adjoint differentiates with respect to
        the parameters of ``vector_field`` unless ``sensealg.params`` is set.
    t : sequence of float or torch.Tensor, shape (K,)
        Default output times (increasing, at least two); the first one is
        the time of ``y0``. Default ``(0, 1)``.
    autonomous : bool
        Call ``vector_field(y)`` instead of ``vector_field(t, y)``.
    return_trajectory : bool
        If True (default) ``forward`` returns the states at all output times
        ``(K, B, D)``; if False only the last one ``(B, D)``.
    batched : bool, optional
        Give every trajectory its own adaptive step (``ODEProblem(...,
        batched=True)``). Default: False for times shared by the batch (one
        step for the whole batch, error measured over the batch, fewest
        evaluations), True for per-sample times.
    max_steps : int, optional
        Step limit of adaptive solvers (default: the algorithm's).
    record_steps : bool
        Solve with ``dense=True`` so that the solver keeps every step (its
        stages, with their autograd graph under direct backprop): needed by
        :class:`~opflow.layers.regularizers.ErrorRegularizer`. Memory grows
        with the number of steps.

    Attributes
    ----------
    last_stats : SolverStats or None
        Statistics of the last forward solve (``nfe``, ``steps``,
        ``rejects``, ``wall_time``).
    last_solution : Solution or None
        The last forward solve (its ``u`` holds the union of the save times
        for per-sample times).
    last_retcode : ReturnCode or None
        Return code of the last forward solve; anything but ``Success`` also
        raises a ``RuntimeWarning`` (the unreached outputs are NaN).

    Notes
    -----
    **Per-sample (irregular) times.** ``forward(y0, t)`` with ``t`` of shape
    ``(B, K)`` returns ``out[k, b] = y_b(t[b, k])``. All trajectories start
    at the common time ``t.min()`` (where ``y0`` is given). The layer solves
    once, saving at the sorted union of all the times (``saveat``), and
    gathers each sample's own times from those saved states by index. The
    union (rather than the dense output ``sol(t)``) is used because saved
    states are differentiable under both ``DirectBackprop`` and
    ``BacksolveAdjoint`` (the adjoint's forward pass keeps no graph, so its
    dense output carries no gradient), and it costs no memory per step.
    Save times do not shorten adaptive steps (values come from the
    method's interpolant), so a large union costs little extra work.

    Examples
    --------
    >>> import torch, opflow
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    >>> node = opflow.NeuralODE(net, t=torch.linspace(0, 1, 5), autonomous=True)
    >>> y = node(torch.randn(8, 2))
    >>> tuple(y.shape)  # (time, batch, state)
    (5, 8, 2)
    """

    def __init__(self, vector_field: nn.Module, solver: Optional[AbstractAlgorithm] = None,
                 sensealg: Optional[Union[DirectBackprop, BacksolveAdjoint,
                                          InterpolatingAdjoint]] = None,
                 t: TimeLike = (0.0, 1.0), autonomous: bool = False,
                 return_trajectory: bool = True, batched: Optional[bool] = None,
                 max_steps: Optional[int] = None, record_steps: bool = False):
        super().__init__()
        if not isinstance(vector_field, nn.Module):
            raise InvalidArgumentError("vector_field", "an nn.Module", vector_field)
        solver = Tsit5(rtol=1e-6, atol=1e-8) if solver is None else solver
        if not isinstance(solver, AbstractAlgorithm):
            raise InvalidArgumentError("solver", "an opflow ODE algorithm such as Tsit5()", solver)
        kinds = (DirectBackprop, BacksolveAdjoint, InterpolatingAdjoint)
        if sensealg is not None and not isinstance(sensealg, kinds):
            raise InvalidArgumentError("sensealg", "None, DirectBackprop(), BacksolveAdjoint() "
                                       "or InterpolatingAdjoint()", sensealg)
        self.vector_field = vector_field
        # not registered as a submodule: the parameters stay under `vector_field` only
        object.__setattr__(self, "_rhs", _Autonomous(vector_field) if autonomous
                           else vector_field)
        self.solver, self.sensealg = solver, sensealg
        self.autonomous, self.return_trajectory = autonomous, return_trajectory
        self.batched, self.max_steps, self.record_steps = batched, max_steps, record_steps
        t_default = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        self._check_shared(t_default, "t")
        self.t = tuple(t_default.tolist())
        self.last_stats: Optional[SolverStats] = None
        self.last_retcode: Optional[ReturnCode] = None
        self.last_solution: Optional[Solution] = None

    @staticmethod
    def _check_shared(t: torch.Tensor, name: str) -> None:
        if t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise InvalidArgumentError(name, "at least two strictly increasing times", t)

    def _solve(self, y0: torch.Tensor, saveat: torch.Tensor, batched: bool) -> torch.Tensor:
        t0, t1 = float(saveat[0]), float(saveat[-1])
        prob = ODEProblem(self._rhs, y0, (t0, t1), batched=batched)  # type: ignore[arg-type]
        kwargs = {} if self.max_steps is None else {"max_steps": self.max_steps}
        sol = solve(prob, self.solver, saveat=saveat, sensealg=self.sensealg,
                    dense=self.record_steps, **kwargs)
        self.last_stats, self.last_retcode, self.last_solution = sol.stats, sol.retcode, sol
        if not sol.success:
            warnings.warn(f"NeuralODE: the solve stopped early ({sol.retcode}); "
                          "unreached outputs are NaN", RuntimeWarning, stacklevel=3)
        return sol.u

    def forward(self, y0: torch.Tensor, t: Optional[TimeLike] = None) -> torch.Tensor:
        """Solve from ``y0``.

        Parameters
        ----------
        y0 : torch.Tensor, shape (B, D)
            Initial states (any shape with a leading batch dimension works
            for shared times).
        t : sequence of float or torch.Tensor, optional
            ``(K,)`` output times shared by the batch (the first is the
            time of ``y0``), or ``(B, K)`` per-sample times (see Notes of
            the class). Default: the ``t`` given at construction.

        Returns
        -------
        torch.Tensor
            ``(K, B, D)`` states at the output times, or ``(B, D)`` (the
            last output time of each sample) when ``return_trajectory`` is
            False.
        """
        if not isinstance(y0, torch.Tensor) or y0.ndim < 1:
            raise ShapeError("y0", "a tensor with a leading batch dimension (B, D)", y0)
        if t is None:
            t = self.t
        tt = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
        if tt.ndim == 1:
            self._check_shared(tt, "t")
            out = self._solve(y0, tt, bool(self.batched))
        elif tt.ndim == 2:
            out = self._forward_per_sample(y0, tt)
        else:
            raise ShapeError("t", "output times of shape (K,) or (B, K)", tt)
        return out if self.return_trajectory else out[-1]

    def _forward_per_sample(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = y0.shape[0]
        if t.shape[0] != B:
            raise ShapeError("t", f"per-sample times of shape ({B}, K) (B = y0.shape[0])", t)
        if t.shape[1] > 1 and not bool((t[:, 1:] >= t[:, :-1]).all()):
            raise InvalidArgumentError("t", "non-decreasing times along each row", t)
        union = torch.unique(t.detach())  # sorted
        if union.numel() == 1:  # every requested time is the start time: nothing to solve
            self.last_stats, self.last_retcode = SolverStats(), ReturnCode.Success
            self.last_solution = None
            return y0.unsqueeze(0).expand(t.shape[1], *y0.shape)
        batched = True if self.batched is None else self.batched
        ys = self._solve(y0, union, batched)  # (U, B, ...)
        idx = torch.searchsorted(union, t.detach().contiguous())  # (B, K)
        rows = torch.arange(B, device=y0.device)
        return ys[idx.T, rows[None, :]]  # (K, B, ...)

    def extra_repr(self) -> str:
        return (f"solver={self.solver!r}, sensealg={self.sensealg!r}, t={self.t}, "
                f"autonomous={self.autonomous}")
