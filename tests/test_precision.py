"""The ``precision`` option: the rounding it stands for, its error bound, and that kernels and torch path agree.

On CPU the kernels run in Triton's interpreter, which ignores ``input_precision`` (np.matmul in fp32): "tf32"
and "bf16" still differ from "ieee" there because their operands are rounded explicitly (by the launchers,
or in-kernel for the instance score's centred rows), exactly as the torch path rounds them.
"""

from __future__ import annotations

import math

import pytest
import torch

import torchspectral as ts
from torchspectral import kernels, pairwise
from torchspectral.pairwise import precision as prec
from torchspectral.pairwise.chunked import squared_distances

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
UNIT_ROUNDOFF = {"tf32": 2.0**-11, "bf16": 2.0**-8}
needs_triton = pytest.mark.skipif(not kernels.available(), reason="triton is not installed")


def unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return (x / x.norm(dim=1, keepdim=True)).to(DEVICE)


# ------------------------------------------------------------------------------------------------ rounding


def test_round_tf32_keeps_ten_mantissa_bits_to_nearest_ties_away() -> None:
    x = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 10.0 ** torch.randint(-5, 5, (10_000,))
    r = prec.round_tf32(x)
    assert torch.all((r.view(torch.int32) & 0x1FFF) == 0)  # 13 low bits cleared
    rel = ((r.double() - x.double()).abs() / x.double().abs()).max()
    assert rel <= 2.0**-11  # round to nearest: half an ulp of a 10-bit mantissa
    assert rel > 2.0**-12  # ... and not a finer rounding
    one_ulp = 2.0**-10
    ties = torch.tensor([1.0 + one_ulp / 2, -(1.0 + one_ulp / 2), 1.0 + 3 * one_ulp / 2])
    assert prec.round_tf32(ties).tolist() == [1.0 + one_ulp, -(1.0 + one_ulp), 1.0 + 2 * one_ulp]


@pytest.mark.parametrize("precision", ["ieee", "tf32x3"])
def test_exact_precisions_do_not_round(precision: str) -> None:
    x = torch.randn(50)
    assert torch.equal(prec.round_operand(x, precision), x)


def test_bf16_rounding_is_a_bfloat16_cast() -> None:
    x = torch.randn(1000)
    r = prec.round_operand(x, "bf16")
    assert torch.equal(r, x.to(torch.bfloat16).float())
    assert ((r - x).abs() / x.abs()).max() <= 2.0**-8


def test_exact_matmuls_turns_tf32_off_and_restores_the_flag() -> None:
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with prec.exact_matmuls():
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


# ------------------------------------------------------------------------------------------- the error bound


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_squared_distance_error_bound(precision: str) -> None:
    """|d̃² − d²| ≤ 4u‖x − y‖ + 4u² + 4d·2⁻²⁴ on unit-norm rows, norms taken of the rounded rows (module doc)."""
    u, d = UNIT_ROUNDOFF[precision], 256
    x, y = unit_rows(300, d, seed=1), unit_rows(200, d, seed=2)
    y[:50] = x[:50] + 1e-3 * unit_rows(50, d, seed=3)  # near-duplicates: where a norm-based error would show
    xr, yr = prec.round_operand(x, precision), prec.round_operand(y, precision)
    got = squared_distances(xr, (xr * xr).sum(1), yr, (yr * yr).sum(1), False).double()
    exact = torch.cdist(x.double(), y.double()) ** 2
    dist = exact.sqrt()
    bound = 4 * u * dist + 4 * u**2 + 4 * d * 2.0**-24
    assert torch.all((got - exact).abs() <= bound), float(((got - exact).abs() / bound).max())
    # The rounding error really is of order u·‖x − y‖ (the bound is not vacuous): far pairs err ≫ fp32.
    far = dist > 1.0
    assert float((got - exact).abs()[far].max()) > 0.05 * u
    # The kernel entries then err by at most 2√2·e^{−1/2}·u·√c (module doc), at every bandwidth.
    for sigma in (0.3, 0.7, 2.0):
        c = 1 / (2 * sigma**2)
        k_err = (torch.exp(-c * got) - torch.exp(-c * exact)).abs()
        rest = c * (4 * u**2 + 4 * d * 2.0**-24)  # the distance bound's other terms, through ∂k/∂d² ≤ c
        assert float(k_err.max()) <= 2 * math.sqrt(2) * math.exp(-0.5) * u * math.sqrt(c) + rest


