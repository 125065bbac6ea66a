"""RBF kernel sums for MMD in one tiled pass: ``Σ_{i≠j} k'(x_i,x_j)``, ``Σ_{i≠j} k'(y_i,y_j)``, ``Σ_ij k'(x_i,y_j)``.

``k' = k − a`` with ``k = Σ_σ exp(−c_σ‖u−v‖²)``, ``c_σ = 1/(2σ²)``, and ``a`` a constant (the typical kernel
value, chosen by the caller): MMD does not depend on it, and the shifted values are small, so their
fp32 sums do not cancel. Near k ≈ len(σ) the shifted value is formed as ``Σ expm1(·) + (len(σ) − a)``
(:func:`torchspectral.kernels.operands.expm1_form`), elsewhere as ``Σ exp(·) − a``. The two samples are stacked into
Z = [X; Y] (N = n + m rows) and k' is evaluated tile by tile over the upper triangle of the N×N block grid:
program (I, S) takes row block I of Z and walks the S-th run of ``ceil(#blocks / num_programs(1))`` column
blocks J ≥ I (the split keeps the longest program short when there are few row blocks: at N = 10,000 a
64-row grid has 157 programs, the first with 157 tiles, on 132 SMs; the launcher asks for about 4 programs
per SM), forming ``‖z_i‖² + ‖z_j‖² − 2 z_iᵀz_j``
with one ``tl.dot`` per chunk of d (fp32 accumulation) and cutting rounding below 0 at 0; the diagonal
(i = j) is left out. An off-diagonal block counts twice (it stands for its mirror image). Each entry goes
to the xx, yy or mixed total by whether its row and column fall in X; the mixed total counts every x–y
pair twice. Each program writes its three partial sums to its own slot; the launcher adds them in float64
(a fixed order: the result is deterministic for a given config). Nothing of size N×N exists.

:func:`rbf_mmd_sums_triton` is the launcher. The autograd Function that runs it as the forward of the chunked
torch path's backward is :class:`torchspectral.pairwise.chunked.FusedRBFMMDSums`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from torchspectral.kernels import tuning
from torchspectral.kernels.operands import default_precision, expm1_form, round_operand
from torchspectral.kernels.tiles import (
    check_float32_pair,
    check_precision,
    dot_tile,
    on_device,
    rbf_term,
    squared_distances,
)
from torchspectral.kernels.tuning import target_programs  # by name: tests patch the grid size per module


@triton.autotune(
    configs=tuning.pairwise_configs(),
    key=["n_bucket", "d_bucket", "NUM_SIGMA", "PRECISION"],
    # Each config writes a different number of partial-sum slots: without a reset, slots written while
    # benchmarking a smaller tile would stay in the buffer and be added to the final run's sums.
    reset_to_zero=["out_ptr"],
    prune_configs_by={"early_config_prune": tuning.prune_pairwise(dot_tiles=1)},
    **tuning.autotune_options(),
)
@triton.jit
def _rbf_mmd_sums_kernel(
    z_ptr,
    z_sq_ptr,
    coef_ptr,
    out_ptr,
    N,
    n_x,
    D,
    stride_z,
    offset,
    n_bucket,
    d_bucket,
    NUM_SIGMA: tl.constexpr,
    USE_EXPM1: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # int64 before any pointer arithmetic: N·d may exceed 2³¹
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < N
    row_x = rows < n_x
    row_sq = tl.load(z_sq_ptr + rows, mask=row_ok, other=0.0)
    acc_xx = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_yy = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_mixed = tl.zeros((BLOCK,), dtype=tl.float32)
    num_blocks = tl.cdiv(N, BLOCK)
    per_split = tl.cdiv(num_blocks, tl.num_programs(1))
    first = pid + tl.program_id(1).to(tl.int64) * per_split
    for jb in range(first, tl.minimum(first + per_split, num_blocks)):  # int64 (from pid): cols·stride too
        cols = jb * BLOCK + tl.arange(0, BLOCK)
        col_ok = cols < N
        dots = dot_tile(z_ptr, rows, row_ok, stride_z, z_ptr, cols, col_ok, stride_z, D, BLOCK, BLOCK_K, PRECISION)
        d2 = squared_distances(dots, row_sq, tl.load(z_sq_ptr + cols, mask=col_ok, other=0.0))
        kern = tl.zeros((BLOCK, BLOCK), dtype=tl.float32) + offset
        for s in tl.static_range(NUM_SIGMA):
            kern += rbf_term(d2, tl.load(coef_ptr + s), USE_EXPM1)
        off_diagonal = rows[:, None] != cols[None, :]
        kern = tl.where(row_ok[:, None] & col_ok[None, :] & off_diagonal, kern, 0.0)
        weight = tl.where(jb == pid, 1.0, 2.0)
        col_x = cols < n_x
        both_x = row_x[:, None] & col_x[None, :]
        both_y = (~row_x)[:, None] & (~col_x)[None, :]
        acc_xx += weight * tl.sum(tl.where(both_x, kern, 0.0), axis=1)
        acc_yy += weight * tl.sum(tl.where(both_y, kern, 0.0), axis=1)
        acc_mixed += weight * tl.sum(tl.where(both_x | both_y, 0.0, kern), axis=1)
    slot = (pid * tl.num_programs(1) + tl.program_id(1)) * 3
    tl.store(out_ptr + slot + 0, tl.sum(acc_xx))
    tl.store(out_ptr + slot + 1, tl.sum(acc_yy))
    tl.store(out_ptr + slot + 2, tl.sum(acc_mixed))


MIN_BLOCK = 16  # the partial-sum buffer is sized for the smallest tile any config may use


def rbf_mmd_sums_triton(
    x: torch.Tensor, y: torch.Tensor, coefs: Sequence[float], shift: float, precision: str | None = None
) -> torch.Tensor:
    """``[S_xx, S_yy, S_xy]`` (float64): sums of ``k − shift`` over the pairs i ≠ j of x, of y, and all (x_i, y_j);
    ``k = Σ_σ exp(−c_σ‖u−v‖²)``. ``precision``: the dot products' (:data:`~torchspectral.kernels.tiles.PRECISIONS`;
    None: "tf32x3" on CUDA, "ieee" interpreted).

    Shape: x (n, d), y (m, d) float32 on one device → (3,) float64.
    """
    check_float32_pair("rbf_mmd_sums", x, y, "(n, d) and (m, d)", shared_axis=1)
    precision = check_precision("rbf_mmd_sums", default_precision(x) if precision is None else precision)
    # Rounded once here for "tf32"/"bf16": the norms are then those of the rows the tensor cores multiply.
    z = round_operand(torch.cat([x, y]).contiguous(), precision)
    n_total, d = z.shape
    z_sq = (z * z).sum(1)
    coef = torch.tensor(list(coefs), dtype=torch.float32, device=z.device)
    target = target_programs(z.device)
    # Row blocks × splits ≤ row blocks + target for every BLOCK ≥ MIN_BLOCK (see grid): one slot each.
    out = torch.zeros(triton.cdiv(n_total, MIN_BLOCK) + target, 3, dtype=torch.float32, device=z.device)

    def grid(meta):
        blocks = triton.cdiv(n_total, meta["BLOCK"])
        return (blocks, max(1, min(blocks, triton.cdiv(target, blocks))))

    use_expm1, offset = expm1_form(shift, len(coefs))  # the same choice as the torch path
    with on_device(z):
        _rbf_mmd_sums_kernel[grid](
            z, z_sq, coef, out, n_total, x.shape[0], d, z.stride(0), float(offset),
            tuning.bucket(n_total), tuning.bucket(d),
            NUM_SIGMA=len(coefs), USE_EXPM1=use_expm1, PRECISION=precision, BLOCK_K=tuning.BLOCK_K,
        )  # fmt: skip
    totals = out.sum(0, dtype=torch.float64)
    return torch.stack([totals[0], totals[1], totals[2] / 2.0])
