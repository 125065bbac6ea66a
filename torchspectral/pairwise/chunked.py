"""The chunked torch path of the RBF sums: the pair grid in square tiles, forward and backward, and the autograd
Functions of both backends.

This is the CPU implementation and the one reference the Triton kernels are tested against. Tiles are
square with a side chosen from :data:`TILE_BUDGET_BYTES`, so memory beyond the inputs is O((n + m)·d) plus a
fixed tile budget, whatever n. float64 inputs are computed in float64; tile sums are added into float64
totals. Gradients always come from the tile-recomputing backward here: each tile is recomputed instead of
stored. :class:`RBFMMDSums` and :class:`RBFCKASums` run the chunked forward; :class:`FusedRBFMMDSums` and
:class:`FusedRBFCKASums` subclass them and replace the forward only, by the launchers of
:mod:`torchspectral.kernels.rbf_mmd_sums` and :mod:`torchspectral.kernels.rbf_cka_sums` (imported when a fused
forward first runs: Triton stays optional).

Squared distances are formed as ``‖a‖² + ‖b‖² − 2aᵀb`` (one GEMM per tile); the callers shift every sample
by a mean first (distances are translation invariant, the expansion is not), rounding below 0 is cut at 0
and self-distances on the diagonal are set to exactly 0.

``precision`` (:mod:`torchspectral.pairwise.precision`) is honoured explicitly, forward and backward: the
rows are rounded as the kernels' tensor cores read them (``round_operand``; norms and dots then come from
the same rounded rows, as in the kernels), the backward's GEMM operands likewise, and every GEMM runs with
TF32 off whatever the global flag says (:func:`~torchspectral.pairwise.precision.exact_matmuls`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from torchspectral.kernels.operands import expm1_form  # the launchers choose the form of k − a the same way
from torchspectral.pairwise.precision import exact_matmuls, round_operand

# Bytes of temporaries per tile of the chunked torch path (distances, kernel values, their product).
TILE_BUDGET_BYTES = 48 * 2**20
_TILE_TEMPORARIES = 3


def tile_side(dtype: torch.dtype, budget_bytes: int | None = None) -> int:
    """Side of the square tile whose temporaries fit the memory budget (a multiple of 16, at least 16).

    Example:
        >>> tile_side(torch.float32, budget_bytes=12 * 2**20)
        1024
    """
    budget = TILE_BUDGET_BYTES if budget_bytes is None else budget_bytes
    itemsize = torch.empty((), dtype=dtype).element_size()
    side = math.isqrt(budget // (itemsize * _TILE_TEMPORARIES))
    return max(16, side - side % 16)


def tiles(n_rows: int, n_cols: int, side: int, upper: bool = False) -> Iterator[tuple[slice, slice, bool]]:
    """(row slice, column slice, on the diagonal) over the grid; ``upper`` keeps column blocks ≥ row block."""
    for r in range(0, n_rows, side):
        for c in range(r if upper else 0, n_cols, side):
            yield slice(r, min(r + side, n_rows)), slice(c, min(c + side, n_cols)), upper and r == c


def squared_distances(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor, diagonal: bool):
    """‖a_i − b_j‖² for one tile; ``diagonal``: the tile pairs a block with itself (exact zeros on i = j)."""
    d2 = torch.addmm(a_sq[:, None], a, b.T, beta=1.0, alpha=-2.0).add_(b_sq[None, :]).clamp_(min=0.0)
    if diagonal:
        d2.diagonal().zero_()
    return d2


def shifted_rbf(d2: torch.Tensor, coefs: Sequence[float], shift: float, diagonal: bool) -> torch.Tensor:
    """k − shift with k = Σ_σ exp(−c_σ d²) (formed as :func:`expm1_form` says), and exact zeros on the diagonal
    of a diagonal tile. Consumes d2."""
    use_expm1, constant = expm1_form(shift, len(coefs))
    if len(coefs) == 1:
        out = d2.mul_(-coefs[0])
        out = (out.expm1_() if use_expm1 else out.exp_()).add_(constant)
    else:
        out = torch.zeros_like(d2)
        for c in coefs:
            out.add_(torch.expm1(d2 * -c) if use_expm1 else torch.exp(d2 * -c))
        out.add_(constant)
    if diagonal:
        out.diagonal().zero_()
    return out


def rbf_grad_weight(d2: torch.Tensor, coefs: Sequence[float]) -> torch.Tensor:
    """Σ_σ 2c_σ exp(−c_σ d²) = −2 ∂k/∂d². Consumes d2."""
    if len(coefs) == 1:
        return d2.mul_(-coefs[0]).exp_().mul_(2.0 * coefs[0])
    out = torch.zeros_like(d2)
    for c in coefs:
        out.add_(torch.exp(d2 * -c), alpha=2.0 * c)
    return out


def _sum64(t: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (t.sum() if dim is None else t.sum(dim)).double()


# ----------------------------------------------------------------------------------------------------------
# RBF MMD sums
# ----------------------------------------------------------------------------------------------------------


def mmd_sums(x: torch.Tensor, y: torch.Tensor, coefs: Sequence[float], shift: float, side: int) -> torch.Tensor:
    """[S_xx, S_yy, S_xy] of k − shift over the off-diagonal pairs, in float64; the within-sample sums visit
    each unordered block pair once."""
    x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    for slot, (a, a_sq) in enumerate(((x, x_sq), (y, y_sq))):
        for rows, cols, diag in tiles(a.shape[0], a.shape[0], side, upper=True):
            k = shifted_rbf(squared_distances(a[rows], a_sq[rows], a[cols], a_sq[cols], diag), coefs, shift, diag)
            # An off-diagonal block stands for itself and its mirror image.
            sums[slot] += _sum64(k) * (1.0 if diag else 2.0)
    for rows, cols, _ in tiles(x.shape[0], y.shape[0], side):
        d2 = squared_distances(x[rows], x_sq[rows], y[cols], y_sq[cols], False)
        sums[2] += _sum64(shifted_rbf(d2, coefs, shift, False))
    return sums


def rbf_sum_grads(
    a: torch.Tensor, b: torch.Tensor | None, coefs: Sequence[float], side: int, precision: str = "ieee"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of ``S = Σ_ij k(a_i, b_j)`` (``b=None``: ``Σ_ij k(a_i, a_j)``), tile by tile.

    With ``G_ij = Σ_σ 2c_σ k_σ(a_i, b_j)``: ``∂S/∂a_i = −(Σ_j G_ij) a_i + Σ_j G_ij b_j`` and
    ``∂S/∂b_j = Σ_i G_ij a_i − (Σ_i G_ij) b_j``; within one sample the two roles add up (a factor 2).
    A constant shift of k and the (constant) diagonal terms do not change these gradients. ``a`` and ``b``
    arrive rounded for ``precision``; G is rounded before its GEMMs.
    """
    within = b is None
    b = a if within else b
    a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    g_a, row_a = torch.zeros_like(a), a.new_zeros(a.shape[0])
    g_b, col_b = (None, None) if within else (torch.zeros_like(b), b.new_zeros(b.shape[0]))
    for rows, cols, _ in tiles(a.shape[0], b.shape[0], side):
        diag = within and rows == cols
        g = rbf_grad_weight(squared_distances(a[rows], a_sq[rows], b[cols], b_sq[cols], diag), coefs)
        g_op = round_operand(g, precision)
        g_a[rows] += g_op @ b[cols]
        row_a[rows] += g.sum(1)
        if not within:
            g_b[cols] += g_op.T @ a[rows]
            col_b[cols] += g.sum(0)
    g_a -= row_a[:, None] * a
    if within:
        return 2.0 * g_a, None
    return g_a, g_b - col_b[:, None] * b


