"""Neural operators: shapes and Fields, resolution transfer, overfitting, config
round trips, input errors, and interop with neuraloperator and DeepXDE."""

import json
import math
import os

import numpy as np
import pytest
import torch

from opflow import Field, Grid
from opflow.errors import (
    GridMismatchError,
    InvalidArgumentError,
    OpflowError,
    ShapeError,
    UnknownVariableError,
)
from opflow.grid import Axis
from opflow.operators import (
    FNO,
    DeepONet,
    MgNO,
    POD_DeepONet,
    build_operator,
    register_operator,
    registered_operators,
)


def _grid(*sizes, periodic=True):
    names = "xyz"[: len(sizes)]
    return Grid.uniform(periodic=names if periodic else (),
                        **{n: (0.0, 1.0, s) for n, s in zip(names, sizes)})


def _train(model, inputs, target, steps, lr, loss_fn=None):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(*inputs) - target) ** 2).mean() if loss_fn is None else loss_fn()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ------------------------------------------------------------------- shapes
@pytest.mark.parametrize("sizes, modes",
                         [((32,), (8,)), ((16, 12), (4, 4)), ((8, 8, 6), (2, 3, 3))])
def test_fno_shapes_tensor_and_field(sizes, modes):
    model = FNO(2, 3, modes, width=6, n_layers=2, projection_channels=8)
    out = model(torch.randn(4, 2, *sizes))
    assert isinstance(out, torch.Tensor) and out.shape == (4, 3, *sizes)
    g = _grid(*sizes)
    f = model(Field(torch.randn(2, 5, 2, *sizes), g, names=["a", "b"]))
    assert isinstance(f, Field) and f.grid == g and f.shape == (2, 5, 3, *sizes)
    single = model(Field(torch.randn(2, *sizes), g))  # no batch dimensions
    assert single.shape == (3, *sizes)


@pytest.mark.parametrize("backend", ["fft", "dft"])
def test_fno_gradcheck(backend):
    model = FNO(1, 1, (3, 3), width=3, n_layers=2, projection_channels=4,
                channel_mlp_expansion=1.0, backend=backend).double()
    x = torch.randn(2, 1, 8, 6, dtype=torch.float64, requires_grad=True)
    params = list(model.parameters())
    assert torch.autograd.gradcheck(model, (x,))
    # one entry of every parameter's gradient against a central difference
    loss = model(x).square().sum()
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    for p, g in zip(params, grads):
        idx = (0,) * p.ndim
        with torch.no_grad():
            p[idx] += eps
            up = model(x).square().sum()
            p[idx] -= 2 * eps
            down = model(x).square().sum()
            p[idx] += eps
        assert abs(float((up - down) / (2 * eps)) - float(g[idx])) < 1e-5 * (1 + abs(float(g[idx])))


def test_fno_options_padding_lifting_mlp_and_coarse_grid():
    model = FNO(1, 1, (6, 6), width=8, n_layers=2, padding=3, lifting_channels=16,
                channel_mlp_expansion=0.5, activation="relu")
    g = _grid(20, 20, periodic=False)
    out = model(Field(torch.randn(2, 1, 20, 20), g))
    assert out.shape == (2, 1, 20, 20) and out.grid == g
    # a grid coarser than 2 x modes: the modes are truncated, not an error
    assert model(torch.randn(1, 1, 8, 6)).shape == (1, 1, 8, 6)


