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

The loss sees the mask too: :func:`masked_rel_l2` compares prediction and
target only inside the domain, so values outside it never matter.

Transfer to a new geometry: :func:`freeze` leaves only chosen layers
trainable and :func:`fine_tune` trains them on a few samples; :func:`fit`
is the plain training loop both use (also for training from scratch).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..data.multitask import MultiTaskData, monomials, polynomial_basis
from ..errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from ..field import Field
from ..grid import Grid
from .base import NeuralOperator, get_activation, register_operator
from .deeponet import MLP, _widths, query_points

__all__ = [
    "MultiTaskDeepONet",
    "evaluate_by_geometry",
    "fine_tune",
    "fit",
    "freeze",
    "masked_rel_l2",
    "trainable_names",
]


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
      sampled on the whole grid, as in :meth:`MultiTaskData.pairs`): the
      coefficients are recovered from ``f`` by least squares on the monomial
      basis of the grid (exact for such sources). Returns a Field
      ``(B, 2, nx, ny)`` with channels ``("u", "mask")``, the mask passed
      through so that :func:`masked_rel_l2` works inside the
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
        """``(B, nx, ny)`` 0/1 mask -> ``(B, mask_size**2)`` inside fractions per cell."""
        return F.adaptive_avg_pool2d(mask[:, None], self.mask_size).flatten(1)

    def forward_values(self, coeffs: torch.Tensor, mask: torch.Tensor,
                       points: torch.Tensor) -> torch.Tensor:
        """``coeffs (B, K)``, ``mask (B, nx, ny)`` (0/1 float), ``points (nx*ny, 2)``
        (the grid nodes in ``ij`` order) -> ``(B, nx*ny)``, 0 outside the mask."""
        geometry = self.encode_mask(mask)
        if self.kind == "bilinear":
            m = self.branch(geometry).view(-1, self.n_coeffs + 1, self.p)
            b = torch.baddbmm(m[:, -1:], coeffs[:, None], m[:, :-1]).squeeze(1)
        else:
            b = self.branch(torch.cat([coeffs, geometry], dim=1))
        out = torch.addmm(self.b0, b, self.trunk(points).T)
        return out * mask.flatten(1)

    def coefficients(self, f: Field) -> torch.Tensor:
        """Least-squares monomial coefficients of a source ``(B, 1, nx, ny)``: ``(B, K)``."""
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


# ----------------------------------------------------------------- the loss
def masked_rel_l2(pred: Field, true: Field, mask: torch.Tensor | Field | None = None,
                  eps: float = 1e-12, reduction: str = "mean") -> torch.Tensor:
    """Mean over the batch of ``||m (pred - true)||_2 / ||m true||_2``.

    Usable as ``Trainer(loss=masked_rel_l2)`` with the Fields of
    :meth:`MultiTaskData.pairs` and :class:`MultiTaskDeepONet`.

    Parameters
    ----------
    pred, true : Field, shape (B, C, nx, ny)
        With ``mask=None``, ``true`` must have a ``"mask"`` channel (0/1):
        the ``"u"`` channels are compared (the only other channel when there
        is no ``"u"``). With a mask, all channels are compared.
    mask : Field or tensor, optional
        ``(B, 1, nx, ny)`` (or broadcastable), bool or 0/1.
    eps : float
        Added to the norm of the target.
    reduction : {"mean", "none"}
        Mean over the batch, or one error per sample.

    Returns
    -------
    torch.Tensor, shape () or (B,)
        Differentiable in ``pred``; nodes where the mask is 0 do not count.
    """
    if reduction not in ("mean", "none"):
        raise InvalidArgumentError("reduction", "'mean' or 'none'", reduction)
    if not isinstance(pred, Field) or not isinstance(true, Field):
        raise InvalidArgumentError("pred", "two Fields (pred, true)", (type(pred), type(true)))
    if pred.grid != true.grid:
        raise GridMismatchError("pred", f"a Field on the target's grid ({true.grid})", pred.grid)
    if mask is None:
        if "mask" not in true.names:
            raise UnknownVariableError("true", "mask", true.names)
        m = true["mask"].values
        keep = ["u"] if "u" in true.names else [n for n in true.names if n != "mask"]
        p, t = pred[keep].values, true[keep].values
    else:
        m = mask.values if isinstance(mask, Field) else mask
        p, t = pred.values, true.values
    if not isinstance(m, torch.Tensor):
        raise InvalidArgumentError("mask", "a Field or tensor of 0/1 values", mask)
    if m.dtype == torch.bool:
        m = m.to(t.dtype)
    else:
        _check_binary(m, "mask")
    if p.shape != t.shape:
        raise ShapeError("pred", f"shape {tuple(t.shape)} (that of the target)", p)
    try:
        m = torch.broadcast_to(m, t.shape)
    except RuntimeError:
        raise ShapeError("mask", f"a shape broadcasting to {tuple(t.shape)}", m) from None
    dims = tuple(range(1, t.ndim))
    err = ((p - t) * m).square().sum(dims)
    ref = (t * m).square().sum(dims)
    rel = err.sqrt() / (ref.sqrt() + eps)
    return rel.mean() if reduction == "mean" else rel


