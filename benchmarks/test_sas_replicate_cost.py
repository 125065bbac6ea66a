"""The cost of one exact SAS bootstrap replicate (issue 13, item 4) against its floor, in the same run.

n = 5,000 pairs (the audit's size) and 20,000, d = 768, float32 embeddings (what encoders give). Per replicate
the exact engine (:mod:`torchspectral.bootstrap._exact_sas`) forms two weighted Grams and decomposes them;
the decomposition is timed both ways:

* ``subset``: the default, the top k = 78 eigenpairs by LAPACK's MRRR solver (``scipy.linalg.eigh``,
  ``subset_by_index``, ``driver="evr"``, float64) — as exact as the full solve;
* ``full``: every eigenpair (``torch.linalg.eigh``, float64), what the engine did before.

The floor, timed alone on the same data: one weighted 768×768 Gram of the drawn rows (float32, what the engine
computes) and the two decompositions, full and subset, float64. Both replicate timings decompose two anchors
(SAS both ways), so the floor per replicate is 2 Grams + 2 decompositions. The replicate values of the two ways
are asserted equal (float64 rounding of the eigenvectors only).

Run: ``make bench-sas-replicates`` (writes ``benchmarks/results/sas-replicate-cost-cpu-2core.json``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.linalg import eigh as scipy_eigh

import torchspectral as ts
from torchspectral import spectral
from torchspectral.bootstrap import _exact_sas

D, B, ROUNDS = 768, 32, 3
SAS = ["sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"]
VALUES: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
SECONDS: dict[tuple[int, str], float] = {}


@pytest.fixture(scope="module", params=[5_000, 20_000])
def pairs(request):
    n = request.param
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, D, generator=g) * torch.linspace(3.0, 0.1, D)  # a decaying spectrum, no ties
    y = x @ (torch.randn(D, D, generator=g) / D**0.5) + torch.randn(n, D, generator=g)
    return n, x, y


def _per_replicate(benchmark, function, *args) -> float:
    benchmark.pedantic(function, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    return benchmark.stats.stats.median


@pytest.mark.parametrize("solver", ["subset", "full"])
def test_replicates(benchmark, monkeypatch, pairs, solver) -> None:
    """B exact SAS replicates, both anchors; the seconds per replicate."""
    n, x, y = pairs
    if solver == "full":
        monkeypatch.setattr(_exact_sas, "active_eigenpairs", spectral._full_active_eigenpairs)

    def run():
        return ts.bootstrap(x, y, SAS, n_boot=B, seed=0, method="percentile")

    seconds = _per_replicate(benchmark, run) / B
    VALUES[(n, solver)] = run().replicates
    SECONDS[(n, solver)] = seconds
    benchmark.extra_info.update(n=n, d=D, n_boot=B, solver=solver, seconds_per_replicate=seconds)
    other = VALUES.get((n, "subset" if solver == "full" else "full"))
    if other is not None:
        for name in SAS:  # same resamples, same replicates: only the eigensolver differs
            np.testing.assert_allclose(VALUES[(n, solver)][name], other[name], rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("part", ["gram", "eigh_full", "eigh_subset"])
def test_floor(benchmark, pairs, part) -> None:
    """One weighted Gram of the drawn rows (float32) or one float64 decomposition of a replicate's covariance."""
    n, x, _ = pairs
    weights = torch.bincount(torch.randint(n, (n,), generator=torch.Generator().manual_seed(1)), minlength=n)
    drawn = torch.nonzero(weights).squeeze(1)
    rows = (x[drawn] - x.mean(0)) * weights[drawn].float().sqrt()[:, None]
    cov = (rows.T @ rows).double() / n
    low = D - int(spectral.active_masks(torch.linalg.eigvalsh(cov).flip(0), 0.1)[0].sum()) - 2
    functions = {
        "gram": lambda: rows.T @ rows,
        "eigh_full": lambda: torch.linalg.eigh(cov),
        "eigh_subset": lambda: scipy_eigh(cov.numpy(), subset_by_index=[low, D - 1], driver="evr", check_finite=False),
    }
    seconds = _per_replicate(benchmark, functions[part])
    SECONDS[(n, part)] = seconds
    benchmark.extra_info.update(n=n, d=D, part=part, seconds=seconds)
    if all((n, k) in SECONDS for k in ("gram", "eigh_full", "eigh_subset", "subset", "full")):
        floor_subset = 2 * (SECONDS[(n, "gram")] + SECONDS[(n, "eigh_subset")])
        floor_full = 2 * (SECONDS[(n, "gram")] + SECONDS[(n, "eigh_full")])
        benchmark.extra_info.update(
            floor_subset=floor_subset,
            floor_full=floor_full,
            replicate_subset=SECONDS[(n, "subset")],
            replicate_full=SECONDS[(n, "full")],
            subset_over_its_floor=SECONDS[(n, "subset")] / floor_subset,
            full_over_subset=SECONDS[(n, "full")] / SECONDS[(n, "subset")],
        )
        print(
            f"\nn={n}: replicate {1e3 * SECONDS[(n, 'subset')]:.0f} ms (subset) vs {1e3 * SECONDS[(n, 'full')]:.0f} "
            f"ms (full); floor 2×(Gram {1e3 * SECONDS[(n, 'gram')]:.0f} + eigh "
            f"{1e3 * SECONDS[(n, 'eigh_subset')]:.0f} subset / {1e3 * SECONDS[(n, 'eigh_full')]:.0f} full) ms "
            f"[{time.strftime('%H:%M:%S')}]"
        )
