"""Additivity: any split into batches, merged in any order, equals the one-shot statistics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import paired
from hypothesis import given
from hypothesis import strategies as st

import torchspectral as ts

N = 180


def assert_same_report(got: dict[str, float], want: dict[str, float], rtol: float = 1e-10) -> None:
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=rtol, abs=1e-13), key


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    x, y = paired(N, 9, seed=11, offset=3.0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    return x, y, ts.alignment_report(x, y, pairwise=False)  # Moments.report(): moment metrics


@given(
    cuts=st.lists(st.integers(1, N - 1), max_size=8, unique=True),
    order_seed=st.integers(0, 2**16),
)
def test_any_split_any_merge_order(data, cuts: list[int], order_seed: int) -> None:
    x, y, one_shot = data
    bounds = [0, *sorted(cuts), N]
    parts = [ts.Moments.from_data(x[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    rng = np.random.default_rng(order_seed)
    # Merge as a random binary tree: pick two, merge, put back.
    while len(parts) > 1:
        i, j = rng.choice(len(parts), size=2, replace=False)
        merged = parts[i].merge(parts[j])
        parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [merged]
    assert parts[0].n == N
    assert_same_report(parts[0].report(), one_shot)


@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=10))
def test_sequential_updates(data, sizes: list[int]) -> None:
    x, y, one_shot = data
    m = ts.Moments()
    start = 0
    for size in sizes:
        if start >= N:
            break
        m.update(x[start : start + size], y[start : start + size])
        start += size
    if start < N:
        m.update(x[start:], y[start:])
    assert_same_report(m.report(), one_shot)


def test_batches_far_apart_merge_exactly() -> None:
    """Batches whose means differ by 1000× their spread (drifting data) merge without cancellation."""
    x, y = paired(400, 8, seed=12)
    x[200:] += 1000.0
    y[:100] -= 500.0
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    m = ts.Moments()
    for a in range(0, 400, 50):
        m.update(x[a : a + 50], y[a : a + 50])
    assert_same_report(m.report(), ts.alignment_report(x, y, pairwise=False), rtol=1e-9)


def test_declared_empty_accumulator_merges() -> None:
    x, y = paired(50, 5, seed=13)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    empty = ts.Moments(5, 5, device="cpu")
    assert empty.n == 0
    empty.merge(ts.Moments.from_data(x, y))
    one = ts.Moments.from_data(x, y).merge(ts.Moments(5, 5))
    assert float(empty.sas()) == pytest.approx(float(ts.sas(x, y)), rel=1e-12)
    assert float(one.cka(unbiased=True)) == pytest.approx(float(ts.cka(x, y, unbiased=True)), rel=1e-12)


def test_merge_refuses_other_dimensions() -> None:
    a = ts.Moments.from_data(torch.randn(10, 3), torch.randn(10, 3))
    with pytest.raises(ValueError, match="dimensions differ"):
        a.merge(ts.Moments.from_data(torch.randn(10, 4), torch.randn(10, 4)))


@given(start=st.integers(0, N - 3), size=st.integers(1, 60), about=st.booleans())
def test_without_takes_out_exactly_the_deleted_rows(data, start: int, size: int, about: bool) -> None:
    """Statistics minus those of a block of the rows equal the statistics of the rows left, whether the block's
    sums were formed about its own mean (moved exactly) or about the whole sample's."""
    x, y, one_shot = data
    size = min(size, N - start - 2)  # at least two rows remain
    everything = ts.Moments.from_data(x, y)
    block = ts.Moments.from_data(x[start : start + size], y[start : start + size], about=everything if about else None)
    keep = torch.ones(N, dtype=torch.bool)
    keep[start : start + size] = False
    rest = everything.without(block)
    assert rest.n == N - size and everything.n == N
    assert_same_report(rest.report(), ts.alignment_report(x[keep], y[keep], pairwise=False), rtol=1e-9)
    assert_same_report(everything.report(), one_shot)  # self is unchanged


def test_without_refuses_what_it_cannot_take_out() -> None:
    x, y = torch.randn(10, 3), torch.randn(10, 3)
    whole = ts.Moments.from_data(x, y)
    with pytest.raises(ValueError, match="cannot take 10 pairs out of 10"):
        whole.without(ts.Moments.from_data(x, y))
    with pytest.raises(ValueError, match="same dimensions"):
        whole.without(ts.Moments.from_data(torch.randn(4, 4), torch.randn(4, 4)))
    with pytest.raises(TypeError, match="expected Moments"):
        whole.without(x)


def test_streaming_gradients_equal_one_shot() -> None:
    x, y = paired(120, 6, seed=14)
    x1 = torch.from_numpy(x).requires_grad_()
    y1 = torch.from_numpy(y).requires_grad_()
    torch.autograd.backward(ts.spectral_alignment(x1, y1, q=0.5).symmetric + ts.cka(x1, y1, unbiased=True))
    x2 = torch.from_numpy(x).requires_grad_()
    y2 = torch.from_numpy(y).requires_grad_()
    m = ts.Moments()
    for a in range(0, 120, 35):
        m.update(x2[a : a + 35], y2[a : a + 35])
    torch.autograd.backward(m.spectral_alignment(q=0.5).symmetric + m.cka(unbiased=True))
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(y2.grad, y1.grad, rtol=1e-9, atol=1e-12)
