"""The pairwise engine (SPEC §8): RBF kernel sums and retrieval ranks over all n·m pairs, never n×m.

Three quantities need every pair of rows, and each reduces to sums over tiles of the pair grid:

* MMD: ``S_xx = Σ_ij k'(x_i, x_j)``, ``S_yy``, ``S_xy = Σ_ij k'(x_i, y_j)`` (:func:`rbf_mmd_sums`).
* RBF CKA: with ``K' = k'_x(X, X)``, ``L' = k'_y(Y, Y)`` over the same pairs, ``Σ K'∘L'``, ``Σ K'∘K'``,
  ``Σ L'∘L'`` and the row sums ``K'1``, ``L'1`` (:func:`rbf_cka_sums`); every HSIC estimator is a function
  of these.

Here ``k'(u, v) = Σ_σ expm1(−c_σ‖u − v‖²) = k(u, v) − k(u, u)``, ``c_σ = 1/(2σ²)``: the RBF kernel (or sum of
RBF kernels) shifted by its constant diagonal value. MMD and every HSIC estimator are unchanged by a constant
added to the kernel, and the shifted values keep their relative precision when k ≈ 1 (a bandwidth wide
compared with the distances, as the median heuristic gives in high dimension), where float32 sums of k
itself cancel catastrophically.
* Retrieval: the rank of each ground truth, by counting the items whose cosine beats it
  (:func:`retrieval_ranks`).

Two backends compute them, with the same results:

* ``"torch"``: chunked torch, the CPU implementation and the reference the Triton kernels are tested
  against. Tiles are square with a side chosen from :data:`TILE_BUDGET_BYTES`, so memory beyond the inputs
  is O((n + m)·d) plus a fixed tile budget, whatever n. float64 inputs are computed in float64.
* ``"triton"``: the fused kernels of :mod:`torchspectral.kernels` (float32 with fp32 tile accumulation).

``backend="auto"`` picks Triton for CUDA tensors when it is installed and the input is not float64, the
chunked torch path otherwise; nothing is probed at import. Gradients (MMD and CKA sums) always come from
the chunked torch backward, which recomputes each tile instead of storing it.

Numerics. Squared distances are formed as ``‖a‖² + ‖b‖² − 2aᵀb`` (one GEMM per tile). That expansion
loses precision when the norms are large compared with the distances, so every sample is first shifted by
a mean computed in float64 (distances are translation invariant); the rounding that can still make a
squared distance slightly negative is cut at 0 (a distance is never negative), and self-distances on the
diagonal are set to exactly 0. Tile sums are added into float64 totals.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

import torch

from torchspectral import kernels
from torchspectral.validation import compute_dtype

BACKENDS = ("auto", "torch", "triton")

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


def resolve_backend(backend: str, metric: str, *tensors: torch.Tensor) -> str:
    """Turn ``"auto" | "torch" | "triton"`` into the backend that will run, or explain why it cannot."""
    if backend not in BACKENDS:
        raise ValueError(f"{metric}: backend must be one of {BACKENDS}, got {backend!r}")
    on_cuda = all(t.is_cuda for t in tensors)
    float64 = compute_dtype(*tensors) == torch.float64
    if backend == "auto":
        return "triton" if on_cuda and not float64 and kernels.available() else "torch"
    if backend == "triton":
        if not kernels.available():
            raise RuntimeError(f"{metric}: backend='triton' needs the triton package (pip install triton)")
        if not on_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(
                f"{metric}: backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 to interpret on CPU)"
            )
        if float64:
            raise ValueError(
                f"{metric}: the Triton kernels compute in float32; use backend='torch' for float64 inputs "
                "(float32 inputs with values too large for float32 arithmetic are computed in float64 too)"
            )
    return backend


def _tiles(n_rows: int, n_cols: int, side: int, upper: bool = False) -> Iterator[tuple[slice, slice, bool]]:
    """(row slice, column slice, on the diagonal) over the grid; ``upper`` keeps column blocks ≥ row block."""
    for r in range(0, n_rows, side):
        for c in range(r if upper else 0, n_cols, side):
            yield slice(r, min(r + side, n_rows)), slice(c, min(c + side, n_cols)), upper and r == c


def _squared_distances(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor, diagonal: bool):
    """‖a_i − b_j‖² for one tile; ``diagonal``: the tile pairs a block with itself (exact zeros on i = j)."""
    d2 = torch.addmm(a_sq[:, None], a, b.T, beta=1.0, alpha=-2.0).add_(b_sq[None, :]).clamp_(min=0.0)
    if diagonal:
        d2.diagonal().zero_()
    return d2


def _shifted_rbf(d2: torch.Tensor, coefs: Sequence[float], shift: float, diagonal: bool) -> torch.Tensor:
    """k − shift with k = Σ_σ exp(−c_σ d²), and exact zeros on the diagonal of a diagonal tile. Consumes d2.

    Near k ≈ len(coefs) (wide bandwidths) it is formed as Σ expm1(−c_σ d²) + (len − shift), which keeps
    the relative precision of the small differences; elsewhere as Σ exp(−c_σ d²) − shift.
    """
    top = float(len(coefs))
    use_expm1 = shift >= top / 2
    if len(coefs) == 1:
        out = d2.mul_(-coefs[0])
        out = out.expm1_().add_(top - shift) if use_expm1 else out.exp_().sub_(shift)
    else:
        out = torch.zeros_like(d2)
        for c in coefs:
            out.add_(torch.expm1(d2 * -c) if use_expm1 else torch.exp(d2 * -c))
        out.add_(top - shift if use_expm1 else -shift)
    if diagonal:
        out.diagonal().zero_()
    return out


def _rbf_grad_weight(d2: torch.Tensor, coefs: Sequence[float]) -> torch.Tensor:
    """Σ_σ 2c_σ exp(−c_σ d²) = −2 ∂k/∂d². Consumes d2."""
    if len(coefs) == 1:
        return d2.mul_(-coefs[0]).exp_().mul_(2.0 * coefs[0])
    out = torch.zeros_like(d2)
    for c in coefs:
        out.add_(torch.exp(d2 * -c), alpha=2.0 * c)
    return out


def _sum64(t: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (t.sum() if dim is None else t.sum(dim)).double()


# Rows of the deterministic subsample the kernel level (the shift) is estimated on.
LEVEL_SUBSAMPLE = 128


@torch.no_grad()
def kernel_level(z: torch.Tensor, coefs: Sequence[float]) -> float:
    """The mean off-diagonal value of k = Σ_σ exp(−c_σ‖u − v‖²) over ≤ 128 evenly spaced rows of z.

    Used as the shift of the kernel sums: any constant works (the estimators do not depend on it), and
    the typical kernel value makes the shifted entries small on both sides, so that their float32 sums do
    not cancel, whether the bandwidth is wide (k ≈ 1) or narrow (k ≈ 0). A rough value is enough.

    Example:
        >>> round(kernel_level(torch.tensor([[0.0], [1.0]]), [0.5]), 6)  # exp(−0.5)
        0.606531
    """
    z = z[median_subsample(z.shape[0], z.device, LEVEL_SUBSAMPLE)]
    n = z.shape[0]
    if n < 2:
        return 0.0
    z = z - z.mean(0)
    z_sq = (z * z).sum(1)
    d2 = _squared_distances(z, z_sq, z, z_sq, True)
    k = sum(torch.exp(d2 * -c) for c in coefs)
    return float((k.sum() - k.diagonal().sum()) / (n * (n - 1)))


# ----------------------------------------------------------------------------------------------------------
# RBF MMD sums
# ----------------------------------------------------------------------------------------------------------


def _mmd_sums_torch(x: torch.Tensor, y: torch.Tensor, coefs: Sequence[float], shift: float, side: int):
    """[S_xx, S_yy, S_xy] of k − shift over the off-diagonal pairs, in float64; the within-sample sums visit
    each unordered block pair once."""
    x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    for slot, (a, a_sq) in enumerate(((x, x_sq), (y, y_sq))):
        for rows, cols, diag in _tiles(a.shape[0], a.shape[0], side, upper=True):
            k = _shifted_rbf(_squared_distances(a[rows], a_sq[rows], a[cols], a_sq[cols], diag), coefs, shift, diag)
            # An off-diagonal block stands for itself and its mirror image.
            sums[slot] += _sum64(k) * (1.0 if diag else 2.0)
    for rows, cols, _ in _tiles(x.shape[0], y.shape[0], side):
        d2 = _squared_distances(x[rows], x_sq[rows], y[cols], y_sq[cols], False)
        sums[2] += _sum64(_shifted_rbf(d2, coefs, shift, False))
    return sums


def _rbf_sum_grads(
    a: torch.Tensor, b: torch.Tensor | None, coefs: Sequence[float], side: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of ``S = Σ_ij k(a_i, b_j)`` (``b=None``: ``Σ_ij k(a_i, a_j)``), tile by tile.

    With ``G_ij = Σ_σ 2c_σ k_σ(a_i, b_j)``: ``∂S/∂a_i = −(Σ_j G_ij) a_i + Σ_j G_ij b_j`` and
    ``∂S/∂b_j = Σ_i G_ij a_i − (Σ_i G_ij) b_j``; within one sample the two roles add up (a factor 2).
    A constant shift of k and the (constant) diagonal terms do not change these gradients.
    """
    within = b is None
    b = a if within else b
    a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    g_a, row_a = torch.zeros_like(a), a.new_zeros(a.shape[0])
    g_b, col_b = (None, None) if within else (torch.zeros_like(b), b.new_zeros(b.shape[0]))
    for rows, cols, _ in _tiles(a.shape[0], b.shape[0], side):
        diag = within and rows == cols
        g = _rbf_grad_weight(_squared_distances(a[rows], a_sq[rows], b[cols], b_sq[cols], diag), coefs)
        g_a[rows] += g @ b[cols]
        row_a[rows] += g.sum(1)
        if not within:
            g_b[cols] += g.T @ a[rows]
            col_b[cols] += g.sum(0)
    g_a -= row_a[:, None] * a
    if within:
        return 2.0 * g_a, None
    return g_a, g_b - col_b[:, None] * b


