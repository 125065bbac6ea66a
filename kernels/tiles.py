"""Helpers shared by the pairwise kernels: the dot-product tile, squared distances, RBF terms, expm1, and the
launchers' input check.

Every kernel that compares rows builds its score tile with :func:`dot_tile`, so all of them sum the same
chunks of d in the same order (``BLOCK_K`` is fixed, see :mod:`torchspectral.kernels.tuning`): a score
equal in exact arithmetic is equal across kernels too (the retrieval kernels rely on it for ties).

The RBF kernels sum ``k − a`` for a constant ``a`` (the typical kernel value, see
:func:`torchspectral.pairwise.tiles.expm1_form`); near k ≈ 1 the term is formed with :func:`expm1`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def check_float32_pair(op: str, x: torch.Tensor, y: torch.Tensor, shapes: str, shared_axis: int) -> None:
    """The launchers' contract: x, y 2-D with equal ``shape[shared_axis]`` (``shapes`` says so), float32, one device."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[shared_axis] != y.shape[shared_axis]:
        raise ValueError(f"{op}: x and y must be {shapes}, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.dtype != torch.float32 or y.dtype != torch.float32:
        raise TypeError(f"{op}: the kernel takes float32, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"{op}: x is on {x.device} but y is on {y.device}")


@triton.jit
def dot_tile(
    a_ptr, a_rows, a_ok, stride_a, b_ptr, b_rows, b_ok, stride_b, D, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr
):  # fmt: skip
    """``A[a_rows] B[b_rows]ᵀ`` (BLOCK × BLOCK, fp32) over chunks of BLOCK_K features of row-major A and B.

    Row indices are taken to int64 before the pointer arithmetic (rows·stride may exceed 2³¹). Exact fp32
    products (``input_precision="ieee"``, no TF32), fp32 accumulation; padding rows are masked on load.
    """
    a_rows = a_rows.to(tl.int64)
    b_rows = b_rows.to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    dots = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        k_ok = (k0 + ks) < D
        a = tl.load(a_ptr + a_rows[:, None] * stride_a + (k0 + ks)[None, :], mask=a_ok[:, None] & k_ok[None, :])
        b = tl.load(b_ptr + b_rows[:, None] * stride_b + (k0 + ks)[None, :], mask=b_ok[:, None] & k_ok[None, :])
        dots += tl.dot(a, tl.trans(b), input_precision="ieee")
    return dots


@triton.jit
def squared_distances(dots, row_sq, col_sq):
    """``‖a_i‖² + ‖b_j‖² − 2 a_iᵀb_j``, rounding below 0 cut at 0 (a distance is never negative)."""
    return tl.maximum(row_sq[:, None] + col_sq[None, :] - 2.0 * dots, 0.0)


@triton.jit
def rbf_term(d2, coef, USE_EXPM1: tl.constexpr):
    """``exp(−c d²) − 1`` (USE_EXPM1: wide bandwidths, k ≈ 1, where ``k − a`` must not cancel) or ``exp(−c d²)``."""
    if USE_EXPM1:
        term = expm1(-d2 * coef)
    else:
        term = tl.exp(-d2 * coef)
    return term


@triton.jit
def expm1(x):
    """``expm1(x) = eˣ − 1`` for x ≤ 0 in fp32, accurate near 0.

    ``exp(x) − 1`` loses the relative precision of small |x|, so below |x| = 0.5 a degree-9 Taylor
    polynomial is used (truncation < 0.5⁹/9! ≈ 5e-9 relative); above it ``exp(x) − 1`` is already accurate
    to fp32 rounding.
    """
    poly = 1.0 + x / 9.0
    poly = 1.0 + x / 8.0 * poly
    poly = 1.0 + x / 7.0 * poly
    poly = 1.0 + x / 6.0 * poly
    poly = 1.0 + x / 5.0 * poly
    poly = 1.0 + x / 4.0 * poly
    poly = 1.0 + x / 3.0 * poly
    poly = 1.0 + x / 2.0 * poly
    return tl.where(tl.abs(x) < 0.5, x * poly, tl.exp(x) - 1.0)
