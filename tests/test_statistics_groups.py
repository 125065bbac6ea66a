"""Statistics groups: a metric forms only the sums it reads, and asking for any other sum says so clearly."""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts
from torchspectral.stats import MomentStatistics
from torchspectral.stats.accumulator import GROUPS, resolve_groups


def _pairs(n: int = 200, d: int = 6):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 4.0
    return x, 0.5 * x + torch.randn(n, d, generator=g, dtype=torch.float64)


def test_groups_bring_what_they_require() -> None:
    assert resolve_groups(["hsic"]) == ("covariance", "hsic")
    assert resolve_groups(["l2i"]) == ("cosine", "l2i")
    with pytest.raises(ValueError, match="groups must be among"):
        resolve_groups(["nope"])
    assert resolve_groups("hsic") == ("covariance", "hsic")  # a bare name is one group, not its letters


@pytest.mark.parametrize("groups", [("covariance",), ("cosine",), ("covariance", "hsic"), ("cosine", "l2i")])
def test_partial_statistics_hold_exactly_their_groups_and_merge_and_reshift_exactly(groups) -> None:
    x, y = _pairs()
    full = MomentStatistics.from_data(x, y)
    merged = MomentStatistics.from_data(x[:70], y[:70], groups=groups)
    merged.merge(MomentStatistics.from_data(x[70:], y[70:], groups=groups))
    names = {name for group in resolve_groups(groups) for name in GROUPS[group]} | {"pairs_f32"}
    assert set(merged.sums) == names and merged.groups == resolve_groups(groups)
    for name in names:
        torch.testing.assert_close(merged.sums[name], full.reshifted(merged.shift_x, merged.shift_y).sums[name])


def test_a_missing_group_is_named() -> None:
    m = MomentStatistics.from_data(*_pairs(), groups=("covariance",))
    with pytest.raises(ValueError, match="without the 'cosine' group"):
        ts.Moments.from_data(*_pairs(), groups=("covariance",)).modality_gap()
    with pytest.raises(ValueError, match="without the 'hsic' group"):
        m.sums["sum_ab"]
    with pytest.raises(ValueError, match="hold different groups"):
        m.merge(MomentStatistics.from_data(*_pairs()))
    with pytest.raises(ValueError, match="without the 'hsic' group"):
        m.to_flat()


def test_the_functional_metrics_skip_what_they_do_not_read(monkeypatch) -> None:
    """ts.coral and ts.modality_gap form no HSIC sums; only ts.l2i runs the pair-distance pass."""
    import torchspectral.stats.rows as rows

    calls = []
    real = rows._pair_distances
    monkeypatch.setattr(rows, "_pair_distances", lambda *a: calls.append(1) or real(*a))
    x, y = _pairs()
    for metric in (ts.coral, ts.modality_gap, ts.sas, ts.true_pair_cosine, ts.rmg, ts.svcca):
        metric(x, y)
    assert calls == []
    ts.l2i(x, y)
    assert calls == [1]