class RBFMMDSums(torch.autograd.Function):
    """``apply(x, y, coefs, shift, precision)`` → [S_xx, S_yy, S_xy] (float64) by chunked torch; tile-recomputing
    backward in the same precision ("tf32x3" runs as "ieee" here: it approximates exact fp32).

    :class:`FusedRBFMMDSums` replaces the forward only.
    """

    @staticmethod
    def remember(ctx, x: torch.Tensor, y: torch.Tensor, coefs: Sequence[float], precision: str = "ieee") -> None:
        ctx.coefs, ctx.precision = coefs, precision
        ctx.save_for_backward(x, y)

    @staticmethod
    def forward(ctx, x, y, coefs, shift, precision="ieee"):  # type: ignore[override]
        RBFMMDSums.remember(ctx, x, y, coefs, precision)
        with exact_matmuls():
            return mmd_sums(round_operand(x, precision), round_operand(y, precision), coefs, shift, tile_side(x.dtype))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, y = (round_operand(t, ctx.precision) for t in ctx.saved_tensors)
        side = tile_side(x.dtype)
        grad_x = grad_y = None
        g_xx, g_yy, g_xy = (grad[i].to(x.dtype) for i in range(3))
        with exact_matmuls():
            if ctx.needs_input_grad[0]:
                grad_x = g_xx * rbf_sum_grads(x, None, ctx.coefs, side, ctx.precision)[0]
            if ctx.needs_input_grad[1]:
                grad_y = g_yy * rbf_sum_grads(y, None, ctx.coefs, side, ctx.precision)[0]
            if any(ctx.needs_input_grad[:2]):
                cross_x, cross_y = rbf_sum_grads(x, y, ctx.coefs, side, ctx.precision)
                grad_x = None if grad_x is None else grad_x + g_xy * cross_x
                grad_y = None if grad_y is None else grad_y + g_xy * cross_y
        return grad_x, grad_y, None, None, None


