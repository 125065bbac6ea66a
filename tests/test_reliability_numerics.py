"""Numerics and validation of the metric functions at the edges of the floating-point range (issue 25).

* SAS's default regulariser is scale-free: SAS does not depend on the overall scale of either modality; the
  source paper's absolute ε = 1e-8 is kept under ``preset="paper"`` (and for an explicit ``eps=``).
* Values whose squares underflow float32 are computed in float64 (and the accumulator scales each batch by a power
  of two, so unchecked batches do not underflow either); values whose fourth powers underflow float64 are refused
  with an error naming the underflow, in every entry point.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch
from conftest import paired
from metric_table import METRICS, scaled_pairs
from sas_defaults import default_eps

import torchspectral as ts


def spectrum_pairs(n: int = 2000, d: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 pairs with a well separated, decaying spectrum (so float32 rounding moves no mode across the
    active-set threshold) and a common offset."""
    x, y = paired(n, d, seed=seed, offset=0.5)
    return torch.from_numpy(x), torch.from_numpy(y)


# ---------------------------------------------------------------------------------------------------- item 2
SCALES = [1e-3, 1e-2, 0.1, 10.0, 1e3]


def _sas_values(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    # q = 1 weighs in the smallest modes, whose float32 rounding (x * 1e-3 is not exact) reaches 1e-6 by itself.
    r = ts.spectral_alignment(x, y, q=[0.1, 0.25] if x.dtype == torch.float32 else [0.1, 0.25, 1.0])
    return [*r.x_to_y.tolist(), *r.y_to_x.tolist()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("which", ["x", "y", "both"])
@pytest.mark.parametrize("scale", SCALES)
def test_default_sas_is_unchanged_by_rescaling_either_modality(scale: float, which: str, dtype: torch.dtype) -> None:
    x, y = (t.to(dtype) for t in spectrum_pairs())
    a = scale if which in ("x", "both") else 1.0
    b = scale if which in ("y", "both") else 1.0
    want = _sas_values(x, y)
    got = _sas_values(x * a, y * b)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("row_norm", [1.0, 0.3, 0.1, 0.01])
def test_default_sas_of_the_issue_example_does_not_depend_on_the_row_norm(row_norm: float) -> None:
    """d = 768, n = 2,000, rows of norm 1, 0.3, 0.1, 0.01: the absolute ε gave 0.147, 0.141, 0.050, 0.0005."""
    g = torch.Generator().manual_seed(25)
    z = torch.randn(2000, 768, generator=g, dtype=torch.float64) * torch.linspace(1.0, 0.05, 768, dtype=torch.float64)
    x = z + 0.5 * torch.randn(2000, 768, generator=g, dtype=torch.float64)
    y = z + 0.5 * torch.randn(2000, 768, generator=g, dtype=torch.float64)
    x, y = (t / torch.linalg.vector_norm(t, dim=1, keepdim=True) for t in (x, y))
    want = float(ts.sas(x.float(), y.float()))
    assert float(ts.sas((row_norm * x).float(), (row_norm * y).float())) == pytest.approx(want, rel=1e-6)


def test_default_sas_matches_the_reference_with_the_relative_eps() -> None:
    x, y = paired(400, 12, seed=3, offset=0.2)
    for scale in (1e-2, 1.0, 1e2):
        xs, ys = scale * x, y / scale
        eps = default_eps(xs, ys)
        got = ts.spectral_alignment(torch.from_numpy(xs), torch.from_numpy(ys))
        want = R.spectral_alignment(xs, ys, eps=eps)
        assert float(got.x_to_y) == pytest.approx(want["x_to_y"], rel=1e-10)
        assert float(got.y_to_x) == pytest.approx(want["y_to_x"], rel=1e-10)
        np.testing.assert_allclose(got.rho_x.numpy(), want["rho_x"], rtol=1e-8, atol=1e-12)


def test_an_explicit_eps_is_the_absolute_regulariser_of_the_paper() -> None:
    x, y = paired(400, 12, seed=4)
    x, y = 0.005 * x, 0.005 * y  # small enough for the absolute ε to matter
    got = float(ts.sas(torch.from_numpy(x), torch.from_numpy(y), eps=1e-8))
    assert got == pytest.approx(R.sas(x, y, eps=1e-8), rel=1e-10)
    assert got < 0.9 * R.sas(x, y, eps=default_eps(x, y))  # the absolute ε damps small-scale embeddings


def test_paper_preset_keeps_the_absolute_eps_and_the_default_preset_is_scale_free() -> None:
    x, y = paired(300, 10, seed=5, offset=0.3)
    x, y = 0.005 * x, 0.005 * y
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    paper = ts.alignment_report(xt, yt, preset="paper", pairwise=False)
    default = ts.alignment_report(xt, yt, pairwise=False)
    for side, (a, b) in (("x_to_y", (x, y)), ("y_to_x", (y, x))):
        assert paper[f"sas_{side}"] == pytest.approx(R.sas(a, b, eps=1e-8), rel=1e-10)
        assert default[f"sas_{side}"] == pytest.approx(R.sas(a, b, eps=default_eps(a, b)), rel=1e-10)
    streamed = ts.metrics.AlignmentMetrics(10, preset="paper")
    streamed.update(xt, yt)
    assert float(streamed.compute()["sas_x_to_y"]) == pytest.approx(paper["sas_x_to_y"], rel=1e-10)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_every_sas_entry_point_is_scale_free_by_default(scale: float) -> None:
    x, y = spectrum_pairs(600, 12, seed=6)
    want = float(ts.spectral_alignment(x, y, q=0.25).symmetric)
    xs = x * scale
    assert float(ts.Moments.from_data(xs, y).spectral_alignment(q=0.25).symmetric) == pytest.approx(want, rel=1e-9)
    assert float(ts.Moments.from_data(xs, y).sas(q=0.25)) == pytest.approx(float(ts.sas(x, y, q=0.25)), rel=1e-9)
    metric = ts.metrics.SpectralAlignment(12, q=0.25)
    metric.update(xs, y)
    assert float(metric.compute()["symmetric"]) == pytest.approx(want, rel=1e-9)
    assert float(ts.alignment_report(xs, y, pairwise=False)["sas_x_to_y"]) == pytest.approx(
        float(ts.sas(x, y)), rel=1e-9
    )
    assert 1 - float(ts.nn.SASLoss(q=0.25)(xs, y)) == pytest.approx(want, rel=1e-9)
    reference = ts.Moments.from_data(x, y)
    frozen = ts.nn.SASLoss(q=0.25, basis="frozen", reference=reference)
    assert float(frozen(xs, y)) == pytest.approx(float(frozen(x, y)), rel=1e-9)
    prior = ts.SpectralPrior.fit(xs, y, q=0.25)
    assert float(prior.directions["x_to_y"].population_sas) == pytest.approx(float(ts.sas(x, y, q=0.25)), rel=1e-9)
    assert float(prior.score(xs, y).mean()) == pytest.approx(float(ts.sas(x, y, q=0.25)), rel=1e-6)


def test_frozen_basis_loss_with_sync_uses_the_global_relative_eps() -> None:
    """With a fixed basis the ε of the loss is formed from the batch's own mean variances (not the reference's)."""
    x, y = spectrum_pairs(500, 10, seed=7)
    loss = ts.nn.SASLoss(q=0.3, basis="frozen", reference=ts.Moments.from_data(x, y))
    # On the reference batch itself the frozen basis is the batch's own eigenbasis: the exact batch SAS.
    assert float(loss(x, y)) == pytest.approx(float(ts.nn.SASLoss(q=0.3)(x, y)), rel=1e-12)
    assert float(loss(x, 1e-3 * y)) == pytest.approx(float(loss(x, y)), rel=1e-9)


def test_default_eps_of_the_fixed_basis_loss_has_the_autograd_gradient() -> None:
    """The default ε of the loss depends on the batch (its mean variances): the gradient includes that dependence."""
    from torch.autograd import gradcheck

    rx, ry = spectrum_pairs(60, 6, seed=8)
    x, y = (t.clone().requires_grad_() for t in spectrum_pairs(40, 6, seed=9))
    for basis in ("frozen", "ema"):
        reference = ts.Moments.from_data(rx, ry) if basis == "frozen" else None
        loss = ts.nn.SASLoss(q=0.5, gamma=0.3, basis=basis, reference=reference).eval()
        if basis == "ema":
            loss.train()(rx, ry)
            loss.eval()
        assert gradcheck(loss, (1e-3 * x, y), eps=1e-9, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("eps", [0.0, -1e-8, float("nan"), float("inf"), "1e-8", True])
def test_a_bad_eps_is_refused(eps) -> None:
    x, y = spectrum_pairs(100, 6)
    for call in (
        lambda: ts.sas(x, y, eps=eps),
        lambda: ts.spectral_alignment(x, y, eps=eps),
        lambda: ts.Moments.from_data(x, y).sas(eps=eps),
        lambda: ts.nn.SASLoss(eps=eps)(x, y),
        lambda: ts.SpectralPrior.fit(x, y, eps=eps),
    ):
        with pytest.raises((ValueError, TypeError), match="eps"):
            call()


# ---------------------------------------------------------------------------------------------------- item 1
def tiny(scale: float, dtype: torch.dtype, n: int = 64, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return scaled_pairs(scale, dtype, seed=25, n=n, d=d)


@pytest.mark.parametrize("scale", [1e-12, 1e-22, 1e-26, 1e-30])
@pytest.mark.parametrize("name", list(METRICS))
def test_float32_values_whose_squares_underflow_are_computed_correctly(name: str, scale: float) -> None:
    """float32 at 1e-22…1e-30 gave cka 1.0 (true 0.81), svcca 6.68: their squares underflow float32."""
    x, y = tiny(scale, torch.float32)
    ours, ref = METRICS[name]
    want = ref(x.double().numpy(), y.double().numpy())  # the same float32 values, in float64
    got = float(ours(x, y))
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12 if name in ("coral", "mmd") else 0.0), f"{name}: {got}"


@pytest.mark.parametrize("name", ["sas", "cka", "cka_unbiased", "svcca", "modality_gap", "retrieval_rsum"])
def test_float32_tiny_values_give_the_value_of_the_rescaled_data(name: str) -> None:
    """The scale-invariant metrics of float32 data at 1e-30 equal the reference on the data rescaled to unit size."""
    x, y = tiny(1e-30, torch.float32)
    ours, ref = METRICS[name]
    want = ref(x.double().numpy() * 1e30, y.double().numpy() * 1e30)
    assert float(ours(x, y)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_near_the_bottom_of_its_range_is_computed_correctly(dtype: torch.dtype) -> None:
    x, y = tiny(1e-3 if dtype == torch.float16 else 1e-30, dtype)
    for name in ("cka", "svcca", "sas"):
        ours, ref = METRICS[name]
        assert float(ours(x, y)) == pytest.approx(ref(x.double().numpy(), y.double().numpy()), rel=1e-6), name


def test_float64_within_its_range_is_computed_correctly() -> None:
    """At 1e-60 the reference's n×n HSIC underflows itself: compare with the reference on the rescaled data."""
    x, y = tiny(1e-60, torch.float64)
    for name in ("sas", "cka", "cka_unbiased", "svcca", "rmg", "retrieval_rsum"):
        ours, ref = METRICS[name]
        assert float(ours(x, y)) == pytest.approx(ref(x.numpy() * 1e60, y.numpy() * 1e60), rel=1e-9), name
    assert float(ts.coral(x, y)) == pytest.approx(R.coral(x.numpy() * 1e60, y.numpy() * 1e60) * 1e-240, rel=1e-9)


TINY_CALLS = {
    "sas": ts.sas,
    "spectral_alignment": lambda x, y: ts.spectral_alignment(x, y).symmetric,
    "cka": ts.cka,
    "cka_unbiased": lambda x, y: ts.cka(x, y, unbiased=True),
    "cka_rbf": lambda x, y: ts.cka(x, y, kernel="rbf"),
    "svcca": ts.svcca,
    "coral": ts.coral,
    "mmd": ts.mmd,
    "modality_gap": ts.modality_gap,
    "rmg": ts.rmg,
    "retrieval": lambda x, y: ts.retrieval(x, y).rsum,
    "alignment_report": ts.alignment_report,
    "Moments.from_data": lambda x, y: ts.Moments.from_data(x, y).cka(),
    "Moments.update": lambda x, y: ts.Moments().update(x, y).cka(),
    "SpectralAlignment": lambda x, y: ts.metrics.SpectralAlignment(x.shape[1]).update(x, y),
    "CKA metric": lambda x, y: ts.metrics.CKA(x.shape[1]).update(x, y),
    "SASLoss": lambda x, y: ts.nn.SASLoss()(x, y),
    "CKALoss": lambda x, y: ts.nn.CKALoss()(x, y),
    "CORALLoss": lambda x, y: ts.nn.CORALLoss()(x, y),
    "MMDLoss": lambda x, y: ts.nn.MMDLoss()(x, y),
    "CLIPLoss": lambda x, y: ts.nn.CLIPLoss()(x, y),
    "SpectralPrior.fit": lambda x, y: ts.SpectralPrior.fit(x, y),
}


@pytest.mark.parametrize("name", list(TINY_CALLS))
def test_float64_values_whose_powers_underflow_are_refused_naming_underflow(name: str) -> None:
    """float64 at 1e-150: sas gave 0, cka "zero variance"; the fourth powers the statistics need underflow."""
    x, y = tiny(1e-150, torch.float64)
    with pytest.raises(ValueError, match=r"[xy] has values of at most \d\.\d+e-1[45]\d, too small for float64: .*"
                                         r"underflow float64.*rescale"):  # fmt: skip
        TINY_CALLS[name](x, y)


def test_underflow_names_the_modality_that_is_too_small() -> None:
    x, y = tiny(1.0, torch.float64)
    with pytest.raises(ValueError, match=r"cka: y has values of at most .*e-1[45]\d, too small for float64"):
        ts.cka(x, y * 1e-150)
    with pytest.raises(ValueError, match=r"mmd: x has values of at most .*e-1[45]\d, too small for float64"):
        ts.mmd(x * 1e-150, y)


def test_all_zero_input_is_still_called_zero_variance_not_too_small() -> None:
    x, y = tiny(1.0, torch.float64)
    with pytest.raises(ValueError, match="zero variance"):
        ts.cka(x, torch.zeros_like(y))


def test_moments_streamed_from_tiny_float32_batches() -> None:
    x, y = tiny(1e-28, torch.float32, n=120)
    m = ts.Moments()
    for start in range(0, 120, 50):
        m.update(x[start : start + 50], y[start : start + 50])
    want = ts.Moments.from_data(x.double(), y.double())
    for metric in ("sas", "cka", "svcca", "coral", "modality_gap", "rmg"):
        assert float(getattr(m, metric)()) == pytest.approx(float(getattr(want, metric)()), rel=1e-9), metric
    # validate_args="first": the later batches are not checked (nor moved to float64); the accumulator scales each
    # batch by a power of two, so their float32 sums do not underflow either (float32 rounding remains).
    metric = ts.metrics.CKA(8, unbiased=True)
    for start in range(0, 120, 50):
        metric.update(x[start : start + 50], y[start : start + 50])
    assert float(metric.compute()) == pytest.approx(float(want.cka(unbiased=True)), rel=1e-5)
    unchecked = ts.metrics.SpectralAlignment(8, validate_args=False)
    unchecked.update(x, y)
    symmetric = float(want.spectral_alignment().symmetric)
    assert float(unchecked.compute()["symmetric"]) == pytest.approx(symmetric, rel=1e-5)


def test_losses_of_tiny_float32_inputs_are_correct_with_float32_gradients() -> None:
    x, y = tiny(1e-28, torch.float32)
    x.requires_grad_(True)
    for loss, want in (
        (ts.nn.SASLoss(), 1 - float(ts.spectral_alignment(x.detach().double(), y.double()).symmetric)),
        (ts.nn.CKALoss(), 1 - float(ts.cka(x.detach().double(), y.double()))),
    ):
        x.grad = None
        value = loss(x, y)
        assert float(value) == pytest.approx(want, rel=1e-6)
        value.backward()
        assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_sharded_inputs_follow_the_same_range_rule() -> None:
    from torchspectral.distributed import agreement as shards

    def facts(peak: float, float64: bool) -> list[dict]:
        return [{"n": 10, "d": 4, "float64": float64, "bad": 0, "peak": peak}, {"n": 0, "d": None, "float64": False,
                                                                                 "bad": 0, "peak": 0.0}]  # fmt: skip

    assert shards.compute_dtype_across("m", 10, 4, facts(1.0, False), facts(2.0, False)) == torch.float32
    assert shards.compute_dtype_across("m", 10, 4, facts(1.0, False), facts(1e-30, False)) == torch.float64
    assert shards.compute_dtype_across("m", 10, 4, facts(0.0, False), facts(1.0, False)) == torch.float32
    with pytest.raises(ValueError, match=r"m: y has values of at most 1e-150, too small for float64"):
        shards.compute_dtype_across("m", 10, 4, facts(1.0, True), facts(1e-150, True))


# ----------------------------------------------------------------------------- a constant modality, meta tensors
@pytest.mark.parametrize("make", ["repeat", "expand"])
@pytest.mark.parametrize("seed", range(6))
def test_unbiased_cka_of_a_constant_modality_is_the_zero_variance_error(make: str, seed: int) -> None:
    """A constant non-zero x gave rounding noise of either sign (e.g. -9.55e-06) instead of the error ones() gets."""
    g = torch.Generator().manual_seed(seed)
    row = torch.randn(1, 32, generator=g) * 3 + 1
    constant = row.repeat(2000, 1) if make == "repeat" else row.expand(2000, 32)
    other = torch.randn(2000, 32, generator=g)
    for x, y, which in ((constant, other, "x"), (other, constant, "y")):
        with pytest.raises(ValueError, match=f"{which} has zero variance"):
            ts.cka(x, y, unbiased=True)


def test_from_flat_with_nan_names_the_nan_not_zero_variance() -> None:
    m = ts.Moments.from_data(torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64))
    flat = m.to_flat().clone()
    flat[10] = float("nan")
    with pytest.raises(ValueError, match="1 of 68 values are NaN or Inf"):
        ts.Moments.from_flat(flat, 3, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda meta, real: ts.sas(meta, meta),
        lambda meta, real: ts.cka(meta, meta),
        lambda meta, real: ts.mmd(real, meta),
        lambda meta, real: ts.coral(meta, meta),
        lambda meta, real: ts.Moments().update(meta, meta),
    ],
    ids=["sas", "cka", "mmd-cpu-meta-mix", "coral", "Moments.update"],
)
def test_meta_tensors_are_refused_by_name(call) -> None:
    meta, real = torch.empty(50, 4, device="meta"), torch.randn(50, 4)
    with pytest.raises(ValueError, match="is on the meta device"):
        call(meta, real)


@pytest.mark.parametrize(("dtype", "tiny"), [(torch.float64, 1e-170), (torch.float32, 1e-25)])
def test_a_row_whose_squares_underflow_is_normalised_not_called_zero_norm(dtype: torch.dtype, tiny: float) -> None:
    """The row-normalising metrics are invariant to each row's scale: a tiny (not zero) row changes nothing."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, 4, generator=g, dtype=dtype), torch.randn(50, 4, generator=g, dtype=dtype)
    shrunk = x.clone()
    shrunk[3] *= tiny
    for metric in (ts.modality_gap, ts.true_pair_cosine):
        assert float(metric(shrunk, y)) == pytest.approx(float(metric(x, y)), rel=1e-6)
    zero = x.clone()
    zero[3] = 0.0
    with pytest.raises(ValueError, match="zero norm"):
        ts.modality_gap(zero, y)
