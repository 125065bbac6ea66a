"""Instance-level SAS scoring and the bootstrap, each against its baseline in the same run.

* Instance scoring of 1,000,000 pairs at d = 768 (float32, chunked torch path) vs a vectorised
  float64 NumPy evaluation of the same bilinear form, and the naive reference ``R.instance_sas``
  (a Python loop per pair and mode) timed on 500 pairs — compare throughputs (pairs/s).
* Bootstrap at n = 20,000, d = 768 through weighted moments vs the naive loop
  ``alignment_report(x[idx], y[idx], pairwise=False)`` on the same resamples (same seed), B = 10 each: compare the
  time per replicate. (B = 1000 would take ~15 min per method on 2 cores: per replicate, both are
  bound by the same O(n·d²) Gram and d×d eigendecompositions.)

Run: ``.venv/bin/python -m pytest benchmarks/test_spectral_depth.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch

import torchspectral as ts
from torchspectral.bootstrap import resample_indices

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


B = 10
REPLICATES: dict[str, torch.Tensor] = {}  # the weighted-moments replicates, checked against the naive loop


def naive_loop(x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
    return [ts.alignment_report(x[idx], y[idx], pairwise=False) for idx in resample_indices(x.shape[0], B, seed=0)]


def test_bootstrap_weighted_moments(benchmark, bootstrap_data) -> None:
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=B, impl="weighted-moments")
    result = benchmark.pedantic(ts.bootstrap, args=(x, y), kwargs={"n_boot": B, "seed": 0}, rounds=1, iterations=1)
    REPLICATES.update(result.replicates)


def test_bootstrap_naive_loop(benchmark, bootstrap_data) -> None:
    x, y = bootstrap_data
    benchmark.extra_info.update(n=20_000, d=D, n_boot=B, impl="naive-loop")
    reports = benchmark.pedantic(naive_loop, args=(x, y), rounds=1, iterations=1)
    for name, values in REPLICATES.items():  # same seed ⇒ same resamples ⇒ same replicate values
        np.testing.assert_allclose(values.numpy(), [r[name] for r in reports], rtol=1e-4, atol=1e-6, err_msg=name)