# --------------------------------------------------------------- transfer
def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require grad."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _resolve(model: nn.Module, name: str) -> str:
    """``"branch.last"`` -> ``"branch.linears.2"``: ``last`` is the last entry of a
    ModuleList/Sequential, and a module holding only ``linears`` is stepped into."""
    module, parts = model, []
    for part in name.split("."):
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and part in ("last", "first"):
            part = str(len(module) - 1 if part == "last" else 0)
        elif part in ("last", "first") and isinstance(getattr(module, "linears", None),
                                                      nn.ModuleList):
            module = module.linears
            parts.append("linears")
            part = str(len(module) - 1 if part == "last" else 0)
        child = getattr(module, part, None) if not part.isdigit() else (
            module[int(part)] if isinstance(module, (nn.ModuleList, nn.Sequential))
            and int(part) < len(module) else None)
        if not isinstance(child, (nn.Module, nn.Parameter)):
            available = [n for n, _ in model.named_modules() if n] + \
                        [n for n, _ in model.named_parameters()]
            raise UnknownVariableError("train", name, available)
        module = child
        parts.append(part)
    return ".".join(parts)


def freeze(model: nn.Module, train: Sequence[str] | str) -> list[str]:
    """Make only the named layers trainable (``requires_grad``); freeze the rest.

    Parameters
    ----------
    model : nn.Module
    train : str or sequence of str
        Module or parameter names (``"branch"``, ``"trunk.linears.2"``,
        ``"b0"``); ``"last"``/``"first"`` stand for the last/first layer of a
        net (``"branch.last"``).

    Returns
    -------
    list of str
        The parameter names left trainable.

    Raises
    ------
    UnknownVariableError
        A name that is no module or parameter of ``model`` (the message
        lists the available ones).
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", "a torch.nn.Module", model)
    names = [train] if isinstance(train, str) else list(train)
    if not names or not all(isinstance(n, str) for n in names):
        raise InvalidArgumentError("train", "one or more module/parameter names", train)
    prefixes = [_resolve(model, n) for n in names]  # all checked before any change
    for pname, param in model.named_parameters():
        param.requires_grad_(any(pname == q or pname.startswith(q + ".") for q in prefixes))
    return trainable_names(model)


@contextlib.contextmanager
def _frozen(model: nn.Module, train) -> Iterator[list[str]]:
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        yield freeze(model, train)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


def _as_pairs(data, argument: str = "data") -> tuple[Field, Field]:
    if isinstance(data, MultiTaskData):
        return data.pairs()
    if isinstance(data, (tuple, list)) and len(data) == 2 and \
            all(isinstance(f, Field) for f in data):
        inp, tgt = data
        if inp.grid != tgt.grid:
            raise GridMismatchError(argument, "input and target on one grid",
                                    (inp.grid, tgt.grid))
        if inp.batch_shape[:1] != tgt.batch_shape[:1] or not inp.batch_shape:
            raise ShapeError(argument, "input and target with the same number of samples",
                             f"{tuple(inp.batch_shape)} and {tuple(tgt.batch_shape)}")
        return inp, tgt
    raise InvalidArgumentError(argument, "a MultiTaskData or a pair (input Field, target "
                               "Field)", data)


def fit(model: nn.Module, data, steps: int, lr: float = 1e-3, batch_size: int = 32,
        seed: int = 0, progress: bool | str = False) -> list[float]:
    """Train the trainable parameters with Adam and cosine decay on :func:`masked_rel_l2`.

    Parameters
    ----------
    model : nn.Module
        Maps the input Field to an output Field (e.g. :class:`MultiTaskDeepONet`).
    data : MultiTaskData or (input Field, target Field)
        See :meth:`MultiTaskData.pairs`; ``N`` samples.
    steps : int
        Optimiser steps; each draws ``min(batch_size, N)`` samples without
        replacement (a new permutation every pass over the data).
    lr : float
        Initial learning rate (cosine decay to 0 over ``steps``).
    batch_size : int
    seed : int
        Seed of the sample order (training is reproducible on CPU).
    progress : bool or "always"
        tqdm bar over the steps (on a terminal).

    Returns
    -------
    list of float
        The training loss of every step.
    """
    inp, tgt = _as_pairs(data)
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidArgumentError(name, "a positive integer", v)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise InvalidArgumentError("lr", "a positive learning rate", lr)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidArgumentError("model", "at least one trainable parameter", model)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    n = inp.batch_shape[0]
    size = min(batch_size, n)
    order, pos, history = torch.randperm(n, generator=gen), 0, []
    show = progress == "always" or (bool(progress) and sys.stderr.isatty())
    model.train()
    for _ in tqdm(range(steps), desc="fit", disable=not show, leave=False):
        if pos + size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + size]
        pos += size
        loss = masked_rel_l2(model(inp[idx]), tgt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append(float(loss.detach()))
    model.eval()
    return history


def fine_tune(model: nn.Module, data,
              train: Sequence[str] | str = ("branch", "trunk.last", "b0"),
              steps: int = 500, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
              progress: bool | str = False) -> list[float]:
    """Fine-tune only the layers ``train`` of ``model`` on ``data`` (in place).

    The other parameters stay bit-identical; ``requires_grad`` flags are
    restored afterwards. Arguments as in :func:`freeze` and :func:`fit`.
    The default (the branch, the last trunk layer and the bias; the first
    trunk layers frozen) transferred best to the unseen disk in
    ``benchmarks/bench_multitask.py``: with 10-25 samples, about half the
    error of the branch alone, which cannot bend the frozen trunk basis to
    the new boundary.

    Returns
    -------
    list of float
        The training loss of every step.
    """
    _as_pairs(data)
    with _frozen(model, train):
        return fit(model, data, steps, lr=lr, batch_size=batch_size, seed=seed,
                   progress=progress)


@torch.no_grad()
def evaluate_by_geometry(model: nn.Module, data: MultiTaskData,
                         batch_size: int = 256) -> dict[str, float]:
    """Mean masked relative L2 error per geometry (and ``"all"``).

    Parameters
    ----------
    model : nn.Module
    data : MultiTaskData
    batch_size : int

    Returns
    -------
    dict
        ``{geometry: mean error, ..., "all": mean over every sample}``.
    """
    if not isinstance(data, MultiTaskData):
        raise InvalidArgumentError("data", "a MultiTaskData", data)
    inp, tgt = data.pairs()
    model.eval()
    errors: list[float] = []
    for s in range(0, len(data), batch_size):
        part = slice(s, s + batch_size)
        errors += masked_rel_l2(model(inp[part]), tgt[part], reduction="none").tolist()
    out = {}
    for g in sorted(set(data.geometry)):
        vals = [e for e, h in zip(errors, data.geometry) if h == g]
        out[g] = sum(vals) / len(vals)
    out["all"] = sum(errors) / len(errors)
    return out