def test_deeponet_cartesian_product_and_fields():
    model = DeepONet([20, 16, 8], [2, 16, 8])
    u, y = torch.randn(5, 20), torch.rand(30, 2)
    assert model(u, y).shape == (5, 30)
    assert model(torch.randn(20), y).shape == (30,)
    multi = DeepONet([20, 16, 8], [2, 16, 8], n_outputs=3)
    assert multi(u, y).shape == (5, 3, 30)
    stacked = DeepONet([20, 16, 8], [2, 16, 8], n_outputs=2, stacked=True)
    assert stacked(u, y).shape == (5, 2, 30)
    # Field in (sensors = its values), Field out on a query grid
    g_in, g_out = _grid(4, 5, periodic=False), _grid(10, 12, periodic=False)
    fu = Field(torch.randn(3, 5, 1, 4, 5), g_in)
    out = multi(fu, g_out)
    assert isinstance(out, Field) and out.grid == g_out and out.shape == (3, 5, 3, 10, 12)
    assert model(fu).grid == g_in  # default query grid: the input's own
    # the query grid is flattened in Field (ij) order
    pts = torch.stack([c.reshape(-1) for c in g_out.mesh()], 1)
    torch.testing.assert_close(multi(fu, g_out).values.reshape(3, 5, 3, -1),
                               multi(fu.values.reshape(3, 5, 20), pts))


def test_pod_deeponet_modes_and_field_output():
    g = _grid(8, 6, periodic=False)
    outputs = Field(torch.randn(30, 2, 8, 6), g)
    model = POD_DeepONet([12, 16, 5], out_channels=2).fit_modes(outputs)
    assert model.config["output_shape"] == [8, 6]
    m = model.modes.double()
    torch.testing.assert_close(m.T @ m / m.shape[0], torch.eye(5, dtype=torch.float64),
                               atol=1e-5, rtol=0)  # orthogonal, unit RMS
    torch.testing.assert_close(model.mean, outputs.values.mean(0).reshape(-1))
    out = model(torch.randn(4, 12))
    assert isinstance(out, Field) and out.grid == g and out.shape == (4, 2, 8, 6)
    with pytest.raises(InvalidArgumentError, match="n_modes"):
        model.fit_modes(outputs, n_modes=4)


@pytest.mark.parametrize("ndim, size, padding", [(1, 33, "zeros"), (2, 16, "circular"),
                                                 (2, 17, "reflect"), (3, 9, "zeros")])
def test_mgno_shapes_on_power_of_two_sizes(ndim, size, padding):
    model = MgNO(2, 3, levels=3, width=4, n_layers=2, ndim=ndim, padding=padding,
                 post_smooth=1)
    sizes = (size,) * ndim
    g = _grid(*sizes, periodic=padding == "circular")
    out = model(Field(torch.randn(2, 2, *sizes), g))
    assert isinstance(out, Field) and out.grid == g and out.shape == (2, 3, *sizes)
    finer = tuple(2 * s - 1 if s % 2 else 2 * s for s in sizes)
    assert model(torch.randn(1, 2, *finer)).shape == (1, 3, *finer)


def test_mgno_circular_padding_is_shift_equivariant():
    """Periodic boundaries: shifting the input by the coarsest stride shifts the output."""
    model = MgNO(1, 1, levels=3, width=4, n_layers=2, padding="circular", post_smooth=1)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        shifted = model(torch.roll(x, shifts=(4, 8), dims=(2, 3)))
        torch.testing.assert_close(shifted, torch.roll(model(x), shifts=(4, 8), dims=(2, 3)),
                                   rtol=1e-5, atol=1e-5)


# -------------------------------------------------------- resolution transfer
def _band_limited(n_samples, n, generator):
    t = torch.arange(n, dtype=torch.float64) / n
    k = torch.arange(1, 5, dtype=torch.float64)
    a = torch.randn(n_samples, 4, 2, generator=generator, dtype=torch.float64) / k[:, None]
    phase = 2 * math.pi * k[:, None] * t
    u = (a[..., 0, None] * torch.sin(phase) + a[..., 1, None] * torch.cos(phase)).sum(1)
    damp = torch.exp(-(k / 3) ** 2)[:, None]  # a smoothing Fourier multiplier
    v = (damp * (a[..., 0, None] * torch.sin(phase) + a[..., 1, None] * torch.cos(phase))).sum(1)
    return u[:, None].float(), v[:, None].float()


