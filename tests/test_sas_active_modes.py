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
