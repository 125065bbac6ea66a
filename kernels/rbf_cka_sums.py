"""RBF kernel sums for CKA in one tiled pass over the n×n pairs: ``Σ K'∘L'``, ``Σ K'∘K'``, ``Σ L'∘L'``, K'1, L'1.

``K'_ij = exp(−c_x‖x_i − x_j‖²) − a_x`` for i ≠ j and 0 on the diagonal, ``L'`` likewise on y with ``a_y``
(constants chosen by the caller: the HSIC estimators do not depend on them, and the shifted values are
small, so their fp32 sums do not cancel; near K ≈ 1 the value is formed with expm1). K' and L' are formed
for the same tile of pairs (one ``tl.dot`` per chunk of d_x and of d_y, fp32 accumulation, rounding below
0 cut at 0). Program I owns row block I and walks every column block, so its row sums of K' and L' are
complete when it stores them (no atomics, deterministic); each program writes its three partial scalar
sums and the launcher adds them in float64. Every HSIC estimator (biased, unbiased) is a function of these
sums (see :mod:`torchspectral.functional.cka`). Nothing of size n×n exists.

:func:`rbf_cka_sums_triton` is the launcher. The autograd Function that runs it as the forward of the chunked
torch path's backward (tiles recomputed) is :class:`torchspectral.pairwise.chunked.FusedRBFCKASums`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from torchspectral.kernels import tiles
from torchspectral.kernels.operands import default_precision, expm1_form, round_operand
from torchspectral.kernels.tiles import dot_tile, rbf_term, squared_distances  # jit functions, called by name
from torchspectral.kernels.tuning import BLOCK_K, autotune_options, bucket, pairwise_configs, prune_pairwise


@triton.jit
def _rbf_tile(dots, row_sq, col_sq, rows, cols, valid, coef, offset, USE_EXPM1: tl.constexpr):
    kern = rbf_term(squared_distances(dots, row_sq, col_sq), coef, USE_EXPM1) + offset
    return tl.where(valid & (rows[:, None] != cols[None, :]), kern, 0.0)


@triton.autotune(
    configs=pairwise_configs(),
    key=["n_bucket", "d_bucket", "PRECISION"],
    # The number of partial-sum slots depends on the tile: reset them, or slots written while benchmarking a
    # smaller tile would be added to the final run's sums (the row sums are rewritten whole by every run).
    reset_to_zero=["part_ptr"],
    prune_configs_by={"early_config_prune": prune_pairwise(dot_tiles=2)},
    **autotune_options(),
)
@triton.jit
def _rbf_cka_sums_kernel(
    x_ptr,
    y_ptr,
    x_sq_ptr,
    y_sq_ptr,
    part_ptr,
    row_k_ptr,
    row_l_ptr,
    n,
    DX,
    DY,
    stride_x,
    stride_y,
    coef_x,
    coef_y,
    offset_x,
    offset_y,
    n_bucket,
    d_bucket,
    EXPM1_X: tl.constexpr,
    EXPM1_Y: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # int64 before any pointer arithmetic
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < n
    row_xsq = tl.load(x_sq_ptr + rows, mask=row_ok, other=0.0)
    row_ysq = tl.load(y_sq_ptr + rows, mask=row_ok, other=0.0)
    acc_kl = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_kk = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_ll = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_rk = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_rl = tl.zeros((BLOCK,), dtype=tl.float32)
    for jb in range(0, tl.cdiv(n, BLOCK)):
        # The loop index is 32-bit (it starts at a literal 0): widen it before it meets a stride.
        cols = tl.cast(jb, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        col_ok = cols < n
        valid = row_ok[:, None] & col_ok[None, :]
        dx = dot_tile(x_ptr, rows, row_ok, stride_x, x_ptr, cols, col_ok, stride_x, DX, BLOCK, BLOCK_K, PRECISION)
        col_xsq = tl.load(x_sq_ptr + cols, mask=col_ok, other=0.0)
        k = _rbf_tile(dx, row_xsq, col_xsq, rows, cols, valid, coef_x, offset_x, EXPM1_X)
        dy = dot_tile(y_ptr, rows, row_ok, stride_y, y_ptr, cols, col_ok, stride_y, DY, BLOCK, BLOCK_K, PRECISION)
        col_ysq = tl.load(y_sq_ptr + cols, mask=col_ok, other=0.0)
        ell = _rbf_tile(dy, row_ysq, col_ysq, rows, cols, valid, coef_y, offset_y, EXPM1_Y)
        acc_kl += tl.sum(k * ell, axis=1)
        acc_kk += tl.sum(k * k, axis=1)
        acc_ll += tl.sum(ell * ell, axis=1)
        acc_rk += tl.sum(k, axis=1)
        acc_rl += tl.sum(ell, axis=1)
    tl.store(row_k_ptr + rows, acc_rk, mask=row_ok)
    tl.store(row_l_ptr + rows, acc_rl, mask=row_ok)
    tl.store(part_ptr + pid * 3 + 0, tl.sum(acc_kl))
    tl.store(part_ptr + pid * 3 + 1, tl.sum(acc_kk))
    tl.store(part_ptr + pid * 3 + 2, tl.sum(acc_ll))


MIN_BLOCK = 16  # the partial-sum buffer is sized for the smallest tile any config may use


def rbf_cka_sums_triton(
    x: torch.Tensor,
    y: torch.Tensor,
    coef_x: float,
    coef_y: float,
    shift_x: float,
    shift_y: float,
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``([Σ K'∘L', Σ K'∘K', Σ L'∘L'], K'1, L'1)`` (float64); K' = K − shift_x off the diagonal, 0 on it,
    ``K = exp(−c_x‖x_i − x_j‖²)``, ``c_x = 1/(2σ_x²)``; L' likewise. ``precision``: of the dot products
    (None: "tf32x3" on CUDA, "ieee" interpreted).

    Shape: x (n, d_x), y (n, d_y) float32 on one device → (3,), (n,), (n,) float64.
    """
    tiles.check_float32_pair("rbf_cka_sums", x, y, "(n, d_x) and (n, d_y)", shared_axis=0)
    precision = tiles.check_precision("rbf_cka_sums", default_precision(x) if precision is None else precision)
    # Rounded here for "tf32"/"bf16" (a copy): the norms are then those of the rows the tensor cores multiply.
    x, y = round_operand(x.contiguous(), precision), round_operand(y.contiguous(), precision)
    n = x.shape[0]
    part = torch.zeros(triton.cdiv(n, MIN_BLOCK), 3, dtype=torch.float32, device=x.device)
    row_k = torch.empty(n, dtype=torch.float32, device=x.device)
    row_l = torch.empty(n, dtype=torch.float32, device=x.device)

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK"]),)

    # The same choice of form (expm1 near K ≈ 1) as the torch path.
    (expm1_x, offset_x), (expm1_y, offset_y) = expm1_form(shift_x, 1), expm1_form(shift_y, 1)
    with tiles.on_device(x):
        _rbf_cka_sums_kernel[grid](
            x, y, (x * x).sum(1), (y * y).sum(1), part, row_k, row_l, n, x.shape[1], y.shape[1],
            x.stride(0), y.stride(0), float(coef_x), float(coef_y), float(offset_x), float(offset_y),
            bucket(n), bucket(max(x.shape[1], y.shape[1])), EXPM1_X=expm1_x, EXPM1_Y=expm1_y,
            PRECISION=precision, BLOCK_K=BLOCK_K,
        )  # fmt: skip
    return part.sum(0, dtype=torch.float64), row_k.double(), row_l.double()
