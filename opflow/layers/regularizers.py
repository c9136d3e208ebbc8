"""Solver-aware regularizers for neural ODEs ("Opening the Blackbox", Pal et al. 2021).

:class:`ErrorRegularizer` (ERNODE) adds ``R_E = sum_n E_n |h_n|`` to the loss:
the adaptive solver's local error estimates ``E_n`` weighted by the step
sizes ``h_n``. Minimising it favours dynamics the solver integrates in few
steps, so training ends with far fewer function evaluations at equal fit.

The estimates are those the step-size controller used, rebuilt from the
steps the solver recorded (``solve(..., dense=True)`` /
``NeuralODE(record_steps=True)``): ``E_n = ||h_n sum_i e_i k_i||`` with
``e = b - b_embedded`` of the method's tableau and ``k_i`` its stage slopes.
Under direct backprop the slopes carry their autograd graph, so gradients
of ``R_E`` flow through the solver's internals into the vector field.

:class:`StiffnessRegularizer` (SRNODE) adds ``R_S = sum_n lambda_n``, the
solver's estimates of the dominant eigenvalue magnitude of the Jacobian at
each step, ``lambda_n = ||k_S - k_{S-1}|| / ||g_S - g_{S-1}||`` from the last
two stages (both at ``t + h`` in Tsit5 and Dopri5; ``g_i`` are the stage
states). Smaller estimates mean less stiff learned dynamics, which an
explicit solver integrates with larger stable steps.
"""

from __future__ import annotations

from typing import Union

import torch

from ..errors import InvalidArgumentError, SolverError
from ..solution import Solution
from ..solvers.ode.runge_kutta import StepRecord
from .neural_ode import NeuralODE

__all__ = ["ErrorRegularizer", "StiffnessRegularizer", "local_error_estimates",
           "stiffness_estimates"]


def _step_record(sol: Solution) -> StepRecord:
    """The per-step record kept by a dense adaptive solve (``Solution.record``)."""
    if not isinstance(sol.record, StepRecord):
        raise SolverError("the error regularizer needs the solver's steps: solve with "
                          "dense=True (NeuralODE(..., record_steps=True))")
    return sol.record


def _adaptive_tableau(sol: Solution):
    tab = getattr(sol.alg, "tableau", None)
    if tab is None or tab.b_error is None:
        raise InvalidArgumentError("sol", "a solve by an adaptive method (Tsit5, Dopri5)",
                                   sol.alg)
    return tab


def _solution(source) -> Solution:
    sol = source.last_solution if isinstance(source, NeuralODE) else source
    if not isinstance(sol, Solution):
        raise InvalidArgumentError("source", "a NeuralODE after a forward pass, or a Solution",
                                   source)
    return sol


def local_error_estimates(sol: Solution) -> tuple[torch.Tensor, torch.Tensor]:
    """Local error estimates and step sizes of every recorded step of an adaptive solve.

    Parameters
    ----------
    sol : Solution
        From ``solve(ODEProblem, AdaptiveRK, dense=True)``.

    Returns
    -------
    err : torch.Tensor, shape (S, B, D)
        ``h_n sum_i e_i k_i`` for every loop iteration ``n`` and trajectory
        (``B = 1`` and ``D`` the whole state for an unbatched problem).
        Differentiable under direct backprop.
    h : torch.Tensor, shape (S, B)
        Accepted step sizes (0 for rejected steps of a batched solve, whose
        estimates thus carry no weight in :class:`ErrorRegularizer`).
    """
    tab = _adaptive_tableau(sol)
    rec = _step_record(sol)
    e = torch.tensor(tab.b_error, dtype=rec.k.dtype, device=rec.k.device)
    err = torch.einsum("s,nsbd->nbd", e, rec.k) * rec.h[..., None]
    return err, rec.h


class _SolverRegularizer:
    """``weight * penalty(solution)`` for a NeuralODE's last solve or a Solution."""

    def __init__(self, weight: float = 1.0):
        if not weight >= 0:
            raise InvalidArgumentError("weight", "a non-negative factor", weight)
        self.weight = float(weight)

    def penalty(self, sol: Solution) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, source: Union[NeuralODE, Solution]) -> torch.Tensor:
        """The weighted penalty as a 0-dim tensor."""
        return self.weight * self.penalty(_solution(source))


