"""The modality-gap family (docs/definitions.md#modality-gap), all on L2-normalised rows x̂ = x/‖x‖, ŷ = y/‖y‖, in
O(n·d).

- gap (L2M, Liang et al. 2022): ``‖mean x̂ − mean ŷ‖``.
- L2I: ``mean ‖x̂_i − ŷ_i‖``.
- true-pair cosine: ``mean ⟨x̂_i, ŷ_i⟩``.
- Δcos: true-pair cosine minus the mean off-diagonal cosine ``(⟨Σx̂, Σŷ⟩ − Σ⟨x̂_i, ŷ_i⟩)/(n(n−1))``.
- RMG (Schrodi et al. 2025, the correct form): with d(u, v) = (1 − cos)/2, ``M`` the mean true-pair
  distance and ``D_x = (1 − (‖Σx̂‖² − n)/(n(n−1)))/2`` the mean intra-modality distance,
  ``RMG = M / (M + (D_x + D_y)/2)``. Symmetric in (x, y); lower = smaller gap.

Ranges that are theorems are enforced against rounding: the true-pair cosine lies in [−1, 1] and RMG in
[0, 1] (:func:`mean_cosine`, :func:`rmg_terms`). Nothing else is clamped.
"""

from __future__ import annotations

import torch

from torchspectral.stats import MomentStatistics
from torchspectral.validation import checking_values, with_validate_args

SAME_DIM_REASON = "it compares x̂_i and ŷ_i in one space"


def _check(m: MomentStatistics, metric: str, min_n: int = 1) -> None:
    if not m.same_dim:
        raise ValueError(f"{metric}: needs d_x = d_y ({SAME_DIM_REASON}), got d_x={m.d_x}, d_y={m.d_y}")
    m.require_pairs(metric, min_n, "it averages over pairs of distinct rows" if min_n > 1 else "no pairs")
    if not checking_values():
        return
    zero_x, zero_y = int(m.sums["zero_norm_x"]), int(m.sums["zero_norm_y"])
    if zero_x or zero_y:
        raise ValueError(
            f"{metric}: rows with zero norm cannot be L2-normalised ({zero_x} in x, {zero_y} in y); "
            "drop them or use a metric that does not normalise"
        )


def modality_gap_from_moments(m: MomentStatistics) -> torch.Tensor:
    _check(m, "modality_gap")
    return torch.linalg.vector_norm(m.sums["sum_xhat"] - m.sums["sum_yhat"]) / m.n


def l2i_from_moments(m: MomentStatistics) -> torch.Tensor:
    _check(m, "l2i")
    return m.sums["sum_l2i"] / m.n


def mean_cosine(sum_dot: torch.Tensor, n: int) -> torch.Tensor:
    """``Σ⟨x̂_i, ŷ_i⟩ / n``, clamped to [−1, 1]: a mean of cosines lies there (Cauchy–Schwarz), and only the
    rounding of normalised float32 rows goes beyond it (x = y gave 1.00000006). Any leading batch shape."""
    return (sum_dot / n).clamp(-1.0, 1.0)


def true_pair_cosine_from_moments(m: MomentStatistics) -> torch.Tensor:
    _check(m, "true_pair_cosine")
    return mean_cosine(m.sums["sum_dot"], m.n)


def cosine_gap_from_moments(m: MomentStatistics) -> torch.Tensor:
    _check(m, "cosine_gap", 2)
    s, n = m.sums, m.n
    off_diagonal = (s["sum_xhat"] @ s["sum_yhat"] - s["sum_dot"]) / (n * (n - 1))
    return s["sum_dot"] / n - off_diagonal


def _intra_distance(sum_hat: torch.Tensor, n: int) -> torch.Tensor:
    # A mean of distances (1 − cos)/2 ≥ 0 (‖Σx̂‖ ≤ n); rounding can only push it below 0 when all rows coincide.
    return ((1 - ((sum_hat * sum_hat).sum(-1) - n) / (n * (n - 1))) / 2).clamp_min(0.0)


