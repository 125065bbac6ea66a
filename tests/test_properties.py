"""The invariances and limits of docs/definitions.md#sas (and their analogues for the other metrics), with
hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import paired
from hypothesis import given
from hypothesis import strategies as st

import torchspectral as ts
from torchspectral.spectral import active_masks

seeds = st.integers(0, 10_000)


def data(seed: int, n: int = 300, d: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(n, d, seed=seed)
    return torch.from_numpy(x), torch.from_numpy(y)


def random_orthogonal(d: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0])


TRANSLATION_INVARIANT = {
    "sas": lambda x, y: ts.sas(x, y),
    "sas_y_to_x": lambda x, y: ts.sas(y, x),
    "cka": ts.cka,
    "cka_unbiased": lambda x, y: ts.cka(x, y, unbiased=True),
    "svcca": ts.svcca,
    "svcca_paper": lambda x, y: ts.svcca(x, y, keep=8, standardize=True),
    "coral": ts.coral,
}


@given(seed=seeds, shift_x=st.floats(-50, 50), shift_y=st.floats(-50, 50))
@pytest.mark.parametrize("name", list(TRANSLATION_INVARIANT))
def test_translation_invariance(name: str, seed: int, shift_x: float, shift_y: float) -> None:
    x, y = data(seed)
    metric = TRANSLATION_INVARIANT[name]
    shifted = metric(x + shift_x * torch.linspace(-1, 1, x.shape[1], dtype=x.dtype), y + shift_y)
    assert float(shifted) == pytest.approx(float(metric(x, y)), rel=1e-9, abs=1e-12)


@given(seed=seeds, scale_x=st.floats(0.05, 20), scale_y=st.floats(0.05, 20))
def test_sas_isotropic_scaling_invariance(seed: int, scale_x: float, scale_y: float) -> None:
    x, y = data(seed)
    # Invariant up to ε, which sits inside ρ's root: scaling by (a, b) is exactly the same as ε/(a²b²).
    eps = 1e-8
    before = ts.spectral_alignment(x, y, eps=eps / (scale_x * scale_y) ** 2)
    after = ts.spectral_alignment(scale_x * x, scale_y * y, eps=eps)
    assert float(after.x_to_y) == pytest.approx(float(before.x_to_y), rel=1e-9)
    assert float(after.y_to_x) == pytest.approx(float(before.y_to_x), rel=1e-9)
    # And the effect of ε itself is negligible unless the embeddings are shrunk towards λσ² ~ ε.
    if min(scale_x, scale_y) >= 0.5:
        assert float(after.x_to_y) == pytest.approx(float(ts.sas(x, y)), rel=1e-3)
    assert float(ts.cka(scale_x * x, scale_y * y)) == pytest.approx(float(ts.cka(x, y)), rel=1e-10)


@given(seed=seeds)
def test_joint_orthogonal_invariance(seed: int) -> None:
    x, y = data(seed)
    q = random_orthogonal(x.shape[1], seed + 1)
    before, after = ts.spectral_alignment(x, y), ts.spectral_alignment(x @ q, y @ q)
    assert float(after.x_to_y) == pytest.approx(float(before.x_to_y), rel=1e-9)
    assert float(after.y_to_x) == pytest.approx(float(before.y_to_x), rel=1e-9)
    for metric in (ts.coral, ts.modality_gap, ts.true_pair_cosine, ts.rmg, ts.cosine_gap):
        assert float(metric(x @ q, y @ q)) == pytest.approx(float(metric(x, y)), rel=1e-9, abs=1e-13)


def test_sas_is_not_invariant_to_rotating_one_modality() -> None:
    """The source paper claims it is; it is not (docs/definitions.md#sas). CKA, by contrast, is."""
    x, y = data(3)
    q = random_orthogonal(x.shape[1], 4)
    assert abs(float(ts.sas(x, y @ q)) - float(ts.sas(x, y))) > 1e-2
    assert float(ts.cka(x, y @ q)) == pytest.approx(float(ts.cka(x, y)), rel=1e-10)


@given(seed=seeds)
def test_identical_modalities(seed: int) -> None:
    x, _ = data(seed)
    sa = ts.spectral_alignment(x, x)
    assert float(sa.x_to_y) == pytest.approx(1.0, abs=1e-6)  # ρ_k = λ_k/sqrt(λ_k² + ε)
    assert float(sa.imbalance) == 0.0
    assert float(ts.cka(x, x)) == pytest.approx(1.0, abs=1e-12)
    assert float(ts.cka(x, x, unbiased=True)) == pytest.approx(1.0, abs=1e-12)
    assert float(ts.svcca(x, x)) == pytest.approx(1.0, abs=1e-9)
    assert float(ts.coral(x, x)) == 0.0
    assert float(ts.modality_gap(x, x)) == 0.0
    assert float(ts.rmg(x, x)) == pytest.approx(0.0, abs=1e-12)
    assert float(ts.true_pair_cosine(x, x)) == pytest.approx(1.0, abs=1e-12)


def test_independent_modalities_have_small_rho() -> None:
    g = torch.Generator().manual_seed(0)
    n = 4000
    x = torch.randn(n, 16, generator=g, dtype=torch.float64) * torch.linspace(1, 3, 16, dtype=torch.float64)
    y = torch.randn(n, 16, generator=g, dtype=torch.float64)
    sa = ts.spectral_alignment(x, y, q=1.0)
    assert float(sa.rho_x.abs().max()) < 5 / n**0.5
    assert float(sa.x_to_y) < 3 / n**0.5


@pytest.mark.parametrize("d,expected", [(512, 52), (768, 77), (1152, 116)])
def test_active_set_sizes_with_distinct_eigenvalues(d: int, expected: int) -> None:
    eigenvalues = torch.sort(
        torch.rand(d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)), descending=True
    )[0]
    assert int(active_masks(eigenvalues, 0.1).sum()) == expected
    assert int(active_masks(eigenvalues, 1.0).sum()) == d


def test_active_set_of_real_covariance_is_top_decile() -> None:
    x, y = paired(3000, 512, seed=9)
    sa = ts.spectral_alignment(torch.from_numpy(x), torch.from_numpy(y))
    assert int(sa.active_x.sum()) == 52 and bool(sa.active_x[:52].all())
    assert bool((sa.eigenvalues_x[:-1] >= sa.eigenvalues_x[1:]).all())
