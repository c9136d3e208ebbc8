"""Low-rank adapters (LoRA, Hu et al. 2021) for linear and 1x1-convolution layers.

A wrapped layer computes ``W x + b + (alpha / r) B A x`` with the base weight
``W`` frozen, ``A`` of shape ``(r, in)`` and ``B`` of shape ``(out, r)``.
``B`` starts at zero, so a freshly wrapped model computes exactly what it
did before; fine-tuning trains only ``A`` and ``B`` (``r (in + out)``
numbers per layer instead of ``in * out``).

Operators that read a layer's ``weight`` directly (the FNO's pointwise maps
are fused matrix products) see the adapted weight: :attr:`LoRA.weight` is
``W + (alpha / r) B A`` while unmerged, so wrapping works for them too.
:meth:`LoRA.merge` folds the update into ``W`` for inference at no extra
cost; :meth:`LoRA.unmerge` takes it out again.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Sequence, Union, cast

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InvalidArgumentError

__all__ = ["LoRA", "add_lora", "lora_layers", "merge_lora", "remove_lora", "unmerge_lora"]

_CONVS = (nn.Conv1d, nn.Conv2d)
_Layer = Union[nn.Linear, nn.Conv1d, nn.Conv2d]  # what _check_base accepts


def _check_base(base: nn.Module, argument: str = "base") -> tuple[int, int]:
    """``(in_features, out_features)`` of a supported layer, else a clear error."""
    if isinstance(base, LoRA):
        raise InvalidArgumentError(argument, "a layer not already wrapped in LoRA", base)
    if isinstance(base, nn.Linear):
        return base.in_features, base.out_features
    if type(base) in _CONVS:
        conv = cast("nn.Conv1d | nn.Conv2d", base)
        pointwise = (all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride)
                     and all(d == 1 for d in conv.dilation) and conv.groups == 1
                     and not isinstance(conv.padding, str) and not any(conv.padding))
        if pointwise:
            return conv.in_channels, conv.out_channels
        raise InvalidArgumentError(
            argument, "a 1x1 convolution (kernel 1, stride 1, dilation 1, no padding, groups 1)",
            f"{type(conv).__name__}(kernel_size={conv.kernel_size}, stride={conv.stride}, "
            f"padding={conv.padding}, groups={conv.groups})")
    raise InvalidArgumentError(argument, "an nn.Linear or a 1x1 nn.Conv1d / nn.Conv2d layer",
                               type(base).__name__)


class LoRA(nn.Module):
    """A frozen layer plus a trainable low-rank update.

    Parameters
    ----------
    base : nn.Linear or nn.Conv1d or nn.Conv2d
        The layer to adapt; convolutions must be 1x1 (pointwise). Its
        parameters are frozen (``requires_grad=False``).
    rank : int
        Rank ``r`` of the update, ``1 <= r <= min(in, out)``.
    alpha : float, optional
        Scale numerator: the update is ``(alpha / r) B A`` (default ``alpha = r``,
        scale 1).
    generator : torch.Generator, optional
        Random source of ``A``'s initialisation (Kaiming-uniform, as ``nn.Linear``).

    Attributes
    ----------
    lora_A : nn.Parameter, shape (r, in)
    lora_B : nn.Parameter, shape (out, r), zero at construction
    merged : bool
        Whether the update is currently folded into ``base.weight``.

    Notes
    -----
    Input and output shapes are those of ``base``: ``(..., in) -> (..., out)``
    for a linear layer, ``(B, in, *spatial) -> (B, out, *spatial)`` for a
    convolution.

    Examples
    --------
    >>> import torch, opflow
    >>> layer = opflow.LoRA(torch.nn.Linear(16, 16), rank=2)  # the base layer is frozen
    >>> sum(p.numel() for p in layer.parameters() if p.requires_grad)  # 2 x (16 + 16)
    64
    >>> tuple(layer(torch.rand(3, 16)).shape)
    (3, 16)
    """

    def __init__(self, base: nn.Module, rank: int, alpha: float | None = None, *,
                 generator: torch.Generator | None = None):
        super().__init__()
        n_in, n_out = _check_base(base)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n_in,
                                                                                        n_out):
            raise InvalidArgumentError("rank", f"an integer in [1, {min(n_in, n_out)}]", rank)
        alpha = float(rank if alpha is None else alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise InvalidArgumentError("alpha", "a positive number", alpha)
        self.base = cast(_Layer, base)  # _check_base accepted it
        for p in base.parameters():
            p.requires_grad_(False)
        w = self.base.weight
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        a = torch.empty(rank, n_in, dtype=w.dtype)
        bound = 1.0 / math.sqrt(n_in)  # kaiming_uniform_(a=sqrt(5)), nn.Linear's default
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(a.to(w.device))
        self.lora_B = nn.Parameter(torch.zeros(n_out, rank, dtype=w.dtype, device=w.device))
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A`` in the shape of ``base.weight``."""
        return (self.scaling * (self.lora_B @ self.lora_A)).view(self.base.weight.shape)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight (base plus update; the base alone once merged)."""
        return self.base.weight if self.merged else self.base.weight + self.delta_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        if isinstance(self.base, nn.Linear):
            return y + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)
        # pointwise convolution: the same two products over the channel dim
        flat = x.flatten(2)
        low = torch.matmul(self.lora_A, flat)
        return y + (self.scaling * torch.matmul(self.lora_B, low)).view(y.shape)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``base.weight`` (forward then costs the base alone)."""
        if not self.merged:
            self.base.weight.add_(self.delta_weight())
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take a merged update out of ``base.weight`` again."""
        if self.merged:
            self.base.weight.sub_(self.delta_weight())
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


def _set_child(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _is_supported(module: nn.Module) -> bool:
    try:
        _check_base(module)
    except InvalidArgumentError:
        return False
    return True


def add_lora(model: nn.Module, rank: int, targets: Sequence[str] | None = None,
             alpha: float | None = None, *, seed: int = 0) -> int:
    """Wrap layers of ``model`` in :class:`LoRA` in place and freeze everything else.

    Parameters
    ----------
    model : nn.Module
    rank : int
        Rank of every adapter (capped per layer at ``min(in, out)``).
    targets : sequence of str, optional
        Module names (as in ``model.named_modules()``), shell-style patterns
        allowed (``"layers.*.skip"``). Every named module must be a supported
        layer (``nn.Linear`` or a 1x1 ``nn.Conv1d/2d``) and every pattern must
        match one. Default: every supported layer.
    alpha : float, optional
        Scale numerator (default: each adapter's rank).
    seed : int
        Seed of the adapters' ``A`` initialisation.

    Returns
    -------
    int
        Number of trainable parameters left (the adapters' and any trainable
        parameters of earlier adapters).

    Raises
    ------
    InvalidArgumentError
        A target names an unsupported layer type, matches nothing, or
        ``rank`` is not a positive integer.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError("model", "a torch.nn.Module", model)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InvalidArgumentError("rank", "a positive integer", rank)
    wrapped = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, LoRA))
    named = [(n, m) for n, m in model.named_modules()
             if n and not isinstance(m, LoRA) and not n.startswith(wrapped)]
    if targets is None:
        chosen = [(n, m) for n, m in named if _is_supported(m)]
    else:
        if isinstance(targets, str):
            targets = [targets]
        chosen, seen = [], set()
        for pattern in targets:
            hits = [(n, m) for n, m in named if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise InvalidArgumentError("targets", "module names of the model "
                                           f"(e.g. {[n for n, _ in named][:6]})", pattern)
            for n, m in hits:
                _check_base(m, f"targets ({n!r})")
                if n not in seen:
                    seen.add(n)
                    chosen.append((n, m))
    if not chosen:
        raise InvalidArgumentError("model", "at least one nn.Linear or 1x1 convolution to adapt",
                                   type(model).__name__)
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(int(seed))
    for n, m in chosen:
        r = min(rank, *_check_base(m))
        _set_child(model, n, LoRA(m, r, alpha, generator=gen))
    for layer in lora_layers(model):
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_layers(model: nn.Module) -> list[LoRA]:
    """The :class:`LoRA` modules inside ``model``."""
    return [m for m in model.modules() if isinstance(m, LoRA)]


def merge_lora(model: nn.Module) -> int:
    """Merge every adapter of ``model``; returns how many there are.

    Parameters
    ----------
    model : torch.nn.Module
        A model with :class:`LoRA` layers (:func:`add_lora`).

    Returns
    -------
    int
        The number of adapters.
    """
    layers = lora_layers(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Unmerge every adapter of ``model``; returns how many there are.

    Parameters
    ----------
    model : torch.nn.Module
        A model with :class:`LoRA` layers (:func:`add_lora`).

    Returns
    -------
    int
        The number of adapters.
    """
    layers = lora_layers(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)


def remove_lora(model: nn.Module, merge: bool = True) -> nn.Module:
    """Replace every adapter by its base layer (merged first unless ``merge=False``).

    The result has the original module structure (and ``state_dict`` keys),
    so it saves and reloads like the model before :func:`add_lora`. Every
    parameter is made trainable again.

    Parameters
    ----------
    model : torch.nn.Module
        A model with :class:`LoRA` layers.
    merge : bool
        Merge each adapter into its base layer first (else drop it).
    """
    names = [n for n, m in model.named_modules() if isinstance(m, LoRA)]
    for n in names:
        layer = cast(LoRA, model.get_submodule(n))  # a name of a LoRA module
        (layer.merge if merge else layer.unmerge)()
        _set_child(model, n, layer.base)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
