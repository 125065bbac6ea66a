"""The whole moment-metric report vs its floor and vs the float64 NumPy reference, same run.

* ``torch``: ``ts.alignment_report(pairwise=False)`` on float32 inputs (every moment metric, one pass).
* ``floor``: what no implementation of these metrics can avoid — one GEMM of ``[X Y]ᵀ[X Y]`` plus
  the d×d float64 decompositions the metrics need: eigh of Σ_x and Σ_y (SAS, SVCCA) and one SVD of
  a d×d matrix (SVCCA's canonical correlations; its real matrix is k×k with k ≤ d).
* ``numpy``: the metrics of ``tests/reference.py`` (float64, deliberately naive). At n = 20,000 two
  references are left out, so the NumPy time at that size is a *lower bound* on the full reference
  report: CKA (it multiplies n×n matrices, ~10¹⁴ FLOP, hours here) and RMG (its ``x @ x.T`` of
  20000×20000 hits a segfault of the multithreaded OpenBLAS 0.3.31 syrk shipped with NumPy here;
  single-threaded it runs, but timing one reference on one core would inflate the ratio).

Run with ``make bench``; ``python benchmarks/speed/summarize.py <json>`` turns the JSON into the README table.
"""

from __future__ import annotations

import pytest
import reference as R
import torch
from peak_memory import peak_beyond_inputs_mb

import torchspectral as ts

SIZES = [(2_000, 512), (2_000, 768), (20_000, 512), (20_000, 768)]
COMPLETE_REFERENCE_MAX_N = 5_000  # above this CKA and RMG references are skipped (see module docstring)


def make_pairs(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, generator=g)
    mix = torch.randn(d, d, generator=g) / d**0.5
    y = x @ mix + 0.5 * torch.randn(n, d, generator=g) + 0.3
    return x, y


def floor(x: torch.Tensor, y: torch.Tensor) -> None:
    d = x.shape[1]
    z = torch.cat([x, y], dim=1)
    gram = (z.T @ z).double()
    torch.linalg.eigh(gram[:d, :d])
    torch.linalg.eigh(gram[d:, d:])
    torch.linalg.svdvals(gram[:d, d:])


def numpy_report(x, y, complete: bool) -> dict[str, float]:
    sa = R.spectral_alignment(x, y)
    out = {
        "sas_x_to_y": sa["x_to_y"],
        "sas_y_to_x": sa["y_to_x"],
        "svcca": R.svcca(x, y),
        "coral": R.coral(x, y),
        "modality_gap": R.modality_gap(x, y),
        "l2i": R.l2i(x, y),
        "true_pair_cosine": R.true_pair_cosine(x, y),
        "cosine_gap": R.cosine_gap(x, y),
    }
    if complete:
        out["rmg"] = R.rmg(x, y)
        out["cka_linear"] = R.cka_linear(x, y)
        out["cka_linear_unbiased"] = R.cka_linear(x, y, unbiased=True)
    return out


@pytest.fixture(scope="module", params=SIZES, ids=[f"n{n}-d{d}" for n, d in SIZES])
def pairs(request):
    n, d = request.param
    x, y = make_pairs(n, d)
    return n, d, x, y, ts.alignment_report(x.double(), y.double(), pairwise=False)


def test_torch(benchmark, pairs) -> None:
    n, d, x, y, exact = pairs
    got = ts.alignment_report(x, y, pairwise=False)
    for key, value in exact.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key
    benchmark.group = f"n={n} d={d}"
    benchmark.extra_info.update(peak_beyond_inputs_mb(n, d, "report"), n=n, d=d, impl="torch")
    benchmark.pedantic(
        ts.alignment_report, args=(x, y), kwargs={"pairwise": False}, rounds=7, iterations=1, warmup_rounds=1
    )


def test_floor(benchmark, pairs) -> None:
    n, d, x, y, _ = pairs
    benchmark.group = f"n={n} d={d}"
    benchmark.extra_info.update(peak_beyond_inputs_mb(n, d, "floor"), n=n, d=d, impl="floor")
    benchmark.pedantic(floor, args=(x, y), rounds=7, iterations=1, warmup_rounds=1)


def test_numpy_reference(benchmark, pairs) -> None:
    n, d, x, y, exact = pairs
    complete = n <= COMPLETE_REFERENCE_MAX_N
    xn, yn = x.double().numpy(), y.double().numpy()
    benchmark.group = f"n={n} d={d}"
    benchmark.extra_info.update(n=n, d=d, impl="numpy", complete=complete)
    got = benchmark.pedantic(numpy_report, args=(xn, yn, complete), rounds=1 if n > 5_000 else 2, iterations=1)
    for key, value in got.items():
        assert exact[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
