"""Deep operator network (Lu et al. 2021) in Cartesian-product form.

A branch net encodes the input function from its values at ``n_sensors``
fixed sensor points; a trunk net encodes a query coordinate ``y``; the output
is their dot product plus a bias::

    G(u)(y) = sum_k b_k(u) t_k(y) + b0

The Cartesian-product form evaluates every input function of a batch at every
query point at once: branch ``(B, n_sensors)`` and trunk ``(Q, dim)`` give
``(B, Q)`` (or ``(B, n_outputs, Q)``) with one matrix product.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError, ShapeError
from ..field import Field
from ..grid import Grid
from .base import NeuralOperator, get_activation, register_operator

__all__ = ["DeepONet", "MLP", "StackedMLP", "sensor_values", "query_points"]


def _widths(layers, argument: str) -> list[int]:
    try:
        widths = [int(w) for w in layers]
    except TypeError:
        raise InvalidArgumentError(argument, "a sequence of layer widths", layers) from None
    if len(widths) < 2 or any(w < 1 or w != v for w, v in zip(widths, layers)):
        raise InvalidArgumentError(argument, "at least two positive integer widths "
                                   "(input, ..., output)", layers)
    return widths


class MLP(nn.Module):
    """Fully connected net: activation after every layer but the last (unless ``last_act``)."""

    def __init__(self, widths: Sequence[int], act, last_act: bool = False):
        super().__init__()
        linears = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
        for lin in linears:
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.linears = nn.ModuleList(linears)
        self.act, self.last_act = act, last_act
        # ReLU may overwrite the fresh output of its linear layer (whose
        # backward does not need it): one allocation and pass less per layer
        self._act_ = torch.relu_ if act is F.relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.linears)
        for i, lin in enumerate(self.linears):
            x = lin(x)
            if i < n - 1 or self.last_act:
                x = self.act(x) if self._act_ is None else self._act_(x)
        return x


class StackedMLP(nn.Module):
    """``p`` independent MLPs of equal widths evaluated as batched matrix products.

    Input ``(B, widths[0])`` (shared), output ``(B, p, widths[-1])``.
    """

    def __init__(self, p: int, widths: Sequence[int], act):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            w = torch.empty(p, a, b)
            for i in range(p):
                nn.init.xavier_normal_(w[i])
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(p, 1, b)))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.weights[0].shape[0]
        h = x.unsqueeze(0).expand(p, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < n - 1:
                h = self.act(h)
        return h.transpose(0, 1)


def sensor_values(u: Field | torch.Tensor, n_sensors: int, argument: str = "u"):
    """Branch input from a Field (values at its grid points, channels first, flattened)
    or a tensor ``(*batch, n_sensors)``. Returns ``(values (B, n_sensors), batch_shape)``."""
    if isinstance(u, Field):
        values = u.values.reshape(*u.batch_shape, -1)
        what = (f"a Field with channels x grid points = {n_sensors} "
                f"(got {u.channels} x {u.grid.size})")
    elif isinstance(u, torch.Tensor):
        values = u
        what = f"a tensor (*batch, {n_sensors})"
    else:
        raise InvalidArgumentError(argument, "an opflow.Field or a torch.Tensor", u)
    if values.ndim < 1 or values.shape[-1] != n_sensors or not values.is_floating_point():
        raise ShapeError(argument, what, u.values if isinstance(u, Field) else u)
    batch = values.shape[:-1]
    return values.reshape(math.prod(batch), n_sensors), batch


def query_points(y: Grid | torch.Tensor, dim: int, dtype, device,
                 argument: str = "y") -> torch.Tensor:
    """Trunk input ``(Q, dim)`` from a Grid (its points, ``ij`` order) or a tensor."""
    if isinstance(y, Grid):
        if y.ndim != dim:
            raise ShapeError(argument, f"a grid with {dim} axes (the trunk input size)",
                             torch.empty(y.shape))
        return torch.stack([c.reshape(-1) for c in y.mesh(dtype=dtype, device=device)], dim=1)
    if isinstance(y, torch.Tensor):
        if y.ndim != 2 or y.shape[1] != dim or not y.is_floating_point():
            raise ShapeError(argument, f"query points of shape (Q, {dim})", y)
        return y
    raise InvalidArgumentError(argument, "an opflow.Grid or a tensor (Q, dim)", y)


@register_operator
class DeepONet(NeuralOperator):
    """DeepONet with Cartesian-product evaluation and a Field interface.

    Parameters
    ----------
    branch_layers : sequence of int
        ``[n_sensors, hidden..., p]``: widths of the branch net.
    trunk_layers : sequence of int
        ``[dim, hidden..., p]``: widths of the trunk net (same ``p``).
    n_outputs : int
        Output functions. With more than one the trunk is shared and the
        branch's last layer has ``n_outputs * p`` units, output ``i`` using
        units ``i*p .. (i+1)*p - 1`` (DeepXDE's ``"split_branch"``).
    stacked : bool
        ``False``: one branch net (unstacked DeepONet). ``True``: ``p``
        independent branch nets with the hidden widths of ``branch_layers``
        and ``n_outputs`` units each (stacked DeepONet), run as batched
        matrix products.
    bias : bool
        Learn a scalar bias ``b0`` per output.
    activation : str or mapping
        One name for both nets, or ``{"branch": ..., "trunk": ...}``.
    trunk_last_activation : bool
        Apply the activation to the trunk's output layer too (as in the
        DeepONet paper and DeepXDE).

    Notes
    -----
    ``model(u, y)``:

    * ``u``: tensor ``(*batch, n_sensors)``, or a Field whose
      ``channels * grid.size`` values are the sensors (flattened in Field
      layout order);
    * ``y``: tensor ``(Q, dim)`` -> tensor ``(*batch, Q)`` (``n_outputs == 1``)
      or ``(*batch, n_outputs, Q)``; or a Grid with ``dim`` axes -> Field
      ``(*batch, n_outputs, *y.shape)`` on that grid; or omitted with a Field
      ``u`` -> evaluated on ``u``'s own grid.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 33))
    >>> model = opflow.DeepONet(branch_layers=[33, 64, 64], trunk_layers=[1, 64, 64])
    >>> tuple(model(opflow.Field(torch.rand(5, 1, 33), grid)).shape)  # 33 sensors in
    (5, 1, 33)
    """

    def __init__(
        self,
        branch_layers: Sequence[int],
        trunk_layers: Sequence[int],
        n_outputs: int = 1,
        stacked: bool = False,
        bias: bool = True,
        activation: str | Mapping[str, str] = "relu",
        trunk_last_activation: bool = True,
    ):
        super().__init__()
        branch = _widths(branch_layers, "branch_layers")
        trunk = _widths(trunk_layers, "trunk_layers")
        if branch[-1] != trunk[-1]:
            raise InvalidArgumentError("trunk_layers", f"the same output width p as "
                                       f"branch_layers ({branch[-1]})", trunk_layers)
        if not isinstance(n_outputs, int) or n_outputs < 1:
            raise InvalidArgumentError("n_outputs", "a positive integer", n_outputs)
        if isinstance(activation, Mapping):
            if set(activation) != {"branch", "trunk"}:
                raise InvalidArgumentError("activation", "a name or {'branch': ..., 'trunk': ...}",
                                           activation)
            act_b = get_activation(activation["branch"])
            act_t = get_activation(activation["trunk"])
        else:
            act_b = act_t = get_activation(activation)
        self._set_config(branch_layers=branch, trunk_layers=trunk, n_outputs=n_outputs,
                         stacked=stacked, bias=bias, activation=activation,
                         trunk_last_activation=trunk_last_activation)
        self.n_sensors, self.dim, self.p, self.n_outputs = branch[0], trunk[0], branch[-1], \
            n_outputs
        self.stacked = bool(stacked)
        self.branch: StackedMLP | MLP
        if self.stacked:
            self.branch = StackedMLP(self.p, [*branch[:-1], n_outputs], act_b)
        else:
            self.branch = MLP([*branch[:-1], self.p * n_outputs], act_b)
        self.trunk = MLP(trunk, act_t, last_act=trunk_last_activation)
        self.b0 = nn.Parameter(torch.zeros(n_outputs)) if bias else None

    def branch_features(self, u: torch.Tensor) -> torch.Tensor:
        """``(B, n_sensors) -> (B, n_outputs, p)``.

        Parameters
        ----------
        u : torch.Tensor, shape (B, n_sensors)
            The input function at the sensors.

        Returns
        -------
        torch.Tensor, shape (B, n_outputs, p)
        """
        out = self.branch(u)
        if self.stacked:
            return out.transpose(1, 2)
        return out.view(u.shape[0], self.n_outputs, self.p)

    def forward_values(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cartesian product: ``u (B, n_sensors)``, ``y (Q, dim)`` -> ``(B, n_outputs, Q)``.

        Parameters
        ----------
        u : torch.Tensor, shape (B, n_sensors)
            The input functions at the sensors (branch input).
        y : torch.Tensor, shape (Q, dim)
            The query points, shared by the batch (trunk input).

        Returns
        -------
        torch.Tensor, shape (B, n_outputs, Q)
        """
        bf = self.branch_features(u)
        t = self.trunk(y)
        b = u.shape[0]
        if self.n_outputs == 1:
            flat = bf.view(b, self.p)
            out = (flat @ t.T if self.b0 is None else torch.addmm(self.b0, flat, t.T))
            return out.view(b, 1, -1)
        out = (bf.reshape(b * self.n_outputs, self.p) @ t.T).view(b, self.n_outputs, -1)
        return out if self.b0 is None else out + self.b0[:, None]

    def forward(self, u: Field | torch.Tensor,
                y: Grid | torch.Tensor | None = None) -> Field | torch.Tensor:
        """Evaluate ``G(u)`` at the query points ``y``; see the class notes."""
        values, batch = sensor_values(u, self.n_sensors)
        if y is None:
            if not isinstance(u, Field):
                raise InvalidArgumentError("y", "query points (Q, dim) or a Grid (u is a tensor)",
                                           y)
            y = u.grid
        pts = query_points(y, self.dim, values.dtype, values.device)
        out = self.forward_values(values, pts)
        if isinstance(y, Grid):
            return Field(out.reshape(*batch, self.n_outputs, *y.shape), y)
        if self.n_outputs == 1:
            return out.reshape(*batch, -1)
        return out.reshape(*batch, self.n_outputs, -1)

    @classmethod
    def from_deepxde(cls, net: nn.Module) -> "DeepONet":
        """A DeepONet with the architecture and weights of DeepXDE's
        ``DeepONetCartesianProd`` (PyTorch backend); see
        :func:`opflow.operators.interop.deeponet_from_deepxde`.

        Parameters
        ----------
        net : torch.nn.Module
            A ``deepxde.nn.DeepONetCartesianProd``.

        Returns
        -------
        DeepONet
        """
        from .interop import deeponet_from_deepxde

        return deeponet_from_deepxde(net)
