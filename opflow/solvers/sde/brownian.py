"""Brownian motion for the SDE solvers: a seeded, queryable path and fast grid draws.

:class:`BrownianInterval` is a Brownian path on ``[t0, t1]`` that can be
asked for ``W(t)``, increments ``W(t) - W(s)`` and space-time Levy areas at
any times, in any order, and always answers the same for the same seed. It
is a binary tree of dyadic intervals: the root holds the increment and the
space-time Levy area of the whole interval; a node splits into its two halves
by a Brownian bridge (conditioned on the node's increment *and* Levy area)
whose two normal draws come from a generator seeded by a hash of
``(seed, level, index)``. Nothing depends on the order of the queries, so a
solver with step ``dt``, one with step ``dt / 2``, and a reverse-time adjoint
all see one path. Inside a leaf of width ``<= tol`` the path is the quadratic
that matches the leaf's increment and Levy area; at dyadic times of level
``<= depth`` (every ``t0 + k (t1 - t0) / 2**n``) values are exact samples.

:func:`grid_increments` is the fast path used when only one fixed grid is
ever needed: every increment (and Levy area) of the grid in one batched draw.

Levy area convention: for an interval ``[s, t]`` of length ``h`` with
increment ``dW``, the space-time Levy area is
``H = (1/h) int_s^t (W(u) - W(s) - (u - s)/h dW) du``, ``H ~ N(0, h/12)``
independent of ``dW``. The iterated integral ``I_(1,0) = int_s^t (W(u) -
W(s)) du`` that SRA1 needs is ``h (dW / 2 + H)``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Sequence

import torch

from ...errors import InvalidArgumentError

__all__ = ["BrownianInterval", "grid_increments"]

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _node_seed(root: int, level: int, index: int) -> int:
    return _splitmix(_splitmix(_splitmix(root) ^ (level + 1)) ^ index) & ((1 << 63) - 1)


def _root_seed(seed: Optional[int], generator: Optional[torch.Generator]) -> int:
    if seed is not None and generator is not None:
        raise InvalidArgumentError("seed", "seed or generator, not both", (seed, generator))
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise InvalidArgumentError("generator", "a torch.Generator", generator)
        return int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if seed is None:
        return int(torch.randint(0, 2**62, ()))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError("seed", "an integer", seed)
    return seed & _MASK


class BrownianInterval:
    """A seeded Brownian path on ``[t0, t1]``, queryable anywhere, in any order.

    Parameters
    ----------
    t0, t1 : float
        The interval; ``W(t0) = 0``.
    shape : tuple of int
        Shape of ``W(t)``; ``(B, m)`` for the SDE solvers (``B``
        trajectories, ``m`` Brownian motions each).
    seed : int, optional
        Seed of the path. The same seed gives the same path, bit for bit on
        CPU. Without ``seed`` and ``generator`` one is drawn from torch's
        global generator (so ``torch.manual_seed`` makes it reproducible).
    generator : torch.Generator, optional
        Draws the seed instead.
    dtype, device : optional
        Of the returned tensors (default: torch's default dtype, CPU).
    tol : float, optional
        Width below which intervals are no longer split (default
        ``(t1 - t0) * 2**-20``). Exact dyadic times down to that width are
        exact samples; between them the path is a smooth interpolant.
    cache_size : int, optional
        Most tree nodes kept (least recently used ones are dropped; a
        dropped node is drawn again from its seed when needed, so the path
        does not change). Memory is about ``cache_size * 4 * prod(shape)``
        numbers. Default 512.

    Notes
    -----
    Despite the name, which it shares with torchsde's class of the same
    role, this is a *virtual Brownian tree* in the sense of diffrax
    (Kidger's ``VirtualBrownianTree``): a fixed dyadic tree whose every
    node is a pure function of ``(seed, level, index)`` and its parent, so a
    value never depends on which times were asked for before. torchsde's
    ``BrownianInterval`` instead splits its intervals at the queried times
    (its tree's shape follows the queries, made reproducible by a ``dt``
    hint) and is exact at every queried time; here only dyadic times down to
    ``tol`` are exact and the path between them is interpolated. Both keep a
    bounded cache of recently used nodes.

    Examples
    --------
    >>> bm = BrownianInterval(0.0, 1.0, (4, 2), seed=0, dtype=torch.float64)
    >>> dw = bm(0.25, 0.5)                       # W(0.5) - W(0.25), shape (4, 2)
    >>> bool(torch.equal(dw, bm(0.5) - bm(0.25)))
    True
    >>> dws, hs = bm.on_grid([0.0, 0.5, 1.0], levy_area=True)  # each (2, 4, 2)
    """

    def __init__(self, t0: float, t1: float, shape: Sequence[int], seed: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, dtype: Optional[torch.dtype] = None,
                 device=None, tol: Optional[float] = None, cache_size: int = 512):
        try:
            t0, t1 = float(t0), float(t1)
        except (TypeError, ValueError):
            raise InvalidArgumentError("t0, t1", "numbers", (t0, t1)) from None
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise InvalidArgumentError("t1", f"a finite time greater than t0 = {t0}", t1)
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise InvalidArgumentError("shape", "a tuple of positive integers", shape) from None
        if any(s <= 0 for s in shape):
            raise InvalidArgumentError("shape", "a tuple of positive integers", shape)
        span = t1 - t0
        tol = span * 2.0**-20 if tol is None else tol
        if not (isinstance(tol, (int, float)) and 0 < tol <= span):
            raise InvalidArgumentError("tol", f"a width in (0, t1 - t0 = {span}]", tol)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise InvalidArgumentError("cache_size", "a positive integer", cache_size)
        self.t0, self.t1, self.shape = t0, t1, shape
        self.cache_size = cache_size
        self.dtype = dtype or torch.get_default_dtype()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.tol = float(tol)
        self.depth = max(0, math.ceil(math.log2(span / tol) - 1e-9))
        self.seed = _root_seed(seed, generator)
        self._eps = 1e-12 * max(1.0, abs(t0), abs(t1))
        self._gen = torch.Generator(device=self.device)
        self._children: OrderedDict[tuple[int, int], tuple[torch.Tensor, ...]] = OrderedDict()
        z = self._normal(-1, 0)
        self._root = (math.sqrt(span) * z[0], math.sqrt(span / 12.0) * z[1])

    def __repr__(self) -> str:
        return (f"BrownianInterval(t0={self.t0}, t1={self.t1}, shape={self.shape}, "
                f"seed={self.seed}, dtype={self.dtype}, tol={self.tol:g})")

    # ----------------------------------------------------------------- tree
    def _normal(self, level: int, index: int) -> torch.Tensor:
        self._gen.manual_seed(_node_seed(self.seed, level, index))
        return torch.randn((2, *self.shape), generator=self._gen, dtype=self.dtype,
                           device=self.device)

    def _split(self, level: int, index: int, w, H, h: float):
        """Increments and Levy areas of the two halves of node ``(level, index)``.

        With ``dW``, ``H`` of the node (length ``h``) and independent
        ``z1, z2 ~ N(0, 1)``: ``D = dW_left - dW_right = 3 H + sqrt(h)/2 z1``,
        ``H_left + H_right = 2 H - D / 2``, ``H_left - H_right = sqrt(h/12) z2``,
        which is the exact conditional law given ``(dW, H)``.
        """
        key = (level, index)
        out = self._children.get(key)
        if out is not None:
            self._children.move_to_end(key)
            return out
        z = self._normal(level, index)
        d = 3.0 * H + (0.5 * math.sqrt(h)) * z[0]
        s = 2.0 * H - 0.5 * d
        e = math.sqrt(h / 12.0) * z[1]
        out = (0.5 * (w + d), 0.5 * (s + e), 0.5 * (w - d), 0.5 * (s - e))
        self._children[key] = out
        if len(self._children) > self.cache_size:
            self._children.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        """Forget the cached tree nodes (the path stays the same)."""
        self._children.clear()

    def _values(self, ts: list[float]):
        """``W(t)`` and ``A(t) = int_t0^t W`` for every ``t`` in ``ts`` (any order)."""
        lo, hi, eps = self.t0, self.t1, self._eps
        for t in ts:
            if not (lo - eps <= t <= hi + eps):
                raise InvalidArgumentError("t", f"times within [{lo}, {hi}]", t)
        zero = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        W: list = [None] * len(ts)
        A: list = [None] * len(ts)
        order = sorted(range(len(ts)), key=lambda i: ts[i])
        w, H = self._root
        self._visit(0, 0, lo, hi, w, H, zero, zero, [(ts[i], i) for i in order], W, A)
        return W, A

    def _visit(self, level, index, a, b, w, H, Wa, Aa, pts, W, A):
        eps = self._eps
        inner = []
        for t, i in pts:
            if t <= a + eps:
                W[i], A[i] = Wa, Aa
            elif t >= b - eps:
                W[i], A[i] = Wa + w, Aa + (b - a) * (Wa + 0.5 * w + H)
            else:
                inner.append((t, i))
        if not inner:
            return
        h = b - a
        if level >= self.depth:  # leaf: the quadratic with this increment and Levy area
            for t, i in inner:
                x = (t - a) / h
                W[i] = Wa + x * w + (6.0 * x * (1.0 - x)) * H
                A[i] = Aa + h * (x * Wa + (0.5 * x * x) * w + (3.0 * x * x - 2.0 * x**3) * H)
            return
        wl, Hl, wr, Hr = self._split(level, index, w, H, h)
        m = a + 0.5 * h
        left = [(t, i) for t, i in inner if t <= m + eps]
        right = [(t, i) for t, i in inner if t > m + eps]
        if left:
            self._visit(level + 1, 2 * index, a, m, wl, Hl, Wa, Aa, left, W, A)
        if right:
            Wm = Wa + wl
            Am = Aa + (0.5 * h) * (Wa + 0.5 * wl + Hl)
            self._visit(level + 1, 2 * index + 1, m, b, wr, Hr, Wm, Am, right, W, A)

    # --------------------------------------------------------------- public
    def __call__(self, ta: float, tb: Optional[float] = None) -> torch.Tensor:
        """``W(ta)`` (with ``W(t0) = 0``), or the increment ``W(tb) - W(ta)``."""
        if tb is None:
            return self._values([float(ta)])[0][0]
        W, _ = self._values([float(ta), float(tb)])
        return W[1] - W[0]

    def space_time_levy_area(self, ta: float, tb: float) -> torch.Tensor:
        """``H = (1/h) int_ta^tb (W(u) - W(ta) - (u - ta)/h (W(tb) - W(ta))) du``.

        Parameters
        ----------
        ta, tb : float
            The interval, ``tb > ta``; ``h = tb - ta``.

        Returns
        -------
        torch.Tensor
            Shaped like the Brownian motion's values.
        """
        ta, tb = float(ta), float(tb)
        if not tb > ta:
            raise InvalidArgumentError("tb", f"a time after ta = {ta}", tb)
        W, A = self._values([ta, tb])
        h = tb - ta
        return (A[1] - A[0]) / h - W[0] - 0.5 * (W[1] - W[0])

    def on_grid(self, ts, levy_area: bool = False):
        """Increments (and Levy areas) between consecutive times of ``ts``.

        Parameters
        ----------
        ts : sequence of float or 1-D tensor, length N + 1, increasing
        levy_area : bool
            Also return the space-time Levy areas.

        Returns
        -------
        dW : torch.Tensor, shape (N, *shape)
        H : torch.Tensor, shape (N, *shape), only with ``levy_area=True``
        """
        ts = [float(t) for t in (ts.tolist() if isinstance(ts, torch.Tensor) else ts)]
        if len(ts) < 2 or any(b <= a for a, b in zip(ts, ts[1:])):
            raise InvalidArgumentError("ts", "at least two increasing times", ts)
        W, A = self._values(ts)
        W, A = torch.stack(W), torch.stack(A)
        dW = W[1:] - W[:-1]
        if not levy_area:
            return dW
        h = torch.tensor(ts, dtype=self.dtype, device=self.device).diff()
        h = h.reshape(-1, *([1] * len(self.shape)))
        return dW, (A[1:] - A[:-1]) / h - W[:-1] - 0.5 * dW


def grid_increments(hs: Sequence[float], shape: Sequence[int], generator: torch.Generator,
                    dtype, device, levy_area: bool = False):
    """Brownian increments over steps of lengths ``hs`` in one batched draw.

    Returns ``dW`` of shape ``(N, *shape)`` and, with ``levy_area``, the
    space-time Levy areas ``H`` (same shape, independent of ``dW``).
    """
    n, shape = len(hs), tuple(shape)
    scale = torch.tensor(hs, dtype=dtype, device=device).sqrt_()
    scale = scale.reshape(n, *([1] * len(shape)))
    if not levy_area:
        z = torch.randn((n, *shape), generator=generator, dtype=dtype, device=device)
        return z.mul_(scale)
    z = torch.randn((2, n, *shape), generator=generator, dtype=dtype, device=device)
    return z[0].mul_(scale), z[1].mul_(scale * math.sqrt(1.0 / 12.0))
