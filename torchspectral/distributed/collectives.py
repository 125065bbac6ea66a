"""Collectives over a process group, and the row movement the sharded computations are made of.

Every function takes ``group`` (a ``torch.distributed`` process group); ``group=None`` is one process: nothing
is communicated and the result is the local one, so the same code serves one process and many. The global rows
are the concatenation of the ranks' shards in rank order (an empty shard is allowed). Rows travel one block at a
time by ``torch.distributed.broadcast`` from the rank that holds them (:func:`assemble`, :func:`global_blocks`,
:func:`owner_chunks`), so per-rank memory is the shard plus a few blocks. Every rank must call them with the same
arguments other than its shard (they are collectives).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch


def _dist():
    import torch.distributed as dist

    return dist


def group_rank_world(group: Any) -> tuple[int, int]:
    """(rank, world size) in ``group``; ``group=None`` is one process: (0, 1), and no collective runs."""
    if group is None:
        return 0, 1
    dist = _dist()
    return dist.get_rank(group), dist.get_world_size(group)


def gather_objects(obj: Any, group: Any) -> list[Any]:
    """Every rank's small picklable ``obj``, in rank order, on every rank (sizes, dtypes, error messages)."""
    if group is None:
        return [obj]
    out: list[Any] = [None] * _dist().get_world_size(group)
    _dist().all_gather_object(out, obj, group=group)
    return out


def sum_all(t: torch.Tensor, group: Any, op: str = "sum") -> torch.Tensor:
    """All-reduce in place (``"sum"`` or ``"max"``) and return ``t``."""
    if group is None:
        return t
    dist = _dist()
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=group)
    return t


def gather_rows(t: torch.Tensor, counts: Sequence[int], group: Any) -> torch.Tensor:
    """The rank-order concatenation of every rank's ``t`` (``counts[r]`` rows on rank r) on every rank.

    For small per-row payloads (ids); all_gather needs equal sizes, so each rank pads to the largest count.
    """
    if group is None:
        return t
    dist = _dist()
    most = max(counts)
    padded = t.new_zeros((most, *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


def offsets(counts: Sequence[int]) -> list[int]:
    out = [0]
    for c in counts:
        out.append(out[-1] + c)
    return out


def take(t: torch.Tensor | Sequence[torch.Tensor], lo: int, hi: int) -> torch.Tensor:
    """Rows ``[lo, hi)`` of a tensor, or of the concatenation of a list of segments (a metric's list state),
    without concatenating the list: a view inside one segment, a copy of only these rows across segments."""
    if isinstance(t, torch.Tensor):
        return t[lo:hi]
    parts, base = [], 0
    for segment in t:
        a, b = max(lo, base), min(hi, base + segment.shape[0])
        if a < b:
            parts.append(segment[a - base : b - base])
        base += segment.shape[0]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def assemble(
    local: Sequence[torch.Tensor | Sequence[torch.Tensor]],
    counts: Sequence[int],
    start: int,
    stop: int,
    group: Any,
    like: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Rows ``[start, stop)`` of the rank-order concatenation of the ``local`` rows (tensors or segment lists,
    same number of rows) on every rank, from one broadcast per shard the range spans (a collective).

    ``like``: a tensor per entry of ``local`` whose trailing shape and dtype the rows take (default: ``local``'s
    own; segment lists need it, and every rank must give the same, since the broadcast buffers must match).
    """
    rank, _ = group_rank_world(group)
    off = offsets(counts)
    like = local if like is None else like
    bufs = [t.new_empty((stop - start, *t.shape[1:])) for t in like]
    for s, count in enumerate(counts):
        lo, hi = max(start, off[s]), min(stop, off[s] + count)
        if lo >= hi:
            continue
        for buf, t in zip(bufs, local, strict=True):
            piece = buf[lo - start : hi - start]  # a row range of a contiguous buffer: contiguous
            if s == rank:
                piece.copy_(take(t, lo - off[s], hi - off[s]))
            if group is not None:
                dist = _dist()
                dist.broadcast(piece, src=dist.get_global_rank(group, s), group=group)
    return bufs


def global_blocks(
    local: Sequence[torch.Tensor | Sequence[torch.Tensor]],
    counts: Sequence[int],
    block: int,
    group: Any,
    like: Sequence[torch.Tensor] | None = None,
) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
    """``(start, stop, tensors)`` for every block ``[start, stop)`` of the rank-order concatenation of the
    ``local`` rows, assembled on every rank (:func:`assemble`)."""
    total = sum(counts)
    for start in range(0, total, block):
        stop = min(start + block, total)
        yield start, stop, assemble(local, counts, start, stop, group, like)


def owner_chunks(
    local: Sequence[torch.Tensor], counts: Sequence[int], chunk: int, group: Any
) -> Iterator[tuple[int, int, list[torch.Tensor]]]:
    """``(owner, chunk index, tensors)`` for every chunk of every *other* rank's shard, broadcast by its owner."""
    dist = _dist()
    rank, _ = group_rank_world(group)
    for s, count in enumerate(counts):
        for k, start in enumerate(range(0, count, chunk)):
            stop = min(start + chunk, count)
            if s == rank:
                bufs = [t[start:stop].contiguous() for t in local]
            else:
                bufs = [t.new_empty((stop - start, *t.shape[1:])) for t in local]
            for buf in bufs:
                dist.broadcast(buf, src=dist.get_global_rank(group, s), group=group)
            if s != rank:
                yield s, k, bufs


def pair_rows(rank: int, owner: int, chunk_index: int, world: int, n_local: int, chunk: int) -> list[slice]:
    """The rows of ``rank``'s shard it pairs with chunk ``chunk_index`` of ``owner``'s shard for a within-sample
    sum, so that every unordered pair of rows of two shards is computed once and the work splits W ways.

    Rank r takes the shards ``1 … ⌈W/2⌉ − 1`` places ahead of it in the ring. For an even world the shard
    opposite (W/2 ahead, a pair both see) is split by the higher shard's chunks: the lower rank takes the
    higher shard's even chunks against all of its rows, the higher rank its own odd chunks against all of
    the lower shard.
    """
    ahead = (owner - rank) % world
    if 2 * ahead < world:
        return [slice(0, n_local)]
    if 2 * ahead > world:
        return []
    if rank < owner:
        return [slice(0, n_local)] if chunk_index % 2 == 0 else []
    return [slice(s, min(s + chunk, n_local)) for s in range(chunk, n_local, 2 * chunk)]


def rows_at(
    parts: Sequence[tuple[torch.Tensor, Sequence[int]]], positions: torch.Tensor, dtype: torch.dtype, group: Any
) -> torch.Tensor:
    """The rows at global ``positions`` of the concatenation of the sharded ``parts`` (each: local rows, rows per
    rank), in ``dtype``, on every rank: exact (each row comes from one rank, the others add zeros)."""
    rank, _ = group_rank_world(group)
    d = parts[0][0].shape[1]
    out = torch.zeros(positions.shape[0], d, dtype=dtype, device=parts[0][0].device)
    base = 0
    for local, counts in parts:
        off = offsets(counts)
        lo, hi = base + off[rank], base + off[rank + 1]
        mine = (positions >= lo) & (positions < hi)
        out[mine] = local[positions[mine] - lo].to(dtype)
        base += off[-1]
    return sum_all(out, group)
