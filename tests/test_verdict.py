"""The verdict: the subspace imbalance's definition (against the float64 reference and against SAS where they must
agree), its invariances, and imbalance_verdict's answers and refusals. Its calibration is measured against planted
models in benchmarks/calibration/coverage_verdict.py (docs/verdict.md), not here."""

import numpy as np
import pytest
import reference as ref
import torch

import torchspectral as ts
from torchspectral.verdict import GROUPS, MIN_ROWS_PER_DIMENSION, imbalance_verdict, subspace_scores


def _random_covariances(d: int, seed: int, shared_basis: bool):
    """A valid joint covariance of (x, y): from loadings x = F_x w, y = F_y w (w of width 2d)."""
    rng = np.random.default_rng(seed)
    if shared_basis:
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
        a2, b2 = rng.uniform(0.1, 5.0, d), rng.uniform(0.1, 5.0, d)
        c = rng.uniform(-0.9, 0.9, d)
        fx = np.concatenate([basis * np.sqrt(a2), np.zeros((d, d))], 1)
        fy = np.concatenate([basis * (np.sqrt(b2) * c), basis * (np.sqrt(b2) * np.sqrt(1 - c**2))], 1)
    else:
        fx, fy = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d)) * rng.uniform(0.2, 2.0, 2 * d)
    return fx @ fx.T, fy @ fy.T, fx @ fy.T


@pytest.mark.parametrize("d", [10, 33, 64])
@pytest.mark.parametrize("shared_basis", [True, False])
def test_subspace_scores_match_the_reference(d, shared_basis) -> None:
    cov_x, cov_y, cov_xy = _random_covariances(d, seed=d, shared_basis=shared_basis)
    got = subspace_scores(*(torch.from_numpy(c) for c in (cov_x, cov_y, cov_xy)), q=0.2)
    want = ref.subspace_scores(cov_x, cov_y, cov_xy, q=0.2)
    np.testing.assert_allclose([float(g) for g in got], want, rtol=0, atol=1e-10)


def test_subspace_scores_equal_sas_when_the_covariances_share_eigenvectors() -> None:
    # Every C is then diagonal in the common eigenvectors, K = diag(ρ_k), and S = Σ_A λ|ρ| / Σ_A λ: SAS itself.
    for seed in range(3):
        cov_x, cov_y, cov_xy = _random_covariances(48, seed=seed, shared_basis=True)
        s_xy, s_yx = ref.subspace_scores(cov_x, cov_y, cov_xy, q=0.1)
        per_mode = []
        for anchor, other, cross in ((cov_x, cov_y, cov_xy), (cov_y, cov_x, cov_xy.T)):
            lam, vecs = np.linalg.eigh(anchor)
            lam, vecs = lam[::-1], vecs[:, ::-1]
            rho = np.einsum("ik,ij,jk->k", vecs, cross, vecs) / np.sqrt(
                lam * np.einsum("ik,ij,jk->k", vecs, other, vecs)
            )
            active = lam >= np.quantile(lam, 0.9)
            per_mode.append((lam[active] * np.abs(rho[active])).sum() / lam[active].sum())
        np.testing.assert_allclose([s_xy, s_yx], per_mode, rtol=0, atol=1e-10)


def test_subspace_scores_do_not_depend_on_the_basis_inside_a_degenerate_subspace() -> None:
    # Two equal anchor eigenvalues, one mode shared with y (ρ = 0.9), one not (ρ = 0): any basis of the pair is
    # an eigenbasis. Per-mode SAS depends on which one eigh returns; S must not.
    d = 20
    lam = np.linspace(1.0, 0.1, d)
    lam[1] = lam[0]
    rho = np.zeros(d)
    rho[0], rho[2:] = 0.9, 0.5
    base = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))[0]
    values = []
    for angle in (0.0, 0.3, np.pi / 4):
        rotation = np.eye(d)
        rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        basis = base @ rotation  # a different eigenbasis of the same Σ_x
        cov_x = (basis * lam) @ basis.T
        cov_y = base @ base.T  # y isotropic: its eigenvectors say nothing about the pair's basis
        cov_xy = (base * (rho * np.sqrt(lam))) @ base.T  # the correlations live in the first basis
        values.append(ref.subspace_scores(cov_x, cov_y, cov_xy, q=0.1)[0])
        got = subspace_scores(*(torch.from_numpy(c) for c in (cov_x, cov_y, cov_xy)), q=0.1)[0]
        assert abs(float(got) - values[-1]) < 1e-10
    np.testing.assert_allclose(values, values[0], rtol=0, atol=1e-12)


def _lossy_pair(n: int, seed: int, text_loses: bool = True):
    """8 shared factors; one tower also carries 8 strong directions of its own."""
    g = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    z = draw(n, 8)
    plain = torch.cat([3 * z, draw(n, 56)], 1)
    styled = torch.cat([3 * z, 4 * draw(n, 8), draw(n, 48)], 1)
    return (plain, styled) if text_loses else (styled, plain)


