import pytest
import torch

from opflow import Field, Grid
from opflow.testing import assert_fields_close, assert_fields_equal, assert_grids_equal

G = Grid.uniform(x=(0, 1, 5), periodic=("x",))


def test_equal_fields_pass_and_differences_are_named():
    a = Field(torch.ones(1, 5), G, names="u")
    assert_fields_equal(a, Field(torch.ones(1, 5), G, names="u"))
    with pytest.raises(AssertionError, match="names differ"):
        assert_fields_equal(a, Field(torch.ones(1, 5), G, names="v"))
    with pytest.raises(AssertionError, match="values differ at 1 of 5"):
        b = torch.ones(1, 5)
        b[0, 2] = 2
        assert_fields_equal(a, Field(b, G, names="u"))
    with pytest.raises(AssertionError, match="grids differ"):
        assert_grids_equal(G, Grid.uniform(x=(0, 1, 5)))


def test_close_fields_respect_tolerance():
    a = Field(torch.ones(1, 5), G)
    assert_fields_close(a, a + 1e-7)
    with pytest.raises(AssertionError):
        assert_fields_close(a, a + 1e-2)
