"""Interval methods of the bootstrap (torchspectral/uncertainty/intervals.py) against direct formulas; bad input."""

from __future__ import annotations

import warnings

import numpy as np
import planted_coverage
import pytest
import torch
from scipy import stats

import torchspectral as ts
from torchspectral.moments import Moments
from torchspectral.uncertainty import INTERVAL_METHODS, IntervalWarning, evaluate, sas_identifiability
from torchspectral.uncertainty import intervals as iv
from torchspectral.uncertainty.identifiability import gap_ratios
from torchspectral.uncertainty.resampling import resample_indices, second_level_indices


@pytest.fixture(scope="module")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(17)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    return x, 0.7 * x + torch.randn(200, 6, generator=g, dtype=torch.float64)


def test_methods_listed() -> None:
    assert INTERVAL_METHODS == ("percentile", "basic", "normal", "bca", "jackknife", "iterated_normal")


def test_percentile_basic_normal_direct_formulas() -> None:
    boot = torch.tensor([0.3, 0.1, 0.7, 0.5, 0.2, 0.9, 0.4, 0.6], dtype=torch.float64)
    estimate = 0.45
    q = np.quantile(boot.numpy(), [0.05, 0.95])  # linear interpolation, as torch.quantile
    assert iv.interval("percentile", estimate, 0.9, boot) == pytest.approx(tuple(q), abs=1e-15)
    assert iv.interval("basic", estimate, 0.9, boot) == pytest.approx((2 * estimate - q[1], 2 * estimate - q[0]))
    half = stats.norm.ppf(0.95) * boot.numpy().std(ddof=1)
    assert iv.interval("normal", estimate, 0.9, boot) == pytest.approx((estimate - half, estimate + half), rel=1e-12)


def test_iterated_normal_direct_formula() -> None:
    """θ̂ ± z·v*/sqrt(v**): v* the replicates' variance, v** the mean within-row variance of the second level."""
    rng = np.random.default_rng(5)
    boot = rng.normal(0.0, 2.0, size=200)
    second = rng.normal(0.0, 3.0, size=(20, 20)) + rng.normal(size=(20, 1))  # row offsets must not count
    v_first, v_second = boot.var(ddof=1), second.var(axis=1, ddof=1).mean()
    half = stats.norm.ppf(0.975) * v_first / np.sqrt(v_second)
    got = iv.interval("iterated_normal", 0.3, 0.95, torch.from_numpy(boot), second_level=torch.from_numpy(second))
    assert got == pytest.approx((0.3 - half, 0.3 + half), rel=1e-12)
    # Where the second level inflates the variance as the first did (v** = r·v*), the sd is divided by sqrt(r).
    plain = iv.interval("normal", 0.3, 0.95, torch.from_numpy(boot))
    scaled = torch.from_numpy(second / second.std(axis=1, ddof=1, keepdims=True) * np.sqrt(2.0 * v_first))
    narrowed = iv.interval("iterated_normal", 0.3, 0.95, torch.from_numpy(boot), second_level=scaled)
    assert narrowed[1] - narrowed[0] == pytest.approx((plain[1] - plain[0]) / np.sqrt(2.0), rel=1e-12)


def test_iterated_normal_bad_input() -> None:
    boot = torch.linspace(0.0, 1.0, 50, dtype=torch.float64)
    with pytest.raises(ValueError, match="second-level replicates of shape"):
        iv.interval("iterated_normal", 0.5, 0.95, boot)
    with pytest.raises(ValueError, match=r"shape \(M, C\) with C ≥ 2, got \(4, 1\)"):
        iv.interval("iterated_normal", 0.5, 0.95, boot, second_level=torch.ones(4, 1, dtype=torch.float64))
    bad = torch.rand(4, 5, dtype=torch.float64)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="second-level replicates hold non-finite"):
        iv.interval("iterated_normal", 0.5, 0.95, boot, second_level=bad)
    with pytest.raises(ValueError, match="second-level replicates do not vary"):
        iv.interval("iterated_normal", 0.5, 0.95, boot, second_level=torch.ones(4, 5, dtype=torch.float64))
    flat = torch.full((50,), 0.5, dtype=torch.float64)
    assert iv.interval("iterated_normal", 0.5, 0.95, flat, second_level=torch.ones(4, 5)) == (0.5, 0.5)


