"""Bandwidths and kernel levels from the data: medians of pairwise distances and the typical kernel value.

Both are taken on deterministic, evenly spaced subsamples (independent of any random state), so the
bandwidth, the shift of the kernel sums and hence the metric are reproducible. No n×n matrix: the
pairwise distances of the subsample are filled tile row by tile row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from torchspectral.pairwise.precision import exact_matmuls
from torchspectral.pairwise.tiles import squared_distances, tile_side
from torchspectral.validation import compute_dtype

MEDIAN_SUBSAMPLE = 4096
# Rows of the deterministic subsample the kernel level (the shift) is estimated on.
LEVEL_SUBSAMPLE = 128


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


def pooled_subsample(x: torch.Tensor, y: torch.Tensor, size: int = MEDIAN_SUBSAMPLE) -> torch.Tensor:
    """The rows of [x; y] at :func:`median_subsample` positions, without stacking the whole pooled sample."""
    idx = median_subsample(x.shape[0] + y.shape[0], x.device, size)
    from_x = idx < x.shape[0]
    dtype = compute_dtype(x, y)
    return torch.cat([x[idx[from_x]].to(dtype), y[idx[~from_x] - x.shape[0]].to(dtype)])


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
    with exact_matmuls():  # the same level (and so the same expm1 form) whatever the global TF32 flag says
        d2 = squared_distances(z, z_sq, z, z_sq, True)
    k = sum(torch.exp(d2 * -c) for c in coefs)
    # The one host read of a pairwise call: the level picks the kernels' expm1 form, a compile-time choice.
    return float((k.sum() - k.diagonal().sum()) / (n * (n - 1)))


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
        d2 = squared_distances(z[rows], z_sq[rows], z[start:], z_sq[start:], False)
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
