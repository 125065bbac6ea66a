"""What the pairwise entry points do around a launch: no host reads beyond the kernel level, on either backend.

A host read (``float()``, ``.item()``, ``bool()`` of a tensor) stalls a GPU until the queue drains. The one
read left in a pairwise call is :func:`~torchspectral.pairwise.kernel_level` (a ≤ 128-row subsample; its value
picks the kernels' expm1 form at compile time); with it fixed, the tiles, the launchers and the reductions
read nothing.
"""

from __future__ import annotations

import pytest
import torch

from torchspectral import kernels, pairwise
from torchspectral.pairwise import dispatch

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.skipif(not kernels.available(), reason="no triton"))]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _refuse_host_reads(monkeypatch) -> None:
    def host_read(*args, **kwargs):
        raise AssertionError("a tensor was read on the host")

    for name in ("__float__", "__int__", "__bool__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, host_read)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["ieee", "bf16"])
def test_pairwise_sums_read_nothing_on_the_host(backend: str, precision: str, monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g).to(DEVICE), torch.randn(33, 5, generator=g).to(DEVICE)
    pairwise.rbf_mmd_sums(x, y, [1.0], backend=backend, precision=precision)  # compiled/warm before the check
    pairwise.rbf_cka_sums(x, x + 1, 1.0, 1.5, backend=backend, precision=precision)
    monkeypatch.setattr(dispatch, "kernel_level", lambda z, coefs: 0.25)
    _refuse_host_reads(monkeypatch)
    sums, _ = pairwise.rbf_mmd_sums(x, y, [1.0], backend=backend, precision=precision)
    cka = pairwise.rbf_cka_sums(x, x + 1, 1.0, 1.5, backend=backend, precision=precision)
    assert sums.shape == (3,) and cka[0].shape == (3,)


def test_the_level_is_the_read_that_is_left(monkeypatch) -> None:
    """Without the patched level the same call does read on the host: the check above is not vacuous."""
    x = torch.randn(20, 3).to(DEVICE)
    _refuse_host_reads(monkeypatch)
    with pytest.raises(AssertionError, match="read on the host"):
        pairwise.rbf_mmd_sums(x, x + 1, [1.0], backend="torch")
