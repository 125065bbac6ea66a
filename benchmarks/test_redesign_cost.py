"""The redesign's cost goals: statistics formed only for what a metric reads, and no slower anywhere.

Forward + backward of SASLoss and CKALoss at B ∈ {1024, 4096}, d ∈ {256, 768}, and ts.coral / ts.modality_gap at
n = 20,000, d = 768 (float32, CPU). Run the same file against the code before and after (``PYTHONPATH`` at a
checkout of each; the tree's own ``kernels`` are not used here) and compare the two JSONs:

    PYTHONPATH=BEFORE .venv/bin/python -m pytest benchmarks/test_redesign_cost.py -p no:cacheprovider \
        --benchmark-only --benchmark-json=benchmarks/results/redesign-before-cpu-2core.json
    .venv/bin/python -m pytest benchmarks/test_redesign_cost.py -p no:cacheprovider \
        --benchmark-only --benchmark-json=benchmarks/results/redesign-after-cpu-2core.json
"""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts

LOSS_SIZES = [(1024, 256), (1024, 768), (4096, 256), (4096, 768)]


def _pairs(n: int, d: int, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g) + 2.0
    y = x + torch.randn(n, d, generator=g)
    return (x.requires_grad_(), y.requires_grad_()) if grad else (x, y)


@pytest.mark.parametrize(("b", "d"), LOSS_SIZES)
@pytest.mark.parametrize("name", ["SASLoss", "CKALoss"])
def test_loss_forward_backward(benchmark, name, b, d) -> None:
    loss = getattr(ts.nn, name)()
    x, y = _pairs(b, d, grad=True)

    def step() -> None:
        x.grad = y.grad = None
        loss(x, y).backward()

    benchmark.group = f"{name} B={b} d={d}"
    benchmark.extra_info.update(loss=name, batch=b, d=d, package=ts.__file__)
    benchmark.pedantic(step, rounds=7, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("name", ["coral", "modality_gap"])
def test_moment_metric_one_shot(benchmark, name) -> None:
    x, y = _pairs(20_000, 768, grad=False)
    metric = getattr(ts, name)
    benchmark.group = f"{name} n=20000 d=768"
    benchmark.extra_info.update(metric=name, n=20_000, d=768, package=ts.__file__)
    benchmark.pedantic(lambda: metric(x, y), rounds=7, iterations=1, warmup_rounds=1)
