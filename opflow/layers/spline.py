"""Natural cubic spline through irregularly sampled observations (a controlled path).

The spline ``X(t)`` of observations ``(t_i, x_i)`` is what the stable neural
SDEs of :mod:`opflow.layers.neural_sde` feed to their drift: a continuous,
twice differentiable path through the data, defined at any time the solver
asks for. Everything is built from torch operations, so gradients flow to the
observations (and to the knot times).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidArgumentError, ShapeError

__all__ = ["NaturalCubicSpline"]


class NaturalCubicSpline:
    """Natural cubic spline interpolation of ``(t_i, x_i)``, one spline per sample.

    Between knots the spline is a cubic; it passes through every observation,
    has continuous first and second derivatives, and zero second derivative
    at the first and last knot ("natural" end conditions). Outside
    ``[t_0, t_{N-1}]`` the end cubic pieces are extended.

    Parameters
    ----------
    t : torch.Tensor or sequence of float, shape (N,) or (B, N)
        Knot times, strictly increasing along the last dimension. A 1-D
        tensor is shared by the batch; a 2-D one gives each sample its own
        (irregular) times.
    x : torch.Tensor, shape (B, N, C)
        Observations: ``B`` samples, ``N`` times, ``C`` channels. ``N >= 2``
        (two knots give the straight line).

    Notes
    -----
    The second derivatives ``M_i`` at the knots solve the tridiagonal system
    ``h_{i-1} M_{i-1} + 2 (h_{i-1} + h_i) M_i + h_i M_{i+1} =
    6 (d_i - d_{i-1})`` with ``d_i = (x_{i+1} - x_i) / h_i`` and
    ``M_0 = M_{N-1} = 0``. It is solved once, at construction, as a dense
    batched system (``torch.linalg.solve``; fine for the tens to hundreds
    of observations of a time series).

    Examples
    --------
    >>> import torch, opflow
    >>> t = torch.linspace(0, 1, 5)
    >>> x = torch.stack([t ** 2, t], dim=-1)[None]  # (batch 1, 5 times, 2 channels)
    >>> spline = opflow.NaturalCubicSpline(t, x)
    >>> spline.evaluate(torch.tensor(0.5))  # at a knot: the data
    tensor([[0.2500, 0.5000]])
    """

    def __init__(self, t: torch.Tensor | Sequence[float], x: torch.Tensor):
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or not x.is_floating_point():
            raise ShapeError("x", "a floating-point tensor of shape (B, N, C)", x)
        B, N, C = x.shape
        if N < 2:
            raise ShapeError("x", "at least two observations along dim 1 (N >= 2)", x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 1:
            t = t.expand(B, -1)
        if t.ndim != 2 or tuple(t.shape) != (B, N):
            raise ShapeError("t", f"times of shape ({N},) or ({B}, {N}) matching x", t)
        if not bool((t[:, 1:] > t[:, :-1]).all()):
            raise InvalidArgumentError("t", "strictly increasing times along the last dim", t)
        self.t, self.x = t, x
        self.batch, self.length, self.channels = B, N, C
        h = t[:, 1:] - t[:, :-1]  # (B, N-1)
        self.h = h
        M = torch.zeros_like(x)
        if N > 2:
            d = (x[:, 1:] - x[:, :-1]) / h[..., None]  # (B, N-1, C)
            rhs = 6.0 * (d[:, 1:] - d[:, :-1])  # (B, N-2, C)
            diag = 2.0 * (h[:, :-1] + h[:, 1:])  # (B, N-2)
            off = h[:, 1:-1]  # (B, N-3)
            A = torch.diag_embed(diag) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
            inner = torch.linalg.solve(A, rhs)
            M = torch.cat([M[:, :1], inner, M[:, :1]], dim=1)
        self.M = M  # (B, N, C) second derivatives at the knots

    def _piece(self, t: torch.Tensor):
        """Interval index and local quantities for query times of shape (B, Q)."""
        idx = torch.searchsorted(self.t.contiguous(), t.contiguous(), right=True) - 1
        idx = idx.clamp(0, self.length - 2)  # (B, Q)
        ti = torch.gather(self.t, 1, idx)
        hi = torch.gather(self.h, 1, idx)
        gidx = idx[..., None].expand(-1, -1, self.channels)
        x0, x1 = torch.gather(self.x, 1, gidx), torch.gather(self.x, 1, gidx + 1)
        m0, m1 = torch.gather(self.M, 1, gidx), torch.gather(self.M, 1, gidx + 1)
        a = (ti + hi - t)[..., None]  # distance to the right knot
        b = (t - ti)[..., None]  # distance to the left knot
        return hi[..., None], a, b, x0, x1, m0, m1

    def _queries(self, t) -> tuple[torch.Tensor, str]:
        t = torch.as_tensor(t, dtype=self.x.dtype, device=self.x.device)
        B = self.batch
        if t.ndim == 0:
            return t.reshape(1, 1).expand(B, 1), "scalar"
        if t.ndim == 1:
            return t.reshape(1, -1).expand(B, -1), "shared"
        if t.ndim == 2 and t.shape[0] == B:
            return t, "grid"
        raise ShapeError("t", f"a scalar, a 1-D tensor or a ({B}, Q) tensor of query times", t)

    @staticmethod
    def _shape_out(v: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "scalar":
            return v[:, 0]  # (B, C)
        return v  # (B, Q, C)

    def evaluate(self, t) -> torch.Tensor:
        """``X(t)``.

        Parameters
        ----------
        t : float or torch.Tensor
            A scalar (one time for the whole batch), a tensor of shape
            ``(Q,)`` (times shared by the batch) or ``(B, Q)`` (times per
            sample).

        Returns
        -------
        torch.Tensor
            ``(B, C)`` for a scalar time, else ``(B, Q, C)``.
        """
        tq, kind = self._queries(t)
        h, a, b, x0, x1, m0, m1 = self._piece(tq)
        v = (m0 * a**3 + m1 * b**3) / (6.0 * h) + (x0 / h - m0 * h / 6.0) * a \
            + (x1 / h - m1 * h / 6.0) * b
        return self._shape_out(v, kind)

    def derivative(self, t) -> torch.Tensor:
        """``dX/dt`` at ``t`` (same conventions and shapes as :meth:`evaluate`).

        Parameters
        ----------
        t : float or torch.Tensor
            Query times, as for :meth:`evaluate`.

        Returns
        -------
        torch.Tensor
            Shaped as :meth:`evaluate`'s result.
        """
        tq, kind = self._queries(t)
        h, a, b, x0, x1, m0, m1 = self._piece(tq)
        v = (m1 * b**2 - m0 * a**2) / (2.0 * h) + (x1 - x0) / h - (m1 - m0) * h / 6.0
        return self._shape_out(v, kind)

    def __call__(self, t) -> torch.Tensor:
        return self.evaluate(t)
