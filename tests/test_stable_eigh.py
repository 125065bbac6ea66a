"""Eigen-gradients: equal to autograd on generic input, finite on degenerate spectra (issue: spectral depth)."""

from __future__ import annotations

import pytest
import torch
from conftest import paired
from torch.autograd import gradcheck

import torchspectral as ts
from torchspectral.spectral import StableEigh


def symmetric(a: torch.Tensor) -> torch.Tensor:
    return (a + a.mT) / 2


def test_matches_torch_autograd_on_separated_spectra() -> None:
    g = torch.Generator().manual_seed(0)
    a = symmetric(torch.randn(6, 6, dtype=torch.float64, generator=g)).requires_grad_()
    weights = torch.randn(6, 6, dtype=torch.float64, generator=g)

    def loss(eigh, a):
        values, vectors = eigh(symmetric(a))
        # A sign-invariant function of the eigenvectors (v ↦ −v leaves it unchanged).
        return (values * torch.arange(6)).sum() + ((vectors**2) * weights).sum()

    (ours,) = torch.autograd.grad(loss(StableEigh.apply, a), a)
    (theirs,) = torch.autograd.grad(loss(torch.linalg.eigh, a), a)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_gradcheck() -> None:
    a = symmetric(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    a.requires_grad_()
    assert gradcheck(lambda a: StableEigh.apply(symmetric(a))[0], (a,))
    assert gradcheck(lambda a: (StableEigh.apply(symmetric(a))[1] ** 2).sum(-1), (a,))


def test_batched() -> None:
    a = symmetric(torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    a.requires_grad_()
    assert gradcheck(lambda a: (StableEigh.apply(symmetric(a))[1] ** 2).sum(-1), (a,))


def degenerate_cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    # Isotropic: an orthonormal design gives a covariance with all eigenvalues exactly equal.
    q = torch.linalg.qr(torch.randn(64, 8, dtype=torch.float64, generator=g))[0]
    iso = (q - q.mean(0)) * 8.0
    x, y = paired(40, 6, seed=4)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return {
        "isotropic": (iso, iso @ torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64, generator=g))[0]),
        "n_below_d": (
            torch.randn(5, 12, dtype=torch.float64, generator=g),
            torch.randn(5, 12, dtype=torch.float64, generator=g),
        ),
        "duplicated_rows": (torch.cat([x[:10]] * 4), torch.cat([y[:10]] * 4)),
        "constant_features": (torch.cat([x[:, :3], torch.ones(40, 3, dtype=torch.float64)], 1), y),
    }


SPECTRAL_METRICS = {
    "sas": lambda x, y: ts.sas(x, y),
    "sas_all_modes": lambda x, y: ts.sas(x, y, q=1.0),
    "spectral_alignment": lambda x, y: ts.spectral_alignment(x, y).imbalance + ts.spectral_alignment(x, y).symmetric,
    "svcca": lambda x, y: ts.svcca(x, y),
    "svcca_standardized": lambda x, y: ts.svcca(x, y, keep=2, standardize=True),
}


@pytest.mark.parametrize("case", list(degenerate_cases()))
@pytest.mark.parametrize("metric", list(SPECTRAL_METRICS))
def test_gradients_finite_on_degenerate_spectra(case: str, metric: str) -> None:
    x, y = degenerate_cases()[case]
    x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
    value = SPECTRAL_METRICS[metric](x, y)
    value.backward()
    assert torch.isfinite(value)
    assert bool(torch.isfinite(x.grad).all()) and bool(torch.isfinite(y.grad).all()), (case, metric)


def test_torch_eigh_would_have_failed_on_the_isotropic_case() -> None:
    """The degenerate cases above are real: plain torch.linalg.eigh gives non-finite gradients there."""
    x, _ = degenerate_cases()["isotropic"]
    x = x.clone().requires_grad_()
    cov = (x - x.mean(0)).T @ (x - x.mean(0)) / x.shape[0]
    _, vectors = torch.linalg.eigh(cov)
    (vectors[:, -1] ** 4).sum().backward()
    assert not bool(torch.isfinite(x.grad).all())