def test_second_level_resamples_resample_the_first_level() -> None:
    """Each second-level resample draws n rows from its first-level resample's rows; the first level is unchanged."""
    n, first, inner, seed = 40, 3, 5, 7
    outer = list(resample_indices(n, 10, seed))
    second = list(second_level_indices(n, first, inner, seed))
    assert len(second) == first * inner and all(idx.shape == (n,) for idx in second)
    for k, idx in enumerate(second):
        assert set(idx.tolist()) <= set(outer[k // inner].tolist())
    # Deterministic in the seed, another seed draws others, and drawing them changes no first-level resample.
    assert all(torch.equal(a, b) for a, b in zip(second, second_level_indices(n, first, inner, seed), strict=True))
    assert not torch.equal(second[0], next(second_level_indices(n, first, inner, seed + 1)))
    assert all(torch.equal(a, b) for a, b in zip(outer, resample_indices(n, 10, seed), strict=True))
    # A resample's own duplicates are drawn in proportion: the mean multiplicity of a row is its first-level count.
    many = torch.stack([torch.bincount(i, minlength=n) for i in second_level_indices(n, 1, 4000, seed)]).double()
    assert many.mean(0) == pytest.approx(torch.bincount(outer[0], minlength=n).double(), abs=0.15)


def test_bootstrap_iterated_arguments(pairs) -> None:
    x, y = pairs
    result = ts.bootstrap(x, y, ["coral", "l2i"], n_boot=12, method="iterated_normal", iterated=(3, 4))
    assert result.iterated == (3, 4) and {k: v.shape for k, v in result.second_level.items()} == {
        "coral": (3, 4),
        "l2i": (3, 4),
    }
    assert ts.bootstrap(x, y, ["coral"], n_boot=12, method="normal").second_level == {}
    # The default (M, C) = (20, 20), M cut to B where B < 20 (documented, not an error).
    assert ts.bootstrap(x, y, ["l2i"], n_boot=12, method="iterated_normal").iterated == (12, 20)
    assert ts.bootstrap(x, y, ["l2i"], n_boot=30, method="iterated_normal").iterated == (20, 20)
    for iterated, match in (((0, 4), "M ≥ 1"), ((3, 1), "C ≥ 2"), ((13, 4), "M=13 .* n_boot=12"), (5, "a pair")):
        with pytest.raises(ValueError, match=match):
            ts.bootstrap(x, y, ["coral"], n_boot=12, method="iterated_normal", iterated=iterated)


def test_bca_is_percentile_when_z0_and_a_vanish() -> None:
    offsets = torch.linspace(0.01, 0.5, 50, dtype=torch.float64)
    boot = torch.cat([1.0 - offsets, 1.0 + offsets])  # half below the estimate, none equal: z0 = 0
    jack = torch.cat([1.0 - offsets[:10], 1.0 + offsets[:10]])  # symmetric: a = 0
    assert iv.acceleration(jack) == pytest.approx(0.0, abs=1e-15)
    bca = iv.interval("bca", 1.0, 0.95, boot, jack)
    assert bca == pytest.approx(iv.interval("percentile", 1.0, 0.95, boot), abs=1e-12)


def test_bca_direct_formula() -> None:
    rng = np.random.default_rng(3)
    boot = rng.gamma(2.0, size=400)
    jack = rng.gamma(2.0, size=20) * 0.1 + 1.0
    estimate = 1.6
    z0 = stats.norm.ppf((boot < estimate).mean())
    u = jack.mean() - jack
    a = (u**3).sum() / (6 * (u**2).sum() ** 1.5)
    z = stats.norm.ppf([0.025, 0.975])
    p = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    want = np.quantile(boot, p)
    got = iv.interval("bca", estimate, 0.95, torch.from_numpy(boot), torch.from_numpy(jack))
    assert abs(z0) > 0.1 and abs(a) > 1e-3  # the test exercises both corrections
    assert got == pytest.approx(tuple(want), rel=1e-10)


def test_jackknife_of_a_mean_is_the_t_interval_of_group_means(pairs) -> None:
    """L2I is a mean over rows: its delete-a-group jackknife interval is the t-interval of the G group means."""
    x, y = pairs
    groups, seed = 20, 4  # 200 rows: 20 equal groups
    result = ts.bootstrap(x, y, ["l2i"], method="jackknife", groups=groups, seed=seed)
    per_row = torch.linalg.vector_norm(x / x.norm(dim=1, keepdim=True) - y / y.norm(dim=1, keepdim=True), dim=1).numpy()
    means = np.array([per_row[idx.numpy()].mean() for idx in iv.jackknife_groups(200, groups, seed)])
    half = stats.t.ppf(0.975, groups - 1) * means.std(ddof=1) / np.sqrt(groups)
    assert result.estimate["l2i"] == pytest.approx(per_row.mean(), rel=1e-12)
    assert (result.low["l2i"], result.high["l2i"]) == pytest.approx(
        (per_row.mean() - half, per_row.mean() + half), rel=1e-10
    )
    assert result.replicates == {} and result.n_boot == 0 and result.groups == groups  # no resample drawn
    assert result.bias["l2i"] == pytest.approx(0.0, abs=1e-12)  # the jackknife bias of a mean is zero


def test_bootstrap_uses_the_interval_functions(pairs) -> None:
    """Every method of ts.bootstrap equals the interval function on one BCa run's replicates and jackknife values
    and, for iterated_normal, on second-level values computed here by the naive loop over resamples of resamples
    (the coverage harness computes all methods from one run's values)."""
    x, y = pairs
    names = ["sas_x_to_y", "cka_linear", "coral"]
    reference = ts.bootstrap(x, y, names, n_boot=30, seed=2, method="bca", groups=8)
    naive = [
        evaluate(Moments.from_data(x[idx], y[idx], metric="bootstrap"), names)
        for idx in second_level_indices(x.shape[0], 3, 4, seed=2)
    ]
    second_level = {name: torch.stack([v[name] for v in naive]).double().view(3, 4) for name in names}
    for method in INTERVAL_METHODS:
        result = ts.bootstrap(x, y, names, n_boot=30, seed=2, method=method, groups=8, iterated=(3, 4))
        for name in names:
            want = iv.interval(
                method,
                reference.estimate[name],
                0.95,
                reference.replicates[name],
                reference.jackknife[name],
                second_level=second_level[name],
            )
            assert (result.low[name], result.high[name]) == pytest.approx(want, rel=1e-12, abs=1e-15), (method, name)
        if method != "jackknife":
            for name in names:
                mean = float(reference.replicates[name].mean())
                assert result.bias[name] == pytest.approx(mean - reference.estimate[name], rel=1e-12, abs=1e-15)


def test_deterministic_by_seed(pairs) -> None:
    x, y = pairs
    a = ts.bootstrap(x, y, ["sas_imbalance"], n_boot=20, seed=5, method="bca", groups=5)
    b = ts.bootstrap(x, y, ["sas_imbalance"], n_boot=20, seed=5, method="bca", groups=5)
    c = ts.bootstrap(x, y, ["sas_imbalance"], n_boot=20, seed=6, method="bca", groups=5)
    assert a.low == b.low and a.high == b.high
    assert torch.equal(a.jackknife["sas_imbalance"], b.jackknife["sas_imbalance"])
    assert not torch.equal(a.jackknife["sas_imbalance"], c.jackknife["sas_imbalance"])
    groups = iv.jackknife_groups(23, 4, seed=1)
    assert sorted(torch.cat(groups).tolist()) == list(range(23)) and {len(g) for g in groups} == {5, 6}
    # Asking for BCa does not change which resamples a seed draws.
    plain = ts.bootstrap(x, y, ["sas_imbalance"], n_boot=20, seed=5, method="percentile")
    assert torch.equal(plain.replicates["sas_imbalance"], a.replicates["sas_imbalance"])


def test_bca_edge_cases() -> None:
    boot = torch.linspace(1.0, 2.0, 40, dtype=torch.float64)
    jack = torch.linspace(0.9, 1.1, 20, dtype=torch.float64)
    with pytest.warns(IntervalWarning, match="outside all 40 bootstrap replicates"):
        low, high = iv.interval("bca", 0.5, 0.95, boot, jack, name="svcca")
    assert 1.0 <= low <= high <= 2.0
    # |a| ≤ 1/6 always (|Σu³| ≤ (Σu²)^{3/2}), so 1 − a(z0 + z) ≤ 0 needs z0 + z ≥ 6: an estimate beyond all of
    # 10⁵ replicates (z0 ≈ 4.4) and one outlying group-deleted value (a ≈ 1/6).
    many = torch.linspace(0.0, 1.0, 100_000, dtype=torch.float64)
    skewed = torch.cat([torch.ones(999, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    assert 0.16 < iv.acceleration(skewed) < 1 / 6
    with pytest.warns(IntervalWarning), pytest.raises(ValueError, match=r"acceleration a=0\.166 of sas_x_to_y"):
        iv.interval("bca", 2.0, 0.95, many, skewed, name="sas_x_to_y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iv.interval("bca", 1.5, 0.95, boot, jack)  # an estimate inside the replicates: no warning


def test_bad_input(pairs) -> None:
    x, y = pairs
    boot = torch.rand(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="method must be one of"):
        iv.interval("studentized", 0.5, 0.95, boot)
    with pytest.raises(ValueError, match="needs bootstrap replicates"):
        iv.interval("percentile", 0.5, 0.95, None)
    with pytest.raises(ValueError, match="needs group-deleted"):
        iv.interval("bca", 0.5, 0.95, boot, None)
    with pytest.raises(ValueError, match="at least 2"):
        iv.interval("jackknife", 0.5, 0.95, None, boot[:1])
    with pytest.raises(ValueError, match="non-finite"):
        iv.interval("normal", 0.5, 0.95, torch.tensor([0.1, float("nan")], dtype=torch.float64))
    with pytest.raises(ValueError, match="confidence must lie"):
        iv.interval("basic", 0.5, 1.5, boot)
    with pytest.raises(ValueError, match="estimate of coral is not finite"):
        iv.interval("basic", float("inf"), 0.95, boot, name="coral")
    for groups, message in ((1, "groups must be an integer ≥ 2"), (True, "groups must be"), (101, "at least 2 rows")):
        with pytest.raises(ValueError, match=message):
            ts.bootstrap(x, y, ["cka_linear"], method="jackknife", groups=groups)
    ts.bootstrap(
        x, y, ["cka_linear"], n_boot=5, groups=1, method="percentile"
    )  # groups is only read by "bca" and "jackknife"


def test_coverage_harness_population_values(monkeypatch) -> None:
    """The harness's population values (the package's formulas on population covariances) equal its closed forms,
    ΔSAS is 0 in the "scaled" model, and one repeat runs (tiny B)."""
    harness = planted_coverage
    # the gap family's Monte-Carlo truth (no closed form) kept small here
    monkeypatch.setattr(harness, "GAP_POPULATION_PAIRS", 100_000)
    for name in ("d64-n500-lossy", "d64-n2000-degenerate", "d64-n500-scaled", "quick-d16-n300-lossy"):
        regime = harness.ALL_REGIMES[name]
        model = harness.planted(regime)
        truth, closed = harness.population_values(regime, model), harness.closed_form(model)
        assert {k: truth[k] for k in closed} == pytest.approx(closed, rel=1e-9, abs=1e-12), name
        assert len(set(model["alpha2"].tolist())) == regime.d and len(set(model["beta2"].tolist())) == regime.d
    scaled_regime = harness.ALL_REGIMES["d64-n500-scaled"]
    scaled = harness.population_values(scaled_regime, harness.planted(scaled_regime))
    assert abs(scaled["sas_imbalance"]) < 1e-12 and scaled["coral"] > 0
    quick = harness.ALL_REGIMES["quick-d16-n300-lossy"]
    run = harness.one_repeat(quick, harness.planted(quick), 0, n_boot=10, groups=5)
    assert set(run["metrics"]["svcca"]["intervals"]) == set(INTERVAL_METHODS)


def _spectrum_pairs(scales: list[float], n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(scales, dtype=torch.float64).sqrt()
    x = torch.randn(n, len(scales), generator=g, dtype=torch.float64) * s
    return x, x + 0.1 * torch.randn(n, len(scales), generator=g, dtype=torch.float64)


def test_identifiability_gap_ratios_direct_formula() -> None:
    lam = torch.tensor([4.0, 2.0, 1.9, 0.5], dtype=torch.float64)
    n = 800
    a, b = lam[:-1].numpy(), lam[1:].numpy()
    want = (a - b) / (np.sqrt(2 / n) * np.hypot(a, b))
    assert gap_ratios(lam, n).tolist() == pytest.approx(want.tolist(), rel=1e-12)


def test_identifiability_separated_and_degenerate() -> None:
    bulk = [0.05] * 36  # d = 40: |A| = 4 at q = 0.1
    separated = sas_identifiability(*_spectrum_pairs([4.0, 2.0, 1.0, 0.5, *bulk], 1000, 0), n_resamples=5)
    assert separated.identified and separated.x.active == 4 and separated.x.reason == "identified"
    assert separated.x.mode_stability > 0.95 and separated.x.active_overlap > 0.95
    # Two top modes 1% apart: the gap is a fraction of its sampling sd, whatever resampling says.
    close = sas_identifiability(*_spectrum_pairs([4.0, 3.96, 1.0, 0.5, *bulk], 1000, 1), n_resamples=5)
    assert not close.identified and close.x.min_ratio < 3 and "eigen-mass" in close.x.reason
    # The boundary: the 4th and 5th eigenvalues equal, so which mode is active is a coin flip.
    boundary = sas_identifiability(*_spectrum_pairs([4.0, 2.0, 1.0, 0.5, 0.5, *bulk[1:]], 1000, 2), n_resamples=0)
    assert not boundary.identified and boundary.x.boundary_ratio < 3 and "boundary" in boundary.x.reason
    assert boundary.x.mode_stability is None
    again = sas_identifiability(*_spectrum_pairs([4.0, 3.96, 1.0, 0.5, *bulk], 1000, 1), n_resamples=5)
    assert again == close  # deterministic by seed


def test_identifiability_bad_input(pairs) -> None:
    x, y = pairs
    with pytest.raises(ValueError, match="n_resamples must be"):
        sas_identifiability(x, y, n_resamples=-1)
    with pytest.raises(ValueError, match="needs d_x = d_y"):
        sas_identifiability(x, y[:, :3])
    with pytest.raises(ValueError, match="q is the fraction"):
        sas_identifiability(x, y, q=0.0)
    with pytest.raises(ValueError, match="stability_threshold must lie"):
        sas_identifiability(x, y, stability_threshold=2.0)
    with pytest.raises(ValueError, match="at least 3 pairs"):
        sas_identifiability(x[:2], y[:2])
    with pytest.raises(ValueError, match="always_resample must be True or False"):
        sas_identifiability(x, y, always_resample=1)
    with pytest.raises(ValueError, match="pairs contain NaN or Inf"):
        sas_identifiability(x.masked_fill(x > 1.5, float("nan")), y)


def test_calibrated_default_bad_input(pairs) -> None:
    """The calibrated default refuses what every method refuses, and reads ``groups`` when a metric's method does."""
    x, y = pairs
    bad = x.clone()
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="1 of 200 pairs contain NaN or Inf"):
        ts.bootstrap(bad, y, ["sas_imbalance"])
    with pytest.raises(ValueError, match="same number of paired rows, got 200 and 199"):
        ts.bootstrap(x, y[:-1], ["coral"])
    with pytest.raises(ValueError, match="need d_x = d_y"):
        ts.bootstrap(x, y[:, :3], ["sas_imbalance"])
    with pytest.raises(ValueError, match="unknown metrics"):
        ts.bootstrap(x, y, ["mmd"])
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        ts.bootstrap(x.numpy(), y, ["coral"])
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="1 of 200 pairs contain NaN or Inf"):
        ts.bootstrap(bad, y, ["coral"])
    with pytest.raises(TypeError, match=r"dtype torch\.int64; embeddings must be floating point"):
        ts.bootstrap(x.long(), y.long(), ["coral"])
    with pytest.raises(ValueError, match=r"must be 2-D \(n, d\), got shape \(200,\)"):
        ts.bootstrap(x[:, 0], y[:, 0], ["coral"])
    # Too few pairs: for ΔSAS's diagnostic, and for the grouped jackknife (whose message offers no impossible G).
    with pytest.raises(ValueError, match="needs at least 3 pairs"):
        ts.bootstrap(x[:2], y[:2], ["sas_imbalance"])
    with pytest.raises(ValueError, match="a grouped jackknife needs at least 4 pairs"):
        ts.bootstrap(x[:3], y[:3], ["cka_linear_unbiased"])
    # Unbiased CKA's calibrated method is the jackknife, so its groups are checked; CORAL's (basic) is not.
    with pytest.raises(ValueError, match="groups must be an integer ≥ 2"):
        ts.bootstrap(x, y, ["cka_linear_unbiased"], groups=1)
    assert ts.bootstrap(x, y, ["coral"], n_boot=5, groups=1).methods == {"coral": "basic"}
    # A metric without a calibrated interval draws nothing and says why; the others keep theirs.
    result = ts.bootstrap(x, y, ["svcca", "cka_linear", "coral"], n_boot=5)
    assert set(result.low) == {"coral"} and set(result.replicates) == {"coral"}
    assert set(result.no_interval) == {"svcca", "cka_linear"} and result.identifiability is None


def test_coverage_harness_summary_counts() -> None:
    """The harness's coverage, misses, width/sd and bias from hand-made repeats."""
    harness = planted_coverage
    regime = harness.ALL_REGIMES["quick-d16-n300-lossy"]
    truth = dict.fromkeys(regime.metrics, 1.0)
    estimates, bounds = [0.9, 1.1, 1.3, 1.0], [(0.8, 1.2), (0.95, 1.05), (1.1, 1.5), (0.5, 0.9)]
    runs = []
    for estimate, (low, high) in zip(estimates, bounds, strict=True):
        entry = {"estimate": estimate, "bias_bootstrap": 0.1, "bias_jackknife": 0.0}
        entry["intervals"] = {key: [low, high] for key in harness.METHODS}
        ident = {"identified": True}
        runs.append({"metrics": dict.fromkeys(regime.metrics, entry), "identifiability": {"x": ident, "y": ident}})
    summary = harness.summarise(regime, truth, runs)["cka_linear"]
    sd = float(np.std(estimates, ddof=1))
    assert summary["bias"] == pytest.approx(np.mean(estimates) - 1.0) and summary["sd"] == pytest.approx(sd)
    m = summary["methods"]["bca"]
    assert (m["covered"], m["miss_truth_below"], m["miss_truth_above"]) == (2, 1, 1) and m["coverage"] == 0.5
    assert m["width_over_sd"] == pytest.approx(np.mean([0.4, 0.1, 0.4, 0.4]) / sd)
    assert m["estimate_outside"] == 2  # 1.0 outside (0.5, 0.9); 1.1 outside (0.95, 1.05)
    corrected = np.sqrt(np.mean((np.array(estimates) - 0.1 - 1.0) ** 2))
    assert summary["rmse_bootstrap_corrected"] == pytest.approx(corrected)
