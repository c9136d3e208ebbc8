"""Multi-task DeepONet (Kumar et al.): one operator for a PDE on several geometries.

The branch net reads the source-term coefficients together with a coarse
image of the geometry; the trunk net reads a point ``(x, y)``; the output
is their dot product plus a bias, evaluated on every grid node at once
(Cartesian product, as in :class:`~opflow.operators.DeepONet`) and
multiplied by the geometry mask, so it is exactly 0 outside the domain::

    G(c, m)(x) = m(x) * (sum_j b_j(c, m) t_j(x) + b0)

Geometry encoding: ``pool(m)`` is the mask averaged over a ``mask_size x
mask_size`` grid of cells (adaptive average pooling): each value is the
fraction of a cell inside the domain. It has no parameters and works for
any grid size.

Two branches (``branch=``):

* ``"bilinear"`` (default): an MLP maps ``pool(m)`` to a ``(K + 1) x p``
  matrix ``M(m)`` and ``b(c, m) = [c, 1] M(m)``: linear in the coefficients
  for a fixed geometry, as the solution of a linear PDE is. Measured on the
  33 x 33 three-geometry set (600 samples, 2000 Adam steps, lr 1e-3) it
  reaches 2.5-2.8% test error where ``"mlp"`` stays near 7%.
* ``"mlp"``: one MLP on the concatenation ``[c, pool(m)]`` (the plain
  multi-task DeepONet branch).

Training and transfer live in :mod:`opflow.train.transfer`: the loss
:func:`~opflow.train.transfer.masked_rel_l2` compares prediction and target
only inside the domain, :func:`~opflow.train.transfer.freeze` leaves chosen
layers trainable and :func:`~opflow.train.transfer.fine_tune` trains them on a
few samples of a new geometry.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..data.multitask import monomials, polynomial_basis
from ..errors import GridMismatchError, InvalidArgumentError, ShapeError
from ..field import Field
from ..grid import Grid
from .base import NeuralOperator, get_activation, register_operator
from .deeponet import MLP, _widths, query_points

__all__ = ["MultiTaskDeepONet"]


@register_operator
class MultiTaskDeepONet(NeuralOperator):
    """DeepONet whose branch takes source coefficients and a geometry mask.

    Parameters
    ----------
    degree : int
        Degree of the polynomial source; the branch takes its
        ``K = (degree + 1)(degree + 2) / 2`` coefficients
        (:func:`opflow.data.multitask.monomials` order).
    branch_layers : sequence of int
        Hidden widths of the branch net (its input is ``K + mask_size**2``).
    trunk_layers : sequence of int
        Hidden widths of the trunk net (its input is the point ``(x, y)``).
    p : int
        Number of basis functions (output width of both nets).
    mask_size : int
        The mask is pooled to ``mask_size x mask_size`` cells for the branch.
    activation : str
        Activation of both nets (a name from ``ACTIVATIONS``).
    branch : {"bilinear", "mlp"}
        How coefficients and geometry combine (see the module notes). The
        branch net ``self.branch`` takes ``mask_size**2`` inputs and has
        ``(K + 1) * p`` outputs (bilinear), or ``K + mask_size**2`` inputs and
        ``p`` outputs (mlp).

    Notes
    -----
    Two ways to call it:

    * ``model(x)`` with a Field ``x`` of shape ``(B, 2, nx, ny)`` holding the
      channels ``(mask, f)`` (mask as 0/1; ``f`` a polynomial of ``degree``
      sampled on the whole grid, as in :meth:`opflow.data.MultiTaskData.pairs`): the
      coefficients are recovered from ``f`` by least squares on the monomial
      basis of the grid (exact for such sources). Returns a Field
      ``(B, 2, nx, ny)`` with channels ``("u", "mask")``, the mask passed
      through so that :func:`~opflow.train.transfer.masked_rel_l2` works inside the
      :class:`~opflow.train.Trainer` (use it with ``normalizers=None``: the
      mask must stay 0/1; the Trainer's own ``rel_l2`` metrics then count
      the mask channel too, so read its ``loss``/``val_loss``).
    * ``model(coeffs, mask)`` with a tensor ``coeffs (B, K)`` and a mask Field
      ``(B, 1, nx, ny)`` (bool or 0/1) returns a Field ``(B, 1, nx, ny)``
      named ``"u"``; with a mask tensor ``(B, nx, ny)`` pass ``grid=`` too and
      get a tensor ``(B, nx, ny)``.
    """

    converted_inputs = ("mask",)  # forward casts the mask to the dtype of x

    def __init__(self, degree: int = 2, branch_layers: Sequence[int] = (128, 128),
                 trunk_layers: Sequence[int] = (128, 128, 128), p: int = 64,
                 mask_size: int = 8, activation: str = "relu", branch: str = "bilinear"):
        super().__init__()
        self.n_coeffs = k = len(monomials(degree))
        for name, v in (("p", p), ("mask_size", mask_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(name, "a positive integer", v)
        if branch not in ("bilinear", "mlp"):
            raise InvalidArgumentError("branch", "'bilinear' or 'mlp'", branch)
        widths = [mask_size**2, *branch_layers, (k + 1) * p] if branch == "bilinear" else \
            [k + mask_size**2, *branch_layers, p]
        widths = _widths(widths, "branch_layers")
        trunk = _widths([2, *trunk_layers, p], "trunk_layers")
        act = get_activation(activation)
        self._set_config(degree=degree, branch_layers=list(branch_layers),
                         trunk_layers=list(trunk_layers), p=p, mask_size=mask_size,
                         activation=activation, branch=branch)
        self.degree, self.p, self.mask_size, self.kind = degree, p, mask_size, branch
        self.branch = MLP(widths, act)
        self.trunk = MLP(trunk, act, last_act=True)
        self.b0 = nn.Parameter(torch.zeros(1))
        self._projectors: dict = {}

    # ------------------------------------------------------------ the core
    def encode_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """``(B, nx, ny)`` 0/1 mask -> ``(B, mask_size**2)`` inside fractions per cell.

        Parameters
        ----------
        mask : torch.Tensor, shape (B, nx, ny)
            The geometry, 0/1 values.

        Returns
        -------
        torch.Tensor, shape (B, mask_size ** 2)
        """
        return F.adaptive_avg_pool2d(mask[:, None], self.mask_size).flatten(1)

    def forward_values(self, coeffs: torch.Tensor, mask: torch.Tensor,
                       points: torch.Tensor) -> torch.Tensor:
        """``coeffs (B, K)``, ``mask (B, nx, ny)`` (0/1 float), ``points (nx*ny, 2)``
        (the grid nodes in ``ij`` order) -> ``(B, nx*ny)``, 0 outside the mask.

        Parameters
        ----------
        coeffs : torch.Tensor, shape (B, K)
            Coefficients of the source term.
        mask : torch.Tensor, shape (B, nx, ny)
            The geometry, 0/1 floats.
        points : torch.Tensor, shape (nx * ny, 2)
            The grid nodes in ``ij`` order.

        Returns
        -------
        torch.Tensor, shape (B, nx * ny)
        """
        geometry = self.encode_mask(mask)
        if self.kind == "bilinear":
            m = self.branch(geometry).view(-1, self.n_coeffs + 1, self.p)
            b = torch.baddbmm(m[:, -1:], coeffs[:, None], m[:, :-1]).squeeze(1)
        else:
            b = self.branch(torch.cat([coeffs, geometry], dim=1))
        out = torch.addmm(self.b0, b, self.trunk(points).T)
        return out * mask.flatten(1)

    def coefficients(self, f: Field) -> torch.Tensor:
        """Least-squares monomial coefficients of a source ``(B, 1, nx, ny)``: ``(B, K)``.

        Parameters
        ----------
        f : Field, shape (B, 1, nx, ny)
            The source term on the grid.

        Returns
        -------
        torch.Tensor, shape (B, K)
        """
        key = (f.grid, f.dtype, f.device)
        if key not in self._projectors:  # pinv of the (K, nx*ny) basis, once per grid
            basis = polynomial_basis(f.grid, self.degree, torch.float64).flatten(1)
            self._projectors[key] = torch.linalg.pinv(basis).to(f.dtype).to(f.device)
        return f.values.flatten(1) @ self._projectors[key]

    # -------------------------------------------------------------- calls
    def forward(self, x: Field | torch.Tensor, mask: Field | torch.Tensor | None = None,
                grid: Grid | None = None) -> Field | torch.Tensor:
        """See the class notes."""
        if isinstance(x, Field):
            if mask is not None or grid is not None:
                raise InvalidArgumentError("mask", "None when x is a Field (the mask is its "
                                           "channel 0)", mask)
            return self._forward_field(x)
        if not isinstance(x, torch.Tensor):
            raise InvalidArgumentError("x", "a Field (mask, f) or a coefficient tensor (B, K)", x)
        if x.ndim != 2 or x.shape[1] != self.n_coeffs or not x.is_floating_point():
            raise ShapeError("x", f"coefficients of shape (B, {self.n_coeffs}) "
                             f"(degree {self.degree})", x)
        m, grid, as_field = _mask_values(mask, grid, x.shape[0])
        m = m.to(x.dtype)
        out = self.forward_values(x, m, query_points(grid, 2, x.dtype, x.device))
        out = out.view(x.shape[0], *grid.shape)
        return Field(out[:, None], grid, names="u") if as_field else out

    def _forward_field(self, x: Field) -> Field:
        if x.grid.ndim != 2:
            raise GridMismatchError("x", "a Field on a 2-D grid", x.grid)
        if x.channels != 2 or len(x.batch_shape) != 1:
            raise ShapeError("x", "a Field (B, 2, nx, ny) with channels (mask, f)", x.values)
        m, f = x.values[:, 0], x.values[:, 1:]
        _check_binary(m, "x")
        coeffs = self.coefficients(Field(f, x.grid, names="f"))
        out = self.forward_values(coeffs, m, query_points(x.grid, 2, f.dtype, f.device))
        values = torch.stack([out.view_as(m), m], dim=1)
        return Field(values, x.grid, names=("u", "mask"))


def _check_binary(m: torch.Tensor, argument: str) -> None:
    if not bool(((m == 0) | (m == 1)).all()):
        raise InvalidArgumentError(argument, "a mask of 0/1 values (train with "
                                   "normalizers=None)", m)


def _mask_values(mask, grid, batch: int) -> tuple[torch.Tensor, Grid, bool]:
    """Mask ``(B, nx, ny)`` as float, its grid, and whether it came as a Field."""
    if isinstance(mask, Field):
        if grid is not None and mask.grid != grid:
            raise GridMismatchError("grid", f"the grid of the mask ({mask.grid})", grid)
        if mask.grid.ndim != 2 or tuple(mask.shape) != (batch, 1, *mask.grid.shape):
            raise ShapeError("mask", f"a Field of shape ({batch}, 1, nx, ny) on a 2-D grid",
                             mask.values)
        values, grid, as_field = mask.values[:, 0], mask.grid, True
    elif isinstance(mask, torch.Tensor):
        if not isinstance(grid, Grid):
            raise InvalidArgumentError("grid", "an opflow.Grid (the mask is a tensor)", grid)
        if tuple(mask.shape) != (batch, *grid.shape):
            raise ShapeError("mask", f"a tensor of shape ({batch}, *grid.shape) = "
                             f"{(batch, *grid.shape)}", mask)
        values, as_field = mask, False
    else:
        raise InvalidArgumentError("mask", "a mask Field (B, 1, nx, ny) or tensor (B, nx, ny)",
                                   mask)
    if values.dtype != torch.bool:
        _check_binary(values, "mask")
    return values.float() if values.dtype == torch.bool else values, grid, as_field
