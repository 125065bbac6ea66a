"""The pairwise engine across ranks (torch.distributed): every rank keeps its shard, the other rows travel in chunks.

The global sample is the concatenation of the ranks' shards in rank order (an empty shard is allowed). Rows
travel one block at a time by ``torch.distributed.broadcast`` from the rank that holds them (a block that spans
several shards is assembled from one broadcast per shard; :mod:`torchspectral.distributed.collectives`), and
each tile is the one-process tile of :mod:`torchspectral.pairwise` (the chunked path and the retrieval
counting are imported from there, not repeated), so per-rank memory is the shard plus a few blocks:
O((N/W + block)·d), plus O(N + M) scalars (rank counts, row sums). Every rank must call every function here
with the same arguments other than its shard (they are collectives).

Deterministic and equal to one process on the concatenated data:

* Retrieval ranks are *bitwise* the single-process ones, ties included. A float32 GEMM's entries depend on the
  shape of the product and on the entry's position in it (BLAS picks different micro-kernels at the edges), so
  a score computed in a differently shaped tile can differ in its last bit, and a tie (or its absence) would
  change a rank. The engine therefore forms exactly the single-process products: images travel as the global
  tiles ``[aT, (a+1)T)``, captions are grouped into units of whole global caption tiles (and whole
  ground-truth chunks), each counted by the rank holding its first caption, and each ground-truth score is
  the diagonal of the same ``x̂[c(J)] ŷ_Jᵀ`` block. The counts are integers, summed across ranks. (Equal tiles
  need the same :data:`~torchspectral.pairwise.TILE_BUDGET_BYTES` on every rank and in the one process.)
* Kernel sums (MMD, RBF CKA) are float64 sums of the same pair terms in another grouping: equal to float64
  rounding for float64 inputs (float32 inputs: float32 tile sums, ~1e-7 relative). Each unordered pair of
  shards is computed by one rank (half of the chunks each for the middle pair of an even world), so the work
  splits W ways.
* Bandwidth medians and kernel levels are taken on the rows at the same *global* positions as in one process
  (:func:`~torchspectral.pairwise.median_subsample` of the global row count), gathered exactly, so σ and the
  shift do not depend on the sharding.

Gradients: :func:`mmd_sum_grads_across` gives the gradients of the global MMD sums with respect to each rank's
rows, computed in the forward pass (the MMD is linear in its sums, so the backward only scales them and needs
no communication: the convention of :mod:`torchspectral.distributed.reduction`). RBF CKA and retrieval are not
differentiable here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import torch

from torchspectral.distributed.collectives import (
    assemble,
    global_blocks,
    group_rank_world,
    offsets,
    owner_chunks,
    pair_rows,
    rows_at,
    sum_all,
    take,
)
from torchspectral.pairwise.bandwidth import median_subsample
from torchspectral.pairwise.chunked import (
    cka_sums,
    mmd_sums,
    rbf_sum_grads,
    shifted_rbf,
    squared_distances,
    tile_side,
    tiles,
)
from torchspectral.pairwise.retrieval_counts import GROUND_TRUTH_CHUNK, count_ahead  # one tile, as one process

# ----------------------------------------------------------------------------------------------------------
# Retrieval ranks
# ----------------------------------------------------------------------------------------------------------


def normalised(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows in ``dtype`` divided by their norms, as the one-process retrieval forms them (row by row, so a
    block of rows comes out bitwise as the same rows of the whole)."""
    t = t.to(dtype)
    return t / torch.linalg.vector_norm(t, dim=1)[:, None]


