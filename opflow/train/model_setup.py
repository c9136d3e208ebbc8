"""Sensible model settings from the data, for ``opflow train --model NAME``.

A user who types ``opflow train --model fno --data darcy.nc ...`` should not
have to know that FNO needs ``modes`` or that DeepONet's branch width is the
number of sensors. :func:`complete_config` fills in what the data decide
(channel counts, sensors, grid dimension, POD output shape) and a default
size for the rest; anything given in the config or on the command line wins.
The generic flags ``--width`` and ``--layers`` are translated to each model's
own arguments. :func:`prepare_model` does the data-dependent set-up that
happens after the model is built (POD modes for POD-DeepONet).

Defaults (``opflow train`` only; the classes keep their own signatures):

==================  ==============================================================
fno                 modes 12 per axis (at most n // 2), width 32, 4 layers
mgno                levels as many as the grid allows (at most 5), width 16, 4 layers
deeponet            branch ``[C_in * n_points, 128, 128, 128]``, trunk ``[ndim, 128, 128, 128]``
pod-deeponet        branch ``[C_in * n_points, 128, 128, n_modes]``, 32 modes (at most N - 1)
dymixop             modes 12 per axis (at most n // 2), width 32, 4 layers
driftnet            modes 8 per axis (at most n // 2), width 16, levels as many as the sizes
                    allow (at most 2); ``--layers``: blocks per stage (default 1)
unet                levels as many as the grid allows (at most 3), width 16
functionspace-unet  as unet; ``reference_resolution``: the training grid's shape
attention-operator  width 32, 4 layers
hard-constraint     ``n_t`` from the target's first axis (an input ``u0(x)``, a target
                    ``u(t, x)``); FNO basis width 16, 2 layers, modes (5, 8); recipe
                    ``diffusion-sorption``; unnormalised data (the PDE's units)
==================  ==============================================================
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..errors import InvalidArgumentError
from ..field import Field

__all__ = ["MODEL_NAMES", "complete_config", "model_choices", "model_name", "prepare_model"]

_HIDDEN, _DEPTH, _POD_MODES = 128, 3, 32


def _key(name: Any) -> str:
    return str(name).lower().replace("-", "").replace("_", "")


def _levels(shape: Sequence[int], most: int = 5) -> int:
    """Largest level count whose coarsest grid keeps at least 2 intervals per axis."""
    levels = 1
    while levels < most and min(shape) >= 2 ** levels + 1:
        levels += 1
    return levels


def _halvings(shape: Sequence[int], most: int, vertex: bool = False) -> int:
    """Largest level count ``<= most`` that halves every axis exactly (``n`` or ``n - 1``)."""
    levels = 0
    while levels < most and all(
            (n % 2 ** (levels + 1) == 0 and n // 2 ** (levels + 1) >= 2)
            or (vertex and (n - 1) % 2 ** (levels + 1) == 0 and n > 2) for n in shape):
        levels += 1
    return levels


def complete_config(config: Mapping[str, Any], in_shape: Sequence[int],
                    out_shape: Sequence[int], n_train: int,
                    in_cells: Sequence[int] | None = None) -> dict[str, Any]:
    """Fill in data-dependent and default model settings.

    Parameters
    ----------
    config : mapping
        ``{"name": ..., "in_channels": C_in, "out_channels": C_out, **options}``.
    in_shape, out_shape : sequence of int
        Grid shapes of one input and one output sample (no channel axis).
    n_train : int
        Number of training samples (bounds the POD mode count).
    in_cells : sequence of int, optional
        Cells per axis of the input grid (``n`` on a periodic axis, ``n - 1``
        on one with both end points): the function-space U-Net's
        ``reference_resolution``, so that its kernels sit exactly at their
        stored taps on the training grid. Default: ``in_shape``.

    Returns
    -------
    dict
        Constructor arguments for :func:`opflow.operators.build_operator`.
        Names other than those of the module's table pass through.
    """
    cfg = dict(config)
    kind = _key(cfg.get("name", ""))
    if kind == "fno":
        cfg.setdefault("modes", [max(1, min(12, n // 2)) for n in in_shape])
        if isinstance(cfg["modes"], int):  # `--modes 12`: the same on every axis
            cfg["modes"] = [cfg["modes"]] * len(in_shape)
        cfg.setdefault("width", 32)
        cfg.setdefault("n_layers", cfg.pop("layers", 4))
    elif kind == "mgno":
        cfg.setdefault("levels", _levels(in_shape))
        cfg.setdefault("width", 16)
        cfg.setdefault("n_layers", cfg.pop("layers", 4))
        cfg.setdefault("ndim", len(in_shape))
    elif kind == "dymixop":
        cfg.setdefault("modes", [max(1, min(12, n // 2)) for n in in_shape])
        cfg.setdefault("width", 32)
        cfg.setdefault("n_layers", cfg.pop("layers", 4))
        cfg.setdefault("ndim", len(in_shape))
    elif kind == "driftnet":
        cfg.setdefault("modes", [max(1, min(8, n // 2)) for n in in_shape])
        cfg.setdefault("width", 16)
        cfg.setdefault("levels", _halvings(in_shape, 2))
        cfg.setdefault("depth", cfg.pop("layers", 1))
        cfg.setdefault("ndim", len(in_shape))
    elif kind in ("unet", "functionspaceunet"):
        cfg.setdefault("levels", _halvings(in_shape, 3, vertex=True))
        cfg.setdefault("width", 16)
        cfg.setdefault("ndim", len(in_shape))
        if kind == "functionspaceunet":
            cfg.setdefault("reference_resolution",
                           list(in_shape if in_cells is None else in_cells))
    elif kind in ("hardconstraint", "hardconstraintoperator"):
        if len(out_shape) == len(in_shape) + 1:
            cfg.setdefault("n_t", int(out_shape[0]))
        if "layers" in cfg:
            cfg.setdefault("n_layers", cfg.pop("layers"))
    elif kind == "attentionoperator":
        cfg.setdefault("width", 32)
        cfg.setdefault("n_layers", cfg.pop("layers", 4))
        cfg.setdefault("ndim", len(in_shape))
    elif kind in ("deeponet", "poddeeponet"):
        c_in, c_out = cfg.pop("in_channels", 1), cfg.pop("out_channels", 1)
        width, depth = cfg.pop("width", _HIDDEN), cfg.pop("layers", _DEPTH)
        sensors = c_in * math.prod(in_shape)
        if kind == "deeponet":
            cfg.setdefault("branch_layers", [sensors] + [width] * depth)
            cfg.setdefault("trunk_layers", [len(out_shape)] + [width] * depth)
            cfg.setdefault("n_outputs", c_out)
        else:
            modes = max(1, min(_POD_MODES, n_train - 1))
            cfg.setdefault("branch_layers", [sensors] + [width] * (depth - 1) + [modes])
            cfg.setdefault("out_channels", c_out)
            cfg.setdefault("output_shape", list(out_shape))
    return cfg


def prepare_model(model: torch.nn.Module, train_set, output_normalizer=None,
                  batch_size: int = 64) -> None:
    """Data-dependent set-up after building: POD modes of the (normalised) training outputs.

    Parameters
    ----------
    model : torch.nn.Module
        The freshly built model; only POD-DeepONet needs anything.
    train_set : Dataset
        Yields ``(input, output)`` Field pairs (an ``OperatorDataset`` split).
    output_normalizer : UnitGaussianNormalizer, optional
        The Trainer's output normaliser: the model predicts normalised outputs,
        so its modes are those of the normalised data.
    batch_size : int
        Samples read at a time when collecting the training outputs.
    """
    from ..operators import POD_DeepONet

    if not isinstance(model, POD_DeepONet):
        return
    if len(train_set) < model.n_modes:
        raise InvalidArgumentError("--data", f"at least {model.n_modes} training samples for "
                                   f"{model.n_modes} POD modes", len(train_set))
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size,
                                         collate_fn=_collate_outputs)
    outputs = torch.cat([batch for batch in loader])
    if output_normalizer is not None:
        outputs = output_normalizer.encode(outputs)
    model.fit_modes(outputs)


def _collate_outputs(pairs) -> torch.Tensor:
    return torch.stack([u.values if isinstance(u, Field) else u for _, u in pairs])


# ---------------------------------------------------------------- model names
#: ``opflow train --model`` names (lower case, as the README writes them) -> the
#: registered operator names. A registered operator not listed is offered under its
#: registered name in lower case.
MODEL_NAMES: dict[str, str] = {
    "fno": "FNO",
    "mgno": "MgNO",
    "deeponet": "DeepONet",
    "pod-deeponet": "POD_DeepONet",
    "multitask-deeponet": "MultiTaskDeepONet",
    "driftnet": "DRIFTNet",
    "dymixop": "DyMixOp",
    "unet": "UNet",
    "function-space-unet": "FunctionSpaceUNet",
    "attention-operator": "AttentionOperator",
    "hard-constraint": "HardConstraintOperator",
}


def model_choices() -> dict[str, str]:
    """Every ``--model`` name -> its registered operator name.

    Returns
    -------
    dict
        The names of :data:`MODEL_NAMES` that are registered, then every other
        registered operator under its name in lower case.
    """
    from ..operators import registered_operators

    registered = registered_operators()
    named = {cli: reg for cli, reg in MODEL_NAMES.items() if reg in registered}
    listed = set(named.values())
    named.update({reg.lower(): reg for reg in registered if reg not in listed})
    return named


def model_name(text: str) -> str:
    """A ``--model`` value as its listed name: a listed name or a registered class
    name, in any case and with ``-`` or ``_`` (``FNO``, ``POD_DeepONet``).

    Parameters
    ----------
    text : str
        What the user typed.

    Returns
    -------
    str
        The name of :func:`model_choices`; unknown text unchanged.
    """
    for cli, registered in model_choices().items():
        if _key(text) in (_key(cli), _key(registered)):
            return cli
    return text
