"""The pairwise metrics never allocate an n×n (or N×M) buffer, forward or backward.

torch's profiler records the memory each op allocates; with a small tile budget, the largest single
allocation must stay far below one n×n float32 matrix (a dense cdist at the same n is the control).
"""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import torchspectral as ts
from torchspectral import pairwise

pytestmark = pytest.mark.slow  # the profiler slows the tiled loops down (about 25 s in all)

N, D = 3000, 32
NXN_BYTES = N * N * 4  # one n×n float32 matrix: 36 MB


def largest_allocation(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.cpu_memory_usage for event in prof.events())


@pytest.fixture
def data(monkeypatch):
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", 1 << 20)  # tiles of 288×288
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g).requires_grad_()
    y = (torch.randn(N, D, generator=g) + 0.3).requires_grad_()
    return x, y


CALLS = {
    "mmd forward+backward": lambda x, y: ts.mmd(x, y[:2000], sigma=[2.0, 6.0]).backward(),
    "mmd biased forward+backward": lambda x, y: ts.mmd(x, y, sigma=4.0, estimator="biased").backward(),
    "cka_rbf forward+backward": lambda x, y: ts.cka(x, y, kernel="rbf", sigma=4.0).backward(),
    "cka_rbf unbiased forward+backward": lambda x, y: ts.cka(x, y, kernel="rbf", unbiased=True, sigma=4.0).backward(),
    "retrieval": lambda x, y: ts.retrieval(x.detach()[:1000], y.detach(), torch.arange(N) % 1000, ties="pessimistic"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_no_n_by_n_allocation(name: str, data) -> None:
    x, y = data
    assert largest_allocation(lambda: CALLS[name](x, y)) < NXN_BYTES / 16


def test_the_measure_sees_a_dense_matrix(data) -> None:
    x, y = data
    assert largest_allocation(lambda: torch.cdist(x.detach(), y.detach()).sum()) >= NXN_BYTES
