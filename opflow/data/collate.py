"""Batching Fields in ``torch.utils.data.DataLoader``.

Importing this module registers :func:`collate_fields` with PyTorch's default
collate function, so a ``DataLoader`` over a dataset that yields Fields (or
tuples/dicts of Fields) batches them with no ``collate_fn`` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import GridMismatchError, InvalidArgumentError
from ..field import SAMPLE_ATTR, Field

__all__ = ["collate_fields"]

_collate_tensors: Callable[..., torch.Tensor] | None = None
_collate_map: dict[type | tuple[type, ...], Callable] | None = None
try:  # private module of torch: keep opflow importable if it moves
    from torch.utils.data._utils import collate as _torch_collate

    _collate_tensors, _collate_map = (_torch_collate.collate_tensor_fn,
                                      _torch_collate.default_collate_fn_map)
except (ImportError, AttributeError):  # pragma: no cover - depends on the torch version
    pass


def _stack(values: list[torch.Tensor]) -> torch.Tensor:
    if _collate_tensors is not None:  # uses shared memory inside DataLoader workers
        return _collate_tensors(values)
    return torch.stack(values)  # pragma: no cover


def collate_fields(batch: Sequence[Field], *,
                   collate_fn_map: dict[type, Callable] | None = None) -> Field:
    """Stack Fields along a new leading batch dimension.

    Parameters
    ----------
    batch : sequence of Field, each of shape (*batch, C, *grid)
        All on the same Grid with the same channel names.
    collate_fn_map : dict, optional
        Passed by ``default_collate``; unused.

    Returns
    -------
    Field
        Shape ``(len(batch), *batch, C, *grid)``; units and attrs of the first,
        and the sample coordinate (``attrs["opflow_sample"]``) of all when each
        Field is labelled as one sample.
    """
    if not batch:
        raise InvalidArgumentError("batch", "at least one Field", batch)
    first = batch[0]
    for i, f in enumerate(batch[1:], start=1):
        if f.grid != first.grid:
            raise GridMismatchError(f"batch[{i}]", f"a Field on {first.grid!r}", f.grid)
        if f.names != first.names:
            raise InvalidArgumentError(f"batch[{i}]", f"a Field with channels {first.names}",
                                       f.names)
    attrs = dict(first.attrs)
    labels = [attrs.pop(SAMPLE_ATTR, None)] + [f.attrs.get(SAMPLE_ATTR) for f in batch[1:]]
    if all(label is not None and np.ndim(label) == 0 for label in labels):
        attrs[SAMPLE_ATTR] = np.stack([np.asarray(label) for label in labels])
    return first.with_values(_stack([f.values for f in batch]), attrs=attrs)


if _collate_map is not None:
    _collate_map[Field] = collate_fields