def test_fno_exact_resolution_transfer_of_a_linear_model():
    """Without activations and coordinates an FNO is a Fourier multiplier plus
    pointwise maps: on band-limited input the 64-point output is the 32-point
    output at every other point."""
    model = FNO(1, 2, (12,), width=6, n_layers=3, activation="identity", positional=False)
    gen = torch.Generator().manual_seed(1)
    # the same functions on both grids (same coefficients)
    u32, _ = _band_limited(3, 32, gen)
    u64, _ = _band_limited(3, 64, gen.manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(u64)[..., ::2], model(u32), rtol=1e-4, atol=1e-5)


def test_fno_trained_on_32_points_transfers_to_64():
    gen = torch.Generator().manual_seed(0)
    u, v = _band_limited(64, 32, gen)
    g32, g64 = _grid(32), _grid(64)
    model = FNO(1, 1, (8,), width=16, n_layers=2, projection_channels=32)
    fu, fv = Field(u, g32), Field(v, g32)
    losses = _train(model, (), None, 300, 5e-3,
                    loss_fn=lambda: ((model(fu).values - fv.values) ** 2).mean())
    assert losses[-1] < losses[0] / 10
    u_test, v_test = _band_limited(16, 64, torch.Generator().manual_seed(7))
    with torch.no_grad():
        pred64 = model(Field(u_test, g64)).values
        pred32 = model(Field(u_test[..., ::2], g32)).values
    err64 = float((pred64 - v_test).norm() / v_test.norm())
    err32 = float((pred32 - v_test[..., ::2]).norm() / v_test[..., ::2].norm())
    assert err64 < 0.1, (err32, err64)
    assert err64 < 1.5 * err32 + 0.01, (err32, err64)


# ---------------------------------------------------------------- overfitting
def test_fno_overfits_a_tiny_2d_set():
    x = torch.randn(4, 1, 16, 16)
    y = torch.tanh(x) + torch.roll(x, 1, dims=-1)
    model = FNO(1, 1, (4, 4), width=8, n_layers=2, projection_channels=16)
    losses = _train(model, (x,), y, 200, 1e-2)
    assert losses[-1] < losses[0] / 10


def _sine_data(n_funcs, n_sensors, n_points, generator):
    a = torch.randn(n_funcs, 2, generator=generator)
    xs = torch.linspace(0, 1, n_sensors)
    u = a[:, :1] * torch.sin(2 * math.pi * xs) + a[:, 1:] * torch.cos(2 * math.pi * xs)
    ys = torch.linspace(0, 1, n_points)
    v = a[:, :1] * torch.cos(2 * math.pi * ys) - a[:, 1:] * torch.sin(2 * math.pi * ys)
    return u, ys[:, None], v


def test_deeponet_overfits_a_tiny_set():
    u, y, v = _sine_data(8, 20, 40, torch.Generator().manual_seed(0))
    model = DeepONet([20, 32, 32], [1, 32, 32], activation="tanh")
    losses = _train(model, (u, y), v, 300, 3e-3)
    assert losses[-1] < losses[0] / 10


def test_stacked_deeponet_overfits_a_tiny_set():
    u, y, v = _sine_data(8, 20, 40, torch.Generator().manual_seed(0))
    model = DeepONet([20, 16, 12], [1, 32, 12], stacked=True, activation="tanh")
    losses = _train(model, (u, y), v, 300, 1e-2)
    assert losses[-1] < losses[0] / 10


def test_pod_deeponet_overfits_a_tiny_set():
    u, _, v = _sine_data(16, 20, 40, torch.Generator().manual_seed(0))
    v = v[:, None] + 0.3  # (N, 1 channel, 40 points), non-zero mean
    model = POD_DeepONet([20, 32, 4], out_channels=1).fit_modes(v)
    losses = _train(model, (u,), v, 300, 3e-3)
    assert losses[-1] < losses[0] / 10


