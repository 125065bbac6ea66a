"""Bandwidths and kernel levels from the data: medians of pairwise distances and the typical kernel value.

Both are taken on deterministic, evenly spaced subsamples (independent of any random state), so the
bandwidth, the shift of the kernel sums and hence the metric are reproducible. No n×n matrix: the
pairwise distances of the subsample are filled tile row by tile row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from torchspectral.pairwise.chunked import squared_distances, tile_side
from torchspectral.pairwise.precision import exact_matmuls
from torchspectral.validation import compute_dtype

MEDIAN_SUBSAMPLE = 4096
# Rows of the deterministic subsample the kernel level (the shift) is estimated on.
LEVEL_SUBSAMPLE = 128
# The median's selection (_upper_order_statistics): a pilot of PILOT_ROWS evenly spaced rows, whose quantiles
# ± BRACKET bound the values kept (its rank error was ≤ 0.04 on Gaussian, t₂ and clustered 4096-row samples,
# ≤ 0.005 on the planted embeddings); below MIN_ROWS_TO_BRACKET rows all values are selected from directly.
PILOT_ROWS = 1024
BRACKET = 0.08
MIN_ROWS_TO_BRACKET = 2048


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


def _upper_strips(z: torch.Tensor) -> Iterator[torch.Tensor]:
    """The P = n(n−1)/2 squared distances ‖z_i − z_j‖², i < j, strip by strip (flat or 2-D pieces, no n×n).

    A strip of rows i ∈ [a, b) against columns j ≥ a is the triangle of its square block (masked) and the
    rectangle j ≥ b, which is all upper; every distance is the same value whichever path reads it.
    """
    n = z.shape[0]
    z = z - (z.sum(0, dtype=torch.float64) / n).to(z.dtype)
    z_sq = (z * z).sum(1)
    side = max(16, tile_side(z.dtype) // 4)
    for start in range(0, n, side):
        stop = min(start + side, n)
        d2 = squared_distances(z[start:stop], z_sq[start:stop], z[start:], z_sq[start:], False)
        square = d2[:, : stop - start]
        yield square[torch.ones_like(square, dtype=torch.bool).triu_(1)]
        if stop < n:
            yield d2[:, stop - start :]


def _upper_squared_distances(z: torch.Tensor) -> torch.Tensor:
    """The P = n(n−1)/2 squared distances of the rows of z, i < j, in one flat tensor."""
    return torch.cat([piece.reshape(-1) for piece in _upper_strips(z)])


def _kth(values: torch.Tensor, k: int) -> torch.Tensor:
    return torch.kthvalue(values, k + 1).values  # kthvalue is 1-based


def _upper_order_statistics(z: torch.Tensor, positions: Sequence[int]) -> list[torch.Tensor]:
    """Sorted positions ``positions`` (0-based) of the upper-triangle squared distances of z, exactly.

    Selecting from all P values costs a copy of them and a selection over P (as much as the distance GEMM
    itself at P ≈ 8.4M). Instead a pilot on PILOT_ROWS evenly spaced rows brackets the wanted positions; one pass
    over the strips counts the values below the bracket and keeps only those inside it (≈ 2·BRACKET of them),
    and the selection runs on those. Where the pilot missed (the count shows a position outside the bracket)
    the values are selected from all P, so the result is exact either way.
    """
    n = z.shape[0]
    if n < MIN_ROWS_TO_BRACKET:
        upper = _upper_squared_distances(z)
        return [_kth(upper, p) for p in positions]
    p_total = n * (n - 1) // 2
    pilot = _upper_squared_distances(z[median_subsample(n, z.device, PILOT_ROWS)])
    # The pilot's order statistics at the wanted fractions ± BRACKET (selections, not a sort: 524k values).
    last = pilot.numel() - 1
    low = _kth(pilot, max(0, math.floor((min(positions) / (p_total - 1) - BRACKET) * last)))
    high = _kth(pilot, min(last, math.ceil((max(positions) / (p_total - 1) + BRACKET) * last)))
    below, inside = torch.zeros((), dtype=torch.int64, device=z.device), []
    for piece in _upper_strips(z):
        below += (piece < low).sum()  # counted on the device, read once after the pass
        inside.append(piece[(piece >= low) & (piece <= high)].reshape(-1))
    kept, below = torch.cat(inside), int(below)
    if all(below <= p < below + kept.numel() for p in positions):
        return [_kth(kept, p - below) for p in positions]
    upper = _upper_squared_distances(z)  # the pilot missed: select from all of them
    return [_kth(upper, p) for p in positions]


def median_pairwise_distance(z: torch.Tensor) -> torch.Tensor:
    """Median Euclidean distance over the pairs i < j of the (subsampled) rows of z (numpy's median).

    Example:
        >>> float(median_pairwise_distance(torch.tensor([[0.0], [1.0], [3.0]])))
        2.0
    """
    with torch.no_grad():
        z = z[median_subsample(z.shape[0], z.device)].to(compute_dtype(z))
        p = z.shape[0] * (z.shape[0] - 1) // 2
        middle = [p // 2] if p % 2 else [p // 2 - 1, p // 2]
        values = _upper_order_statistics(z, middle)
        return sum(v.sqrt().double() for v in values) / len(values)


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
        total = n * n
        middle = [total // 2] if total % 2 else [total // 2 - 1, total // 2]
        upper_positions = sorted({(q - n) // 2 for q in middle if q >= n})
        found = dict(zip(upper_positions, _upper_order_statistics(z, upper_positions), strict=True))
        zero = torch.zeros((), dtype=torch.float64, device=z.device)
        values = [found[(q - n) // 2].double() if q >= n else zero for q in middle]
        return sum(values) / len(values)