def test_squared_distance_from_unrounded_norms_would_break_the_bound() -> None:
    """Why the norms are taken of the rounded rows: with the exact norms, near-duplicates err by ~u, not u·‖x−y‖."""
    u, d = UNIT_ROUNDOFF["bf16"], 256
    x = unit_rows(100, d, seed=4)
    y = x + 1e-4 * unit_rows(100, d, seed=5)
    xr, yr = prec.round_operand(x, "bf16"), prec.round_operand(y, "bf16")
    mixed = squared_distances(xr, (x * x).sum(1), yr, (y * y).sum(1), False).diagonal().double()
    exact = ((x.double() - y.double()) ** 2).sum(1)
    bound = 4 * u * exact.sqrt() + 4 * u**2 + 4 * d * 2.0**-24
    assert bool(((mixed - exact).abs() > bound).any())


# ----------------------------------------------------------------------------- the torch path and the kernels


def test_torch_path_honours_the_precision_forward() -> None:
    x, y = unit_rows(60, 32, seed=6), unit_rows(50, 32, seed=7) + 0.05
    values = {p: ts.mmd(x, y, sigma=0.5, backend="torch", precision=p) for p in ("ieee", "tf32x3", "tf32", "bf16")}
    exact = ts.mmd(x.double(), y.double(), sigma=0.5, backend="torch")
    assert values["tf32x3"] == values["ieee"]  # tf32x3 approximates exact fp32: the torch path runs it as ieee
    errors = {p: abs(float(v - exact)) for p, v in values.items()}
    assert errors["bf16"] > errors["tf32"] > errors["ieee"]


@needs_triton
@pytest.mark.parametrize("precision", ["ieee", "tf32x3", "tf32", "bf16"])
def test_kernels_match_the_torch_path_in_each_precision(precision: str) -> None:
    x, y = unit_rows(37, 19, seed=8), unit_rows(29, 19, seed=9) + 0.1
    sums, level = pairwise.rbf_mmd_sums(x, y, [0.6], backend="triton", precision=precision)
    ref, ref_level = pairwise.rbf_mmd_sums(x, y, [0.6], backend="torch", precision=precision)
    assert level == ref_level
    torch.testing.assert_close(sums.cpu(), ref.cpu(), rtol=1e-5, atol=1e-4)
    cka = pairwise.rbf_cka_sums(x[:29], y, 0.7, 0.9, backend="triton", precision=precision)
    cka_ref = pairwise.rbf_cka_sums(x[:29], y, 0.7, 0.9, backend="torch", precision=precision)
    for got, want in zip(cka[:3], cka_ref[:3], strict=True):
        torch.testing.assert_close(got.cpu(), want.cpu(), rtol=1e-5, atol=1e-4)


@needs_triton
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_rounded_precisions_differ_from_ieee_in_the_kernels(precision: str) -> None:
    """The rounding happens on the kernel path too (the interpreter would otherwise hide it)."""
    x, y = unit_rows(33, 40, seed=10), unit_rows(31, 40, seed=11)
    ieee, _ = pairwise.rbf_mmd_sums(x, y, [0.5], backend="triton", precision="ieee")
    rounded, _ = pairwise.rbf_mmd_sums(x, y, [0.5], backend="triton", precision=precision)
    assert float((rounded - ieee).abs().max()) > 1e-3 * UNIT_ROUNDOFF[precision]


@needs_triton
@pytest.mark.parametrize("precision", ["ieee", "tf32", "bf16"])
def test_retrieval_ranks_agree_in_each_precision(precision: str) -> None:
    images = unit_rows(23, 16, seed=12)
    captions = torch.cat([images, images[:9]]) + 0.4 * unit_rows(32, 16, seed=13)
    c = torch.cat([torch.arange(23), torch.arange(9)]).to(DEVICE)
    got = ts.retrieval(images, captions, c, backend="triton", precision=precision)
    want = ts.retrieval(images, captions, c, backend="torch", precision=precision)
    assert torch.equal(got.i2t_ranks.cpu(), want.i2t_ranks.cpu())
    assert torch.equal(got.t2i_ranks.cpu(), want.t2i_ranks.cpu())