def test_the_verdict_names_the_tower_whose_dominant_subspace_the_other_lacks() -> None:
    image, text = _lossy_pair(4000, seed=0)
    verdict = imbalance_verdict(image, text, names=("image", "text"))
    assert verdict.bottleneck == "text" and verdict.low > 0 and verdict.estimate > 0
    assert verdict.statistic == "subspace_sas_imbalance" and "text is the bottleneck" in verdict.reason
    assert verdict.agrees is True and verdict.delta_sas > 0
    flipped = imbalance_verdict(text, image, names=("text", "image"))
    assert flipped.bottleneck == "text" and flipped.high < 0
    assert flipped.as_dict().keys() >= {"bottleneck", "statistic", "estimate", "low", "high", "reason"}


def test_the_verdict_is_invariant_to_scale_translation_and_joint_rotation() -> None:
    x, y = _lossy_pair(3000, seed=1)
    base = imbalance_verdict(x, y)
    rotation = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    for a, b in ((1e3 * x + 5.0, 1e-3 * y - 2.0), (x @ rotation, y @ rotation)):
        other = imbalance_verdict(a, b)
        assert other.bottleneck == base.bottleneck
        np.testing.assert_allclose([other.estimate, other.se], [base.estimate, base.se], rtol=1e-6)


def test_exchangeable_towers_are_not_called_imbalanced() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4000, 64, generator=g, dtype=torch.float64) * torch.linspace(3, 0.5, 64, dtype=torch.float64)
    x = z + torch.randn(4000, 64, generator=g, dtype=torch.float64)
    y = z + torch.randn(4000, 64, generator=g, dtype=torch.float64)
    verdict = imbalance_verdict(x, y)
    assert verdict.low <= 0 <= verdict.high and verdict.bottleneck == "none"


def test_clusters_count_duplicated_rows_once() -> None:
    # Each pair three times (an image with three identical captions): the moments, the estimate and, with the
    # clusters given, the standard error are those of the pairs once; without clusters the se would shrink.
    x, y = _lossy_pair(1500, seed=4)
    once = imbalance_verdict(x, y)
    ids = torch.arange(1500).repeat_interleave(3)
    thrice = imbalance_verdict(x.repeat_interleave(3, 0), y.repeat_interleave(3, 0), clusters=ids)
    np.testing.assert_allclose([thrice.estimate, thrice.se], [once.estimate, once.se], rtol=1e-9)
    naive = imbalance_verdict(x.repeat_interleave(3, 0), y.repeat_interleave(3, 0))
    assert naive.se < 0.7 * once.se


def test_too_few_clusters_is_inconclusive_with_the_reason() -> None:
    x, y = _lossy_pair(3000, seed=5)
    verdict = imbalance_verdict(x, y, clusters=torch.arange(3000) % (GROUPS - 1))
    assert verdict.bottleneck == "inconclusive" and "clusters" in verdict.reason


def test_too_few_rows_is_inconclusive_with_the_reason() -> None:
    x, y = _lossy_pair(4 * MIN_ROWS_PER_DIMENSION * 7 - 1, seed=5)  # d = 64 → 7 active dimensions
    verdict = imbalance_verdict(x, y)
    assert verdict.bottleneck == "inconclusive" and verdict.estimate is None and "too few" in verdict.reason
    assert verdict.delta_sas is not None


def test_a_tower_without_variance_in_the_others_subspace_is_inconclusive() -> None:
    x, _ = _lossy_pair(3000, seed=6)
    y = torch.zeros_like(x)
    y[:, :3] = x[:, :3] + torch.randn(3000, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    verdict = imbalance_verdict(x, y)  # y has rank 3: no variance in 4 of the 7 directions of x's top subspace
    assert verdict.bottleneck == "inconclusive" and "no variance" in verdict.reason


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"q": 0.0}, "q is the fraction"),
        ({"confidence": 1.0}, "confidence must lie"),
        ({"splits": 0}, "splits must be a positive integer"),
        ({"clusters": torch.zeros(10)}, "clusters must be an integer tensor"),
    ],
)
def test_bad_arguments_are_named(kwargs, message) -> None:
    x, y = _lossy_pair(500, seed=7)
    with pytest.raises(ValueError, match=message):
        imbalance_verdict(x, y, **kwargs)


def test_bad_pairs_are_refused_like_every_metric() -> None:
    x, y = _lossy_pair(500, seed=8)
    with pytest.raises(ValueError, match="needs d_x = d_y"):
        imbalance_verdict(x, y[:, :32])
    with pytest.raises(ValueError, match="same number of paired rows"):
        imbalance_verdict(x, y[:-1])
    with pytest.raises((TypeError, ValueError), match=r"2-D|shape"):
        imbalance_verdict(x[:, 0], y[:, 0])
    with pytest.raises((TypeError, ValueError), match=r"floating|dtype"):
        imbalance_verdict(x.long(), y.long())
    y[3, 3] = float("inf")
    with pytest.raises(ValueError, match=r"Inf|NaN"):
        imbalance_verdict(x, y)
    y[3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        imbalance_verdict(x, y)


def test_ts_exports_the_verdict() -> None:
    assert ts.imbalance_verdict is imbalance_verdict and ts.Verdict.__name__ == "Verdict"
