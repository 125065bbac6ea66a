"""The streaming pairwise metrics in one process: equal to the functional metric on the concatenated rows."""

from __future__ import annotations

import pytest
import torch

import torchspectral as ts
from torchspectral.metrics import MMD, KernelCKA, Retrieval


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(90, 8, generator=g)
    c = torch.cat([torch.arange(90), torch.randint(0, 90, (110,), generator=g)])
    y = x[c] + 0.7 * torch.randn(200, 8, generator=g)
    return x, y, c


def test_retrieval_without_ids_equals_the_functional() -> None:
    x, y, _ = _data()
    metric = Retrieval(ks=(1, 4), ties="pessimistic")
    for part in torch.arange(90).split(25):
        metric.update(x[part], y[part])
    want = ts.retrieval(x, y[:90], ks=(1, 4), ties="pessimistic")
    assert {k: float(v) for k, v in metric.compute().items()} == want.as_dict()
    assert torch.equal(metric.result().i2t_ranks, want.i2t_ranks)


def test_retrieval_with_ids_deduplicates_and_orders_images_by_id() -> None:
    x, y, c = _data()
    ids = 500 - 3 * c  # ids in decreasing order of the image index
    metric = Retrieval()
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(1))
    for part in shuffled.split(64):
        metric.update(x[c[part]], y[part], ids[part])
    order = torch.argsort(ids[:90])  # the images by ascending id (c[:90] is the identity)
    captions, caption_ids = y[shuffled], ids[shuffled]  # the captions in update order
    want = ts.retrieval(x[order], captions, torch.searchsorted(ids[:90][order], caption_ids))
    got = metric.result()
    assert torch.equal(got.i2t_ranks, want.i2t_ranks) and torch.equal(got.t2i_ranks, want.t2i_ranks)
    assert {k: float(v) for k, v in metric.compute().items()} == want.as_dict()


def test_retrieval_refuses_an_id_with_two_embeddings() -> None:
    x, y, c = _data()
    metric = Retrieval()
    metric.update(x[c[:10]], y[:10], c[:10])
    metric.update(x[:1] + 1e-6, y[:1], torch.tensor([0]))  # image 0 again, another embedding, another batch
    with pytest.raises(ValueError, match=r"1 image ids were seen with different embeddings \(ids 0\)"):
        metric.compute()
    with pytest.raises(ValueError, match="different embeddings"):  # within one batch
        Retrieval().update(torch.stack([x[0], x[1]]), y[:2], torch.tensor([4, 4]))


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric Retrieval was called before")
def test_retrieval_bad_updates_are_named() -> None:
    x, y, _ = _data()
    metric = Retrieval()
    metric.update(x[:5], y[:5], torch.arange(5))
    with pytest.raises(ValueError, match="image_ids were given in some updates and not in others"):
        metric.update(x[:5], y[:5])
    with pytest.raises(ValueError, match="width 7, earlier batches had 8"):
        metric.update(x[:5, :7], y[:5, :7], torch.arange(5))
    with pytest.raises(ValueError, match="one row per caption"):
        metric.update(x[:4], y[:5], torch.arange(5))
    with pytest.raises(TypeError, match="image_ids must be integers"):
        metric.update(x[:5], y[:5], torch.arange(5.0))
    with pytest.raises(ValueError, match="update was never called"):
        Retrieval().compute()


def test_mmd_metric_equals_the_functional() -> None:
    x, y, _ = _data()
    for kwargs in ({}, {"sigma": [1.0, 3.0], "estimator": "biased", "scale": 100.0}):
        metric = MMD(**kwargs)
        metric.update(x[:50], y[:20])
        metric.update(x[50:], y[20:130])
        metric.update(x[:0], y[130:])  # an empty batch of one sample is fine
        assert float(metric.compute()) == float(ts.mmd(x, y, **kwargs))


@pytest.mark.parametrize("unbiased", [False, True])
def test_kernel_cka_metric_equals_the_functional(unbiased: bool) -> None:
    x, y, _ = _data()
    metric = KernelCKA(unbiased=unbiased)
    for part in torch.arange(90).split(40):
        metric.update(x[part], y[part, :5])
    assert float(metric.compute()) == float(ts.cka(x, y[:90, :5], kernel="rbf", unbiased=unbiased))
    with pytest.raises(ValueError, match="same number of paired rows"):
        metric.update(x[:3], y[:4])


def test_forward_returns_the_batch_value_and_accumulates() -> None:
    x, y, _ = _data()
    metric = KernelCKA(sigma=2.0)
    batch = metric(x[:40], y[:40])
    assert float(batch) == float(ts.cka(x[:40], y[:40], kernel="rbf", sigma=2.0))
    metric.update(x[40:], y[40:90])
    assert float(metric.compute()) == float(ts.cka(x, y[:90], kernel="rbf", sigma=2.0))
    metric.reset()
    metric.update(x[:10], y[:10])
    assert float(metric.compute()) == float(ts.cka(x[:10], y[:10], kernel="rbf", sigma=2.0))
