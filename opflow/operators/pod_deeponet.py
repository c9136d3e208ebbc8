"""POD-DeepONet (Lu et al. 2022): a DeepONet whose trunk is the POD basis of the data.

The output functions of the training set, flattened to vectors, are centred
and decomposed by SVD; the first ``n_modes`` right singular vectors are the
modes ``phi_k``. The branch net maps the input function to the coefficients::

    G(u) = mean + sum_k b_k(u) phi_k

The output lives on the grid of the training outputs (a fixed discretisation:
unlike DeepONet and FNO it cannot be queried elsewhere).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import InvalidArgumentError, OpflowError, ShapeError
from ..field import Field
from ..grid import Grid
from .base import NeuralOperator, get_activation, register_operator
from .deeponet import MLP, _widths, sensor_values

__all__ = ["POD_DeepONet", "pod_modes"]


def pod_modes(outputs: torch.Tensor, n_modes: int) -> tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor]:
    """POD of samples ``outputs (N, P)``: ``(mean (P,), modes (P, n_modes), singular values)``.

    Computed in float64 with ``torch.linalg.svd``; the modes are orthonormal
    columns (scale them as needed).
    """
    x = outputs.detach().to(torch.float64)
    mean = x.mean(0)
    _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return mean, vh[:n_modes].T, s[:n_modes]


@register_operator
class POD_DeepONet(NeuralOperator):  # noqa: N801 - the method's published name
    """DeepONet with the trunk replaced by POD modes of the training outputs.

    Parameters
    ----------
    branch_layers : sequence of int
        ``[n_sensors, hidden..., n_modes]``: widths of the branch net; the
        last width is the number of POD modes.
    out_channels : int
        Channels of the output functions.
    output_shape : sequence of int, optional
        Grid shape of the outputs. Set by :meth:`fit_modes` (and then part of
        :attr:`config`, so a rebuilt model can load the modes from a
        ``state_dict``).
    activation : str
        Branch activation.

    Notes
    -----
    Modes are scaled to unit root-mean-square over the output points, so the
    branch outputs are of the order of the output values.

    ``model(u, grid=None)``: ``u`` a Field (sensors = its values flattened) or
    a tensor ``(*batch, n_sensors)``. The result ``(*batch, out_channels,
    *output_shape)`` is a Field on ``grid``, else on the grid given to
    :meth:`fit_modes`, else on ``u``'s grid when its shape is
    ``output_shape``; otherwise a tensor.

    Examples
    --------
    >>> import torch, opflow
    >>> grid = opflow.Grid.uniform(x=(0.0, 1.0, 16))
    >>> model = opflow.POD_DeepONet(branch_layers=[16, 32, 8])
    >>> _ = model.fit_modes(opflow.Field(torch.randn(20, 1, 16), grid), n_modes=8)  # outputs
    >>> tuple(model(opflow.Field(torch.randn(3, 1, 16), grid)).shape)
    (3, 1, 16)
    """

    modes: torch.Tensor  # buffers, registered in __init__
    mean: torch.Tensor

    def __init__(
        self,
        branch_layers: Sequence[int],
        out_channels: int = 1,
        output_shape: Sequence[int] | None = None,
        activation: str = "relu",
    ):
        super().__init__()
        branch = _widths(branch_layers, "branch_layers")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise InvalidArgumentError("out_channels", "a positive integer", out_channels)
        shape = None if output_shape is None else tuple(int(s) for s in output_shape)
        if shape is not None and (not shape or min(shape) < 1):
            raise InvalidArgumentError("output_shape", "positive grid sizes", output_shape)
        self._set_config(branch_layers=branch, out_channels=out_channels,
                         output_shape=None if shape is None else list(shape),
                         activation=activation)
        self.n_sensors, self.n_modes, self.out_channels = branch[0], branch[-1], out_channels
        self.output_shape = shape
        self.output_grid: Grid | None = None
        self.branch = MLP(branch, get_activation(activation))
        n_points = 0 if shape is None else out_channels * math.prod(shape)
        self.register_buffer("modes", torch.zeros(n_points, self.n_modes))
        self.register_buffer("mean", torch.zeros(n_points))

    def fit_modes(self, outputs: Field | torch.Tensor,
                  n_modes: int | None = None) -> "POD_DeepONet":
        """Set the POD modes and mean from training outputs.

        Parameters
        ----------
        outputs : Field or torch.Tensor, shape (N, out_channels, *output_shape)
            Output functions of the training set (a Field's grid becomes the
            default output grid).
        n_modes : int, optional
            Must equal ``branch_layers[-1]`` (the default).

        Returns
        -------
        POD_DeepONet
            ``self``, with ``output_shape`` and the buffers set.
        """
        if n_modes is not None and n_modes != self.n_modes:
            raise InvalidArgumentError("n_modes", f"{self.n_modes} (branch_layers[-1])", n_modes)
        values = outputs.values if isinstance(outputs, Field) else outputs
        if not isinstance(values, torch.Tensor) or values.ndim < 3 or (
                values.shape[1] != self.out_channels):
            raise ShapeError("outputs", f"samples (N, {self.out_channels}, *output_shape)",
                             values)
        n, shape = values.shape[0], tuple(values.shape[2:])
        if self.n_modes > min(n, self.out_channels * math.prod(shape)):
            raise InvalidArgumentError("outputs", f"at least {self.n_modes} samples for "
                                       f"{self.n_modes} modes", values)
        mean, modes, _ = pod_modes(values.reshape(n, -1), self.n_modes)
        modes = modes * math.sqrt(modes.shape[0])  # unit RMS per mode
        dtype, device = self.mean.dtype, self.mean.device
        self.modes = modes.to(dtype=dtype, device=device)
        self.mean = mean.to(dtype=dtype, device=device)
        self.output_shape = shape
        self._config["output_shape"] = list(shape)
        if isinstance(outputs, Field):
            self.output_grid = outputs.grid
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A model built before ``fit_modes`` takes the buffer shapes of the state.
        for name in ("modes", "mean"):
            key = prefix + name
            if key in state_dict and getattr(self, name).shape != state_dict[key].shape:
                setattr(self, name, torch.empty_like(state_dict[key], dtype=self.mean.dtype,
                                                     device=self.mean.device))
        if prefix + "mean" in state_dict and self.output_shape is None:
            self.output_shape = (state_dict[prefix + "mean"].numel() // self.out_channels,)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward_values(self, u: torch.Tensor) -> torch.Tensor:
        """``(B, n_sensors) -> (B, out_channels * prod(output_shape))``.

        Parameters
        ----------
        u : torch.Tensor, shape (B, n_sensors)
            The input functions at the sensors.

        Returns
        -------
        torch.Tensor, shape (B, out_channels * prod(output_shape))
        """
        if self.modes.shape[0] == 0:
            raise OpflowError("POD_DeepONet has no modes yet: call "
                              "fit_modes(training_outputs) first")
        return torch.addmm(self.mean, self.branch(u), self.modes.T)

    def forward(self, u: Field | torch.Tensor, grid: Grid | None = None) -> Field | torch.Tensor:
        """Evaluate ``G(u)`` on the output grid; see the class notes."""
        values, batch = sensor_values(u, self.n_sensors)
        out = self.forward_values(values)
        assert self.output_shape is not None  # forward_values refused an operator without modes
        out = out.reshape(*batch, self.out_channels, *self.output_shape)
        if grid is None:
            grid = self.output_grid
        if grid is None and isinstance(u, Field) and u.grid.shape == self.output_shape:
            grid = u.grid
        if grid is None:
            return out
        if tuple(grid.shape) != self.output_shape:
            raise ShapeError("grid", f"a grid of shape {self.output_shape} (the output grid)",
                             torch.empty(grid.shape))
        return Field(out, grid)
