"""Experts spread over the processes of a ``torch.distributed`` job (PI-HC-MoE).

Each process holds its own samples (the Trainer's data-parallel split). To
solve its share of the experts for every sample, a process first gathers
every process's basis fields; it then solves the experts ``k`` with ``k %
world_size == rank``, and the stitched blocks are summed across processes,
each keeping its own samples. The gather and the sum are the differentiable
collectives of ``torch.distributed.nn``, so a backward pass sends every
expert's contribution to the gradient back to the process whose basis
network produced the sample: under DistributedDataParallel (gradients
averaged) the update is the one-process update.

The collectives run on a process group of their own, created once, so that
they never interleave with DistributedDataParallel's gradient reductions.
They are two small autograd functions over ``all_gather`` and
``all_reduce`` (``torch.distributed.nn.functional`` is deprecated from
torch 2.10 on, its successor private).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist

from ..solution import ReturnCode

__all__ = ["expert_group", "experts_of", "gather_codes", "gather_samples",
           "sum_over_processes"]

_GROUP: dict[str, Any] = {}


class _Gather(torch.autograd.Function):
    """Every process's ``t (B, ...)`` stacked in rank order: ``(world * B, ...)``."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, t.contiguous(), group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        # every process's loss may depend on every gathered sample: sum, keep this slice
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        n = total.shape[0] // dist.get_world_size(ctx.group)
        rank = dist.get_rank(ctx.group)
        return total[rank * n:(rank + 1) * n], None


class _Sum(torch.autograd.Function):
    """``t`` summed over the processes; the gradient is summed the same way."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        out = t.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=ctx.group)
        return out, None


def expert_group() -> Optional[Any]:
    """The process group of the experts' collectives; None in a one-process run.

    Returns
    -------
    torch.distributed.ProcessGroup or None
        Created on first use (every process must reach it, as for any
        collective) and reused.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    if "group" not in _GROUP:
        _GROUP["group"] = dist.new_group(ranks=list(range(dist.get_world_size())))
    return _GROUP["group"]


def experts_of(n_experts: int, group: Any) -> list[int]:
    """The experts this process solves: ``k`` with ``k % world_size == rank``.

    Parameters
    ----------
    n_experts : int
        All experts.
    group : ProcessGroup
        From :func:`expert_group`.

    Returns
    -------
    list of int
        Possibly empty when there are more processes than experts.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    return list(range(rank, n_experts, world))


def gather_samples(tensors: Sequence[torch.Tensor], group: Any
                   ) -> tuple[list[torch.Tensor], int]:
    """Every process's samples of each tensor, concatenated in rank order.

    Parameters
    ----------
    tensors : sequence of torch.Tensor, each (B, ...)
        This process's samples (the same ``B`` for all, the rest of the
        shape the same on every process).
    group : ProcessGroup

    Returns
    -------
    gathered : list of torch.Tensor, each (sum of B over processes, ...)
        Differentiable: the gradient of a gathered sample returns to the
        process that holds it, summed over processes.
    offset : int
        Where this process's samples start in the gathered tensors.
    """
    B = tensors[0].shape[0]
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, torch.tensor([B], dtype=torch.int64), group=group)
    counts = [int(c) for c in sizes]
    most = max(counts)
    out = []
    for t in tensors:
        padded = torch.cat([t, t.new_zeros(most - B, *t.shape[1:])]) if B < most else t
        stacked = _Gather.apply(padded, group)
        out.append(torch.cat([stacked[r * most:r * most + c] for r, c in enumerate(counts)]))
    return out, sum(counts[:dist.get_rank(group)])


def sum_over_processes(t: torch.Tensor, group: Any) -> torch.Tensor:
    """``t`` summed over the processes (differentiable: the gradient is summed too).

    Parameters
    ----------
    t : torch.Tensor
        Every process must pass the same shape and take part in the backward
        pass (make ``t`` depend on the graph even where it is zero).
    group : ProcessGroup

    Returns
    -------
    torch.Tensor
    """
    return _Sum.apply(t, group)


def gather_codes(codes: list[ReturnCode], mine: list[int], n_experts: int, group: Any
                 ) -> list[ReturnCode]:
    """Every expert's retcode for every gathered sample (samples first).

    Parameters
    ----------
    codes : list of ReturnCode
        This process's solves: samples first, then its experts ``mine``.
    mine : list of int
        The experts this process solved.
    n_experts : int
        All experts.
    group : ProcessGroup

    Returns
    -------
    list of ReturnCode
        ``codes[b * n_experts + k]`` for every gathered sample ``b``.
    """
    parts: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, (mine, [c.name for c in codes]), group=group)
    n_samples = max(len(c) // max(len(m), 1) for m, c in parts)
    out = [ReturnCode.Success] * (n_samples * n_experts)
    for experts, names in parts:
        for i, name in enumerate(names):
            b, j = divmod(i, len(experts))
            out[b * n_experts + experts[j]] = ReturnCode[name]
    return out
