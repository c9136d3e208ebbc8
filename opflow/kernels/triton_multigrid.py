"""Fused Triton kernels for the classical multigrid solver on 2-D grids.

Same signatures and conventions as :mod:`opflow.solvers.pde.multigrid.operators`
(vertex-centred nodes, harmonic-mean face coefficients scaled by ``1/h**2``
from :func:`~opflow.solvers.pde.multigrid.operators.stencil`, boundary kind
``"P"``, ``"N"`` or ``"D"`` per axis), restricted to two dimensions:

* :func:`residual` - ``f - A u`` in one pass (flux form
  ``f + sum c (u_nb - u)``, the accurate one in float32; ``diag`` unused);
* :func:`jacobi` / :func:`rbgs` - one kernel per sweep (per colour) that
  applies the 5-point operator, forms the residual and updates ``u``; the
  torch versions make about ten passes over memory for the same step;
* :func:`restrict` - full weighting (3x3 tensor product of ``1/4, 1/2, 1/4``);
* :func:`prolong` - bilinear interpolation.

Tensors are ``(*batch, n_0, n_1)``; coefficients, ``diag`` and the
smoothing weights may have batch size 1 (broadcast). float32 and float64.
None of these is differentiable (the solver runs them in place, without
autograd). This module imports triton: load it through
:func:`opflow.kernels.backend.triton_module`; CPU tensors run only under the
interpreter (``TRITON_INTERPRET=1`` before the module is first imported).
"""

from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl

from ..errors import InvalidArgumentError, ShapeError
from .backend import interpreted

__all__ = ["residual", "jacobi", "rbgs", "restrict", "prolong", "INTERPRETED", "KINDS"]

KINDS = {"P": 0, "N": 1, "D": 2}
BLOCK_I = 16
BLOCK_J = 32


@triton.jit
def _neighbours(i, n, KIND: tl.constexpr):
    """East/west neighbour and face indices along one axis, and whether each exists."""
    if KIND == 0:  # periodic: wrap
        east = (i + 1) % n
        west = (i + n - 1) % n
        return east, west, i, west, i >= 0, i >= 0
    if KIND == 1:  # Neumann: ghost reflection u_{-1} = u_1, u_n = u_{n-2}
        east = tl.where(i == n - 1, n - 2, i + 1)
        west = tl.where(i == 0, 1, i - 1)
        face_e = tl.where(i == n - 1, n - 2, i)
        face_w = tl.where(i == 0, 0, i - 1)
        return east, west, face_e, face_w, i >= 0, i >= 0
    # Dirichlet: the boundary rows are never used; drop the outside neighbour
    return i + 1, i - 1, i, i - 1, i < n - 1, i > 0


@triton.jit
def _smooth_kernel(
    u_ptr, f_ptr, c0_ptr, c1_ptr, s_ptr, o_ptr,
    n0, n1, f_sb, c0_sb, c0_row, c1_sb, c1_row, s_sb,
    KIND0: tl.constexpr, KIND1: tl.constexpr, MODE: tl.constexpr,
    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr,
):
    # MODE 0: o = f - A u; MODE 1: o = u + s (f - A u); MODE 2: same, in place
    # on u and only where s != 0 (one colour of red-black Gauss-Seidel)
    b = tl.program_id(0)
    i = (tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I))[:, None]
    j = (tl.program_id(2) * BLOCK_J + tl.arange(0, BLOCK_J))[None, :]
    inside = (i < n0) & (j < n1)
    ub = u_ptr + b * n0 * n1
    uc = tl.load(ub + i * n1 + j, mask=inside, other=0.0)
    r = tl.load(f_ptr + b * f_sb + i * n1 + j, mask=inside, other=0.0)
    e0, w0, fe0, fw0, he0, hw0 = _neighbours(i, n0, KIND0)
    c0 = c0_ptr + b * c0_sb
    m = inside & he0
    r += tl.load(c0 + fe0 * c0_row + j, mask=m, other=0.0) * (
        tl.load(ub + e0 * n1 + j, mask=m, other=0.0) - uc)
    m = inside & hw0
    r += tl.load(c0 + fw0 * c0_row + j, mask=m, other=0.0) * (
        tl.load(ub + w0 * n1 + j, mask=m, other=0.0) - uc)
    e1, w1, fe1, fw1, he1, hw1 = _neighbours(j, n1, KIND1)
    c1 = c1_ptr + b * c1_sb
    m = inside & he1
    r += tl.load(c1 + i * c1_row + fe1, mask=m, other=0.0) * (
        tl.load(ub + i * n1 + e1, mask=m, other=0.0) - uc)
    m = inside & hw1
    r += tl.load(c1 + i * c1_row + fw1, mask=m, other=0.0) * (
        tl.load(ub + i * n1 + w1, mask=m, other=0.0) - uc)
    if MODE == 0:
        tl.store(o_ptr + b * n0 * n1 + i * n1 + j, r, mask=inside)
    else:
        s = tl.load(s_ptr + b * s_sb + i * n1 + j, mask=inside, other=0.0)
        if MODE == 1:
            tl.store(o_ptr + b * n0 * n1 + i * n1 + j, uc + s * r, mask=inside)
        else:
            tl.store(ub + i * n1 + j, uc + s * r, mask=inside & (s != 0.0))


