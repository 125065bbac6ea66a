"""The metric registry is the one list of metrics: it matches what the report computes, and its ranges hold."""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts
from torchspectral.registry import (
    METRICS,
    MOMENT_METRICS,
    PAIRWISE_METRICS,
    RETRIEVAL_METRICS,
    SAME_DIM_METRICS,
    compute_moment_metrics,
)
from torchspectral.spectral import SAS_METRICS


def _pairs(n: int = 300, d: int = 12, d_y: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 3.0
    y = x[:, : d_y or d] @ torch.randn(d_y or d, d_y or d, generator=g, dtype=torch.float64) * 0.3
    return x, y + torch.randn(n, d_y or d, generator=g, dtype=torch.float64)


def test_the_registry_lists_exactly_what_the_report_computes() -> None:
    report = ts.alignment_report(*_pairs())
    assert set(report) - {"n_pairs"} == set(METRICS)
    assert MOMENT_METRICS[:4] == SAS_METRICS
    assert set(MOMENT_METRICS) | set(PAIRWISE_METRICS) | set(RETRIEVAL_METRICS) == set(METRICS)
    narrow = ts.alignment_report(*_pairs(d_y=5))
    assert set(narrow) - {"n_pairs"} == set(METRICS) - SAME_DIM_METRICS


@pytest.mark.parametrize("seed", [0, 1])
def test_moment_metrics_computed_from_the_registry_equal_the_report(seed) -> None:
    x, y = _pairs(seed=seed)
    report = ts.alignment_report(x, y, pairwise=False)
    values = compute_moment_metrics(ts.Moments.from_data(x, y), MOMENT_METRICS)
    for name in MOMENT_METRICS:
        assert float(values[name]) == pytest.approx(report[name], rel=1e-12, abs=1e-15), name
        assert float(METRICS[name].compute(ts.Moments.from_data(x, y))) == pytest.approx(report[name], rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_every_value_lies_in_its_registered_range(seed) -> None:
    report = ts.alignment_report(*_pairs(n=120, seed=seed))
    for name, info in METRICS.items():
        if info.low is not None:
            assert report[name] >= info.low, name
        if info.high is not None:
            assert report[name] <= info.high, name


def test_a_pairwise_metric_is_not_a_function_of_the_moments() -> None:
    m = ts.Moments.from_data(*_pairs())
    with pytest.raises(ValueError, match="mmd is a pairwise metric"):
        compute_moment_metrics(m, ["mmd"])
    with pytest.raises(ValueError, match=r"unknown metrics \['sas'\]"):
        compute_moment_metrics(m, ["sas"])
    assert set(compute_moment_metrics(m, "coral")) == {"coral"}  # a bare name is one name


@pytest.mark.parametrize("name", MOMENT_METRICS)
def test_each_metric_needs_only_the_groups_it_declares(name) -> None:
    """Statistics formed with only the declared groups give the same value as the full statistics."""
    x, y = _pairs(seed=3)
    info = METRICS[name]
    assert info.needs, name
    partial = ts.Moments.from_data(x, y, groups=info.needs)
    assert set(partial.groups) >= set(info.needs)
    assert float(info.compute(partial)) == pytest.approx(float(info.compute(ts.Moments.from_data(x, y))), rel=1e-12)
