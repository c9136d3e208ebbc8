"""Load models of the peer libraries (neuraloperator, DeepXDE) into opflow.

Each converter reads the peer model's configuration and parameters (its
public attributes and ``state_dict``), refuses configurations opflow cannot
reproduce exactly, and returns an opflow model that computes the same
function. The peers are imported lazily; opflow does not depend on them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError
from .deeponet import DeepONet
from .fno import FNO

__all__ = ["fno_from_neuraloperator", "deeponet_from_deepxde"]

_TORCH_ACTIVATIONS = {F.gelu: "gelu", F.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
                      torch.relu: "relu", F.silu: "silu", torch.sigmoid: "sigmoid",
                      F.sigmoid: "sigmoid", F.elu: "elu", F.softplus: "softplus"}


def _refuse(what: str, got) -> InvalidArgumentError:
    return InvalidArgumentError("model", f"a configuration opflow can mirror ({what})", got)


def _activation_name(fn) -> str:
    for candidate, name in _TORCH_ACTIVATIONS.items():
        if fn is candidate:
            return name
    raise _refuse("activation gelu, relu, tanh, silu, sigmoid, elu or softplus", fn)


def _channel_mlp_activation(blocks) -> str:
    """The activation inside neuraloperator's channel MLPs (GELU whatever ``non_linearity``)."""
    mlp = blocks.channel_mlp[0]
    fn = getattr(mlp, "non_linearity", F.gelu)
    return _activation_name(fn)


