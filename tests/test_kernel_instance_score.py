"""The instance-score Triton kernel against a float64 torch formula (interpreter on CPU, CUDA when present)."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # Must happen before Triton is imported: @triton.jit reads it when the kernel module is imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

pytest.importorskip("triton")

from torchspectral.kernels.instance_score import instance_score

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = 1e-5
ATOL_DOT = 1e-6  # ≈ 8 fp32 ulps per projection, scaled by sqrt(d) below


def _stats(d: int, k: int, seed: int) -> tuple[torch.Tensor, ...]:
    """float32 means, orthonormal-ish vectors (columns of a QR, or random when k > d) and signed weights."""
    g = torch.Generator().manual_seed(seed)
    mean_x = torch.randn(d, generator=g)
    mean_y = torch.randn(d, generator=g) + 0.5
    if k <= d:
        vectors = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))[0].float()
    else:
        vectors = torch.randn(d, k, generator=g) / d**0.5
    weights = torch.randn(k, generator=g)
    return tuple(t.to(DEVICE) for t in (mean_x, mean_y, vectors, weights))


def _pair(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = 0.6 * x + 0.8 * torch.randn(n, d, generator=g) + 0.5
    return x.to(dtype).to(DEVICE), y.to(dtype).to(DEVICE)


def _reference(x, y, mean_x, mean_y, vectors, weights, absolute):
    """The formula in float64 on exactly the values the kernel sees, and the fp32 error bound of each row.

    An fp32 projection ``zx_ik`` is off by about ε·‖x_i − μ_x‖·‖V_k‖ (rounding in a length-d dot, which can
    cancel), so the bound is ``RTOL·Σ_k |w_k·zx_ik·zy_ik|`` (rounding of the products and the sum) plus
    ``ATOL_DOT·sqrt(d)·Σ_k |w_k|·(‖x_i − μ_x‖·‖V_k‖·|zy_ik| + |zx_ik|·‖y_i − μ_y‖·‖V_k‖)`` (the dots). Both
    terms scale with the centred data, so a kernel that centres after the dot fails it under a large offset.
    """
    x, y, mean_x, mean_y, vectors, weights = (t.double().cpu() for t in (x, y, mean_x, mean_y, vectors, weights))
    xc, yc = x - mean_x, y - mean_y
    zx, zy = xc @ vectors, yc @ vectors
    prod = zx * zy
    ref = (prod.abs() if absolute else prod) @ weights
    w, vnorm = weights.abs(), vectors.norm(dim=0)
    ax, ay = xc.norm(dim=1, keepdim=True) * vnorm, yc.norm(dim=1, keepdim=True) * vnorm
    dots = (ax * zy.abs() + zx.abs() * ay) @ w
    bound = RTOL * (prod.abs() @ w) + ATOL_DOT * xc.shape[1] ** 0.5 * dots
    return ref, bound


def _check(x, y, mean_x, mean_y, vectors, weights, absolute=False):
    got = instance_score(x, y, mean_x, mean_y, vectors, weights, absolute=absolute)
    assert got.dtype == torch.float32
    assert got.shape == (x.shape[0],)
    assert got.device == x.device
    ref, bound = _reference(x, y, mean_x, mean_y, vectors, weights, absolute)
    err = (got.double().cpu() - ref).abs()
    assert torch.all(err <= bound), f"max err {err.max():.3e}, worst err/bound {(err / bound).max():.3f}"
    return got


@pytest.mark.parametrize(
    ("n", "d", "k"),
    [
        (1, 1, 1),  # every block dimension padded
        (17, 1, 3),  # d = 1
        (17, 100, 40),  # n, d, k all off the tile sizes; several k and d chunks
        (130, 20, 1),  # several row programs, k = 1
        (5, 1000, 3),  # long d loop, few rows
        (33, 64, 77),  # k = 77 (the d = 768 default's active modes), exact d tiles
        (9, 8, 12),  # k > d: random, non-orthogonal vectors
    ],
)
@pytest.mark.parametrize("absolute", [False, True])
def test_matches_formula_float32(n, d, k, absolute):
    x, y = _pair(n, d, seed=n + d + k)
    _check(x, y, *_stats(d, k, seed=k), absolute=absolute)


@pytest.mark.parametrize("absolute", [False, True])
def test_non_contiguous_inputs(absolute):
    n, d, k = 19, 50, 5
    stats = _stats(d, k, seed=3)
    x, y = _pair(n, d, seed=4)
    x_t = x.t().contiguous().t()  # column-major: stride (1, n)
    y_s = torch.zeros(2 * n, 3 * d, device=DEVICE)[::2, ::3]  # strided rows and columns
    y_s.copy_(y)
    assert not x_t.is_contiguous() and not y_s.is_contiguous()
    got = _check(x_t, y_s, *stats, absolute=absolute)
    # The layout changes the memory walk only, never the numbers.
    torch.testing.assert_close(got, instance_score(x, y, *stats, absolute=absolute), rtol=0, atol=0)


def test_row_slice_and_mixed_dtypes():
    n, d, k = 21, 30, 4
    x, y = _pair(2 * n, d, seed=5)
    _check(x[1::2], y[:n].to(torch.bfloat16), *_stats(d, k, seed=6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("absolute", [False, True])
def test_half_inputs(dtype, absolute):
    # The kernel upcasts after loading, so it must match the formula on the same rounded values at fp32 accuracy.
    n, d, k = 37, 72, 20
    x, y = _pair(n, d, seed=7, dtype=dtype)
    assert x.dtype == dtype
    _check(x, y, *_stats(d, k, seed=8), absolute=absolute)


def test_stats_converted_to_float32():
    n, d, k = 11, 24, 6
    x, y = _pair(n, d, seed=9)
    mean_x, mean_y, vectors, weights = _stats(d, k, seed=10)
    got = instance_score(x, y, mean_x.double(), mean_y.half(), vectors.double().t().contiguous().t(), weights.double())
    ref = instance_score(x, y, mean_x, mean_y.half().float(), vectors, weights)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_large_offset_is_centred_before_the_dot():
    # Values on a 2^-10 grid: adding 1e3 (10 integer bits) is exact in fp32, and so is the in-kernel centring,
    # so the offset scores must equal the plain ones bit for bit. Centring after the dot (x V − μ V) would
    # leave errors of ~ε·1e3·‖V_k‖·sqrt(d) in every projection.
    n, d, k = 40, 96, 24
    x, y = _pair(n, d, seed=11)
    mean_x, mean_y, vectors, weights = _stats(d, k, seed=12)
    x, y, mean_x, mean_y = (torch.round(t * 1024) / 1024 for t in (x, y, mean_x, mean_y))
    base = _check(x, y, mean_x, mean_y, vectors, weights)
    shifted = _check(x + 1e3, y + 1e3, mean_x + 1e3, mean_y + 1e3, vectors, weights)
    torch.testing.assert_close(shifted, base, rtol=0, atol=0)


def test_large_offset_unquantised():
    # Off the grid, x + 1e3 itself rounds (ulp 6e-5), which limits the agreement to ~1e-4 relative.
    n, d, k = 24, 40, 8
    x, y = _pair(n, d, seed=13)
    mean_x, mean_y, vectors, weights = _stats(d, k, seed=14)
    base = instance_score(x, y, mean_x, mean_y, vectors, weights)
    shifted = _check(x + 1e3, y + 1e3, mean_x + 1e3, mean_y + 1e3, vectors, weights)
    zx, zy = (x.double() - mean_x.double()) @ vectors.double(), (y.double() - mean_y.double()) @ vectors.double()
    magnitude = (zx * zy).abs() @ weights.double().abs()
    assert torch.all((shifted - base).abs().double().cpu() <= 1e-4 * magnitude.cpu())


def test_absolute_bounds_signed():
    n, d, k = 16, 32, 8
    x, y = _pair(n, d, seed=15)
    mean_x, mean_y, vectors, weights = _stats(d, k, seed=16)
    weights = weights.abs()
    signed = instance_score(x, y, mean_x, mean_y, vectors, weights)
    unsigned = instance_score(x, y, mean_x, mean_y, vectors, weights, absolute=True)
    assert torch.all(unsigned >= signed.abs() - 1e-5 * unsigned)


def test_empty_rows():
    d, k = 8, 2
    x = torch.empty(0, d, device=DEVICE)
    out = instance_score(x, x, *_stats(d, k, seed=0))
    assert out.shape == (0,) and out.dtype == torch.float32


def _good(n: int = 4, d: int = 6, k: int = 2) -> dict:
    x, y = _pair(n, d, seed=0)
    mean_x, mean_y, vectors, weights = _stats(d, k, seed=0)
    return {"x": x, "y": y, "mean_x": mean_x, "mean_y": mean_y, "vectors": vectors, "weights": weights}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: {"x": a["x"][0]}, ValueError, "2-D"),
        (lambda a: {"y": a["y"][:3]}, ValueError, "same shape"),
        (lambda a: {"mean_x": a["mean_x"][:5]}, ValueError, "mean_x and mean_y"),
        (lambda a: {"mean_y": a["mean_y"][None]}, ValueError, "mean_x and mean_y"),
        (lambda a: {"vectors": a["vectors"][:5]}, ValueError, "vectors must have shape"),
        (lambda a: {"vectors": a["vectors"][:, 0]}, ValueError, "vectors must have shape"),
        (lambda a: {"vectors": a["vectors"][:, :0], "weights": a["weights"][:0]}, ValueError, "k ≥ 1"),
        (lambda a: {"weights": a["weights"][:1]}, ValueError, "weights must have shape"),
        (lambda a: {"x": a["x"].double(), "y": a["y"].double()}, TypeError, "torch path"),
        (lambda a: {"y": a["y"].double()}, TypeError, "torch path"),
        (lambda a: {"x": a["x"].to(torch.int32)}, TypeError, "float32, float16 or bfloat16"),
        (lambda a: {"weights": a["weights"].to(torch.int64)}, TypeError, "real floating"),
        (lambda a: {"vectors": a["vectors"].numpy(force=True)}, TypeError, "torch.Tensor"),
        (lambda a: {"mean_x": torch.empty(6, device="meta")}, ValueError, "one device"),
    ],
)
def test_bad_input(change, error, match):
    args = _good()
    args.update(change(args))
    with pytest.raises(error, match=match):
        instance_score(**args)
