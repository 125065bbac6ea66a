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


@pytest.mark.skipif(not kernels.available(), reason="no triton")
def test_split_grids_give_the_same_results(monkeypatch) -> None:
    """MMD and the rank count split their column loops over a second grid axis when row blocks are few: the
    ranks must not depend on the split at all (integer atomics), the sums only to rounding, and a repeated
    run with the same split must give the same bits (a fixed-order reduction)."""
    from torchspectral.kernels import rbf_mmd_sums, retrieval_ranks

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(70, 6, generator=g).to(DEVICE), torch.randn(61, 6, generator=g).to(DEVICE)
    images = torch.nn.functional.normalize(torch.randn(45, 6, generator=g), dim=1).to(DEVICE)
    captions = torch.nn.functional.normalize(torch.randn(130, 6, generator=g), dim=1).to(DEVICE)
    c = torch.arange(130).remainder(45).to(DEVICE)
    sums, ranks = {}, {}
    for target in (1, 3, 8, 64):
        for module in (rbf_mmd_sums, retrieval_ranks):
            monkeypatch.setattr(module, "target_programs", lambda device, t=target: t)
        sums[target] = rbf_mmd_sums.rbf_mmd_sums_triton(x, y, [1.0], 0.3)
        ranks[target] = retrieval_ranks.retrieval_ranks_triton(images, captions, c, False)
        assert torch.equal(sums[target], rbf_mmd_sums.rbf_mmd_sums_triton(x, y, [1.0], 0.3))
    for target in (3, 8, 64):
        torch.testing.assert_close(sums[target], sums[1], rtol=1e-6, atol=1e-6)
        assert all(torch.equal(a, b) for a, b in zip(ranks[target], ranks[1], strict=True))


@pytest.mark.skipif(torch.cuda.is_available() or not kernels.available(), reason="needs a machine without CUDA")
def test_auto_falls_back_with_one_warning_when_the_device_cannot_run_the_kernels(monkeypatch) -> None:
    """A "CUDA" tensor on a machine whose probe says no (here: torch sees no CUDA device): auto takes the torch
    path and warns once per reason; an explicit backend="triton" is refused with the reason."""
    import warnings

    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    monkeypatch.setattr(dispatch, "_WARNED", set())
    kernels.cuda_unsupported.cache_clear()
    x = torch.zeros(4, 3)
    with pytest.warns(RuntimeWarning, match="running the chunked torch path: torch sees no CUDA device"):
        assert pairwise.resolve_backend("auto", "mmd", x) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pairwise.resolve_backend("auto", "mmd", x) == "torch"  # no second warning
    with pytest.raises(RuntimeError, match="backend='triton' cannot run here: torch sees no CUDA device"):
        pairwise.resolve_backend("triton", "mmd", x)
    assert pairwise.resolve_backend("torch", "mmd", x) == "torch"


@pytest.mark.skipif(not kernels.available(), reason="no triton")
def test_autotuning_resets_the_partial_sum_buffers() -> None:
    """On a GPU the autotuner runs every config into the same buffers before the chosen one. The partial-sum
    slots a config writes depend on its tile, so each buffer that is summed afterwards must be zeroed between
    runs (a stale slot from a smaller tile would be added to the result). The interpreter has one config, so
    this is checked on the autotuners' settings."""
    from torchspectral.kernels import rbf_cka_sums, rbf_mmd_sums, retrieval_ranks

    assert "out_ptr" in rbf_mmd_sums._rbf_mmd_sums_kernel.reset_to_zero
    assert "part_ptr" in rbf_cka_sums._rbf_cka_sums_kernel.reset_to_zero
    assert {"i2t_ptr", "t2i_ptr"} <= set(retrieval_ranks._rank_count_kernel.reset_to_zero)