def _copy_linear(dst: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    dst.weight.copy_(weight.reshape(dst.weight.shape))
    if bias is None:
        dst.bias.zero_()
    else:
        dst.bias.copy_(bias.reshape(dst.bias.shape))


def _dense_spectral_weight(conv) -> torch.Tensor:
    w = conv.weight
    if not isinstance(w, torch.Tensor):
        if type(w).__name__ != "DenseTensor":
            raise _refuse("dense (unfactorised) spectral weights", type(w).__name__)
        w = w.to_tensor()
    return w.detach()


@torch.no_grad()
def fno_from_neuraloperator(model: nn.Module) -> FNO:
    """Mirror a ``neuralop.models.FNO`` (neuraloperator 1.x/2.x) as an opflow :class:`FNO`.

    Supported: 1-3 dimensions, even ``n_modes`` on the leading axes, the
    ``"grid"`` positional embedding on the unit box (or none), lifting with
    one or two layers, ``fno_skip="linear"``, the channel MLP on (the
    default) with ``channel_mlp_skip="soft-gating"``, no normalisation, no
    domain padding, no factorisation, real data, full precision,
    post-activation. (With ``use_channel_mlp=False`` neuraloperator applies
    the activation twice per layer, which opflow does not reproduce.)

    Parameters
    ----------
    model : torch.nn.Module
        A ``neuralop.models.FNO``.

    Returns
    -------
    FNO
        Same outputs for the same inputs (on grids of even size).

    Notes
    -----
    Spectral weights are stored ``fftshift``-ed on the leading axes there and
    in FFT order here (``ifftshift`` converts); neuraloperator's spectral
    bias and bias-free linear skip become opflow's skip bias. The two models
    agree on grids of even size (for odd sizes neuraloperator shifts the
    spectrum back with ``fftshift`` instead of ``ifftshift``).
    """
    blocks = getattr(model, "fno_blocks", None)
    if blocks is None or not hasattr(model, "lifting") or not hasattr(model, "projection"):
        raise InvalidArgumentError("model", "a neuralop.models.FNO", model)
    d = int(model.n_dim)
    checks = [
        (getattr(blocks, "norm", None) is None, "norm=None"),
        (not getattr(blocks, "preactivation", False), "preactivation=False"),
        (not getattr(blocks, "complex_data", False), "complex_data=False"),
        (blocks.fno_skip == "linear", "fno_skip='linear'"),
        (getattr(blocks, "resolution_scaling_factor", None) is None,
         "resolution_scaling_factor=None"),
        (getattr(blocks, "stabilizer", None) is None, "stabilizer=None"),
        (getattr(blocks, "fno_block_precision", "full") == "full", "fno_block_precision='full'"),
        (getattr(model, "domain_padding", None) is None, "domain_padding=None"),
        (not getattr(blocks, "channel_mlp_dropout", 0), "channel_mlp_dropout=0"),
    ]
    for ok, what in checks:
        if not ok:
            raise _refuse(what, model)
    use_mlp = bool(blocks.use_channel_mlp)
    if not use_mlp:
        # without the channel MLP neuraloperator applies the activation twice
        # per layer (act(act(conv + skip))), which opflow's layer does not
        raise _refuse("use_channel_mlp=True", blocks.use_channel_mlp)
    if blocks.channel_mlp_skip != "soft-gating":
        raise _refuse("channel_mlp_skip='soft-gating'", blocks.channel_mlp_skip)
    emb = model.positional_embedding
    if emb is not None:
        bounds = [list(map(float, b)) for b in getattr(emb, "grid_boundaries", [])]
        if bounds != [[0.0, 1.0]] * d:
            raise _refuse("grid embedding on [0, 1] per axis", bounds)
    act = _activation_name(model.non_linearity)
    conv0 = blocks.convs[0]
    if list(conv0.max_n_modes) != list(conv0.n_modes):
        raise _refuse("max_n_modes equal to n_modes", conv0.max_n_modes)
    kept = list(conv0.n_modes)  # last axis already n // 2 + 1
    if any(k % 2 for k in kept[:-1]) or getattr(conv0, "separable", False):
        raise _refuse("even n_modes on the leading axes, separable=False", model.n_modes)
    modes = [k // 2 for k in kept[:-1]] + [kept[-1]]
    lifting = model.lifting.fcs
    width = int(model.hidden_channels)
    hidden = blocks.channel_mlp[0].fcs[0].out_channels
    out = FNO(
        int(model.in_channels), int(model.out_channels), modes, width, int(model.n_layers),
        lifting_channels=None if len(lifting) == 1 else lifting[0].out_channels,
        projection_channels=model.projection.fcs[0].out_channels,
        activation=act, positional=emb is not None,
        channel_mlp_expansion=hidden / width,
        channel_mlp_activation=_channel_mlp_activation(blocks),
    )
    if len(model.projection.fcs) != 2 or out.layers[0].mlp1.out_features != hidden:
        raise _refuse("a two-layer projection and a matching channel MLP width", model)
    for dst, src in zip(out.lifting, lifting):
        _copy_linear(dst, src.weight, src.bias)
    for dst, src in zip(out.projection, model.projection.fcs):
        _copy_linear(dst, src.weight, src.bias)
    lead = tuple(range(2, 2 + d - 1))
    for i, layer in enumerate(out.layers):
        conv = blocks.convs[i]
        w = _dense_spectral_weight(conv)
        if lead:
            w = torch.fft.ifftshift(w, dim=lead)
        wr, wi = layer.spectral_weight()
        wr.copy_(w.real)
        wi.copy_(w.imag)
        skip = blocks.fno_skips[i].conv
        bias = conv.bias if conv.bias is not None else None
        if skip.bias is not None:
            bias = skip.bias if bias is None else bias.reshape(-1) + skip.bias
        _copy_linear(layer.skip, skip.weight, bias)
        fc1, fc2 = blocks.channel_mlp[i].fcs
        _copy_linear(layer.mlp1, fc1.weight, fc1.bias)
        _copy_linear(layer.mlp2, fc2.weight, fc2.bias)
        layer.gate.copy_(blocks.channel_mlp_skips[i].weight.reshape(-1))
    return out


@torch.no_grad()
def deeponet_from_deepxde(net: nn.Module) -> DeepONet:
    """Mirror DeepXDE's ``DeepONetCartesianProd`` (PyTorch backend) as a :class:`DeepONet`.

    Supported: fully connected branch and trunk nets with one activation
    each, one output or several with ``multi_output_strategy="split_branch"``,
    no input or output transforms. DeepXDE returns ``(B, Q, n_outputs)`` for
    several outputs where opflow returns ``(B, n_outputs, Q)``.

    Parameters
    ----------
    net : torch.nn.Module
        A ``deepxde.nn.DeepONetCartesianProd``.

    Returns
    -------
    DeepONet
    """
    if not all(hasattr(net, a) for a in ("branch", "trunk", "b", "multi_output_strategy")):
        raise InvalidArgumentError("net", "a deepxde DeepONetCartesianProd", net)
    strategy = type(net.multi_output_strategy).__name__
    if strategy not in ("SingleOutputStrategy", "SplitBranchStrategy"):
        raise _refuse("one output, or multi_output_strategy='split_branch'", strategy)
    if getattr(net, "_input_transform", None) is not None or getattr(
            net, "_output_transform", None) is not None:
        raise _refuse("no input/output transforms", net)
    branch, trunk = net.branch, net.trunk
    for sub in (branch, trunk):
        if not hasattr(sub, "linears") or isinstance(sub.activation, list):
            raise _refuse("fully connected branch and trunk with one activation", sub)
    act_branch = _deepxde_activation(branch.activation)
    act_trunk = _deepxde_activation(net.activation_trunk)
    if _deepxde_activation(trunk.activation) != act_trunk:
        raise _refuse("the same activation inside the trunk and on its output", trunk)
    n_outputs = int(net.num_outputs)
    b_sizes = [branch.linears[0].in_features] + [lin.out_features for lin in branch.linears]
    t_sizes = [trunk.linears[0].in_features] + [lin.out_features for lin in trunk.linears]
    p = t_sizes[-1]
    if b_sizes[-1] != p * n_outputs:
        raise _refuse("branch output = n_outputs x trunk output", (b_sizes, t_sizes))
    activation = act_branch if act_branch == act_trunk else {"branch": act_branch,
                                                               "trunk": act_trunk}
    out = DeepONet([*b_sizes[:-1], p], t_sizes, n_outputs=n_outputs, bias=True,
                   activation=activation, trunk_last_activation=True)
    for dst, src in zip(out.branch.linears, branch.linears):
        _copy_linear(dst, src.weight, src.bias)
    for dst, src in zip(out.trunk.linears, trunk.linears):
        _copy_linear(dst, src.weight, src.bias)
    out.b0.copy_(torch.stack([b.reshape(()) for b in net.b]))
    return out


def _deepxde_activation(fn) -> str:
    if isinstance(fn, str):
        return fn
    try:
        from deepxde.nn import activations
    except ImportError:  # pragma: no cover - only reached with a deepxde net
        activations = None
    if activations is not None:
        for name in ("relu", "tanh", "gelu", "silu", "sigmoid", "elu", "softplus"):
            try:
                if activations.get(name) is fn:
                    return name
            except Exception:  # noqa: BLE001 - a name the installed backend lacks
                continue
    return _activation_name(fn)
