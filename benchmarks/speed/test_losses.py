"""Forward + backward time of every loss relative to CLIPLoss at the same size, same run (float32, CPU).

Run: ``.venv/bin/python -m pytest benchmarks/speed/test_losses.py -p no:cacheprovider --benchmark-only``.
"""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts

SIZES = [(1024, 256), (1024, 768), (4096, 256), (4096, 512), (4096, 768)]
LOSSES = {
    "CLIPLoss": ts.nn.CLIPLoss,
    "SigLIPLoss": ts.nn.SigLIPLoss,
    "AlignTruePairsLoss": ts.nn.AlignTruePairsLoss,
    "CentroidUniformityLoss": ts.nn.CentroidUniformityLoss,
    "GapClosingLoss": ts.nn.GapClosingLoss,
    "SASLoss": ts.nn.SASLoss,
    "CKALoss": ts.nn.CKALoss,
    "MMDLoss": ts.nn.MMDLoss,
    "CORALLoss": ts.nn.CORALLoss,
}


def _pairs(b: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, d, generator=g).requires_grad_()
    return x, (x.detach() + torch.randn(b, d, generator=g)).requires_grad_()


def _time_forward_backward(benchmark, loss, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    def step() -> None:
        x.grad = y.grad = None
        loss(x, y).backward()

    b, d = x.shape
    benchmark.group = f"B={b} d={d}"
    benchmark.extra_info.update(loss=name, batch=b, d=d)
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


@pytest.mark.parametrize("size", SIZES, ids=[f"B{b}-d{d}" for b, d in SIZES])
@pytest.mark.parametrize("name", list(LOSSES))
def test_forward_backward(benchmark, name: str, size: tuple[int, int]) -> None:
    x, y = _pairs(*size)
    _time_forward_backward(benchmark, LOSSES[name](), x, y, name)


# SASLoss without a per-step eigh: the reference moments are built outside the timed step (in training
# they come from a fitted prior or the EMA), so the timing is the steady-state cost of one step.
FIXED_BASIS = {
    "SASLoss(frozen)": lambda x, y: ts.nn.SASLoss(basis="frozen", reference=ts.Moments.from_data(x, y)),
    "SASLoss(ema,refresh=100)": lambda x, y: ts.nn.SASLoss(basis="ema", refresh_every=100),
}


@pytest.mark.parametrize("size", SIZES, ids=[f"B{b}-d{d}" for b, d in SIZES])
@pytest.mark.parametrize("name", list(FIXED_BASIS))
def test_forward_backward_fixed_basis(benchmark, name: str, size: tuple[int, int]) -> None:
    x, y = _pairs(*size)
    loss = FIXED_BASIS[name](x.detach(), y.detach())
    exact = float(ts.nn.SASLoss()(x, y).detach())
    loss(x, y)  # the EMA's first step computes its basis (one eigh pair), outside the timing
    _time_forward_backward(benchmark, loss, x, y, name)
    # The basis comes from this very data (or its EMA), so the value is the batch SAS loss.
    assert float(loss(x, y)) == pytest.approx(exact, rel=1e-4)
