"""Local-neighbourhood alignment (docs/definitions.md#neighbours): mutual kNN, cycle kNN and CKNNA.

The measures of the platonic-representation work (Huh et al. 2024), which alignment papers since report: do the
two spaces agree on which rows are each row's nearest neighbours?

- **Neighbours** ``N_z(i)``: the k rows j ≠ i with the largest inner products ``z_i·z_j`` on the rows as given
  (normalise them first for cosine neighbours). Ties: among equal inner products the lower row index is the
  nearer, so the lists are reproducible (the reference code's ``argsort`` leaves tie order unspecified).
- **mutual kNN** ``= mean_i |N_x(i) ∩ N_y(i)| / k`` ∈ [0, 1].
- **cycle kNN** ``= mean_i [i ∈ ∪_{j ∈ N_y(i)} N_x(j)]`` ∈ [0, 1]: is a row among the x-neighbours of its own
  y-neighbours.
- **CKNNA** (centred kernel nearest-neighbour alignment): the unbiased HSIC of the linear kernels ``K = x xᵀ``,
  ``L = y yᵀ`` restricted to the pairs (i, j) with j among the k nearest neighbours of i in both spaces compared,
  ``CKNNA = h(K, L) / sqrt(h(K, K) · h(L, L))``, where ``h(A, B)`` masks both kernels to the pairs mutual for A's
  and B's neighbourhoods and takes Song et al.'s unbiased HSIC of the (non-symmetric) masked kernels. With
  k = n − 1 every pair is kept and CKNNA is the unbiased linear CKA of uncentred kernels. Differences from the
  reference code, on purpose: no ``+ 1e-6`` in the denominator (a value that small is refused with a message
  instead), and a stated tie rule.

Nothing n×n is formed (but the answer itself when k = n − 1): the neighbour lists come from square blocks of the
inner products (``CHUNK_ELEMENTS`` values each) with a running top-k per row, and CKNNA's sums run over the at most
n·k masked pairs. Memory O(n·(d + k)) beyond one block.
The lists are discrete, so mutual and cycle kNN have no gradient; CKNNA is differentiable in the kernel values
of the kept pairs (the masks held fixed), like any masked kernel statistic.
"""

from __future__ import annotations

import math

import torch

from torchspectral.pairwise.precision import exact_matmuls
from torchspectral.stats.rows import CHUNK_ELEMENTS
from torchspectral.validation import check_min_rows, check_pair, compute_dtype

# A masked self-similarity at most this many machine epsilons of its terms' magnitude is taken as 0.
ROUNDING_ULPS = 64


def _check_k(k: int, n: int, metric: str, smallest: int = 1) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{metric}: k must be an integer, got {k!r}")
    check_min_rows(n, smallest + 1, metric, f"each row needs {smallest} other row(s) as neighbours")
    if not smallest <= k <= n - 1:
        raise ValueError(
            f"{metric}: k = {k} neighbours is out of range for n = {n} rows: it must lie in [{smallest}, {n - 1}] "
            "(a row is not its own neighbour)"
        )


def knn_indices(z: torch.Tensor, k: int) -> torch.Tensor:
    """(n, k) int64: the k nearest rows of each row of z by inner product, the row itself excluded, ascending
    index order within a row (a set, not a ranking). Ties at the k-th place go to the lower indices.

    The inner products are symmetric, so each square block (I, J ≥ I) is formed once and serves the rows of I and
    of J: a running top-(k + 1) per row is merged block by block (half the GEMM work of all n² products). Where the
    k-th and (k + 1)-th values are equal the boundary is a tie: those rows (rare: duplicated rows) are ranked again
    exactly from their whole row of products, with the tie rule.

    Example:
        >>> knn_indices(torch.tensor([[1.0], [2.0], [3.0], [3.0]]), 2).tolist()
        [[2, 3], [2, 3], [1, 3], [1, 2]]
    """
    return _neighbours(z, k)[0]


