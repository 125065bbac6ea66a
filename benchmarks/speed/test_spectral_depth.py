"""Instance-level SAS scoring and the bootstrap, each against its baseline in the same run.

* Instance scoring of 1,000,000 pairs at d = 768 (float32, chunked torch path) vs a vectorised
  float64 NumPy evaluation of the same bilinear form, and the naive reference ``R.instance_sas``
  (a Python loop per pair and mode) timed on 500 pairs — compare throughputs (pairs/s).
* Bootstrap at n = 20,000, d = 768, B = 1000 (float32): the fast engine timed for all 1000 replicates — the gap
  family and linear CKA/CKA_u/CORAL exactly by algebra, then the same plus SAS by Rayleigh–Ritz
  (``ritz_rank=RITZ_RANK``), and the default with exact SAS (two weighted Grams and two eigendecompositions
  per replicate), timed on EXACT_SAS_B replicates since every one costs the same — against the naive loop
  ``alignment_report(x[idx], y[idx], pairwise=False)`` on the same resamples (same seed). The naive loop is
  timed on its first NAIVE_B replicates only and **extrapolated linearly** to B = 1000 (1000 naive replicates
  take ~14 min on 2 quiet cores); the extrapolation is printed. The naive replicate values are checked against
  the fast ones. Accuracy: the fast and exact engines on the same seed with B = ACCURACY_B, the largest
  replicate difference and CI-endpoint difference per metric.
  SVCCA has no fast path (its 99%-variance subspaces are most of d); it is left out of the timed metric set.

Run: ``.venv/bin/python -m pytest benchmarks/speed/test_spectral_depth.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch

import torchspectral as ts
from torchspectral.uncertainty import resample_indices
from torchspectral.uncertainty.algebra import ALGEBRA_METRICS

N_PAIRS, D = 1_000_000, 768


@pytest.fixture(scope="module")
def prior_and_pairs():
    g = torch.Generator().manual_seed(0)
    fit_x = torch.randn(20_000, D, generator=g)
    fit_y = fit_x @ (torch.randn(D, D, generator=g) / D**0.5) + torch.randn(20_000, D, generator=g)
    prior = ts.SpectralPrior.fit(fit_x, fit_y)
    x = torch.randn(N_PAIRS, D, generator=g)
    y = torch.randn(N_PAIRS, D, generator=g).mul_(0.5).add_(x)
    return prior, x, y


def numpy_scores(prior: ts.SpectralPrior, x: np.ndarray, y: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    vectors = prior.directions["x_to_y"].vectors.numpy()
    weights = prior.weights("x_to_y").numpy()
    mean_x, mean_y = prior.mean_x.numpy(), prior.mean_y.numpy()
    out = np.empty(x.shape[0])
    for s in range(0, x.shape[0], chunk):
        zx = (x[s : s + chunk].astype(np.float64) - mean_x) @ vectors
        zy = (y[s : s + chunk].astype(np.float64) - mean_y) @ vectors
        out[s : s + chunk] = (zx * zy) @ weights
    return out


def test_instance_scoring_torch(benchmark, prior_and_pairs) -> None:
    prior, x, y = prior_and_pairs
    benchmark.extra_info.update(pairs=N_PAIRS, d=D, impl="torch")
    scores = benchmark.pedantic(prior.score, args=(x, y), kwargs={"backend": "torch"}, rounds=3, iterations=1)
    np.testing.assert_allclose(
        scores[:1000].double().numpy(), numpy_scores(prior, x[:1000].numpy(), y[:1000].numpy()), rtol=1e-3, atol=1e-4
    )


def test_instance_scoring_numpy_vectorised(benchmark, prior_and_pairs) -> None:
    prior, x, y = prior_and_pairs
    benchmark.extra_info.update(pairs=N_PAIRS, d=D, impl="numpy-vectorised")
    benchmark.pedantic(numpy_scores, args=(prior, x.numpy(), y.numpy()), rounds=1, iterations=1)


def test_instance_scoring_naive_reference(benchmark) -> None:
    g = np.random.default_rng(0)
    fit_x = g.normal(size=(5_000, D))
    fit_y = fit_x + g.normal(size=(5_000, D))
    x, y = g.normal(size=(500, D)), g.normal(size=(500, D))
    benchmark.extra_info.update(pairs=500, d=D, impl="naive-reference (fit on 5k + score 500)")
    benchmark.pedantic(R.instance_sas, args=(fit_x, fit_y, x, y), rounds=1, iterations=1)


@pytest.fixture(scope="module")
def bootstrap_data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20_000, D, generator=g)
    y = x @ (torch.randn(D, D, generator=g) / D**0.5) + torch.randn(20_000, D, generator=g) + 0.3
    return x, y


B, NAIVE_B, ACCURACY_B, EXACT_SAS_B = 1000, 5, 50, 50
RITZ_RANK = 100  # |A| = 77 at d = 768, q = 0.1, plus a margin of 23
ALGEBRA = list(ALGEBRA_METRICS)
SAS = ["sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"]
REPLICATES: dict[str, torch.Tensor] = {}  # the fast replicates, checked against the naive loop
SECONDS: dict[str, float] = {}


def timed(benchmark, key: str, function, *args, **kwargs):
    result = benchmark.pedantic(function, args=args, kwargs=kwargs, rounds=1, iterations=1)
    SECONDS[key] = benchmark.stats.stats.min
    return result


def test_bootstrap_fast_algebra(benchmark, bootstrap_data) -> None:
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=B, metrics=ALGEBRA, impl="fast engine, exact algebra")
    result = timed(benchmark, "algebra", ts.bootstrap, x, y, ALGEBRA, n_boot=B, seed=0)
    REPLICATES.update(result.replicates)
    benchmark.extra_info["seconds_per_replicate"] = SECONDS["algebra"] / B


def test_bootstrap_fast_algebra_and_ritz_sas(benchmark, bootstrap_data) -> None:
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=B, ritz_rank=RITZ_RANK, impl="fast engine + Ritz SAS")
    result = timed(benchmark, "ritz", ts.bootstrap, x, y, ALGEBRA + SAS, n_boot=B, seed=0, ritz_rank=RITZ_RANK)
    REPLICATES.update({name: result.replicates[name] for name in SAS})
    benchmark.extra_info["seconds_per_replicate"] = SECONDS["ritz"] / B


def test_bootstrap_fast_exact_sas(benchmark, bootstrap_data) -> None:
    """The default fast engine's exact SAS (two weighted Grams per replicate) alone, timed on EXACT_SAS_B replicates.

    Alone, because the algebra's one-off sample-space Grams would dominate a timing over so few replicates.
    """
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=EXACT_SAS_B, impl="fast engine, exact SAS (bootstrap_sas)")
    result = timed(benchmark, "exact_sas", ts.bootstrap, x, y, SAS, n_boot=EXACT_SAS_B, seed=0)
    REPLICATES.update({f"exact/{name}": result.replicates[name] for name in SAS})
    benchmark.extra_info["seconds_per_replicate"] = SECONDS["exact_sas"] / EXACT_SAS_B


def naive_loop(x: torch.Tensor, y: torch.Tensor, n_boot: int) -> list[dict[str, float]]:
    return [ts.alignment_report(x[i], y[i], pairwise=False) for i in resample_indices(x.shape[0], n_boot, seed=0)]


def test_bootstrap_naive_loop(benchmark, bootstrap_data) -> None:
    """Timed on NAIVE_B replicates, extrapolated linearly to B (every naive replicate does the same work)."""
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=NAIVE_B, impl="naive loop (extrapolated to B)")
    reports = timed(benchmark, "naive", naive_loop, x, y, NAIVE_B)
    per_replicate = SECONDS["naive"] / NAIVE_B
    extrapolated = per_replicate * B
    benchmark.extra_info.update(seconds_per_replicate=per_replicate, extrapolated_seconds_for_B=extrapolated)
    lines = [
        f"naive loop: {per_replicate:.3f} s/replicate (timed on {NAIVE_B}; ×{B} = {extrapolated:.0f} s, extrapolated)"
    ]
    for key, timed_b in (("algebra", B), ("ritz", B), ("exact_sas", EXACT_SAS_B)):
        if key in SECONDS:
            ratio = per_replicate / (SECONDS[key] / timed_b)
            benchmark.extra_info[f"speedup_{key}"] = ratio
            lines.append(
                f"fast {key}: {SECONDS[key]:.1f} s for B={timed_b} ({SECONDS[key] / timed_b * 1e3:.1f} ms/replicate): "
                f"{ratio:.1f}×"
            )
    print("\n" + "\n".join(lines))
    for name in (name for name in ALGEBRA if name in REPLICATES):  # same seed ⇒ same resamples ⇒ same values
        want = [r[name] for r in reports]
        np.testing.assert_allclose(REPLICATES[name][:NAIVE_B].numpy(), want, rtol=1e-4, atol=1e-6, err_msg=name)
    for name in SAS:  # Ritz is approximate: report, do not assert
        error = (
            max(abs(float(REPLICATES[name][b]) - reports[b][name]) for b in range(NAIVE_B))
            if name in REPLICATES
            else None
        )
        benchmark.extra_info[f"ritz_max_abs_error_vs_naive_{name}"] = error
        if f"exact/{name}" in REPLICATES:  # exact SAS: same resamples ⇒ same values (float32 rounding)
            want = [r[name] for r in reports]
            got = REPLICATES[f"exact/{name}"][:NAIVE_B].numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=name)


def test_bootstrap_interval_agreement(benchmark, bootstrap_data) -> None:
    """Fast (algebra + Ritz SAS) vs exact engine on the same seed, B = ACCURACY_B: replicate and CI-endpoint gaps."""
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=ACCURACY_B, impl="exact engine (accuracy reference)")
    exact = benchmark.pedantic(
        ts.bootstrap, args=(x, y, ALGEBRA + SAS), kwargs={"n_boot": ACCURACY_B, "seed": 0, "engine": "exact"},
        rounds=1, iterations=1,
    )  # fmt: skip
    fast = ts.bootstrap(x, y, ALGEBRA + SAS, n_boot=ACCURACY_B, seed=0, ritz_rank=RITZ_RANK)
    rows = []
    for name in ALGEBRA + SAS:
        replicate_gap = float((fast.replicates[name] - exact.replicates[name]).abs().max())
        endpoint_gap = max(abs(fast.low[name] - exact.low[name]), abs(fast.high[name] - exact.high[name]))
        width = exact.high[name] - exact.low[name]
        benchmark.extra_info[name] = {
            "max_replicate_gap": replicate_gap,
            "max_endpoint_gap": endpoint_gap,
            "width": width,
        }
        rows.append(
            f"{name:22s} replicate gap {replicate_gap:.2e}  endpoint gap {endpoint_gap:.2e}  CI width {width:.2e}"
        )
    print(f"\nfast vs exact, B = {ACCURACY_B}:\n" + "\n".join(rows))
    for name in ALGEBRA:  # exact by algebra
        np.testing.assert_allclose(fast.replicates[name], exact.replicates[name], rtol=1e-4, atol=1e-6, err_msg=name)
