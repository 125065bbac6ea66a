"""The pairwise metrics sharded across 2 and 3 gloo processes (CPU) equal one process on the concatenated data.

Uneven shards, and in the 3-process runs one rank holds no images (or no rows at all). Retrieval ranks must be
bitwise equal (ties included: the data has duplicated images and captions, so the pessimistic and optimistic
ranks differ); kernel sums (float64) equal to float64 rounding. One spawn per world size computes every case;
the tests below read its results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_ranks

import torchspectral as ts
from torchspectral import pairwise

pytestmark = pytest.mark.slow  # two spawns (2 and 3 gloo processes) compute every case: ~15–25 s each on 2 busy cores

TILE_BUDGET = 1 << 16  # float32 tiles of 64 rows: several image tiles and several caption units per rank
KERNEL_TILE_BUDGET = 1 << 15  # float64 tiles of 32 rows: several chunks per shard (the even world splits them)

# Rows of the global data each rank holds, as (start, stop): uneven, and an empty shard in the 3-rank world.
IMAGES = {2: [(0, 120), (120, 300)], 3: [(0, 190), (190, 190), (190, 300)]}
CAPTIONS = {2: [(0, 530), (530, 700)], 3: [(0, 10), (10, 400), (400, 700)]}
X_ROWS = {2: [(0, 120), (120, 160)], 3: [(0, 40), (40, 40), (40, 160)]}
Y_ROWS = {2: [(0, 30), (30, 140)], 3: [(0, 100), (100, 140), (140, 140)]}
# The id-keyed retrieval metric: (caption start, caption stop) per batch, per rank; rank 1 of 3 sees nothing.
ID_BATCHES = {2: [[(0, 150), (150, 400)], [(400, 700)]], 3: [[(0, 350)], [], [(350, 500), (500, 700)]]}


def retrieval_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 16, generator=g)
    x[5], x[211] = x[17], x[2]  # duplicated images: real ties
    c = torch.randint(0, 300, (700,), generator=g)
    c[:300] = torch.randperm(300, generator=g)  # every image has a caption
    y = x[c] + 0.9 * torch.randn(700, 16, generator=g)
    y[40], y[650] = y[41], y[3]  # duplicated captions
    return x, y, c


def id_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Captions with their image's id (ids are not 0…N−1) and that image's embedding repeated per caption."""
    x, y, c = retrieval_data()
    ids = 1000 + 7 * c  # sparse ids, in no particular order along the captions
    return x[c], y, ids


def kernel_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(160, 6, generator=g, dtype=torch.float64)
    y = 1.2 * torch.randn(140, 6, generator=g, dtype=torch.float64) + 0.4
    return x, y


def paired_y(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * x[:, :4]) + 0.3 * x[:, 1:5]


def _ret_summary(r) -> dict:
    return {"i2t": r.i2t_ranks.numpy(), "t2i": r.t2i_ranks.numpy(), **r.as_dict()}


