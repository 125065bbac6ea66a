"""docs/definitions.md#numerics: no catastrophic cancellation, half-precision inputs, layouts, degenerate features."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch
from conftest import paired
from sas_defaults import default_eps

import torchspectral as ts

TRANSLATION_INVARIANT = {
    "sas": lambda x, y: ts.sas(x, y),
    "sas_y_to_x": lambda x, y: ts.sas(y, x),
    "sas_all_modes": lambda x, y: ts.sas(x, y, q=1.0),
    "cka": ts.cka,
    "cka_unbiased": lambda x, y: ts.cka(x, y, unbiased=True),
    "svcca": ts.svcca,
    "svcca_paper": lambda x, y: ts.svcca(x, y, keep=10, standardize=True),
    "coral": ts.coral,
}


def unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("name", list(TRANSLATION_INVARIANT))
def test_offset_1e3_in_float32(name: str) -> None:
    """+1e3 on every coordinate of float32 embeddings leaves translation-invariant metrics within 1e-6."""
    x, y = paired(3000, 32, seed=21)
    x, y = unit_rows(x + 0.5), unit_rows(y - 0.2)  # CLIP-like: unit norm with a common offset
    offset_x = torch.from_numpy(x + 1e3).float()
    offset_y = torch.from_numpy(y + 1e3).float()
    # Subtracting the offset again is exact in float32, so both calls see the same data up to translation.
    plain_x = (offset_x.double() - 1e3).float()
    plain_y = (offset_y.double() - 1e3).float()
    metric = TRANSLATION_INVARIANT[name]
    assert float(metric(offset_x, offset_y)) == pytest.approx(float(metric(plain_x, plain_y)), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_upcast(dtype: torch.dtype) -> None:
    x, y = paired(500, 16, seed=22, offset=0.3)
    hx, hy = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
    # Reference on exactly the half-precision values: the package must add no more than float32 error.
    rx, ry = hx.double().numpy(), hy.double().numpy()
    report = ts.alignment_report(hx, hy)
    assert report["sas_x_to_y"] == pytest.approx(R.sas(rx, ry), rel=1e-5)
    assert report["sas_y_to_x"] == pytest.approx(R.sas(ry, rx), rel=1e-5)
    assert report["cka_linear"] == pytest.approx(R.cka_linear(rx, ry), rel=1e-5)
    assert report["cka_linear_unbiased"] == pytest.approx(R.cka_linear(rx, ry, unbiased=True), rel=1e-5)
    assert report["coral"] == pytest.approx(R.coral(rx, ry), rel=1e-5)
    assert report["rmg"] == pytest.approx(R.rmg(rx, ry), rel=1e-5)
    assert ts.sas(hx, hy).dtype == torch.float64


def test_mixed_input_dtypes_promote() -> None:
    x, y = paired(200, 8, seed=23)
    got = ts.cka(torch.from_numpy(x).float(), torch.from_numpy(y))
    assert float(got) == pytest.approx(R.cka_linear(np.float32(x).astype(np.float64), y), rel=1e-10)


@pytest.mark.parametrize("layout", ["transposed", "strided_rows", "strided_columns", "expanded_slice"])
def test_non_contiguous_inputs(layout: str) -> None:
    x, y = paired(400, 20, seed=24)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    if layout == "transposed":
        ax, ay = x.T.contiguous().T, y.T.contiguous().T
    elif layout == "strided_rows":
        ax = torch.stack([x, torch.full_like(x, 9.0)], dim=1).reshape(-1, 20)[::2]
        ay = torch.stack([y, torch.full_like(y, 9.0)], dim=1).reshape(-1, 20)[::2]
    elif layout == "strided_columns":
        big_x, big_y = torch.repeat_interleave(x, 2, dim=1), torch.repeat_interleave(y, 2, dim=1)
        ax, ay = big_x[:, ::2], big_y[:, ::2]
    else:
        ax, ay = x[:, :10], y[:, 5:15]
        x, y = ax.contiguous(), ay.contiguous()
    assert not (ax.is_contiguous() and ay.is_contiguous())
    got, want = ts.alignment_report(ax, ay), ts.alignment_report(x, y)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-14), key


def test_constant_features_give_finite_values() -> None:
    x, y = paired(300, 16, seed=25)
    x[:, 3] = 2.5
    y[:, [0, 7]] = -1.0
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    for preset in ("default", "paper"):
        report = ts.alignment_report(x, y, preset=preset)
        assert all(np.isfinite(v) for v in report.values()), report
    eps = default_eps(x.numpy(), y.numpy())  # the default ε is scale-free; the reference takes it as an argument
    assert float(ts.sas(x, y)) == pytest.approx(R.sas(x.numpy(), y.numpy(), eps=eps), rel=1e-10)


def test_rank_deficient_data_gives_finite_values() -> None:
    """n < d: the covariance has d − n + 1 zero eigenvalues; every metric stays finite."""
    x, y = paired(12, 30, seed=26)
    report = ts.alignment_report(torch.from_numpy(x), torch.from_numpy(y))
    assert all(np.isfinite(v) for v in report.values()), report
    assert report["sas_x_to_y"] == pytest.approx(R.sas(x, y, eps=default_eps(x, y)), rel=1e-8)


@pytest.mark.parametrize(("n", "d"), [(10, 16), (20, 64), (50, 256)])
def test_rank_deficient_offset_float32_gives_finite_sas(n: int, d: int) -> None:
    """float32, n < d, far from the origin: null modes get rounding-negative eigenvalues, which once turned ρ's
    denominator into sqrt(negative) = NaN and spread through SAS despite their zero weight."""
    g = torch.Generator().manual_seed(n)
    x = 3 * torch.randn(n, d, generator=g) + 5
    y = x + 0.3 * torch.randn(n, d, generator=g)
    want = R.sas(x.double().numpy(), y.double().numpy())
    sa = ts.spectral_alignment(x, y)
    assert float(sa.x_to_y) == pytest.approx(want, rel=1e-5)
    assert np.isfinite(float(sa.y_to_x)) and np.isfinite(sa.rho_x.numpy()).all()
    x.requires_grad_(True)
    ts.sas(x, y).backward()
    assert torch.isfinite(x.grad).all()
    prior = ts.SpectralPrior.fit(x.detach(), y)
    assert torch.isfinite(prior.score(x.detach(), y)).all()


def test_all_constant_modality_is_refused() -> None:
    x = torch.randn(50, 4, dtype=torch.float64)
    y = torch.ones(50, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="zero variance"):
        ts.sas(y, x)
    with pytest.raises(ValueError, match="zero variance"):
        ts.spectral_alignment(x, y)
    with pytest.raises(ValueError, match="zero variance"):
        ts.cka(x, y)
    with pytest.raises(ValueError, match="zero variance"):
        ts.svcca(x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "d", "keep"), [(5, 8, 5), (100, 384, 100)])
def test_svcca_rank_of_centred_data_is_at_most_n_minus_1(dtype: torch.dtype, n: int, d: int, keep: int) -> None:
    """n ≤ d: the centred data spans at most n − 1 directions; the rest of the spectrum is rounding, in either dtype."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 0.5
    y = x + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match=f"keep={keep} exceeds the numerical rank {n - 1} of x's covariance"):
        ts.svcca(x.to(dtype), y.to(dtype), keep=keep)
    got = float(ts.svcca(x.to(dtype), y.to(dtype), keep=n - 1))
    assert got == pytest.approx(float(ts.svcca(x, y, keep=n - 1)), rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_svcca_rank_tolerance_follows_the_compute_dtype(dtype: torch.dtype) -> None:
    """16 features spanning 8 directions: float32 rounding leaves the other 8 eigenvalues at ~1e-7 of the top, which
    must not count as rank (the tolerance is relative to the compute dtype's epsilon)."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(500, 8, generator=g, dtype=torch.float64)
    x = torch.cat([base, base @ torch.randn(8, 8, generator=g, dtype=torch.float64)], 1)
    y = x + 0.3 * torch.randn(500, 16, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="keep=9 exceeds the numerical rank 8 of x's covariance"):
        ts.svcca(x.to(dtype), y.to(dtype), keep=9)
    m = ts.Moments()
    for start in range(0, 500, 200):  # the precision is part of the accumulated state
        m.update(x[start : start + 200].to(dtype), y[start : start + 200].to(dtype))
    with pytest.raises(ValueError, match="numerical rank 8"):
        m.svcca(keep=9)
    assert float(ts.svcca(x.to(dtype), y.to(dtype))) == pytest.approx(float(ts.svcca(x, y)), rel=1e-4)


def test_svcca_paper_preset_does_not_blow_up_near_constant_features() -> None:
    """standardize=True floors σ at 1e-8 as the source paper's σ + 1e-8 does: a feature with σ = 1e-12 (constant
    up to rounding, as in real MiniLM embeddings) stays negligible instead of becoming a unit-variance noise
    feature, so the preset no longer depends on the input dtype."""
    x, y = paired(500, 24, seed=31, offset=0.2)
    rng = np.random.default_rng(31)
    constant_x, constant_y = x.copy(), y.copy()
    constant_x[:, [3, 17]] = 0.1
    constant_y[:, 5] = -0.2
    x, y = constant_x.copy(), constant_y.copy()
    x[:, [3, 17]] += 1e-12 * rng.normal(size=(500, 2))
    y[:, 5] += 1e-12 * rng.normal(size=500)
    want = R.svcca(constant_x, constant_y, keep=10, standardize=True)
    x64, y64 = torch.from_numpy(x), torch.from_numpy(y)
    assert float(ts.svcca(x64, y64, keep=10, standardize=True)) == pytest.approx(want, rel=1e-8)
    assert float(ts.svcca(x64.float(), y64.float(), keep=10, standardize=True)) == pytest.approx(want, rel=1e-5)
    assert ts.alignment_report(x64, y64, preset="paper")["svcca"] == pytest.approx(want, rel=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_gap_family_stays_in_its_mathematical_range(dtype: torch.dtype) -> None:
    """float32 rounding of normalised rows made rmg(x, x) = −6.5e−8 and true_pair_cosine(x, x) = 1.00000006: values
    outside ranges that are theorems (cosines in [−1, 1], RMG in [0, 1])."""
    g = torch.Generator().manual_seed(5)
    for seed in range(5):
        x = (torch.randn(257, 33, generator=g) * (seed + 1) + 0.3).to(dtype)
        assert float(ts.true_pair_cosine(x, x)) <= 1.0
        assert float(ts.true_pair_cosine(x, -x)) >= -1.0
        assert 0.0 <= float(ts.rmg(x, x)) <= 1.0
        assert float(ts.rmg(x, x)) == pytest.approx(0.0, abs=1e-6)
        assert float(ts.true_pair_cosine(x, x)) == pytest.approx(1.0, abs=1e-6)
