"""Gaussian normalisation of Fields and tensors: ``(x - mean) / (std + eps)``.

Statistics are per channel by default (one mean and std per channel, shape
``(C, 1, ..., 1)``) or per grid point (``pointwise=True``, shape
``(C, *grid)``, as in the original FNO code). Either broadcasts against
values laid out as ``(*batch, C, *grid)``, the :class:`~opflow.Field` layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import overload

import torch

from ..errors import InvalidArgumentError, ShapeError
from ..field import Field

__all__ = ["RunningMoments", "UnitGaussianNormalizer"]


class RunningMoments:
    """Mean and variance accumulated over chunks (Chan et al.'s pairwise update).

    Feeding the data chunk by chunk gives the same statistics as one pass over
    all of it, up to rounding, without holding it all in memory. Accumulates
    in float64.

    Parameters
    ----------
    dims : iterable of int
        Dimensions reduced in every :meth:`update` (kept with size 1).
    """

    def __init__(self, dims: Iterable[int]):
        self.dims = tuple(dims)
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> RunningMoments:
        """Add a chunk ``x`` (same shape as earlier chunks outside ``dims``).

        Parameters
        ----------
        x : torch.Tensor
            A chunk of data; the reduced dimensions ``dims`` may have any size.

        Returns
        -------
        RunningMoments
            ``self``.
        """
        x = x.detach().to(torch.float64)
        n = math.prod(x.shape[d] for d in self.dims)
        if n == 0:
            return self
        mean = x.mean(self.dims, keepdim=True)
        m2 = (x - mean).square().sum(self.dims, keepdim=True)
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return self
        assert self.mean is not None and self.m2 is not None  # set by the first chunk
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total
        return self

    def std(self) -> torch.Tensor:
        """Population standard deviation (divides by the count)."""
        if self.count == 0:
            raise InvalidArgumentError("data", "at least one value to fit statistics on", 0)
        assert self.m2 is not None  # set by the first chunk
        return (self.m2 / self.count).sqrt()


class UnitGaussianNormalizer:
    """Shift and scale to zero mean and unit variance, and back.

    Parameters
    ----------
    mean, std : torch.Tensor, shape (C, *grid) or (C, 1, ..., 1)
        Statistics broadcastable against values of shape ``(*batch, C, *grid)``.
    eps : float
        Added to ``std`` so constant channels do not divide by zero.

    Examples
    --------
    >>> norm = UnitGaussianNormalizer.fit(train_values)      # doctest: +SKIP
    >>> z = norm.encode(field); field_again = norm.decode(z)  # doctest: +SKIP
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-5):
        mean, std = torch.as_tensor(mean), torch.as_tensor(std)
        if mean.shape != std.shape:
            raise ShapeError("std", f"the shape of `mean` {tuple(mean.shape)}", std)
        self.mean, self.std, self.eps = mean, std, float(eps)

    @classmethod
    def fit(
        cls,
        values: torch.Tensor | Field,
        dims: Sequence[int] | None = None,
        *,
        pointwise: bool = False,
        eps: float = 1e-5,
    ) -> UnitGaussianNormalizer:
        """Statistics of ``values``.

        Parameters
        ----------
        values : torch.Tensor of shape (N, C, *grid), or Field with batch dims
            For a Field the layout is ``(*batch, C, *grid)``.
        dims : sequence of int, optional
            Dimensions to reduce; must include every batch dimension. Default:
            all but the channel dimension, or only the batch dimensions when
            ``pointwise``.
        pointwise : bool
            Per-grid-point statistics (ignored when ``dims`` is given).
        eps : float

        Returns
        -------
        UnitGaussianNormalizer
            ``mean`` and ``std`` of shape ``values.shape[channel_dim:]`` with
            reduced dims kept as size 1; float64 results cast back to the
            dtype of ``values``.
        """
        tensor, cdim = _tensor_and_channel_dim(values)
        dims = _reduce_dims(tensor.ndim, cdim, dims, pointwise)
        moments = RunningMoments(dims).update(tensor)
        return cls.from_moments(moments, cdim, tensor.dtype, eps)

    @classmethod
    def from_moments(cls, moments: RunningMoments, channel_dim: int, dtype: torch.dtype,
                     eps: float = 1e-5) -> UnitGaussianNormalizer:
        """Normalizer from accumulated :class:`RunningMoments` (batch dims dropped).

        Parameters
        ----------
        moments : RunningMoments
            Statistics accumulated over the data.
        channel_dim : int
            Position of the channel dimension in the accumulated shape; the
            dimensions before it are dropped.
        dtype : torch.dtype
            Of the statistics.
        eps : float
            Added to the standard deviation.

        Returns
        -------
        UnitGaussianNormalizer
        """
        std_all = moments.std()  # refuses moments of no data
        assert moments.mean is not None  # there was data
        shape = moments.mean.shape[channel_dim:]
        mean = moments.mean.reshape(shape).to(dtype)
        std = std_all.reshape(shape).to(dtype)
        return cls(mean, std, eps)

    # ------------------------------------------------------------- transforms
    def _stats_like(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < self.mean.ndim:
            shape = ", ".join(map(str, self.mean.shape))
            raise ShapeError("x", f"values of shape (*batch, {shape}) or broadcastable", x)
        dtype = x.dtype if x.is_floating_point() else None
        return (self.mean.to(dtype=dtype, device=x.device),
                self.std.to(dtype=dtype, device=x.device))

    @overload
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def encode(self, x: Field) -> Field: ...

    def encode(self, x: torch.Tensor | Field) -> torch.Tensor | Field:
        """``(x - mean) / (std + eps)`` for a tensor or Field of shape ``(*batch, C, *grid)``.

        Parameters
        ----------
        x : torch.Tensor or Field, shape (*batch, C, *grid)
            Data with the channels the statistics were fitted on.

        Returns
        -------
        torch.Tensor or Field
            Same type and shape as ``x``.
        """
        if isinstance(x, Field):
            return x.with_values(self.encode(x.values))
        mean, std = self._stats_like(x)
        return (x - mean) / (std + self.eps)

    @overload
    def decode(self, x: torch.Tensor) -> torch.Tensor: ...
    @overload
    def decode(self, x: Field) -> Field: ...

    def decode(self, x: torch.Tensor | Field) -> torch.Tensor | Field:
        """``x * (std + eps) + mean``, the inverse of :meth:`encode`.

        Parameters
        ----------
        x : torch.Tensor or Field, shape (*batch, C, *grid)
            Normalised data.

        Returns
        -------
        torch.Tensor or Field
            Same type and shape as ``x``.
        """
        if isinstance(x, Field):
            return x.with_values(self.decode(x.values))
        mean, std = self._stats_like(x)
        return x * (std + self.eps) + mean

    __call__ = encode

    # ------------------------------------------------------------------ state
    def to(self, *args, **kwargs) -> UnitGaussianNormalizer:
        """New normalizer with statistics moved by ``Tensor.to`` (device and/or dtype).

        Parameters
        ----------
        *args, **kwargs
            As for :meth:`torch.Tensor.to`.

        Returns
        -------
        UnitGaussianNormalizer
        """
        return UnitGaussianNormalizer(self.mean.to(*args, **kwargs),
                                      self.std.to(*args, **kwargs), self.eps)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"mean", "std", "eps"}`` as plain tensors (for ``torch.save``)."""
        eps = torch.tensor(self.eps, dtype=torch.float64)
        return {"mean": self.mean, "std": self.std, "eps": eps}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> UnitGaussianNormalizer:
        """Replace the statistics by those of :meth:`state_dict`; returns ``self``.

        Parameters
        ----------
        state : dict of str to torch.Tensor
            With ``mean``, ``std`` and ``eps``.

        Returns
        -------
        UnitGaussianNormalizer
        """
        missing = {"mean", "std"} - set(state)
        if missing:
            raise InvalidArgumentError("state", "a dict with 'mean', 'std' and 'eps'",
                                       sorted(state))
        other = UnitGaussianNormalizer(state["mean"], state["std"],
                                       float(state.get("eps", self.eps)))
        self.mean, self.std, self.eps = other.mean, other.std, other.eps
        return self

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> UnitGaussianNormalizer:
        """Normalizer rebuilt from :meth:`state_dict`.

        Parameters
        ----------
        state : dict of str to torch.Tensor
            With ``mean``, ``std`` and ``eps``.

        Returns
        -------
        UnitGaussianNormalizer
        """
        return cls(torch.zeros(()), torch.ones(())).load_state_dict(state)

    def __repr__(self) -> str:
        return (f"UnitGaussianNormalizer(shape={tuple(self.mean.shape)}, "
                f"dtype={self.mean.dtype}, eps={self.eps:g})")


def _tensor_and_channel_dim(values: torch.Tensor | Field) -> tuple[torch.Tensor, int]:
    if isinstance(values, Field):
        if not values.batch_shape:
            raise ShapeError("values", "a Field with batch dims (samples to fit on)", values.values)
        return values.values, values.channel_dim
    values = torch.as_tensor(values)
    if values.ndim < 2:
        raise ShapeError("values", "a tensor of shape (N, C, *grid)", values)
    return values, 1


def _reduce_dims(ndim: int, channel_dim: int, dims: Sequence[int] | None,
                 pointwise: bool) -> tuple[int, ...]:
    if dims is None:
        if pointwise:
            return tuple(range(channel_dim))
        return tuple(d for d in range(ndim) if d != channel_dim)
    if any(not -ndim <= int(d) < ndim for d in dims):
        raise InvalidArgumentError("dims", f"dimension indices in [-{ndim}, {ndim})", list(dims))
    dims = tuple(sorted({int(d) % ndim for d in dims}))
    if not set(range(channel_dim)) <= set(dims):
        raise InvalidArgumentError(
            "dims", f"dimensions to reduce including all batch dims {list(range(channel_dim))}",
            list(dims))
    return dims