def _error(call) -> str:
    try:
        call()
    except (ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def _worker(rank: int, world: int) -> dict:
    import torch.distributed as dist

    from torchspectral.metrics import MMD, KernelCKA, Retrieval

    group = dist.group.WORLD
    out: dict = {}
    pairwise.TILE_BUDGET_BYTES = TILE_BUDGET
    x, y, c = retrieval_data()
    (a, b), (p, q) = IMAGES[world][rank], CAPTIONS[world][rank]
    for ties in ("optimistic", "pessimistic"):
        out[f"retrieval_{ties}"] = _ret_summary(ts.retrieval(x[a:b], y[p:q], c[p:q], ties=ties, group=group))
    (a, b) = CAPTIONS[world][rank]
    out["retrieval_paired"] = _ret_summary(ts.retrieval(y[a:b] + 0.5, y[a:b], ks=(1, 3), group=group))

    metric = Retrieval(ties="pessimistic")
    xi, yi, ids = id_data()
    for p, q in ID_BATCHES[world][rank]:
        metric.update(xi[p:q], yi[p:q], ids[p:q])
    out["metric_ids"] = _ret_summary(metric.result())
    paired = Retrieval(ks=(1, 3))
    a, b = CAPTIONS[world][rank]
    for p, q in ((a, (a + b) // 2), ((a + b) // 2, b)):
        paired.update(y[p:q] + 0.5, y[p:q])
    out["metric_paired"] = {k: float(v) for k, v in paired.compute().items()}

    pairwise.TILE_BUDGET_BYTES = KERNEL_TILE_BUDGET
    kx, ky = kernel_data()
    (a, b), (p, q) = X_ROWS[world][rank], Y_ROWS[world][rank]
    out["mmd"] = float(ts.mmd(kx[a:b], ky[p:q], group=group))
    out["mmd_biased"] = float(ts.mmd(kx[a:b], ky[p:q], sigma=[0.7, 3.0], estimator="biased", group=group))
    mmd_metric = MMD()
    mmd_metric.update(kx[a : (a + b) // 2], ky[p:q])
    mmd_metric.update(kx[(a + b) // 2 : b], ky[q:q])
    out["metric_mmd"] = float(mmd_metric.compute())
    px = kx[a:b]
    for unbiased in (False, True):
        out[f"cka_{unbiased}"] = float(ts.cka(px, paired_y(px), kernel="rbf", unbiased=unbiased, group=group))
        cka_metric = KernelCKA(unbiased=unbiased)
        for part in px.split(25):
            cka_metric.update(part, paired_y(part))
        out[f"metric_cka_{unbiased}"] = float(cka_metric.compute())

    # Bad input on one rank is the same error on every rank (never a hang).
    pairwise.TILE_BUDGET_BYTES = TILE_BUDGET
    (a, b), (p, q) = IMAGES[world][rank], CAPTIONS[world][rank]
    narrow = x[a:b, :15] if rank == world - 1 else x[a:b]
    out["error_width"] = _error(lambda: ts.retrieval(narrow, y[p:q, : narrow.shape[1]], c[p:q], group=group))
    bad = kx[a:b].clone()
    if rank == 0:
        bad[3, 1] = float("nan")
    out["error_nan"] = _error(lambda: ts.mmd(bad, ky[p:q], group=group))
    out["error_range"] = _error(lambda: ts.retrieval(x[a:b], y[p:q], c[p:q] + (300 if rank == 0 else 0), group=group))
    conflict = Retrieval()
    xi_bad = xi.clone()
    if rank == world - 1:
        xi_bad[ids == ids[0]] += 1e-3  # the same id with another embedding on the last rank
    for p, q in ID_BATCHES[world][rank] or [(0, 0)]:
        if q > p:
            conflict.update(xi_bad[p:q] if rank == world - 1 else xi[p:q], yi[p:q], ids[p:q])
    if rank == world - 1:
        conflict.update(xi_bad[:1], yi[:1], ids[:1])  # make sure the last rank holds that id
    out["error_conflict"] = _error(conflict.compute)
    mixed = Retrieval()
    mixed.update(x[:5], y[:5], torch.arange(5) if rank == 0 else None)
    out["error_mixed"] = _error(mixed.compute)
    return out


@pytest.fixture(scope="module", params=[2, 3])
def ranks(request) -> tuple[int, dict[int, dict]]:
    return request.param, run_ranks(_worker, request.param)


def _same_retrieval(got: dict, want) -> None:
    np.testing.assert_array_equal(got["i2t"], want.i2t_ranks.numpy())
    np.testing.assert_array_equal(got["t2i"], want.t2i_ranks.numpy())
    for key, value in want.as_dict().items():
        assert got[key] == value, key


@pytest.fixture
def tiles(monkeypatch):
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", TILE_BUDGET)


def test_retrieval_functional_equals_one_process(ranks, tiles) -> None:
    _, out = ranks
    x, y, c = retrieval_data()
    wants = {ties: ts.retrieval(x, y, c, ties=ties) for ties in ("optimistic", "pessimistic")}
    # The data has real ties: the tie rule changes ranks, so equal ranks below test the rule, not only the scores.
    assert (wants["optimistic"].t2i_ranks != wants["pessimistic"].t2i_ranks).any()
    assert (wants["optimistic"].i2t_ranks != wants["pessimistic"].i2t_ranks).any()
    for result in out.values():
        for ties, want in wants.items():
            _same_retrieval(result[f"retrieval_{ties}"], want)
        _same_retrieval(result["retrieval_paired"], ts.retrieval(y + 0.5, y, ks=(1, 3)))


def test_retrieval_metric_deduplicates_images_across_ranks(ranks, tiles) -> None:
    world, out = ranks
    xi, yi, ids = id_data()
    # One process: the distinct images in ascending id order, the captions in rank order, then update order.
    order = [(p, q) for batches in ID_BATCHES[world] for p, q in batches]
    captions = torch.cat([yi[p:q] for p, q in order])
    caption_ids = torch.cat([ids[p:q] for p, q in order])
    unique = torch.unique(ids)
    images = torch.stack([xi[int(torch.nonzero(ids == i)[0])] for i in unique])
    want = ts.retrieval(images, captions, torch.searchsorted(unique, caption_ids), ties="pessimistic")
    for result in out.values():
        _same_retrieval(result["metric_ids"], want)
        assert result["metric_paired"] == ts.retrieval(yi + 0.5, yi, ks=(1, 3)).as_dict()


def test_kernel_metrics_equal_one_process(ranks, monkeypatch) -> None:
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", KERNEL_TILE_BUDGET)
    _, out = ranks
    x, y = kernel_data()
    want = {
        "mmd": ts.mmd(x, y),
        "metric_mmd": ts.mmd(x, y),
        "mmd_biased": ts.mmd(x, y, sigma=[0.7, 3.0], estimator="biased"),
    }
    for unbiased in (False, True):
        want[f"cka_{unbiased}"] = want[f"metric_cka_{unbiased}"] = ts.cka(
            x, paired_y(x), kernel="rbf", unbiased=unbiased
        )
    for result in out.values():
        for key, value in want.items():
            assert result[key] == pytest.approx(float(value), rel=1e-12, abs=1e-15), key


def test_bad_input_on_one_rank_is_an_error_on_every_rank(ranks) -> None:
    _, out = ranks
    for result in out.values():
        assert "different width on different ranks" in result["error_width"], result["error_width"]
        assert "1 of 160 rows of x contain NaN or Inf" in result["error_nan"], result["error_nan"]
        assert "outside [0, 300)" in result["error_range"], result["error_range"]
        assert f"ids {1000 + 7 * int(retrieval_data()[2][0])}" in result["error_conflict"], result["error_conflict"]
        assert "different embeddings" in result["error_conflict"]
        assert "image_ids on every rank or on none" in result["error_mixed"], result["error_mixed"]


def _grad_worker(rank: int, world: int) -> dict:
    pairwise.TILE_BUDGET_BYTES = KERNEL_TILE_BUDGET
    x, y = kernel_data()
    (a, b), (p, q) = X_ROWS[world][rank], Y_ROWS[world][rank]
    out = {}
    for name, loss in {
        "median": ts.nn.MMDLoss(sync_dist=True),
        "biased": ts.nn.MMDLoss(sigma=[0.8, 2.5], estimator="biased", sync_dist=True),
    }.items():
        xr, yr = x[a:b].clone().requires_grad_(), y[p:q].clone().requires_grad_()
        value = loss(xr, yr)
        (3.0 * value).backward()  # an upstream factor: the backward scales the rank's gradient by it
        out[name] = (float(value.detach()), xr.grad.numpy(), yr.grad.numpy())
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_synced_mmd_loss_gives_each_rank_its_rows_gradient(world: int, monkeypatch) -> None:
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", KERNEL_TILE_BUDGET)
    out = run_ranks(_grad_worker, world)
    x, y = kernel_data()
    losses = {"median": ts.nn.MMDLoss(), "biased": ts.nn.MMDLoss(sigma=[0.8, 2.5], estimator="biased")}
    for name, loss in losses.items():
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
        value = loss(xg, yg)
        (3.0 * value).backward()
        for rank, result in out.items():
            got_value, got_x, got_y = result[name]
            (a, b), (p, q) = X_ROWS[world][rank], Y_ROWS[world][rank]
            assert got_value == pytest.approx(float(value.detach()), rel=1e-12)
            np.testing.assert_allclose(got_x, xg.grad[a:b].numpy(), rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(got_y, yg.grad[p:q].numpy(), rtol=1e-10, atol=1e-14)
