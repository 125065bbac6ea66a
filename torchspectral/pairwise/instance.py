"""The spectral prior's per-pair scores on the chunked torch path (docs/definitions.md#instance-sas), forward and
backward.

``score_i = Σ_k w_k · f(zx_ik · zy_ik)`` with ``z = (row − mean) V`` and f the identity or |·|. The
projections are formed ``rows_per_chunk`` rows at a time, in the dtype of ``vectors``, and recomputed in the
backward instead of stored. :class:`FusedInstanceScore` replaces the forward by the fused kernel
(:func:`torchspectral.kernels.instance_score.instance_score`, imported when it first runs) and keeps this
backward.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from torchspectral.pairwise.precision import exact_matmuls, round_operand


def projections(
    x: torch.Tensor,
    y: torch.Tensor,
    mean_x: torch.Tensor,
    mean_y: torch.Tensor,
    vectors: torch.Tensor,
    rows: int,
    precision: str = "ieee",
) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (row slice, zx, zy) chunk by chunk, in the dtype of ``vectors``; the centred rows and the vectors
    rounded for ``precision`` as the kernel rounds them (:mod:`torchspectral.pairwise.precision`)."""
    vectors = round_operand(vectors, precision)
    for start in range(0, x.shape[0], rows):
        chunk = slice(start, start + rows)
        zx = round_operand(x[chunk].to(vectors.dtype) - mean_x, precision) @ vectors
        zy = round_operand(y[chunk].to(vectors.dtype) - mean_y, precision) @ vectors
        yield chunk, zx, zy


class InstanceScore(torch.autograd.Function):
    """``apply(x, y, mean_x, mean_y, vectors, weights, absolute, rows_per_chunk, precision)`` → (n,) scores.

    Differentiable in x and y (the prior is frozen); the backward recomputes the projections in chunks, in
    the same precision (its GEMMs' operands rounded likewise, TF32 off otherwise).
    """

    @staticmethod
    def remember(
        ctx, tensors: tuple[torch.Tensor, ...], absolute: bool, rows_per_chunk: int, precision: str = "ieee"
    ) -> None:
        ctx.save_for_backward(*tensors)
        ctx.absolute, ctx.rows_per_chunk, ctx.precision = absolute, rows_per_chunk, precision

    @staticmethod
    def forward(ctx, x, y, mean_x, mean_y, vectors, weights, absolute: bool, rows_per_chunk: int, precision="ieee"):  # type: ignore[override]
        InstanceScore.remember(ctx, (x, y, mean_x, mean_y, vectors, weights), absolute, rows_per_chunk, precision)
        out = torch.empty(x.shape[0], dtype=vectors.dtype, device=x.device)
        with exact_matmuls():
            for rows, zx, zy in projections(x, y, mean_x, mean_y, vectors, rows_per_chunk, precision):
                product = zx * zy
                out[rows] = (product.abs() if absolute else product) @ weights
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        with exact_matmuls():
            return InstanceScore._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        x, y, mean_x, mean_y, vectors, weights = ctx.saved_tensors
        p = ctx.precision
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_y = torch.empty_like(y) if ctx.needs_input_grad[1] else None
        grad_out = grad_out.to(vectors.dtype)
        vectors_t = round_operand(vectors, p).T
        for rows, zx, zy in projections(x, y, mean_x, mean_y, vectors, ctx.rows_per_chunk, p):
            # d score_i / d zx_ik = w_k · zy_ik (times sign(zx·zy) for |·|), and likewise for zy.
            coefficient = grad_out[rows, None] * weights
            if ctx.absolute:
                coefficient = coefficient * torch.sign(zx * zy)
            if grad_x is not None:
                grad_x[rows] = (round_operand(coefficient * zy, p) @ vectors_t).to(x.dtype)
            if grad_y is not None:
                grad_y[rows] = (round_operand(coefficient * zx, p) @ vectors_t).to(y.dtype)
        return grad_x, grad_y, None, None, None, None, None, None, None


class FusedInstanceScore(InstanceScore):
    """``apply(x, y, mean_x, mean_y, vectors, weights, absolute, rows_per_chunk, precision)``: the fused forward
    (:func:`torchspectral.kernels.instance_score.instance_score`); the chunked torch backward (``rows_per_chunk``
    rows of projections at a time, in the same precision) is inherited."""

    @staticmethod
    def forward(ctx, x, y, mean_x, mean_y, vectors, weights, absolute: bool, rows_per_chunk: int, precision="ieee"):  # type: ignore[override]
        from torchspectral.kernels.instance_score import instance_score  # imports Triton

        InstanceScore.remember(ctx, (x, y, mean_x, mean_y, vectors, weights), absolute, rows_per_chunk, precision)
        return instance_score(x, y, mean_x, mean_y, vectors, weights, absolute=absolute, precision=precision)