class _RBFMMDSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, coefs, shift, backend):  # type: ignore[override]
        ctx.coefs = coefs
        ctx.save_for_backward(x, y)
        if backend == "triton":
            from torchspectral.kernels.rbf_mmd_sums import rbf_mmd_sums_triton

            return rbf_mmd_sums_triton(x, y, coefs, shift)
        return _mmd_sums_torch(x, y, coefs, shift, tile_side(x.dtype))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, y = ctx.saved_tensors
        side = tile_side(x.dtype)
        grad_x = grad_y = None
        g_xx, g_yy, g_xy = (grad[i].to(x.dtype) for i in range(3))
        if ctx.needs_input_grad[0]:
            grad_x = g_xx * _rbf_sum_grads(x, None, ctx.coefs, side)[0]
        if ctx.needs_input_grad[1]:
            grad_y = g_yy * _rbf_sum_grads(y, None, ctx.coefs, side)[0]
        if any(ctx.needs_input_grad[:2]):
            cross_x, cross_y = _rbf_sum_grads(x, y, ctx.coefs, side)
            grad_x = None if grad_x is None else grad_x + g_xy * cross_x
            grad_y = None if grad_y is None else grad_y + g_xy * cross_y
        return grad_x, grad_y, None, None, None


def _shift(t: torch.Tensor, mean: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) - mean.to(dtype)


