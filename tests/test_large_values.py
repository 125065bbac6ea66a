"""Large finite inputs (issue 11, item 4): float32 values whose squares overflow float32 are computed correctly
(in float64), and values too large even for float64 are refused with an error that names overflow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metric_table import METRICS, scaled_pairs

import torchspectral as ts


def huge(scale: float, dtype: torch.dtype, n: int = 64, d: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return scaled_pairs(scale, dtype, seed=11, n=n, d=d)


@pytest.mark.parametrize("scale", [1e20, 1e37])
@pytest.mark.parametrize("name", list(METRICS))
def test_float32_values_whose_squares_overflow_are_computed_correctly(name: str, scale: float) -> None:
    x, y = huge(scale, torch.float32)
    ours, ref = METRICS[name]
    want = ref(x.double().numpy(), y.double().numpy())  # the same float32 values, in float64
    got = float(ours(x, y))
    assert np.isfinite(got)
    assert got == pytest.approx(want, rel=1e-6, abs=1e-9), f"{name}: {got} vs {want}"


@pytest.mark.parametrize("name", ["sas", "cka", "coral", "modality_gap", "true_pair_cosine"])
def test_bfloat16_near_its_range_is_computed_correctly(name: str) -> None:
    x, y = huge(1e37, torch.bfloat16)
    ours, ref = METRICS[name]
    assert float(ours(x, y)) == pytest.approx(ref(x.double().numpy(), y.double().numpy()), rel=1e-6)


def test_moments_streamed_from_huge_float32_batches() -> None:
    x, y = huge(1e20, torch.float32, n=120)
    m = ts.Moments()
    for start in range(0, 120, 50):
        m.update(x[start : start + 50], y[start : start + 50])
    want = ts.Moments.from_data(x.double(), y.double())
    for metric in ("sas", "cka", "coral", "modality_gap", "rmg"):
        assert float(getattr(m, metric)()) == pytest.approx(float(getattr(want, metric)()), rel=1e-9), metric


def test_gradients_of_huge_float32_inputs_are_finite_and_float32() -> None:
    x, y = huge(1e20, torch.float32)
    x.requires_grad_(True)
    (ts.cka(x, y) + ts.true_pair_cosine(x, y)).backward()
    assert x.grad.dtype == torch.float32
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "call",
    [ts.sas, ts.cka, ts.svcca, ts.coral, ts.mmd, ts.modality_gap, ts.true_pair_cosine, ts.rmg, ts.alignment_report,
     lambda x, y: ts.retrieval(x, y), lambda x, y: ts.nn.CLIPLoss()(x, y), lambda x, y: ts.SpectralPrior.fit(x, y)],
)  # fmt: skip
def test_float64_values_whose_squares_overflow_are_refused_naming_overflow(call) -> None:
    x, y = huge(1e300, torch.float64)
    message = r"[xy] has values up to \d\.\d+e\+300, too large for float64: .*overflow float64"
    with pytest.raises(ValueError, match=message):
        call(x, y)


def test_overflow_names_the_modality_that_is_too_large() -> None:
    x, y = huge(1.0, torch.float64)
    with pytest.raises(ValueError, match=r"coral: y has values up to .*e\+200"):
        ts.coral(x, y * 1e200)


def test_large_values_and_nan_together_report_the_nan_first() -> None:
    x, y = huge(1e300, torch.float64)
    x[3, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 64 pairs contain NaN or Inf"):
        ts.cka(x, y)
    with pytest.raises(ValueError, match="overflow float64"):
        ts.cka(x, y, nan_policy="omit")  # what is left is still too large


def test_triton_backend_on_huge_float32_says_why_it_cannot_run() -> None:
    pytest.importorskip("triton")
    x, y = huge(1e20, torch.float32)
    with pytest.raises(ValueError, match="values too large for float32 arithmetic are computed in float64"):
        ts.mmd(x, y, backend="triton")
    with pytest.raises(TypeError, match="values too large for float32 arithmetic are computed in float64"):
        ts.SpectralPrior.fit(x, y).score(x, y, backend="triton")