class FusedRBFMMDSums(RBFMMDSums):
    """``apply(x, y, coefs, shift, precision)``: the fused forward
    (:func:`~torchspectral.kernels.rbf_mmd_sums.rbf_mmd_sums_triton`); the tile-recomputing torch backward is
    inherited and runs in the same precision (operands rounded by
    :func:`~torchspectral.pairwise.precision.round_operand`, GEMMs under ``exact_matmuls``)."""

    @staticmethod
    def forward(ctx, x, y, coefs, shift, precision="ieee"):  # type: ignore[override]
        from torchspectral.kernels.rbf_mmd_sums import rbf_mmd_sums_triton  # imports Triton

        RBFMMDSums.remember(ctx, x, y, coefs, precision)
        return rbf_mmd_sums_triton(x, y, coefs, shift, precision)


# ----------------------------------------------------------------------------------------------------------
# RBF CKA sums
# ----------------------------------------------------------------------------------------------------------


def cka_sums(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, ax: float, ay: float, side: int):
    """``([Σ K'∘L', Σ K'∘K', Σ L'∘L'], K'1, L'1)`` in float64, visiting each unordered block pair once."""
    n = x.shape[0]
    x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    row_k = torch.zeros(n, dtype=torch.float64, device=x.device)
    row_l = torch.zeros(n, dtype=torch.float64, device=x.device)
    for rows, cols, diag in tiles(n, n, side, upper=True):
        k = shifted_rbf(squared_distances(x[rows], x_sq[rows], x[cols], x_sq[cols], diag), (cx,), ax, diag)
        ell = shifted_rbf(squared_distances(y[rows], y_sq[rows], y[cols], y_sq[cols], diag), (cy,), ay, diag)
        weight = 1.0 if diag else 2.0  # an off-diagonal block also stands for its mirror image
        sums[0] += weight * _sum64(k * ell)
        sums[1] += weight * _sum64(k * k)
        sums[2] += weight * _sum64(ell * ell)
        row_k[rows] += _sum64(k, 1)
        row_l[rows] += _sum64(ell, 1)
        if not diag:
            row_k[cols] += _sum64(k, 0)
            row_l[cols] += _sum64(ell, 0)
    return sums, row_k, row_l