def rbf_mmd_sums(
    x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], backend: str = "torch"
) -> tuple[torch.Tensor, float]:
    """``([S_xx, S_yy, S_xy], a)``: sums of ``k − a`` over the pairs i ≠ j of x, of y, and all pairs (x_i, y_j).

    ``k = Σ_σ exp(−‖u − v‖²/(2σ²))`` and ``a`` = :func:`kernel_level` of the pooled sample (a constant the
    MMD estimators do not depend on, chosen so that the sums do not cancel). float64, differentiable.

    Shape: x (n, d), y (m, d) → (3,), float.

    Example:
        >>> x, y = torch.zeros(3, 2), torch.ones(1, 2)  # ‖x_i − y_j‖² = 2, k = e⁻¹ between the samples
        >>> sums, level = rbf_mmd_sums(x, y, [1.0])
        >>> [round(v + level * count, 6) for v, count in zip(sums.tolist(), (6, 0, 3))]  # Σ k back
        [6.0, 0.0, 1.103638]
    """
    dtype = compute_dtype(x, y)
    # One shift for both samples: S_xy needs them in the same coordinates. Summed in float64 without a
    # float64 copy of the data (the memory beyond the inputs stays one shifted copy plus the tiles).
    mean = (x.detach().sum(0, dtype=torch.float64) + y.detach().sum(0, dtype=torch.float64)) / (x.shape[0] + y.shape[0])
    coefs = tuple(1.0 / (2.0 * float(s) ** 2) for s in sigmas)
    level = kernel_level(pooled_subsample(x.detach(), y.detach(), LEVEL_SUBSAMPLE), coefs)
    sums = _RBFMMDSums.apply(_shift(x, mean, dtype), _shift(y, mean, dtype), coefs, level, backend)
    return sums, level