def test_mgno_overfits_a_tiny_set():
    x = torch.randn(4, 1, 17, 17)
    y = 0.5 * (x + torch.roll(x, 1, dims=-2)) - 0.2
    model = MgNO(1, 1, levels=3, width=8, n_layers=2)
    losses = _train(model, (x,), y, 200, 5e-3)
    assert losses[-1] < losses[0] / 10


# ------------------------------------------------------------- config / build
def _models():
    g = _grid(8, 8, periodic=False)
    pod = POD_DeepONet([64, 16, 4], out_channels=1).fit_modes(Field(torch.randn(10, 1, 8, 8), g))
    return [
        (FNO(1, 2, (4, 4), width=6, n_layers=2, channel_mlp_expansion=0.5, padding=2),
         (torch.randn(2, 1, 8, 8),)),
        (FNO(1, 1, 4, ndim=1, width=4, lifting_channels=8), (torch.randn(2, 1, 16),)),
        (DeepONet([16, 8, 8], [2, 8, 8], n_outputs=2, stacked=True,
                  activation={"branch": "tanh", "trunk": "relu"}),
         (torch.randn(3, 16), torch.rand(5, 2))),
        (pod, (torch.randn(3, 64),)),
        (MgNO(2, 1, levels=2, width=4, n_layers=2, padding="reflect"),
         (torch.randn(2, 2, 9, 9),)),
    ]


@pytest.mark.parametrize("index", range(5))
def test_config_round_trip(index):
    model, inputs = _models()[index]
    config = json.loads(json.dumps(model.config))  # plain JSON
    assert config["name"] in registered_operators()
    clone = build_operator(config)
    assert type(clone) is type(model) and clone.config == model.config
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        a, b = model(*inputs), clone(*inputs)
    a = a.values if isinstance(a, Field) else a
    b = b.values if isinstance(b, Field) else b
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fno_with_an_int_modes_takes_its_dimension_from_the_first_input(tmp_path):
    from opflow.train import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = FNO(1, 1, modes=3, width=4, n_layers=2, padding=1)
    assert model.ndim is None
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # made before the first call
    with pytest.raises(InvalidArgumentError, match="call it once or pass ndim"):
        model.state_dict()
    field = Field(torch.randn(2, 1, 8, 8), _grid(8, 8))
    out = model(field)
    assert out.shape == (2, 1, 8, 8) and model.ndim == 2 and model.modes == (3, 3)
    assert model.padding == (1, 1) and model.lifting[0].weight.shape == (4, 3)
    before = [p.detach().clone() for p in model.parameters()]
    out.values.square().mean().backward()
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    with pytest.raises(GridMismatchError, match="2-D grid"):
        model(Field(torch.randn(2, 1, 8), _grid(8)))

    # config keeps the arguments; rebuilding and loading the weights fixes ndim
    config = json.loads(json.dumps(model.config))
    assert config["modes"] == 3 and config["ndim"] is None
    clone = build_operator(config)
    clone.load_state_dict(model.state_dict())
    assert clone.ndim == 2
    torch.testing.assert_close(clone(field).values, model(field).values, rtol=0, atol=0)
    path = save_checkpoint(tmp_path / "lazy.pt", model)
    again = build_operator(config)
    load_checkpoint(path, again)
    torch.testing.assert_close(again(field).values, model(field).values, rtol=0, atol=0)

    line = FNO(1, 2, modes=4, width=4, n_layers=1)
    assert line(torch.randn(3, 1, 16)).shape == (3, 2, 16) and line.modes == (4,)
    with pytest.raises(ShapeError, match="argument `x`.*pass ndim="):
        FNO(1, 1, modes=4, width=4)(torch.randn(1, 1, 2, 2, 2, 2))
    with pytest.raises(InvalidArgumentError, match="padding"):
        FNO(1, 1, modes=4, width=4, padding=[1, 1])(torch.randn(1, 1, 16))
    assert FNO(1, 1, 4, width=4, ndim=2).modes == (4, 4)  # an int for every axis


