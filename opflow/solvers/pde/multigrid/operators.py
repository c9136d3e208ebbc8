"""Discrete elliptic operator and multigrid components, as batched torch ops.

Discretisation
--------------
Vertex-centred: the unknowns live at the grid nodes, which include the
boundary. Along every axis ``d`` with spacing ``h_d`` the operator is the
conservative (finite-volume) second difference

    (A u)_i = -sum_d [K_{i+1/2} (u_{i+1} - u_i) - K_{i-1/2} (u_i - u_{i-1})] / h_d**2

(the 3/5/7-point stencil in 1/2/3-D), with the face coefficient ``K`` the
**harmonic mean** of the two neighbouring node coefficients,
``K = 2 a_i a_{i+1} / (a_i + a_{i+1})``. For smooth ``a`` the harmonic and
the arithmetic mean are both second order; the harmonic mean is chosen
because it is the exact conductivity of two half-cells in series, so it
keeps the flux continuous across a jump of ``a`` (the piecewise-constant
Darcy benchmark) and never lets a thin low-permeability layer leak.

Boundary rows:

* ``"P"`` (periodic) axes wrap around (no duplicate end node);
* ``"N"`` (zero-flux Neumann) axes use the ghost-node reflection
  ``u_{-1} = u_1``, ``K_{-1/2} = K_{1/2}``, so the boundary row reads
  ``-2 K_{1/2} (u_1 - u_0) / h**2``. With the trapezoid weights ``W`` (1/2
  on such boundary nodes), ``A = W^-1 S`` with ``S`` symmetric;
* ``"D"`` (Dirichlet) boundary nodes and nodes outside a mask are not
  unknowns: their rows are never used (their residual is masked to zero)
  and their values stay at the boundary value.

Tensors are laid out ``(*batch, *shape)`` (no channel dimension); spatial
axis ``d`` of an ``ndim``-D grid is tensor dimension ``d - ndim``, so any
number of leading dimensions works. Coefficient tensors may have batch size
1 and broadcast over the samples.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "face_coefficients",
    "coarsen_faces",
    "stencil",
    "apply_operator",
    "residual",
    "restrict",
    "prolong",
    "inject",
    "red_black",
    "rbgs",
    "jacobi",
    "boundary_weights",
    "weighted_mean",
    "dense_operator",
]

Kinds = Sequence[str]


def _every_other(x: torch.Tensor, dim: int, start: int) -> torch.Tensor:
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, None, 2)
    return x[tuple(index)]


# ------------------------------------------------------------------ coefficients
def face_coefficients(a: torch.Tensor, kinds: Kinds) -> list[torch.Tensor]:
    """Harmonic-mean face coefficients of node coefficients ``a``.

    Parameters
    ----------
    a : torch.Tensor, shape (*batch, *shape)
        Positive node coefficients.
    kinds : sequence of {"P", "N", "D"}
        Boundary kind of every axis.

    Returns
    -------
    list of torch.Tensor
        One per axis ``d``: shape ``shape`` except ``n_d - 1`` faces along
        ``d`` on a non-periodic axis (face ``i`` joins nodes ``i`` and
        ``i + 1``; on a periodic axis face ``n - 1`` joins the last node and
        the first). Differentiable.
    """
    ndim = len(kinds)
    faces = []
    for d, kind in enumerate(kinds):
        dim = d - ndim
        n = a.shape[dim]
        if kind == "P":
            left, right = a, torch.roll(a, -1, dim)
        else:
            left, right = a.narrow(dim, 0, n - 1), a.narrow(dim, 1, n - 1)
        faces.append(2 * left * right / (left + right))
    return faces


def _restrict_1d(r: torch.Tensor, dim: int, kind: str) -> torch.Tensor:
    """Full weighting ``(1/4, 1/2, 1/4)`` along ``dim`` onto every other node.

    Non-periodic axes reflect at the ends (``r_{-1} = r_1``), which is the
    restriction consistent with the Neumann ghost-node rows (for Dirichlet
    axes the boundary values are discarded anyway).
    """
    even, odd = _every_other(r, dim, 0), _every_other(r, dim, 1)
    if kind == "P":
        return 0.5 * even + 0.25 * (odd + torch.roll(odd, 1, dim))
    m = odd.shape[dim]
    out = 0.5 * even
    out.narrow(dim, 0, m).add_(odd, alpha=0.25)
    out.narrow(dim, 1, m).add_(odd, alpha=0.25)
    out.narrow(dim, 0, 1).add_(odd.narrow(dim, 0, 1), alpha=0.25)
    out.narrow(dim, m, 1).add_(odd.narrow(dim, m - 1, 1), alpha=0.25)
    return out


def coarsen_faces(faces: Sequence[torch.Tensor], kinds: Kinds,
                  free: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Face coefficients of the grid with every other node.

    Along the flux direction two fine faces in series give one coarse face:
    their harmonic mean (exact in 1-D, where it reproduces the Galerkin
    coarse operator). Across the flux direction the faces act in parallel:
    full-weighting (arithmetic) average. This rediscretises the operator on
    every coarse grid with averaged coefficients; no Galerkin triple product.

    With ``free`` (fine-grid unknowns, 1/0, shape ``(*batch, *shape)``), a
    fixed node that the coarse grid drops (an odd node between a free and a
    fixed coarse node, where a mask boundary falls between coarse nodes) is
    kept at its true distance: the coarse face becomes twice the fine face
    next to the free node, so the flux to the boundary value is that of the
    fine grid (exact in 1-D). Without it the coarse grid would see the
    boundary one fine cell too far away and over-correct.
    """
    ndim = len(kinds)
    out = []
    for d, face in enumerate(faces):
        dim = d - ndim
        k1, k2 = _every_other(face, dim, 0), _every_other(face, dim, 1)
        coarse = 2 * k1 * k2 / (k1 + k2)
        if free is not None:
            fixed = free < 0.5
            even, mid = _every_other(fixed, dim, 0), _every_other(fixed, dim, 1)
            m = mid.shape[dim]
            if kinds[d] == "P":
                left, right = even, torch.roll(even, -1, dim)
            else:
                left, right = even.narrow(dim, 0, m), even.narrow(dim, 1, m)
            coarse = torch.where(mid & ~left & right, 2 * k1,
                                 torch.where(mid & left & ~right, 2 * k2, coarse))
        for e, kind in enumerate(kinds):
            if e != d:
                coarse = _restrict_1d(coarse, e - ndim, kind)
        out.append(coarse)
    return out


