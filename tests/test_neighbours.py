"""Mutual kNN, cycle kNN and CKNNA against the naive n×n float64 references; ties, k at its limits, bad input,
float32, gradients, and no n×n allocation."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import torch
from torch.profiler import ProfilerActivity, profile

import torchspectral as ts
from torchspectral.functional import neighbours

METRICS = {"mutual_knn": (ts.mutual_knn, ref.mutual_knn), "cycle_knn": (ts.cycle_knn, ref.cycle_knn),
           "cknna": (ts.cknna, ref.cknna)}  # fmt: skip


def related(n: int, d_x: int, d_y: int, seed: int, duplicates: bool = True) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d_x))
    y = x[:, : min(3, d_x)] @ g.standard_normal((min(3, d_x), d_y)) + 0.8 * g.standard_normal((n, d_y))
    if duplicates:  # equal rows make equal inner products: the tie rule decides
        x[5], y[7] = x[9], y[2]
    return x, y


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize(("n", "d_x", "d_y", "k"), [(57, 5, 7, 3), (203, 16, 9, 10), (31, 3, 3, 30), (40, 4, 6, 2)])
def test_equals_the_reference(monkeypatch, name, n, d_x, d_y, k) -> None:
    """float64 parity to 1e-10, with row blocks that do not divide n (a tiny block budget)."""
    monkeypatch.setattr(neighbours, "CHUNK_ELEMENTS", 7 * n + 3)
    x, y = related(n, d_x, d_y, seed=n + k)
    ours, theirs = METRICS[name]
    assert float(ours(torch.from_numpy(x), torch.from_numpy(y), k)) == pytest.approx(theirs(x, y, k), abs=1e-10)


def test_neighbour_lists_and_the_tie_rule() -> None:
    z = torch.tensor([[1.0], [2.0], [3.0], [3.0], [0.0]])
    # Row 0's inner products with rows 1..4 are 2, 3, 3, 0: two places, rows 2 and 3 tie for the first.
    assert neighbours.knn_indices(z, 2).tolist() == [[2, 3], [2, 3], [1, 3], [1, 2], [0, 1]]
    x, _ = related(60, 4, 4, seed=1)
    assert (neighbours.knn_indices(torch.from_numpy(x), 6).numpy() == np.sort(ref.knn_lists(x, 6), 1)).all()


def test_k_at_its_limits() -> None:
    x, y = (torch.from_numpy(t) for t in related(30, 4, 5, seed=2))
    # k = n − 1: every other row is a neighbour, so the sets agree and CKNNA keeps every pair.
    assert float(ts.mutual_knn(x, y, 29)) == 1.0 and float(ts.cycle_knn(x, y, 29)) == 1.0
    assert float(ts.cknna(x, y, 29)) == pytest.approx(ref.cknna(x.numpy(), y.numpy(), 29), abs=1e-12)
    for metric in (ts.mutual_knn, ts.cycle_knn, ts.cknna):
        with pytest.raises(ValueError, match=r"k = 30 neighbours is out of range for n = 30 rows"):
            metric(x, y, 30)
        with pytest.raises(ValueError, match="k must be an integer"):
            metric(x, y, 2.0)
    with pytest.raises(ValueError, match=r"cknna: k = 1 neighbours is out of range .* \[2, 29\]"):
        ts.cknna(x, y, 1)


def test_identical_and_rescaled_spaces() -> None:
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float(ts.mutual_knn(x, 3 * x, 8)) == 1.0
    assert float(ts.cycle_knn(x, 3 * x, 8)) == pytest.approx(ref.cycle_knn(x.numpy(), x.numpy(), 8), abs=1e-12)
    assert float(ts.cknna(x, 3 * x, 8)) == pytest.approx(1.0, abs=1e-12)


def test_float32_within_1e5_of_float64() -> None:
    """On rows without near-ties (checked) float32 finds the same neighbours and CKNNA agrees to 1e-5."""
    x, y = related(150, 8, 8, seed=4, duplicates=False)
    x32, y32 = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    assert torch.equal(neighbours.knn_indices(x32, 10), neighbours.knn_indices(torch.from_numpy(x), 10))
    for name, (ours, theirs) in METRICS.items():
        assert float(ours(x32, y32, 10)) == pytest.approx(theirs(x, y, 10), abs=1e-5), name


def test_bad_input_is_named() -> None:
    x = torch.randn(20, 3)
    with pytest.raises(ValueError, match="mutual_knn"):
        ts.mutual_knn(x, torch.randn(19, 3), 3)
    bad = x.clone()
    bad[4, 1] = float("nan")
    for metric in (ts.mutual_knn, ts.cycle_knn, ts.cknna):
        with pytest.raises(ValueError, match=metric.__name__):
            metric(bad, x, 3)
    with pytest.raises(ValueError, match="cknna"):
        ts.cknna(x[:3], x[:3], 2)  # the unbiased HSIC needs n ≥ 4


@pytest.mark.parametrize("name", ["mutual_knn", "cycle_knn", "cknna", "neighbourhood_alignment"])
def test_shapes_dtypes_and_too_few_rows_are_named(name) -> None:
    metric = getattr(ts, name)
    with pytest.raises(ValueError, match=rf"{name}: x must be 2-D"):
        metric(torch.randn(10), torch.randn(10), 2)
    with pytest.raises(TypeError, match=rf"{name}: x has dtype torch\.int64"):
        metric(torch.randint(0, 5, (10, 3)), torch.randn(10, 3), 2)
    with pytest.raises(ValueError, match=rf"{name}: needs at least"):
        metric(torch.randn(1, 3), torch.randn(1, 3), 2)
    with pytest.raises(ValueError, match=r"NeighbourAlignment\.update: x and y must hold the same number"):
        ts.metrics.NeighbourAlignment(k=2).update(torch.randn(5, 3), torch.randn(4, 3))


def test_cknna_refuses_a_non_positive_self_similarity() -> None:
    """Constant rows: with k = n − 1 the masked kernel is constant, whose unbiased HSIC is 0 (here 3e-15 by
    rounding): refused, not divided by."""
    x = torch.ones(8, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"masked self-similarity of x is .*not positive beyond rounding"):
        ts.cknna(x, torch.randn(8, 2, dtype=torch.float64), 7)


def test_cknna_gradient_matches_finite_differences() -> None:
    x, y = (torch.from_numpy(t).requires_grad_() for t in related(40, 3, 4, seed=5, duplicates=False))
    assert torch.autograd.gradcheck(lambda a, b: ts.cknna(a, b, 6), (x, y), eps=1e-6, atol=1e-6)


@pytest.mark.slow
def test_no_n_by_n_allocation(monkeypatch) -> None:
    """With a block budget of 64 rows, no single allocation comes near n² = 4M values (the retrieval test's rule)."""
    n = 2000
    monkeypatch.setattr(neighbours, "CHUNK_ELEMENTS", 64 * n)
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(6))
    y = x + torch.randn(n, 16, generator=torch.Generator().manual_seed(7))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        ts.mutual_knn(x, y, 10), ts.cycle_knn(x, y, 10), ts.cknna(x, y, 10)
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert largest < n * n * 4 / 8, f"an allocation of {largest} bytes"  # < 1/8 of a float32 n×n matrix