def test_registration_of_user_models():
    @register_operator(name="TinyFNO")
    class TinyFNO(FNO):
        pass

    class Unregistered(FNO):
        pass

    model = TinyFNO(1, 1, (4,), width=4, n_layers=1)
    assert model.config["name"] == "TinyFNO"
    assert type(build_operator(model.config)) is TinyFNO
    with pytest.raises(InvalidArgumentError, match="register_operator"):
        _ = Unregistered(1, 1, (4,), width=4, n_layers=1).config
    with pytest.raises(InvalidArgumentError, match="name"):
        register_operator(name="FNO")(Unregistered)  # the name is taken


def test_build_operator_errors():
    with pytest.raises(UnknownVariableError, match="Transformer"):
        build_operator({"name": "Transformer"})
    with pytest.raises(InvalidArgumentError, match="config"):
        build_operator({"in_channels": 1})
    with pytest.raises(InvalidArgumentError, match="config"):
        build_operator({"name": "FNO", "in_channels": 1, "out_channels": 1, "modes": [4],
                        "width": 4, "depth": 3})


# ----------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_opflow_errors():
    fno = FNO(2, 1, (4, 4), width=4, n_layers=1)
    with pytest.raises(ShapeError, match="2 channels"):
        fno(torch.randn(3, 1, 16, 16))
    with pytest.raises(ShapeError, match="x"):
        fno(torch.randn(16, 16))
    with pytest.raises(GridMismatchError, match="2-D grid"):
        fno(Field(torch.randn(3, 2, 16), _grid(16)))
    uneven = Grid([Axis("x", np.array([0, 0.1, 0.5, 1.0])), Axis("y", np.linspace(0, 1, 4))])
    with pytest.raises(GridMismatchError, match="uniform"):
        fno(Field(torch.randn(1, 2, 4, 4), uneven))
    with pytest.raises(InvalidArgumentError, match="ndim"):
        FNO(1, 1, 4, width=4, ndim=4)
    with pytest.raises(InvalidArgumentError, match="ndim"):
        FNO(1, 1, (4, 4), width=4, ndim=1)
    with pytest.raises(InvalidArgumentError, match="modes"):
        FNO(1, 1, (4, 0), width=4)
    with pytest.raises(InvalidArgumentError, match="activation"):
        FNO(1, 1, (4,), width=4, activation="swoosh")

    mgno = MgNO(1, 1, levels=4, width=4, n_layers=1)
    with pytest.raises(GridMismatchError, match="at least 9 points"):
        mgno(torch.randn(1, 1, 8, 8))  # the coarsest level would have 1 point
    with pytest.raises(ShapeError, match="1 channels"):
        mgno(torch.randn(1, 3, 17, 17))
    with pytest.raises(InvalidArgumentError, match="padding"):
        MgNO(1, 1, padding="replicate")

    don = DeepONet([10, 8, 8], [2, 8, 8])
    with pytest.raises(ShapeError, match="10"):
        don(torch.randn(3, 11), torch.rand(4, 2))
    with pytest.raises(ShapeError, match="y"):
        don(torch.randn(3, 10), torch.rand(4, 3))
    with pytest.raises(ShapeError, match="2 axes"):
        don(torch.randn(3, 10), _grid(5))
    with pytest.raises(InvalidArgumentError, match="y"):
        don(torch.randn(3, 10))  # a tensor input needs query points
    with pytest.raises(InvalidArgumentError, match="trunk_layers"):
        DeepONet([10, 8, 8], [2, 8, 6])

    pod = POD_DeepONet([10, 8, 3])
    with pytest.raises(OpflowError, match="fit_modes"):
        pod(torch.randn(2, 10))
    with pytest.raises(ShapeError, match="outputs"):
        pod.fit_modes(torch.randn(20, 2, 5))  # 2 channels, model has 1
    with pytest.raises(InvalidArgumentError, match="samples"):
        pod.fit_modes(torch.randn(2, 1, 5))  # fewer samples than modes


