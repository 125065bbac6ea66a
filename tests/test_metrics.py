"""torchmetrics classes: streaming = one-shot, forward/MetricCollection, exact merges, 2-process sync."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import paired

import torchspectral as ts

torchmetrics = pytest.importorskip("torchmetrics")
from torchspectral.metrics import CKA, AlignmentMetrics, ModalityGap, SpectralAlignment  # noqa: E402
from torchspectral.moments import Moments, merge_flat  # noqa: E402


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(400, 8, seed=91, offset=5.0)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_streaming_equals_one_shot(data) -> None:
    x, y = data
    metrics = {
        "all": AlignmentMetrics(8),
        "sas": SpectralAlignment(8, q=0.25),
        "cka": CKA(8, unbiased=True),
        "gap": ModalityGap(8),
    }
    for start in range(0, 400, 37):
        for metric in metrics.values():
            metric.update(x[start : start + 37], y[start : start + 37])
    want = ts.alignment_report(x, y, pairwise=False)
    got = metrics["all"].compute()
    assert {k: float(v) for k, v in got.items()} == pytest.approx(want, rel=1e-10)
    sa = ts.spectral_alignment(x, y, q=0.25)
    assert float(metrics["sas"].compute()["imbalance"]) == pytest.approx(float(sa.imbalance), rel=1e-10)
    assert float(metrics["cka"].compute()) == pytest.approx(want["cka_linear_unbiased"], rel=1e-10)
    assert float(metrics["gap"].compute()["rmg"]) == pytest.approx(want["rmg"], rel=1e-10)


def test_forward_returns_the_batch_value_and_accumulates(data) -> None:
    x, y = data
    metric = CKA(8)
    batch_value = metric(x[:100], y[:100])
    assert float(batch_value) == pytest.approx(float(ts.cka(x[:100], y[:100])), rel=1e-10)
    metric(x[100:], y[100:])
    assert float(metric.compute()) == pytest.approx(float(ts.cka(x, y)), rel=1e-10)
    metric.reset()
    metric.update(x[:50], y[:50])
    assert float(metric.compute()) == pytest.approx(float(ts.cka(x[:50], y[:50])), rel=1e-10)


def test_metric_collection(data) -> None:
    x, y = data
    collection = torchmetrics.MetricCollection({"cka": CKA(8), "cka_u": CKA(8, unbiased=True)})
    for start in range(0, 400, 100):
        collection.update(x[start : start + 100], y[start : start + 100])
    out = collection.compute()
    assert float(out["cka_u"]) == pytest.approx(float(ts.cka(x, y, unbiased=True)), rel=1e-10)


def test_flat_round_trip_and_merge(data) -> None:
    x, y = data
    parts = [Moments.from_data(x[a : a + 150], y[a : a + 150]) for a in range(0, 400, 150)]
    stacked = torch.stack([p.to_flat() for p in parts])
    merged = Moments.from_flat(merge_flat(stacked, 8, 8), 8, 8)
    assert merged.n == 400
    assert merged.report() == pytest.approx(ts.alignment_report(x, y, pairwise=False), rel=1e-10)
    with pytest.raises(ValueError, match="expected a vector of"):
        Moments.from_flat(torch.zeros(5, dtype=torch.float64), 8, 8)


def test_bad_input(data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="built for"):
        CKA(8).update(x[:, :5], y[:, :5])
    with pytest.raises(ValueError, match="positive integers"):
        SpectralAlignment(0)
    bad = x.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 400 pairs contain NaN"):
        ModalityGap(8).update(bad, y)


SHARDS = {0: [(0, 90), (90, 300), (300, 390)], 1: [(390, 400)]}


def _worker(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        x, y = paired(400, 8, seed=91, offset=5.0)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        metric = AlignmentMetrics(8)
        for a, b in SHARDS[rank]:
            metric.update(x[a:b], y[a:b])
        results[rank] = {k: float(v) for k, v in metric.compute().items()}  # compute() syncs the ranks
    finally:
        dist.destroy_process_group()


def test_two_process_sync_equals_single_process() -> None:
    x, y = paired(400, 8, seed=91, offset=5.0)
    want = ts.alignment_report(torch.from_numpy(x), torch.from_numpy(y), pairwise=False)
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        results = manager.dict()
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), results), nprocs=2, join=True)
        reports = dict(results)
    assert sorted(reports) == [0, 1]
    for report in reports.values():
        assert report == pytest.approx(want, rel=1e-10, abs=1e-13)


def test_direction_bounds_and_info_come_from_the_registry() -> None:
    """One-output metrics carry the registry's direction and range; dict-valued ones an entry per output key."""
    from torchspectral.registry import METRICS

    g = torch.Generator().manual_seed(5)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = x + torch.randn(40, 4, generator=g, dtype=torch.float64)
    for metric, name in (
        (ts.metrics.CKA(4), "cka_linear"),
        (ts.metrics.CKA(4, unbiased=True), "cka_linear_unbiased"),
        (ts.metrics.MMD(), "mmd"),
        (ts.metrics.KernelCKA(unbiased=True), "cka_rbf_unbiased"),
    ):
        info = METRICS[name]
        assert metric.metric_info is info
        assert metric.higher_is_better == info.higher_is_better
        assert metric.plot_lower_bound in (info.low, None) and metric.plot_upper_bound in (info.high, None)
    assert ts.metrics.CKA(4).plot_lower_bound is None  # the unbiased estimator can leave [0, 1]: no shared bound
    assert ts.metrics.MMD.higher_is_better is False and ts.metrics.KernelCKA.higher_is_better is True
    for metric in (
        ts.metrics.SpectralAlignment(4),
        ts.metrics.ModalityGap(4),
        ts.metrics.AlignmentMetrics(4),
        ts.metrics.Retrieval(ks=(1, 3)),
    ):
        metric.update(x, y)
        assert metric.higher_is_better is None  # several outputs, no single direction
        out = metric.compute()
        assert set(metric.metric_info) == set(out) - {"n_pairs"}, type(metric).__name__
        for key, info in metric.metric_info.items():
            value = float(out[key])
            assert (info.low is None or value >= info.low - 1e-12) and (info.high is None or value <= info.high + 1e-12)