def test_one_pass_equals_each_measure() -> None:
    x, y = (torch.from_numpy(t) for t in related(120, 6, 5, seed=8))
    together = ts.neighbourhood_alignment(x, y, 7)
    assert float(together["mutual_knn"]) == float(ts.mutual_knn(x, y, 7))
    assert float(together["cycle_knn"]) == float(ts.cycle_knn(x, y, 7))
    assert float(together["cknna"]) == float(ts.cknna(x, y, 7))
    with pytest.raises(ValueError, match=r"neighbourhood_alignment: k = 1 neighbours is out of range"):
        ts.neighbourhood_alignment(x, y, 1)


def test_streaming_metric_equals_the_functions() -> None:
    x, y = (torch.from_numpy(t) for t in related(130, 6, 5, seed=9))
    metric = ts.metrics.NeighbourAlignment(k=8)
    for start, stop in ((0, 17), (17, 90), (90, 130)):
        metric.update(x[start:stop], y[start:stop])
    got = metric.compute()
    want = ts.neighbourhood_alignment(x, y, 8)
    assert {key: float(v) for key, v in got.items()} == {key: float(v) for key, v in want.items()}
    with pytest.raises(ValueError, match="k must be an integer ≥ 2"):
        ts.metrics.NeighbourAlignment(k=1)


def _ranks_worker(rank: int, world: int) -> dict:
    x, y = (torch.from_numpy(t) for t in related(90, 5, 4, seed=10))
    metric = ts.metrics.NeighbourAlignment(k=6)
    cut = 31
    if rank == 0:
        metric.update(x[:cut], y[:cut])
    else:
        metric.update(x[cut:60], y[cut:60])
        metric.update(x[60:], y[60:])
    return {key: float(value) for key, value in metric.compute().items()}


@pytest.mark.slow
def test_across_two_gloo_ranks_equals_one_process() -> None:
    from conftest import run_ranks

    x, y = (torch.from_numpy(t) for t in related(90, 5, 4, seed=10))
    want = {key: float(value) for key, value in ts.neighbourhood_alignment(x, y, 6).items()}
    results = run_ranks(_ranks_worker, 2)
    assert results[0] == want and results[1] == want