# --------------------------------------------------------------------- interop
def test_fno_from_neuraloperator_matches_outputs():
    neuralop = pytest.importorskip("neuralop")
    torch.manual_seed(0)
    for n_modes, sizes in [((12, 10), (32, 24)), ((10,), (40,)), ((6, 6, 4), (12, 12, 8))]:
        peer = neuralop.models.FNO(n_modes=n_modes, in_channels=2, out_channels=3,
                                   hidden_channels=8, n_layers=3)
        ours = FNO.from_neuraloperator(peer)
        x = torch.randn(3, 2, *sizes)
        with torch.no_grad():
            expected = peer(x)
            torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
            # Field input on the periodic unit grid gives the same coordinates
            f = ours(Field(x, _grid(*sizes)))
            torch.testing.assert_close(f.values, expected, rtol=1e-5, atol=1e-5)
    # a lifting with one layer, no positional channels, both backends
    peer = neuralop.models.FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=8,
                               n_layers=2, lifting_channel_ratio=0, positional_embedding=None)
    ours = FNO.from_neuraloperator(peer)
    x = torch.randn(2, 1, 16, 16)
    for backend in ("fft", "dft"):
        for layer in ours.layers:
            layer.backend = backend
        with torch.no_grad():
            torch.testing.assert_close(ours(x), peer(x), rtol=1e-5, atol=1e-5)
    unsupported = neuralop.models.FNO(n_modes=(8, 8), in_channels=1, out_channels=1,
                                      hidden_channels=8, use_channel_mlp=False)
    with pytest.raises(InvalidArgumentError, match="use_channel_mlp"):
        FNO.from_neuraloperator(unsupported)


def _deepxde():
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    dde = pytest.importorskip("deepxde")
    if dde.backend.backend_name != "pytorch":
        pytest.skip("deepxde runs with another backend")
    return dde


def test_deeponet_from_deepxde_matches_outputs():
    dde = _deepxde()
    torch.manual_seed(0)
    u, y = torch.randn(6, 20), torch.rand(30, 2)
    net = dde.nn.pytorch.DeepONetCartesianProd([20, 16, 16], [2, 16, 16], "relu",
                                               "Glorot normal")
    with torch.no_grad():
        for b in net.b:
            b.fill_(0.7)
        ours = DeepONet.from_deepxde(net)
        torch.testing.assert_close(ours(u, y), net((u, y)), rtol=1e-5, atol=1e-5)
    net = dde.nn.pytorch.DeepONetCartesianProd([20, 16, 32], [2, 16, 16], "tanh",
                                               "Glorot normal", num_outputs=2,
                                               multi_output_strategy="split_branch")
    with torch.no_grad():
        for i, b in enumerate(net.b):
            b.fill_(0.1 * (i + 1))
        ours = DeepONet.from_deepxde(net)
        torch.testing.assert_close(ours(u, y), net((u, y)).transpose(1, 2), rtol=1e-5,
                                   atol=1e-5)


def test_input_dtype_must_match_the_weights_and_a_converted_model_accepts_it():
    model = FNO(1, 1, (4,), width=4)
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"torch\.float32.*torch\.float64"):
        model(x)
    assert model.double()(x).dtype == torch.float64


