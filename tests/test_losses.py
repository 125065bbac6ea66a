"""Loss modules against direct formulas, gradcheck, large-batch stability, schedules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import paired
from torch.autograd import gradcheck

import torchspectral as ts


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(24, 6, seed=81, offset=0.4)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_clip_loss_formula(batch) -> None:
    x, y = batch
    xn, yn = unit(x.numpy()), unit(y.numpy())
    logits = xn @ yn.T / 0.1
    want = -(np.diag(log_softmax(logits, 1)).mean() + np.diag(log_softmax(logits, 0)).mean()) / 2
    assert float(ts.nn.CLIPLoss()(x, y)) == pytest.approx(want, rel=1e-10)
    learnable = ts.nn.CLIPLoss(temperature=0.07, learnable_temperature=True)
    assert [n for n, _ in learnable.named_parameters()] == ["log_temperature"]
    assert float(learnable.temperature) == pytest.approx(0.07)


def test_siglip_loss_formula(batch) -> None:
    x, y = batch
    xn, yn = unit(x.numpy()), unit(y.numpy())
    loss = ts.nn.SigLIPLoss().double()
    scale, bias = float(loss.log_scale.exp()), float(loss.bias)  # 10 and −10, as rounded at initialisation
    logits = scale * (xn @ yn.T) + bias
    z = 2 * np.eye(24) - 1
    want = np.log1p(np.exp(-z * logits)).sum() / 24
    assert float(loss(x, y).detach()) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("alpha", [2.0, 1.0, 3.0])
def test_align_true_pairs_formula(batch, alpha: float) -> None:
    x, y = batch
    want = (np.linalg.norm(unit(x.numpy()) - unit(y.numpy()), axis=1) ** alpha).mean()
    assert float(ts.nn.AlignTruePairsLoss(alpha)(x, y)) == pytest.approx(want, rel=1e-10)


def test_centroid_uniformity_formula(batch) -> None:
    x, y = batch
    c = unit((unit(x.numpy()) + unit(y.numpy())) / 2)
    terms = [math.exp(-2.0 * np.sum((c[i] - c[j]) ** 2)) for i in range(24) for j in range(i + 1, 24)]
    assert float(ts.nn.CentroidUniformityLoss()(x, y)) == pytest.approx(math.log(np.mean(terms)), rel=1e-10)


def test_centroid_uniformity_is_stable_for_large_batches() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8192, 32, generator=g)
    y = x + 0.01 * torch.randn(8192, 32, generator=g)  # centroids ≈ x̂: a large t·d² range
    loss = ts.nn.CentroidUniformityLoss(t=50.0)(x, y)
    assert torch.isfinite(loss)
    c = F.normalize(F.normalize(x.double(), dim=1) + F.normalize(y.double(), dim=1), dim=1)
    d2 = torch.cdist(c, c) ** 2
    upper = torch.ones(8192, 8192, dtype=torch.bool).triu(1)
    want = torch.logsumexp(-50.0 * d2[upper], 0) - math.log(8192 * 8191 / 2)
    assert float(loss) == pytest.approx(float(want), rel=1e-4)


def test_gap_closing_combines_and_schedules(batch) -> None:
    x, y = batch
    clip, atp, cu = ts.nn.CLIPLoss()(x, y), ts.nn.AlignTruePairsLoss()(x, y), ts.nn.CentroidUniformityLoss()(x, y)
    assert float(ts.nn.GapClosingLoss(0.5, 2.0)(x, y)) == pytest.approx(float(clip + 0.5 * atp + 2.0 * cu), rel=1e-12)
    scheduled = ts.nn.GapClosingLoss(schedule="paper")
    assert float(scheduled(x, y, progress=0.75)) == pytest.approx(float(clip + 1.5 * atp), rel=1e-12)
    assert float(scheduled(x, y, progress=0.1)) == pytest.approx(float(clip + atp + cu), rel=1e-12)
    with pytest.raises(ValueError, match="needs forward"):
        scheduled(x, y)
    assert ts.nn.paper_schedule(0.2) == (1.0, 1.0) and ts.nn.paper_schedule(0.7) == (1.4, 0.0)


def test_metric_losses_are_the_metrics(batch) -> None:
    x, y = batch
    sa = ts.spectral_alignment(x, y, q=0.5)
    assert float(ts.nn.SASLoss(q=0.5, gamma=0.3)(x, y)) == pytest.approx(
        float(1 - sa.symmetric + 0.3 * sa.imbalance.abs()), rel=1e-12
    )
    assert float(ts.nn.CKALoss(unbiased=True)(x, y)) == pytest.approx(float(1 - ts.cka(x, y, unbiased=True)), rel=1e-12)
    assert float(ts.nn.CORALLoss()(x, y)) == pytest.approx(float(ts.coral(x, y)), rel=1e-12)
    assert float(ts.nn.MMDLoss(sigma=1.0)(x, y)) == pytest.approx(float(ts.mmd(x, y, sigma=1.0)), rel=1e-12)


LOSSES = {
    "clip": ts.nn.CLIPLoss(),
    "clip_learnable": ts.nn.CLIPLoss(learnable_temperature=True).double(),
    "siglip": ts.nn.SigLIPLoss().double(),
    "atp": ts.nn.AlignTruePairsLoss(),
    "atp_alpha3": ts.nn.AlignTruePairsLoss(alpha=3.0),
    "cu": ts.nn.CentroidUniformityLoss(),
    "gap_closing": ts.nn.GapClosingLoss(),
    "sas": ts.nn.SASLoss(q=0.5, gamma=0.5),
    "cka": ts.nn.CKALoss(),
    "cka_rbf": ts.nn.CKALoss(kernel="rbf", sigma=2.0),
    "mmd": ts.nn.MMDLoss(sigma=2.0),
    "coral": ts.nn.CORALLoss(),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck(name: str) -> None:
    x, y = paired(12, 4, seed=82, offset=0.3)
    x = torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y).requires_grad_()
    assert gradcheck(LOSSES[name], (x, y), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_sas_loss_gradient_finite_on_isotropic_batch() -> None:
    q = torch.linalg.qr(torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[0]
    x = ((q - q.mean(0)) * 8).requires_grad_()
    ts.nn.SASLoss(q=0.5)(x, x.detach().roll(1, 1)).backward()
    assert bool(torch.isfinite(x.grad).all())


def test_bad_input(batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match="temperature must be positive"):
        ts.nn.CLIPLoss(temperature=0.0)
    with pytest.raises(ValueError, match="same number of paired rows"):
        ts.nn.CLIPLoss()(x, y[:-1])
    zero = x.clone()
    zero[2] = 0.0
    with pytest.raises(ValueError, match="zero norm"):
        ts.nn.AlignTruePairsLoss()(zero, y)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        ts.nn.CentroidUniformityLoss()(x[:1], y[:1])
    with pytest.raises(ValueError, match="schedule must be"):
        ts.nn.GapClosingLoss(schedule="cosine")
    with pytest.raises(ValueError, match="progress must lie"):
        ts.nn.paper_schedule(1.5)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 24 pairs contain NaN"):
        ts.nn.SigLIPLoss()(bad, y)


GAP_LOSSES = {
    "clip": lambda: ts.nn.CLIPLoss(),
    "clip_learnable": lambda: ts.nn.CLIPLoss(learnable_temperature=True),
    "siglip": lambda: ts.nn.SigLIPLoss(),
    "align_true_pairs": lambda: ts.nn.AlignTruePairsLoss(),
    "centroid_uniformity": lambda: ts.nn.CentroidUniformityLoss(),
    "gap_closing": lambda: ts.nn.GapClosingLoss(),
}


@pytest.mark.parametrize("name", list(GAP_LOSSES))
def test_float16_losses_are_upcast(name: str) -> None:
    """float16 rows with norm > 65504 (each value representable): the loss is the float32 loss of those values,
    the gradient comes back in float16."""
    g = torch.Generator().manual_seed(83)
    x = 1.5e4 * torch.randn(32, 64, generator=g)
    y = 0.8 * x + 0.6 * 1.5e4 * torch.randn(32, 64, generator=g)
    x16, y16 = x.half().requires_grad_(), y.half()
    assert bool(torch.isfinite(x16).all() & torch.isfinite(y16).all())
    assert float(torch.linalg.vector_norm(x16.detach().float(), dim=1).min()) > 65504
    loss = GAP_LOSSES[name]()
    got = loss(x16, y16)
    want = loss(x16.detach().float(), y16.float())
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    got.backward()
    assert x16.grad.dtype == torch.float16 and bool(torch.isfinite(x16.grad).all())


@pytest.mark.parametrize("name", list(GAP_LOSSES))
def test_mixed_dtypes_are_accepted(name: str) -> None:
    x, y = paired(24, 6, seed=84, offset=0.4)
    x32, y64 = torch.from_numpy(x).float(), torch.from_numpy(y)
    loss = GAP_LOSSES[name]()
    assert float(loss(x32, y64)) == pytest.approx(float(loss(x32.double(), y64)), rel=1e-12)


@pytest.mark.parametrize("name", list(GAP_LOSSES))
def test_float32_losses_with_huge_values(name: str) -> None:
    """Values whose squares overflow float32 (issue 11, item 4): the loss of the same values in float64."""
    x, y = paired(64, 8, seed=85, offset=0.4)
    x32, y32 = (torch.from_numpy(x) * 1e20).float(), (torch.from_numpy(y) * 1e20).float()
    loss = GAP_LOSSES[name]()
    assert float(loss(x32, y32)) == pytest.approx(float(loss(x32.double(), y32.double())), rel=1e-6)
