"""SASLoss with a fixed eigenbasis: "frozen" (from a reference) and "ema" (refreshed from moving covariances)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import paired
from torch.autograd import gradcheck

import torchspectral as ts


def _batches(count: int, n: int = 120, d: int = 8, seed: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i in range(count):
        x, y = paired(n, d, seed=seed + i, offset=2.0 + i)
        out.append((torch.from_numpy(x), torch.from_numpy(y)))
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.4])
@pytest.mark.parametrize("q", [0.1, 0.25, 1.0])
def test_a_basis_refreshed_from_each_batch_is_the_batch_loss(q: float, gamma: float) -> None:
    refreshed = ts.nn.SASLoss(q=q, gamma=gamma, basis="ema", momentum=1.0, refresh_every=1)
    exact = ts.nn.SASLoss(q=q, gamma=gamma)
    for x, y in _batches(3, d=20):
        assert float(refreshed(x, y)) == pytest.approx(float(exact(x, y)), rel=1e-10)


def test_a_frozen_basis_from_the_batch_itself_is_the_batch_loss() -> None:
    (x, y), *_ = _batches(1, d=16)
    frozen = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(x, y))
    assert float(frozen(x, y)) == pytest.approx(float(ts.nn.SASLoss(q=0.25)(x, y)), rel=1e-10)
    prior = ts.SpectralPrior.fit(x, y, q=0.25)
    from_prior = ts.nn.SASLoss(basis="frozen", reference=prior)
    assert from_prior.q == 0.25
    assert float(from_prior(x, y)) == pytest.approx(float(ts.nn.SASLoss(q=0.25)(x, y)), rel=1e-10)


def _direct_frozen_loss(x, y, vx, vy, gamma):
    """The projected formula written out with explicit covariances (independent of the module's Moments path)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    cxx, cyy, cxy = xc.T @ xc / n, yc.T @ yc / n, xc.T @ yc / n

    def direction(v, c_anchor, c_other):
        lam = ((c_anchor @ v) * v).sum(0)
        other = ((c_other @ v) * v).sum(0)
        rho = ((cxy @ v) * v).sum(0) / torch.sqrt(lam * other + 1e-8)
        return (lam * rho.abs()).sum() / lam.sum()

    xy, yx = direction(vx, cxx, cyy), direction(vy, cyy, cxx)
    return 1 - (xy + yx) / 2 + gamma * (xy - yx).abs()


def test_frozen_basis_gradient_is_the_autograd_of_the_direct_formula() -> None:
    (rx, ry), (x, y) = _batches(2, n=40, d=6)
    # The direct formula uses the absolute ε = 1e-8 (the default ε is scale-free: test_reliability_numerics).
    loss = ts.nn.SASLoss(q=0.5, gamma=0.3, eps=1e-8, basis="frozen", reference=ts.Moments.from_data(rx, ry))
    x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
    assert gradcheck(loss, (x, y), eps=1e-6, atol=1e-6, rtol=1e-4)

    loss(x, y).backward()
    got_x, got_y = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    want = _direct_frozen_loss(x, y, loss.basis_x, loss.basis_y, 0.3)
    want.backward()
    assert float(loss(x, y).detach()) == pytest.approx(float(want.detach()), rel=1e-10)
    torch.testing.assert_close(got_x, x.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_y, y.grad, rtol=1e-10, atol=1e-12)


def test_frozen_basis_uses_the_reference_eigenvectors_and_never_updates() -> None:
    (rx, ry), (x, y) = _batches(2, d=10)
    reference = ts.Moments.from_data(rx, ry)
    loss = ts.nn.SASLoss(q=0.3, basis="frozen", reference=reference)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    loss(x, y)
    loss(x * 3, y - 1)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, before[key])
    eigenvalues, eigenvectors = torch.linalg.eigh(reference.covariance("x"))
    top = eigenvectors[:, -loss.basis_x.shape[1] :].flip(-1)
    torch.testing.assert_close(loss.basis_x.abs(), top.abs())
    assert loss.basis_x.shape[1] == int(ts.spectral.active_masks(eigenvalues.flip(0), 0.3).sum())


def test_frozen_basis_approximates_the_batch_loss_on_the_same_distribution() -> None:
    x, y = (torch.from_numpy(t) for t in paired(20000, 16, seed=3, offset=1.0))
    loss = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(x[:10000], y[:10000]))
    batch = slice(10000, 12048)
    assert float(loss(x[batch], y[batch])) == pytest.approx(float(ts.nn.SASLoss(q=0.25)(x[batch], y[batch])), abs=0.01)


def test_frozen_loss_survives_a_large_common_offset() -> None:
    (x, y), *_ = _batches(1, d=12)
    x32, y32 = x.float(), y.float()
    loss = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(x32, y32))
    shifted = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(x32 + 1e3, y32 + 1e3))
    assert float(shifted(x32 + 1e3, y32 + 1e3)) == pytest.approx(float(loss(x32, y32)), rel=1e-6)


