"""What a launcher does to its operands before a launch, in torch alone (no Triton): the precision names, the
kernels' default precision, the TF32/bfloat16 rounding of the operands, and the form of ``k − a``.

The chunked torch path (:mod:`torchspectral.pairwise`) imports these same functions, so both backends round the
same operands the same way and shift the RBF kernel by the same formula: a fused forward and the torch backward
it inherits agree by construction. Nothing here imports Triton; the accuracy of each precision is derived in
:mod:`torchspectral.pairwise.precision`.
"""

from __future__ import annotations

import torch

# The ``input_precision`` of ``tl.dot`` for fp32 operands, plus "bf16": operands rounded to bfloat16 after loading,
# products and accumulation in fp32.
PRECISIONS = ("ieee", "tf32x3", "tf32", "bf16")


def default_precision(t: torch.Tensor) -> str:
    """The kernels' default: "tf32x3" on CUDA (tensor cores at ≈ fp32 accuracy; the kernels compute in fp32
    whatever the input float type), "ieee" elsewhere (the interpreter) and for float64."""
    return "tf32x3" if t.is_cuda and t.dtype != torch.float64 else "ieee"


def round_tf32(t: torch.Tensor) -> torch.Tensor:
    """fp32 → TF32 (10 explicit mantissa bits) as ``cvt.rna.tf32.f32`` does: to nearest, ties away from zero.

    Adding half an ulp of TF32 (bit 12) to the magnitude bits and clearing the 13 low bits rounds the
    magnitude to nearest with ties away (the sign bit is untouched; a carry into the exponent is the correct
    rounding up to the next binade). Inputs are finite here (checked upstream).

    Example:
        >>> x = torch.tensor([1.0 + 2**-11, 1.0 + 2**-12, -(1.0 + 3 * 2**-11)])
        >>> round_tf32(x).tolist() == [1.0 + 2**-10, 1.0, -(1.0 + 2 * 2**-10)]
        True
    """
    bits = t.contiguous().view(torch.int32)
    rounded = (bits + 0x1000) & ~0x1FFF
    return rounded.view(torch.float32).reshape(t.shape)


def round_operand(t: torch.Tensor, precision: str) -> torch.Tensor:
    """``t`` as the matmuls of ``precision`` read it: rounded to TF32 ("tf32") or bfloat16 ("bf16"), else itself.

    Example:
        >>> round_operand(torch.tensor([1.0 + 2**-9]), "bf16").item(), round_operand(torch.tensor([0.1]), "ieee").item()
        (1.0, 0.10000000149011612)
    """
    if t.dtype != torch.float32 or precision in ("ieee", "tf32x3"):
        return t
    if precision == "bf16":
        return t.to(torch.bfloat16).to(torch.float32)
    if precision == "tf32":
        return round_tf32(t)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def expm1_form(shift: float, count: int) -> tuple[bool, float]:
    """How ``k − shift`` is formed, for ``k = Σ_σ exp(−c_σ d²)`` over ``count`` bandwidths: ``(use expm1, constant)``.

    Near k ≈ count (wide bandwidths, ``shift ≥ count/2``) as ``Σ expm1(−c_σ d²) + (count − shift)``, which keeps
    the relative precision of the small differences; elsewhere as ``Σ exp(−c_σ d²) − shift``. The torch path
    and the kernels make the same choice.

    Example:
        >>> expm1_form(0.9, 1), expm1_form(0.2, 1)
        ((True, 0.09999999999999998), (False, -0.2))
    """
    use_expm1 = shift >= count / 2
    return use_expm1, (count - shift) if use_expm1 else -shift
