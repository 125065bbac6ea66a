"""Moments.all_reduce across 2 gloo processes on CPU equals the single-process statistics."""

from __future__ import annotations

import pytest
import torch
from conftest import paired, run_ranks

import torchspectral as ts

# Uneven shards: rank 0 streams three batches, rank 1 holds a single small batch.
SHARDS = {0: [(0, 50), (50, 120), (120, 290)], 1: [(290, 300)]}


def _worker(rank: int, world: int) -> dict[str, float]:
    x, y = paired(300, 7, seed=51, offset=40.0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    m = ts.Moments(7, 7)
    for a, b in SHARDS.get(rank, []):
        m.update(x[a:b], y[a:b])
    m.all_reduce()
    return m.report()


@pytest.mark.parametrize("world", [2, 3])  # world 3: one rank holds no pairs at all
def test_all_reduce_equals_single_process(world: int) -> None:
    x, y = paired(300, 7, seed=51, offset=40.0)
    want = ts.alignment_report(torch.from_numpy(x), torch.from_numpy(y), pairwise=False)
    for report in run_ranks(_worker, world).values():
        assert report == pytest.approx(want, rel=1e-10, abs=1e-13)


def test_all_reduce_needs_an_initialised_group() -> None:
    m = ts.Moments.from_data(torch.randn(10, 3), torch.randn(10, 3))
    with pytest.raises(RuntimeError, match="not initialised"):
        m.all_reduce()


def _widths_worker(rank: int, world: int, kind: str) -> str:
    """Each rank with its own width (7 + rank): the error every rank raises, or "no error"."""
    d = 7 + rank
    x, y = torch.randn(20, d, dtype=torch.float64), torch.randn(20, d, dtype=torch.float64)
    try:
        if kind == "moments":
            ts.Moments.from_data(x, y).all_reduce()
        else:
            metric = ts.metrics.SpectralAlignment(d)
            metric.update(x, y)
            metric.compute()
    except ValueError as error:
        return str(error)
    return "no error"


@pytest.mark.parametrize("kind", ["moments", "metric"])
def test_ranks_with_other_widths_get_one_clear_error_before_any_collective(kind: str) -> None:
    """Before the check, gloo aborted the process (Moments) or torchmetrics raised a raw stack error (metric)."""
    results = run_ranks(_widths_worker, 2, kind)
    for message in results.values():
        assert "the ranks disagree on (d_x, d_y" in message, message
        assert "rank 0: (7, 7" in message and "rank 1: (8, 8" in message, message
