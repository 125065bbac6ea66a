"""Retrieval ranks by counting, tile by tile: no sort, no top-k, no N×M similarity matrix.

On L2-normalised images X̂ (N×d) and captions Ŷ (M×d) with ``c(j)`` the image of caption j:

* ``_ground_truth_kernel``: ``g_j = x̂_{c(j)}ᵀ ŷ_j`` for every caption, as the diagonal of a square
  ``x̂_{c(J)} ŷ_Jᵀ`` tile built with the same ``tl.dot`` over the same chunks of d as the counting kernel
  (one :func:`~torchspectral.kernels.tiles.dot_tile`; ``BLOCK_K`` is fixed, not tuned), so a score equal in
  exact arithmetic is equal here too and ties between a ground truth and a duplicated row are seen as ties.
* ``_rank_count_kernel``: a 2-D grid, program (I, S) owns image block I and walks the S-th of
  ``num_programs(1)`` equal runs of caption blocks J, forming the score tile ``S = x̂_I ŷ_Jᵀ`` (fp32). Image
  i's rank counts captions of other images whose score beats ``b_i = max_{j: c(j)=i} g_j``; caption j's rank
  counts other images whose score beats ``g_j``. "Beats" is ``>`` (optimistic ties) or ``≥`` (pessimistic).
  Both counts are integer ``atomic_add``s (exact and order-free, so the ranks do not depend on the split or
  the schedule). The split fills the GPU when there are few images: 1,000 images are 16 row blocks of 64,
  against 132 SMs on an H100; the launcher asks for about 4 programs per SM.

:func:`retrieval_ranks_triton` is the launcher (ranks carry no gradient: there is no autograd Function); the
chunked torch twin it is tested against is :mod:`torchspectral.pairwise.retrieval_counts`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from torchspectral.kernels import tuning
from torchspectral.kernels.operands import default_precision, round_operand
from torchspectral.kernels.tiles import check_float32_pair, check_precision, dot_tile, on_device
from torchspectral.kernels.tuning import target_programs  # by name: tests patch the grid size per module


@triton.autotune(
    configs=tuning.pairwise_configs(),
    key=["m_bucket", "d_bucket", "PRECISION"],
    prune_configs_by={"early_config_prune": tuning.prune_pairwise(dot_tiles=1)},
    **tuning.autotune_options(),
)
@triton.jit
def _ground_truth_kernel(
    x_ptr, y_ptr, cap_img_ptr, gt_ptr, M, D, stride_x, stride_y, m_bucket, d_bucket,
    PRECISION: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)  # int64 before any pointer arithmetic
    caps = pid * BLOCK + tl.arange(0, BLOCK)
    cap_ok = caps < M
    imgs = tl.load(cap_img_ptr + caps, mask=cap_ok, other=0).to(tl.int64)
    dots = dot_tile(x_ptr, imgs, cap_ok, stride_x, y_ptr, caps, cap_ok, stride_y, D, BLOCK, BLOCK_K, PRECISION)
    eye = tl.arange(0, BLOCK)[:, None] == tl.arange(0, BLOCK)[None, :]
    tl.store(gt_ptr + caps, tl.sum(tl.where(eye, dots, 0.0), axis=1), mask=cap_ok)


@triton.autotune(
    # 8 warps × 3 stages by default: at 4 stages the counting pass spills 16 B in "ieee" on sm_80 (AOT test).
    configs=tuning.pairwise_configs(default=(64, 8, 3)),
    key=["n_bucket", "m_bucket", "d_bucket", "PRECISION"],
    reset_to_zero=["i2t_ptr", "t2i_ptr"],
    prune_configs_by={"early_config_prune": tuning.prune_pairwise(dot_tiles=1)},
    **tuning.autotune_options(),
)
@triton.jit
def _rank_count_kernel(
    x_ptr, y_ptr, cap_img_ptr, gt_ptr, best_ptr, i2t_ptr, t2i_ptr, N, M, D, stride_x, stride_y,
    n_bucket, m_bucket, d_bucket, PESSIMISTIC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)  # int64 before any pointer arithmetic
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < N
    best = tl.load(best_ptr + rows, mask=row_ok, other=0.0)
    count_i2t = tl.zeros((BLOCK,), dtype=tl.int32)
    col_blocks = tl.cdiv(M, BLOCK)
    per_split = tl.cdiv(col_blocks, tl.num_programs(1))
    first = tl.program_id(1).to(tl.int64) * per_split  # int64: the loop index below meets a stride
    for jb in range(first, tl.minimum(first + per_split, col_blocks)):
        cols = jb * BLOCK + tl.arange(0, BLOCK)
        col_ok = cols < M
        s = dot_tile(x_ptr, rows, row_ok, stride_x, y_ptr, cols, col_ok, stride_y, D, BLOCK, BLOCK_K, PRECISION)
        gt = tl.load(gt_ptr + cols, mask=col_ok, other=0.0)
        cap_img = tl.load(cap_img_ptr + cols, mask=col_ok, other=-1).to(tl.int64)
        # A ground-truth pair is never ahead of its own query; padding rows/columns never count.
        counted = row_ok[:, None] & col_ok[None, :] & (rows[:, None] != cap_img[None, :])
        if PESSIMISTIC:
            ahead_i2t = s >= best[:, None]
            ahead_t2i = s >= gt[None, :]
        else:
            ahead_i2t = s > best[:, None]
            ahead_t2i = s > gt[None, :]
        count_i2t += tl.sum((ahead_i2t & counted).to(tl.int32), axis=1)
        tl.atomic_add(t2i_ptr + cols, tl.sum((ahead_t2i & counted).to(tl.int32), axis=0), mask=col_ok)
    tl.atomic_add(i2t_ptr + rows, count_i2t, mask=row_ok)


def retrieval_ranks_triton(
    x_hat: torch.Tensor,
    y_hat: torch.Tensor,
    caption_to_image: torch.Tensor,
    pessimistic: bool,
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based image→text (N,) and text→image (M,) ranks (int64) of the ground truths. ``precision``: of the
    scores (None: "tf32x3" on CUDA, "ieee" interpreted; the ground truths and the counts use the same one, so
    equal scores stay equal).

    Shape: x_hat (N, d), y_hat (M, d) float32, L2-normalised rows; caption_to_image (M,) int64 in [0, N),
    every image with at least one caption → (N,), (M,).
    """
    check_float32_pair("retrieval_ranks", x_hat, y_hat, "(N, d) and (M, d)", shared_axis=1)
    if caption_to_image.shape != (y_hat.shape[0],):
        raise ValueError(f"retrieval_ranks: caption_to_image must have shape ({y_hat.shape[0]},)")
    precision = check_precision("retrieval_ranks", default_precision(x_hat) if precision is None else precision)
    # Rounded once ("tf32"/"bf16"): both kernels then multiply the same operands the torch path does.
    x_hat, y_hat = round_operand(x_hat.contiguous(), precision), round_operand(y_hat.contiguous(), precision)
    cap_img = caption_to_image.to(device=x_hat.device, dtype=torch.int64).contiguous()
    (n_img, d), n_cap = x_hat.shape, y_hat.shape[0]
    gt = torch.empty(n_cap, dtype=torch.float32, device=x_hat.device)
    with on_device(x_hat):
        _ground_truth_kernel[lambda meta: (triton.cdiv(n_cap, meta["BLOCK"]),)](
            x_hat, y_hat, cap_img, gt, n_cap, d, x_hat.stride(0), y_hat.stride(0),
            tuning.bucket(n_cap), tuning.bucket(d), PRECISION=precision, BLOCK_K=tuning.BLOCK_K,
        )  # fmt: skip
        best = torch.full((n_img,), float("-inf"), dtype=torch.float32, device=x_hat.device)
        best.scatter_reduce_(0, cap_img, gt, reduce="amax")
        i2t = torch.zeros(n_img, dtype=torch.int32, device=x_hat.device)
        t2i = torch.zeros(n_cap, dtype=torch.int32, device=x_hat.device)
        target = target_programs(x_hat.device)

        def grid(meta):
            row_blocks, col_blocks = triton.cdiv(n_img, meta["BLOCK"]), triton.cdiv(n_cap, meta["BLOCK"])
            return (row_blocks, max(1, min(col_blocks, triton.cdiv(target, row_blocks))))

        _rank_count_kernel[grid](
            x_hat, y_hat, cap_img, gt, best, i2t, t2i, n_img, n_cap, d, x_hat.stride(0), y_hat.stride(0),
            tuning.bucket(n_img), tuning.bucket(n_cap), tuning.bucket(d),
            PESSIMISTIC=bool(pessimistic), PRECISION=precision, BLOCK_K=tuning.BLOCK_K,
        )  # fmt: skip
    return i2t.long(), t2i.long()