def cka_grad(a, own_c, own_shift, other, other_c, other_shift, g_cross, g_self, g_rows, side, precision="ieee"):
    """Gradient w.r.t. ``a`` of ``g_cross·Σ K'∘L' + g_self·Σ K'∘K' + g_rowsᵀ K'1``, K' = RBF(a) − shift off the
    diagonal and 0 on it (L' likewise on ``other``).

    ``∂/∂K'_ij`` symmetrised over (i, j) gives ``W_ij = 2g_cross L'_ij + 4g_self K'_ij + g_rows_i + g_rows_j``;
    with ``G = 2c·W∘K`` (∂K/∂d² = −cK): ``∂/∂a_i = −(Σ_j G_ij) a_i + Σ_j G_ij a_j`` (the j = i term is 0).
    ``a`` and ``other`` arrive rounded for ``precision``; G is rounded before its GEMM.
    """
    a_sq, o_sq = (a * a).sum(1), (other * other).sum(1)
    grad, row = torch.zeros_like(a), a.new_zeros(a.shape[0])
    for rows, cols, _ in tiles(a.shape[0], a.shape[0], side):
        diag = rows == cols
        d2 = squared_distances(a[rows], a_sq[rows], a[cols], a_sq[cols], diag)
        k = torch.exp(d2 * -own_c)
        w = shifted_rbf(squared_distances(other[rows], o_sq[rows], other[cols], o_sq[cols], diag), (other_c,),
                        other_shift, diag)  # fmt: skip
        w.mul_(2.0 * g_cross).add_(shifted_rbf(d2, (own_c,), own_shift, diag).mul_(4.0 * g_self))
        g = w.add_(g_rows[rows, None]).add_(g_rows[None, cols]).mul_(k).mul_(2.0 * own_c)
        grad[rows] += round_operand(g, precision) @ a[cols]
        row[rows] += g.sum(1)
    return grad - row[:, None] * a


class RBFCKASums(torch.autograd.Function):
    """``apply(x, y, cx, cy, ax, ay, precision)`` → ``(sums, K'1, L'1)`` by chunked torch; tile-recomputing
    backward in the same precision.

    :class:`FusedRBFCKASums` replaces the forward only.
    """

    @staticmethod
    def remember(
        ctx, x: torch.Tensor, y: torch.Tensor, constants: tuple[float, float, float, float], precision: str = "ieee"
    ) -> None:
        ctx.constants, ctx.precision = constants, precision
        ctx.save_for_backward(x, y)

    @staticmethod
    def forward(ctx, x, y, cx, cy, ax, ay, precision="ieee"):  # type: ignore[override]
        RBFCKASums.remember(ctx, x, y, (cx, cy, ax, ay), precision)
        with exact_matmuls():
            xr, yr = round_operand(x, precision), round_operand(y, precision)
            return cka_sums(xr, yr, cx, cy, ax, ay, tile_side(x.dtype))

    @staticmethod
    def backward(ctx, g_sums, g_row_k, g_row_l):  # type: ignore[override]
        x, y = (round_operand(t, ctx.precision) for t in ctx.saved_tensors)
        p = ctx.precision
        cx, cy, ax, ay = ctx.constants
        side = tile_side(x.dtype)
        # 0-d tensors, not floats: reading the incoming gradient on the host would sync the device every step.
        g_kl, g_kk, g_ll = g_sums.to(x.dtype).unbind()
        grad_x = grad_y = None
        with exact_matmuls():
            if ctx.needs_input_grad[0]:
                grad_x = cka_grad(x, cx, ax, y, cy, ay, g_kl, g_kk, g_row_k.to(x.dtype), side, p)
            if ctx.needs_input_grad[1]:
                grad_y = cka_grad(y, cy, ay, x, cx, ax, g_kl, g_ll, g_row_l.to(y.dtype), side, p)
        return grad_x, grad_y, None, None, None, None, None


class FusedRBFCKASums(RBFCKASums):
    """``apply(x, y, cx, cy, ax, ay, precision)``: the fused forward
    (:func:`~torchspectral.kernels.rbf_cka_sums.rbf_cka_sums_triton`); the tile-recomputing torch backward is
    inherited and runs in the matching torch precision."""

    @staticmethod
    def forward(ctx, x, y, cx, cy, ax, ay, precision="ieee"):  # type: ignore[override]
        from torchspectral.kernels.rbf_cka_sums import rbf_cka_sums_triton  # imports Triton

        RBFCKASums.remember(ctx, x, y, (cx, cy, ax, ay), precision)
        return rbf_cka_sums_triton(x, y, cx, cy, ax, ay, precision)
