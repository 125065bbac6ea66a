"""The cost of one exact SAS bootstrap replicate (issue 13, item 4) against its floor, in the same run.

n = 5,000 pairs (the audit's size) and 20,000, d = 768, float32 embeddings (what encoders give). Per replicate
the exact engine (:mod:`torchspectral.uncertainty.exact_sas`) forms two weighted Grams (float32 GEMMs) and
decomposes them; the decomposition is timed both ways:

* ``float32``: the default for float32 input (``exact_sas.FLOAT32_EIGH``);
* ``float64``: what the engine did before (and still does for float64 input).

The floor, timed alone on the same data: one weighted 768×768 Gram of the drawn rows and one decomposition, in
float32 and in float64 (``torch.linalg.eigh``), and, for comparison, LAPACK's subset solver for only the top 79
eigenpairs the active set needs (``scipy.linalg.eigh(subset_by_index=…, driver="evr")``). A replicate decomposes
two anchors (SAS both ways), so its floor is 2 Grams + 2 decompositions. Accuracy: the two ways on the same
resamples, the largest replicate difference and the largest shift of a 95% percentile endpoint, each over the
interval's width — on this data and on the coverage harness's planted d768-n5000-lossy sample (a noise bulk right
under the active set: where float32 eigenvectors are least accurate).

Run: ``make bench-sas-replicates`` (writes ``benchmarks/results/sas-replicate-cost-cpu-2core.json``).
"""

from __future__ import annotations

import numpy as np
import planted_coverage
import pytest
import torch
from scipy.linalg import eigh as scipy_eigh

import torchspectral as ts
from torchspectral.uncertainty import exact_sas

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


def _accuracy(float32: dict[str, torch.Tensor], float64: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per SAS metric: the largest replicate difference and percentile-endpoint shift, over the interval width."""
    info = {}
    for name in SAS:
        a, b = float32[name].numpy(), float64[name].numpy()
        width = np.subtract(*np.quantile(b, [0.975, 0.025]))
        shift = np.abs(np.quantile(a, [0.025, 0.975]) - np.quantile(b, [0.025, 0.975])).max()
        info[f"max_replicate_difference_over_width_{name}"] = float(np.abs(a - b).max() / width)
        info[f"max_endpoint_shift_over_width_{name}"] = float(shift / width)
    return info


def _summary(benchmark, n: int) -> None:
    """Once both replicate timings and the floor of this n are in: the ratios and the accuracy."""
    keys = ("gram", "eigh_float32", "eigh_float64", "subset_float32", "subset_float64", "float32", "float64")
    if not all((n, k) in SECONDS for k in keys) or not all((n, k) in VALUES for k in ("float32", "float64")):
        return
    info = {}
    for way in ("float32", "float64"):
        floor = 2 * (SECONDS[(n, "gram")] + SECONDS[(n, f"eigh_{way}")])
        info |= {f"replicate_{way}": SECONDS[(n, way)], f"floor_{way}": floor,
                 f"replicate_over_floor_{way}": SECONDS[(n, way)] / floor}  # fmt: skip
    info["float64_over_float32"] = SECONDS[(n, "float64")] / SECONDS[(n, "float32")]
    info |= _accuracy(VALUES[(n, "float32")], VALUES[(n, "float64")])
    benchmark.extra_info.update(info)
    # float32 rounding of eigenvectors, not a different statistic: far below the interval's width.
    assert all(v < 1e-3 for k, v in info.items() if k.startswith("max_replicate_difference")), info
    print(f"\nn={n}: " + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))


@pytest.mark.parametrize("way", ["float32", "float64"])
def test_replicates(benchmark, monkeypatch, pairs, way) -> None:
    """B exact SAS replicates, both anchors, of float32 input; the seconds per replicate."""
    n, x, y = pairs
    monkeypatch.setattr(exact_sas, "FLOAT32_EIGH", way == "float32")

    def run():
        return ts.bootstrap(x, y, SAS, n_boot=B, seed=0, method="percentile")

    SECONDS[(n, way)] = _median_seconds(benchmark, run) / B
    VALUES[(n, way)] = run().replicates
    benchmark.extra_info.update(n=n, d=D, n_boot=B, eigh=way, seconds_per_replicate=SECONDS[(n, way)])
    _summary(benchmark, n)


@pytest.mark.parametrize("part", ["gram", "eigh_float32", "eigh_float64", "subset_float32", "subset_float64"])
def test_floor(benchmark, pairs, part) -> None:
    """One weighted Gram of the drawn rows (float32), or one decomposition of a replicate's covariance."""
    n, x, _ = pairs
    weights = torch.bincount(torch.randint(n, (n,), generator=torch.Generator().manual_seed(1)), minlength=n)
    drawn = torch.nonzero(weights).squeeze(1)
    rows = (x[drawn] - x.mean(0)) * weights[drawn].float().sqrt()[:, None]
    cov = (rows.T @ rows).double() / n
    top = [D - 79, D - 1]  # the 78 modes the active set can reach at q = 0.1, and one below
    cov32, cov64 = cov.float().numpy(), cov.numpy()
    functions = {
        "gram": lambda: rows.T @ rows,
        "eigh_float32": lambda: torch.linalg.eigh(cov.float()),
        "eigh_float64": lambda: torch.linalg.eigh(cov),
        "subset_float32": lambda: scipy_eigh(cov32, subset_by_index=top, driver="evr", check_finite=False),
        "subset_float64": lambda: scipy_eigh(cov64, subset_by_index=top, driver="evr", check_finite=False),
    }
    SECONDS[(n, part)] = _median_seconds(benchmark, functions[part])
    benchmark.extra_info.update(n=n, d=D, part=part, seconds=SECONDS[(n, part)])
    _summary(benchmark, n)


def test_float32_accuracy_on_the_planted_model(benchmark, monkeypatch) -> None:
    """The harness's d768-n5000-lossy sample in float32: replicates with float32 and float64 eigensolves."""
    harness = planted_coverage
    regime = harness.ALL_REGIMES["d768-n5000-lossy"]
    x, y = (t.float() for t in harness.sample(regime, harness.planted(regime), 0))
    values = {}
    for way in ("float32", "float64"):
        monkeypatch.setattr(exact_sas, "FLOAT32_EIGH", way == "float32")
        values[way] = ts.bootstrap(x, y, SAS, n_boot=2 * B, seed=0, method="percentile").replicates
    info = _accuracy(values["float32"], values["float64"])
    benchmark.extra_info.update(n=regime.n, d=regime.d, n_boot=2 * B, data="planted d768-n5000-lossy", **info)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # recorded for its extra_info, not timed
    print("\nplanted: " + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))
    assert all(v < 1e-2 for k, v in info.items() if k.startswith("max_replicate_difference")), info
