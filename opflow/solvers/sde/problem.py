"""The stochastic initial value problem, as data (the SDE twin of ``ODEProblem``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...errors import InvalidArgumentError
from ...field import Field
from ...problems import check_arity, check_initial_state, check_tspan, state_tensors

__all__ = ["SDEProblem", "NOISE_TYPES", "SDE_TYPES"]

NOISE_TYPES = ("diagonal", "scalar", "additive", "general")
SDE_TYPES = ("ito", "stratonovich")


@dataclass(frozen=True)
class SDEProblem:
    """The stochastic initial value problem ``du = f(t, u) dt + g(t, u) dW``, ``u(t0) = u0``.

    Parameters
    ----------
    drift : callable
        ``f(t, u)``, or ``f(t, u, p)`` when ``p`` is given; returns the
        structure and shape of ``u``. May be an ``nn.Module``.
    diffusion : callable
        ``g(t, u)`` or ``g(t, u, p)``; its layout depends on ``noise`` (see
        below). May be an ``nn.Module``.
    u0 : torch.Tensor, Field or tuple of torch.Tensor
        Initial state, floating point and finite. The usual layout is a
        tensor of shape ``(B, D)``: ``B`` independent trajectories with
        ``D`` unknowns each. Fields and tuples are flattened to ``(B, D)``
        inside the solver (``D`` is the number of unknowns per trajectory).
    tspan : (float, float)
        ``(t0, t1)``. With ``t1 < t0`` the solve runs backwards in time (a
        step from ``t`` to ``t - h`` takes the increment ``W(t - h) - W(t)``);
        with ``t1 == t0`` it returns the initial state.
    p : optional
        Parameters passed as third argument to ``drift`` and ``diffusion``.
    noise : {"diagonal", "scalar", "additive", "general"}
        Layout of ``g(t, u)`` and of the Brownian motion ``W``, for a tensor
        state ``u`` of shape ``(B, D)``:

        ============  ====================  ===========  ========================
        noise         ``g(t, u)`` shape     ``W`` shape   increment ``g dW``
        ============  ====================  ===========  ========================
        ``diagonal``  ``(B, D)``            ``(B, D)``   ``g * dW`` (elementwise)
        ``scalar``    ``(B, D)``            ``(B, 1)``   ``g * dW`` (one shared W)
        ``additive``  ``(B, D)`` or         ``(B, D)``   ``g * dW``
                      ``(B, D, m)``         ``(B, m)``   ``g @ dW``
        ``general``   ``(B, D, m)``         ``(B, m)``   ``g @ dW``
        ============  ====================  ===========  ========================

        ``diagonal`` assumes that ``g_i`` depends on ``u_i`` only (and on
        ``t``): that is what makes Milstein's scheme and the Ito adjoint
        correct. ``additive`` means ``g`` does not depend on ``u`` (it may
        depend on ``t``). For a Field or tuple state, ``diagonal``,
        ``scalar`` and ``additive`` diffusions return the structure of ``u``,
        and ``general`` ones a tensor ``(*batch, D, m)`` over the flattened
        unknowns. Without ``batched`` the leading ``B`` is absent.
    sde_type : {"ito", "stratonovich"}
        How ``g dW`` is read. Every algorithm solves both forms, except
        ``ReversibleHeun`` (Stratonovich only, or additive noise).
    batched : bool
        If True (the default), the leading dimension of ``u0`` (all batch
        dims of a Field) indexes independent trajectories, each driven by its
        own Brownian motion. If False, ``u0`` is one trajectory.
    brownian_dim : int, optional
        ``m``, the number of Brownian motions for ``general`` (and matrix
        ``additive``) noise; found from one evaluation of ``g`` at ``t0``
        when None. It must be 1 for ``scalar`` noise and ``D`` for
        ``diagonal`` noise, if given.

    Notes
    -----
    Time reaches ``drift`` and ``diffusion`` as a 0-dim tensor: every
    trajectory of the batch shares the time grid of the fixed-step solvers.

    Examples
    --------
    >>> import torch, opflow
    >>> prob = opflow.SDEProblem(lambda t, u: -u, lambda t, u: 0.1 * torch.ones_like(u),
    ...                          torch.ones(16, 1), tspan=(0.0, 1.0))  # 16 paths
    >>> sol = opflow.solve(prob, opflow.EulerMaruyama(dt=0.01), seed=0)
    >>> sol.retcode, tuple(sol.u.shape)
    (<ReturnCode.Success: 'Success'>, (2, 16, 1))
    """

    drift: Callable[..., Any]
    diffusion: Callable[..., Any]
    u0: Any
    tspan: tuple[float, float]
    p: Any = None
    noise: str = "diagonal"
    sde_type: str = "ito"
    batched: bool = True
    brownian_dim: Optional[int] = None

    def __post_init__(self):
        if not callable(self.drift):
            raise InvalidArgumentError("drift", "a callable f(t, u) or f(t, u, p)", self.drift)
        if not callable(self.diffusion):
            raise InvalidArgumentError("diffusion", "a callable g(t, u) or g(t, u, p)",
                                       self.diffusion)
        check_arity(self.drift, self.p, "drift")
        check_arity(self.diffusion, self.p, "diffusion")
        object.__setattr__(self, "tspan", check_tspan(self.tspan, reversible=True))
        if self.noise not in NOISE_TYPES:
            raise InvalidArgumentError("noise", f"one of {NOISE_TYPES}", self.noise)
        if self.sde_type not in SDE_TYPES:
            raise InvalidArgumentError("sde_type", f"one of {SDE_TYPES}", self.sde_type)
        if not isinstance(self.batched, bool):
            raise InvalidArgumentError("batched", "True or False", self.batched)
        tensors = check_initial_state(self.u0)
        if self.batched:
            if isinstance(self.u0, Field):
                ok = bool(self.u0.batch_shape)
            else:
                ok = all(u.ndim >= 1 for u in tensors) and len({u.shape[0] for u in tensors}) == 1
            if not ok:
                raise InvalidArgumentError(
                    "u0", "a leading batch dimension shared by every tensor (batched=True)",
                    [tuple(u.shape) for u in tensors])
        m = self.brownian_dim
        if m is not None:
            if isinstance(m, bool) or not isinstance(m, int) or m <= 0:
                raise InvalidArgumentError("brownian_dim", "a positive integer or None", m)
            if self.noise == "scalar" and m != 1:
                raise InvalidArgumentError("brownian_dim", "1 (or None) for noise='scalar'", m)
            if self.noise == "diagonal" and m != self.state_size:
                raise InvalidArgumentError(
                    "brownian_dim", f"{self.state_size} (the state size, or None) for "
                    "noise='diagonal'", m)

    @property
    def state_size(self) -> int:
        """``D``: unknowns per trajectory."""
        tensors = state_tensors(self.u0)
        if isinstance(self.u0, Field):
            lead = len(self.u0.batch_shape) if self.batched else 0
        else:
            lead = 1 if self.batched else 0
        return sum(u[(0,) * lead].numel() for u in tensors)
