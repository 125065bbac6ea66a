"""Retrieval ranks by counting on the chunked torch path: no sort, no top-k, no N×M similarity matrix.

On L2-normalised images X̂ (N×d) and captions Ŷ (M×d) with ``c(j)`` the image of caption j: image i's rank
counts the captions of other images whose score beats its best caption's score; caption j's rank counts
the other images whose score beats its image's. "Beats" is ``>`` (optimistic ties) or ``≥`` (pessimistic).
The fused kernels (:mod:`torchspectral.kernels.retrieval_ranks`, run by :func:`retrieval_ranks_fused`) give the
same counts. These are the ranks of retrieval results; the ranks of processes (torch.distributed) are in
:mod:`torchspectral.distributed`.
"""

from __future__ import annotations

import math

import torch

from torchspectral.pairwise.chunked import tile_side, tiles
from torchspectral.pairwise.precision import exact_matmuls, round_operand

# Captions per ground-truth block: its x̂[c(J)] ŷ_Jᵀ product costs |J|/N of the score GEMM.
GROUND_TRUTH_CHUNK = 256


def ground_truth_scores(x_hat: torch.Tensor, y_hat: torch.Tensor, caption_to_image: torch.Tensor, side: int):
    """Cosine of every caption with its own image, ``S[c(j), j]``, computed with the same tile GEMM as the
    rank counting (a square ``x̂[c(J)] ŷ_Jᵀ`` block per caption chunk, its diagonal), so that a tie between a
    ground truth and a duplicated row is a tie in both places."""
    out = torch.empty(y_hat.shape[0], dtype=x_hat.dtype, device=x_hat.device)
    for start in range(0, y_hat.shape[0], side):
        cols = slice(start, min(start + side, y_hat.shape[0]))
        out[cols] = (x_hat[caption_to_image[cols]] @ y_hat[cols].T).diagonal()
    return out


def count_ahead(x_hat, y_hat, caption_to_image, gt, best, rules, side):
    """Ranks under each rule of ``rules`` (False: optimistic ``>``, True: pessimistic ``≥``), one GEMM per tile."""
    n_img, n_cap = x_hat.shape[0], y_hat.shape[0]
    counts = [
        (
            torch.zeros(n_img, dtype=torch.int64, device=x_hat.device),
            torch.zeros(n_cap, dtype=torch.int64, device=x_hat.device),
        )
        for _ in rules
    ]
    for rows, cols, _ in tiles(n_img, n_cap, side):
        s = x_hat[rows] @ y_hat[cols].T
        images = caption_to_image[cols]
        j = torch.nonzero((images >= rows.start) & (images < rows.stop)).squeeze(1)
        values = s[images[j] - rows.start, j]
        for pessimistic, (i2t, t2i) in zip(rules, counts, strict=True):
            ahead = torch.ge if pessimistic else torch.gt
            # Counting through a uint8 view of the comparison is ~1.5× faster than summing the bool tensor.
            i2t[rows] += ahead(s, best[rows, None]).view(torch.uint8).sum(1, dtype=torch.int32)
            t2i[cols] += ahead(s, gt[None, cols]).view(torch.uint8).sum(0, dtype=torch.int32)
            # A ground-truth pair is never "ahead" of its own query (nor another caption of the same image):
            # take back what the tile's ground-truth entries added, judged on the tile's own values. There are
            # at most |cols| of them, so this costs O(|cols|), not another pass over the tile.
            t2i[cols.start + j] -= ahead(values, gt[cols.start + j]).long()
            i2t.index_add_(0, images[j], -ahead(values, best[images[j]]).long())
    return counts


@torch.no_grad()
def retrieval_ranks_torch(
    x_hat: torch.Tensor,
    y_hat: torch.Tensor,
    caption_to_image: torch.Tensor,
    pessimistic: bool,
    precision: str = "ieee",
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based image→text (N,) and text→image (M,) ranks (int64) of the ground truths, tile by tile.

    ``precision``: the scores' (:mod:`torchspectral.pairwise.precision`): rows rounded as the kernels' tensor
    cores read them, GEMMs with TF32 off.
    """
    return _ranks(x_hat, y_hat, caption_to_image, (pessimistic,), precision)[0]


@torch.no_grad()
def retrieval_ranks_both_torch(
    x_hat: torch.Tensor, y_hat: torch.Tensor, caption_to_image: torch.Tensor, precision: str = "ieee"
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The ranks under both tie rules, ((i2t, t2i) optimistic, (i2t, t2i) pessimistic), from one pass over
    the score tiles: the GEMM, which dominates, is shared; only the comparisons are made twice."""
    optimistic, pessimistic = _ranks(x_hat, y_hat, caption_to_image, (False, True), precision)
    return optimistic, pessimistic


def _ranks(x_hat, y_hat, caption_to_image, rules, precision):
    side = tile_side(x_hat.dtype)
    x_hat, y_hat = round_operand(x_hat, precision), round_operand(y_hat, precision)
    with exact_matmuls():
        gt = ground_truth_scores(x_hat, y_hat, caption_to_image, GROUND_TRUTH_CHUNK)
        best = torch.full((x_hat.shape[0],), -math.inf, dtype=gt.dtype, device=gt.device)
        best.scatter_reduce_(0, caption_to_image, gt, reduce="amax")
        return count_ahead(x_hat, y_hat, caption_to_image, gt, best, rules, side)


def retrieval_ranks_fused(
    x_hat: torch.Tensor,
    y_hat: torch.Tensor,
    caption_to_image: torch.Tensor,
    pessimistic: bool,
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`retrieval_ranks_torch` by the fused kernels
    (:func:`torchspectral.kernels.retrieval_ranks.retrieval_ranks_triton`, imported when first run: Triton stays
    optional)."""
    from torchspectral.kernels.retrieval_ranks import retrieval_ranks_triton

    return retrieval_ranks_triton(x_hat, y_hat, caption_to_image, pessimistic, precision)
