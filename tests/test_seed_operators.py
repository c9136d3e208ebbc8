"""DRIFT-Net, DyMixOp, the U-Nets and the attention operator: resolution behaviour of
each layer, symmetry, shapes in 1-D and 2-D, gradients, checkpoints, the command line
and bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr

from opflow import Field, Grid
from opflow.errors import InvalidArgumentError, ShapeError
from opflow.operators import (
    AttentionKernelIntegral,
    AttentionOperator,
    DRIFTNet,
    DyMixOp,
    FunctionSpaceUNet,
    InterpConv,
    LearnableStencil,
    UNet,
    build_operator,
)
from opflow.operators.blocks import fourier_features, resample_kernel
from opflow.operators.driftnet import SpectralCoupledBlock, radial_bands
from opflow.operators.dymixop import DyMixLayer
from opflow.operators.fno import positional_channels
from opflow.train import load_checkpoint, read_checkpoint, save_checkpoint
from opflow.train.model_setup import complete_config


def _waves(n: int, ndim: int = 2, dtype=torch.float32) -> torch.Tensor:
    """Band-limited test field (1, 3, *[n] * ndim) on the periodic unit box: |k| <= 4."""
    x = torch.arange(n, dtype=torch.float64) / n
    if ndim == 1:
        chans = [torch.sin(2 * math.pi * x + 0.3), torch.cos(2 * math.pi * 3 * x),
                 0.5 * torch.sin(2 * math.pi * 4 * x + 1.0)]
    else:
        X, Y = torch.meshgrid(x, x, indexing="ij")
        chans = [torch.sin(2 * math.pi * (X + 2 * Y) + 0.3),
                 torch.cos(2 * math.pi * (3 * X - Y)),
                 0.5 * torch.sin(2 * math.pi * 4 * Y + 1.0) * torch.cos(2 * math.pi * X)]
    return torch.stack(chans)[None].to(dtype)


def _coarse(y: torch.Tensor, ndim: int) -> torch.Tensor:
    """Every other point of a field on the twice finer grid: the coarse grid's points."""
    return y[(..., *(slice(None, None, 2),) * ndim)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------ DRIFT-Net
@pytest.mark.parametrize("ndim", [1, 2])
def test_driftnet_spectral_part_gives_the_same_function_at_two_resolutions(ndim):
    block = SpectralCoupledBlock(3, (5,) * ndim, n_bands=3, band_width=2.0)
    with torch.no_grad():
        coarse = block.spectral(_waves(16, ndim))
        fine = block.spectral(_waves(32, ndim))
    assert coarse.abs().max() > 0.1
    torch.testing.assert_close(_coarse(fine, ndim), coarse, atol=2e-6, rtol=0)


def test_driftnet_bands_use_the_true_radial_wavenumber():
    n = 16
    bands = radial_bands((n, n), n_bands=4, band_width=2.0)
    assert bands.shape == (n, n // 2 + 1)
    mirror = torch.remainder(-torch.arange(n), n)  # row of -k_x
    assert torch.equal(bands, bands[mirror])
    # the row k_x = -1 (array index 15) is a low band, as k_x = +1, not the highest one
    assert bands[15, 0] == bands[1, 0] == 0 and bands[8, 0] == 3
    assert int(bands[3, 4]) == min(int(math.floor(5.0 / 2.0)), 3)  # |(3, 4)| = 5


def test_driftnet_block_commutes_with_reflection_when_its_kernel_is_symmetric():
    torch.manual_seed(1)
    block = SpectralCoupledBlock(3, (4, 4), n_bands=3, band_width=2.0)
    with torch.no_grad():  # a depthwise kernel symmetric under x -> -x
        block.local.copy_(0.5 * (block.local + block.local.flip(-2)))
    x = torch.randn(2, 3, 16, 16)

    def reflect(u):  # u(x_j) -> u(-x_j) on a periodic grid: j -> -j mod n
        return torch.roll(u.flip(-2), 1, dims=-2)

    with torch.no_grad():
        torch.testing.assert_close(block(reflect(x)), reflect(block(x)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(block.spectral(reflect(x)), reflect(block.spectral(x)),
                                   atol=1e-6, rtol=1e-5)


def test_driftnet_shapes_and_sizes():
    grid = Grid.uniform(x=(0.0, 1.0, 16), y=(0.0, 2.0, 32), periodic=("x", "y"))
    model = DRIFTNet(2, 3, modes=(4, 6), width=4, levels=2)
    out = model(Field(torch.randn(5, 2, 16, 32), grid))
    assert isinstance(out, Field) and out.shape == (5, 3, 16, 32) and out.grid == grid
    assert model(torch.randn(2, 2, 8, 12)).shape == (2, 3, 8, 12)  # divisible by 4
    assert DRIFTNet(1, 1, modes=4, width=4, levels=3, ndim=1)(torch.randn(3, 1, 24)).shape \
        == (3, 1, 24)
    assert DRIFTNet(1, 1, modes=4, width=4, levels=0)(torch.randn(1, 1, 9, 7)).shape \
        == (1, 1, 9, 7)  # no merges: odd sizes are fine
    with pytest.raises(ShapeError, match=r"argument `x`.*divisible by 2\^levels = 4"):
        model(torch.randn(1, 2, 16, 30))
    with pytest.raises(ShapeError, match="argument `x`"):  # odd grid, one merge
        DRIFTNet(1, 1, modes=4, width=4, levels=1)(torch.randn(1, 1, 15, 16))


# ------------------------------------------------------------------ DyMixOp
def test_stencil_sums_to_zero_and_converges_to_a_derivative_at_first_order():
    stencil = LearnableStencil(1, 1, size=3, ndim=1).double()
    with torch.no_grad():
        stencil.weight.copy_(torch.tensor([[[0.3, -1.0, 0.9]]], dtype=torch.float64))
    taps = stencil.stencil().detach()[0, 0]
    assert abs(float(taps.sum())) < 1e-14
    slope = float((torch.arange(-1.0, 2.0, dtype=torch.float64) * taps).sum())  # sum_j j S_j
    errors = []
    for n in (16, 32, 64, 128):
        x = torch.arange(n, dtype=torch.float64) / n
        f = torch.sin(2 * math.pi * x) + 0.3 * torch.cos(4 * math.pi * x)
        df = 2 * math.pi * torch.cos(2 * math.pi * x) - 1.2 * math.pi * torch.sin(4 * math.pi * x)
        with torch.no_grad():
            y = stencil(f.reshape(1, 1, n), 1.0 / n)[0, 0]
        errors.append(float((y - slope * df).abs().max()))
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert min(orders) > 0.9, (errors, orders)
    # a constant input gives zero whatever the weights (2-D, trained weights)
    st2 = LearnableStencil(2, 3, size=3, ndim=2)
    with torch.no_grad():
        assert float(st2(torch.full((1, 2, 8, 8), 5.0), 0.1).abs().max()) < 1e-4


@pytest.mark.parametrize("ndim", [1, 2])
def test_dymixop_mixing_gives_the_same_function_at_two_resolutions(ndim):
    layer = DyMixLayer(3, (6,) * ndim, kernel_size=1)
    with torch.no_grad():
        coarse, fine = layer.mixing(_waves(16, ndim)), layer.mixing(_waves(32, ndim))
        g_coarse, g_fine = layer.global_part(_waves(16, ndim)), layer.global_part(_waves(32, ndim))
    assert coarse.abs().max() > 0.05
    torch.testing.assert_close(_coarse(fine, ndim), coarse, atol=2e-6, rtol=0)
    torch.testing.assert_close(_coarse(g_fine, ndim), g_coarse, atol=2e-6, rtol=0)


def test_dymixop_layer_converges_under_refinement():
    """The full layer (with its stencil) on a smooth input: differences between successive
    resolutions shrink at first order or better."""
    layer = DyMixLayer(3, (6,), kernel_size=1).double()
    with torch.no_grad():
        outs = {n: layer(_waves(n, 1, torch.float64), 1.0 / n) for n in (32, 64, 128, 256)}
    steps = [float((_coarse(outs[2 * n], 1) - outs[n]).abs().max()) for n in (32, 64, 128)]
    assert steps[0] > 1e-3  # the stencil's truncation error is there ...
    assert steps[0] / steps[1] > 1.8 and steps[1] / steps[2] > 1.8, steps  # ... and shrinks


@pytest.mark.parametrize("ndim,shape", [(1, (40,)), (2, (12, 20))])
def test_dymixop_shapes_fields_and_the_spacing_of_the_grid(ndim, shape):
    model = DyMixOp(2, 1, modes=4, width=6, n_layers=3, ndim=ndim)
    names = "xy"[:ndim]
    unit = Grid.uniform(periodic=names, **{a: (0.0, 1.0, n) for a, n in zip(names, shape)})
    x = torch.randn(3, 2, *shape)
    out = model(Field(x, unit))
    assert isinstance(out, Field) and out.shape == (3, 1, *shape) and out.grid == unit
    # a tensor is read as the periodic unit box: the same numbers
    torch.testing.assert_close(model(x), out.values)
    # on a longer domain the stencils divide by a larger spacing: another output
    long = Grid.uniform(periodic=names, **{a: (0.0, 4.0, n) for a, n in zip(names, shape)})
    assert not torch.allclose(model(Field(x, long)).values, out.values)


# ------------------------------------------------------------- U-Nets, InterpConv
def test_resampled_kernel_keeps_its_sum_and_its_reference_taps():
    w = torch.randn(2, 3, 3, 5)
    assert resample_kernel(w, [1.0, 1.0]) is w
    for s in (2.0, 3.0):
        r = resample_kernel(w, [s, s])
        assert r.shape == (2, 3, 2 * math.ceil(2 * s) - 1, 2 * math.ceil(3 * s) - 1)
        torch.testing.assert_close(r.sum(dim=(2, 3)), w.sum(dim=(2, 3)))
        # the fine kernel passes through the reference taps (times the cell-area ratio)
        c0, c1 = (r.shape[2] - 1) // 2, (r.shape[3] - 1) // 2
        k = int(s)
        torch.testing.assert_close(r[..., c0 - k:c0 + k + 1:k, c1 - 2 * k:c1 + 2 * k + 1:k],
                                   w / s**2)
    with pytest.raises(ShapeError, match="argument `weight`"):
        resample_kernel(torch.randn(1, 1, 4), [2.0])
    with pytest.raises(InvalidArgumentError, match="argument `scale`"):
        resample_kernel(w, [2.0])


def test_interpconv_converges_at_second_order_across_resolutions():
    errors = []
    conv = InterpConv(3, 2, kernel_size=3, ndim=2, padding="circular").double()
    for ref in (16, 32, 64):
        with torch.no_grad():
            coarse = conv(_waves(ref, 2, torch.float64))
            fine = conv(_waves(2 * ref, 2, torch.float64), scale=[2.0, 2.0])
        errors.append(_rel(_coarse(fine, 2), coarse))
    assert errors[-1] < 5e-3
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5, errors


def _smooth(n: int) -> torch.Tensor:
    """A smoother test field (1, 3, n, n): wavenumbers |k_j| <= 1."""
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return torch.stack([torch.sin(2 * math.pi * X + 0.3), torch.cos(2 * math.pi * (X - Y)),
                        0.5 * torch.sin(2 * math.pi * Y) * torch.cos(2 * math.pi * X)])[None]


def test_function_space_unet_keeps_its_function_and_the_plain_unet_does_not():
    fs = FunctionSpaceUNet(3, 1, width=4, levels=2, padding="circular",
                           reference_resolution=32).double()
    with torch.no_grad():
        for name, p in fs.named_parameters():
            if name.endswith("bias"):  # biases are the same at every resolution: compare the rest
                p.zero_()
    plain = UNet(3, 1, width=4, levels=2, padding="circular").double()
    plain.load_state_dict(fs.state_dict())  # the same weights
    fs_err, plain_err = [], []
    with torch.no_grad():
        torch.testing.assert_close(fs(_smooth(32)), plain(_smooth(32)), atol=0, rtol=0)
        for n in (32, 64):  # n and 2n points, compared on the n points
            fs_err.append(_rel(_coarse(fs(_smooth(2 * n)), 2), fs(_smooth(n))))
            plain_err.append(_rel(_coarse(plain(_smooth(2 * n)), 2), plain(_smooth(n))))
    # the function-space U-Net differs by the interpolation and quadrature errors (kernels,
    # up-sampling: second order, large on the 8-point coarsest level), which shrink ...
    assert fs_err[0] < 0.1 and fs_err[1] < fs_err[0] / 2.5, fs_err
    # ... the plain U-Net computes another function on every grid
    assert plain_err[0] > 3 * fs_err[0] and plain_err[1] > 5 * fs_err[1], (fs_err, plain_err)


def test_unet_sizes_shapes_and_errors():
    plain = UNet(2, 1, width=3, levels=2, ndim=1)
    assert plain(torch.randn(2, 2, 24)).shape == (2, 1, 24)
    assert plain(torch.randn(2, 2, 17)).shape == (2, 1, 17)  # both end points: 17 -> 9 -> 5
    grid = Grid.uniform(x=(0.0, 1.0, 17), y=(0.0, 1.0, 33))
    fs = FunctionSpaceUNet(1, 2, width=3, levels=2, reference_resolution=16)
    out = fs(Field(torch.randn(3, 1, 17, 33), grid))
    assert out.shape == (3, 2, 17, 33) and out.grid == grid
    with pytest.raises(ShapeError, match=r"argument `x`.*2\^levels = 4.*halves the grid"):
        plain(torch.randn(1, 2, 22))
    periodic = UNet(1, 1, width=3, levels=1, padding="circular")
    with pytest.raises(ShapeError, match="circular"):  # an odd periodic grid cannot be halved
        periodic(torch.randn(1, 1, 9, 8))
    with pytest.raises(InvalidArgumentError, match="argument `reference_resolution`"):
        FunctionSpaceUNet(1, 1, reference_resolution=(32, 32, 32))
    with pytest.raises(InvalidArgumentError, match="argument `kernel_size`"):
        UNet(1, 1, kernel_size=4)


# ------------------------------------------------------------------ attention
@pytest.mark.parametrize("ndim", [1, 2])
def test_attention_kernel_integral_is_the_same_function_at_two_resolutions(ndim):
    n_freq = 3
    layer = AttentionKernelIntegral(3, heads=2, pos_channels=2 * n_freq * ndim)

    def run(n):
        pos = fourier_features(positional_channels((n,) * ndim, None, torch.float32, None),
                               n_freq)
        weights = torch.full((n,) * ndim, 1.0 / n**ndim)
        with torch.no_grad():
            return layer(_waves(n, ndim), weights, pos)

    coarse, fine = run(16), run(32)
    assert coarse.abs().max() > 0.05
    torch.testing.assert_close(_coarse(fine, ndim), coarse, atol=2e-6, rtol=0)


def test_attention_operator_uses_the_grid_quadrature():
    model = AttentionOperator(1, 2, width=8, n_layers=2, ndim=2, heads=2, n_frequencies=2)
    x = torch.randn(2, 1, 12, 10)
    unit = Grid.uniform(x=(0.0, 1.0, 12), y=(0.0, 1.0, 10), periodic=("x", "y"))
    out = model(Field(x, unit))
    assert out.shape == (2, 2, 12, 10) and out.grid == unit
    torch.testing.assert_close(model(x), out.values)  # tensors: the periodic unit box
    # a longer periodic domain: normalised coordinates and weights, the same function
    torch.testing.assert_close(model(Field(x, Grid.uniform(
        x=(0.0, 6.0, 12), y=(-1.0, 2.0, 10), periodic=("x", "y")))).values, out.values)
    assert AttentionOperator(1, 1, width=4, n_layers=1, ndim=1)(torch.randn(1, 1, 7)).shape \
        == (1, 1, 7)


# ------------------------------------------------------------- every model
MODELS = {
    "DRIFTNet": lambda ndim: DRIFTNet(2, 1, modes=4, width=4, levels=1, ndim=ndim),
    "DyMixOp": lambda ndim: DyMixOp(2, 1, modes=4, width=4, n_layers=2, ndim=ndim,
                                    kernel_size=3),
    "UNet": lambda ndim: UNet(2, 1, width=3, levels=2, ndim=ndim),
    "FunctionSpaceUNet": lambda ndim: FunctionSpaceUNet(2, 1, width=3, levels=2, ndim=ndim,
                                                        reference_resolution=8),
    "AttentionOperator": lambda ndim: AttentionOperator(2, 1, width=4, n_layers=2, ndim=ndim,
                                                        heads=2, n_frequencies=2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("ndim", [1, 2])
def test_every_model_runs_on_two_resolutions_and_every_parameter_gets_a_gradient(name, ndim):
    model = MODELS[name](ndim)
    for n in (8, 16):
        out = model(torch.randn(3, 2, *(n,) * ndim))
        assert out.shape == (3, 1, *(n,) * ndim)
    model.zero_grad()
    model(torch.randn(3, 2, *(16,) * ndim)).square().mean().backward()
    dead = [k for k, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not dead, dead


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_round_trips_through_a_checkpoint(name, tmp_path):
    model = MODELS[name](2)
    config = json.loads(json.dumps(model.config))
    assert config["name"] == name
    save_checkpoint(tmp_path / "m.pt", model, epoch=1)
    stored = read_checkpoint(tmp_path / "m.pt")
    clone = build_operator(stored["model_config"])
    load_checkpoint(tmp_path / "m.pt", clone)
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x), atol=0, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_a_channel_mismatch_and_bad_arguments(name):
    model = MODELS[name](2)
    with pytest.raises(ShapeError, match=r"argument `x`: expected 2 channels"):
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(InvalidArgumentError, match="argument `x`"):  # a 1-D field for 2-D
        model(Field(torch.randn(1, 2, 8), Grid.uniform(x=(0.0, 1.0, 8))))
    cfg = model.config
    with pytest.raises(InvalidArgumentError, match="argument `in_channels`"):
        build_operator({**cfg, "in_channels": 0})
    with pytest.raises(InvalidArgumentError, match="argument `ndim`"):
        build_operator({**cfg, "ndim": 4})


def test_constructor_errors_name_the_argument():
    with pytest.raises(InvalidArgumentError, match="argument `modes`"):
        DRIFTNet(1, 1, modes=(4, 4, 4))
    with pytest.raises(InvalidArgumentError, match="argument `band_width`"):
        DRIFTNet(1, 1, band_width=0)
    with pytest.raises(InvalidArgumentError, match="argument `padding`"):
        DRIFTNet(1, 1, padding="periodic")
    with pytest.raises(InvalidArgumentError, match="argument `ndim`"):
        DyMixOp(1, 1, modes=4)
    with pytest.raises(InvalidArgumentError, match="argument `stencil_size`"):
        DyMixOp(1, 1, modes=4, ndim=1, stencil_size=4)
    with pytest.raises(InvalidArgumentError, match="argument `n_frequencies`"):
        AttentionOperator(1, 1, n_frequencies=-1)
    with pytest.raises(InvalidArgumentError, match="argument `size`"):
        LearnableStencil(1, 1, size=1)
    with pytest.raises(InvalidArgumentError, match="argument `spacing`"):
        LearnableStencil(1, 1)(torch.randn(1, 1, 8), 0.0)
    with pytest.raises(ShapeError, match="argument `weights`"):
        AttentionKernelIntegral(2)(torch.randn(1, 2, 8), torch.ones(7))


# ------------------------------------------------------------- command line
def test_train_defaults_for_the_new_models():
    cfg = complete_config({"name": "driftnet", "in_channels": 1, "out_channels": 1,
                           "layers": 2}, (24, 16), (24, 16), 10)
    assert cfg["levels"] == 2 and cfg["depth"] == 2 and cfg["ndim"] == 2 and "layers" not in cfg
    assert complete_config({"name": "DRIFTNet"}, (18,), (18,), 4)["levels"] == 1
    cfg = complete_config({"name": "function-space-unet"}, (33, 33), (33, 33), 4)
    assert cfg["levels"] == 3 and cfg["reference_resolution"] == [33, 33]
    cfg = complete_config({"name": "function-space-unet"}, (33, 33), (33, 33), 4,
                          in_cells=(32, 32))
    assert cfg["reference_resolution"] == [32, 32]
    cfg = complete_config({"name": "dymixop", "layers": 3}, (64,), (64,), 4)
    assert cfg["modes"] == [12] and cfg["n_layers"] == 3 and cfg["ndim"] == 1
    assert complete_config({"name": "attention_operator"}, (8, 8), (8, 8), 4)["ndim"] == 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from opflow.data import generate
    from opflow.io import save

    d = tmp_path_factory.mktemp("seed_ops")
    ds = generate("grf", n=8, resolution=16, seed=0, progress=False)
    ds["u"] = ds["g"] ** 2 + 0.5 * ds["g"]
    save(ds, d / "train.nc")
    return d


@pytest.mark.parametrize("model", ["driftnet", "dymixop", "function-space-unet", "unet",
                                   "attention-operator"])
def test_opflow_train_and_predict(data, tmp_path, model, capsys):
    from opflow.cli import main

    run = tmp_path / "run"
    code = main(["train", "--model", model, "--data", str(data / "train.nc"), "--input", "g",
                 "--output", "u", "--epochs", "2", "--batch-size", "4", "--width", "4",
                 "--out", str(run), "--quiet"])
    assert code == 0, capsys.readouterr().err
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])
    config = read_checkpoint(run / "best.pt")["model_config"]
    assert build_operator(config).config == config
    pred = tmp_path / "pred.nc"
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input",
                 str(data / "train.nc"), "--out", str(pred), "--quiet"]) == 0
    with xr.open_dataset(pred) as ds:
        assert ds["u"].shape == (8, 16, 16) and np.isfinite(ds["u"].values).all()


def test_opflow_train_counts_cells_for_the_function_space_unet(tmp_path, capsys):
    """On a grid with both end points (17 points, 16 cells) the reference resolution is the
    cell count, so on the training grid the kernels are the stored taps: the model is the
    plain U-Net with the same weights there."""
    from opflow.cli import main
    from opflow.io import save

    grid = Grid.uniform(x=(0.0, 1.0, 17), y=(0.0, 1.0, 17))
    g = torch.randn(6, 1, 17, 17, generator=torch.Generator().manual_seed(0))
    ds = Field(g, grid, "g").to_xarray()
    ds["u"] = ds["g"] ** 2
    save(ds, tmp_path / "train.nc")
    run = tmp_path / "run"
    assert main(["train", "--model", "function-space-unet", "--data", str(tmp_path / "train.nc"),
                 "--vars", "g", "--targets", "u", "--epochs", "1", "--batch-size", "3",
                 "--width", "3", "--out", str(run), "--quiet"]) == 0, capsys.readouterr().err
    config = read_checkpoint(run / "best.pt")["model_config"]
    assert config["reference_resolution"] == [16, 16]
    fs = build_operator(config)
    plain = UNet(**{k: v for k, v in config.items() if k not in ("name", "reference_resolution")})
    plain.load_state_dict(fs.state_dict())
    x = Field(g[:2], grid)
    torch.testing.assert_close(fs(x).values, plain(x).values)
