"""MgNO (He, Liu and Xu 2024): neural operator layers parameterised by V-cycles.

Each layer maps ``f`` (``c_f`` channels) to ``u`` (``width`` channels)::

    u = act( Vcycle(f) + W f + b )

where ``W`` is a pointwise linear map and ``Vcycle`` is a multigrid V-cycle
with learned convolutions, one set per level ``l = 0 .. levels - 1``:

* ``A_l`` (3x3, ``width -> c_f``): the "operator"; ``S_l`` (3x3,
  ``c_f -> width``): the smoother. Smoothing is ``u <- u + S_l(f_l - A_l u)``
  starting from ``u = 0`` (so the first step is ``u = S_l f_l``);
* restriction: ``f_{l+1} = R_l(f_l - A_l u_l)``, a stride-2 3x3 convolution of
  the residual;
* prolongation: ``u_l <- u_l + P_l(u_{l+1})``, a stride-2 4x4 transposed
  convolution, on the way back up.

A final pointwise layer maps ``width`` to ``out_channels``; there is no
lifting or projection network. Boundary conditions enter through the padding
of every convolution: ``"zeros"`` (Dirichlet-like), ``"circular"``
(periodic) or ``"reflect"`` (Neumann-like).

Grid sizes
----------
Any size works as long as the coarsest level keeps at least 2 points per
axis: a level of ``n`` points restricts to ``ceil(n / 2)`` and prolongation
returns ``2 ceil(n / 2)`` points, cropped to ``n``. The natural sizes are
``2^k`` (periodic grids, ``padding="circular"``: ``n -> n / 2`` exactly) and
``2^k + 1`` (vertex-centred grids with both ends, ``n -> (n + 1) / 2``, so the
coarse points are every other fine point). The convolutions have a fixed
stencil in grid points, so a model runs on any finer grid too, with the same
number of levels.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, cast

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GridMismatchError, InvalidArgumentError
from ..field import Field
from ..kernels.halo import halo_pad
from .base import (
    NeuralOperator,
    check_uniform,
    get_activation,
    register_operator,
    split_input,
    to_field,
)

__all__ = ["MgNO", "VCycle", "PADDINGS"]

PADDINGS = ("zeros", "circular", "reflect")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _kernel(c_out: int, c_in: int, size: int, ndim: int, transposed: bool = False) -> nn.Parameter:
    shape = (c_in, c_out) if transposed else (c_out, c_in)
    w = torch.empty(*shape, *(size,) * ndim)
    fan_in = c_in * size**ndim
    nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in))
    return nn.Parameter(w)


class VCycle(nn.Module):
    """One learned V-cycle ``f (B, c_f, *n) -> u (B, width, *n)``.

    Parameters
    ----------
    c_f, width : int
        Channels of the right-hand side and of the solution.
    levels : int
        Number of grid levels (1: smoothing only).
    ndim : int
        Spatial dimensions (1, 2 or 3).
    padding : {"zeros", "circular", "reflect"}
        Padding of every convolution.
    pre_smooth, post_smooth : int
        Smoothing steps per level before restriction and after prolongation.
    """

    def __init__(self, c_f: int, width: int, levels: int, ndim: int, padding: str = "zeros",
                 pre_smooth: int = 1, post_smooth: int = 0):
        super().__init__()
        self.ndim, self.levels, self.padding = ndim, levels, padding
        self.pre_smooth, self.post_smooth = pre_smooth, post_smooth
        self.A = nn.ParameterList(_kernel(c_f, width, 3, ndim) for _ in range(levels))
        self.S = nn.ParameterList(_kernel(width, c_f, 3, ndim) for _ in range(levels))
        self.R = nn.ParameterList(_kernel(c_f, c_f, 3, ndim) for _ in range(levels - 1))
        self.P = nn.ParameterList(_kernel(width, width, 4, ndim, transposed=True)
                                  for _ in range(levels - 1))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "zeros":
            return F.pad(x, (1, 1) * self.ndim)
        # circular F.pad's backward cost ~30% of a CPU train step; the halo kernel is
        # exact and cheap (backend "torch" keeps F.pad as the reference)
        return halo_pad(x, self.ndim, self.padding)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, stride: int = 1) -> torch.Tensor:
        if self.padding == "zeros":
            return _CONV[self.ndim](x, w, stride=stride, padding=1)
        return _CONV[self.ndim](self._pad(x), w, stride=stride)

    def _prolong(self, u: torch.Tensor, w: torch.Tensor, fine: Sequence[int]) -> torch.Tensor:
        if self.padding == "zeros":
            out = _CONV_T[self.ndim](u, w, stride=2, padding=1)
        else:
            # pad the coarse grid, transpose-convolve without padding, and cut
            # the window a padding=1 transposed convolution would produce
            out = _CONV_T[self.ndim](self._pad(u), w, stride=2)
            window: tuple[Any, ...] = (..., *(slice(3, 3 + 2 * n) for n in u.shape[2:]))
            out = out[window]
        cut: tuple[Any, ...] = (..., *(slice(0, n) for n in fine))
        return out[cut]

    def _smooth(self, u, f, level: int, steps: int):
        for _ in range(steps):
            if u is None:
                u = self._conv(f, self.S[level])
            else:
                u = u + self._conv(f - self._conv(u, self.A[level]), self.S[level])
        return u

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        us: list[torch.Tensor] = []
        fs: list[torch.Tensor] = []
        for level in range(self.levels):
            if level > 0:
                residual = fs[-1] - self._conv(us[-1], self.A[level - 1])
                f = self._conv(residual, self.R[level - 1], stride=2)
            u = self._smooth(None, f, level, max(self.pre_smooth, 1))
            us.append(u)
            fs.append(f)
        u = us[-1]
        for level in reversed(range(self.levels - 1)):
            u = us[level] + self._prolong(u, self.P[level], us[level].shape[2:])
            u = self._smooth(u, fs[level], level, self.post_smooth)
        return u


@register_operator
class MgNO(NeuralOperator):
    """Multigrid neural operator on 1-D, 2-D or 3-D uniform grids.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output functions.
    levels : int
        Grid levels of every V-cycle (about ``log2(n) - 1``; 6 for Darcy 129).
    width : int
        Channels of the hidden layers.
    n_layers : int
        Number of MgNO layers.
    ndim : int
        Spatial dimensions (1, 2 or 3).
    padding : {"zeros", "circular", "reflect"}
        Boundary condition of every convolution.
    pre_smooth, post_smooth : int
        Smoothing steps per level (at least one pre-smoothing step).
    activation : str
        Activation after every layer.

    Notes
    -----
    ``model(field)`` returns a Field on the same grid (uniform, at least 2
    points per axis on the coarsest level: ``n >= 2^(levels-1) + 1``);
    ``model(tensor)`` maps ``(*batch, in_channels, *spatial)`` to
    ``(*batch, out_channels, *spatial)``.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 33), y=(0.0, 1.0, 33))
    >>> model = opflow.MgNO(1, 1, levels=3, width=8, n_layers=2)
    >>> tuple(model(opflow.Field(torch.rand(2, 1, 33, 33), grid)).shape)
    (2, 1, 33, 33)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        levels: int = 4,
        width: int = 32,
        n_layers: int = 4,
        *,
        ndim: int = 2,
        padding: str = "zeros",
        pre_smooth: int = 1,
        post_smooth: int = 0,
        activation: str = "gelu",
    ):
        super().__init__()
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels),
                       ("levels", levels), ("width", width), ("n_layers", n_layers),
                       ("pre_smooth", pre_smooth)):
            if not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(arg, "a positive integer", v)
        if not isinstance(post_smooth, int) or post_smooth < 0:
            raise InvalidArgumentError("post_smooth", "a non-negative integer", post_smooth)
        if ndim not in (1, 2, 3):
            raise InvalidArgumentError("ndim", "1, 2 or 3", ndim)
        if padding not in PADDINGS:
            raise InvalidArgumentError("padding", f"one of {PADDINGS}", padding)
        self._set_config(in_channels=in_channels, out_channels=out_channels, levels=levels,
                         width=width, n_layers=n_layers, ndim=ndim, padding=padding,
                         pre_smooth=pre_smooth, post_smooth=post_smooth, activation=activation)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.ndim, self.levels, self.padding = ndim, levels, padding
        self.act = get_activation(activation)
        c_fs = [in_channels] + [width] * (n_layers - 1)
        self.vcycles = nn.ModuleList(
            VCycle(c_f, width, levels, ndim, padding, pre_smooth, post_smooth) for c_f in c_fs)
        self.pointwise = nn.ModuleList(nn.Linear(c_f, width) for c_f in c_fs)
        self.projection = nn.Linear(width, out_channels)

    def min_size(self) -> int:
        """Smallest number of points per axis the model accepts."""
        return 2 ** (self.levels - 1) + 1 if self.levels > 1 else 2

    def forward_values(self, v: torch.Tensor) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input; each axis needs enough points for ``levels``.

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        b, _, *spatial = v.shape
        coarsest = list(spatial)
        for _ in range(self.levels - 1):
            coarsest = [(n + 1) // 2 for n in coarsest]
        if min(coarsest) < 2:
            raise GridMismatchError(
                "x", f"at least {self.min_size()} points per axis for {self.levels} levels",
                torch.empty(0, *spatial))
        h = v
        for vcycle, lin in zip(self.vcycles, self.pointwise):
            lin = cast(nn.Linear, lin)  # the ModuleList holds Linear layers
            h3 = h.reshape(b, h.shape[1], -1)
            skip = torch.baddbmm(lin.bias[None, :, None], lin.weight.expand(b, -1, -1), h3)
            h = self.act(vcycle(h) + skip.view(b, self.width, *spatial))
        h3 = h.reshape(b, self.width, -1)
        w = self.projection
        out = torch.baddbmm(w.bias[None, :, None], w.weight.expand(b, -1, -1), h3)
        return out.view(b, self.out_channels, *spatial)

    def forward(self, x: Field | torch.Tensor) -> Field | torch.Tensor:
        """Apply the operator; see the class notes for shapes."""
        values, grid, batch = split_input(x, self.ndim, self.in_channels)
        if grid is not None:
            check_uniform(grid)
        return to_field(self.forward_values(values), batch, grid)

