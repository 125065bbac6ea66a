"""SVCCA (docs/definitions.md#svcca; Raghu et al. 2017): CCA between the top principal subspaces of each modality.

Closed form from covariances: keep the top-k eigenvectors P_x of Σ_x (k = fewest explaining ≥ keep
of the variance, or an int), likewise P_y; whiten with the kept eigenvalues; the canonical
correlations are the singular values of ``Λ_x^{-1/2} P_xᵀ Σ_xy P_y Λ_y^{-1/2}``; the score is their
mean. Deterministic. ``keep=10, standardize=True`` is the source paper's setting (it standardised
each feature and used a 10-dim randomised SVD with iterative CCA; in exact arithmetic that is the
mean cosine of the principal angles between the two top-10 subspaces).
"""

from __future__ import annotations

import torch

from torchspectral.spectral import inverse_std
from torchspectral.stats import MomentStatistics
from torchspectral.validation import with_validate_args

# Whitening a direction whose variance is below this fraction of the largest would amplify noise by up to
# 1/sqrt(RANK_RTOL) (the near-singular guard of docs/definitions.md#svcca).
RANK_RTOL = 1e-10

# The statistics groups it reads (torchspectral.stats.GROUPS): the covariance blocks only.
NEEDS = ("covariance",)


def _numerical_rank(eigenvalues: torch.Tensor, n: int, rounding: float) -> int:
    """Number of principal directions that are data, not rounding, of a covariance of n centred rows.

    Eigenvalues at or below ``λ_1 · max(RANK_RTOL, d·ε)`` do not count, with ε the epsilon of the arithmetic the
    covariance was summed in (``torch.linalg.matrix_rank``'s default tolerance for a d×d matrix): float32 rounding
    alone leaves null directions at ~1e-7·λ_1. Centring removes one direction, so the rank is at most n − 1
    whatever the spectrum says.
    """
    lam = eigenvalues.detach()
    if not bool(lam[0] > 0):
        return 0
    tolerance = lam[0] * max(RANK_RTOL, lam.numel() * rounding)
    return min(int((lam > tolerance).sum()), n - 1)


def _kept(eigenvalues: torch.Tensor, keep: float | int, which: str, n: int, rounding: float) -> int:
    lam = eigenvalues.detach()
    rank = _numerical_rank(lam, n, rounding)
    if rank == 0:
        raise ValueError(f"svcca: {which} has zero variance; there is no principal subspace to compare")
    if isinstance(keep, bool) or not isinstance(keep, (int, float)):
        raise TypeError(
            f"svcca: keep must be a variance fraction (float) or a number of directions (int), got {keep!r}"
        )
    if isinstance(keep, int):
        if keep < 1:
            raise ValueError(f"svcca: keep={keep} must keep at least one direction")
        if keep > rank:
            raise ValueError(
                f"svcca: keep={keep} exceeds the numerical rank {rank} of {which}'s covariance "
                f"(d={lam.numel()}, n={n}: centred data spans at most n − 1 directions; too few pairs or collinear "
                "features)"
            )
        return keep
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"svcca: a float keep is a variance fraction in (0, 1], got {keep}")
    fraction = torch.cumsum(lam, 0) / lam.sum()
    # Fewest leading directions whose cumulative variance fraction reaches `keep`, within the numerical rank.
    return min(int((fraction < keep).sum()) + 1, rank)


def svcca_from_moments(m: MomentStatistics, keep: float | int = 0.99, standardize: bool = False) -> torch.Tensor:
    m.require_pairs("svcca", 2, "a covariance needs two pairs")
    lam_x, vec_x = m.spectrum("x", standardize=standardize)
    lam_y, vec_y = m.spectrum("y", standardize=standardize)
    kx, ky = _kept(lam_x, keep, "x", m.n, m.rounding), _kept(lam_y, keep, "y", m.n, m.rounding)
    cross = m.covariance("xy")
    if standardize:
        cross = cross * inverse_std(m.covariance("x"))[:, None] * inverse_std(m.covariance("y"))[None, :]
    whitened = lam_x[:kx].rsqrt()[:, None] * (vec_x[:, :kx].T @ cross @ vec_y[:, :ky]) * lam_y[:ky].rsqrt()[None, :]
    return torch.linalg.svdvals(whitened).mean()


@with_validate_args
def svcca(
    x: torch.Tensor,
    y: torch.Tensor,
    keep: float | int = 0.99,
    standardize: bool = False,
    *,
    nan_policy: str = "raise",
) -> torch.Tensor:
    """Mean canonical correlation between the top principal subspaces of x (n, d_x) and y (n, d_y).

    Args:
        keep: float in (0, 1] = variance fraction each modality keeps (default 0.99); int = number
            of principal directions.
        standardize: divide each feature by its standard deviation σ first, with σ floored at 1e-8 as the
            source paper's σ + 1e-8 does: near-constant features (σ ≪ 1e-8, rounding) stay negligible instead of
            being blown up to unit variance, and constant features stay 0.

    Shape: x (n, d_x), y (n, d_y) → ().

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(500, 10, generator=torch.Generator().manual_seed(0))
        >>> round(float(ts.svcca(x, x @ torch.linalg.qr(torch.randn(10, 10))[0])), 6)
        1.0
    """
    m = MomentStatistics.from_data(x, y, nan_policy=nan_policy, metric="svcca", groups=NEEDS)
    return svcca_from_moments(m, keep=keep, standardize=standardize)