@triton.jit
def _fine_index(c, n, KIND: tl.constexpr):
    """Fine neighbours 2c - 1 and 2c + 1 of coarse node c: wrapped or reflected."""
    lo = 2 * c - 1
    hi = 2 * c + 1
    if KIND == 0:
        return (lo + n) % n, hi % n
    return tl.where(lo < 0, 1, lo), tl.where(hi > n - 1, n - 2, hi)


@triton.jit
def _weigh_row(row_ptr, mid, lo, hi, mask):
    return 0.5 * tl.load(row_ptr + mid, mask=mask, other=0.0) + 0.25 * (
        tl.load(row_ptr + lo, mask=mask, other=0.0) + tl.load(row_ptr + hi, mask=mask, other=0.0))


@triton.jit
def _restrict_kernel(r_ptr, o_ptr, n0, n1, m0, m1,
                     KIND0: tl.constexpr, KIND1: tl.constexpr,
                     BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    b = tl.program_id(0)
    ci = (tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I))[:, None]
    cj = (tl.program_id(2) * BLOCK_J + tl.arange(0, BLOCK_J))[None, :]
    inside = (ci < m0) & (cj < m1)
    lo0, hi0 = _fine_index(ci, n0, KIND0)
    lo1, hi1 = _fine_index(cj, n1, KIND1)
    rb = r_ptr + b * n0 * n1
    # weights (1/4, 1/2, 1/4) along axis 1 within each fine row, then across rows
    south = _weigh_row(rb + lo0 * n1, 2 * cj, lo1, hi1, inside)
    centre = _weigh_row(rb + 2 * ci * n1, 2 * cj, lo1, hi1, inside)
    north = _weigh_row(rb + hi0 * n1, 2 * cj, lo1, hi1, inside)
    tl.store(o_ptr + b * m0 * m1 + ci * m1 + cj, 0.5 * centre + 0.25 * (south + north),
             mask=inside)


@triton.jit
def _prolong_kernel(e_ptr, o_ptr, m0, m1, n0, n1,
                    KIND0: tl.constexpr, KIND1: tl.constexpr,
                    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    b = tl.program_id(0)
    i = (tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I))[:, None]
    j = (tl.program_id(2) * BLOCK_J + tl.arange(0, BLOCK_J))[None, :]
    inside = (i < n0) & (j < n1)
    a0, b0 = i // 2, (i + 1) // 2  # equal on even (coarse) nodes
    a1, b1 = j // 2, (j + 1) // 2
    if KIND0 == 0:
        b0 = b0 % m0
    if KIND1 == 0:
        b1 = b1 % m1
    eb = e_ptr + b * m0 * m1
    # axis 0 first, then axis 1: the order (and rounding) of operators.prolong
    left = 0.5 * (tl.load(eb + a0 * m1 + a1, mask=inside, other=0.0)
                  + tl.load(eb + b0 * m1 + a1, mask=inside, other=0.0))
    right = 0.5 * (tl.load(eb + a0 * m1 + b1, mask=inside, other=0.0)
                   + tl.load(eb + b0 * m1 + b1, mask=inside, other=0.0))
    tl.store(o_ptr + b * n0 * n1 + i * n1 + j, 0.5 * (left + right), mask=inside)