class ErrorRegularizer(_SolverRegularizer):
    """ERNODE regularizer ``R_E = mean_b sum_n ||err_{n,b}||_rms |h_{n,b}|``.

    Parameters
    ----------
    weight : float
        Factor applied to ``R_E`` (the ``lambda`` of the paper).

    Notes
    -----
    Call it on a :class:`~opflow.layers.NeuralODE` built with
    ``record_steps=True`` right after its forward pass (it reads
    ``last_solution``), or on a ``Solution`` from ``solve(..., dense=True)``.
    The norm of a step's error is the RMS over the state of one trajectory,
    without tolerance scaling (the controller divides by
    ``atol + rtol |y|``; the regularizer measures the error itself). The
    step sizes enter as constants (the controller is not differentiated).
    Under ``BacksolveAdjoint`` the recorded steps have no graph and the
    regularizer contributes no gradient: use direct backprop.

    Examples
    --------
    >>> import torch, opflow
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    >>> node = opflow.NeuralODE(net, t=(0.0, 1.0), autonomous=True, record_steps=True)
    >>> y = node(torch.randn(8, 2))
    >>> loss = y[-1].pow(2).mean() + opflow.ErrorRegularizer(weight=0.1)(node)
    >>> loss.backward()
    """

    def penalty(self, sol: Solution) -> torch.Tensor:
        """``R_E`` of one solve (without the weight).

        Parameters
        ----------
        sol : Solution
            A solve that kept its steps (``record_steps=True`` or ``dense=True``).

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        err, h = local_error_estimates(sol)
        tiny = torch.finfo(err.dtype).tiny  # keeps the gradient finite for zero errors
        norms = err.square().mean(dim=-1).clamp_min(tiny).sqrt()  # (S, B)
        return (norms * h.abs()).sum(dim=0).mean()


def stiffness_estimates(sol: Solution) -> tuple[torch.Tensor, torch.Tensor]:
    """Dominant-eigenvalue estimates of every recorded step of an adaptive solve.

    Parameters
    ----------
    sol : Solution
        From ``solve(ODEProblem, AdaptiveRK, dense=True)``.

    Returns
    -------
    lam : torch.Tensor, shape (S, B)
        ``||k_S - k_{S-1}|| / ||g_S - g_{S-1}||`` per step and trajectory:
        for a linear problem ``y' = A y`` this is a Rayleigh-like quotient of
        ``A`` bounded by its spectral norm. Differentiable under direct backprop.
    h : torch.Tensor, shape (S, B)
        Step sizes (0 for rejected steps of a batched solve).
    """
    tab = _adaptive_tableau(sol)
    rec = _step_record(sol)
    if len(tab.c) < 2:
        raise InvalidArgumentError("sol", "a method with at least two stages", sol.alg)
    k = rec.k  # (S, stages, B, D)
    n = len(tab.c)  # tab.a holds the rows of stages 2..n (stage 1 is y itself)
    rows = [(0.0,) * n] + [tuple(r) + (0.0,) * (n - len(r)) for r in tab.a]
    a = torch.tensor(rows[-2:], dtype=k.dtype, device=k.device)  # last two stage rows
    # g_i - g_j = h sum_m (a_im - a_jm) k_m: the stage states share y and differ by slopes
    dg = torch.einsum("m,nmbd->nbd", a[1] - a[0], k) * rec.h[..., None]
    dk = k[:, -1] - k[:, -2]
    tiny = torch.finfo(k.dtype).tiny
    lam = dk.norm(dim=-1) / dg.norm(dim=-1).clamp_min(tiny)
    return torch.where(rec.h != 0, lam, torch.zeros_like(lam)), rec.h


class StiffnessRegularizer(_SolverRegularizer):
    """SRNODE regularizer ``R_S = mean_b sum_n lambda_{n,b}`` over accepted steps.

    Parameters
    ----------
    weight : float
        Factor applied to ``R_S``.

    Notes
    -----
    Used like :class:`ErrorRegularizer`: on a :class:`~opflow.layers.NeuralODE`
    built with ``record_steps=True`` right after its forward pass, or on a
    ``Solution`` from ``solve(..., dense=True)``; direct backprop only. See
    :func:`stiffness_estimates` for the estimate.

    Examples
    --------
    >>> import torch, opflow
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    >>> node = opflow.NeuralODE(net, t=(0.0, 1.0), autonomous=True, record_steps=True)
    >>> y = node(torch.randn(8, 2))
    >>> opflow.StiffnessRegularizer(weight=0.1)(node).shape  # a scalar to add to the loss
    torch.Size([])
    """

    def penalty(self, sol: Solution) -> torch.Tensor:
        """``R_S`` of one solve (without the weight).

        Parameters
        ----------
        sol : Solution
            A solve that kept its steps (``record_steps=True`` or ``dense=True``).

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        lam, _ = stiffness_estimates(sol)
        return lam.sum(dim=0).mean()
