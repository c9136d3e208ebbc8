"""neuraloperator's own FNO test cases, ported to opflow's API (#17).

Ported from neuraloperator 2.0.0 (the installed version; its GitHub HEAD
93d3f06 adds ``enforce_hermitian_symmetry`` and ``norm_groups`` cases that
2.0.0 cannot build), with upstream's parameter grids and sizes (one 3-D grid
shrunk from 16**3 to 8**3):

* ``neuralop/models/tests/test_fno.py``: ``test_fno`` (64 cases),
  ``test_fno_superresolution`` (5), ``test_fno_advanced_params`` (192),
  ``test_fno_embedding_and_padding`` (6), ``test_fno_channel_mlp_params`` (27);
* ``neuralop/layers/tests/test_spectral_convolution.py``: ``test_SpectralConv``
  (128), ``test_SpectralConv_resolution_scaling_factor`` (its loop over 4
  dimensions as 4 cases);
* ``neuralop/layers/tests/test_fno_block.py``: ``test_FNOBlock_norm`` (16),
  ``test_FNOBlock_skip_connections`` and ``..._preactivation`` (4 + 4, as one
  test with a ``preactivation`` parameter), the ``max_n_modes`` part of
  ``test_FNOBlock_resolution_scaling_factor`` (4; its resampling part is the
  refusal of ``test_SpectralConv_resolution_scaling_factor``);
* ``neuralop/layers/tests/test_padding.py``: ``test_DomainPadding`` (1).

Counts: 455 ported cases; 156 pass as mirrored (outputs, input gradients,
shapes and parameter use checked against neuraloperator), 299 refused with
reason (complex_data 168, a fourth dimension 54, use_channel_mlp=False 48,
channel_mlp_dropout 18, resolution_scaling_factor 8, norm="ada_in" 3); the
8 skip-connection cases also assert the refusal of their no-MLP half. None
is skipped, none crashes. On top, 52 cases of opflow's own: resolution
changes (3), save/load (1) and an interop grid (48), all passing.

Each case builds neuraloperator's model with the case's options and random
weights, converts it with :meth:`opflow.operators.FNO.from_neuraloperator`,
checks opflow's shapes and that every opflow parameter gets a gradient (the
upstream checks), and compares the outputs with neuraloperator's on random
inputs (float32, relative 1e-5 on the largest value: neuraloperator computes
its spectra in complex64 whatever the input dtype, so float64 is out of
reach). A case opflow refuses by design asserts the refusal and its reason
with ``pytest.raises``.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F

from opflow.errors import InvalidArgumentError
from opflow.kernels import spectral_conv
from opflow.operators import FNO, build_operator

neuralop = pytest.importorskip("neuralop")
from neuralop.layers.spectral_convolution import SpectralConv  # noqa: E402
from neuralop.models import FNO as PeerFNO  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOL = 1e-5


def _randomise(peer: torch.nn.Module) -> None:
    """Gates, skips and norm parameters away from their 0/1 start (a mirror that
    ignored them would otherwise still agree)."""
    with torch.no_grad():
        for name, p in peer.named_parameters():
            if "skips" in name or "norm" in name:
                p.copy_(torch.randn_like(p))


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).detach().abs().max() / want.detach().abs().max())


def _mirror_case(peer, x: torch.Tensor, out_shape) -> FNO:
    """Convert, compare outputs and input gradients, check shapes and that every
    parameter of the opflow model is used (the upstream backward check)."""
    _randomise(peer)
    ours = FNO.from_neuraloperator(peer)
    xp, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    want, got = peer(xp), ours(xo)
    assert list(got.shape) == list(out_shape)
    assert _rel(got, want) < TOL
    want.square().sum().backward()
    got.square().sum().backward()
    assert _rel(xo.grad, xp.grad) < 1e-4
    unused = [n for n, p in ours.named_parameters() if p.grad is None]
    assert not unused, f"{unused} were unused"
    return ours


def _refused(peer, option: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=option) as err:
        FNO.from_neuraloperator(peer)
    assert reason in str(err.value)


# ------------------------------------------------------------ models/tests/test_fno.py
@pytest.mark.parametrize("n_dim", [1, 2, 3, 4])
@pytest.mark.parametrize("stabilizer", [None, "tanh"])
@pytest.mark.parametrize("lifting_channel_ratio", [1, 2])
@pytest.mark.parametrize("preactivation", [False, True])
@pytest.mark.parametrize("complex_data", [True, False])
def test_fno(n_dim, stabilizer, lifting_channel_ratio, preactivation, complex_data):
    s, modes, width, batch, n_layers = 16, 5, 15, 3, 2  # upstream's CPU sizes
    if n_dim == 3:
        s = 8  # upstream's 16**3 grid, shrunk for a 2-core machine
    peer = PeerFNO(in_channels=3, out_channels=1, hidden_channels=width,
                   n_modes=(modes,) * n_dim, n_layers=n_layers, stabilizer=stabilizer,
                   lifting_channel_ratio=lifting_channel_ratio, preactivation=preactivation,
                   complex_data=complex_data, rank=0.2)
    if n_dim == 4:
        return _refused(peer, "n_modes", "1 to 3 spatial dimensions")
    if complex_data:
        return _refused(peer, "complex_data", "real functions")
    _mirror_case(peer, torch.randn(batch, 3, *(s,) * n_dim), [batch, 1, *(s,) * n_dim])


@pytest.mark.parametrize("resolution_scaling_factor",
                         [[2, 1, 1], [1, 2, 1], [1, 1, 2], [1, 2, 2], [1, 0.5, 1]])
def test_fno_superresolution(resolution_scaling_factor):
    peer = PeerFNO(in_channels=3, out_channels=1, n_modes=(5, 5), hidden_channels=15,
                   factorization="cp", implementation="reconstructed", rank=0.2,
                   resolution_scaling_factor=resolution_scaling_factor, n_layers=3)
    _refused(peer, "resolution_scaling_factor", "align_corners=True")


@pytest.mark.parametrize("norm", [None, "group_norm", "instance_norm"])
@pytest.mark.parametrize("use_channel_mlp", [True, False])
@pytest.mark.parametrize("channel_mlp_skip", ["linear", "identity", "soft-gating", None])
@pytest.mark.parametrize("fno_skip", ["linear", "identity", "soft-gating", None])
@pytest.mark.parametrize("complex_data", [True, False])
def test_fno_advanced_params(norm, use_channel_mlp, channel_mlp_skip, fno_skip, complex_data):
    peer = PeerFNO(in_channels=3, out_channels=1, n_modes=(5, 5), hidden_channels=15,
                   n_layers=2, norm=norm, use_channel_mlp=use_channel_mlp,
                   channel_mlp_skip=channel_mlp_skip, fno_skip=fno_skip,
                   complex_data=complex_data)
    if complex_data:
        return _refused(peer, "complex_data", "real functions")
    if not use_channel_mlp:
        return _refused(peer, "use_channel_mlp", "activation twice")
    _mirror_case(peer, torch.randn(3, 3, 16, 16), [3, 1, 16, 16])


@pytest.mark.parametrize("positional_embedding", ["grid", None])
@pytest.mark.parametrize("domain_padding", [None, 0.1, [0.1, 0.2]])
def test_fno_embedding_and_padding(positional_embedding, domain_padding):
    peer = PeerFNO(in_channels=3, out_channels=1, n_modes=(5, 5), hidden_channels=15,
                   n_layers=2, positional_embedding=positional_embedding,
                   domain_padding=domain_padding, projection_channel_ratio=2,
                   lifting_channel_ratio=2)
    ours = _mirror_case(peer, torch.randn(3, 3, 16, 16), [3, 1, 16, 16])
    assert ours.positional == (positional_embedding is not None)
    assert (ours.domain_padding is None) == (domain_padding is None)


@pytest.mark.parametrize("channel_mlp_dropout", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("channel_mlp_expansion", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("non_linearity", [F.gelu, F.relu, F.tanh])
def test_fno_channel_mlp_params(channel_mlp_dropout, channel_mlp_expansion, non_linearity):
    peer = PeerFNO(in_channels=3, out_channels=1, n_modes=(5, 5), hidden_channels=15,
                   n_layers=2, channel_mlp_dropout=channel_mlp_dropout,
                   channel_mlp_expansion=channel_mlp_expansion, non_linearity=non_linearity)
    if channel_mlp_dropout:
        return _refused(peer, "channel_mlp_dropout", "dropout")
    ours = _mirror_case(peer, torch.randn(3, 3, 16, 16), [3, 1, 16, 16])
    assert ours.layers[0].mlp1.out_features == round(15 * channel_mlp_expansion)


# ----------------------------------------- layers/tests/test_spectral_convolution.py
def _peer_spectral_weight(conv):
    """neuraloperator's SpectralConv weight in opflow's layout, through the converter's
    own routine (an FNO around it would add lifting and projection to the comparison)."""
    from opflow.operators.interop import _active_modes

    return _active_modes(conv)


@pytest.mark.parametrize("factorization", ["Dense", "CP", "Tucker", "TT"])
@pytest.mark.parametrize("implementation", ["factorized", "reconstructed"])
@pytest.mark.parametrize("separable", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
@pytest.mark.parametrize("complex_data", [False, True])
def test_SpectralConv(factorization, implementation, separable, dim, complex_data):
    """opflow's kernel with the converted weight gives neuraloperator's convolution,
    before and after neuraloperator lowers ``n_modes`` (opflow: a smaller ``modes``)."""
    modes, incremental = (10, 8, 6, 6)[:dim], (6, 6, 4, 4)[:dim]
    conv = SpectralConv(3, 3, modes, bias=False, implementation=implementation,
                        factorization=factorization, complex_data=complex_data,
                        separable=separable)
    x = torch.randn(2, 3, *(12,) * dim)
    if complex_data or dim == 4:
        # the FNO converter refuses the model such a convolution sits in
        peer = PeerFNO(n_modes=modes, in_channels=3, out_channels=1, hidden_channels=3,
                       n_layers=1, complex_data=complex_data)
        option, reason = (("n_modes", "1 to 3 spatial dimensions") if dim == 4
                          else ("complex_data", "real functions"))
        return _refused(peer, option, reason)
    with torch.no_grad():
        w, m = _peer_spectral_weight(conv)
        assert _rel(spectral_conv(x, w, m), conv(x)) < TOL
        conv.n_modes = incremental
        lower = [(k + 1) // 2 for k in incremental[:-1]] + [incremental[-1] // 2 + 1]
        res = spectral_conv(x, w, lower)
        assert res.shape == (2, 3, *(12,) * dim)
        assert _rel(res, conv(x)) < TOL


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_SpectralConv_resolution_scaling_factor(dim):
    """Outputs on another grid: refused (the converter's reason names the option)."""
    for factor in (0.5, 2):
        peer = PeerFNO(n_modes=(4,) * dim, in_channels=3, out_channels=3, hidden_channels=3,
                       n_layers=1, resolution_scaling_factor=factor)
        if dim == 4:
            _refused(peer, "n_modes", "1 to 3 spatial dimensions")
        else:
            _refused(peer, "resolution_scaling_factor", "align_corners=True")


# --------------------------------------------------- layers/tests/test_fno_block.py
@pytest.mark.parametrize("n_dim", [1, 2, 3, 4])
@pytest.mark.parametrize("norm", ["instance_norm", "ada_in", "group_norm", "batch_norm"])
def test_FNOBlock_norm(norm, n_dim):
    size = [10] * n_dim
    kw = {"norm": None if norm == "ada_in" else norm}
    if n_dim == 4:
        peer = PeerFNO(n_modes=(8,) * 4, in_channels=3, out_channels=4, hidden_channels=4,
                       n_layers=1, channel_mlp_skip="linear", **kw)
        return _refused(peer, "n_modes", "1 to 3 spatial dimensions")
    peer = PeerFNO(n_modes=(8,) * n_dim, in_channels=3, out_channels=4, hidden_channels=4,
                   n_layers=1, channel_mlp_skip="linear", **kw)
    if norm == "ada_in":  # FNO(norm="ada_in") cannot pass ada_in_features: set the layers
        from neuralop.layers.normalization_layers import AdaIN

        peer.fno_blocks.norm = torch.nn.ModuleList(AdaIN(4, 4) for _ in range(2))
        for layer in peer.fno_blocks.norm:
            layer.set_embedding(torch.randn(4))
        return _refused(peer, "ada_in", "set_ada_in_embeddings")
    _mirror_case(peer, torch.randn(2, 3, *size), [2, 4, *size])


@pytest.mark.parametrize("preactivation", [False, True])
@pytest.mark.parametrize("fno_skip", ["linear", None])
@pytest.mark.parametrize("channel_mlp_skip", ["linear", None])
def test_FNOBlock_skip_connections(fno_skip, channel_mlp_skip, preactivation):
    """Upstream: 3-D blocks of two layers, with and without the channel MLP."""
    size = [10, 10, 10]
    peer = PeerFNO(n_modes=(8, 8, 8), in_channels=3, out_channels=4, hidden_channels=4,
                   n_layers=2, fno_skip=fno_skip, channel_mlp_skip=channel_mlp_skip,
                   preactivation=preactivation)
    _mirror_case(peer, torch.randn(2, 3, *size), [2, 4, *size])
    no_mlp = PeerFNO(n_modes=(8, 8, 8), in_channels=3, out_channels=4, hidden_channels=4,
                     n_layers=2, fno_skip=fno_skip, channel_mlp_skip=channel_mlp_skip,
                     preactivation=preactivation, use_channel_mlp=False)
    _refused(no_mlp, "use_channel_mlp", "activation twice")


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_FNOBlock_max_n_modes(dim):
    """``max_n_modes`` 8 with ``n_modes`` 8 then lowered to 4 (upstream's setter round
    trip): the converted model follows the modes in use."""
    size = [10] * dim
    peer = PeerFNO(n_modes=(8,) * dim, max_n_modes=[8] * dim, in_channels=3, out_channels=4,
                   hidden_channels=4, n_layers=1, channel_mlp_skip="linear")
    if dim == 4:
        return _refused(peer, "n_modes", "1 to 3 spatial dimensions")
    _mirror_case(peer, torch.randn(2, 3, *size), [2, 4, *size])
    peer.n_modes = (4,) * dim
    ours = _mirror_case(peer, torch.randn(2, 3, *size), [2, 4, *size])
    assert ours.modes == (*(2,) * (dim - 1), 3)


# ------------------------------------------------------ layers/tests/test_padding.py
def test_DomainPadding():
    """0.2 of 10 points on each side: neuraloperator pads 10 -> 14; the mirror pads the
    same (its outputs agree only so) and gives back the input's shape."""
    peer = PeerFNO(n_modes=(4, 4), in_channels=3, out_channels=2, hidden_channels=4,
                   n_layers=2, domain_padding=0.2)
    ours = _mirror_case(peer, torch.randn(2, 3, 10, 10), [2, 2, 10, 10])
    assert [round(f * 10) for f in ours.domain_padding] == [2, 2]


# -------------------------------- resolution changes, save/load, an equivalence grid
@pytest.mark.parametrize("n_dim,train,evals", [(1, 32, (16, 64, 48)), (2, 16, (8, 32, 24)),
                                               (3, 8, (12, 16))])
def test_converted_model_changes_resolution_like_the_peer(n_dim, train, evals):
    """A model evaluated on coarser and finer grids than its modes were meant for."""
    torch.manual_seed(1)
    peer = PeerFNO(n_modes=(6,) * n_dim, in_channels=1, out_channels=1, hidden_channels=6,
                   n_layers=2, domain_padding=0.125, norm="group_norm")
    _randomise(peer)
    ours = FNO.from_neuraloperator(peer)
    with torch.no_grad():
        for n in (train, *evals):
            x = torch.randn(2, 1, *(n,) * n_dim)
            assert _rel(ours(x), peer(x)) < TOL


def test_converted_model_saves_and_loads(tmp_path):
    """config + state_dict rebuild the converted model exactly (non-default options
    included), and load into a model built from the config alone."""
    peer = PeerFNO(n_modes=(5, 6), in_channels=2, out_channels=1, hidden_channels=8,
                   n_layers=3, norm="batch_norm", preactivation=True, fno_skip="soft-gating",
                   channel_mlp_skip="linear", domain_padding=[0.1, 0.2], stabilizer="tanh")
    _randomise(peer)
    peer.eval()
    ours = FNO.from_neuraloperator(peer)
    path = tmp_path / "fno.pt"
    torch.save({"config": ours.config, "state_dict": ours.state_dict()}, path)
    ckpt = torch.load(path, weights_only=True)
    clone = build_operator(ckpt["config"])
    clone.load_state_dict(ckpt["state_dict"])
    clone.eval()
    x = torch.randn(2, 2, 20, 16)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), ours(x), rtol=0, atol=0)
        assert _rel(clone(x), peer(x)) < TOL


_GRID = list(itertools.product([(4,), (6, 5), (3, 4, 4)], ["linear", "soft-gating"],
                               [None, "instance_norm"], [False, True], [None, 0.25]))


@pytest.mark.parametrize("n_modes,fno_skip,norm,preactivation,domain_padding", _GRID)
def test_interop_equivalence_grid(n_modes, fno_skip, norm, preactivation, domain_padding):
    """Outputs, input gradients and parameter use across a grid of options."""
    sizes = {1: (24,), 2: (12, 16), 3: (8, 8, 6)}[len(n_modes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = PeerFNO(n_modes=n_modes, in_channels=2, out_channels=2, hidden_channels=6,
                       n_layers=2, fno_skip=fno_skip, norm=norm,
                       preactivation=preactivation, domain_padding=domain_padding,
                       non_linearity=F.silu)
    _mirror_case(peer, torch.randn(2, 2, *sizes), [2, 2, *sizes])
