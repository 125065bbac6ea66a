"""validate_args: the checks that read values (a host synchronisation each on CUDA) are optional, and the losses and
streaming metrics run them on their first call only by default — with no read of a value on the host in later
forward and backward passes."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import torchspectral as ts
from torchspectral.metrics import CKA, AlignmentMetrics, SpectralAlignment

# The ops that read a tensor's value on the host (.item(), float(), bool(), a boolean mask's count): on CUDA each
# waits for the device.
HOST_READS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select")


class HostReads(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(str(func).startswith(name) for name in HOST_READS):
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def _pairs(n: int = 64, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return x, x + torch.randn(n, d, generator=g)


FUNCTIONAL = [ts.sas, ts.spectral_alignment, ts.cka, ts.coral, ts.svcca, ts.modality_gap, ts.l2i, ts.rmg, ts.mmd]


@pytest.mark.parametrize("metric", FUNCTIONAL, ids=lambda f: f.__name__)
def test_functional_metrics_take_validate_args_and_give_the_same_value(metric) -> None:
    x, y = _pairs()
    assert inspect.signature(metric).parameters["validate_args"].default is True
    checked, unchecked = metric(x, y), metric(x, y, validate_args=False)
    if isinstance(checked, torch.Tensor):
        assert torch.equal(checked, unchecked)
    else:
        assert torch.equal(checked.symmetric, unchecked.symmetric)


def test_unchecked_values_give_nan_instead_of_an_error() -> None:
    x, y = _pairs()
    bad = x.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match="contain NaN or Inf"):
        ts.cka(bad, y)
    assert torch.isnan(ts.cka(bad, y, validate_args=False))
    constant = torch.ones_like(y)
    with pytest.raises(ValueError, match="zero variance"):
        ts.sas(constant, x)  # the anchor
    with pytest.raises(ValueError, match="zero variance"):
        ts.cka(x, constant)
    assert torch.isnan(ts.cka(x, constant, validate_args=False))


def test_validate_args_bad_values() -> None:
    x, y = _pairs()
    with pytest.raises(TypeError, match="validate_args must be True or False"):
        ts.cka(x, y, validate_args="first")
    with pytest.raises(ValueError, match="nan_policy='omit' needs the values checked"):
        ts.cka(x, y, validate_args=False, nan_policy="omit")
    with pytest.raises(ValueError, match="validate_args must be True, False or 'first'"):
        ts.nn.SASLoss(validate_args="always")
    with pytest.raises(ValueError, match="validate_args must be True, False or 'first'"):
        CKA(8, validate_args=None)


def _losses() -> dict[str, torch.nn.Module]:
    x, y = _pairs()
    prior = ts.SpectralPrior.fit(x, y, q=0.25)
    return {
        "sas": ts.nn.SASLoss(),
        "sas_gamma": ts.nn.SASLoss(gamma=0.5),
        "sas_frozen": ts.nn.SASLoss(q=0.25, basis="frozen", reference=prior),
        "sas_ema": ts.nn.SASLoss(basis="ema", refresh_every=2),
        "cka": ts.nn.CKALoss(),
        "cka_unbiased": ts.nn.CKALoss(unbiased=True),
        "coral": ts.nn.CORALLoss(),
        "clip": ts.nn.CLIPLoss(),
        "siglip": ts.nn.SigLIPLoss(),
        "align_true_pairs": ts.nn.AlignTruePairsLoss(),
        "centroid_uniformity": ts.nn.CentroidUniformityLoss(),
        "gap_closing": ts.nn.GapClosingLoss(),
    }


@pytest.mark.parametrize("name", list(_losses()))
def test_losses_read_no_value_on_the_host_after_the_first_step(name) -> None:
    """The moment and contrastive losses: no .item()/float()/bool()/mask count in forward or backward of step 2+.
    (The RBF losses still read their bandwidth and the pairwise tile sums on the host: the pairwise engine's.)"""
    loss = _losses()[name]
    x, y = _pairs()
    first = HostReads()
    with first:
        loss(x, y)
    assert first.seen, "the first step checks the values"
    for _ in range(3):  # the EMA basis refreshes on steps 2 and 4 (refresh_every=2)
        xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
        with HostReads() as reads:
            loss(xr, yr).backward()
        assert reads.seen == [], f"{name}: host reads {sorted(set(reads.seen))}"
        assert xr.grad is not None and torch.isfinite(xr.grad).all()


def test_losses_check_the_first_step_every_step_or_never() -> None:
    x, y = _pairs()
    bad = x.clone()
    bad[0, 0] = float("inf")
    first = ts.nn.CKALoss()
    with pytest.raises(ValueError, match="contain NaN or Inf"):
        first(bad, y)  # a wrong input is caught at once
    first(x, y)
    assert not torch.isfinite(first(bad, y))  # later steps are not checked: a non-finite loss, as any torch loss
    every = ts.nn.CKALoss(validate_args=True)
    every(x, y)
    with pytest.raises(ValueError, match="contain NaN or Inf"):
        every(bad, y)
    assert not torch.isfinite(ts.nn.CKALoss(validate_args=False)(bad, y))
    # A loss made of losses: once the outer step is past its checks, so are the inner ones.
    gap = ts.nn.GapClosingLoss()
    gap(x, y)
    assert gap.clip._args_validated and not torch.isfinite(gap(bad, y))


def test_shape_checks_always_run() -> None:
    x, y = _pairs()
    loss = ts.nn.SASLoss(validate_args=False)
    with pytest.raises(ValueError, match="same number of paired rows"):
        loss(x, y[:10])
    with pytest.raises(ValueError, match="must be 2-D"):
        ts.cka(x[0], y[0], validate_args=False)


def test_streaming_metrics_check_the_first_batch_and_refuse_a_non_finite_state() -> None:
    x, y = _pairs(200)
    bad = x[:50].clone()
    bad[7, 1] = float("nan")
    metric = SpectralAlignment(8, q=0.25)
    with pytest.raises(ValueError, match="contain NaN or Inf"):
        metric.update(bad, y[:50])
    metric.update(x[:50], y[:50])
    metric.update(bad, y[:50])  # unchecked: the state becomes NaN, and compute says so
    with pytest.raises(ValueError, match="not finite: a batch passed to update held NaN or Inf"):
        metric.compute()
    every = AlignmentMetrics(8, validate_args=True)
    every.update(x[:50], y[:50])
    with pytest.raises(ValueError, match="contain NaN or Inf"):
        every.update(bad, y[:50])
    # Unchecked batches give the same statistics as checked ones.
    checked, unchecked = CKA(8, validate_args=True), CKA(8, validate_args=False)
    for start in range(0, 200, 50):
        checked.update(x[start : start + 50], y[start : start + 50])
        unchecked.update(x[start : start + 50], y[start : start + 50])
    assert torch.equal(checked.compute(), unchecked.compute())
    with HostReads() as reads:
        unchecked.update(x[:50], y[:50])
    assert reads.seen == []
