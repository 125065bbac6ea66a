"""The differentiable all-reduce gives the single-process gradient (2 gloo processes on CPU, float64).

Rank 0 holds most rows, rank 1 only a handful. Every synced loss must give, on each rank, the forward
value of the single-process loss over the concatenated batch and, for that rank's rows, exactly the
rows' slice of the single-process gradient. Under DDP (gradient averaging), the synced loss times the
world size gives the single-process parameter gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import paired, run_ranks

import torchspectral as ts
from torchspectral.distributed import sum_across_ranks

N, D = 203, 6
ROWS = {0: slice(0, 197), 1: slice(197, 203)}  # uneven: rank 1 holds 6 rows


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(N, D, seed=17, offset=30.0)
    return torch.from_numpy(x), torch.from_numpy(y)


def _losses() -> dict[str, tuple]:
    """name → (single-process loss, synced loss); the two are built identically on every process."""
    x, y = _data()
    reference = ts.Moments.from_data(x[::3] + 0.1, y[::3])  # a reference population for the frozen basis
    prior = ts.SpectralPrior.fit(x[1::2], y[1::2], q=0.5)
    return {
        "sas": (ts.nn.SASLoss(q=0.5), ts.nn.SASLoss(q=0.5, sync_dist=True)),
        "sas_gamma": (ts.nn.SASLoss(q=0.3, gamma=0.7), ts.nn.SASLoss(q=0.3, gamma=0.7, sync_dist=True)),
        "cka": (ts.nn.CKALoss(), ts.nn.CKALoss(sync_dist=True)),
        "cka_unbiased": (ts.nn.CKALoss(unbiased=True), ts.nn.CKALoss(unbiased=True, sync_dist=True)),
        "sas_frozen_moments": (
            ts.nn.SASLoss(q=0.5, basis="frozen", reference=reference),
            ts.nn.SASLoss(q=0.5, basis="frozen", reference=reference, sync_dist=True),
        ),
        "sas_frozen_prior": (
            ts.nn.SASLoss(basis="frozen", reference=prior),
            ts.nn.SASLoss(basis="frozen", reference=prior, sync_dist=True),
        ),
    }


def _value_and_grads(loss, x: torch.Tensor, y: torch.Tensor) -> tuple[float, np.ndarray, np.ndarray]:
    x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
    value = loss(x, y)
    value.backward()
    return float(value.detach()), x.grad.numpy(), y.grad.numpy()


def _ema_run(loss, batches) -> list:
    """Three EMA steps (refresh every 2): values, gradients and the final EMA state."""
    out = [_value_and_grads(loss, x, y) for x, y in batches]
    return [out, {k: v.numpy().copy() for k, v in loss.state_dict().items()}]


def _ema_batches(rows: slice) -> list:
    x, y = _data()
    return [(x[rows] * s, y[rows] + s) for s in (1.0, 1.5, 0.8)]


def _worker(rank: int, world: int) -> dict:
    x, y = _data()
    rows = ROWS[rank]
    out = {name: _value_and_grads(synced, x[rows], y[rows]) for name, (_, synced) in _losses().items()}

    ema = ts.nn.SASLoss(q=0.5, basis="ema", refresh_every=2, momentum=0.4, sync_dist=True)
    out["ema"] = _ema_run(ema, _ema_batches(rows))

    # Moments.all_reduce(differentiable=True) directly, through a metric with no loss module (SVCCA).
    xr, yr = x[rows].clone().requires_grad_(), y[rows].clone().requires_grad_()
    ts.Moments.from_data(xr, yr).all_reduce(differentiable=True).svcca(keep=3).backward()
    out["svcca"] = (0.0, xr.grad.numpy(), yr.grad.numpy())
    try:  # the non-differentiable path refuses a graph instead of cutting it
        ts.Moments.from_data(xr, yr).all_reduce()
        out["refused"] = ""
    except RuntimeError as error:
        out["refused"] = str(error)

    # torch.distributed.nn's all_reduce sums the upstream gradients again: W times the exact gradient.
    from torch.distributed.nn.functional import all_reduce as torch_all_reduce

    grads = []
    for reduce in (lambda t: sum_across_ranks(t, differentiable=True), torch_all_reduce):
        xr = x[rows].clone().requires_grad_()
        (reduce(xr.sum(0)) ** 2).sum().backward()
        grads.append(xr.grad.numpy())
    out["torch_nn_ratio"] = grads

    # DDP: the parameters of a shared projection see the synced loss × W (DDP averages over W ranks).
    torch.manual_seed(0)
    model = torch.nn.Linear(D, D, bias=False).double()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    loss = ts.nn.SASLoss(q=0.5, sync_dist=True)
    (world * loss(ddp(x[rows]), y[rows])).backward()
    out["ddp"] = model.weight.grad.numpy()
    return out


@pytest.fixture(scope="module")
def ranks() -> dict:
    return run_ranks(_worker, 2)


@pytest.mark.parametrize("name", list(_losses()))
def test_synced_loss_gives_the_single_process_value_and_gradient(ranks, name: str) -> None:
    x, y = _data()
    value, grad_x, grad_y = _value_and_grads(_losses()[name][0], x, y)
    for rank, rows in ROWS.items():
        got_value, got_x, got_y = ranks[rank][name]
        assert got_value == pytest.approx(value, rel=1e-10)
        np.testing.assert_allclose(got_x, grad_x[rows], rtol=1e-10, atol=1e-10 * np.abs(grad_x).max())
        np.testing.assert_allclose(got_y, grad_y[rows], rtol=1e-10, atol=1e-10 * np.abs(grad_y).max())


def test_moments_all_reduce_is_differentiable(ranks) -> None:
    x, y = (t.clone().requires_grad_() for t in _data())
    ts.Moments.from_data(x, y).svcca(keep=3).backward()
    for rank, rows in ROWS.items():
        _, got_x, got_y = ranks[rank]["svcca"]
        np.testing.assert_allclose(got_x, x.grad[rows].numpy(), rtol=1e-10, atol=1e-10 * float(x.grad.abs().max()))
        np.testing.assert_allclose(got_y, y.grad[rows].numpy(), rtol=1e-10, atol=1e-10 * float(y.grad.abs().max()))


def test_synced_ema_state_and_losses_equal_the_single_process_ones(ranks) -> None:
    single = ts.nn.SASLoss(q=0.5, basis="ema", refresh_every=2, momentum=0.4)
    steps, state = _ema_run(single, _ema_batches(slice(0, N)))
    for rank, rows in ROWS.items():
        got_steps, got_state = ranks[rank]["ema"]
        for (value, gx, gy), (got_value, got_x, got_y) in zip(steps, got_steps, strict=True):
            assert got_value == pytest.approx(value, rel=1e-10)
            np.testing.assert_allclose(got_x, gx[rows], rtol=1e-10, atol=1e-10 * np.abs(gx).max())
            np.testing.assert_allclose(got_y, gy[rows], rtol=1e-10, atol=1e-10 * np.abs(gy).max())
        assert sorted(got_state) == sorted(state)
        for key in ("mean_x", "mean_y", "ema_cov_x", "ema_cov_y", "num_updates"):
            np.testing.assert_allclose(got_state[key], state[key], rtol=1e-10, atol=1e-12)
        # The eigenvectors agree up to sign (a quadratic form does not see it).
        for key in ("basis_x", "basis_y"):
            np.testing.assert_allclose(np.abs(got_state[key]), np.abs(state[key]), rtol=1e-8, atol=1e-10)


def test_non_differentiable_all_reduce_refuses_states_that_require_grad(ranks) -> None:
    for rank in ROWS:
        assert "pass differentiable=True" in ranks[rank]["refused"]


def test_backward_hands_each_rank_its_gradient_unchanged_unlike_torch_distributed_nn(ranks) -> None:
    for rank in ROWS:
        ours, theirs = ranks[rank]["torch_nn_ratio"]
        np.testing.assert_allclose(theirs, 2 * ours, rtol=1e-12)


def test_ddp_with_the_loss_times_world_size_gives_the_single_process_parameter_gradient(ranks) -> None:
    x, y = _data()
    torch.manual_seed(0)
    model = torch.nn.Linear(D, D, bias=False).double()
    ts.nn.SASLoss(q=0.5)(model(x), y).backward()
    want = model.weight.grad.numpy()
    for rank in ROWS:
        np.testing.assert_allclose(ranks[rank]["ddp"], want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


def test_sync_needs_an_initialised_process_group() -> None:
    x, y = (t.clone().requires_grad_() for t in _data())
    with pytest.raises(RuntimeError, match=r"torch\.distributed is not initialised"):
        ts.Moments.from_data(x, y).all_reduce(differentiable=True)
    with pytest.raises(RuntimeError, match=r"SASLoss\(sync_dist=True\): torch\.distributed is not initialised"):
        ts.nn.SASLoss(sync_dist=True)(x, y)
    with pytest.raises(RuntimeError, match=r"CKALoss\(sync_dist=True\): torch\.distributed is not initialised"):
        ts.nn.CKALoss(sync_dist=True)(x, y)
    with pytest.raises(RuntimeError, match="not initialised"):
        sum_across_ranks(x.sum(), differentiable=True)


def test_sync_bad_configuration() -> None:
    with pytest.raises(ValueError, match="sync_dist=True needs kernel='linear'"):
        ts.nn.CKALoss(kernel="rbf", sync_dist=True)