@pytest.mark.parametrize("name", ["relu", "silu", "tanh", "F.tanh"])
def test_from_neuraloperator_mirrors_every_non_linearity(name):
    """neuraloperator's channel MLPs use GELU whatever non_linearity is; the mirror
    applied the model's activation there (relative errors 0.07 / 8e-3 / 0.27 before)."""
    neuralop = pytest.importorskip("neuralop.models")
    import torch.nn.functional as F

    act = {"relu": F.relu, "silu": F.silu, "tanh": torch.tanh, "F.tanh": F.tanh}[name]
    torch.manual_seed(0)
    peer = neuralop.FNO(n_modes=(8, 8), in_channels=1, out_channels=1, hidden_channels=16,
                        n_layers=2, non_linearity=act)
    ours = FNO.from_neuraloperator(peer)
    assert ours.config["channel_mlp_activation"] == "gelu"
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        want, got = peer(x), ours(x)
    assert float((got - want).abs().max() / want.abs().max()) < 1e-5


# neuraloperator options (#17): each mirrored one compared on random weights and inputs;
# neuraloperator computes its spectra in complex64 whatever the input dtype, so float32
# and a relative tolerance of 1e-5 is as tight as the comparison gets
def _peer_fno(**kw):
    neuralop = pytest.importorskip("neuralop.models")
    torch.manual_seed(0)
    kw = {"in_channels": 2, "out_channels": 1, "hidden_channels": 8, "n_layers": 2, **kw}
    peer = neuralop.FNO(**kw)
    with torch.no_grad():  # gates, skips and norm parameters away from their 0/1 start
        for name, p in peer.named_parameters():
            if "skips" in name or "norm" in name:
                p.copy_(torch.randn_like(p))
    return peer


def _assert_mirrors(peer, sizes, train=False):
    ours = FNO.from_neuraloperator(peer)
    x = torch.randn(3, 2, *sizes)
    with torch.set_grad_enabled(train):
        want, got = peer(x), ours(x)
    assert float((got - want).detach().abs().max() / want.detach().abs().max()) < 1e-5
    return ours


@pytest.mark.parametrize("n_modes,sizes", [((5, 5), (16, 16)), ((7, 6), (16, 12)),
                                           ((7, 6), (6, 6)), ((5, 3, 4), (12, 12, 8)),
                                           ((5,), (16,))])