def test_ema_follows_the_moving_average_and_refreshes_on_cadence() -> None:
    batches = _batches(5, d=8)
    loss = ts.nn.SASLoss(q=0.25, basis="ema", refresh_every=3, momentum=0.25)
    cov = None
    for step, (x, y) in enumerate(batches):
        basis_before = None if loss.basis_x is None else loss.basis_x.clone()
        loss(x, y)
        batch_cov = ts.Moments.from_data(x, y).covariance("x")
        cov = batch_cov if cov is None else 0.75 * cov + 0.25 * batch_cov
        torch.testing.assert_close(loss.ema_cov_x, cov, rtol=1e-12, atol=1e-14)
        if step % 3:  # no refresh: the basis is kept
            assert torch.equal(loss.basis_x, basis_before)
        else:
            eigenvectors = torch.linalg.eigh(cov)[1].flip(-1)[:, : loss.basis_x.shape[1]]
            torch.testing.assert_close(loss.basis_x.abs(), eigenvectors.abs())
    assert int(loss.num_updates) == 5


def test_ema_state_dict_round_trip() -> None:
    batches = _batches(7, d=8)
    loss = ts.nn.SASLoss(q=0.25, basis="ema", refresh_every=3, momentum=0.3)
    for x, y in batches[:4]:
        loss(x, y)
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    restored = ts.nn.SASLoss(q=0.25, basis="ema", refresh_every=3, momentum=0.3)  # lazy: no buffers yet
    restored.load_state_dict(torch.load(buffer))
    assert sorted(restored.state_dict()) == [
        "basis_x", "basis_y", "ema_cov_x", "ema_cov_y", "mean_x", "mean_y", "num_updates",
    ]  # fmt: skip
    for x, y in batches[4:]:  # the refresh at step 6 happens in both
        assert float(restored(x, y)) == pytest.approx(float(loss(x, y)), rel=1e-12)
    for key, value in loss.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    frozen = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(*batches[0]))
    other = ts.nn.SASLoss(q=0.25, basis="frozen", reference=ts.Moments.from_data(*batches[1]))
    other.load_state_dict(frozen.state_dict())
    assert float(other(*batches[2])) == pytest.approx(float(frozen(*batches[2])), rel=1e-12)


def test_ema_in_eval_mode_does_not_update() -> None:
    (x, y), (x2, y2) = _batches(2, d=8)
    loss = ts.nn.SASLoss(basis="ema", momentum=0.5)
    loss(x, y)
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.eval()
    loss(x2, y2)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, state[key])


def test_float32_input_and_finite_gradients() -> None:
    (x, y), *_ = _batches(1, n=300, d=16)
    x, y = x.float().requires_grad_(), y.float().requires_grad_()
    loss = ts.nn.SASLoss(basis="ema", refresh_every=10)
    value = loss(x, y)
    assert value.dtype == torch.float64
    value.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert float(value.detach()) == pytest.approx(float(ts.nn.SASLoss(q=0.1)(x, y).detach()), rel=1e-5)


def test_bad_input() -> None:
    (x, y), *_ = _batches(1, d=8)
    with pytest.raises(ValueError, match="basis must be one of"):
        ts.nn.SASLoss(basis="pca")
    with pytest.raises(ValueError, match="pass reference="):
        ts.nn.SASLoss(basis="frozen")
    with pytest.raises(ValueError, match="reference is only used with basis='frozen'"):
        ts.nn.SASLoss(basis="ema", reference=ts.Moments.from_data(x, y))
    with pytest.raises(TypeError, match="SpectralPrior or a Moments"):
        ts.nn.SASLoss(basis="frozen", reference=x)
    with pytest.raises(ValueError, match="refresh_every must be an integer ≥ 1"):
        ts.nn.SASLoss(basis="ema", refresh_every=0)
    with pytest.raises(ValueError, match=r"momentum must be in \(0, 1\]"):
        ts.nn.SASLoss(basis="ema", momentum=0.0)
    with pytest.raises(ValueError, match=r"differs from the reference SpectralPrior's q=0\.25"):
        ts.nn.SASLoss(q=0.5, basis="frozen", reference=ts.SpectralPrior.fit(x, y, q=0.25))
    with pytest.raises(ValueError, match="needs d_x = d_y"):
        ts.nn.SASLoss(basis="frozen", reference=ts.Moments.from_data(x, y[:, :5]))
    frozen = ts.nn.SASLoss(basis="frozen", reference=ts.Moments.from_data(x, y))
    with pytest.raises(ValueError, match="the basis is 8-dimensional, got d=6"):
        frozen(x[:, :6], y[:, :6])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="SASLoss: 1 of 120 pairs contain NaN"):
        frozen(bad, y)
    with pytest.raises(RuntimeError, match="no eigenbasis yet"):
        ts.nn.SASLoss(basis="ema").eval()(x, y)
    with pytest.raises(ValueError, match="reference covariance is zero"):
        ts.nn.SASLoss(basis="frozen", reference=ts.Moments.from_data(torch.ones(5, 3), torch.randn(5, 3)))
    assert np.isfinite(float(frozen(x, y)))
