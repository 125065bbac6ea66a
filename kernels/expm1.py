"""``expm1(x) = eˣ − 1`` for x ≤ 0 in fp32, accurate near 0 (device helper of the RBF kernels).

The RBF kernels sum ``k − 1 = expm1(−c‖u − v‖²)`` instead of ``k``: every MMD and HSIC estimator is
unchanged by a constant added to the kernel, and the shifted values carry their full precision when
k ≈ 1 (wide bandwidths), where sums of k would cancel catastrophically. ``exp(x) − 1`` loses the
relative precision of small |x|, so below |x| = 0.5 a degree-9 Taylor polynomial is used (truncation
< 0.5⁹/9! ≈ 5e-9 relative); above it ``exp(x) − 1`` is already accurate to fp32 rounding.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def expm1(x):
    poly = 1.0 + x / 9.0
    poly = 1.0 + x / 8.0 * poly
    poly = 1.0 + x / 7.0 * poly
    poly = 1.0 + x / 6.0 * poly
    poly = 1.0 + x / 5.0 * poly
    poly = 1.0 + x / 4.0 * poly
    poly = 1.0 + x / 3.0 * poly
    poly = 1.0 + x / 2.0 * poly
    return tl.where(tl.abs(x) < 0.5, x * poly, tl.exp(x) - 1.0)


__all__ = ["expm1", "triton"]
