"""`analyse_run` (one run of the audit): its own argument checks, and the metrics' bad-input errors."""

from __future__ import annotations

import pytest
import torch

from torchspectral.audit.analysis import analyse_run
from torchspectral.audit.output import write_report


def _pairs(n: int = 64, d: int = 8, d_y: int | None = None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x[:, : d_y or d] + 0.5 * torch.randn(n, d_y or d, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"presets": ()}, "presets is empty"),
        ({"presets": ("default", "nope")}, "unknown presets"),
        ({"n_boot": 1}, "n_boot"),
        ({"n_boot": -5}, "n_boot"),
        ({"n_boot": 2.5}, "n_boot"),
        ({"sas_n_boot": 1}, "sas_n_boot"),
        ({"sas_n_boot": True}, "sas_n_boot"),
        ({"sas_n_boot": -3}, "sas_n_boot"),
        ({"sas_n_boot": 2.5}, "sas_n_boot"),
        ({"top_k": -1}, "top_k"),
        ({"interval": "studentized", "n_boot": 10}, "method"),
    ],
)
def test_bad_arguments_are_named(kwargs, message) -> None:
    x, y = _pairs()
    with pytest.raises(ValueError, match=message):
        analyse_run("m", "d", "x", x, y, **kwargs)


def test_bad_values_and_shapes_are_refused() -> None:
    x, y = _pairs()
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="1 of 64 pairs contain NaN or Inf"):
        analyse_run("m", "d", "x", bad, y, n_boot=0)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="1 of 64 pairs contain NaN or Inf"):
        analyse_run("m", "d", "x", bad, y, n_boot=0)
    with pytest.raises(ValueError, match="x must be 2-D"):
        analyse_run("m", "d", "x", x[:, :, None], y, n_boot=0)
    with pytest.raises(TypeError, match="floating point"):
        analyse_run("m", "d", "x", x.long(), y, n_boot=0)  # integer dtype (the CLI's readers upcast or refuse first)
    with pytest.raises(ValueError, match="needs at least 4 pairs"):
        analyse_run("m", "d", "x", x[:3], y[:3], n_boot=0)
    with pytest.raises(ValueError, match="one image index per caption"):
        analyse_run("m", "d", "x", x, y, torch.tensor([0, 1]), n_boot=0)


def test_different_dimensions_report_the_cross_space_metrics_only() -> None:
    x, y = _pairs(d=8, d_y=5)
    run = analyse_run("m", "d", "x", x, y, n_boot=10)
    assert {"cka_linear", "svcca", "cka_rbf"} <= set(run.metrics)
    assert "sas_imbalance" not in run.metrics and run.q_sweep == {} and run.extremes == {}
    # The calibrated default has no interval for the biased CKA estimator (and says why); one method for all has.
    assert set(run.intervals) == {"cka_linear_unbiased"} and "cka_linear" in run.no_interval
    fixed = analyse_run("m", "d", "x", x, y, n_boot=10, interval="percentile")
    assert set(fixed.intervals) == {"cka_linear", "cka_linear_unbiased"}


def test_sas_intervals_have_their_own_replicate_count() -> None:
    """The SAS intervals are those of `bootstrap` with sas_n_boot replicates, the others keep n_boot."""
    import torchspectral as ts

    x, y = _pairs(n=80, d=6)
    run = analyse_run("m", "d", "x", x, y, n_boot=30, sas_n_boot=12, seed=3, interval="percentile")
    sas = ts.bootstrap(x, y, ["sas_x_to_y", "sas_imbalance"], n_boot=12, seed=3, method="percentile")
    others = ts.bootstrap(x, y, ["coral", "rmg"], n_boot=30, seed=3, method="percentile")
    for name, result in (("sas_x_to_y", sas), ("sas_imbalance", sas), ("coral", others), ("rmg", others)):
        assert run.intervals[name] == [result.low[name], result.high[name]], name
    assert {"bootstrap", "bootstrap_sas"} <= set(run.timings)
    no_sas = analyse_run("m", "d", "x", x, y, n_boot=30, sas_n_boot=0, seed=3, interval="percentile")
    assert "coral" in no_sas.intervals and not any(name.startswith("sas_") for name in no_sas.intervals)
    assert "bootstrap_sas" not in no_sas.timings
    same = analyse_run("m", "d", "x", x, y, n_boot=12, seed=3, interval="percentile")  # as many as n_boot
    assert same.intervals["sas_imbalance"] == run.intervals["sas_imbalance"]


def test_write_report_needs_runs(tmp_path) -> None:
    with pytest.raises(ValueError, match="no runs"):
        write_report(tmp_path / "out", [], manifest="m.toml", settings={}, stage_seconds={})
    assert not (tmp_path / "out").exists()
