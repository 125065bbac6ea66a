"""The pairwise metrics (RBF MMD, RBF CKA, retrieval) vs dense torch and vs the float64 NumPy reference.

* ``torchspectral``: ``ts.mmd`` / ``ts.cka(kernel="rbf")`` / ``ts.retrieval`` on float32 inputs (chunked
  torch path on CPU: tiles, never an n×n matrix).
* ``dense``: ``benchmarks/speed/dense.py``: the whole n×n kernel (cdist → exp) or similarity (x̂ŷᵀ) matrix in
  torch, then sums/compares — what peer libraries do. Run at every size here (an n = 20,000 float32 matrix
  is 1.6 GB, which this machine holds).
* ``numpy``: ``tests/reference.py`` (float64, explicit n×n matrices, Python loops for the ranks). Only at
  n ≤ 5,000: at n = 20,000 its row-by-row distance loops and O(n²) Python rank loops take hours.

MMD and CKA take one fixed bandwidth (the pooled median distance of the data, computed once, untimed) so
that all three implementations do the same work; the median itself costs one 4096-row subsample.
Data: x ~ N(0, I), y = x + 8·N(0, I) (d = 768: true-pair cosine ≈ 0.12, so retrieval ranks are not all 0).
Every implementation's result is checked against the others before it is timed.

Run: ``.venv/bin/python -m pytest benchmarks/speed/test_pairwise.py --benchmark-only
--benchmark-json=benchmarks/results/cpu-2core-pairwise.json`` (``make bench-pairwise``), then
``python benchmarks/speed/summarize.py <json>``. ``TORCHSPECTRAL_BENCH_N=300,500`` overrides the sizes (a quick check).
"""

from __future__ import annotations

import os

import dense
import pytest
import reference as R
import torch
from peak_memory import peak_beyond_inputs_mb

import torchspectral as ts
from torchspectral import pairwise

D = 768
NOISE = 8.0
SIZES = [int(n) for n in os.environ.get("TORCHSPECTRAL_BENCH_N", "2000,20000").split(",")]
REFERENCE_MAX_N = 5_000


def make_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)  # the same generator calls as peak_memory.py, so both measure the same data
    x = torch.randn(n, D)
    y = torch.randn(n, D).mul_(NOISE).add_(x)
    return x, y


@pytest.fixture(scope="module", params=SIZES, ids=[f"n{n}" for n in SIZES])
def data(request):
    n = request.param
    x, y = make_data(n)
    sigma = float(pairwise.median_pairwise_distance(pairwise.pooled_subsample(x, y)))
    return n, x, y, sigma


def rounds(n: int) -> dict:
    return {"rounds": 5, "warmup_rounds": 1} if n <= 5_000 else {"rounds": 2, "warmup_rounds": 0}


CALLS = {
    "mmd": {
        "torchspectral": lambda x, y, s: ts.mmd(x, y, sigma=s),
        "dense": lambda x, y, s: dense.mmd(x, y, s),
        "numpy": lambda x, y, s: R.mmd(x, y, sigma=s),
    },
    "cka_rbf": {
        "torchspectral": lambda x, y, s: ts.cka(x, y, kernel="rbf", sigma=s),
        "dense": lambda x, y, s: dense.cka_rbf(x, y, s),
        "numpy": lambda x, y, s: R.cka_rbf(x, y, sigma=s),
    },
    "retrieval": {
        "torchspectral": lambda x, y, s: ts.retrieval(x, y).i2t_ranks,
        "dense": lambda x, y, s: dense.retrieval_ranks(x, y)[0],
        "numpy": lambda x, y, s: R.retrieval(x, y)["i2t_ranks"],
    },
}


def agree(fn: str, got, want) -> None:
    if fn == "retrieval":
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want).to(torch.as_tensor(got).dtype))
    else:
        assert float(got) == pytest.approx(float(want), rel=1e-4), fn


@pytest.mark.parametrize("fn", list(CALLS))
@pytest.mark.parametrize("impl", ["torchspectral", "dense", "numpy"])
def test_pairwise(benchmark, data, fn: str, impl: str) -> None:
    n, x, y, sigma = data
    if impl == "numpy" and n > REFERENCE_MAX_N:
        pytest.skip(f"the NumPy reference at n={n} takes hours (row-by-row n×n loops); timed only at n ≤ 5,000")
    call = CALLS[fn][impl]
    ours = CALLS[fn]["torchspectral"](x, y, sigma)
    if impl == "numpy":
        agree(fn, ours, call(x.double().numpy(), y.double().numpy(), sigma))
        args = (x.double().numpy(), y.double().numpy(), sigma)
    else:
        if impl == "dense":
            agree(fn, ours, call(x, y, sigma))
        args = (x, y, sigma)
    benchmark.group = f"{fn} n={n}"
    benchmark.extra_info.update(fn=fn, n=n, d=D, impl=impl)
    if impl != "numpy":
        what = fn if impl == "torchspectral" else f"dense_{fn}"
        benchmark.extra_info.update(peak_beyond_inputs_mb(n, D, what, sigma=sigma, noise=NOISE))
    if impl == "numpy":
        benchmark.pedantic(call, args=args, rounds=1, iterations=1)
    else:
        benchmark.pedantic(call, args=args, iterations=1, **rounds(n))
