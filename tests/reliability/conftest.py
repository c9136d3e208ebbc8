"""Shared small inputs of the reliability suite (files are tiny: the suite runs on one core)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from opflow import Field, Grid

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GRID1 = Grid.uniform(x=(0.0, 1.0, 16), periodic=("x",))


class Stencil(nn.Module):
    """A one-layer periodic convolution with a JSON config (checkpointable by opflow)."""

    def __init__(self, name: str = "stencil", in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        self.config = {"name": name, "in_channels": in_channels, "out_channels": out_channels}
        self.net = nn.Conv1d(in_channels, out_channels, 3, padding=1, padding_mode="circular")

    def forward(self, a: Field) -> Field:
        return Field(self.net(a.values), a.grid)


def stencil_builder(config: dict) -> nn.Module:
    return Stencil(**config)


def pairs(n: int = 12, seed: int = 0) -> tuple[Field, Field]:
    """a ~ N(0, 1) on 16 periodic points; u = a discrete second difference of a (linear)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 1, 16, generator=g)
    u = torch.roll(a, 1, -1) - 2 * a + torch.roll(a, -1, -1)
    return Field(a, GRID1, "a"), Field(u, GRID1, "u")


def pair_dataset(n: int = 12, seed: int = 0) -> xr.Dataset:
    a, u = pairs(n, seed)
    return xr.Dataset(
        {"a": (("sample", "x"), a.values[:, 0].numpy()),
         "u": (("sample", "x"), u.values[:, 0].numpy())},
        coords={"sample": np.arange(n), "x": GRID1.coords["x"]})


@pytest.fixture
def data_file(tmp_path) -> Path:
    """A netCDF file with 12 samples of variables ``a`` and ``u`` on 16 points."""
    from opflow.io import save

    return save(pair_dataset(), tmp_path / "pairs.nc")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    from opflow.train import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "model.pt", Stencil(), epoch=1)


def _with_x_attrs(path: Path, **attrs) -> Path:
    from opflow.io import save

    ds = pair_dataset()
    ds["x"].attrs.update(attrs)
    return save(ds, path)


@pytest.fixture
def nonperiodic_file(tmp_path) -> Path:
    """``data_file`` whose axis ``x`` is marked non-periodic (``opflow_periodic = 0``)."""
    return _with_x_attrs(tmp_path / "flat.nc", opflow_periodic=0)


@pytest.fixture
def junk_periodic_file(tmp_path) -> Path:
    """``data_file`` with text where the ``opflow_periodic`` mark of ``x`` belongs."""
    return _with_x_attrs(tmp_path / "junk_periodic.nc", opflow_periodic="yes")


@pytest.fixture
def junk_bounds_file(tmp_path) -> Path:
    """``data_file`` with three decreasing numbers as the ``opflow_bounds`` of ``x``."""
    return _with_x_attrs(tmp_path / "junk_bounds.nc", opflow_bounds=np.array([3.0, 2.0, 1.0]))


@pytest.fixture
def text_coords_file(tmp_path) -> Path:
    """``data_file`` whose coordinate ``x`` holds strings."""
    from opflow.io import save

    ds = pair_dataset().assign_coords(x=[f"p{i}" for i in range(16)])
    return save(ds, tmp_path / "text_coords.nc")


@pytest.fixture
def pretrained(tmp_path) -> Path:
    """A small checkpoint in the layout `opflow pretrain` writes (FNO backbone, 16 points)."""
    from opflow.meta.families import COEFFICIENT_SCALES, INPUTS
    from opflow.meta.maml import build_backbone
    from opflow.train import save_checkpoint

    model = build_backbone("fno", len(INPUTS), 16, width=4, modes=4, layers=1)
    metadata = {"families": ["advection"], "method": "fomaml", "backbone": "fno",
                "variables": [*INPUTS, "u"], "coefficient_scales": COEFFICIENT_SCALES,
                "t_end": 1.0, "grid": [0.0, 1.0, 16]}
    return save_checkpoint(tmp_path / "pretrained.pt", model, metadata=metadata)