@torch.no_grad()
def _neighbours(z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`knn_indices` and the inner products with those neighbours (float64, aligned with the indices)."""
    n = z.shape[0]
    z = z.to(compute_dtype(z))
    if k == n - 1:  # every other row
        others = ~torch.eye(n, dtype=torch.bool, device=z.device)
        with exact_matmuls():
            products = z @ z.T
        return torch.arange(n, device=z.device).expand(n, n)[others].view(n, k), products[others].view(n, k).double()
    keep = k + 1  # one more than asked: equal k-th and (k + 1)-th values flag a tie at the boundary
    side = max(1, math.isqrt(CHUNK_ELEMENTS))
    best = torch.full((n, keep), float("-inf"), dtype=z.dtype, device=z.device)
    best_index = torch.zeros((n, keep), dtype=torch.long, device=z.device)

    def merge(rows: slice, values: torch.Tensor, indices: torch.Tensor) -> None:
        both = torch.cat([best[rows], values], 1)
        top = both.topk(keep, dim=1)
        best[rows] = top.values
        best_index[rows] = torch.cat([best_index[rows], indices], 1).gather(1, top.indices)

    for a in range(0, n, side):
        rows = slice(a, min(n, a + side))
        for b in range(a, n, side):
            cols = slice(b, min(n, b + side))
            with exact_matmuls():
                block = z[rows] @ z[cols].T
            if a == b:
                block.fill_diagonal_(float("-inf"))  # not its own neighbour
            top = block.topk(min(keep, block.shape[1]), dim=1)
            merge(rows, top.values, top.indices + b)
            if a != b:
                # The columns' top-k from a transposed copy: along contiguous rows it is faster than along dim 0.
                top = block.T.contiguous().topk(min(keep, block.shape[0]), dim=1)
                merge(cols, top.values, top.indices + a)
    tied = (best[:, k - 1] == best[:, k]).nonzero()[:, 0]
    indices, order = best_index[:, :k].sort(1)
    values = best[:, :k].gather(1, order).double()
    if tied.numel():
        indices[tied], values[tied] = _ranked_exactly(z, tied, k)
    return indices, values


def _ranked_exactly(z: torch.Tensor, which: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest rows of the rows ``which`` (and the products) from their whole rows of products, ties to the
    lower index."""
    n = z.shape[0]
    out = torch.empty(which.numel(), k, dtype=torch.long, device=z.device)
    values = torch.empty(which.numel(), k, dtype=torch.float64, device=z.device)
    rows = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, which.numel(), rows):
        own = which[start : start + rows]
        with exact_matmuls():
            scores = z[own] @ z.T
        scores[torch.arange(own.numel(), device=z.device), own] = float("-inf")  # not its own neighbour
        kth = scores.topk(k, dim=1).values[:, -1:]
        above = scores > kth
        tied = scores == kth
        # Of the values tied with the k-th, the lowest indices fill the remaining places.
        chosen = above | (tied & (tied.cumsum(1) <= k - above.sum(1, keepdim=True)))
        picked = chosen.nonzero()[:, 1].view(own.numel(), k)
        out[start : start + own.numel()] = picked
        values[start : start + own.numel()] = scores.gather(1, picked).double()
    return out, values


def _shared(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, k) bool: whether b[i, m] is in row i of a (rows of a sorted ascending), and where in that row."""
    position = torch.searchsorted(a, b).clamp_max(a.shape[1] - 1)
    return a.gather(1, position) == b, position


def _lists(x: torch.Tensor, y: torch.Tensor, k: int, metric: str, nan_policy: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The checked pair's neighbour indices (mutual and cycle kNN read nothing else)."""
    x, y = check_pair(x, y, metric, nan_policy=nan_policy)
    _check_k(k, x.shape[0], metric)
    return knn_indices(x, k), knn_indices(y, k)


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int = 10, *, nan_policy: str = "raise") -> torch.Tensor:
    """Mutual k-nearest-neighbour alignment: the mean share of each row's k neighbours that x and y agree on.

    Shape: x (n, d_x), y (n, d_y), row i of x paired with row i of y; returns a float64 scalar in [0, 1].

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
        >>> float(ts.mutual_knn(x, 2 * x + 1e-3, k=5))  # the same neighbourhoods
        1.0
    """
    return _mutual_from(*_lists(x, y, k, "mutual_knn", nan_policy))


