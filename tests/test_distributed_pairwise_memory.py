"""No rank of a sharded pairwise computation allocates an N×M (or N×N) buffer (2 gloo processes, torch profiler).

As tests/test_pairwise_memory.py does for one process: with a small tile budget, the largest single allocation
each rank makes must stay far below one N×M float32 matrix; a dense product on the same shards is the control
that the measure sees such a matrix.
"""

from __future__ import annotations

import pytest
import torch
from conftest import run_ranks
from torch.profiler import ProfilerActivity, profile

import torchspectral as ts
from torchspectral import pairwise

pytestmark = pytest.mark.slow  # the profiler slows the tiled loops down

N, D = 2400, 32
NXN_BYTES = N * N * 4  # one N×N float32 matrix: 23 MB
SHARDS = [(0, 1500), (1500, N)]  # uneven


def _largest_allocation(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


def _worker(rank: int, world: int) -> dict[str, int]:
    import torch.distributed as dist

    from torchspectral.metrics import Retrieval

    pairwise.TILE_BUDGET_BYTES = 1 << 20  # float32 tiles of 288 rows
    group = dist.group.WORLD
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g) + 0.3
    a, b = SHARDS[rank]
    metric = Retrieval()
    for part in range(a, b, 500):
        stop = min(part + 500, b)
        ids = torch.arange(part, stop) // 2  # two captions per image
        metric.update(x[ids], y[part:stop], ids)
    calls = {
        "retrieval": lambda: ts.retrieval(x[a:b], y[a:b], group=group),
        "Retrieval metric with ids": metric.compute,
        # Fixed bandwidths, as in the one-process test: the median heuristic sorts the distances of its fixed
        # 4096-row subsample (O(4096²) whatever N, the same in one process).
        "mmd": lambda: ts.mmd(x[a:b], y[a:b], sigma=[2.0, 6.0], group=group),
        "cka_rbf unbiased": lambda: ts.cka(x[a:b], y[a:b], kernel="rbf", unbiased=True, sigma=4.0, group=group),
        "control": lambda: (x[a:b] @ y.T).sum(),
    }
    return {name: _largest_allocation(call) for name, call in calls.items()}


def test_no_rank_allocates_an_n_by_m_buffer() -> None:
    for rank, sizes in run_ranks(_worker, 2).items():
        control = sizes.pop("control")
        assert control >= NXN_BYTES * (SHARDS[rank][1] - SHARDS[rank][0]) / N  # the measure sees a dense block
        for name, size in sizes.items():
            assert size < NXN_BYTES / 16, f"rank {rank}, {name}: {size} bytes"
