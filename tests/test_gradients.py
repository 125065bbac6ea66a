"""Every moment metric is differentiable in x and y: gradcheck in float64 on generic input."""

from __future__ import annotations

import pytest
import torch
from conftest import paired
from torch.autograd import gradcheck

import torchspectral as ts

METRICS = {
    "sas": lambda x, y: ts.sas(x, y, q=0.5),
    "sas_sweep": lambda x, y: ts.sas(x, y, q=[0.3, 1.0]),
    "sas_signed": lambda x, y: ts.sas(x, y, q=0.5, signed=True),
    "spectral_alignment": lambda x, y: torch.stack(
        [ts.spectral_alignment(x, y, q=0.5).imbalance, ts.spectral_alignment(x, y, q=0.5).symmetric]
    ),
    "cka": ts.cka,
    "cka_unbiased": lambda x, y: ts.cka(x, y, unbiased=True),
    "svcca": ts.svcca,
    "svcca_standardized": lambda x, y: ts.svcca(x, y, keep=3, standardize=True),
    "coral": ts.coral,
    "coral_frobenius": lambda x, y: ts.coral(x, y, scale="frobenius"),
    "modality_gap": ts.modality_gap,
    "l2i": ts.l2i,
    "true_pair_cosine": ts.true_pair_cosine,
    "cosine_gap": ts.cosine_gap,
    "rmg": ts.rmg,
}


@pytest.mark.parametrize("name", list(METRICS))
def test_gradcheck(name: str) -> None:
    x, y = paired(24, 5, seed=31, offset=0.5)
    x = torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y).requires_grad_()
    assert gradcheck(METRICS[name], (x, y), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_through_streaming_moments() -> None:
    x, y = paired(30, 4, seed=32)
    x = torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y).requires_grad_()

    def streamed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m = ts.Moments()
        for a in range(0, 30, 7):
            m.update(x[a : a + 7], y[a : a + 7])
        return torch.stack([m.sas(q=0.5), m.cka(unbiased=True), m.rmg(), m.svcca()])

    assert gradcheck(streamed, (x, y), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_half_precision_inputs_get_gradients() -> None:
    x, y = paired(64, 8, seed=33)
    x = torch.from_numpy(x).bfloat16().requires_grad_()
    y = torch.from_numpy(y).bfloat16().requires_grad_()
    ts.cka(x, y).backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and bool(torch.isfinite(x.grad.float()).all())
