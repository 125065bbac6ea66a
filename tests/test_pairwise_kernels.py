"""The Triton kernels against the chunked torch path, on awkward shapes.

On a machine without CUDA they run in Triton's CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported); shapes stay small because the interpreter runs every program in Python.
Awkward means: n not a multiple of the tile, n ≠ m, d = 1, d = 1000 with few rows, 1–7 captions per image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchspectral as ts
from torchspectral import kernels, pairwise

pytestmark = pytest.mark.skipif(not kernels.available(), reason="triton is not installed (pip install triton)")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def data(n: int, d: int, seed: int, offset: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g) + offset).to(DEVICE)


MMD_SHAPES = [(37, 50, 3), (70, 33, 1), (20, 9, 1000), (64, 64, 16), (1, 5, 2), (257, 190, 24)]


@pytest.mark.parametrize("sigma", [0.9, [0.3, 1.0, 4.0]])
@pytest.mark.parametrize("n,m,d", MMD_SHAPES)
def test_mmd_sums(n: int, m: int, d: int, sigma) -> None:
    x, y = data(n, d, seed=n), data(m, d, seed=m + 1, offset=0.4)
    sigmas = sigma if isinstance(sigma, list) else [sigma]
    scale = (d**0.5) * 0.8  # keep the kernel values away from 0 at every d
    sigmas = [s * scale for s in sigmas]
    got, got_level = pairwise.rbf_mmd_sums(x, y, sigmas, backend="triton")
    want, want_level = pairwise.rbf_mmd_sums(x.double(), y.double(), sigmas, backend="torch")
    # The sums are of k − level: compare Σ k (level·pairs back) at fp32 precision of the kernel values.
    pairs = torch.tensor([n * (n - 1), m * (m - 1), n * m], dtype=torch.float64)
    torch.testing.assert_close(got.cpu() + got_level * pairs, want.cpu() + want_level * pairs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd_public_function(estimator: str) -> None:
    x, y = data(45, 7, seed=3), data(29, 7, seed=4, offset=0.5)
    got = ts.mmd(x, y, estimator=estimator, backend="triton")
    want = ts.mmd(x, y, estimator=estimator, backend="torch")
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n,d_x,d_y", [(37, 3, 5), (70, 1, 2), (20, 1000, 7), (33, 16, 16)])
def test_cka_sums(n: int, d_x: int, d_y: int) -> None:
    x, y = data(n, d_x, seed=n), data(n, d_y, seed=n + 1, offset=-0.3)
    sigma_x, sigma_y = 0.9 * d_x**0.5, 1.3 * d_y**0.5
    got = pairwise.rbf_cka_sums(x, y, sigma_x, sigma_y, backend="triton")
    want = pairwise.rbf_cka_sums(x.double(), y.double(), sigma_x, sigma_y, backend="torch")
    assert got[3:] == pytest.approx(want[3:], rel=1e-6)  # the shifts, from float32 vs float64 data
    for g, w in zip(got[:3], want[:3], strict=True):
        torch.testing.assert_close(g.cpu(), w.cpu(), rtol=1e-4, atol=1e-5 * n)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_public_function(unbiased: bool) -> None:
    x, y = data(58, 6, seed=5), data(58, 4, seed=6)
    y = y + x[:, :4]
    got = ts.cka(x, y, kernel="rbf", unbiased=unbiased, backend="triton")
    want = ts.cka(x, y, kernel="rbf", unbiased=unbiased, backend="torch")
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=1e-5, atol=1e-7)


def captions_for(n_img: int, per_image: tuple[int, int], seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    counts = rng.integers(per_image[0], per_image[1] + 1, size=n_img)
    return torch.from_numpy(rng.permutation(np.repeat(np.arange(n_img), counts))).to(DEVICE)


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
@pytest.mark.parametrize("n_img,per_image,d", [(41, (1, 1), 3), (30, (1, 7), 16), (25, (5, 5), 1), (9, (1, 3), 1000)])
def test_retrieval_ranks(n_img: int, per_image: tuple[int, int], d: int, ties: str) -> None:
    c = captions_for(n_img, per_image, seed=n_img)
    images = data(n_img, d, seed=1)
    captions = images[c] + 1.2 * data(c.shape[0], d, seed=2)
    got = ts.retrieval(images, captions, c, ties=ties, backend="triton")
    want = ts.retrieval(images, captions, c, ties=ties, backend="torch")
    torch.testing.assert_close(got.i2t_ranks, want.i2t_ranks, rtol=0, atol=0)
    torch.testing.assert_close(got.t2i_ranks, want.t2i_ranks, rtol=0, atol=0)


def test_retrieval_ties_from_duplicated_rows() -> None:
    c = captions_for(20, (1, 4), seed=7)
    images = data(20, 8, seed=8)
    captions = images[c] + data(c.shape[0], 8, seed=9)
    images[11] = images[2]
    captions[c == 4] = captions[torch.nonzero(c == 4)[0, 0]].clone()
    captions[torch.nonzero(c == 9)[0, 0]] = captions[torch.nonzero(c == 4)[0, 0]].clone()
    for ties in ("optimistic", "pessimistic"):
        got = ts.retrieval(images, captions, c, ties=ties, backend="triton")
        want = ts.retrieval(images, captions, c, ties=ties, backend="torch")
        torch.testing.assert_close(got.t2i_ranks, want.t2i_ranks, rtol=0, atol=0)
        torch.testing.assert_close(got.i2t_ranks, want.i2t_ranks, rtol=0, atol=0)
    pess = ts.retrieval(images, captions, c, ties="pessimistic", backend="triton")
    opt = ts.retrieval(images, captions, c, backend="triton")
    assert int((pess.t2i_ranks - opt.t2i_ranks)[(c == 2) | (c == 11)].min()) == 1


def test_both_tie_rules_on_the_kernels() -> None:
    c = captions_for(20, (1, 4), seed=7)
    images = data(20, 8, seed=8)
    captions = images[c] + data(c.shape[0], 8, seed=9)
    images[11] = images[2]
    x_hat = images / images.norm(dim=1, keepdim=True)
    y_hat = captions / captions.norm(dim=1, keepdim=True)
    got = pairwise.retrieval_ranks_both(x_hat, y_hat, c, backend="triton", precision="ieee")
    want = pairwise.retrieval_ranks_both(x_hat, y_hat, c, backend="torch", precision="ieee")
    for got_rule, want_rule in zip(got, want, strict=True):
        for g, w in zip(got_rule, want_rule, strict=True):
            torch.testing.assert_close(g.cpu(), w.cpu(), rtol=0, atol=0)
    assert not torch.equal(want[0][1], want[1][1])  # the duplicate image ties


def test_triton_refuses_float64() -> None:
    x = data(10, 3, seed=1).double()
    with pytest.raises(ValueError, match="compute in float32; use backend='torch'"):
        ts.mmd(x, x, sigma=1.0, backend="triton")


def test_auto_uses_the_kernels_only_on_cuda() -> None:
    x = torch.randn(5, 3)
    assert pairwise.resolve_backend("auto", "mmd", x) == "torch"
    if torch.cuda.is_available():
        assert pairwise.resolve_backend("auto", "mmd", x.cuda()) == "triton"
        assert pairwise.resolve_backend("auto", "mmd", x.cuda().double()) == "torch"
