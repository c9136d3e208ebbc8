"""Residual-based adaptive refinement (RAR) of the collocation points.

Lu, Meng, Mao, Karniadakis (DeepXDE, SIAM Review 2021): every ``every``
optimiser steps the PDE residual is evaluated on a large set of candidate
points and the ``k`` candidates with the largest ``|residual|`` join the
collocation set, so points gather where the network is still wrong (sharp
layers, shocks) instead of being spread uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ...errors import InvalidArgumentError
from .domains import Domain
from .sampling import SAMPLERS, check_count

__all__ = ["RAR", "rar_select"]


@dataclass(frozen=True)
class RAR:
    """Settings of residual-based adaptive refinement for :class:`~opflow.solvers.pinn.PINN`.

    Parameters
    ----------
    every : int
        Adam steps between two refinements (>= 1); the first happens after ``every`` steps.
    k : int
        Points added per refinement (>= 1).
    candidates : int
        Candidate points drawn (fresh each time) from the domain's interior (>= k).
    rounds : int, optional
        Most refinements; default: as many as the Adam steps allow.
    sampler : {"uniform", "latin_hypercube", "lhs", "sobol"}
        Sampler of the candidates.

    Examples
    --------
    >>> import opflow
    >>> rar = opflow.RAR(every=100, k=10)  # PINN(..., refine=rar)
    >>> rar.due(100, done=0), rar.due(50, done=0)
    (True, False)
    """

    every: int = 100
    k: int = 10
    candidates: int = 10000
    rounds: Optional[int] = None
    sampler: str = "uniform"

    def __post_init__(self):
        check_count(self.every, "every", 1)
        check_count(self.k, "k", 1)
        check_count(self.candidates, "candidates", 1)
        if self.candidates < self.k:
            raise InvalidArgumentError("candidates", f"at least k = {self.k} points",
                                       self.candidates)
        if self.rounds is not None:
            check_count(self.rounds, "rounds", 0)
        if self.sampler not in SAMPLERS:
            raise InvalidArgumentError("sampler", f"one of {sorted(SAMPLERS)}", self.sampler)

    def due(self, step: int, done: int) -> bool:
        """Whether a refinement happens before Adam step ``step`` (0-based), ``done`` so far.

        Parameters
        ----------
        step : int
            The Adam step about to run, from 0.
        done : int
            Refinements made so far.

        Returns
        -------
        bool
        """
        return step > 0 and step % self.every == 0 and (self.rounds is None or done < self.rounds)


def rar_select(residual: Callable[[torch.Tensor], torch.Tensor], domain: Domain, k: int,
               candidates: int, sampler: str = "uniform", seed: int = 0,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """The ``k`` of ``candidates`` fresh interior points with the largest residual.

    Parameters
    ----------
    residual : callable ``(points: Tensor (M, dim), requires_grad) -> Tensor (M, r)``
        The PDE residual at the points (its norm over the ``r`` components ranks them).
    domain : Domain
    k, candidates : int
    sampler : str
    seed : int
    dtype : torch.dtype, optional
        Dtype of the candidate points (default: torch's default).

    Returns
    -------
    torch.Tensor, shape (k, dim), detached
    """
    pts = domain.sample_interior(candidates, sampler, seed)
    if dtype is not None:
        pts = pts.to(dtype)
    r = residual(pts.requires_grad_(True)).detach()
    score = r.reshape(len(pts), -1).norm(dim=1)
    score = torch.nan_to_num(score, nan=float("inf"))  # a NaN residual is the worst point
    top = torch.topk(score, k).indices
    return pts.detach()[top]
