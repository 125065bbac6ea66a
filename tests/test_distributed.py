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
