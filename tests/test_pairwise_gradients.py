"""mmd and RBF cka are differentiable in x and y: gradcheck (float64) through the tile-recomputing backward."""

from __future__ import annotations

import pytest
import torch
from conftest import paired
from torch.autograd import gradcheck

import torchspectral as ts
from torchspectral import pairwise

METRICS = {
    "mmd_unbiased": lambda x, y: ts.mmd(x, y, sigma=1.5),
    "mmd_biased": lambda x, y: ts.mmd(x, y, sigma=1.5, estimator="biased"),
    "mmd_sum_of_kernels": lambda x, y: ts.mmd(x, y, sigma=[0.7, 2.0, 5.0], scale=10.0),
    "mmd_unequal_sizes": lambda x, y: ts.mmd(x, y[:13], sigma=1.0),
    "cka_rbf": lambda x, y: ts.cka(x, y, kernel="rbf", sigma=1.2),
    "cka_rbf_unbiased": lambda x, y: ts.cka(x, y, kernel="rbf", unbiased=True, sigma=1.2),
    "cka_rbf_widths": lambda x, y: ts.cka(x, y[:, :3], kernel="rbf", sigma=1.7),
}


@pytest.mark.parametrize("tiles", ["one tile", "many tiles"])
@pytest.mark.parametrize("name", list(METRICS))
def test_gradcheck(name: str, tiles: str, monkeypatch) -> None:
    if tiles == "many tiles":
        monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", 1)  # 16×16 tiles: 21 rows span two
    x, y = paired(21, 5, seed=61, offset=0.5)
    x = torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y).requires_grad_()
    assert gradcheck(METRICS[name], (x, y), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_only_the_needed_gradient_is_computed() -> None:
    x, y = paired(30, 4, seed=62)
    x = torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y)
    ts.mmd(x, y, sigma=1.0).backward()
    ts.cka(x, y, kernel="rbf", sigma=1.0).backward()
    assert x.grad is not None and y.grad is None


def test_median_bandwidth_is_a_constant_for_gradients() -> None:
    """With sigma="median" the gradient is that of the same estimator at the fixed median bandwidth."""
    x, y = paired(40, 4, seed=63, offset=0.3)
    x1, x2 = torch.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
    y = torch.from_numpy(y)
    ts.mmd(x1, y).backward()
    sigma = float(pairwise.median_pairwise_distance(torch.cat([x2.detach(), y])))
    ts.mmd(x2, y, sigma=sigma).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=0)


def test_float32_gradients_match_float64() -> None:
    x, y = paired(50, 6, seed=64, offset=0.2)
    grads = {}
    for dtype in (torch.float64, torch.float32):
        xt = torch.from_numpy(x).to(dtype).requires_grad_()
        yt = torch.from_numpy(y).to(dtype).requires_grad_()
        (ts.mmd(xt, yt, sigma=2.0) + ts.cka(xt, yt, kernel="rbf", sigma=2.0)).backward()
        assert xt.grad.dtype == dtype
        grads[dtype] = (xt.grad.double(), yt.grad.double())
    for g32, g64 in zip(grads[torch.float32], grads[torch.float64], strict=True):
        torch.testing.assert_close(g32, g64, rtol=1e-4, atol=1e-6)


def test_rbf_cka_backward_reads_nothing_on_the_host(monkeypatch) -> None:
    """The backward keeps the incoming gradient on the device: no float()/item() (each would sync a GPU)."""
    import torchspectral as ts

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = (x.detach() + torch.randn(40, 5, generator=g, dtype=torch.float64)).requires_grad_()
    value = ts.cka(x, y, kernel="rbf", unbiased=True, backend="torch")

    def host_read(*args, **kwargs):
        raise AssertionError("the backward read a tensor on the host")

    monkeypatch.setattr(torch.Tensor, "__float__", host_read)
    monkeypatch.setattr(torch.Tensor, "item", host_read)
    value.backward()
    assert x.grad is not None and y.grad is not None
