"""Orthogonal Procrustes: the reference, the optimisation it solves (scipy), invariances, streaming, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference as ref
import torch
from scipy.linalg import orthogonal_procrustes

import torchspectral as ts


def pair(n: int, d_x: int, d_y: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d_x)) * np.linspace(3, 0.5, d_x) + 4.0
    y = x[:, : min(d_x, d_y)] @ g.standard_normal((min(d_x, d_y), d_y)) + g.standard_normal((n, d_y)) - 2.0
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize(("n", "d_x", "d_y"), [(300, 8, 8), (57, 5, 11), (40, 60, 7), (9, 3, 3)])
def test_equals_the_reference(n, d_x, d_y) -> None:
    x, y = pair(n, d_x, d_y, seed=n)
    similarity = float(ts.procrustes(x, y))
    assert similarity == pytest.approx(ref.procrustes_similarity(x.numpy(), y.numpy()), abs=1e-10)
    assert float(ts.procrustes(x, y, kind="distance")) == pytest.approx(2 - 2 * similarity, abs=1e-12)
    assert float(ts.procrustes(x, y, kind="angular")) == pytest.approx(math.acos(similarity), abs=1e-10)
    assert float(ts.procrustes(x.float(), y.float())) == pytest.approx(similarity, abs=1e-5)


def test_the_distance_is_the_residual_of_the_best_rotation() -> None:
    """2 − 2ρ is min over orthogonal Q of ‖X̃ − ỸQ‖², the Procrustes problem scipy solves."""
    x, y = pair(200, 6, 6, seed=1)
    xt, yt = ((t - t.mean(0)) / np.linalg.norm(t - t.mean(0)) for t in (x.numpy(), y.numpy()))
    rotation, _ = orthogonal_procrustes(yt, xt)
    residual = np.linalg.norm(xt - yt @ rotation) ** 2
    assert float(ts.procrustes(x, y, kind="distance")) == pytest.approx(residual, abs=1e-10)


def test_invariant_to_rotation_scale_and_shift_not_to_other_maps() -> None:
    x, _ = pair(300, 6, 6, seed=2)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert float(ts.procrustes(x, 0.1 * x @ rotation - 7)) == pytest.approx(1.0, abs=1e-12)
    assert float(ts.procrustes(x, x @ rotation, kind="angular")) == pytest.approx(0.0, abs=1e-6)
    stretch = torch.diag(torch.tensor([5.0, 1, 1, 1, 1, 0.2], dtype=torch.float64))
    assert float(ts.procrustes(x, x @ stretch)) < 0.99  # not invariant to an anisotropic scaling (unlike CCA)


def test_streams_like_every_moment_metric() -> None:
    x, y = pair(250, 5, 7, seed=3)
    m = ts.Moments()
    for a in range(0, 250, 60):
        m.update(x[a : a + 60], y[a : a + 60])
    assert float(m.procrustes()) == pytest.approx(float(ts.procrustes(x, y)), abs=1e-12)
    metric = ts.metrics.Procrustes(5, 7, kind="angular")
    for a in range(0, 250, 70):
        metric.update(x[a : a + 70], y[a : a + 70])
    assert float(metric.compute()) == pytest.approx(float(ts.procrustes(x, y, kind="angular")), abs=1e-10)
    with pytest.raises(ValueError, match="Procrustes: kind must be one of"):
        ts.metrics.Procrustes(5, kind="cosine")


def test_gradient_matches_finite_differences() -> None:
    x, y = (t.requires_grad_() for t in pair(30, 4, 3, seed=4))
    assert torch.autograd.gradcheck(lambda a, b: ts.procrustes(a, b), (x, y), eps=1e-6, atol=1e-6)


def test_bad_input_is_named() -> None:
    x, y = pair(20, 3, 3, seed=5)
    with pytest.raises(ValueError, match="procrustes: kind must be one of"):
        ts.procrustes(x, y, kind="cosine")
    with pytest.raises(ValueError, match="procrustes: x has no variance"):
        ts.procrustes(torch.ones(20, 3, dtype=torch.float64), y)
    with pytest.raises(ValueError, match="procrustes"):
        ts.procrustes(x, y[:19])
    with pytest.raises(ValueError, match="procrustes: x must be 2-D"):
        ts.procrustes(torch.randn(10), torch.randn(10))
    with pytest.raises(TypeError, match=r"procrustes: x has dtype torch\.int64"):
        ts.procrustes(torch.randint(0, 5, (10, 3)), y[:10])
    with pytest.raises(ValueError, match="procrustes: needs at least 2 pairs"):
        ts.procrustes(x[:1], y[:1])
    bad = x.clone()
    bad[3, 0] = float("inf")
    with pytest.raises(ValueError, match="procrustes"):
        ts.procrustes(bad, y)
