"""Data-parallel training under ``torchrun``: the same script on 1 or N processes.

When a script runs under ``torchrun --nproc_per_node N script.py`` the
launcher sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`setup_distributed` reads them and, when
``WORLD_SIZE > 1``, joins the process group (``nccl`` on GPUs, ``gloo`` on
CPU); otherwise it does nothing and training runs in one process. The
:class:`~opflow.train.Trainer` calls it, so a training script needs no
distributed code of its own:

* the model is wrapped in ``DistributedDataParallel`` (gradients averaged
  across processes; the initial weights are broadcast from rank 0);
* the training data are split by a ``DistributedSampler`` seeded with the
  Trainer's seed (``batch_size`` is per process);
* losses and metrics are summed across processes, so every rank takes the
  same decisions (best checkpoint, early stopping, NaN guard);
* only rank 0 writes files and shows progress bars.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from ..errors import InvalidArgumentError

__all__ = [
    "DistributedContext",
    "all_reduce_sum",
    "cleanup_distributed",
    "distributed_sampler",
    "shard_sampler",
    "resolve_device",
    "setup_distributed",
    "unwrap_model",
    "wrap_model",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly one-process) training job.

    The parameters are also the attributes of the same names.

    Parameters
    ----------
    rank, local_rank, world_size : int
        Global rank, rank on this machine, number of processes.
    device : torch.device
        The device this process trains on.
    backend : str or None
        ``"nccl"`` or ``"gloo"`` when distributed, else None.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and shows progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgumentError(name, "an integer (environment variable set by torchrun)",
                                   value) from None


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``device`` as a ``torch.device``; None picks ``cuda:<local_rank>`` if CUDA is available.

    A bare ``"cuda"`` also becomes ``cuda:<local_rank>``, so each process of
    a multi-GPU job gets its own GPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgumentError("device", "a torch device such as 'cpu' or 'cuda:0'",
                                   device) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError("device", "'cpu' (CUDA is not available here)",
                                       str(device))
        if device.index is None:
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return device


_OWNED = False  # whether setup_distributed created the process group


def setup_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    device : str or torch.device, optional
        Default: ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU.

    Returns
    -------
    DistributedContext
        With ``world_size == 1`` (and no process group) when ``WORLD_SIZE``
        is unset or 1. Calling it again reuses the existing group.

    Raises
    ------
    opflow.errors.InvalidArgumentError
        A malformed environment variable, or ``device`` unusable.
    """
    global _OWNED
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world_size <= 1:
        return DistributedContext(device=resolve_device(device))
    if not 0 <= rank < world_size:
        raise InvalidArgumentError("RANK", f"an integer in [0, {world_size})", rank)
    dev = resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank,
                                world_size=world_size)
        if not _OWNED:
            atexit.register(cleanup_distributed)
        _OWNED = True
    else:
        backend = dist.get_backend()
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size,
                              device=dev, backend=backend)


def cleanup_distributed() -> None:
    """Leave the process group if :func:`setup_distributed` created it."""
    global _OWNED
    if _OWNED and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED = False


def wrap_model(model: nn.Module, ctx: DistributedContext) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when ``ctx`` is distributed.

    The model must already be on ``ctx.device``; DDP broadcasts rank 0's
    parameters and buffers, so all processes start from the same weights.
    """
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def distributed_sampler(dataset: Dataset, ctx: DistributedContext, *, shuffle: bool,
                        seed: int) -> DistributedSampler | None:
    """A ``DistributedSampler`` for ``dataset`` (None when not distributed).

    Every process sees ``ceil(len / world_size)`` items per epoch (a few
    repeated to even out); call ``sampler.set_epoch(epoch)`` before each epoch.
    """
    if not ctx.enabled:
        return None
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                              shuffle=shuffle, seed=seed, drop_last=False)


def shard_sampler(dataset: Dataset, ctx: DistributedContext) -> list[int] | None:
    """This process's share of ``dataset`` for evaluation: every item exactly once overall.

    Process ``r`` of ``W`` takes items ``r, r + W, r + 2W, ...`` in order, with no
    padding (a ``DistributedSampler`` repeats items to even out the shares, which
    would count them twice in validation metrics). Shares differ by at most one
    item; sums reduced with :func:`all_reduce_sum` stay exact. None when not
    distributed.
    """
    if not ctx.enabled:
        return None
    return list(range(ctx.rank, len(dataset), ctx.world_size))  # type: ignore[arg-type]


def all_reduce_sum(tensor: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Sum of ``tensor`` over all processes (in place; returned for chaining)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