# ----------------------------------------------------------------------------------------------------------
# RBF CKA sums
# ----------------------------------------------------------------------------------------------------------


def _cka_sums_torch(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, ax: float, ay: float, side: int):
    n = x.shape[0]
    x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)
    sums = torch.zeros(3, dtype=torch.float64, device=x.device)
    row_k = torch.zeros(n, dtype=torch.float64, device=x.device)
    row_l = torch.zeros(n, dtype=torch.float64, device=x.device)
    for rows, cols, diag in _tiles(n, n, side, upper=True):
        k = _shifted_rbf(_squared_distances(x[rows], x_sq[rows], x[cols], x_sq[cols], diag), (cx,), ax, diag)
        ell = _shifted_rbf(_squared_distances(y[rows], y_sq[rows], y[cols], y_sq[cols], diag), (cy,), ay, diag)
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


def _cka_grad(a, own_c, own_shift, other, other_c, other_shift, g_cross, g_self, g_rows, side):
    """Gradient w.r.t. ``a`` of ``g_cross·Σ K'∘L' + g_self·Σ K'∘K' + g_rowsᵀ K'1``, K' = RBF(a) − shift off the
    diagonal and 0 on it (L' likewise on ``other``).

    ``∂/∂K'_ij`` symmetrised over (i, j) gives ``W_ij = 2g_cross L'_ij + 4g_self K'_ij + g_rows_i + g_rows_j``;
    with ``G = 2c·W∘K`` (∂K/∂d² = −cK): ``∂/∂a_i = −(Σ_j G_ij) a_i + Σ_j G_ij a_j`` (the j = i term is 0).
    """
    a_sq, o_sq = (a * a).sum(1), (other * other).sum(1)
    grad, row = torch.zeros_like(a), a.new_zeros(a.shape[0])
    for rows, cols, _ in _tiles(a.shape[0], a.shape[0], side):
        diag = rows == cols
        d2 = _squared_distances(a[rows], a_sq[rows], a[cols], a_sq[cols], diag)
        k = torch.exp(d2 * -own_c)
        w = _shifted_rbf(_squared_distances(other[rows], o_sq[rows], other[cols], o_sq[cols], diag), (other_c,),
                         other_shift, diag)  # fmt: skip
        w.mul_(2.0 * g_cross).add_(_shifted_rbf(d2, (own_c,), own_shift, diag), alpha=4.0 * g_self)
        g = w.add_(g_rows[rows, None]).add_(g_rows[None, cols]).mul_(k).mul_(2.0 * own_c)
        grad[rows] += g @ a[cols]
        row[rows] += g.sum(1)
    return grad - row[:, None] * a


