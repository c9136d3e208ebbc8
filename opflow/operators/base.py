"""What every neural operator shares: a rebuildable config and Field plumbing.

Config and registry
-------------------
Each operator records the keyword arguments it was built with. ``model.config``
is a plain, JSON-serialisable dict: ``{"name": <registered name>, **kwargs}``.
:func:`build_operator` turns such a dict back into a model, so a checkpoint
stores ``{"config": model.config, "state_dict": model.state_dict()}`` and is
reloaded without knowing the class or its flags::

    model = build_operator(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])

Classes register with :func:`register_operator` (a class decorator); every
operator in :mod:`opflow.operators` is registered under its class name.

Fields in, Fields out
---------------------
Operators accept a :class:`~opflow.Field` or a plain tensor. A Field of shape
``(*batch, channels, *grid.shape)`` comes back as a Field on the grid the
operator maps to (its own input grid for FNO and MgNO, a query grid for
DeepONet); a tensor comes back as a tensor, so models drop into ordinary torch
training loops. :func:`split_input` and :func:`to_field` do the bookkeeping.

Input checks
------------
Calling any operator first runs :func:`check_inputs` on the arguments of its
``forward``: every floating-point tensor or Field must have the dtype of the
model's weights, and none may be empty. A float64 input to a float32 model is
**refused** (not cast): the error names the argument and both dtypes, where
torch would fail deep inside a matmul. Convert the data (``x.to(torch.float32)``)
or the model (``model.double()``); casting silently would hide a precision
choice. Zero-sample batches (or zero-size grids) are refused the same way.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GridMismatchError, InvalidArgumentError, ShapeError, UnknownVariableError
from ..field import Field
from ..grid import Grid

__all__ = [
    "NeuralOperator",
    "GridOperator",
    "register_operator",
    "build_operator",
    "registered_operators",
    "get_activation",
    "ACTIVATIONS",
    "split_input",
    "to_field",
    "check_uniform",
    "check_inputs",
]

_REGISTRY: dict[str, type] = {}
_NAMES: dict[type, str] = {}

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "softplus": F.softplus,
    "identity": lambda x: x,
}


def get_activation(name: str,
                   argument: str = "activation") -> Callable[[torch.Tensor], torch.Tensor]:
    """Activation function by name (names keep configs serialisable)."""
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise InvalidArgumentError(argument, f"one of {sorted(ACTIVATIONS)}", name)
    return ACTIVATIONS[name.lower()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise InvalidArgumentError("config", "values made of numbers, strings, lists and dicts",
                               value)


@functools.lru_cache(maxsize=None)
def _forward_signature(cls: type[nn.Module]) -> inspect.Signature:
    return inspect.signature(cls.forward)


def _weight_dtype(model: nn.Module) -> torch.dtype | None:
    """dtype of the first floating-point parameter (None for a model without one)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_inputs(model: "NeuralOperator", args: tuple, kwargs: dict) -> None:
    """Refuse empty inputs and floating-point inputs of another dtype than the weights.

    Parameters
    ----------
    model : NeuralOperator
        The model about to be called; arguments named in its
        ``converted_inputs`` (converted by ``forward`` itself) skip the dtype check.
    args, kwargs
        The call's arguments, matched to the names of ``model.forward``.

    Raises
    ------
    InvalidArgumentError
        Naming the argument, with the expected and the given dtype or size.
    """
    try:
        # classes are hashable: mypy matches the instances' __hash__ against Hashable here
        signature = _forward_signature(type(model))  # type: ignore[arg-type]
        bound = signature.bind(model, *args, **kwargs)
    except TypeError:
        return  # a wrong call: forward raises Python's own message
    dtype = _weight_dtype(model)
    for name, value in list(bound.arguments.items())[1:]:
        values = value.values if isinstance(value, Field) else value
        if not isinstance(values, torch.Tensor):
            continue
        if values.numel() == 0:
            raise InvalidArgumentError(name, "a non-empty input (at least one sample, and "
                                       "points on every axis)", values)
        if (dtype is not None and values.is_floating_point() and values.dtype != dtype
                and name not in model.converted_inputs):
            raise InvalidArgumentError(
                name, f"values of dtype {dtype}, the dtype of the model's weights (convert "
                f"the input with .to({dtype}) or the model with .to({values.dtype}))", values)


