"""torchspectral.audit.statistics: every number against scipy called directly on the same values."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from audit_runs import Q_GRID, make_run, synthetic_runs
from scipy import stats

from torchspectral.audit.statistics import (
    dataset_summary,
    domain_comparison,
    domains_of,
    imbalance_tests,
    q_sweep_by_domain,
    retrieval_correlations,
    significance_stars,
)


def values(runs, metric, domain=None):
    return np.array([r.metrics[metric] for r in runs if domain is None or r.domain == domain])


def exact_spearman_p(x, y):
    """scipy's own exact permutation test (every pairing) of Spearman ρ, i.e. Pearson r of the ranks.

    The statistic is vectorised (scipy's rankdata and pearsonr along the last axis): with spearmanr called once
    per pairing, n = 8 takes over a minute.
    """
    rx = stats.rankdata(x)

    def rho(yy, axis):
        yy = np.moveaxis(yy, axis, -1)
        return stats.pearsonr(np.broadcast_to(rx, yy.shape), stats.rankdata(yy, axis=-1), axis=-1).statistic

    res = stats.permutation_test(
        (np.asarray(y),), rho, permutation_type="pairings", n_resamples=np.inf, alternative="two-sided", vectorized=True
    )
    return res.pvalue


def run(domain="natural", dataset="coco", model="m", **metrics):
    return make_run(model, dataset, domain, metrics)


@pytest.fixture
def runs():
    return synthetic_runs()


# --- stars ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "stars"),
    [
        (0.0, "***"),
        (0.000999, "***"),
        (0.001, "**"),
        (0.00999, "**"),
        (0.01, "*"),
        (0.0499, "*"),
        (0.05, ""),
        (0.5, ""),
        (1.0, ""),
        (float("nan"), ""),
        (None, ""),
    ],
)
def test_significance_stars_thresholds(p, stars):
    assert significance_stars(p) == stars


# --- exp. 1: domain comparison -----------------------------------------------------------------------------------


def test_domain_comparison_matches_scipy(runs):
    rows = domain_comparison(runs, metrics=["cka_linear", "sas_x_to_y", "rmg"])
    assert [r["metric"] for r in rows] == ["cka_linear", "sas_x_to_y", "rmg"]
    for row in rows:
        m = row["metric"]
        nat, med = values(runs, m, "natural"), values(runs, m, "medical")
        assert list(row["domains"]) == ["natural", "medical"]  # order of first appearance
        for name, v in (("natural", nat), ("medical", med)):
            summary = row["domains"][name]
            assert summary["n"] == v.size == 6
            assert summary["mean"] == pytest.approx(v.mean(), rel=1e-12)
            assert summary["std"] == pytest.approx(np.std(v, ddof=1), rel=1e-12)
            assert summary["median"] == pytest.approx(np.median(v), rel=1e-12)
        (test,) = row["tests"]
        ref = stats.mannwhitneyu(nat, med, alternative="two-sided")
        assert (test["a"], test["b"], test["alternative"]) == ("natural", "medical", "two-sided")
        assert test["u"] == pytest.approx(ref.statistic)
        assert test["rank_biserial"] == pytest.approx(2 * ref.statistic / (nat.size * med.size) - 1)
        assert test["p"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert test["stars"] == significance_stars(ref.pvalue)
        assert test["reason"] is None
    # the synthetic medical runs are far less aligned: every natural SAS beats every medical one
    sas = rows[1]["tests"][0]
    assert sas["u"] == 36.0 and sas["rank_biserial"] == 1.0 and sas["stars"] == "**"


def test_domain_comparison_default_metrics_are_the_common_keys(runs):
    runs[0].metrics["only_here"] = 1.0
    for r in runs:
        r.metrics["paper/svcca"] = r.metrics["svcca"]
    names = [r["metric"] for r in domain_comparison(runs)]
    assert "only_here" not in names and "n_pairs" not in names
    assert {"sas_imbalance", "cka_linear", "rsum", "i2t_r1"} <= set(names)
    # report order: SAS first, retrieval after the alignment metrics, unknown keys last
    assert names[:4] == ["sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"]
    assert names.index("rmg") < names.index("i2t_r1") < names.index("rsum") < names.index("paper/svcca")
    assert names[-1] == "paper/svcca"


def test_domain_comparison_every_pair_of_three_domains():
    runs = synthetic_runs({"natural": ["coco"], "medical": ["roco"], "satellite": ["rs"]})
    (row,) = domain_comparison(runs, metrics=["svcca"])
    pairs = [(t["a"], t["b"]) for t in row["tests"]]
    assert pairs == [("natural", "medical"), ("natural", "satellite"), ("medical", "satellite")]
    for t in row["tests"]:
        ref = stats.mannwhitneyu(values(runs, "svcca", t["a"]), values(runs, "svcca", t["b"]))
        assert t["p"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_domain_comparison_one_domain_has_no_tests():
    runs = synthetic_runs({"medical": ["roco", "mimic"]})
    (row,) = domain_comparison(runs, metrics="cka_linear")  # a bare name is one metric
    assert row["tests"] == [] and row["domains"]["medical"]["n"] == 6


def test_domain_comparison_single_run_domain_has_no_std():
    runs = [run("natural", cka_linear=0.5), run("natural", cka_linear=0.7), run("medical", cka_linear=0.2)]
    (row,) = domain_comparison(runs, metrics=["cka_linear"])
    assert row["domains"]["medical"] == {"n": 1, "mean": 0.2, "std": None, "median": 0.2}
    ref = stats.mannwhitneyu([0.5, 0.7], [0.2])
    assert row["tests"][0]["p"] == pytest.approx(ref.pvalue)


def test_domain_comparison_drops_nonfinite_values_and_counts_them_out():
    runs = [run("natural", cka_linear=v) for v in (0.5, 0.6, float("nan"))]
    runs += [run("medical", cka_linear=float("nan"))]
    (row,) = domain_comparison(runs, metrics=["cka_linear"])
    assert row["domains"]["natural"]["n"] == 2
    assert row["domains"]["medical"] == {"n": 0, "mean": None, "std": None, "median": None}
    (test,) = row["tests"]
    assert test["u"] is None and test["p"] is None and test["rank_biserial"] is None
    assert "'medical'" in test["reason"]


def test_domain_comparison_bad_input(runs):
    with pytest.raises(ValueError, match="no runs"):
        domain_comparison([])
    with pytest.raises(ValueError, match="'nope'"):
        domain_comparison(runs, metrics=["cka_linear", "nope"])
    del runs[2].metrics["svcca"]
    with pytest.raises(ValueError, match=r"'svcca'.*1 run\(s\).*siglip-b / coco"):
        domain_comparison(runs, metrics=["svcca"])


# --- exp. 2: imbalance -----------------------------------------------------------------------------------------


def test_imbalance_tests_match_scipy(runs):
    out = imbalance_tests(runs)
    assert out["metric"] == "sas_imbalance"
    for domain in ("natural", "medical"):
        v = values(runs, "sas_imbalance", domain)
        ref = stats.ttest_1samp(v, 0.0)
        got = out["domains"][domain]
        assert got["n"] == 6
        assert got["t"] == pytest.approx(ref.statistic, rel=1e-12)
        assert got["p"] == pytest.approx(ref.pvalue, rel=1e-12)
        assert got["mean"] == pytest.approx(v.mean()) and got["std"] == pytest.approx(v.std(ddof=1))
        assert got["stars"] == significance_stars(ref.pvalue)
        assert got["n_positive"] == int((v > 0).sum())
        assert got["fraction_positive"] == pytest.approx((v > 0).mean())
    assert out["domains"]["medical"]["fraction_positive"] == 1.0 and out["domains"]["medical"]["stars"] == "***"
    ref = stats.mannwhitneyu(
        values(runs, "sas_imbalance", "medical"), values(runs, "sas_imbalance", "natural"), alternative="greater"
    )
    g = out["greater"]
    assert (g["a"], g["b"], g["alternative"]) == ("medical", "natural", "greater")
    assert g["u"] == pytest.approx(ref.statistic) and g["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert g["reason"] is None


def test_imbalance_per_dataset_breakdown(runs):
    datasets = imbalance_tests(runs)["datasets"]
    assert list(datasets) == ["coco", "flickr", "roco", "mimic"]
    for name, entry in datasets.items():
        v = np.array([r.metrics["sas_imbalance"] for r in runs if r.dataset == name])
        assert entry["n"] == 3 and entry["mean"] == pytest.approx(v.mean())
        assert entry["std"] == pytest.approx(v.std(ddof=1))
        assert entry["all_positive"] == bool((v > 0).all())
    assert datasets["roco"]["domain"] == "medical" and datasets["roco"]["all_positive"] is True


def test_imbalance_one_sided_direction_is_configurable(runs):
    flipped = imbalance_tests(runs, greater=("natural", "medical"))["greater"]
    ref = stats.mannwhitneyu(
        values(runs, "sas_imbalance", "natural"), values(runs, "sas_imbalance", "medical"), alternative="greater"
    )
    assert flipped["p"] == pytest.approx(ref.pvalue, rel=1e-12) and flipped["p"] > 0.5


def test_imbalance_one_domain_only_has_no_one_sided_test():
    runs = synthetic_runs({"natural": ["coco"]})
    out = imbalance_tests(runs)
    assert list(out["domains"]) == ["natural"]
    g = out["greater"]
    assert g["u"] is None and g["p"] is None and g["stars"] == ""
    assert "'medical'" in g["reason"]
    json.dumps(out)


def test_imbalance_degenerate_domains():
    runs = [run("medical", sas_imbalance=0.1), run("medical", sas_imbalance=0.1), run("natural", sas_imbalance=0.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy warning leaks out: the degenerate cases are caught first
        out = imbalance_tests(runs)
    assert out["domains"]["medical"]["reason"] == "constant" and out["domains"]["medical"]["t"] is None
    assert out["domains"]["natural"]["reason"] == "n = 1 < 2" and out["domains"]["natural"]["p"] is None
    assert out["domains"]["natural"]["fraction_positive"] == 0.0
    assert out["greater"]["p"] == pytest.approx(stats.mannwhitneyu([0.1, 0.1], [0.0], alternative="greater").pvalue)


def test_imbalance_bad_input(runs):
    with pytest.raises(ValueError, match="no runs"):
        imbalance_tests([])
    del runs[0].metrics["sas_imbalance"]
    with pytest.raises(ValueError, match="sas_imbalance"):
        imbalance_tests(runs)
    with pytest.raises(ValueError, match="two different domains"):
        imbalance_tests(synthetic_runs(), greater=("medical", "medical"))


# --- exp. 3: q sweep -------------------------------------------------------------------------------------------


def test_q_sweep_by_domain_matches_numpy(runs):
    out = q_sweep_by_domain(runs)
    assert out["q"] == Q_GRID
    for domain in ("natural", "medical"):
        members = [r for r in runs if r.domain == domain]
        assert out["domains"][domain]["n"] == len(members)
        for key in ("sas_x_to_y", "sas_y_to_x", "sas_imbalance"):
            table = np.array([r.q_sweep[key] for r in members])
            np.testing.assert_allclose(out["domains"][domain][key]["mean"], table.mean(axis=0), rtol=1e-12)
            np.testing.assert_allclose(out["domains"][domain][key]["std"], table.std(axis=0, ddof=1), rtol=1e-12)
    (gap,) = out["gaps"]
    assert (gap["a"], gap["b"]) == ("natural", "medical")
    means = {d: out["domains"][d]["sas_x_to_y"]["mean"] for d in ("natural", "medical")}
    expected = np.subtract(means["natural"], means["medical"])
    np.testing.assert_allclose(gap["sas_x_to_y"], expected)
    json.dumps(out)


def test_q_sweep_single_run_domain_has_no_std():
    runs = synthetic_runs({"natural": ["coco"]}, models=("a",))
    out = q_sweep_by_domain(runs)
    assert out["domains"]["natural"]["sas_x_to_y"]["std"] == [None] * len(Q_GRID)
    assert out["gaps"] == []


def test_q_sweep_mismatched_grids_are_an_error(runs):
    runs[3] = make_run("odd", "coco", "natural", runs[3].metrics, q_grid=[0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"share one q grid.*'odd / coco'"):
        q_sweep_by_domain(runs)


def test_q_sweep_missing_or_ragged(runs):
    runs[1].q_sweep = {}
    with pytest.raises(ValueError, match=r"no q_sweep.*clip-l / coco"):
        q_sweep_by_domain(runs)
    runs = synthetic_runs()
    runs[0].q_sweep["sas_y_to_x"] = runs[0].q_sweep["sas_y_to_x"][:-1]
    with pytest.raises(ValueError, match="sas_y_to_x"):
        q_sweep_by_domain(runs)
    with pytest.raises(ValueError, match="no runs"):
        q_sweep_by_domain([])


# --- exp. 4: retrieval correlations ------------------------------------------------------------------------------


def test_retrieval_correlations_match_scipy_pooled_and_stratified(runs):
    rows = retrieval_correlations(runs, metrics=["sas_symmetric", "cka_linear"], targets=["rsum", "t2i_r1"])
    assert len(rows) == 2 * 2 * 3
    assert [(r["metric"], r["target"], r["stratum"]) for r in rows[:3]] == [
        ("sas_symmetric", "rsum", "all"),
        ("sas_symmetric", "rsum", "natural"),
        ("sas_symmetric", "rsum", "medical"),
    ]
    for row in rows:
        members = [r for r in runs if row["domain"] is None or r.domain == row["domain"]]
        assert row["stratum"] == (row["domain"] or "all")
        x = [r.metrics[row["metric"]] for r in members]
        y = [r.metrics[row["target"]] for r in members]
        ref = stats.spearmanr(x, y)
        assert row["n"] == len(members) == (12 if row["domain"] is None else 6)
        assert row["rho"] == pytest.approx(ref.statistic, rel=1e-12)
        if row["n"] > 8:  # the paper's t approximation
            assert row["p_method"] == "t-approximation"
            assert row["p"] == pytest.approx(ref.pvalue, rel=1e-12)
        else:  # small strata: the exact permutation p
            assert row["p_method"] == "exact"
            assert row["p"] == pytest.approx(exact_spearman_p(x, y), rel=1e-9)
        assert row["stars"] == significance_stars(row["p"]) and row["reason"] is None
    pooled = rows[0]
    assert pooled["rho"] > 0.8 and pooled["stars"] == "***"


def test_retrieval_correlations_defaults(runs):
    rows = retrieval_correlations(runs)
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    targets = list(dict.fromkeys(r["target"] for r in rows))
    assert targets == ["rsum", "i2t_r1", "t2i_r1", "i2t_rsum", "t2i_rsum"]
    assert not set(metrics) & {"rsum", "i2t_r5", "i2t_median_rank", "n_pairs"}
    assert {"sas_x_to_y", "sas_imbalance", "mmd", "rmg"} <= set(metrics)
    json.dumps(rows)


def test_retrieval_correlations_per_direction_sums(runs):
    (row,) = [
        r for r in retrieval_correlations(runs, metrics=["sas_x_to_y"], targets=["i2t_rsum"]) if r["domain"] is None
    ]
    y = [100 * (r.metrics["i2t_r1"] + r.metrics["i2t_r5"] + r.metrics["i2t_r10"]) for r in runs]
    ref = stats.spearmanr(values(runs, "sas_x_to_y"), y)
    assert row["rho"] == pytest.approx(ref.statistic) and row["p"] == pytest.approx(ref.pvalue)


def test_retrieval_correlations_small_strata_and_constants():
    runs = [run("natural", model=f"n{i}", cka_linear=0.1 * i, svcca=0.3, rsum=100.0 + i) for i in range(4)]
    runs += [run("medical", model=f"m{i}", cka_linear=0.1 * i, svcca=0.1 * i, rsum=50.0 + i) for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning must not be reached
        rows = retrieval_correlations(runs, metrics=["cka_linear", "svcca"], targets=["rsum"])
    by = {(r["metric"], r["stratum"]): r for r in rows}
    small = by["cka_linear", "medical"]
    assert small["n"] == 2 and small["rho"] is None and small["p"] is None and small["reason"] == "n < 3"
    constant = by["svcca", "natural"]
    assert constant["rho"] is None and constant["reason"] == "constant" and constant["stars"] == ""
    pooled = by["svcca", "all"]  # constant within natural, not across all runs
    ref = stats.spearmanr([r.metrics["svcca"] for r in runs], [r.metrics["rsum"] for r in runs])
    assert pooled["rho"] == pytest.approx(ref.statistic) and pooled["reason"] is None
    assert all(r["rho"] is None or math.isfinite(r["rho"]) for r in rows)


@pytest.mark.parametrize("n", [3, 4, 7, 8, 9])
@pytest.mark.parametrize("ties", [False, True])
def test_spearman_p_is_exact_for_small_strata(n, ties):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y)
    runs = [
        run("d", model=str(i), cka_linear=float(a), rsum=float(b)) for i, (a, b) in enumerate(zip(x, y, strict=True))
    ]
    (row, _) = retrieval_correlations(runs, metrics=["cka_linear"], targets=["rsum"])
    ref = stats.spearmanr(x, y)
    assert row["rho"] == pytest.approx(ref.statistic, rel=1e-12)
    if n <= 8:
        assert row["p_method"] == "exact" and row["p"] == pytest.approx(exact_spearman_p(x, y), rel=1e-9)
    else:
        assert row["p_method"] == "t-approximation" and row["p"] == pytest.approx(ref.pvalue, rel=1e-12)


def test_perfect_rank_agreement_of_three_runs_is_not_significant():
    """scipy's t approximation gives p = 0 here; the exact p of ρ = 1 with n = 3 is 2/3! = 1/3."""
    runs = [run("d", model=str(i), cka_linear=0.1 * i, rsum=10.0 * i) for i in range(3)]
    row = retrieval_correlations(runs, metrics=["cka_linear"], targets=["rsum"])[0]
    assert row["rho"] == pytest.approx(1.0) and row["p"] == pytest.approx(1 / 3) and row["stars"] == ""


def test_retrieval_correlations_bad_input(runs):
    with pytest.raises(ValueError, match="no runs"):
        retrieval_correlations([])
    with pytest.raises(ValueError, match="'t2i_r3'"):
        retrieval_correlations(runs, targets=["t2i_r3"])
    with pytest.raises(ValueError, match="'sas_typo'"):
        retrieval_correlations(runs, metrics=["sas_typo"])
    no_retrieval = [run("natural", cka_linear=0.1), run("natural", cka_linear=0.2)]
    with pytest.raises(ValueError, match="default targets"):
        retrieval_correlations(no_retrieval)


# --- per dataset and helpers -----------------------------------------------------------------------------------


def test_dataset_summary(runs):
    rows = dataset_summary(runs, metrics=["i2t_r1", "t2i_r1"])
    assert [r["dataset"] for r in rows] == ["coco", "flickr", "roco", "mimic"]
    for row in rows:
        v = np.array([r.metrics["t2i_r1"] for r in runs if r.dataset == row["dataset"]])
        assert row["n"] == 3 and row["metrics"]["t2i_r1"]["mean"] == pytest.approx(v.mean())
        assert row["metrics"]["t2i_r1"]["std"] == pytest.approx(v.std(ddof=1))
    assert rows[2]["domain"] == "medical"


def test_domains_in_order_of_first_appearance(runs):
    assert domains_of(runs[::-1]) == ["medical", "natural"]


def test_everything_is_json_ready(runs):
    json.dumps(
        {
            "domains": domain_comparison(runs),
            "imbalance": imbalance_tests(runs),
            "sweep": q_sweep_by_domain(runs),
            "retrieval": retrieval_correlations(runs),
            "datasets": dataset_summary(runs),
        },
        allow_nan=False,
    )