@torch.no_grad()
def retrieval_ranks_across(
    x: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor | Sequence[torch.Tensor],
    caption_to_image: torch.Tensor,
    pessimistic: bool,
    image_counts: Sequence[int],
    caption_counts: Sequence[int],
    dtype: torch.dtype,
    d: int,
    group: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global 0-based ranks, image→text (N,) and text→image (M,) int64, on every rank; bitwise those of
    :func:`~torchspectral.pairwise.retrieval_counts.retrieval_ranks_torch` on the concatenated, normalised shards.

    ``x`` (n_r, d) and ``y`` (m_r, d): this rank's images and captions, as tensors or lists of segments (never
    concatenated; rows are normalised in ``dtype`` tile by tile, so no normalised copy is held);
    ``caption_to_image`` (m_r,): the *global* index (in the rank-order concatenation) of each caption's image.
    ``group=None``: one process. Memory beyond the rows: the images of the captions this rank counts
    (m_r·d), a few tiles, and O(N + M) counts.
    """
    rank, _ = group_rank_world(group)
    n_img, n_cap = sum(image_counts), sum(caption_counts)
    side = tile_side(dtype)
    unit = side * GROUND_TRUTH_CHUNK // math.gcd(side, GROUND_TRUTH_CHUNK)  # whole tiles and whole gt chunks
    device = caption_to_image.device
    like_rows = torch.empty(0, d, dtype=dtype, device=device)
    like_ids = torch.empty(0, dtype=torch.int64, device=device)

    # 1. Group the captions into units of whole global tiles: a unit belongs to the rank that holds its first
    #    caption (so each rank counts about its own captions, and a unit inside its shard stays there, read tile
    #    by tile); only a unit that runs past the end of that shard is assembled, by broadcasts.
    off = offsets(caption_counts)
    units = []  # (global start, rows: a (lo, hi) range of this shard or an assembled tensor, their images)
    for start in range(0, n_cap, unit):
        stop = min(start + unit, n_cap)
        owner = bisect.bisect_right(off, start) - 1  # off[owner] ≤ start < off[owner + 1]
        if stop <= off[owner + 1]:
            if owner == rank:
                lo, hi = start - off[rank], stop - off[rank]
                units.append((start, (lo, hi), caption_to_image[lo:hi]))
        else:
            yb, cb = assemble((y, caption_to_image), caption_counts, start, stop, group, (like_rows, like_ids))
            if owner == rank:
                units.append((start, yb, cb))

    def caption_rows(captions, lo: int, hi: int) -> torch.Tensor:
        if isinstance(captions, tuple):
            return normalised(take(y, captions[0] + lo, captions[0] + hi), dtype)
        return normalised(captions[lo:hi], dtype)

    # 2. The image of every counted caption (as the images pass by), then the ground-truth scores as one process
    #    forms them: the diagonal of x̂[c(J)] ŷ_Jᵀ over the same chunks J.
    their_images = [like_rows.new_empty((cb.shape[0], d)) for _, _, cb in units]
    for start, stop, (xb,) in global_blocks((x,), image_counts, side, group, (like_rows,)):
        xb = normalised(xb, dtype)
        for (_, _, cb), xc in zip(units, their_images, strict=True):
            here = (cb >= start) & (cb < stop)
            xc[here] = xb[cb[here] - start]
    gts = []
    for (_, captions, cb), xc in zip(units, their_images, strict=True):
        gt = torch.empty(cb.shape[0], dtype=dtype, device=device)
        for lo in range(0, cb.shape[0], GROUND_TRUTH_CHUNK):
            hi = min(lo + GROUND_TRUTH_CHUNK, cb.shape[0])
            gt[lo:hi] = (xc[lo:hi] @ caption_rows(captions, lo, hi).T).diagonal()
        gts.append(gt)
    del their_images
    best = torch.full((n_img,), -math.inf, dtype=dtype, device=device)
    for (_, _, cb), gt in zip(units, gts, strict=True):
        best.scatter_reduce_(0, cb, gt, reduce="amax")
    sum_all(best, group, "max")

    # 3. Count tile by tile: image tile a against each counted caption tile, exactly the single-process tile.
    i2t = torch.zeros(n_img, dtype=torch.int64, device=device)
    t2i = torch.zeros(n_cap, dtype=torch.int64, device=device)
    for start, stop, (xb,) in global_blocks((x,), image_counts, side, group, (like_rows,)):
        xb = normalised(xb, dtype)
        for (u_start, captions, cb), gt in zip(units, gts, strict=True):
            for lo in range(0, cb.shape[0], side):
                hi = min(lo + side, cb.shape[0])
                ((rows_count, cols_count),) = count_ahead(
                    xb,
                    caption_rows(captions, lo, hi),
                    cb[lo:hi] - start,
                    gt[lo:hi],
                    best[start:stop],
                    (pessimistic,),
                    side,
                )
                i2t[start:stop] += rows_count
                t2i[u_start + lo : u_start + hi] += cols_count
    return sum_all(i2t, group), sum_all(t2i, group)


# ----------------------------------------------------------------------------------------------------------
# Kernel sums
# ----------------------------------------------------------------------------------------------------------


def _cross_rbf_sum(a: torch.Tensor, b: torch.Tensor, coefs: Sequence[float], shift: float, side: int) -> torch.Tensor:
    """Σ_ij (k(a_i, b_j) − shift) over all pairs of two disjoint row sets, float64."""
    a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for rows, cols, _ in tiles(a.shape[0], b.shape[0], side):
        d2 = squared_distances(a[rows], a_sq[rows], b[cols], b_sq[cols], False)
        total += shifted_rbf(d2, coefs, shift, False).sum().double()
    return total


@torch.no_grad()
def mmd_sums_across(
    x0: torch.Tensor,
    y0: torch.Tensor,
    coefs: Sequence[float],
    shift: float,
    x_counts: Sequence[int],
    y_counts: Sequence[int],
    group: Any,
) -> torch.Tensor:
    """Global ``[S_xx, S_yy, S_xy]`` (float64, on every rank) of ``k − shift`` over the off-diagonal pairs, as
    :func:`~torchspectral.pairwise.chunked.mmd_sums` on the concatenated (already shifted) shards."""
    rank, world = group_rank_world(group)
    side = tile_side(x0.dtype)
    sums = mmd_sums(x0, y0, coefs, shift, side)  # every pair within this rank's rows, and its x against its y
    for slot, sample, counts in ((0, x0, x_counts), (1, y0, y_counts)):
        for owner, k, (chunk,) in owner_chunks((sample,), counts, side, group):
            for rows in pair_rows(rank, owner, k, world, sample.shape[0], side):
                sums[slot] += 2.0 * _cross_rbf_sum(sample[rows], chunk, coefs, shift, side)  # and the mirrors
            if slot == 1:  # every x row meets every y row once: this rank's x against all other y
                sums[2] += _cross_rbf_sum(x0, chunk, coefs, shift, side)
    return sum_all(sums, group)


@torch.no_grad()
def mmd_sum_grads_across(
    x0: torch.Tensor,
    y0: torch.Tensor,
    coefs: Sequence[float],
    x_counts: Sequence[int],
    y_counts: Sequence[int],
    group: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of the global sums with respect to this rank's rows: ``∂S_xx/∂x_r``, ``∂S_xy/∂x_r``,
    ``∂S_yy/∂y_r``, ``∂S_xy/∂y_r`` (each of this rank's rows against every row of every rank, chunk by chunk).

    Within a sample both orders of a pair hold the row, so a chunk of another rank counts twice
    (:func:`~torchspectral.pairwise.chunked.rbf_sum_grads` of the rank's own rows already includes the factor).
    """
    side = tile_side(x0.dtype)
    g_xx = rbf_sum_grads(x0, None, coefs, side)[0]
    g_yy = rbf_sum_grads(y0, None, coefs, side)[0]
    g_xy_x, g_xy_y = rbf_sum_grads(x0, y0, coefs, side)
    for _, _, (chunk,) in owner_chunks((x0,), x_counts, side, group):
        g_xx += 2.0 * rbf_sum_grads(x0, chunk, coefs, side)[0]
        g_xy_y += rbf_sum_grads(y0, chunk, coefs, side)[0]  # the kernel is symmetric: ∂k(x_i, y_j)/∂y_j
    for _, _, (chunk,) in owner_chunks((y0,), y_counts, side, group):
        g_yy += 2.0 * rbf_sum_grads(y0, chunk, coefs, side)[0]
        g_xy_x += rbf_sum_grads(x0, chunk, coefs, side)[0]
    return g_xx, g_xy_x, g_yy, g_xy_y