class NeuralOperator(nn.Module):
    """Base class: ``config`` (rebuildable, JSON-ready) and Field-aware calling.

    Subclasses call ``self._set_config(**kwargs)`` in ``__init__`` with every
    constructor argument and are registered with :func:`register_operator`.
    Every call is checked by :func:`check_inputs` before ``forward`` runs.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`torch.nn.Module`.
    """

    _config: dict
    #: forward arguments that ``forward`` converts to the input's dtype itself
    converted_inputs: tuple[str, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        check_inputs(self, args, kwargs)
        return super().__call__(*args, **kwargs)

    def _set_config(self, **kwargs: Any) -> None:
        self._config = {k: _jsonable(v) for k, v in kwargs.items()}

    @property
    def config(self) -> dict:
        """``{"name": ..., **constructor kwargs}``; ``build_operator(config)`` rebuilds."""
        name = _NAMES.get(type(self))
        if name is None:  # a subclass must not pass for its registered parent
            raise InvalidArgumentError(
                "model", "an instance of a class registered with @register_operator",
                type(self).__qualname__)
        return {"name": name, **copy.deepcopy(self._config)}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config.items())


class GridOperator(NeuralOperator):
    """Base class of operators on uniform grids that may use the grid itself.

    :meth:`forward` takes a Field (or a tensor), checks that the grid is
    uniform, calls :meth:`forward_values` on the values with the grid, and
    returns a Field on the same grid (a tensor for a tensor). Subclasses set
    ``ndim`` and ``in_channels`` and implement :meth:`forward_values`.

    Parameters
    ----------
    *args, **kwargs
        Passed to :class:`torch.nn.Module`.
    """

    ndim: int
    in_channels: int

    def forward_values(self, v: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """The model on a tensor ``(B, in_channels, *spatial)``.

        Parameters
        ----------
        v : torch.Tensor, shape (B, in_channels, *spatial)
            The input values.
        grid : Grid, optional
            The input's grid (None for a tensor input): spacing, quadrature
            weights or coordinates for the layers that use them.

        Returns
        -------
        torch.Tensor, shape (B, out_channels, *spatial)
        """
        raise NotImplementedError

    def forward(self, x: Field | torch.Tensor) -> Field | torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        x : Field or torch.Tensor, shape (*batch, in_channels, *spatial)
            The input; a Field's grid must be uniform.

        Returns
        -------
        Field or torch.Tensor, shape (*batch, out_channels, *spatial)
            A Field on the input's grid for a Field input, else a tensor.
        """
        values, grid, batch = split_input(x, self.ndim, self.in_channels)
        if grid is not None:
            check_uniform(grid)
        return to_field(self.forward_values(values, grid), batch, grid)


def register_operator(operator_class: type | None = None, *, name: str | None = None):
    """Class decorator: make ``cls`` buildable by :func:`build_operator`.

    Parameters
    ----------
    operator_class : type
        A :class:`NeuralOperator` subclass (given when used as a bare
        ``@register_operator``).
    name : str, optional
        Registry name (default: the class name). Registering another class
        under a taken name raises; re-registering the same class is allowed.
    """

    def wrap(c: type) -> type:
        if not (isinstance(c, type) and issubclass(c, NeuralOperator)):
            raise InvalidArgumentError("operator_class", "a subclass of NeuralOperator", c)
        key = name or c.__name__
        old = _REGISTRY.get(key)
        if old is not None and (old.__module__, old.__qualname__) != (c.__module__,
                                                                         c.__qualname__):
            raise InvalidArgumentError("name", f"a name not taken by {old.__qualname__}", key)
        _REGISTRY[key] = c
        _NAMES[c] = key
        return c

    return wrap if operator_class is None else wrap(operator_class)


def registered_operators() -> dict[str, type]:
    """Registered names and classes (a copy)."""
    return dict(_REGISTRY)


def _name_key(name: Any) -> str:
    """Lookup key: case, '-' and '_' do not matter ("pod-deeponet" finds POD_DeepONet)."""
    return str(name).lower().replace("-", "").replace("_", "")


def _lookup(name: Any):
    """The registered class for ``name``, exact or by :func:`_name_key`."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for registered, cls in _REGISTRY.items():
        if _name_key(registered) == _name_key(name):
            return cls
    return None


def build_operator(config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a model from its ``config`` (weights are not part of it).

    Parameters
    ----------
    config : mapping
        ``{"name": <registered name>, **constructor kwargs}``, as returned by
        ``model.config``. Names match ignoring case, ``-`` and ``_``
        (``"mgno"``, ``"pod-deeponet"``).

    Returns
    -------
    torch.nn.Module
        A freshly initialised model; load the weights with ``load_state_dict``.

    Raises
    ------
    UnknownVariableError
        ``config["name"]`` is not registered.
    InvalidArgumentError
        ``config`` is not a mapping with a ``"name"`` or has bad arguments.

    Examples
    --------
    >>> import opflow
    >>> model = opflow.build_operator({"name": "fno", "in_channels": 1, "out_channels": 1,
    ...                                "modes": [8], "width": 8})
    >>> type(model).__name__
    'FNO'
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise InvalidArgumentError("config", "a mapping with a 'name' key (model.config)", config)
    kwargs = dict(copy.deepcopy(dict(config)))
    name = kwargs.pop("name")
    cls = _lookup(name)
    if cls is None:
        raise UnknownVariableError("config['name']", name, sorted(_REGISTRY))
    try:
        return cls(**kwargs)
    except TypeError as exc:  # unexpected / missing keyword
        raise InvalidArgumentError("config", f"constructor arguments of {name} ({exc})",
                                   kwargs) from None


def check_uniform(grid: Grid, argument: str = "x") -> None:
    """Raise unless every axis of ``grid`` is uniformly spaced."""
    for a in grid.axes:
        if not a.is_uniform:
            raise GridMismatchError(argument, f"a uniform grid (axis {a.name!r} is not uniform)",
                                    grid)


def split_input(
    x: Field | torch.Tensor,
    ndim: int,
    channels: int | None,
    argument: str = "x",
) -> tuple[torch.Tensor, Grid | None, torch.Size]:
    """Flatten a Field or tensor ``(*batch, C, *spatial)`` to ``(B, C, *spatial)``.

    Parameters
    ----------
    x : Field or torch.Tensor
        A Field on a grid with ``ndim`` axes, or a tensor whose last ``ndim``
        dimensions are spatial (any number of batch dimensions, possibly none).
    ndim : int
        Number of spatial dimensions the model works on.
    channels : int or None
        Required number of channels (``None``: any).

    Returns
    -------
    values : torch.Tensor, shape (B, C, *spatial)
    grid : Grid or None
        The Field's grid (``None`` for a tensor).
    batch_shape : torch.Size
        The original batch dimensions, for :func:`to_field` / reshaping back.
    """
    if isinstance(x, Field):
        if x.grid.ndim != ndim:
            raise GridMismatchError(argument, f"a Field on a {ndim}-D grid", x.grid)
        values, grid = x.values, x.grid
    elif isinstance(x, torch.Tensor):
        if x.ndim < ndim + 1:
            raise ShapeError(argument, f"a tensor (*batch, channels, *spatial) with {ndim} "
                             "spatial dimensions", x)
        values, grid = x, None
    else:
        raise InvalidArgumentError(argument, "an opflow.Field or a torch.Tensor", x)
    if not values.is_floating_point():
        raise InvalidArgumentError(argument, "floating-point values", values)
    c_dim = values.ndim - ndim - 1
    if channels is not None and values.shape[c_dim] != channels:
        raise ShapeError(argument, f"{channels} channels (dimension {c_dim})", values)
    batch_shape = values.shape[:c_dim]
    flat = values.reshape(math.prod(batch_shape), *values.shape[c_dim:])
    return flat, grid, batch_shape


def to_field(
    values: torch.Tensor,
    batch_shape: torch.Size,
    grid: Grid | None,
    names=None,
) -> Field | torch.Tensor:
    """Undo :func:`split_input`: ``(B, C, *spatial)`` back to ``(*batch, C, *spatial)``.

    Returns a Field on ``grid`` when ``grid`` is given, else a tensor.
    """
    out = values.reshape(*batch_shape, *values.shape[1:])
    return out if grid is None else Field(out, grid, names)