@needs_triton
@pytest.mark.parametrize("precision", ["ieee", "tf32", "bf16"])
def test_instance_scores_agree_in_each_precision(precision: str) -> None:
    from torchspectral.kernels.instance_score import instance_score
    from torchspectral.pairwise.instance import InstanceScore

    g = torch.Generator().manual_seed(14)
    x, y = torch.randn(45, 70, generator=g).to(DEVICE), torch.randn(45, 70, generator=g).to(DEVICE)
    mx, my = x.mean(0) + 0.3, y.mean(0) - 0.2
    v = torch.linalg.qr(torch.randn(70, 9, generator=g, dtype=torch.float64))[0].float().to(DEVICE)
    w = torch.randn(9, generator=g).to(DEVICE)
    got = instance_score(x, y, mx, my, v, w, precision=precision)
    want = InstanceScore.apply(x, y, mx, my, v, w, False, 16, precision)
    # Same rounded operands (the kernel's round_tf32 is bit for bit the torch one), fp32 sums in another order.
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if precision != "ieee":
        ieee = InstanceScore.apply(x, y, mx, my, v, w, False, 16, "ieee")
        assert float((want - ieee).abs().max()) > 1e-2 * UNIT_ROUNDOFF[precision]


@needs_triton
def test_backward_runs_in_the_forward_precision() -> None:
    """The kernels' Function inherits the torch backward: it must get the precision too, not fall back to ieee."""
    x0, y0 = unit_rows(30, 12, seed=15), unit_rows(26, 12, seed=16) + 0.2

    def grads(backend: str, precision: str):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        (ts.mmd(x, y, sigma=0.7, backend=backend, precision=precision)
         + ts.cka(x, y[:30] if y0.shape[0] >= 30 else x, kernel="rbf", sigma=0.9, backend=backend,
                  precision=precision)).backward()  # fmt: skip
        return x.grad, y.grad

    bf16_torch, bf16_triton, ieee = grads("torch", "bf16"), grads("triton", "bf16"), grads("torch", "ieee")
    for a, b, c in zip(bf16_torch, bf16_triton, ieee, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert float((a - c).abs().max()) > 1e-3 * float(c.abs().max())  # bf16 rounding shows in the gradient


# --------------------------------------------------------------------------------------------------- choices


def test_defaults() -> None:
    cpu = torch.zeros(2, 2)
    assert prec.resolve_precision(None, "torch", "m", cpu) == "ieee"
    assert prec.resolve_precision(None, "triton", "m", cpu) == "ieee"  # the interpreter
    assert prec.default_precision(cpu.double()) == "ieee"
    if torch.cuda.is_available():
        assert prec.resolve_precision(None, "triton", "m", cpu.cuda()) == "tf32x3"
        assert prec.resolve_precision(None, "torch", "m", cpu.cuda()) == "ieee"


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ts.mmd(x, x + 1, sigma=1.0, precision="fp16"),
        lambda x: ts.cka(x, x, kernel="rbf", precision="TF32"),
        lambda x: ts.retrieval(x, x, precision=""),
    ],
)
def test_unknown_precision_is_named(call) -> None:
    with pytest.raises(ValueError, match=r"precision must be None or one of \('ieee', 'tf32x3', 'tf32', 'bf16'\)"):
        call(torch.randn(8, 3))


def test_rounding_precisions_refuse_float64() -> None:
    x = torch.randn(8, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="mmd: precision='tf32' rounds float32 matmul operands"):
        ts.mmd(x, x + 1, sigma=1.0, precision="tf32")
    assert math.isfinite(float(ts.mmd(x, x + 1, sigma=1.0, precision="ieee")))


def test_precision_does_not_apply_to_linear_cka() -> None:
    with pytest.raises(ValueError, match="does not apply to kernel='linear'"):
        ts.cka(torch.randn(8, 3), torch.randn(8, 3), precision="tf32")


def test_cuda_probe_says_why_not() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: the probe's negative answers are not reachable here")
    kernels.cuda_unsupported.cache_clear()
    reason = kernels.cuda_unsupported(0)
    assert reason is not None
    assert "CUDA" in reason or "triton" in reason