@torch.no_grad()
def cka_sums_across(
    x0: torch.Tensor,
    y0: torch.Tensor,
    cx: float,
    cy: float,
    ax: float,
    ay: float,
    counts: Sequence[int],
    group: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global ``([Σ K'∘L', Σ K'∘K', Σ L'∘L'], K'1, L'1)`` (float64, (3,), (n,), (n,) on every rank), as
    :func:`~torchspectral.pairwise.chunked.cka_sums` on the concatenated (already shifted) paired shards."""
    rank, world = group_rank_world(group)
    side = tile_side(x0.dtype)
    n = sum(counts)
    off = offsets(counts)
    mine = slice(off[rank], off[rank + 1])
    local_sums, local_k, local_l = cka_sums(x0, y0, cx, cy, ax, ay, side)
    sums = local_sums
    row_k = torch.zeros(n, dtype=torch.float64, device=x0.device)
    row_l = torch.zeros(n, dtype=torch.float64, device=x0.device)
    row_k[mine] += local_k
    row_l[mine] += local_l
    x_sq, y_sq = (x0 * x0).sum(1), (y0 * y0).sum(1)
    for owner, k, (cxb, cyb) in owner_chunks((x0, y0), counts, side, group):
        first = off[owner] + k * side
        cx_sq, cy_sq = (cxb * cxb).sum(1), (cyb * cyb).sum(1)
        for part in pair_rows(rank, owner, k, world, x0.shape[0], side):
            for rows, cols, _ in tiles(part.stop - part.start, cxb.shape[0], side):
                rows = slice(part.start + rows.start, part.start + rows.stop)
                d2 = squared_distances(x0[rows], x_sq[rows], cxb[cols], cx_sq[cols], False)
                kk = shifted_rbf(d2, (cx,), ax, False)
                d2 = squared_distances(y0[rows], y_sq[rows], cyb[cols], cy_sq[cols], False)
                ll = shifted_rbf(d2, (cy,), ay, False)
                # The block also stands for its mirror image (the chunk's rows against ours): weight 2 in the
                # sums, and its column sums are the chunk rows' row sums.
                sums[0] += 2.0 * (kk * ll).sum().double()
                sums[1] += 2.0 * (kk * kk).sum().double()
                sums[2] += 2.0 * (ll * ll).sum().double()
                row_k[off[rank] + rows.start : off[rank] + rows.stop] += kk.sum(1).double()
                row_l[off[rank] + rows.start : off[rank] + rows.stop] += ll.sum(1).double()
                row_k[first + cols.start : first + cols.stop] += kk.sum(0).double()
                row_l[first + cols.start : first + cols.stop] += ll.sum(0).double()
    return sum_all(sums, group), sum_all(row_k, group), sum_all(row_l, group)


def pooled_rows_at(
    x: torch.Tensor, y: torch.Tensor, x_counts: Sequence[int], y_counts: Sequence[int], size: int, dtype, group
) -> torch.Tensor:
    """The global :func:`~torchspectral.pairwise.pooled_subsample` of [X; Y] (the same rows whatever the sharding)."""
    positions = median_subsample(sum(x_counts) + sum(y_counts), x.device, size)
    return rows_at(((x, x_counts), (y, y_counts)), positions, dtype, group)


def sample_rows_at(z: torch.Tensor, counts: Sequence[int], size: int, dtype, group) -> torch.Tensor:
    """The rows of the concatenated shards at :func:`~torchspectral.pairwise.median_subsample` positions."""
    return rows_at(((z, counts),), median_subsample(sum(counts), z.device, size), dtype, group)
