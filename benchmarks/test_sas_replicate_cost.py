"""The cost of one exact SAS bootstrap replicate (issue 13, item 4) against its floor, in the same run.

n = 5,000 pairs (the audit's size) and 20,000, d = 768, float32 embeddings (what encoders give). Per replicate
the exact engine (:mod:`torchspectral.bootstrap._exact_sas`) forms two weighted Grams (float32 GEMMs) and
decomposes them; the decomposition is timed both ways:

* ``float32``: the default for float32 input (``_exact_sas.FLOAT32_EIGH``);
* ``float64``: what the engine did before (and still does for float64 input).

The floor, timed alone on the same data: one weighted 768×768 Gram of the drawn rows and one decomposition, in
float32 and in float64 (``torch.linalg.eigh``; LAPACK's subset solver ``scipy.linalg.eigh(subset_by_index=…)``
for the top 79 eigenpairs was measured too, and in float64 it costs what the full solve does, 45 vs 43 ms: the
tridiagonal reduction dominates). A replicate decomposes two anchors (SAS both ways), so its floor is 2 Grams +
2 decompositions. Accuracy: the two ways on the same resamples, the largest replicate difference and the largest
shift of a 95% percentile endpoint, each over the interval's width.

Run: ``make bench-sas-replicates`` (writes ``benchmarks/results/sas-replicate-cost-cpu-2core.json``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchspectral as ts
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


def _median_seconds(benchmark, function) -> float:
    benchmark.pedantic(function, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    return benchmark.stats.stats.median


def _summary(benchmark, n: int) -> None:
    """Once both replicate timings and the floor of this n are in: the ratios and the accuracy."""
    keys = ("gram", "eigh_float32", "eigh_float64", "float32", "float64")
    if not all((n, k) in SECONDS for k in keys) or not all((n, k) in VALUES for k in ("float32", "float64")):
        return
    info = {}
    for way in ("float32", "float64"):
        floor = 2 * (SECONDS[(n, "gram")] + SECONDS[(n, f"eigh_{way}")])
        info |= {f"replicate_{way}": SECONDS[(n, way)], f"floor_{way}": floor,
                 f"replicate_over_floor_{way}": SECONDS[(n, way)] / floor}  # fmt: skip
    info["float64_over_float32"] = SECONDS[(n, "float64")] / SECONDS[(n, "float32")]
    for name in SAS:
        a, b = VALUES[(n, "float32")][name].numpy(), VALUES[(n, "float64")][name].numpy()
        width = np.subtract(*np.quantile(b, [0.975, 0.025]))
        shift = np.abs(np.quantile(a, [0.025, 0.975]) - np.quantile(b, [0.025, 0.975])).max()
        info[f"max_replicate_difference_over_width_{name}"] = float(np.abs(a - b).max() / width)
        info[f"max_endpoint_shift_over_width_{name}"] = float(shift / width)
        # float32 rounding of eigenvectors, not a different statistic: far below the interval's width.
        assert np.abs(a - b).max() < 1e-3 * width, name
    benchmark.extra_info.update(info)
    print(f"\nn={n}: " + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))


@pytest.mark.parametrize("way", ["float32", "float64"])
def test_replicates(benchmark, monkeypatch, pairs, way) -> None:
    """B exact SAS replicates, both anchors, of float32 input; the seconds per replicate."""
    n, x, y = pairs
    monkeypatch.setattr(_exact_sas, "FLOAT32_EIGH", way == "float32")

    def run():
        return ts.bootstrap(x, y, SAS, n_boot=B, seed=0, method="percentile")

    SECONDS[(n, way)] = _median_seconds(benchmark, run) / B
    VALUES[(n, way)] = run().replicates
    benchmark.extra_info.update(n=n, d=D, n_boot=B, eigh=way, seconds_per_replicate=SECONDS[(n, way)])
    _summary(benchmark, n)


@pytest.mark.parametrize("part", ["gram", "eigh_float32", "eigh_float64"])
def test_floor(benchmark, pairs, part) -> None:
    """One weighted Gram of the drawn rows (float32), or one decomposition of a replicate's covariance."""
    n, x, _ = pairs
    weights = torch.bincount(torch.randint(n, (n,), generator=torch.Generator().manual_seed(1)), minlength=n)
    drawn = torch.nonzero(weights).squeeze(1)
    rows = (x[drawn] - x.mean(0)) * weights[drawn].float().sqrt()[:, None]
    cov = (rows.T @ rows).double() / n
    functions = {
        "gram": lambda: rows.T @ rows,
        "eigh_float32": lambda: torch.linalg.eigh(cov.float()),
        "eigh_float64": lambda: torch.linalg.eigh(cov),
    }
    SECONDS[(n, part)] = _median_seconds(benchmark, functions[part])
    benchmark.extra_info.update(n=n, d=D, part=part, seconds=SECONDS[(n, part)])
    _summary(benchmark, n)
