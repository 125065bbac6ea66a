"""Bootstrap through weighted moments equals the naive resampling loop; coverage; the ΔSAS permutation null."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import paired

import torchspectral as ts
from torchspectral.uncertainty import MOMENT_METRICS, resample_indices


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(90, 6, seed=71, offset=1.5)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_replicates_equal_the_naive_loop(data) -> None:
    x, y = data
    result = ts.bootstrap(x, y, n_boot=12, seed=5, method="percentile")
    for b, idx in enumerate(resample_indices(90, 12, seed=5)):
        naive = ts.alignment_report(x[idx], y[idx], pairwise=False)
        for name in MOMENT_METRICS:
            assert float(result.replicates[name][b]) == pytest.approx(naive[name], rel=1e-9, abs=1e-12), (b, name)
    point = ts.alignment_report(x, y, pairwise=False)
    assert result.estimate == pytest.approx({k: point[k] for k in MOMENT_METRICS}, rel=1e-12)


def test_a_multiple_of_the_eigh_batch_of_replicates(data) -> None:
    """B = 32 (one full batch of the weighted-moments path, nothing left over) once raised on an empty batch."""
    x, y = data
    result = ts.bootstrap(x, y, ["svcca", "sas_x_to_y"], n_boot=32, seed=3, method="percentile")
    assert {name: v.shape for name, v in result.replicates.items()} == {"svcca": (32,), "sas_x_to_y": (32,)}
    idx = list(resample_indices(90, 32, seed=3))[-1]
    naive = ts.alignment_report(x[idx], y[idx], pairwise=False)
    assert float(result.replicates["svcca"][-1]) == pytest.approx(naive["svcca"], rel=1e-9)


def test_float32_replicates_close_to_naive_loop(data) -> None:
    x, y = (t.float() for t in data)
    result = ts.bootstrap(x, y, ["sas_imbalance", "cka_linear_unbiased", "rmg"], n_boot=5, seed=1, method="percentile")
    for b, idx in enumerate(resample_indices(90, 5, seed=1)):
        naive = ts.alignment_report(x[idx], y[idx], pairwise=False)
        for name in result.replicates:
            assert float(result.replicates[name][b]) == pytest.approx(naive[name], rel=1e-4, abs=1e-6)


def test_deterministic_given_seed(data) -> None:
    x, y = data
    a = ts.bootstrap(x, y, ["sas_x_to_y", "coral"], n_boot=20, seed=3, method="percentile")
    b = ts.bootstrap(x, y, ["sas_x_to_y", "coral"], n_boot=20, seed=3, method="percentile")
    c = ts.bootstrap(x, y, ["sas_x_to_y", "coral"], n_boot=20, seed=4, method="percentile")
    assert a.low == b.low and a.high == b.high
    basic = ts.bootstrap(x, y, ["sas_x_to_y", "coral"], n_boot=20, seed=3, method="basic")
    for name in a.estimate:  # the basic interval reflects the percentile one about the estimate
        assert basic.low[name] == pytest.approx(2 * a.estimate[name] - a.high[name], rel=1e-12)
        assert basic.high[name] == pytest.approx(2 * a.estimate[name] - a.low[name], rel=1e-12)
    assert not torch.equal(a.replicates["coral"], c.replicates["coral"])
    assert "| sas_x_to_y |" in a.table()


def test_different_widths_bootstrap_cross_space_metrics() -> None:
    x, y = paired(60, 7, seed=72, d_y=4)
    result = ts.bootstrap(torch.from_numpy(x), torch.from_numpy(y), n_boot=5, method="percentile")
    assert set(result.estimate) == {"cka_linear", "cka_linear_unbiased", "svcca"}


def population_sas(cov_x: np.ndarray, cov_y: np.ndarray, cov_xy: np.ndarray, q: float) -> float:
    lam, vecs = np.linalg.eigh(cov_x)
    lam, vecs = lam[::-1], vecs[:, ::-1]
    rho = np.einsum("ik,ij,jk->k", vecs, cov_xy, vecs) / np.sqrt(
        lam * np.einsum("ik,ij,jk->k", vecs, cov_y, vecs) + 1e-8
    )
    active = lam >= np.quantile(lam, 1 - q)
    return float((lam[active] * np.abs(rho[active])).sum() / lam[active].sum())


@pytest.mark.slow
def test_interval_coverage_on_a_planted_model() -> None:
    """The true population value lies inside the 95% interval in ≥ 90 of 100 seeded repeats.

    SAS is biased low by O(1/n) (sample eigenvectors mix modes), and a percentile interval carries that
    bias twice; measured here at n = 2000: percentile 82/100 (x→y) and 89/100 (y→x). The "basic" interval
    removes first-order bias and covers; CKA covers with either.
    """
    rng = np.random.default_rng(0)
    d, k, n = 6, 4, 2000
    mix_x = np.diag([3.0, 2.2, 1.6, 1.0]) @ np.linalg.qr(rng.normal(size=(d, d)))[0][:k]
    mix_y = np.diag([1.0, -0.8, 0.5, 0.3]) @ mix_x
    noise_x, noise_y = 0.5, 1.0
    cov_x = mix_x.T @ mix_x + noise_x**2 * np.eye(d)
    cov_y = mix_y.T @ mix_y + noise_y**2 * np.eye(d)
    cov_xy = mix_x.T @ mix_y
    truth = {
        "sas_x_to_y": population_sas(cov_x, cov_y, cov_xy, q=0.5),
        "sas_y_to_x": population_sas(cov_y, cov_x, cov_xy.T, q=0.5),
        "cka_linear": float((cov_xy**2).sum() / (np.linalg.norm(cov_x) * np.linalg.norm(cov_y))),
    }
    covered = {"basic": dict.fromkeys(truth, 0), "percentile": dict.fromkeys(truth, 0)}
    for repeat in range(100):
        g = np.random.default_rng(1000 + repeat)
        z = g.normal(size=(n, k))
        x = torch.from_numpy(z @ mix_x + noise_x * g.normal(size=(n, d)))
        y = torch.from_numpy(z @ mix_y + noise_y * g.normal(size=(n, d)))
        result = ts.bootstrap(x, y, list(truth), n_boot=200, seed=repeat, q=0.5, method="basic")
        for name, value in truth.items():
            covered["basic"][name] += result.low[name] <= value <= result.high[name]
            # The percentile interval from the same replicates.
            low, high = torch.quantile(result.replicates[name], torch.tensor([0.025, 0.975], dtype=torch.float64))
            covered["percentile"][name] += float(low) <= value <= float(high)
    assert all(count >= 90 for count in covered["basic"].values()), covered
    assert covered["percentile"]["cka_linear"] >= 90, covered


def test_permutation_null_equals_recomputation(data) -> None:
    x, y = data
    result = ts.permutation_test(x, y, n_perm=5, seed=9)
    generator = torch.Generator().manual_seed(9)
    for i in range(5):
        perm = torch.randperm(90, generator=generator)
        want = float(ts.spectral_alignment(x, y[perm]).imbalance)
        assert float(result.null[i]) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert result.observed == pytest.approx(float(ts.spectral_alignment(x, y).imbalance), rel=1e-12)


def test_permutation_p_values() -> None:
    from torchspectral.demo import PLANTED, planted_pairs

    image, text = planted_pairs(PLANTED[1], n=3000)
    assert ts.permutation_test(image, text, n_perm=199).p_value == pytest.approx(1 / 200)
    # Independent pairs: no imbalance to find, so the p-values spread over (0, 1] with mean ≈ 1/2.
    p_values = []
    for seed in range(20):
        g = torch.Generator().manual_seed(100 + seed)
        x, y = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
        p_values.append(ts.permutation_test(x, y, n_perm=49, seed=seed).p_value)
    assert 0.3 < np.mean(p_values) < 0.7, p_values


def test_bad_input(data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="unknown metrics"):
        ts.bootstrap(x, y, ["mmd"], method="percentile")
    with pytest.raises(ValueError, match="n_boot must be"):
        ts.bootstrap(x, y, n_boot=1, method="percentile")
    with pytest.raises(ValueError, match="confidence must lie"):
        ts.bootstrap(x, y, confidence=1.0, method="percentile")
    with pytest.raises(ValueError, match="method must be one of"):
        ts.bootstrap(x, y, method="studentized")  # not offered (bca is, since issue 13)
    with pytest.raises(ValueError, match="need d_x = d_y"):
        ts.bootstrap(x, y[:, :3], ["coral"], method="percentile")
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="1 of 90 pairs contain NaN or Inf"):
        ts.bootstrap(bad, y, method="percentile")
    with pytest.raises(ValueError, match="n_perm must be"):
        ts.permutation_test(x, y, n_perm=0)
    with pytest.raises(ValueError, match="needs d_x = d_y"):
        ts.permutation_test(x, y[:, :3])


@pytest.mark.parametrize(
    ("n", "d", "d_y", "dtype", "small_blocks"),
    [
        (90, 6, None, torch.float64, False),
        (90, 6, None, torch.float64, True),  # several row, replicate and counts blocks
        (60, 7, 4, torch.float64, True),  # d_x ≠ d_y: only the cross-space metrics apply
        (5, 3, None, torch.float64, False),  # small n: duplicated rows dominate every resample
        (300, 16, None, torch.float32, True),
    ],
)
def test_fast_engine_equals_exact_engine(monkeypatch, n, d, d_y, dtype, small_blocks) -> None:
    """Same seed ⇒ same resamples; the algebraic replicates equal the weighted-moment ones to rounding."""
    import importlib

    from torchspectral import uncertainty as bootstrap_module
    from torchspectral.uncertainty import algebra

    monkeypatch.setattr(algebra, "quadratic_forms_pay_off", lambda *shape: True)  # the algebra even where d ≪ n
    if small_blocks:
        monkeypatch.setattr(algebra, "ROW_BLOCK", 16)
        monkeypatch.setattr(algebra, "REPLICATE_BLOCK", 3)
        monkeypatch.setattr(importlib.import_module("torchspectral.uncertainty.resampling"), "COUNTS_BLOCK", 7)
    x, y = (torch.from_numpy(t).to(dtype) for t in paired(n, d, seed=73, d_y=d_y, offset=2.0))
    names = [name for name in algebra.ALGEBRA_METRICS if d_y is None or name not in bootstrap_module.SAME_DIM_METRICS]
    fast = ts.bootstrap(x, y, names, n_boot=17, seed=11, method="percentile")
    exact = ts.bootstrap(x, y, names, n_boot=17, seed=11, engine="moments", method="percentile")
    rel, abs_ = (1e-9, 1e-12) if dtype == torch.float64 else (1e-4, 1e-6)
    for name in names:
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=rel, atol=abs_, err_msg=name)
    assert fast.estimate == exact.estimate


@pytest.mark.parametrize(
    ("n", "d", "names", "q", "dtype"),
    [
        (90, 6, ["sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"], 0.1, torch.float64),
        (90, 6, ["sas_y_to_x"], 0.1, torch.float64),  # one anchor only
        (40, 9, ["sas_imbalance", "l2i"], 0.1, torch.float64),  # several blocks of eigendecompositions
        # n < d: repeated zero eigenvalues in every replicate, all of them active at q = 1
        (8, 12, ["sas_x_to_y", "sas_imbalance"], 1.0, torch.float64),
        (300, 16, ["sas_x_to_y", "sas_y_to_x"], 0.2, torch.float32),
    ],
)
def test_fast_sas_replicates_equal_the_exact_engine(monkeypatch, n, d, names, q, dtype) -> None:
    """SAS from two weighted Grams per replicate (bootstrap_sas) equals the full weighted-moment path."""
    import importlib

    from torchspectral.uncertainty import exact_sas as fast_sas

    bootstrap_module = importlib.import_module("torchspectral.uncertainty.pairs")
    calls = []
    real = bootstrap_module.exact_sas_replicates
    monkeypatch.setattr(bootstrap_module, "exact_sas_replicates", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(fast_sas, "EIGH_BATCH", 4)
    monkeypatch.setattr(fast_sas, "ROW_CHUNK", 16)  # several row chunks of the projections
    x, y = (torch.from_numpy(t).to(dtype) for t in paired(n, d, seed=79, offset=1.0))
    fast = ts.bootstrap(x, y, names, n_boot=11, seed=6, q=q, method="percentile")
    assert calls, "the fast engine did not take the exact-SAS path"
    exact = ts.bootstrap(x, y, names, n_boot=11, seed=6, q=q, engine="moments", method="percentile")
    assert list(fast.replicates) == names
    rel, abs_ = (1e-9, 1e-12) if dtype == torch.float64 else (1e-5, 1e-6)
    for name in names:
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=rel, atol=abs_, err_msg=name)


def test_sas_shares_the_weighted_moments_when_they_are_formed_anyway(monkeypatch, data) -> None:
    """d ≪ n: CKA goes through the weighted moments, whose spectra then serve SAS (no second pair of Grams)."""
    import importlib

    bootstrap_module = importlib.import_module("torchspectral.uncertainty.pairs")

    def fail(*args, **kwargs):
        raise AssertionError("exact_sas_replicates called although the moments were formed")

    monkeypatch.setattr(bootstrap_module, "exact_sas_replicates", fail)
    x, y = data
    fast = ts.bootstrap(x, y, ["sas_imbalance", "cka_linear"], n_boot=7, seed=1, method="percentile")
    exact = ts.bootstrap(x, y, ["sas_imbalance", "cka_linear"], n_boot=7, seed=1, engine="moments", method="percentile")
    for name in fast.replicates:
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ritz_rank", [0, 1])
def test_a_resample_of_one_distinct_pair_is_refused(ritz_rank) -> None:
    """n = 3: some resamples draw one pair three times; their covariance is 0 and SAS undefined, as in the exact
    engine, which refuses them too — never a silent 0 or NaN replicate."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = x + 0.3 * torch.randn(3, 2, generator=g, dtype=torch.float64)
    with pytest.raises(ValueError, match="single distinct pair"):
        ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=20, ritz_rank=ritz_rank, method="percentile")
    with pytest.raises(ValueError, match="zero variance"):
        ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=20, engine="moments", method="percentile")


