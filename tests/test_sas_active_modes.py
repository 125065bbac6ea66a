"""The score-only SAS (report, registry, bootstrap) projects only the active modes; it must equal the full path."""

from __future__ import annotations

import pytest
import torch

from torchspectral.functional.sas import sas_scores_from_moments, spectral_alignment_from_moments
from torchspectral.stats import MomentStatistics


@pytest.mark.parametrize(
    ("n", "d", "q"),
    [
        (400, 32, 0.1),
        (400, 32, 1.0),  # every mode active
        (10, 24, 0.1),  # n < d: repeated zero eigenvalues; the active set follows the quantile rule there too
        (10, 24, 0.8),  # ... and reaches into the zero eigenvalues
        (300, 16, 0.37),
    ],
)
def test_active_mode_scores_equal_the_full_spectral_alignment(n, d, q) -> None:
    g = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 + 0.5 * torch.randn(n, d, generator=g)
    m = MomentStatistics.from_data(x, y)
    full = spectral_alignment_from_moments(m, q=q)
    scores = sas_scores_from_moments(m, q=q)
    for name, value in (("sas_x_to_y", full.x_to_y), ("sas_y_to_x", full.y_to_x), ("sas_imbalance", full.imbalance)):
        torch.testing.assert_close(scores[name], value, rtol=1e-12, atol=1e-14, msg=name)


def test_isotropic_ties_at_the_threshold() -> None:
    """Equal eigenvalues at the threshold are all active (λ ≥ t): the prefix must include every tied mode."""
    d = 12
    basis = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64))[0]
    x = torch.cat([basis, -basis]) * 3.0  # covariance ∝ identity: every eigenvalue equal up to rounding
    y = x + 0.1 * torch.randn(2 * d, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = MomentStatistics.from_data(x, y)
    full = spectral_alignment_from_moments(m, q=0.25)
    torch.testing.assert_close(sas_scores_from_moments(m, q=0.25)["sas_x_to_y"], full.x_to_y, rtol=1e-12, atol=1e-14)


def _full_prefix(matrices: torch.Tensor, q: float):
    from torchspectral.spectral import active_masks, eigh_descending

    values, vectors = eigh_descending(matrices)
    masks = torch.stack([active_masks(v, q)[0] for v in values])
    return values, vectors, masks


@pytest.mark.parametrize(
    ("d", "q", "rank"),
    [
        (64, 0.1, None),
        (77, 0.1, None),  # a fractional quantile position
        (200, 0.37, None),
        (6, 0.1, None),  # two computed modes
        (3, 0.1, None),  # too small for a subset: the full decomposition
        (40, 1.0, None),  # every mode active: the full decomposition
        (30, 0.8, 10),  # rank 10 < d: 20 zero eigenvalues, the threshold inside them (ties below the subset)
        (30, 0.1, 10),  # rank-deficient, threshold above the zeros
    ],
)
def test_active_eigenpairs_equal_the_full_decomposition(d, q, rank) -> None:
    """The subset eigensolver (bootstrap SAS replicates) gives the full decomposition's active modes and masks."""
    from torchspectral.spectral import active_eigenpairs

    g = torch.Generator().manual_seed(d)
    a = torch.randn(5, d, rank or d + 3, generator=g, dtype=torch.float64)
    matrices = a @ a.mT / d
    values, vectors, masks = active_eigenpairs(matrices, q)
    full_values, full_vectors, full_masks = _full_prefix(matrices, q)
    top = int(full_masks.sum(1).max())
    assert masks.shape == (5, top) and torch.equal(masks, full_masks[:, :top])
    active = masks
    torch.testing.assert_close(values[active], full_values[:, :top][active], rtol=1e-12, atol=1e-12)
    # Eigenvectors agree up to sign (the modes are distinct where active, except inside a tie of zeros).
    if rank is None or q < 0.5:
        overlap = (vectors.mT @ full_vectors[:, :, :top]).diagonal(dim1=-2, dim2=-1).abs()
        torch.testing.assert_close(overlap[active], torch.ones_like(overlap[active]), rtol=0, atol=1e-10)


def test_active_eigenpairs_ties_fall_back_to_all_modes() -> None:
    """An isotropic matrix: every eigenvalue ties at the threshold, so every mode is active, as on the full path."""
    from torchspectral.spectral import active_eigenpairs

    matrices = 2.0 * torch.eye(20, dtype=torch.float64).repeat(3, 1, 1)
    values, vectors, masks = active_eigenpairs(matrices, 0.1)
    assert masks.shape == (3, 20) and bool(masks.all())
    torch.testing.assert_close(values, torch.full((3, 20), 2.0, dtype=torch.float64))
    torch.testing.assert_close(vectors.mT @ vectors, torch.eye(20, dtype=torch.float64).expand(3, 20, 20))