def rmg_terms(
    sum_xhat: torch.Tensor, sum_yhat: torch.Tensor, sum_dot: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RMG's numerator M and denominator M + (D_x + D_y)/2, each ≥ 0 by construction, so RMG lies in [0, 1] (a
    theorem: M, D ≥ 0 are means of distances) even where float32 rounding of the rows says otherwise (rmg(x, x)
    gave −6.5e−8). Any leading batch shape (bootstrap replicates)."""
    true_pair = (1 - mean_cosine(sum_dot, n)) / 2
    intra = (_intra_distance(sum_xhat, n) + _intra_distance(sum_yhat, n)) / 2
    return true_pair, true_pair + intra


def rmg_from_moments(m: MomentStatistics) -> torch.Tensor:
    _check(m, "rmg", 2)
    s = m.sums
    true_pair, denominator = rmg_terms(s["sum_xhat"], s["sum_yhat"], s["sum_dot"], m.n)
    if checking_values() and not bool(denominator > 0):
        raise ValueError("rmg: every row of x and y is the same direction; the relative gap is 0/0")
    return true_pair / denominator


# The statistics groups the gap family reads (torchspectral.stats.GROUPS): sums over normalised rows, and for L2I
# the pair distances (a chunked pass of their own, formed only for it).
NEEDS = ("cosine",)
L2I_NEEDS = ("cosine", "l2i")


def _from_data(
    x: torch.Tensor, y: torch.Tensor, metric: str, nan_policy: str, groups: tuple[str, ...] = NEEDS
) -> MomentStatistics:
    return MomentStatistics.from_data(
        x, y, nan_policy=nan_policy, metric=metric, same_dim=SAME_DIM_REASON, groups=groups
    )


@with_validate_args
def modality_gap(x: torch.Tensor, y: torch.Tensor, *, nan_policy: str = "raise") -> torch.Tensor:
    """Distance between the centroids of the normalised modalities, ``‖mean x̂ − mean ŷ‖`` (L2M).

    Shape: x (n, d), y (n, d) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> float(ts.modality_gap(x, 2 * x))
        0.0
    """
    return modality_gap_from_moments(_from_data(x, y, "modality_gap", nan_policy))


@with_validate_args
def l2i(x: torch.Tensor, y: torch.Tensor, *, nan_policy: str = "raise") -> torch.Tensor:
    """Mean distance between normalised true pairs, ``mean ‖x̂_i − ŷ_i‖``. Shape: (n, d), (n, d) → ()."""
    return l2i_from_moments(_from_data(x, y, "l2i", nan_policy, L2I_NEEDS))


@with_validate_args
def true_pair_cosine(x: torch.Tensor, y: torch.Tensor, *, nan_policy: str = "raise") -> torch.Tensor:
    """Mean cosine of true pairs, ``mean ⟨x̂_i, ŷ_i⟩``. Shape: (n, d), (n, d) → ()."""
    return true_pair_cosine_from_moments(_from_data(x, y, "true_pair_cosine", nan_policy))


@with_validate_args
def cosine_gap(x: torch.Tensor, y: torch.Tensor, *, nan_policy: str = "raise") -> torch.Tensor:
    """Δcos: mean true-pair cosine minus mean cosine of non-pairs (i ≠ j), without an n×n matrix.

    Shape: (n, d), (n, d) → (); n ≥ 2.
    """
    return cosine_gap_from_moments(_from_data(x, y, "cosine_gap", nan_policy))


@with_validate_args
def rmg(x: torch.Tensor, y: torch.Tensor, *, nan_policy: str = "raise") -> torch.Tensor:
    """Relative modality gap of Schrodi et al. (2025), in [0, 1]; lower = smaller gap. Symmetric in (x, y).

    Shape: (n, d), (n, d) → (); n ≥ 2.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g)
        >>> bool(torch.isclose(ts.rmg(x, y), ts.rmg(y, x)))
        True
    """
    return rmg_from_moments(_from_data(x, y, "rmg", nan_policy))
