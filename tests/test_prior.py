"""Instance-level SAS (SpectralPrior): the decomposition identity, the paper-literal mode, persistence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import reference as R
import torch
from conftest import paired
from sas_defaults import default_eps
from torch.autograd import gradcheck

import torchspectral as ts


@pytest.fixture(scope="module")
def population() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(600, 20, seed=61, offset=2.0)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("q", [0.1, 0.3, 1.0])
def test_decompose_scores_average_to_population_sas(population, q: float) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y, q=q)
    sa = ts.spectral_alignment(x, y, q=q)
    assert float(prior.score(x, y).mean()) == pytest.approx(float(sa.x_to_y), rel=1e-10)
    assert float(prior.score(x, y, direction="y_to_x").mean()) == pytest.approx(float(sa.y_to_x), rel=1e-10)
    assert float(prior.score(x, y, direction="symmetric").mean()) == pytest.approx(float(sa.symmetric), rel=1e-10)


@pytest.mark.parametrize("mode", ["decompose", "abs"])
@pytest.mark.parametrize("anchor", ["x", "y"])
def test_matches_reference(population, mode: str, anchor: str) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y, q=0.2)
    new_x, new_y = paired(37, 20, seed=62, offset=2.0)
    got = prior.score(
        torch.from_numpy(new_x),
        torch.from_numpy(new_y),
        mode=mode,
        direction=f"{anchor}_to_{'y' if anchor == 'x' else 'x'}",
    )
    eps = default_eps(x.numpy(), y.numpy())  # the default ε is scale-free; the reference takes it as an argument
    want = R.instance_sas(x.numpy(), y.numpy(), new_x, new_y, q=0.2, eps=eps, mode=mode, anchor=anchor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)


def test_float32_scores(population) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y)
    got = prior.score(x.float(), y.float())
    assert got.dtype == torch.float32
    want = R.instance_sas(x.numpy(), y.numpy(), x.float().double().numpy(), y.float().double().numpy())
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_per_mode_rows_sum_to_scores(population) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y, q=0.25)
    contributions = prior.per_mode(x[:50], y[:50], direction="y_to_x")
    assert contributions.shape == (50, 5)
    torch.testing.assert_close(contributions.sum(1), prior.score(x[:50], y[:50], direction="y_to_x"))


def test_many_pairs_in_chunks_equal_one_chunk(population, monkeypatch) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y)
    whole = prior.score(x, y)
    import torchspectral.prior as prior_module

    monkeypatch.setattr(prior_module, "CHUNK_ELEMENTS", 20 * 7)  # 7 rows per chunk
    torch.testing.assert_close(prior.score(x, y), whole, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["decompose", "abs"])
def test_gradcheck(population, mode: str) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y, q=0.3)
    px = x[:9].clone().requires_grad_()
    py = y[:9].clone().requires_grad_()
    assert gradcheck(lambda a, b: prior.score(a, b, mode=mode), (px, py))
    assert gradcheck(lambda a, b: prior.score(a, b, direction="symmetric"), (px, py))


def test_state_dict_round_trip(population) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y)
    buffer = io.BytesIO()
    torch.save(prior.state_dict(), buffer)
    buffer.seek(0)
    restored = ts.SpectralPrior.from_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.score(x, y, mode="abs"), prior.score(x, y, mode="abs"), rtol=0, atol=0)
    other = ts.SpectralPrior.fit(y, x)
    other.load_state_dict(prior.state_dict())
    torch.testing.assert_close(other.score(x, y), prior.score(x, y), rtol=0, atol=0)
    with pytest.raises(KeyError, match="missing keys"):
        ts.SpectralPrior.from_state_dict({"mean_x": x[0]})


def test_streamed_fit_equals_one_shot(population) -> None:
    x, y = population
    m = ts.Moments()
    for a in range(0, 600, 128):
        m.update(x[a : a + 128], y[a : a + 128])
    torch.testing.assert_close(ts.SpectralPrior.from_moments(m).score(x, y), ts.SpectralPrior.fit(x, y).score(x, y))


def test_bad_input(population) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x, y)
    with pytest.raises(ValueError, match="fitted on d=20 features, got d=5"):
        prior.score(x[:, :5], y[:, :5])
    with pytest.raises(ValueError, match="mode must be one of"):
        prior.score(x, y, mode="signed")
    with pytest.raises(ValueError, match="direction must be one of"):
        prior.score(x, y, direction="up")
    with pytest.raises(ValueError, match="backend must be one of"):
        prior.score(x, y, backend="cuda")
    bad = x.clone()
    bad[4, 0] = float("nan")
    with pytest.raises(ValueError, match="1 of 600 pairs contain NaN"):
        prior.score(bad, y)
    with pytest.raises(ValueError, match="needs d_x = d_y"):
        ts.SpectralPrior.fit(x, y[:, :4])
    with pytest.raises(ValueError, match="q is the fraction"):
        ts.SpectralPrior.fit(x, y, q=0.0)
    with pytest.raises(TypeError, match="float64"):
        prior.score(x, y, backend="triton")


@pytest.mark.parametrize("mode", ["decompose", "abs"])
def test_triton_kernel_equals_torch_path(population, mode: str) -> None:
    pytest.importorskip("triton")
    x, y = (t.float() for t in population)
    prior = ts.SpectralPrior.fit(x, y, q=0.3)
    rows = slice(0, 75)  # not a multiple of the kernel's row tile
    fused = prior.score(x[rows], y[rows], mode=mode, backend="triton")
    torch.testing.assert_close(fused, prior.score(x[rows], y[rows], mode=mode, backend="torch"), rtol=1e-5, atol=1e-6)


def test_triton_path_gradients_equal_torch_path(population) -> None:
    pytest.importorskip("triton")
    x, y = (t.float()[:40] for t in population)
    prior = ts.SpectralPrior.fit(*population)
    grads = []
    for backend in ("triton", "torch"):
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        prior.score(a, b, mode="abs", backend=backend).sum().backward()
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_fit_on_arrays_says_tensors_are_needed(population) -> None:
    x, y = population
    with pytest.raises(TypeError, match=r"SpectralPrior\.fit: x must be a torch\.Tensor, got ndarray"):
        ts.SpectralPrior.fit(x.numpy(), y.numpy())
    with pytest.raises(TypeError, match=r"SpectralPrior\.fit: y must be a torch\.Tensor, got list"):
        ts.SpectralPrior.fit(x, y.tolist())


def test_fit_does_not_record_a_graph(population) -> None:
    x, y = population
    prior = ts.SpectralPrior.fit(x.clone().requires_grad_(), y)
    assert not any(t.requires_grad for t in prior.state_dict().values())
