"""Exponential time differencing RK4 (Cox & Matthews 2002) for ``v' = L v + N(t, v)``.

With ``E = exp(h L)`` and ``E2 = exp(h L / 2)``, one step is

    a       = E2 v_n + Q N(t_n, v_n)
    b       = E2 v_n + Q N(t_n + h/2, a)
    c       = E2 a   + Q (2 N(t_n + h/2, b) - N(t_n, v_n))
    v_{n+1} = E v_n + f1 N(t_n, v_n) + 2 f2 (N(t_n + h/2, a) + N(t_n + h/2, b))
              + f3 N(t_n + h, c)

where, for ``z = h L``,

    Q  = h (e^{z/2} - 1) / z
    f1 = h (-4 - z + e^z (4 - 3 z + z^2)) / z^3
    f2 = h ( 2 + z + e^z (z - 2)) / z^3
    f3 = h (-4 - 3 z - z^2 + e^z (4 - z)) / z^3.

These expressions cancel catastrophically for small ``|z|``; following
Kassam & Trefethen (2005) they are evaluated as the mean of the same
expressions over ``points`` equispaced points of the circle of radius 1
centred at each ``z`` (Cauchy's integral formula: the functions are entire,
so the mean over the circle is the value at the centre, and the trapezoidal
rule on a circle converges geometrically). The computation runs once per
distinct step in float64, then is cast to the working dtype.

The linear part is integrated exactly (no stability limit in ``L``, no
time error for linear problems); fourth order, four evaluations per step.
"""

from __future__ import annotations

import math

import torch

from .stepping import Stepper

__all__ = ["ETDRK4Stepper", "etdrk4_coefficients"]


def etdrk4_coefficients(linear: torch.Tensor, h: float, points: int = 32):
    """``(E - 1, E2 - 1, Q, f1, f2, f3)`` for the diagonal operator ``linear`` and step ``h``.

    ``E - 1`` and ``E2 - 1`` (``expm1``) rather than ``E`` and ``E2``: the
    stepper adds increments to the state, so that rounding ``E`` near 1 in
    float32 does not bias the decay of slowly damped modes.

    Parameters
    ----------
    linear : torch.Tensor, real, any shape
        Diagonal of ``L``.
    h : float
        Step.
    points : int
        Contour points (32 give double precision for real ``z <= 0``).

    Returns
    -------
    tuple of torch.Tensor, each shaped and typed like ``linear``
    """
    dtype, device = linear.dtype, linear.device
    z = h * linear.to(torch.float64)
    j = torch.arange(points, dtype=torch.float64, device=device)
    roots = torch.exp(2j * math.pi * (j + 0.5) / points)
    q = torch.zeros_like(z)
    f1 = torch.zeros_like(z)
    f2 = torch.zeros_like(z)
    f3 = torch.zeros_like(z)
    for r in roots:  # one contour point at a time: memory of a few states only
        zr = z + r
        ez, ez2 = torch.exp(zr), torch.exp(0.5 * zr)
        z3 = zr * zr * zr
        q = q + ((ez2 - 1.0) / zr).real
        f1 = f1 + ((-4.0 - zr + ez * (4.0 - 3.0 * zr + zr * zr)) / z3).real
        f2 = f2 + ((2.0 + zr + ez * (zr - 2.0)) / z3).real
        f3 = f3 + ((-4.0 - 3.0 * zr - zr * zr + ez * (4.0 - zr)) / z3).real
    scale = h / points
    out = (torch.expm1(z), torch.expm1(0.5 * z), q * scale, f1 * scale, f2 * scale,
           f3 * scale)
    return tuple(c.to(dtype) for c in out)


class ETDRK4Stepper(Stepper):
    """ETDRK4 with contour-integral coefficients (Cox-Matthews, Kassam-Trefethen)."""

    order = 4
    evaluations = 4

    def _coefficients(self, h: float):
        return etdrk4_coefficients(self.system.linear, h)

    def step(self, t: float, v: torch.Tensor, h: float) -> torch.Tensor:
        em1, e2m1, q, f1, f2, f3 = self.coefficients(h)
        explicit = self.system.explicit
        mid = t + 0.5 * h
        nv = explicit(t, v)
        half_decay = e2m1 * v
        a = v + (half_decay + q * nv)
        na = explicit(mid, a)
        b = v + (half_decay + q * na)
        nb = explicit(mid, b)
        c = a + (e2m1 * a + q * (2.0 * nb - nv))
        nc = explicit(t + h, c)
        return v + (em1 * v + f1 * nv + f2 * (2.0 * (na + nb)) + f3 * nc)