class _RBFCKASums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, cx, cy, ax, ay, backend):  # type: ignore[override]
        ctx.constants = (cx, cy, ax, ay)
        ctx.save_for_backward(x, y)
        if backend == "triton":
            from torchspectral.kernels.rbf_cka_sums import rbf_cka_sums_triton

            return rbf_cka_sums_triton(x, y, cx, cy, ax, ay)
        return _cka_sums_torch(x, y, cx, cy, ax, ay, tile_side(x.dtype))

    @staticmethod
    def backward(ctx, g_sums, g_row_k, g_row_l):  # type: ignore[override]
        x, y = ctx.saved_tensors
        cx, cy, ax, ay = ctx.constants
        side = tile_side(x.dtype)
        g_kl, g_kk, g_ll = (float(v) for v in g_sums)
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = _cka_grad(x, cx, ax, y, cy, ay, g_kl, g_kk, g_row_k.to(x.dtype), side)
        if ctx.needs_input_grad[1]:
            grad_y = _cka_grad(y, cy, ay, x, cx, ax, g_kl, g_ll, g_row_l.to(y.dtype), side)
        return grad_x, grad_y, None, None, None, None, None


def rbf_cka_sums(
    x: torch.Tensor, y: torch.Tensor, sigma_x: float, sigma_y: float, backend: str = "torch"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    """``([Σ K'∘L', Σ K'∘K', Σ L'∘L'], K'1, L'1, a_x, a_y)`` (float64, differentiable).

    ``K' = RBF_σx(X, X) − a_x`` off the diagonal and 0 on it, ``L'`` likewise with ``a_y``; the shifts are
    :func:`kernel_level` of each modality (HSIC estimators do not depend on them; they keep the sums
    from cancelling).

    Shape: x (n, d_x), y (n, d_y) → (3,), (n,), (n,), float, float.

    Example:
        >>> x = torch.tensor([[0.0], [0.0], [2.0]])  # K = e⁻² between the third row and the others
        >>> sums, row_k, row_l, a_x, a_y = rbf_cka_sums(x, x, 1.0, 1.0)
        >>> [round(v + a_x * 2, 6) for v in row_k.tolist()]  # K1 − 1 (two off-diagonal entries per row)
        [1.135335, 1.135335, 0.270671]
    """
    dtype = compute_dtype(x, y)
    x0 = _shift(x, x.detach().sum(0, dtype=torch.float64) / x.shape[0], dtype)
    y0 = _shift(y, y.detach().sum(0, dtype=torch.float64) / y.shape[0], dtype)
    cx, cy = 1.0 / (2.0 * float(sigma_x) ** 2), 1.0 / (2.0 * float(sigma_y) ** 2)
    ax, ay = kernel_level(x0.detach(), (cx,)), kernel_level(y0.detach(), (cy,))
    sums, row_k, row_l = _RBFCKASums.apply(x0, y0, cx, cy, ax, ay, backend)
    return sums, row_k, row_l, ax, ay


# ----------------------------------------------------------------------------------------------------------
# Bandwidth medians (on a deterministic subsample)
# ----------------------------------------------------------------------------------------------------------

MEDIAN_SUBSAMPLE = 4096


def median_subsample(n: int, device: torch.device | None = None, size: int = MEDIAN_SUBSAMPLE) -> torch.Tensor:
    """Rows the bandwidth median is taken on: all when n ≤ 4096, else ``floor(k·n/4096)`` for k = 0…4095
    (``size`` replaces 4096 for other subsamples).

    Evenly spaced and independent of any random state, so the bandwidth (and the metric) is reproducible.

    Example:
        >>> median_subsample(10_000)[:4].tolist()
        [0, 2, 4, 7]
    """
    if n <= size:
        return torch.arange(n, device=device)
    return torch.arange(size, device=device) * n // size


def _upper_squared_distances(z: torch.Tensor) -> torch.Tensor:
    """The P = n(n−1)/2 squared distances ‖z_i − z_j‖², i < j, filled tile row by tile row (no n×n)."""
    n = z.shape[0]
    z = z - (z.sum(0, dtype=torch.float64) / n).to(z.dtype)
    z_sq = (z * z).sum(1)
    out = z.new_empty(n * (n - 1) // 2)
    side = max(16, tile_side(z.dtype) // 4)
    pos = 0
    for start in range(0, n, side):
        rows = slice(start, min(start + side, n))
        d2 = _squared_distances(z[rows], z_sq[rows], z[start:], z_sq[start:], False)
        keep = torch.ones_like(d2, dtype=torch.bool).triu_(1)
        block = d2[keep]
        out[pos : pos + block.numel()] = block
        pos += block.numel()
    return out


def _kth(values: torch.Tensor, k: int) -> torch.Tensor:
    return torch.kthvalue(values, k + 1).values  # kthvalue is 1-based


def _next_order_statistic(upper: torch.Tensor, previous: torch.Tensor, q: int, n: int) -> torch.Tensor:
    """Sorted position q of the full n² list (n zeros, each upper value twice), given position q − 1's value.

    One counting pass and one masked min instead of a second selection over the P upper values.
    """
    value = previous.to(upper.dtype)
    # Full-list entries ≤ value: the n zeros (when value ≥ 0, always true here) plus twice each upper value ≤ value.
    at_most = n + 2 * int((upper <= value).sum())
    if at_most > q:
        return previous
    return upper[upper > value].min().double()


def pooled_subsample(x: torch.Tensor, y: torch.Tensor, size: int = MEDIAN_SUBSAMPLE) -> torch.Tensor:
    """The rows of [x; y] at :func:`median_subsample` positions, without stacking the whole pooled sample."""
    idx = median_subsample(x.shape[0] + y.shape[0], x.device, size)
    from_x = idx < x.shape[0]
    dtype = compute_dtype(x, y)
    return torch.cat([x[idx[from_x]].to(dtype), y[idx[~from_x] - x.shape[0]].to(dtype)])


def median_pairwise_distance(z: torch.Tensor) -> torch.Tensor:
    """Median Euclidean distance over the pairs i < j of the (subsampled) rows of z (numpy's median).

    Example:
        >>> float(median_pairwise_distance(torch.tensor([[0.0], [1.0], [3.0]])))
        2.0
    """
    with torch.no_grad():
        d2 = _upper_squared_distances(z[median_subsample(z.shape[0], z.device)].to(compute_dtype(z)))
        p = d2.numel()
        if p % 2:
            return _kth(d2, p // 2).sqrt().double()
        return 0.5 * (_kth(d2, p // 2 - 1).sqrt().double() + _kth(d2, p // 2).sqrt().double())


def median_squared_distance_all_pairs(z: torch.Tensor) -> torch.Tensor:
    """Median of all n² squared distances of the (subsampled) rows of z, the n zeros on the diagonal included.

    The n² values are the n zeros and each i < j distance twice, so the order statistics come from the
    n(n−1)/2 upper-triangle values: sorted position q ≥ n of the full list is position (q − n) // 2 there.

    Example:
        >>> float(median_squared_distance_all_pairs(torch.tensor([[0.0], [1.0], [3.0]])))
        1.0
    """
    with torch.no_grad():
        z = z[median_subsample(z.shape[0], z.device)].to(compute_dtype(z))  # half precision is upcast
        n = z.shape[0]
        upper = _upper_squared_distances(z)

        def order_statistic(q: int) -> torch.Tensor:
            return upper.new_zeros((), dtype=torch.float64) if q < n else _kth(upper, (q - n) // 2).double()

        total = n * n
        if total % 2:
            return order_statistic(total // 2)
        low = order_statistic(total // 2 - 1)
        return 0.5 * (low + _next_order_statistic(upper, low, total // 2, n))


# ----------------------------------------------------------------------------------------------------------
# Retrieval ranks
# ----------------------------------------------------------------------------------------------------------


# Captions per ground-truth block: its x̂[c(J)] ŷ_Jᵀ product costs |J|/N of the score GEMM.
GROUND_TRUTH_CHUNK = 256


def ground_truth_scores(x_hat: torch.Tensor, y_hat: torch.Tensor, caption_to_image: torch.Tensor, side: int):
    """Cosine of every caption with its own image, ``S[c(j), j]``, computed with the same tile GEMM as the
    rank counting (a square ``x̂[c(J)] ŷ_Jᵀ`` block per caption chunk, its diagonal), so that a tie between a
    ground truth and a duplicated row is a tie in both places."""
    out = torch.empty(y_hat.shape[0], dtype=x_hat.dtype, device=x_hat.device)
    for start in range(0, y_hat.shape[0], side):
        cols = slice(start, min(start + side, y_hat.shape[0]))
        out[cols] = (x_hat[caption_to_image[cols]] @ y_hat[cols].T).diagonal()
    return out


def _ranks_torch(x_hat, y_hat, caption_to_image, gt, best, pessimistic, side):
    n_img, n_cap = x_hat.shape[0], y_hat.shape[0]
    i2t = torch.zeros(n_img, dtype=torch.int64, device=x_hat.device)
    t2i = torch.zeros(n_cap, dtype=torch.int64, device=x_hat.device)
    ahead = torch.ge if pessimistic else torch.gt
    for rows, cols, _ in _tiles(n_img, n_cap, side):
        s = x_hat[rows] @ y_hat[cols].T
        # Counting through a uint8 view of the comparison is ~1.5× faster than summing the bool tensor.
        i2t[rows] += ahead(s, best[rows, None]).view(torch.uint8).sum(1, dtype=torch.int32)
        t2i[cols] += ahead(s, gt[None, cols]).view(torch.uint8).sum(0, dtype=torch.int32)
        # A ground-truth pair is never "ahead" of its own query (nor another caption of the same image):
        # take back what the tile's ground-truth entries added, judged on the tile's own values. There are
        # at most |cols| of them, so this costs O(|cols|), not another pass over the tile.
        images = caption_to_image[cols]
        j = torch.nonzero((images >= rows.start) & (images < rows.stop)).squeeze(1)
        values = s[images[j] - rows.start, j]
        t2i[cols.start + j] -= ahead(values, gt[cols.start + j]).long()
        i2t.index_add_(0, images[j], -ahead(values, best[images[j]]).long())
    return i2t, t2i


@torch.no_grad()
def retrieval_ranks(
    x_hat: torch.Tensor, y_hat: torch.Tensor, caption_to_image: torch.Tensor, pessimistic: bool, backend: str = "torch"
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based ranks of the ground truths, image→text (N,) and text→image (M,), on L2-normalised rows.

    Image i: the number of captions of other images whose score beats its best caption's score.
    Caption j: the number of other images whose score beats its image's. "Beats" is ``>`` (optimistic) or
    ``≥`` (pessimistic). Tile by tile: no sort, no top-k, no N×M matrix.

    Shape: x_hat (N, d), y_hat (M, d), caption_to_image (M,) int64 → (N,), (M,) int64.

    Example:
        >>> x = torch.eye(2)
        >>> y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
        >>> [r.tolist() for r in retrieval_ranks(x, y, torch.tensor([0, 1, 1]), pessimistic=False)]
        [[0, 0], [0, 1, 0]]
    """
    if backend == "triton":
        from torchspectral.kernels.retrieval_ranks import retrieval_ranks_triton

        return retrieval_ranks_triton(x_hat, y_hat, caption_to_image, pessimistic)
    side = tile_side(x_hat.dtype)
    gt = ground_truth_scores(x_hat, y_hat, caption_to_image, GROUND_TRUTH_CHUNK)
    best = torch.full((x_hat.shape[0],), -math.inf, dtype=gt.dtype, device=gt.device)
    best.scatter_reduce_(0, caption_to_image, gt, reduce="amax")
    return _ranks_torch(x_hat, y_hat, caption_to_image, gt, best, pessimistic, side)