INTERPRETED: bool = interpreted(_smooth_kernel)
"""Whether the kernels were defined under Triton's interpreter (CPU testing)."""


# ------------------------------------------------------------------- checks
def _kinds(kinds: Sequence[str]) -> tuple[int, int]:
    if len(kinds) != 2 or any(k not in KINDS for k in kinds):
        raise InvalidArgumentError("kinds", "two boundary kinds from 'P', 'N', 'D' (2-D only)",
                                   kinds)
    return KINDS[kinds[0]], KINDS[kinds[1]]


def _check_tensor(name: str, t: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError(name, "a float32 or float64 tensor", t)
    if t.ndim < 2:
        raise ShapeError(name, "a tensor (*batch, n_0, n_1)", t)
    if like is not None and (t.dtype != like.dtype or t.device != like.device):
        raise InvalidArgumentError(name, f"dtype {like.dtype} on {like.device} like `u`", t)
    if t.device.type == "cpu" and not INTERPRETED:
        raise InvalidArgumentError(
            name, "a CUDA tensor for the triton kernels (CPU tensors need TRITON_INTERPRET=1 "
            "set before the kernels are first loaded)", t)


def _batched(name: str, t: torch.Tensor, batch: int, tail: tuple[int, int]):
    """``t`` as a contiguous ``(batch or 1, *tail)`` tensor and its batch stride."""
    if tuple(t.shape[-2:]) != tail:
        raise ShapeError(name, f"trailing shape {tail}", t)
    flat = t.reshape(-1, *tail).contiguous()
    if flat.shape[0] not in (1, batch):
        raise ShapeError(name, f"batch size 1 or {batch} like `u`", t)
    return flat, (0 if flat.shape[0] == 1 else tail[0] * tail[1])


def _face_shape(n: int, kind: int) -> int:
    return n if kind == 0 else n - 1


def _grid(batch: int, n0: int, n1: int) -> tuple[int, int, int]:
    return (batch, triton.cdiv(n0, BLOCK_I), triton.cdiv(n1, BLOCK_J))


def _smooth(u, f, coef, kinds, scale, mode: int, out=None):
    """One launch of the fused kernel; ``u`` is ``(B, n0, n1)`` contiguous."""
    k0, k1 = _kinds(kinds)
    b, n0, n1 = u.shape
    if len(coef) != 2:
        raise InvalidArgumentError("coef", "two face-coefficient tensors (2-D)", coef)
    f, f_sb = _batched("f", f, b, (n0, n1))
    c0, c0_sb = _batched("coef[0]", coef[0], b, (_face_shape(n0, k0), n1))
    c1, c1_sb = _batched("coef[1]", coef[1], b, (n0, _face_shape(n1, k1)))
    if scale is None:
        scale, s_sb = u, 0  # unused in MODE 0
    else:
        scale, s_sb = _batched("scale", scale, b, (n0, n1))
    out = u if out is None else out
    _smooth_kernel[_grid(b, n0, n1)](
        u, f, c0, c1, scale, out, n0, n1, f_sb, c0_sb, c0.shape[-1],
        c1_sb, c1.shape[-1], s_sb, KIND0=k0, KIND1=k1, MODE=mode,
        BLOCK_I=BLOCK_I, BLOCK_J=BLOCK_J)
    return out


def _as_3d(name: str, u: torch.Tensor) -> torch.Tensor:
    _check_tensor(name, u)
    if not u.is_contiguous():
        raise InvalidArgumentError(name, "a contiguous tensor (updated in place)", u)
    return u.view(-1, *u.shape[-2:])


# --------------------------------------------------------------- public API
def residual(u: torch.Tensor, f: torch.Tensor, coef: Sequence[torch.Tensor],
             diag: torch.Tensor | None, kinds: Sequence[str]) -> torch.Tensor:
    """``f - A u`` on every node in one kernel (``diag`` is not needed).

    Parameters
    ----------
    u, f : torch.Tensor, shape (*batch, n_0, n_1)
    coef : two tensors, the scaled face coefficients of ``stencil``
    diag : ignored (the flux form needs no diagonal); kept for the signature
    kinds : two of {"P", "N", "D"}

    Returns
    -------
    torch.Tensor, shape of ``u``
        Rows of Dirichlet boundary nodes hold the incomplete sum, as in the
        torch version; mask them.
    """
    _check_tensor("u", u)
    _check_tensor("f", f, u)
    u3 = u.contiguous().view(-1, *u.shape[-2:])
    out = torch.empty_like(u3)
    _smooth(u3, f, coef, kinds, None, 0, out)
    return out.view(u.shape)


def jacobi(u: torch.Tensor, f: torch.Tensor, coef: Sequence[torch.Tensor], diag,
           kinds: Sequence[str], scaled_inverse: torch.Tensor, sweeps: int) -> int:
    """Weighted Jacobi ``u += s (f - A u)`` in place, one fused kernel per sweep.

    ``scaled_inverse`` is ``w * free / diag`` (as the torch version); returns
    the number of operator applications.
    """
    u3 = _as_3d("u", u)
    _check_tensor("f", f, u)
    _check_tensor("scaled_inverse", scaled_inverse, u)
    src, dst = u3, torch.empty_like(u3)
    for _ in range(sweeps):
        _smooth(src, f, coef, kinds, scaled_inverse, 1, dst)
        src, dst = dst, src
    if src is not u3:
        u3.copy_(src)
    return sweeps


def rbgs(u: torch.Tensor, f: torch.Tensor, coef: Sequence[torch.Tensor], diag,
         kinds: Sequence[str], first: torch.Tensor, second: torch.Tensor, sweeps: int) -> int:
    """Red-black Gauss-Seidel in place, one fused kernel per colour.

    ``first``/``second`` are the colour indicators times ``free / diag`` (as
    the torch version): a launch updates only the nodes where its weight is
    non-zero, whose stencil neighbours all have the other colour, so the
    update in place is exact. Returns the number of operator applications.
    """
    u3 = _as_3d("u", u)
    _check_tensor("f", f, u)
    _check_tensor("first", first, u)
    _check_tensor("second", second, u)
    for _ in range(sweeps):
        _smooth(u3, f, coef, kinds, first, 2)
        _smooth(u3, f, coef, kinds, second, 2)
    return 2 * sweeps


def restrict(r: torch.Tensor, kinds: Sequence[str]) -> torch.Tensor:
    """Full-weighting restriction ``(*batch, n_0, n_1) -> (*batch, m_0, m_1)``.

    ``m = n / 2`` on a periodic axis (``n`` even), ``(n + 1) / 2`` otherwise
    (``n`` odd: both ends are nodes); non-periodic ends reflect.
    """
    _check_tensor("r", r)
    k0, k1 = _kinds(kinds)
    *batch, n0, n1 = r.shape
    coarse = []
    for n, k in ((n0, k0), (n1, k1)):
        if (k == 0) != (n % 2 == 0) or n < 3:
            raise ShapeError("r", "an even size on periodic axes and an odd one (at least 3) "
                             "on the others", r)
        coarse.append(n // 2 if k == 0 else (n + 1) // 2)
    r3 = r.contiguous().view(-1, n0, n1)
    out = r3.new_empty(r3.shape[0], *coarse)
    _restrict_kernel[_grid(r3.shape[0], *coarse)](
        r3, out, n0, n1, *coarse, KIND0=k0, KIND1=k1, BLOCK_I=BLOCK_I, BLOCK_J=BLOCK_J)
    return out.view(*batch, *coarse)


def prolong(e: torch.Tensor, kinds: Sequence[str]) -> torch.Tensor:
    """Bilinear interpolation ``(*batch, m_0, m_1) -> (*batch, n_0, n_1)``:
    ``n = 2 m`` on a periodic axis, ``2 m - 1`` otherwise."""
    _check_tensor("e", e)
    k0, k1 = _kinds(kinds)
    *batch, m0, m1 = e.shape
    fine = [2 * m if k == 0 else 2 * m - 1 for m, k in ((m0, k0), (m1, k1))]
    e3 = e.contiguous().view(-1, m0, m1)
    out = e3.new_empty(e3.shape[0], *fine)
    _prolong_kernel[_grid(e3.shape[0], *fine)](
        e3, out, m0, m1, *fine, KIND0=k0, KIND1=k1, BLOCK_I=BLOCK_I, BLOCK_J=BLOCK_J)
    return out.view(*batch, *fine)