def stencil(faces: Sequence[torch.Tensor], spacing: Sequence[float],
            kinds: Kinds) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Scaled face coefficients ``c_d = K_d / h_d**2`` and the diagonal of ``A``.

    Returns
    -------
    coef : list of torch.Tensor
        Face coefficients divided by ``h_d**2`` (shapes as the faces).
    diag : torch.Tensor, shape (*batch, *shape)
        Diagonal of ``A`` (Neumann ghost rows included; on Dirichlet
        boundary nodes the same formula, which is never used but positive).
    """
    ndim = len(kinds)
    coef = [face / (h * h) for face, h in zip(faces, spacing)]
    diag = None
    for d, (c, kind) in enumerate(zip(coef, kinds)):
        dim = d - ndim
        if kind == "P":
            part = c + torch.roll(c, 1, dim)
        else:
            zero = torch.zeros_like(c.narrow(dim, 0, 1))
            first, last = c.narrow(dim, 0, 1), c.narrow(dim, c.shape[dim] - 1, 1)
            mid = torch.zeros_like(c.narrow(dim, 0, c.shape[dim] - 1))
            part = (torch.cat([c, zero], dim) + torch.cat([zero, c], dim)
                    + torch.cat([first, mid, last], dim))
        diag = part if diag is None else diag + part
    return coef, diag  # type: ignore[return-value]  # set by the first axis


# ----------------------------------------------------------------- application
def apply_operator(u: torch.Tensor, coef: Sequence[torch.Tensor], diag: torch.Tensor,
                   kinds: Kinds) -> torch.Tensor:
    """``A u`` on every node, out of place and differentiable (in ``u`` and the
    coefficients). Rows of Dirichlet nodes are meaningless; mask them.

    Parameters
    ----------
    u : torch.Tensor, shape (*batch, *shape)
    coef, diag : from :func:`stencil`
    kinds : boundary kind per axis
    """
    ndim = len(kinds)
    out = diag * u
    for d, (c, kind) in enumerate(zip(coef, kinds)):
        dim = d - ndim
        if kind == "P":
            out = out - c * torch.roll(u, -1, dim) - torch.roll(c * u, 1, dim)
            continue
        n = u.shape[dim]
        east = c * u.narrow(dim, 1, n - 1)   # node i < n-1 gets c_i u_{i+1}
        west = c * u.narrow(dim, 0, n - 1)   # node i > 0 gets c_{i-1} u_{i-1}
        zero = torch.zeros_like(east.narrow(dim, 0, 1))
        ghost = torch.cat([east.narrow(dim, 0, 1), torch.zeros_like(east.narrow(dim, 0, n - 2)),
                           west.narrow(dim, n - 2, 1)], dim)
        out = out - torch.cat([east, zero], dim) - torch.cat([zero, west], dim) - ghost
    return out


def residual(u: torch.Tensor, f: torch.Tensor, coef: Sequence[torch.Tensor],
             diag: torch.Tensor, kinds: Kinds) -> torch.Tensor:
    """``f - A u`` on every node (fast path: fused in-place slice updates).

    Not differentiable (use :func:`apply_operator` under autograd). The rows
    of Dirichlet boundary nodes are left incomplete (they are never used:
    mask them). In float64 the stencil form
    ``f - diag u + sum c u_nb`` is used (fewest passes over memory); in lower
    precision the flux form ``f + sum (c (u_nb - u))``, whose rounding error
    is about ``1/h`` times smaller (differences of nearby values are exact),
    so the residual, and the solution, can go about 100 times lower in
    float32 at the cost of ~1.6x the memory traffic.
    """
    if u.dtype != torch.float64:
        return _flux_residual(u, f, coef, kinds)
    ndim = len(kinds)
    r = torch.addcmul(f, diag, u, value=-1.0)
    for d, (c, kind) in enumerate(zip(coef, kinds)):
        dim = d - ndim
        n = u.shape[dim]
        if kind == "P":
            cm = c.narrow(dim, 0, n - 1)
            c_last = c.narrow(dim, n - 1, 1)
            r.narrow(dim, 0, n - 1).addcmul_(cm, u.narrow(dim, 1, n - 1))
            r.narrow(dim, n - 1, 1).addcmul_(c_last, u.narrow(dim, 0, 1))
            r.narrow(dim, 1, n - 1).addcmul_(cm, u.narrow(dim, 0, n - 1))
            r.narrow(dim, 0, 1).addcmul_(c_last, u.narrow(dim, n - 1, 1))
        else:
            r.narrow(dim, 0, n - 1).addcmul_(c, u.narrow(dim, 1, n - 1))
            r.narrow(dim, 1, n - 1).addcmul_(c, u.narrow(dim, 0, n - 1))
            if kind == "N":  # ghost reflection (Dirichlet boundary rows are never used)
                r.narrow(dim, 0, 1).addcmul_(c.narrow(dim, 0, 1), u.narrow(dim, 1, 1))
                r.narrow(dim, n - 1, 1).addcmul_(c.narrow(dim, n - 2, 1),
                                                 u.narrow(dim, n - 2, 1))
    return r


def _flux_residual(u: torch.Tensor, f: torch.Tensor, coef: Sequence[torch.Tensor],
                   kinds: Kinds) -> torch.Tensor:
    """``f + sum_d (F_{i+1/2} - F_{i-1/2})`` with fluxes ``F = c (u_{i+1} - u_i)``."""
    ndim = len(kinds)
    r = f.expand_as(torch.broadcast_tensors(f, u)[0]).clone()
    for d, (c, kind) in enumerate(zip(coef, kinds)):
        dim = d - ndim
        n = u.shape[dim]
        if kind == "P":
            du = torch.cat([u.narrow(dim, 1, n - 1), u.narrow(dim, 0, 1)], dim).sub_(u)
            flux = du.mul_(c)
            r.add_(flux)
            r.narrow(dim, 1, n - 1).sub_(flux.narrow(dim, 0, n - 1))
            r.narrow(dim, 0, 1).sub_(flux.narrow(dim, n - 1, 1))
        else:
            flux = torch.sub(u.narrow(dim, 1, n - 1), u.narrow(dim, 0, n - 1)).mul_(c)
            r.narrow(dim, 0, n - 1).add_(flux)
            r.narrow(dim, 1, n - 1).sub_(flux)
            if kind == "N":
                r.narrow(dim, 0, 1).add_(flux.narrow(dim, 0, 1))
                r.narrow(dim, n - 1, 1).sub_(flux.narrow(dim, n - 2, 1))
    return r


# ------------------------------------------------------------- grid transfers
def restrict(r: torch.Tensor, kinds: Kinds) -> torch.Tensor:
    """Full-weighting restriction (tensor product of ``(1/4, 1/2, 1/4)``).

    ``(*batch, *shape) -> (*batch, *coarse_shape)`` with every other node kept.
    """
    ndim = len(kinds)
    for d, kind in enumerate(kinds):
        r = _restrict_1d(r, d - ndim, kind)
    return r


def prolong(e: torch.Tensor, kinds: Kinds) -> torch.Tensor:
    """Bi/tri-linear interpolation from the coarse to the fine nodes.

    ``(*batch, *coarse_shape) -> (*batch, *fine_shape)``: ``2 m + 1`` fine
    nodes for ``m + 1`` on a non-periodic axis, ``2 m`` for ``m`` on a
    periodic one.
    """
    ndim = len(kinds)
    for d, kind in enumerate(kinds):
        dim = d - ndim
        m = e.shape[dim]
        if kind == "P":
            mid = 0.5 * (e + torch.roll(e, -1, dim))
            n = 2 * m
        else:
            mid = 0.5 * (e.narrow(dim, 0, m - 1) + e.narrow(dim, 1, m - 1))
            n = 2 * m - 1
        shape = list(e.shape)
        shape[dim] = n
        out = e.new_empty(shape)
        index = [slice(None)] * e.ndim
        index[dim] = slice(0, None, 2)
        out[tuple(index)] = e
        index[dim] = slice(1, None, 2)
        out[tuple(index)] = mid
        e = out
    return e


def inject(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Values at the coarse nodes (every other node on every axis)."""
    for d in range(ndim):
        x = _every_other(x, d - ndim, 0)
    return x