def test_fast_engine_mixed_with_spectral_metrics(data) -> None:
    x, y = data
    names = ["sas_imbalance", "coral", "svcca", "rmg"]
    fast = ts.bootstrap(x, y, names, n_boot=9, seed=2, method="percentile")
    exact = ts.bootstrap(x, y, names, n_boot=9, seed=2, engine="moments", method="percentile")
    assert list(fast.replicates) == names
    for name in names:
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=1e-9, atol=1e-12)
    again = ts.bootstrap(x, y, names, n_boot=9, seed=2, method="percentile")
    assert all(torch.equal(again.replicates[name], fast.replicates[name]) for name in names)
    with pytest.raises(ValueError, match="engine must be one of"):
        ts.bootstrap(x, y, engine="ritz", method="percentile")


SAS_NAMES = ["sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"]


@pytest.mark.parametrize(("n", "d", "rank"), [(90, 6, 6), (5, 3, 3), (400, 16, 40)])
def test_ritz_with_a_complete_basis_equals_exact(n, d, rank) -> None:
    """ritz_rank ≥ d: the projected covariances are a rotation of the full ones, so the SAS replicates are exact."""
    x, y = (torch.from_numpy(t) for t in paired(n, d, seed=74, offset=1.0))
    ritz = ts.bootstrap(x, y, SAS_NAMES, n_boot=15, seed=4, ritz_rank=rank, method="percentile")
    exact = ts.bootstrap(x, y, SAS_NAMES, n_boot=15, seed=4, engine="moments", method="percentile")
    for name in SAS_NAMES:
        np.testing.assert_allclose(ritz.replicates[name], exact.replicates[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_ritz_in_a_truncated_basis_on_a_gapped_spectrum() -> None:
    """k < d is approximate: with |A| = 4 modes well above a flat bulk, k = 8 measured ≤ 5e-5 (tolerance 1e-4).

    On flat spectra the error is far larger (docs/performance.md#ritz: up to 1.8e-3 at n = 20,000, d = 768, k = 400),
    hence opt-in.
    """
    g = torch.Generator().manual_seed(3)
    n, d = 3000, 40
    scales = torch.cat([torch.tensor([8.0, 7.0, 6.0, 5.0]), 0.5 * torch.ones(d - 4)]).double()
    rotation = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    z = torch.randn(n, d, generator=g, dtype=torch.float64) * scales
    loadings = torch.tensor([1.0, -0.8, 0.6, 0.4] + [0.2] * (d - 4), dtype=torch.float64)
    x = z @ rotation.T
    y = (z * loadings + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)) @ rotation.T + 1.0
    ritz = ts.bootstrap(x, y, SAS_NAMES, n_boot=30, seed=1, ritz_rank=8, method="percentile")
    exact = ts.bootstrap(x, y, SAS_NAMES, n_boot=30, seed=1, engine="moments", method="percentile")
    for name in SAS_NAMES:
        np.testing.assert_allclose(ritz.replicates[name], exact.replicates[name], rtol=0, atol=1e-4, err_msg=name)
    again = ts.bootstrap(x, y, SAS_NAMES, n_boot=30, seed=1, ritz_rank=8, method="percentile")
    assert all(torch.equal(again.replicates[name], ritz.replicates[name]) for name in SAS_NAMES)


def test_ritz_bad_input(data) -> None:
    x, y = data
    for bad in (-3, 2.5, True):
        with pytest.raises(ValueError, match=r"ritz_rank must be 0 \(off\) or a positive integer"):
            ts.bootstrap(x, y, ["sas_x_to_y"], ritz_rank=bad, method="percentile")
    off = ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=5, ritz_rank=0, method="percentile")  # 0 is "off", as in the audit
    default = ts.bootstrap(x, y, ["sas_x_to_y"], n_boot=5, method="percentile")
    assert torch.equal(torch.as_tensor(off.replicates["sas_x_to_y"]), torch.as_tensor(default.replicates["sas_x_to_y"]))
    with pytest.raises(ValueError, match="engine='moments' ignores it"):
        ts.bootstrap(x, y, ["sas_x_to_y"], engine="moments", ritz_rank=4, method="percentile")
    with pytest.raises(ValueError, match="need d_x = d_y"):
        ts.bootstrap(x, y[:, :3], ["sas_x_to_y"], ritz_rank=4, method="percentile")


def test_fast_engine_picks_the_cheaper_exact_path_when_d_is_small(monkeypatch, data) -> None:
    from torchspectral.uncertainty import algebra as algebra

    assert algebra.quadratic_forms_pay_off(20_000, 768, 768) and not algebra.quadratic_forms_pay_off(90, 6, 6)
    x, y = data

    def refuse(rows, counts, names):
        assert not set(names) & set(algebra.QUADRATIC_METRICS), "CKA/CORAL should come from the weighted moments here"
        return {}

    monkeypatch.setattr(algebra, "quadratic_replicates", refuse)
    fast = ts.bootstrap(x, y, ["cka_linear", "coral", "l2i"], n_boot=6, seed=8, method="percentile")
    exact = ts.bootstrap(x, y, ["cka_linear", "coral", "l2i"], n_boot=6, seed=8, engine="moments", method="percentile")
    for name in fast.replicates:
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=1e-9, atol=1e-12)
