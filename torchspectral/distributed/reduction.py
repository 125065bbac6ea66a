"""Summing statistics across ranks (torch.distributed), with a differentiable path for losses under DDP.

Gradient convention of :func:`sum_across_ranks` (the differentiable path). Rank r holds local sums
``s_r(rows_r)``; the forward returns ``S = Σ_r s_r`` on every rank, and every rank then evaluates the
same global loss ``L(S)``. The exact partial derivative of L with respect to rank r's rows is
``∂L/∂rows_r = (∂L/∂S) · (∂s_r/∂rows_r)``, because ``∂S/∂s_r`` is the identity. So the backward hands
each rank its upstream gradient **unchanged**: ``rows.grad`` on rank r is exactly the slice of the
single-process gradient over the concatenated batch that belongs to rank r's rows.

This differs from ``torch.distributed.nn.functional.all_reduce`` (checked in torch 2.13), whose backward
all-reduces (sums) the upstream gradients again: with every rank holding the same L, rank r then gets
``W · ∂L/∂rows_r`` (W = world size), and every rank must take part in the backward collective. The
backward here needs no communication at all.

Under DistributedDataParallel, which *averages* parameter gradients over the ranks, the parameter
gradient you get is ``(1/W) Σ_r (∂L/∂s_r)(∂s_r/∂θ) = ∇_θ L / W``. To recover ``∇_θ L`` exactly (as one
process over the global batch would), multiply the synced loss by ``W = dist.get_world_size()`` before
``backward``; a per-rank loss (e.g. CLIP on the local batch) needs no factor, since DDP's average of
the local gradients is already the gradient of the mean of the per-rank losses.
"""

from __future__ import annotations

from typing import Any

import torch


def require_initialised(caller: str) -> None:
    """Raise a RuntimeError naming `caller` unless a default torch.distributed process group exists."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{caller}: torch.distributed is not initialised; call torch.distributed.init_process_group first "
            "(or do not ask for a cross-rank reduction in a single process)"
        )


def require_same_across_ranks(
    caller: str, what: str, values: tuple[int, ...], device: torch.device, group: Any = None
) -> None:
    """Raise the same ValueError on every rank of `group` unless all of them hold the same `values` (small ints).

    Run before a collective whose tensors' sizes follow from `values` (widths, which statistics are held): with
    sizes that differ, gloo aborts the process and NCCL hangs, neither naming the cause. One all_gather of
    ``len(values)`` integers, on `device` (the device the following collective uses).
    """
    import torch.distributed as dist

    local = torch.tensor(values, dtype=torch.int64, device=device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, local, group=group)
    seen = [tuple(int(v) for v in t.tolist()) for t in gathered]
    if len(set(seen)) > 1:
        listing = ", ".join(f"rank {rank}: {row}" for rank, row in enumerate(seen))
        raise ValueError(f"{caller}: the ranks disagree on {what} ({listing}); every rank must use the same")


class _SumAcrossRanks(torch.autograd.Function):
    """Forward: all_reduce(SUM) of a copy. Backward: the upstream gradient unchanged (see the module docstring)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Any) -> torch.Tensor:  # type: ignore[override]
        import torch.distributed as dist

        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        # ∂(Σ_r s_r)/∂s_r = I: every rank's loss is the same function of the same total, so the local
        # rows get the upstream gradient as it is (no second all_reduce, which would multiply by W).
        return grad_total, None


def sum_across_ranks(tensor: torch.Tensor, group: Any = None, differentiable: bool = False) -> torch.Tensor:
    """Σ over the ranks of `group` of `tensor`, returned as a new tensor on every rank (the input is untouched).

    With ``differentiable=True`` the result carries the gradient convention of this module: the backward
    returns the upstream gradient unchanged on each rank (exact ∂L/∂local for a loss L every rank
    computes from the total), and performs no communication. Without it, the input must not require grad.

    Shape: any → the same.
    """
    require_initialised("sum_across_ranks")
    if differentiable:
        return _SumAcrossRanks.apply(tensor, group)
    import torch.distributed as dist

    if tensor.requires_grad:
        raise RuntimeError(
            "sum_across_ranks: the tensor requires grad and differentiable=False would cut the graph; "
            "pass differentiable=True or detach it"
        )
    total = tensor.clone(memory_format=torch.contiguous_format)
    dist.all_reduce(total, group=group)
    return total
