"""Load models of the peer libraries (neuraloperator, DeepXDE) into opflow.

Each converter reads the peer model's configuration and parameters (its
public attributes and ``state_dict``), refuses configurations opflow cannot
reproduce exactly, and returns an opflow model that computes the same
function. The peers are imported lazily; opflow does not depend on them.
"""

from __future__ import annotations

from typing import Any, cast

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


def _refuse_option(option: str, got, reason: str) -> InvalidArgumentError:
    """A neuraloperator option opflow does not mirror: names it and says why."""
    return InvalidArgumentError("model", f"a configuration opflow can mirror ({option}: "
                                f"{reason})", got)


def _dense_spectral_weight(conv) -> torch.Tensor:
    """The complex weight ``(C_in, C_out, *max_modes)``: factorised weights rebuilt, a
    separable (per-channel) weight as its diagonal."""
    w = conv.weight
    if not isinstance(w, torch.Tensor):
        if not hasattr(w, "to_tensor"):
            raise _refuse_option("factorization", type(w).__name__,
                                 "a spectral weight opflow cannot rebuild as a dense tensor")
        w = w.to_tensor()
    w = w.detach()
    if getattr(conv, "separable", False):
        c = w.shape[0]
        full = w.new_zeros((c, c, *w.shape[1:]))
        full[torch.arange(c), torch.arange(c)] = w
        w = full
    return w