def _mutual_from(near_x: torch.Tensor, near_y: torch.Tensor) -> torch.Tensor:
    n, k = near_x.shape
    return _shared(near_x, near_y)[0].sum(dtype=torch.float64) / (n * k)


def cycle_knn(x: torch.Tensor, y: torch.Tensor, k: int = 10, *, nan_policy: str = "raise") -> torch.Tensor:
    """Cycle k-nearest-neighbour alignment: the share of rows i found among the x-neighbours of i's own
    y-neighbours (a float64 scalar in [0, 1]). Shape as :func:`mutual_knn`.

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
        >>> float(ts.cycle_knn(x, 2 * x, k=5)) == float(ts.cycle_knn(x, x, k=5))  # < 1: kNN is not symmetric
        True
    """
    return _cycle_from(*_lists(x, y, k, "cycle_knn", nan_policy))


def _cycle_from(near_x: torch.Tensor, near_y: torch.Tensor) -> torch.Tensor:
    n, k = near_x.shape
    found = torch.zeros((), dtype=torch.long, device=near_x.device)
    rows = max(1, CHUNK_ELEMENTS // (k * k))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        own = torch.arange(start, stop, device=near_x.device)
        found += (near_x[near_y[start:stop]] == own[:, None, None]).flatten(1).any(1).sum()
    return found.double() / n


def _pair_products(z: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``z_i·z_j`` (float64) for each pair, a block of pairs at a time (O(CHUNK_ELEMENTS) memory, not pairs × d)."""
    i, j = pairs
    block = max(1, CHUNK_ELEMENTS // z.shape[1])
    parts = [(z[i[s : s + block]] * z[j[s : s + block]]).sum(1).double() for s in range(0, i.numel(), block)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=z.device)


def _masked_hsic(
    pairs: tuple[torch.Tensor, torch.Tensor], k_values: torch.Tensor, l_values: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased HSIC (Song et al.) of two symmetric kernels masked to ``pairs`` (i, j), i ≠ j, unique, given their
    values K_ij, L_ij on those pairs (float64):
    ``[Σ K̃_ij L̃_ji + ΣK̃ ΣL̃/((n−1)(n−2)) − 2 Σ_j colsum(K̃)_j rowsum(L̃)_j/(n−2)] / (n(n−3))``, and the same sum
    of the three terms' magnitudes (what rounding is relative to)."""
    i, j = pairs
    # The transposed term needs (j, i) in the mask too; the linear kernel is symmetric, so L̃_ji = L_ij there.
    codes = i * n + j
    ordered = codes.sort().values
    position = torch.searchsorted(ordered, j * n + i).clamp_max(codes.numel() - 1)
    reciprocal = ordered[position] == j * n + i
    trace_term = (k_values * l_values * reciprocal).sum()
    column_k = torch.zeros(n, dtype=torch.float64, device=i.device).index_add(0, j, k_values)
    row_l = torch.zeros(n, dtype=torch.float64, device=i.device).index_add(0, i, l_values)
    terms = (
        trace_term,
        k_values.sum() * l_values.sum() / ((n - 1) * (n - 2)),
        -2 * (column_k * row_l).sum() / (n - 2),
    )
    magnitude = sum(t.detach().abs() for t in terms) / (n * (n - 3))
    return sum(terms) / (n * (n - 3)), magnitude


def _mutual_pairs(
    near_a: tuple[torch.Tensor, torch.Tensor], near_b: tuple[torch.Tensor, torch.Tensor]
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The pairs (i, j) with j among the neighbours of i in both lists (indices, products), and the two lists'
    products on those pairs."""
    (index_a, value_a), (index_b, value_b) = near_a, near_b
    keep, position = _shared(index_a, index_b)
    rows = torch.arange(index_a.shape[0], device=index_a.device)[:, None].expand_as(index_b)
    return (rows[keep], index_b[keep]), value_a.gather(1, position)[keep], value_b[keep]


def cknna(x: torch.Tensor, y: torch.Tensor, k: int = 10, *, nan_policy: str = "raise") -> torch.Tensor:
    """Centred kernel nearest-neighbour alignment (CKNNA, Huh et al. 2024) of the linear kernels with k neighbours.

    Shape: x (n, d_x), y (n, d_y) paired rows, n ≥ 4, 2 ≤ k ≤ n − 1; returns a float64 scalar (an unbiased
    estimate: it may leave [−1, 1] on small samples; not clamped).

    Raises:
        ValueError: bad input, k out of range, or a space whose masked self-similarity is not positive (too few
            mutual neighbours for the unbiased HSIC), named in the message.

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> round(float(ts.cknna(x, 3 * x, k=20)), 6)
        1.0
    """
    metric = "cknna"
    x, y = check_pair(x, y, metric, nan_policy=nan_policy)
    n = x.shape[0]
    check_min_rows(n, 4, metric, "the unbiased HSIC divides by n(n−3)")
    _check_k(k, n, metric, smallest=2)
    return _cknna_from(x, y, _neighbours(x, k), _neighbours(y, k), metric)


def _cknna_from(x: torch.Tensor, y: torch.Tensor, near_x, near_y, metric: str) -> torch.Tensor:
    n, k = near_x[0].shape
    cdt = compute_dtype(x, y)
    x, y = x.to(cdt), y.to(cdt)
    differentiable = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)

    def hsic(a: torch.Tensor, b: torch.Tensor, near_a, near_b) -> tuple[torch.Tensor, torch.Tensor]:
        pairs, a_values, b_values = _mutual_pairs(near_a, near_b)
        if differentiable:  # the same products, formed again with their graph (the lists' are not)
            a_values, b_values = _pair_products(a, pairs), _pair_products(b, pairs)
        return _masked_hsic(pairs, a_values, b_values, n)

    across, _ = hsic(x, y, near_x, near_y)
    own_x, scale_x = hsic(x, x, near_x, near_x)
    own_y, scale_y = hsic(y, y, near_y, near_y)
    # A self-similarity within rounding of 0 (constant rows, say) is 0: its sign and size are rounding.
    rounding = ROUNDING_ULPS * torch.finfo(cdt).eps
    for name, value, scale in (("x", own_x, scale_x), ("y", own_y, scale_y)):
        if not bool(value > rounding * scale):
            raise ValueError(
                f"{metric}: the masked self-similarity of {name} is {float(value):.3g}, not positive beyond rounding, "
                f"so CKNNA is undefined at n = {n}, k = {k} (constant rows, or too few mutual neighbours)"
            )
    return across / (own_x.sqrt() * own_y.sqrt())


def neighbourhood_alignment(
    x: torch.Tensor, y: torch.Tensor, k: int = 10, *, nan_policy: str = "raise"
) -> dict[str, torch.Tensor]:
    """Mutual kNN, cycle kNN and CKNNA from one pair of neighbour lists (the lists are most of the cost):
    ``{"mutual_knn", "cycle_knn", "cknna"}``, each equal to its own function. Needs n ≥ 4 and 2 ≤ k ≤ n − 1.

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> y = x + torch.randn(300, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> together = ts.neighbourhood_alignment(x, y, k=10)
        >>> bool(together["cknna"] == ts.cknna(x, y, k=10)) and bool(together["mutual_knn"] == ts.mutual_knn(x, y, 10))
        True
    """
    metric = "neighbourhood_alignment"
    x, y = check_pair(x, y, metric, nan_policy=nan_policy)
    check_min_rows(x.shape[0], 4, metric, "CKNNA's unbiased HSIC divides by n(n−3)")
    _check_k(k, x.shape[0], metric, smallest=2)
    near_x, near_y = _neighbours(x, k), _neighbours(y, k)
    return {
        "mutual_knn": _mutual_from(near_x[0], near_y[0]),
        "cycle_knn": _cycle_from(near_x[0], near_y[0]),
        "cknna": _cknna_from(x, y, near_x, near_y, metric),
    }
