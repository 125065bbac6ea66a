"""Helpers shared by the pairwise kernels: the dot-product tile, squared distances, RBF terms, expm1, and the
launchers' input check.

Every kernel that compares rows builds its score tile with :func:`dot_tile`, so all of them sum the same
chunks of d in the same order (``BLOCK_K`` is fixed, see :mod:`torchspectral.kernels.tuning`): a score
equal in exact arithmetic is equal across kernels too (the retrieval kernels rely on it for ties).

The RBF kernels sum ``k − a`` for a constant ``a`` (the typical kernel value, see
:func:`torchspectral.kernels.operands.expm1_form`); near k ≈ 1 the term is formed with :func:`expm1`.

This is device code and the launchers' checks; what the launchers do to their operands on the host (precision
names, default, rounding) is :mod:`torchspectral.kernels.operands`, which imports no Triton.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from torchspectral.kernels import interpreting
from torchspectral.kernels.operands import PRECISIONS  # the accuracy of each: torchspectral.pairwise.precision

# Triton's interpreter multiplies bfloat16 tiles as their uint16 bit patterns (Triton 3.9: create_dot handles fp8
# only) and truncates fp32 → bf16 casts; interpreted, "bf16" dots therefore run in fp32 on operands rounded by
# the bit arithmetic of :func:`round_bf16` (products of bf16 values are exact in fp32, so only the order of the
# fp32 accumulation differs from the tensor cores).
INTERPRETED = tl.constexpr(interpreting())


def check_float32_pair(op: str, x: torch.Tensor, y: torch.Tensor, shapes: str, shared_axis: int) -> None:
    """The launchers' contract: x, y 2-D with equal ``shape[shared_axis]`` (``shapes`` says so), float32, one device."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[shared_axis] != y.shape[shared_axis]:
        raise ValueError(f"{op}: x and y must be {shapes}, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.dtype != torch.float32 or y.dtype != torch.float32:
        raise TypeError(f"{op}: the kernel takes float32, got {x.dtype} and {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"{op}: x is on {x.device} but y is on {y.device}")


def check_precision(op: str, precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"{op}: precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def on_device(t: torch.Tensor):
    """The device guard of a launch: Triton launches on the *current* CUDA device, so a tensor on another GPU
    would be read through the wrong context (an illegal address, or silently wrong data)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


@triton.jit
def dot_tile(
    a_ptr, a_rows, a_ok, stride_a, b_ptr, b_rows, b_ok, stride_b, D,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """``A[a_rows] B[b_rows]ᵀ`` (BLOCK × BLOCK, fp32) over chunks of BLOCK_K features of row-major A and B.

    Row and feature indices are taken to int64 before the pointer arithmetic (rows·stride may exceed 2³¹; a
    32-bit product would wrap silently). ``PRECISION`` is "ieee" (exact fp32 products on the FMA units),
    "tf32x3" (three TF32 tensor-core products, ≈ fp32), "tf32" (one TF32 product) or "bf16" (bfloat16
    tensor-core products); accumulation is fp32 in every case. For "tf32" and "bf16" the launchers pass
    operands already rounded (:func:`torchspectral.kernels.operands.round_operand`, the rounding the torch
    path applies and the row norms are taken of), so the tensor cores read them exactly: the hardware would
    otherwise truncate fp32 to TF32, and the norms would not be those of the rows multiplied. Padding rows
    are masked on load (as 0, which adds nothing to the dots).
    """
    a_rows = a_rows.to(tl.int64)
    b_rows = b_rows.to(tl.int64)
    ks = tl.arange(0, BLOCK_K).to(tl.int64)
    dots = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        k_ok = (k0 + ks) < D
        a_mask, b_mask = a_ok[:, None] & k_ok[None, :], b_ok[:, None] & k_ok[None, :]
        # int64 rows × stride: an int64 product whatever the type of the stride argument.
        a = tl.load(a_ptr + a_rows[:, None] * stride_a + (k0 + ks)[None, :], mask=a_mask, other=0.0)
        b = tl.load(b_ptr + b_rows[:, None] * stride_b + (k0 + ks)[None, :], mask=b_mask, other=0.0)
        if PRECISION == "bf16":
            dots = bf16_dot(a, tl.trans(b), dots)
        else:
            dots = tl.dot(a, tl.trans(b), acc=dots, input_precision=PRECISION)
    return dots


@triton.jit
def round_tf32(x):
    """fp32 → TF32 to nearest, ties away from zero (``cvt.rna.tf32.f32``; bit for bit
    :func:`torchspectral.kernels.operands.round_tf32`), for operands formed inside a kernel."""
    bits = x.to(tl.int32, bitcast=True)
    return ((bits + 0x1000) & -0x2000).to(tl.float32, bitcast=True)


@triton.jit
def round_bf16(x):
    """fp32 → the nearest bfloat16 value (ties to even, as torch's cast), kept in fp32: for operands formed
    inside a kernel; the interpreter's own cast truncates."""
    bits = x.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -0x10000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def bf16_dot(a, b, acc):
    """``acc + a b`` for operands holding bfloat16 values: bf16 tensor cores compiled, exact fp32 interpreted."""
    if INTERPRETED:
        out = tl.dot(a, b, acc=acc, input_precision="ieee")
    else:
        out = tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), acc=acc)
    return out


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
