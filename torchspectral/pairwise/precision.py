"""The precision of the pairwise dot products, one choice for the Triton kernels and the torch path alike.

``precision`` names how the fp32 products ``xᵀy`` inside ``‖x‖² + ‖y‖² − 2xᵀy`` (and the retrieval and
instance-score dots) are formed; accumulation is fp32 in every case:

* ``"ieee"``: exact fp32 products (FMA units). The reference; the only choice for float64 data.
* ``"tf32x3"``: each fp32 operand split as ``a = a_hi + a_lo`` (both TF32) and ``a_hi b_hi + a_hi b_lo + a_lo b_hi``
  on tensor cores: ≈ fp32 accuracy (the dropped ``a_lo b_lo`` is ~2⁻²² relative) at ~1/3 of the TF32 rate.
  The default of the Triton kernels on CUDA for float32.
* ``"tf32"``: operands rounded to TF32 (10 explicit mantissa bits, unit roundoff u = 2⁻¹¹), one tensor-core
  product, exact in fp32.
* ``"bf16"``: operands rounded to bfloat16 (7 mantissa bits, u = 2⁻⁸), products exact in fp32.

The torch path makes the same choice explicitly, not through ``torch.backends.cuda.matmul.allow_tf32``: the
operands are rounded (:func:`round_operand`, the launchers' own, from :mod:`torchspectral.kernels.operands`)
and the matmuls run with TF32 off (:func:`exact_matmuls`), on every device and in the backward too. "tf32x3"
runs as "ieee" there (it approximates exact fp32). On CUDA the kernels round TF32 operands in hardware
(``cvt.rna.tf32.f32``: to nearest, ties away from zero), which :func:`round_tf32` reproduces bit for bit; under
``TRITON_INTERPRET=1`` Triton's interpreter ignores ``input_precision`` (``np.matmul`` in fp32), so "tf32" and
"tf32x3" run as "ieee" there; "bf16" rounds its operands in the interpreter too (an explicit cast in the kernel).

**Accuracy of a squared distance** (rows of norm ≤ 1, d features). With rounded operands ``x̃ = x + δx``,
``|δx_k| ≤ u|x_k|`` (so ‖δx‖ ≤ u‖x‖), and the norms taken of the *same* rounded rows (the launchers and the
torch path both do), the computed value is ``‖x̃ − ỹ‖²`` up to fp32 rounding of the sum:

    |‖x̃ − ỹ‖² − ‖x − y‖²| ≤ 2‖x − y‖·‖δx − δy‖ + ‖δx − δy‖² ≤ 4u‖x − y‖ + 4u²   (unit-norm rows)

plus the fp32 evaluation error ``≈ γ_d (‖x‖² + ‖y‖² + 2|xᵀy|) ≤ 4 d·2⁻²⁴`` (γ_d = d·2⁻²⁴/(1 − d·2⁻²⁴), a
worst-case bound; random rounding grows like √d). The rounding term is proportional to the distance, not to
‖x‖²: rounded points are still points, so d² stays ≥ 0 and d²(x, x) = 0. For u = 2⁻¹¹ (tf32) and distance
‖x − y‖ ≈ 1 that is ≤ 2e-3 absolute; for bf16 (u = 2⁻⁸) ≤ 1.6e-2; for tf32x3 and ieee the fp32 term alone
(≤ 2.4e-4 at d = 1024 worst case, ~1e-6 typical). Had the norms come from the unrounded rows, the error
would be ``2|δ(xᵀy)| ≤ 2u‖x‖‖y‖`` whatever the distance, so near-duplicate pairs would get distances of the
order of u instead of u·‖x − y‖.

**Effect on MMD and CKA.** With ``r = ‖x − y‖`` and ``k = exp(−c r²)`` (``c = 1/(2σ²)``), the mean value
theorem gives ``|Δk| ≤ c·e^{−c r'²}·|Δd²| ≤ 4u·c·r·e^{−c r'²}`` (r' between the exact and the rounded
distance, so ≈ r). Maximised over r (at r = 1/√(2c)) that is

    |Δk| ≤ 4u·√(c/2)·e^{−1/2} = 2√2·e^{−1/2}·u·√c ≈ 1.2·u/σ          (plus O(u²) and the fp32 term)

per entry, the same bound for every pair. MMD² = mean k_xx + mean k_yy − 2·mean k_xy and HSIC (a mean of
doubly centred products) are differences of such means whose result can be orders of magnitude below the
means themselves (MMD² → 0 for equal distributions). The rounding errors are fixed functions of the rounded
rows, not independent noise, so nothing guarantees that they cancel: the worst-case absolute error of
MMD² is ``4·1.2·u/σ ≈ 4.9u/σ``, whatever its size — ≈ 2.4e-3/σ for tf32 (σ in units of the row norm) and
≈ 1.9e-2/σ for bf16; an MMD² below that is not resolved. HSIC's absolute error is of the same order (a few
times the per-entry bound), so CKA between weakly related representations (small HSIC) is the first to
suffer. tf32x3 and ieee leave only the fp32 summation (≈ 1e-6 relative to the means; the kernels add the
tiles' partial sums in float64). The shift ``a`` of the sums (:func:`~torchspectral.pairwise.kernel_level`)
removes the fp32 cancellation of the *summation*, not the rounding of the inputs. For retrieval, rounding
can reorder scores closer than about 2u (ranks change, ties appear or vanish): use "tf32x3" or "ieee" when
ranks must match the fp32 ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# The names, the kernels' default and the operand rounding are the launchers' (kernels/operands.py): one
# definition for both backends, re-exported here.
from torchspectral.kernels.operands import PRECISIONS, default_precision, round_operand, round_tf32

__all__ = ["PRECISIONS", "default_precision", "exact_matmuls", "resolve_precision", "round_operand", "round_tf32"]


def resolve_precision(precision: str | None, backend: str, metric: str, *tensors: torch.Tensor) -> str:
    """The precision a resolved backend runs with: ``None`` → the default of that backend (the kernels'
    :func:`default_precision`, "ieee" for the torch path); a named choice is checked, and refused on float64
    data for anything but "ieee" (float64 is computed exactly in float64, there is nothing to round)."""
    if precision is None:
        return default_precision(tensors[0]) if backend == "triton" and tensors else "ieee"
    if precision not in PRECISIONS:
        raise ValueError(f"{metric}: precision must be None or one of {PRECISIONS}, got {precision!r}")
    if precision != "ieee" and any(t.dtype == torch.float64 for t in tensors):
        raise ValueError(
            f"{metric}: precision={precision!r} rounds float32 matmul operands; float64 inputs are computed in "
            "float64 (use precision=None or 'ieee')"
        )
    return precision


@contextlib.contextmanager
def exact_matmuls() -> Iterator[None]:
    """fp32 matmuls with TF32 off for the duration (and the global setting restored after): the torch path
    rounds its operands explicitly, so a global ``allow_tf32 = True`` must not round them a second time, and
    forward and backward must agree whatever the flag says elsewhere."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