def _active_modes(conv) -> tuple[torch.Tensor, list[int]]:
    """The part of the weight neuraloperator uses on a grid that holds all its modes,
    as opflow's weight ``(C_in, C_out, 2 m_1, ..., m_d)`` and the modes ``m``.

    neuraloperator keeps the central ``k_j`` of ``max_n_modes`` entries on each leading
    axis (index ``i`` is frequency ``i - k_j // 2`` there: ``-k_j // 2 .. (k_j - 1) // 2``,
    one more positive than negative frequency for odd ``k_j``) and the first ``k_d`` on
    the last axis. opflow keeps ``-m_j .. m_j - 1`` with ``m_j = ceil(k_j / 2)``: for odd
    ``k_j`` the extra frequency ``-m_j`` gets a zero weight.
    """
    w = _dense_spectral_weight(conv)
    n_modes, max_modes = list(conv.n_modes), list(w.shape[2:])
    starts = [mx - n for n, mx in zip(n_modes, max_modes)]
    if any(st < 0 for st in starts):
        raise _refuse_option("max_n_modes", conv.max_n_modes, "fewer modes than n_modes")
    # the same slices as neuraloperator's SpectralConv.forward on a large grid
    slices = [slice(st // 2, -st // 2) if st else slice(None) for st in starts[:-1]]
    slices.append(slice(None, -starts[-1]) if starts[-1] else slice(None))
    w = w[(slice(None), slice(None)) + tuple(slices)]
    kept = list(w.shape[2:])
    modes = [k - k // 2 for k in kept[:-1]] + [kept[-1]]
    out = w.new_zeros((*w.shape[:2], *(2 * m for m in modes[:-1]), modes[-1]))
    index = []
    for k, m in zip(kept[:-1], modes[:-1]):
        freqs = torch.arange(k) - k // 2
        index.append(torch.where(freqs >= 0, freqs, freqs + 2 * m))
    if index:
        grids = torch.meshgrid(*index, indexing="ij")
        out[(slice(None), slice(None)) + tuple(grids)] = w
    else:
        out = w
    return out, modes


def _check_supported(model, blocks) -> None:
    """Refuse, naming the option and the reason, what opflow's FNO does not compute."""
    refusals = [
        (getattr(blocks, "complex_data", False), "complex_data", blocks.complex_data,
         "opflow's FNO maps real functions; complex data takes full complex FFTs and "
         "complex-valued skips, MLPs and activations"),
        (getattr(blocks, "fno_block_precision", "full") != "full", "fno_block_precision",
         blocks.fno_block_precision, "half-precision spectral products round differently "
         "from opflow's, which compute in the model's dtype"),
        (bool(getattr(blocks, "channel_mlp_dropout", 0)), "channel_mlp_dropout",
         blocks.channel_mlp_dropout, "random dropout inside the channel MLPs while "
         "training, which opflow's FNO does not have"),
        (not blocks.use_channel_mlp, "use_channel_mlp", blocks.use_channel_mlp,
         "without the channel MLP neuraloperator applies the activation twice per layer, "
         "act(act(conv + skip)); opflow's layer applies it once"),
        (getattr(blocks, "resolution_scaling_factor", None) is not None,
         "resolution_scaling_factor", getattr(blocks, "resolution_scaling_factor", None),
         _SCALING_REASON),
    ]
    for bad, option, got, reason in refusals:
        if bad:
            raise _refuse_option(option, got, reason)
    norm = getattr(blocks, "norm", None)
    if norm is not None:
        kind = type(norm[0]).__name__
        if kind == "AdaIN":
            raise _refuse_option("norm='ada_in'", kind, "AdaIN scales by an embedding set "
                                 "outside the forward pass (set_ada_in_embeddings), which "
                                 "opflow's FNO has no input for")
        if kind == "InstanceNorm" and any(getattr(n, "kwargs", {}) for n in norm):
            raise _refuse_option("norm='instance_norm'", norm[0].kwargs,
                                 "instance_norm with extra arguments")
        if kind == "GroupNorm" and norm[0].num_groups != 1:
            raise _refuse_option("norm_groups", norm[0].num_groups, "opflow's group_norm "
                                 "normalises over all channels at once (one group)")
        if kind not in ("InstanceNorm", "GroupNorm", "BatchNorm"):
            raise _refuse_option("norm", kind, "an unknown normalisation layer")


_SCALING_REASON = (
    "each layer resamples its skips by linear (1-D) or bicubic (2-D) interpolation with "
    "align_corners=True, which treats the periodic grid as closed, and in 2-D and 3-D "
    "pads the FFT-ordered spectrum at its end, moving negative frequencies to high "
    "positive ones; opflow's FNO maps a grid to the same grid (give it input on the "
    "output grid for another resolution)")

_NORM_NAMES = {"InstanceNorm": "instance_norm", "GroupNorm": "group_norm",
               "BatchNorm": "batch_norm"}


def _skip_kind(module) -> str | None:
    if module is None:
        return None
    kind = {"Flattened1dConv": "linear", "SoftGating": "soft-gating",
            "Identity": "identity"}.get(type(module).__name__)
    if kind is None:
        raise _refuse_option("skip", type(module).__name__, "an unknown skip connection")
    return kind


def _copy_norm(dst: Any, src: Any) -> None:
    if isinstance(dst, nn.InstanceNorm1d):
        return  # no parameters (checked: no extra arguments)
    if type(src).__name__ == "BatchNorm":
        src = src.norm
    dst.load_state_dict(src.state_dict())
    dst.eps = src.eps
    if isinstance(dst, nn.BatchNorm1d):
        dst.momentum = src.momentum


@torch.no_grad()
def fno_from_neuraloperator(model: Any) -> FNO:
    """Mirror a ``neuralop.models.FNO`` (neuraloperator 1.x/2.x) as an opflow :class:`FNO`.

    Mirrored: 1-3 dimensions; any ``n_modes`` (odd counts too), ``max_n_modes``
    (the modes in use are kept: the spare ones, held for growing ``n_modes``
    during training, are dropped); dense, factorised (rebuilt as dense) or
    separable spectral weights; the ``"grid"`` positional embedding on the
    unit box (or none); lifting with one or two layers; every
    ``non_linearity`` opflow names; ``fno_skip`` and ``channel_mlp_skip`` of
    any kind (``"linear"``, ``"soft-gating"``, ``"identity"``, ``None``);
    ``norm="instance_norm"``, ``"group_norm"`` or ``"batch_norm"``;
    ``preactivation``; ``stabilizer="tanh"``; ``domain_padding``.

    Refused, the error naming the option and the reason: ``complex_data``,
    ``fno_block_precision`` other than ``"full"``, ``channel_mlp_dropout``,
    ``use_channel_mlp=False`` (neuraloperator applies the activation twice per
    layer there), ``norm="ada_in"`` (its embedding is set outside the forward
    pass), ``resolution_scaling_factor`` (output on another grid, with skips
    resampled by non-periodic interpolation and, in 2-D and 3-D, a spectrum
    padded in FFT order) and grid embeddings on other boxes.

    Parameters
    ----------
    model : torch.nn.Module
        A ``neuralop.models.FNO``.

    Returns
    -------
    FNO
        Same outputs for the same inputs (on grids of even size), in the same
        training/evaluation mode as ``model``.

    Raises
    ------
    InvalidArgumentError
        ``model`` is not a neuraloperator FNO, or uses an option above that
        opflow does not mirror (the message names it and says why).

    Notes
    -----
    Spectral weights are stored ``fftshift``-ed on the leading axes there and
    in FFT order here; neuraloperator's spectral bias and bias-free linear
    skip become opflow's skip bias when nothing comes between them. The two
    models agree on grids of even size (for odd sizes neuraloperator shifts
    the spectrum back with ``fftshift`` instead of ``ifftshift``). An odd
    ``n_modes`` on a leading axis keeps one more positive than negative
    frequency there; opflow keeps them in pairs, so the extra negative
    frequency starts with a zero weight (training may change it).
    """
    blocks = getattr(model, "fno_blocks", None)
    if blocks is None or not hasattr(model, "lifting") or not hasattr(model, "projection"):
        raise InvalidArgumentError("model", "a neuralop.models.FNO", model)
    d = int(model.n_dim)
    if not 1 <= d <= 3:
        raise _refuse_option("n_modes", list(model.n_modes),
                             f"opflow's FNO has 1 to 3 spatial dimensions, not {d}")
    _check_supported(model, blocks)
    stabilizer = getattr(blocks, "stabilizer", None)
    if stabilizer not in (None, "tanh"):
        raise _refuse_option("stabilizer", stabilizer, "an unknown stabilizer")
    emb = model.positional_embedding
    if emb is not None:
        bounds = [list(map(float, b)) for b in getattr(emb, "grid_boundaries", [])]
        if bounds != [[0.0, 1.0]] * d:
            raise _refuse_option("positional_embedding", bounds,
                                 "opflow's coordinates are the unit box [0, 1] per axis")
    act = _activation_name(model.non_linearity)
    weights = [_active_modes(conv) for conv in blocks.convs]
    modes = weights[0][1]
    fno_skips = blocks.fno_skips
    mlp_skips = getattr(blocks, "channel_mlp_skips", None)
    fno_skip = _skip_kind(fno_skips[0]) if fno_skips is not None else None
    mlp_skip = _skip_kind(mlp_skips[0]) if mlp_skips is not None else None
    norms = getattr(blocks, "norm", None)
    norm = None if norms is None else _NORM_NAMES[type(norms[0]).__name__]
    padding = getattr(model, "domain_padding", None)
    dpad = None if padding is None else padding.domain_padding
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
        fno_skip=fno_skip, channel_mlp_skip=mlp_skip, norm=norm,
        preactivation=bool(blocks.preactivation), stabilizer=stabilizer,
        domain_padding=None if dpad is None else (
            [float(f) for f in dpad] if isinstance(dpad, (list, tuple)) else float(dpad)),
    )
    layers: list[Any] = list(out.layers)  # FourierLayers (typed loosely: duck-typed copies)
    if len(model.projection.fcs) != 2 or layers[0].mlp1.out_features != hidden:
        raise _refuse("a two-layer projection and a matching channel MLP width", model)
    for dst, src in zip(out.lifting, lifting):
        _copy_linear(cast(nn.Linear, dst), src.weight, src.bias)
    for dst, src in zip(out.projection, model.projection.fcs):
        _copy_linear(cast(nn.Linear, dst), src.weight, src.bias)
    for i, layer in enumerate(layers):
        conv = blocks.convs[i]
        w, layer_modes = weights[i]
        if layer_modes != modes:
            raise _refuse("the same modes in every layer", [m for _, m in weights])
        wr, wi = layer.spectral_weight()
        wr.copy_(w.real)
        wi.copy_(w.imag)
        conv_bias = None if conv.bias is None else conv.bias.reshape(-1)
        skip: Any = None if fno_skips is None else fno_skips[i]
        if fno_skip == "linear":
            skip_bias = skip.conv.bias
            if layer.bias is None:  # the skip's bias holds the convolution's
                if conv_bias is not None and skip_bias is not None:
                    skip_bias = conv_bias + skip_bias
                elif conv_bias is not None:
                    skip_bias = conv_bias
                _copy_linear(layer.skip, skip.conv.weight, skip_bias)
            else:
                if skip_bias is not None:
                    raise _refuse("a linear fno_skip without bias", skip)
                layer.skip.weight.copy_(skip.conv.weight.reshape(width, width))
        elif fno_skip == "soft-gating":
            if skip.bias is not None:
                raise _refuse("soft-gating fno_skip without bias", skip)
            layer.skip_gate.copy_(skip.weight.reshape(-1))
        if layer.bias is not None:
            if conv_bias is None:
                layer.bias.zero_()
            else:
                layer.bias.copy_(conv_bias)
        fc1, fc2 = blocks.channel_mlp[i].fcs
        _copy_linear(layer.mlp1, fc1.weight, fc1.bias)
        _copy_linear(layer.mlp2, fc2.weight, fc2.bias)
        mskip: Any = None if mlp_skips is None else mlp_skips[i]
        if mlp_skip == "soft-gating":
            if mskip.bias is not None:
                raise _refuse("soft-gating channel_mlp_skip without bias", mskip)
            layer.gate.copy_(mskip.weight.reshape(-1))
        elif mlp_skip == "linear":
            if mskip.conv.bias is not None:
                raise _refuse("a linear channel_mlp_skip without bias", mskip)
            layer.mlp_skip.weight.copy_(mskip.conv.weight.reshape(width, width))
        if norms is not None:
            _copy_norm(layer.norm1, norms[2 * i])
            _copy_norm(layer.norm2, norms[2 * i + 1])
    out.train(model.training)
    return out


@torch.no_grad()
def deeponet_from_deepxde(net: Any) -> DeepONet:
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
    mirror: Any = out  # its MLPs' layers are copied by position
    for dst, src in zip(mirror.branch.linears, branch.linears):
        _copy_linear(dst, src.weight, src.bias)
    for dst, src in zip(mirror.trunk.linears, trunk.linears):
        _copy_linear(dst, src.weight, src.bias)
    mirror.b0.copy_(torch.stack([b.reshape(()) for b in net.b]))
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
