"""Small, seeded versions of the coverage harness (benchmarks/calibration/): the calibrated default against known truth.

They assert only what the full harness established with margin (docs/uncertainty.md#calibration; `make coverage`): on a
planted model whose eigenmodes are well separated the calibrated intervals cover the population values, and on one whose
top eigenvalues are within 3% SAS gets no interval at all. The planted models, their population values, the samples
and the scoring are the harness's own functions (tests/planted_coverage.py, which the harness imports), so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import planted_coverage
import pytest

import torchspectral as ts
from torchspectral.uncertainty import CALIBRATED_METHODS


@pytest.fixture(scope="module")
def harness():
    return planted_coverage


CLOSED_FORM = ["sas_imbalance", "cka_linear_unbiased", "coral"]
# SAS in one direction (and symmetric) has no calibrated interval: biased by up to 1.4 sd even where identified.
ONE_DIRECTION = ["sas_x_to_y", "sas_y_to_x", "sas_symmetric"]


@pytest.mark.slow
def test_calibrated_intervals_cover_on_a_well_separated_model(harness) -> None:
    # The full harness's d64-n5000-lossy regime (SAS identified in every repeat, the calibrated intervals covering
    # 94–99% there), 20 of its repeats at B = 100.
    regime = replace(harness.ALL_REGIMES["d64-n5000-lossy"], repeats=20)
    model = harness.planted(regime)
    truth = harness.closed_form(model)
    covered, given = dict.fromkeys(CLOSED_FORM, 0), dict.fromkeys(CLOSED_FORM, 0)
    for repeat in range(regime.repeats):
        x, y = harness.sample(regime, model, repeat)
        result = ts.bootstrap(x, y, CLOSED_FORM + ONE_DIRECTION, n_boot=100, seed=repeat, q=harness.Q_ACTIVE)
        assert result.method == "calibrated"
        for name in ONE_DIRECTION:
            assert name not in result.low and "no calibrated interval" in result.no_interval[name]
        for name in CLOSED_FORM:
            if name in result.low:
                assert result.methods[name] == CALIBRATED_METHODS[name]
                given[name] += 1
                covered[name] += result.low[name] <= truth[name] <= result.high[name]
            else:  # only ΔSAS may go without an interval, and only when the diagnostic says why
                assert name == "sas_imbalance" and "not identified" in result.no_interval[name]
    assert all(count >= 16 for count in given.values()), given
    # 95% nominal: an interval given k ≥ 16 times covers at least k − 4 times unless its coverage is far below 95%.
    assert all(covered[name] >= given[name] - 4 for name in CLOSED_FORM), (covered, given)


def test_no_sas_interval_when_the_top_eigenvalues_are_not_separated(harness) -> None:
    # x's top four eigenvalues within 3%: the full harness found every SAS x→y and ΔSAS interval covering ≤ 19% there,
    # and the diagnostic never calling x identified. The calibrated default gives no ΔSAS interval.
    regime = harness.ALL_REGIMES["d64-n2000-degenerate"]
    x, y = harness.sample(regime, harness.planted(regime), 0)
    result = ts.bootstrap(x, y, ["sas_x_to_y", "sas_y_to_x", "sas_imbalance", "coral"], n_boot=20, seed=0)
    assert not result.identifiability.x.identified
    for name in ("sas_x_to_y", "sas_y_to_x", "sas_imbalance"):
        assert name not in result.low and name not in result.replicates
    assert "not identified" in result.no_interval["sas_imbalance"] and "anchor x" in result.no_interval["sas_imbalance"]
    assert "coral" in result.low and result.methods["coral"] == "basic"
    assert "| sas_x_to_y |" in result.table() and "not identified" in result.table()


def test_gap_population_values_match_the_estimates(harness, monkeypatch) -> None:
    # The gap family's population values are Monte-Carlo (no closed form): fresh samples' estimates must centre on
    # them, within 3 sd of their mean (the estimators' O(1/n) bias is far below that at n = 300).
    regime = harness.ALL_REGIMES["quick-d16-n300-lossy"]
    model = harness.planted(regime)
    monkeypatch.setattr(harness, "GAP_POPULATION_PAIRS", 200_000)
    truth = harness.gap_population(regime, model)
    names = list(harness.GAP_METRICS)
    estimates = np.array(
        [
            [ts.bootstrap(*harness.sample(regime, model, r), names, n_boot=2, method="percentile").estimate[name]
             for name in names]
            for r in range(12)
        ]
    )  # fmt: skip
    spread = estimates.std(0, ddof=1) / np.sqrt(len(estimates))
    for i, name in enumerate(names):
        assert abs(estimates[:, i].mean() - truth[name]) < 3 * spread[i] + 1e-12, (name, truth[name])


@pytest.mark.slow
def test_the_audit_reads_the_verdict_with_the_calibrated_default(harness) -> None:
    from torchspectral.audit.analysis import analyse_run
    from torchspectral.audit.output import _bottleneck, render_markdown

    lossy = harness.ALL_REGIMES["d64-n5000-lossy"]
    x, y = (t.float() for t in harness.sample(lossy, harness.planted(lossy), 0))
    run = analyse_run("planted", "lossy", "test", x, y, n_boot=50, seed=0).to_dict()
    assert run["interval_methods"]["sas_imbalance"] == "iterated_normal"
    assert run["interval_methods"]["cka_linear_unbiased"] == "jackknife"
    assert (
        set(run["no_interval"]) == {"cka_linear", "svcca", *ONE_DIRECTION} and run["identifiability"]["x"]["identified"]
    )
    verdict = _bottleneck(run)
    # The sentence names the method and what the harness measured for it in the most similar regime.
    assert "(iterated_normal; in the coverage harness it covered the true value in" in verdict and "d = 64" in verdict

    degenerate = harness.ALL_REGIMES["d64-n2000-degenerate"]
    x, y = (t.float() for t in harness.sample(degenerate, harness.planted(degenerate), 0))
    blurred = analyse_run("planted", "degenerate", "test", x, y, n_boot=50, seed=0).to_dict()
    assert "sas_imbalance" not in blurred["intervals"] and "sas_x_to_y" not in blurred["intervals"]
    assert _bottleneck(blurred).startswith(f"ΔSAS = {blurred['metrics']['sas_imbalance']:+.3f}: inconclusive")
    report = {
        "manifest": "m.toml", "settings": {"interval": "calibrated"}, "runs": [run, blurred], "failed_runs": [],
        "cross_run": {"note": "fewer than 3 runs"}, "plots": {}, "timings": {},
    }  # fmt: skip
    text = render_markdown(report)
    assert "## Metrics without an interval" in text and "not identified" in text


def test_the_default_pass_scores_what_ts_bootstrap_returns(harness, monkeypatch) -> None:
    # benchmarks/calibration/coverage_default.py (the table the acceptance reads): per repeat the default's
    # own intervals and reasons; the summary counts them and gives the exact binomial interval of the coverage.
    default_pass = harness
    monkeypatch.setattr(default_pass, "GAP_POPULATION_PAIRS", 100_000)
    regime = default_pass.ALL_REGIMES["quick-d16-n300-lossy"]
    model = default_pass.planted(regime)
    truth = default_pass.population_values(regime, model)
    runs = [default_pass.default_repeat(regime, model, r, n_boot=30, groups=10) for r in range(6)]
    summary = default_pass.summarise_default(truth, runs)
    for name, entry in summary.items():
        given = [run["metrics"][name] for run in runs if run["metrics"][name]["interval"] is not None]
        assert entry["method"] == CALIBRATED_METHODS[name] and entry["given"] == len(given) and entry["repeats"] == 6
        if CALIBRATED_METHODS[name] is None:
            assert not given and entry["reason"] and "coverage" not in entry
        if given:
            covered = sum(g["interval"][0] <= truth[name] <= g["interval"][1] for g in given)
            assert entry["covered"] == covered and entry["coverage"] == covered / len(given)
            low, high = entry["coverage_ci"]
            assert low <= entry["coverage"] <= high
            assert entry["miss_truth_below"] + entry["miss_truth_above"] == len(given) - covered
    assert summary["coral"]["given"] == 6 and summary["cka_linear"]["given"] == 0
    # The exact binomial interval of the coverage, and the pooled counts over regimes.
    from scipy.stats import binomtest

    ci = binomtest(summary["coral"]["covered"], 6).proportion_ci(confidence_level=0.95, method="exact")
    assert summary["coral"]["coverage_ci"] == pytest.approx([ci.low, ci.high])
    results = {"regimes": {"a": {"metrics": summary}, "b": {"metrics": summary}}}
    pooled = default_pass.pooled(results)
    assert pooled["coral"]["given"] == 12 and pooled["coral"]["covered"] == 2 * summary["coral"]["covered"]
    assert "cka_linear" not in pooled and "cells in [92%, 99%]" in default_pass.verdict(results)


def test_replacing_one_metric_of_a_run_must_add_up_to_a_complete_run(harness) -> None:
    """replace_metrics (coverage_default.py --replace-from): a rescored metric's repeats replace the base's one by one,
    and the merge is refused where it would not be what a complete run gives."""
    default_pass = harness

    def run(repeat, interval, method, identified=True, seconds=1.0):
        entry = {"estimate": 0.1, "method": method, "interval": interval, "reason": None if interval else "why"}
        flags = {"x": identified, "y": identified}
        return {"repeat": repeat, "seconds": seconds, "identified": flags, "metrics": {"sas_imbalance": entry,
                "coral": dict(entry, method="basic", interval=[0, 1])}}  # fmt: skip

    settings = {"n_boot": 200, "groups": 20, "metrics": ["sas_imbalance", "coral"]}
    base = {"settings": settings, "wall_seconds": 9.0, "truths": {}, "runs": {
        "identified": [run(0, [0, 1], "normal"), run(1, [0, 1], "normal")],
        "never": [run(0, None, None, identified=False), run(1, None, None, identified=False)]}}  # fmt: skip
    rescored = {"settings": dict(settings, metrics=["sas_imbalance"]), "runs": {
        "identified": [run(0, [0.2, 0.8], "iterated_normal", seconds=3.0)]}}  # fmt: skip
    with pytest.raises(ValueError, match=r"identified repeat 1: its interval is the base run's .*'normal'"):
        default_pass.replace_metrics(base, [("r", rescored)])
    second = {"settings": rescored["settings"], "runs": {"identified": [run(1, [0.3, 0.7], "iterated_normal")]}}
    merged = default_pass.replace_metrics(base, [("r", rescored), ("s", second)])
    runs = merged["runs"]["identified"]
    assert [r["metrics"]["sas_imbalance"]["interval"] for r in runs] == [[0.2, 0.8], [0.3, 0.7]]
    assert all(r["metrics"]["coral"]["method"] == "basic" for r in runs)  # the other metrics stay the base's
    assert runs[0]["seconds"] == 1.0 and runs[0]["seconds_replacements"] == [3.0]
    assert merged["runs"]["never"] == base["runs"]["never"] and base["runs"]["identified"][0]["seconds"] == 1.0
    assert merged["settings"]["replaced"] == {"sas_imbalance": {"from": ["r", "s"], "repeats": 2}}
    # Different resamples, a repeat the base lacks, or a sample whose identifiability differs: refused.
    for record, match in (
        (dict(second, settings=dict(second["settings"], n_boot=100)), "n_boot=100"),
        (dict(second, runs={"identified": [run(5, [0, 1], "iterated_normal")]}), "not in the base run"),
        (dict(second, runs={"identified": [run(1, None, None, identified=False)]}), "identifiability differs"),
    ):
        with pytest.raises(ValueError, match=match):
            default_pass.replace_metrics(base, [("r", rescored), ("s", record)])