def test_from_neuraloperator_odd_n_modes(n_modes, sizes):
    ours = _assert_mirrors(_peer_fno(n_modes=n_modes), sizes)
    assert ours.modes == (*((n + 1) // 2 for n in n_modes[:-1]), n_modes[-1] // 2 + 1)


@pytest.mark.parametrize("n_modes,max_n_modes,sizes", [((8, 8), (12, 12), (16, 16)),
                                                       ((5, 5), (10, 9), (16, 16)),
                                                       ((8, 8), (12, 12), (6, 6))])
def test_from_neuraloperator_max_n_modes(n_modes, max_n_modes, sizes):
    _assert_mirrors(_peer_fno(n_modes=n_modes, max_n_modes=max_n_modes), sizes)


@pytest.mark.parametrize("fno_skip", ["linear", "identity", "soft-gating", None])
@pytest.mark.parametrize("channel_mlp_skip", ["linear", "identity", "soft-gating", None])
def test_from_neuraloperator_skip_types(fno_skip, channel_mlp_skip):
    ours = _assert_mirrors(_peer_fno(n_modes=(6, 6), fno_skip=fno_skip,
                                     channel_mlp_skip=channel_mlp_skip), (16, 16))
    default = fno_skip == "linear" and channel_mlp_skip == "soft-gating"
    assert ("fno_skip" in ours.config) == (fno_skip != "linear")
    assert ours.layers[0].general != default  # the defaults keep the fused path


@pytest.mark.parametrize("norm", [None, "instance_norm", "group_norm", "batch_norm"])
@pytest.mark.parametrize("preactivation", [False, True])
def test_from_neuraloperator_norm_and_preactivation(norm, preactivation):
    peer = _peer_fno(n_modes=(6, 6), norm=norm, preactivation=preactivation)
    _assert_mirrors(peer, (16, 16), train=True)  # batch statistics, running ones updated
    peer.eval()
    ours = _assert_mirrors(peer, (16, 16))  # running statistics
    assert not ours.training


@pytest.mark.parametrize("kw,sizes", [({"domain_padding": 0.1}, (16, 16)),
                                      ({"domain_padding": [0.1, 0.25]}, (20, 16)),
                                      ({"domain_padding": 0.15, "n_modes": (6,)}, (20,)),
                                      ({"stabilizer": "tanh"}, (16, 16)),
                                      ({"factorization": "tucker", "rank": 0.5}, (16, 16)),
                                      ({"factorization": "cp", "rank": 0.5,
                                        "implementation": "reconstructed"}, (16, 16)),
                                      ({"separable": True}, (16, 16))])
def test_from_neuraloperator_padding_stabilizer_factorised(kw, sizes):
    _assert_mirrors(_peer_fno(**{"n_modes": (6, 6), **kw}), sizes)


@pytest.mark.parametrize("kw,option,reason", [
    ({"resolution_scaling_factor": 2}, "resolution_scaling_factor", "align_corners"),
    ({"complex_data": True}, "complex_data", "real functions"),
    ({"channel_mlp_dropout": 0.1}, "channel_mlp_dropout", "dropout"),
    ({"use_channel_mlp": False}, "use_channel_mlp", "activation twice"),
    ({"fno_block_precision": "half"}, "fno_block_precision", "half-precision"),
    ({"norm": "ada_in"}, "ada_in", "set_ada_in_embeddings"),
])
def test_from_neuraloperator_refuses_with_the_option_and_reason(kw, option, reason):
    if kw.get("norm") == "ada_in":  # FNO(norm="ada_in") cannot pass ada_in_features
        from neuralop.layers.normalization_layers import AdaIN

        peer = _peer_fno(n_modes=(6, 6))
        peer.fno_blocks.norm = torch.nn.ModuleList(AdaIN(4, 8) for _ in range(4))
    else:
        peer = _peer_fno(n_modes=(6, 6), **kw)
    with pytest.raises(InvalidArgumentError, match=option) as err:
        FNO.from_neuraloperator(peer)
    assert reason in str(err.value)


def test_fno_options_round_trip_and_validate():
    model = FNO(1, 1, (4, 4), width=8, channel_mlp_expansion=0.5, fno_skip="soft-gating",
                channel_mlp_skip="linear", norm="group_norm", preactivation=True,
                stabilizer="tanh", domain_padding=0.125)
    clone = build_operator(model.config)
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(clone(x), model(x))
    assert FNO(1, 1, (4,), width=4).config.keys() == FNO(1, 1, (4,), width=4,
                                                         fno_skip="linear").config.keys()
    for kw, arg in [({"fno_skip": "gated"}, "fno_skip"), ({"norm": "layer_norm"}, "norm"),
                    ({"channel_mlp_skip": "linear"}, "channel_mlp_skip"),
                    ({"stabilizer": "sin"}, "stabilizer"),
                    ({"domain_padding": -0.1}, "domain_padding"),
                    ({"domain_padding": 0.1, "padding": 2}, "domain_padding")]:
        with pytest.raises(InvalidArgumentError, match=arg):
            FNO(1, 1, (4,), width=4, **kw)


def test_from_neuraloperator_refuses_group_norm_of_several_groups_and_4d():
    peer = _peer_fno(n_modes=(6, 6), norm="group_norm")
    peer.fno_blocks.norm = torch.nn.ModuleList(torch.nn.GroupNorm(2, 8) for _ in range(4))
    with pytest.raises(InvalidArgumentError, match="norm_groups.*one group"):
        FNO.from_neuraloperator(peer)
    with pytest.raises(InvalidArgumentError, match="n_modes.*1 to 3 spatial dimensions"):
        FNO.from_neuraloperator(_peer_fno(n_modes=(4, 4, 4, 4)))
