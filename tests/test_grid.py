import math

import numpy as np
import pytest
import torch

from opflow import Grid
from opflow.errors import InvalidArgumentError, UnknownVariableError


def test_uniform_periodic_and_bounded_axes():
    g = Grid.uniform(x=(0.0, 2 * math.pi, 16), y=(0.0, 1.0, 11), periodic=("x",),
                     units={"x": "m", "y": "m"})
    assert g.shape == (16, 11) and g.names == ("x", "y") and g.ndim == 2
    assert g.periodic == (True, False)
    assert g.spacing == pytest.approx((2 * math.pi / 16, 0.1))
    assert g.axis("x").coords[-1] < 2 * math.pi  # periodic end point excluded
    assert g.axis("y").coords[-1] == 1.0  # bounded end point included
    assert g.units == ("m", "m")


def test_equality_and_hash():
    a = Grid.uniform(x=(0, 1, 8), periodic=("x",))
    b = Grid.uniform(x=(0, 1, 8), periodic=("x",))
    c = Grid.uniform(x=(0, 1, 8))
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_coarsen_keeps_bounds_and_every_other_point():
    g = Grid.uniform(x=(0, 1, 17), y=(0, 2, 16), periodic=("y",))
    c = g.coarsen(2)
    assert c.shape == (9, 8)
    np.testing.assert_array_equal(c.axis("x").coords, g.axis("x").coords[::2])
    assert c.bounds == g.bounds
    with pytest.raises(InvalidArgumentError, match="factor"):
        Grid.uniform(x=(0, 1, 16)).coarsen(2)  # n - 1 = 15 is odd


def test_wavenumbers_match_fft_convention():
    g = Grid.uniform(x=(0, 2 * math.pi, 8), periodic=("x",))
    (k,) = g.wavenumbers()
    np.testing.assert_allclose(k.numpy(), [0, 1, 2, 3, -4, -3, -2, -1])
    with pytest.raises(InvalidArgumentError, match="periodic"):
        Grid.uniform(x=(0, 1, 8)).wavenumbers()


def test_quadrature_weights_integrate_exactly():
    g = Grid.uniform(x=(0, 2, 21), y=(0, 1, 8), periodic=("y",))
    x, y = g.mesh(torch.float64)
    w = g.quadrature_weights()
    assert float((w * x).sum()) == pytest.approx(2.0)  # trapezoid exact on linear
    assert float((w * torch.sin(2 * math.pi * y) ** 2).sum()) == pytest.approx(1.0)  # int = 2 * 1/2
    assert float(w.sum()) == pytest.approx(g.volume)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=(0, 1, 1)), "n >= 2"),
        (dict(x=(1, 0, 8)), "stop > start"),
        (dict(x=(0, 1)), "start, stop, n"),
        (dict(x=(0, 1, 4), periodic=("z",)), "z"),
    ],
)
def test_bad_grid_arguments(kwargs, match):
    with pytest.raises((InvalidArgumentError, UnknownVariableError), match=match):
        Grid.uniform(**kwargs)


def test_unknown_axis_name():
    g = Grid.uniform(x=(0, 1, 4))
    with pytest.raises(UnknownVariableError, match="'q'"):
        g.axis("q")


def test_refine_and_with_shape():
    g = Grid.uniform(x=(0, 1, 9), y=(0, 1, 8), periodic=("y",))
    assert g.refine(2).shape == (17, 16)
    assert g.refine(2).coarsen(2) == g
    assert g.with_shape(x=5).shape == (5, 8)


def test_periodic_names_and_bounds_must_contain_the_coords():
    assert Grid.uniform(x=(0, 1, 8), y=(0, 1, 4), periodic="xy").periodic == (True, True)
    with pytest.raises(InvalidArgumentError, match="periodic"):
        Grid.uniform(x=(0, 1, 8), periodic=True)
    g = Grid.from_coords({"x": [0.0, 0.5, 1.0]}, bounds={"x": (-1.0, 2.0)})
    assert g.bounds == ((-1.0, 2.0),)
    with pytest.raises(InvalidArgumentError, match="containing the coordinates"):
        Grid.from_coords({"x": [0.0, 0.5, 1.0]}, bounds={"x": (0.0, 0.9)})


def test_coords_are_a_read_only_float64_copy():
    c = np.array([0, 1, 3])
    axis = Grid.from_coords({"x": c}).axis("x")
    assert axis.coords.dtype == np.float64 and not axis.coords.flags.writeable
    c[0] = -5
    assert axis.coords[0] == 0.0
