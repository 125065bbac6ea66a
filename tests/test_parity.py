"""Every moment metric against the independent float64 NumPy reference (tests/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch
from conftest import paired
from sas_defaults import default_eps

import torchspectral as ts

# name → (package call, reference call, needs d_x = d_y)
METRICS = {
    # The default ε is scale-free (1e-8 · mean variance of x · that of y); the reference takes it as an argument.
    "sas_x_to_y": (lambda x, y: ts.sas(x, y), lambda x, y: R.sas(x, y, eps=default_eps(x, y)), True),
    "sas_y_to_x": (lambda x, y: ts.sas(y, x), lambda x, y: R.sas(y, x, eps=default_eps(x, y)), True),
    "sas_q_half": (lambda x, y: ts.sas(x, y, q=0.5), lambda x, y: R.sas(x, y, q=0.5, eps=default_eps(x, y)), True),
    "sas_all_modes": (lambda x, y: ts.sas(x, y, q=1.0), lambda x, y: R.sas(x, y, q=1.0, eps=default_eps(x, y)), True),
    "sas_signed": (
        lambda x, y: ts.sas(x, y, q=0.3, signed=True),
        lambda x, y: R.sas(x, y, q=0.3, signed=True, eps=default_eps(x, y)),
        True,
    ),
    "cka": (lambda x, y: ts.cka(x, y), lambda x, y: R.cka_linear(x, y), False),
    "cka_unbiased": (lambda x, y: ts.cka(x, y, unbiased=True), lambda x, y: R.cka_linear(x, y, unbiased=True), False),
    "svcca": (lambda x, y: ts.svcca(x, y), lambda x, y: R.svcca(x, y), False),
    "svcca_keep5": (lambda x, y: ts.svcca(x, y, keep=5), lambda x, y: R.svcca(x, y, keep=5), False),
    "svcca_paper": (
        lambda x, y: ts.svcca(x, y, keep=6, standardize=True),
        lambda x, y: R.svcca(x, y, keep=6, standardize=True),
        False,
    ),
    "coral": (lambda x, y: ts.coral(x, y), lambda x, y: R.coral(x, y), True),
    "coral_frobenius": (lambda x, y: ts.coral(x, y, scale="frobenius"), lambda x, y: R.coral(x, y, "frobenius"), True),
    "modality_gap": (ts.modality_gap, R.modality_gap, True),
    "l2i": (ts.l2i, R.l2i, True),
    "true_pair_cosine": (ts.true_pair_cosine, R.true_pair_cosine, True),
    "cosine_gap": (ts.cosine_gap, R.cosine_gap, True),
    "rmg": (ts.rmg, R.rmg, True),
}
SAME_DIM = [name for name, (_, _, same) in METRICS.items() if same]
ANY_DIM = [name for name, (_, _, same) in METRICS.items() if not same]
SHAPES = [(240, 12), (57, 7), (1000, 40)]


def check(name: str, x: np.ndarray, y: np.ndarray, dtype: torch.dtype, rtol: float) -> None:
    ours, ref, _ = METRICS[name]
    got = float(ours(torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)))
    # The reference sees exactly the values the package saw (rounded to `dtype`), in float64.
    want = ref(torch.from_numpy(x).to(dtype).double().numpy(), torch.from_numpy(y).to(dtype).double().numpy())
    assert got == pytest.approx(want, rel=rtol, abs=rtol * 1e-3), f"{name}: {got} vs reference {want}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(METRICS))
def test_float64_parity(name: str, shape: tuple[int, int]) -> None:
    x, y = paired(*shape, seed=shape[0], offset=0.4)
    check(name, x, y, torch.float64, 1e-10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(METRICS))
def test_float32_parity(name: str, shape: tuple[int, int]) -> None:
    x, y = paired(*shape, seed=shape[0] + 1, offset=0.4)
    check(name, x, y, torch.float32, 1e-5)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("name", ANY_DIM)
def test_different_widths(name: str, dtype: torch.dtype, rtol: float) -> None:
    x, y = paired(300, 11, seed=3, d_y=7)
    check(name, x, y, dtype, rtol)


def test_spectral_alignment_per_mode() -> None:
    x, y = paired(400, 16, seed=5, offset=-0.3)
    got = ts.spectral_alignment(torch.from_numpy(x), torch.from_numpy(y), q=0.25)
    want = R.spectral_alignment(x, y, q=0.25, eps=default_eps(x, y))
    for key in ("x_to_y", "y_to_x", "symmetric", "imbalance"):
        assert float(getattr(got, key)) == pytest.approx(want[key], rel=1e-10)
    for side in ("x", "y"):
        np.testing.assert_allclose(getattr(got, f"eigenvalues_{side}").numpy(), want[f"eigenvalues_{side}"], rtol=1e-10)
        # ρ_k does not depend on the sign of v_k, so it is comparable across eigen-solvers.
        np.testing.assert_allclose(getattr(got, f"rho_{side}").numpy(), want[f"rho_{side}"], rtol=1e-8, atol=1e-12)
        np.testing.assert_array_equal(getattr(got, f"active_{side}").numpy(), want[f"active_{side}"])


def test_q_sweep_from_one_decomposition() -> None:
    x, y = paired(300, 20, seed=6)
    qs = [0.05, 0.1, 0.25, 0.5, 1.0]
    sweep = ts.sas(torch.from_numpy(x), torch.from_numpy(y), q=qs)
    assert sweep.shape == (len(qs),)
    eps = default_eps(x, y)
    np.testing.assert_allclose(sweep.numpy(), [R.sas(x, y, q=q, eps=eps) for q in qs], rtol=1e-10)
    both = ts.spectral_alignment(torch.from_numpy(x), torch.from_numpy(y), q=qs)
    assert both.active_x.shape == (len(qs), 20)
    np.testing.assert_allclose(both.y_to_x.numpy(), [R.sas(y, x, q=q, eps=eps) for q in qs], rtol=1e-10)


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_alignment_report(preset: str) -> None:
    x, y = paired(500, 24, seed=7, offset=0.2)
    report = ts.alignment_report(torch.from_numpy(x), torch.from_numpy(y), preset=preset)
    sa = R.spectral_alignment(x, y, eps=1e-8 if preset == "paper" else default_eps(x, y))  # paper: absolute ε
    keep, standardize, scale = (10, True, "frobenius") if preset == "paper" else (0.99, False, "deep")
    want = {
        "n_pairs": 500,
        "sas_x_to_y": sa["x_to_y"],
        "sas_y_to_x": sa["y_to_x"],
        "sas_symmetric": sa["symmetric"],
        "sas_imbalance": sa["imbalance"],
        "cka_linear": R.cka_linear(x, y),
        "cka_linear_unbiased": R.cka_linear(x, y, unbiased=True),
        "svcca": R.svcca(x, y, keep=keep, standardize=standardize),
        "coral": R.coral(x, y, scale),
        "modality_gap": R.modality_gap(x, y),
        "l2i": R.l2i(x, y),
        "true_pair_cosine": R.true_pair_cosine(x, y),
        "cosine_gap": R.cosine_gap(x, y),
        "rmg": R.rmg(x, y),
        "cka_rbf": R.cka_rbf(x, y),
        "cka_rbf_unbiased": R.cka_rbf(x, y, unbiased=True),
        "mmd": R.mmd(x, y, sigma=10, estimator="biased", scale=100) if preset == "paper" else R.mmd(x, y),
    }
    want.update({k: v for k, v in R.retrieval(x, y).items() if not k.endswith("_ranks")})
    assert set(report) == set(want)
    for key, value in want.items():
        assert report[key] == pytest.approx(value, rel=1e-10), key


def test_report_with_different_widths_keeps_cross_space_metrics() -> None:
    x, y = paired(200, 10, seed=8, d_y=6)
    report = ts.alignment_report(torch.from_numpy(x), torch.from_numpy(y))
    assert set(report) == {"n_pairs", "cka_linear", "cka_linear_unbiased", "svcca", "cka_rbf", "cka_rbf_unbiased"}
    assert report["cka_linear"] == pytest.approx(R.cka_linear(x, y), rel=1e-10)
    assert report["cka_rbf_unbiased"] == pytest.approx(R.cka_rbf(x, y, unbiased=True), rel=1e-10)
