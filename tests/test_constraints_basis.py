"""InitialValueBasis: basis fields that start from the initial state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from opflow import Field, Grid
from opflow.constraints import HardConstraint, InitialValueBasis, initial_condition
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.solvers.pinn import d

F64 = torch.float64
GRID = Grid.uniform(x=(0.0, 1.0, 12), t=(0.0, 0.5, 6))


class Features(nn.Module):
    """``k`` fixed random fields times ``(1 + a_0)``: a stand-in network."""

    def __init__(self, k: int, channels: int = 1):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("f", torch.randn(k * channels, *GRID.shape, generator=gen,
                                              dtype=F64))

    def forward(self, a: Field) -> torch.Tensor:
        return self.f * (1 + a.values[:, :1])


def initial_states(batch: int = 3) -> Field:
    """Input channel 0: a different u0(x) per sample, broadcast over t."""
    gen = torch.Generator().manual_seed(1)
    u0 = torch.randn(batch, 1, GRID.shape[0], 1, generator=gen, dtype=F64)
    return Field(u0.expand(batch, 1, *GRID.shape).clone(), GRID)


def heat(x, u):
    return d(u, x, "t") - 0.1 * d(u, x, "x", 2)


def test_first_basis_field_is_the_initial_state_and_the_others_vanish_at_t0():
    a = initial_states()
    b = InitialValueBasis(Features(4))(a).values
    assert b.shape == (3, 5, *GRID.shape)
    assert torch.equal(b[:, 0], a.values[:, 0])
    assert torch.equal(b[:, 1:, :, 0], torch.zeros_like(b[:, 1:, :, 0]))
    # the ramp is (t - t0) / (t1 - t0): the network's fields unchanged at the last time
    assert torch.allclose(b[:, 1:, :, -1], Features(4)(a)[:, :, :, -1])


def test_the_constrained_output_starts_exactly_from_the_initial_state():
    a = initial_states()
    layer = HardConstraint(InitialValueBasis(Features(5)), heat, 6, points=4, ridge=1e-10,
                           conditions=[initial_condition(0)], seed=0)
    out = layer(a).values
    w = layer.last_solution.u.reshape(3, 6)
    assert torch.allclose(w[:, 0], torch.ones(3, dtype=F64), atol=1e-6)
    assert torch.allclose(out[:, 0, :, 0], a.values[:, 0, :, 0], atol=1e-6)


def test_several_output_channels_take_one_input_channel_each():
    gen = torch.Generator().manual_seed(2)
    a = Field(torch.randn(2, 3, *GRID.shape, generator=gen, dtype=F64), GRID)
    b = InitialValueBasis(Features(3, channels=2), channel=[2, 0])(a).values
    assert b.shape == (2, 8, *GRID.shape)
    assert torch.equal(b[:, 0], a.values[:, 2]) and torch.equal(b[:, 1], a.values[:, 0])


@pytest.mark.parametrize("kwargs, name", [({"channel": -1}, "channel"),
                                          ({"channel": []}, "channel"),
                                          ({"channel": True}, "channel"),
                                          ({"axis": 3}, "axis")])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=name):
        InitialValueBasis(Features(2), **kwargs)


def test_bad_inputs_and_outputs_are_named():
    with pytest.raises(InvalidArgumentError, match="net"):
        InitialValueBasis(lambda a: a)
    with pytest.raises(InvalidArgumentError, match="channel"):
        InitialValueBasis(Features(2), channel=4)(initial_states())
    with pytest.raises(InvalidArgumentError, match="a"):
        InitialValueBasis(Features(2))(torch.zeros(1, 1, *GRID.shape))
    with pytest.raises(ShapeError, match="net"):
        InitialValueBasis(Features(3, channels=2), channel=[0, 0, 0, 0])(initial_states())