# ------------------------------------------------------------------ smoothers
def red_black(shape: Sequence[int], dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Checkerboard indicators ``(red, black)`` of shape ``shape``: red where the
    sum of the node indices is even. Neighbours in the stencil have opposite
    colours (periodic axes need an even number of nodes)."""
    parity = torch.zeros(shape, dtype=torch.long, device=device)
    for d, n in enumerate(shape):
        view = [1] * len(shape)
        view[d] = n
        parity = parity + torch.arange(n, device=device).view(view)
    red = (parity % 2 == 0).to(dtype)
    return red, 1 - red


def rbgs(u: torch.Tensor, f: torch.Tensor, coef, diag, kinds, first: torch.Tensor,
         second: torch.Tensor, sweeps: int) -> int:
    """Red-black Gauss-Seidel, in place on ``u``.

    ``first`` and ``second`` are the colour indicators times ``free / diag``
    (zero on fixed nodes, which therefore never move); pass (red, black) for
    pre-smoothing and (black, red) for post-smoothing to keep the cycle
    symmetric. Returns the number of operator applications.
    """
    for _ in range(sweeps):
        u.addcmul_(residual(u, f, coef, diag, kinds), first)
        u.addcmul_(residual(u, f, coef, diag, kinds), second)
    return 2 * sweeps


def jacobi(u: torch.Tensor, f: torch.Tensor, coef, diag, kinds, scaled_inverse: torch.Tensor,
           sweeps: int) -> int:
    """Weighted Jacobi ``u += w D^-1 (f - A u)`` in place; ``scaled_inverse`` is
    ``w * free / diag``. Returns the number of operator applications."""
    for _ in range(sweeps):
        u.addcmul_(residual(u, f, coef, diag, kinds), scaled_inverse)
    return sweeps


# ---------------------------------------------------------- singular problems
def boundary_weights(shape: Sequence[int], kinds: Kinds, dtype, device) -> torch.Tensor:
    """Weights ``W`` (shape ``shape``): 1/2 per Neumann boundary the node lies on.

    ``W A`` is symmetric; ``w`` weighs the mean fixed in singular problems
    (the trapezoid rule up to a constant factor).
    """
    w = torch.ones((), dtype=dtype, device=device)
    for n, kind in zip(shape, kinds):
        wa = torch.ones(n, dtype=dtype, device=device)
        if kind == "N":
            wa[0] = wa[-1] = 0.5
        w = w[..., None] * wa
    return w


def weighted_mean(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(w x) / sum(w)`` over the trailing ``weights.ndim`` dims, kept as size 1."""
    dims = tuple(range(x.ndim - weights.ndim, x.ndim))
    return (x * weights).sum(dims, keepdim=True) / weights.sum()


# ------------------------------------------------------------- coarsest level
def dense_operator(coef, diag, kinds, free: torch.Tensor, shape: Sequence[int],
                   chunk_elements: int = 1 << 24) -> torch.Tensor:
    """The operator on the free nodes as dense matrices ``(batch, N, N)``.

    ``N = prod(shape)``; rows and columns of fixed nodes are those of the
    identity (corrections vanish there). Built by applying the operator to the
    unit vectors (so it matches :func:`apply_operator` exactly), in chunks of
    the batch to bound memory.
    """
    size = 1
    for n in shape:
        size *= n
    batch = diag.shape[0]
    eye = torch.eye(size, dtype=diag.dtype, device=diag.device).reshape(1, size, *shape)
    step = max(1, chunk_elements // (size * size))
    mats = []
    for start in range(0, batch, step):
        stop = min(batch, start + step)
        c = [ci[start:stop].unsqueeze(1) for ci in coef]
        cols = apply_operator(eye, c, diag[start:stop].unsqueeze(1), kinds)  # (b, N, *shape)
        mats.append(cols.reshape(cols.shape[0], size, size).transpose(1, 2))
    mat = torch.cat(mats) if len(mats) > 1 else mats[0]
    fr = free.reshape(free.shape[0], size).to(mat.dtype)
    mat = mat * fr[:, :, None] * fr[:, None, :]
    return mat + torch.diag_embed(1 - fr)
