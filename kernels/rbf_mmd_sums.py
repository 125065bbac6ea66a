"""RBF kernel sums for MMD in one tiled pass: ``Σ_{i≠j} k'(x_i,x_j)``, ``Σ_{i≠j} k'(y_i,y_j)``, ``Σ_ij k'(x_i,y_j)``.

``k' = k − a`` with ``k = Σ_σ exp(−c_σ‖u−v‖²)``, ``c_σ = 1/(2σ²)``, and ``a`` a constant (the typical kernel
value, chosen by the caller): MMD does not depend on it, and the shifted values are small, so their
fp32 sums do not cancel. Near k ≈ len(σ) the shifted value is formed as ``Σ expm1(·) + (len(σ) − a)``
(:mod:`torchspectral.kernels.expm1`), elsewhere as ``Σ exp(·) − a``. The two samples are stacked into
Z = [X; Y] (N = n + m rows) and k' is evaluated tile by tile over the upper triangle of the N×N block grid:
program I takes row block I of Z and walks the column blocks J ≥ I, forming ``‖z_i‖² + ‖z_j‖² − 2 z_iᵀz_j``
with one ``tl.dot`` per chunk of d (fp32 accumulation) and cutting rounding below 0 at 0; the diagonal
(i = j) is left out. An off-diagonal block counts twice (it stands for its mirror image). Each entry goes
to the xx, yy or mixed total by whether its row and column fall in X; the mixed total counts every x–y
pair twice. Each program writes its three partial sums; the launcher adds them in float64. Nothing of
size N×N exists.

Gradients are not computed here: :mod:`torchspectral.pairwise` differentiates through its chunked torch
backward, which recomputes the tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torchspectral.kernels.expm1 import expm1
from torchspectral.kernels.tuning import BLOCK_K, bucket, configs


@triton.autotune(configs=configs(triton), key=["n_bucket", "d_bucket", "NUM_SIGMA"])
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
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)  # int64 before any pointer arithmetic: N·d may exceed 2³¹
    rows = pid * BLOCK + tl.arange(0, BLOCK)
    row_ok = rows < N
    row_x = rows < n_x
    row_sq = tl.load(z_sq_ptr + rows, mask=row_ok, other=0.0)
    ks = tl.arange(0, BLOCK_K)
    acc_xx = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_yy = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_mixed = tl.zeros((BLOCK,), dtype=tl.float32)
    num_blocks = tl.cdiv(N, BLOCK)
    for jb in range(pid, num_blocks):
        cols = jb * BLOCK + tl.arange(0, BLOCK)
        col_ok = cols < N
        dots = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            k_ok = (k0 + ks) < D
            a = tl.load(z_ptr + rows[:, None] * stride_z + (k0 + ks)[None, :], mask=row_ok[:, None] & k_ok[None, :])
            b = tl.load(z_ptr + cols[:, None] * stride_z + (k0 + ks)[None, :], mask=col_ok[:, None] & k_ok[None, :])
            dots += tl.dot(a, tl.trans(b), input_precision="ieee")
        col_sq = tl.load(z_sq_ptr + cols, mask=col_ok, other=0.0)
        d2 = tl.maximum(row_sq[:, None] + col_sq[None, :] - 2.0 * dots, 0.0)
        kern = tl.zeros((BLOCK, BLOCK), dtype=tl.float32) + offset
        for s in tl.static_range(NUM_SIGMA):
            if USE_EXPM1:
                kern += expm1(-d2 * tl.load(coef_ptr + s))
            else:
                kern += tl.exp(-d2 * tl.load(coef_ptr + s))
        off_diagonal = rows[:, None] != cols[None, :]
        kern = tl.where(row_ok[:, None] & col_ok[None, :] & off_diagonal, kern, 0.0)
        weight = tl.where(jb == pid, 1.0, 2.0)
        col_x = cols < n_x
        both_x = row_x[:, None] & col_x[None, :]
        both_y = (~row_x)[:, None] & (~col_x)[None, :]
        acc_xx += weight * tl.sum(tl.where(both_x, kern, 0.0), axis=1)
        acc_yy += weight * tl.sum(tl.where(both_y, kern, 0.0), axis=1)
        acc_mixed += weight * tl.sum(tl.where(both_x | both_y, 0.0, kern), axis=1)
    tl.store(out_ptr + pid * 3 + 0, tl.sum(acc_xx))
    tl.store(out_ptr + pid * 3 + 1, tl.sum(acc_yy))
    tl.store(out_ptr + pid * 3 + 2, tl.sum(acc_mixed))


MIN_BLOCK = 16  # the partial-sum buffer is sized for the smallest tile any config may use


def rbf_mmd_sums_triton(x: torch.Tensor, y: torch.Tensor, coefs: Sequence[float], shift: float) -> torch.Tensor:
    """``[S_xx, S_yy, S_xy]`` (float64): sums of ``k − shift`` over the pairs i ≠ j of x, of y, and all (x_i, y_j);
    ``k = Σ_σ exp(−c_σ‖u−v‖²)``.

    Shape: x (n, d), y (m, d) float32 on one device → (3,) float64.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"rbf_mmd_sums: x and y must be (n, d) and (m, d), got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.dtype != torch.float32 or y.dtype != torch.float32:
        raise TypeError(f"rbf_mmd_sums: the kernel takes float32, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"rbf_mmd_sums: x is on {x.device} but y is on {y.device}")
    z = torch.cat([x, y]).contiguous()
    n_total, d = z.shape
    z_sq = (z * z).sum(1)
    coef = torch.tensor(list(coefs), dtype=torch.float32, device=z.device)
    out = torch.zeros(triton.cdiv(n_total, MIN_BLOCK), 3, dtype=torch.float32, device=z.device)

    def grid(meta):
        return (triton.cdiv(n_total, meta["BLOCK"]),)

    use_expm1 = shift >= len(coefs) / 2  # the same choice as the torch path
    offset = (len(coefs) - shift) if use_expm1 else -shift
    _rbf_mmd_sums_kernel[grid](
        z, z_sq, coef, out, n_total, x.shape[0], d, z.stride(0), float(offset), bucket(n_total), bucket(d),
        NUM_SIGMA=len(coefs), USE_EXPM1=use_expm1, BLOCK_K=BLOCK_K,
    )  # fmt: skip
    totals = out.sum(0, dtype=torch.float64)
    return torch.stack([totals[0], totals[1], totals[2] / 2.0])
