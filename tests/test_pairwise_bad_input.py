"""Bad input to the pairwise metrics gets a clear error naming the problem; nothing is clamped or NaN."""

from __future__ import annotations

import pytest
import torch
from conftest import paired

import torchspectral as ts
from torchspectral.functional.retrieval import retrieval_under_both_ties


def good(n: int = 40, d: int = 6, seed: int = 71) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = paired(n, d, seed=seed)
    return torch.from_numpy(x), torch.from_numpy(y)


ENTRY_POINTS = {
    "mmd": lambda x, y, **kw: ts.mmd(x, y, **kw),
    "cka(kernel='rbf')": lambda x, y, **kw: ts.cka(x, y, kernel="rbf", **kw),
    "retrieval": lambda x, y, **kw: ts.retrieval(x, y, **kw),
    "retrieval_under_both_ties": lambda x, y, **kw: retrieval_under_both_ties(x, y, **kw),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    "shape_x,shape_y,message",
    [((0, 6), (40, 6), "x is empty"), ((40, 6), (40, 0), "y is empty"), ((40,), (40, 6), "must be 2-D")],
)
def test_empty_and_wrong_shapes(name, shape_x, shape_y, message) -> None:
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[name](torch.randn(shape_x), torch.randn(shape_y))


@pytest.mark.parametrize("name", ["mmd", "retrieval", "retrieval_under_both_ties"])
def test_mismatched_widths(name: str) -> None:
    x, _ = good(d=6)
    _, y = good(d=4)
    with pytest.raises(ValueError, match=r"needs d_x = d_y \(.+\), got d_x=6, d_y=4"):
        ENTRY_POINTS[name](x, y)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_dtypes(name: str, dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match=f"has dtype {dtype}; embeddings must be floating point"):
        ENTRY_POINTS[name](torch.ones(40, 6, dtype=dtype), good()[1])


def test_mmd_nan_rows_are_counted_per_sample() -> None:
    x, y = good()
    x[[3, 9], 1] = float("nan")
    with pytest.raises(ValueError, match=r"mmd: 2 of 40 rows of x contain NaN or Inf"):
        ts.mmd(x, y)
    y[0, 0] = float("inf")
    want = ts.mmd(torch.cat([x[:3], x[4:9], x[10:]]), y[1:], sigma=1.0)
    torch.testing.assert_close(ts.mmd(x, y, sigma=1.0, nan_policy="omit"), want, rtol=1e-12, atol=0)


def test_rbf_cka_nan_pairs_are_counted_and_omitted() -> None:
    x, y = good()
    x[3, 1], y[7, 0] = float("nan"), float("-inf")
    with pytest.raises(ValueError, match=r"cka\(kernel='rbf'\): 2 of 40 pairs contain NaN or Inf"):
        ts.cka(x, y, kernel="rbf")
    keep = torch.ones(40, dtype=torch.bool)
    keep[[3, 7]] = False
    want = ts.cka(x[keep], y[keep], kernel="rbf", unbiased=True)
    torch.testing.assert_close(ts.cka(x, y, kernel="rbf", unbiased=True, nan_policy="omit"), want, rtol=1e-12, atol=0)


def test_retrieval_nan_rows() -> None:
    x, y = good()
    x[2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"retrieval: 1 of 40 pairs contain NaN or Inf"):
        ts.retrieval(x, y)
    c = torch.arange(40).repeat_interleave(2)
    captions = torch.cat([y, y + 0.1]).reshape(2, 40, 6).transpose(0, 1).reshape(80, 6).clone()
    captions[9, 1] = float("inf")  # the second caption of image 4
    with pytest.raises(ValueError, match=r"1 of 40 images and 1 of 80 captions contain NaN or Inf"):
        ts.retrieval(x, captions, c)
    # omit: image 2 goes with both its captions (4, 5), caption 9 alone; images are renumbered.
    got = ts.retrieval(x, captions, c, nan_policy="omit")
    keep_cap = torch.ones(80, dtype=torch.bool)
    keep_cap[[4, 5, 9]] = False
    keep_img = torch.ones(40, dtype=torch.bool)
    keep_img[2] = False
    renumber = torch.cumsum(keep_img.long(), 0) - 1
    want = ts.retrieval(x[keep_img], captions[keep_cap], renumber[c[keep_cap]])
    assert got.i2t_ranks.shape == (39,) and got.t2i_ranks.shape == (77,)
    assert got.i2t_ranks.tolist() == want.i2t_ranks.tolist() and got.t2i_ranks.tolist() == want.t2i_ranks.tolist()


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf"), [1.0, 0.0], [-2.0]])
def test_bandwidth_must_be_positive(sigma) -> None:
    x, y = good()
    with pytest.raises(ValueError, match="sigma must be a positive, finite bandwidth"):
        ts.mmd(x, y, sigma=sigma)
    if not isinstance(sigma, list):
        with pytest.raises(ValueError, match="sigma must be a positive, finite bandwidth"):
            ts.cka(x, y, kernel="rbf", sigma=sigma)


def test_bad_bandwidth_options() -> None:
    x, y = good()
    with pytest.raises(ValueError, match="sigma is an empty list"):
        ts.mmd(x, y, sigma=[])
    with pytest.raises(ValueError, match="or 'median', got 'mean'"):
        ts.mmd(x, y, sigma="mean")
    with pytest.raises(TypeError, match="sigma must be a positive number, got bool"):
        ts.mmd(x, y, sigma=True)
    with pytest.raises(ValueError, match="threshold must be a positive, finite bandwidth"):
        ts.cka(x, y, kernel="rbf", threshold=0.0)
    with pytest.raises(ValueError, match="do not apply to kernel='linear'"):
        ts.cka(x, y, sigma=1.0)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        ts.mmd(x, y, scale=float("nan"))


def test_coinciding_rows_give_no_median_bandwidth() -> None:
    x = torch.ones(30, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="median pairwise distance of the pooled sample is 0"):
        ts.mmd(x, x.clone())
    with pytest.raises(ValueError, match="median squared pairwise distance of x is 0"):
        ts.cka(x, good(30, 4)[1], kernel="rbf")
    with pytest.raises(ValueError, match="self-HSIC of x is not positive"):
        ts.cka(x, good(30, 4)[1], kernel="rbf", sigma=1.0)


def test_unknown_options() -> None:
    x, y = good()
    with pytest.raises(ValueError, match=r"estimator must be one of \('biased', 'unbiased'\), got 'u'"):
        ts.mmd(x, y, estimator="u")
    with pytest.raises(ValueError, match=r"ties must be one of \('optimistic', 'pessimistic'\), got 'random'"):
        ts.retrieval(x, y, ties="random")
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive integers"):
        ts.retrieval(x, y, ks=(1, 0))
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive integers"):
        ts.retrieval(x, y, ks=())
    for fn in (ts.mmd, ts.retrieval, lambda a, b, **kw: ts.cka(a, b, kernel="rbf", **kw)):
        with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'triton'\)"):
            fn(x, y, backend="cuda")
        with pytest.raises(ValueError, match="nan_policy must be one of"):
            fn(x, y, nan_policy="drop")


def test_too_few_rows() -> None:
    x, y = good()
    with pytest.raises(ValueError, match="unbiased estimator needs at least 2 rows in each sample"):
        ts.mmd(x[:1], y)
    ts.mmd(x[:1], y[:1], sigma=1.0, estimator="biased")  # one row each is enough for the V-statistic
    with pytest.raises(ValueError, match="needs at least 4 pairs"):
        ts.cka(x[:3], y[:3], kernel="rbf", unbiased=True)
    with pytest.raises(ValueError, match="needs at least 2 pairs"):
        ts.cka(x[:1], y[:1], kernel="rbf")
    with pytest.raises(ValueError, match="same number of paired rows, got 40 and 39"):
        ts.cka(x, y[:39], kernel="rbf")


def test_bad_caption_maps() -> None:
    x, y = good()
    with pytest.raises(ValueError, match="x has 40 rows and y has 39; without caption_to_image"):
        ts.retrieval(x, y[:39])
    with pytest.raises(ValueError, match=r"shape \(40,\), got \(39,\)"):
        ts.retrieval(x, y, torch.arange(39))
    with pytest.raises(TypeError, match="integer image indices"):
        ts.retrieval(x, y, torch.arange(40.0))
    with pytest.raises(ValueError, match=r"indices outside \[0, 40\)"):
        ts.retrieval(x, y, torch.arange(1, 41))
    c = torch.arange(40)
    c[5] = 6
    with pytest.raises(ValueError, match="1 of 40 images have no caption"):
        ts.retrieval(x, y, c)


def test_both_tie_rules_refuse_what_retrieval_refuses() -> None:
    """The audit's one-pass tie count validates as retrieval does: NaN rows, caption maps, zero norms, options."""
    x, y = good()
    bad = x.clone()
    bad[2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"retrieval: 1 of 40 pairs contain NaN or Inf"):
        retrieval_under_both_ties(bad, y)
    omitted = retrieval_under_both_ties(bad, y, nan_policy="omit")
    keep = torch.arange(40) != 2
    for got, rule in zip(omitted, ("optimistic", "pessimistic"), strict=True):
        assert torch.equal(got.t2i_ranks, ts.retrieval(x[keep], y[keep], ties=rule).t2i_ranks)
    with pytest.raises(ValueError, match="x has 40 rows and y has 39; without caption_to_image"):
        retrieval_under_both_ties(x, y[:39])
    with pytest.raises(TypeError, match="integer image indices"):
        retrieval_under_both_ties(x, y, torch.arange(40.0))
    with pytest.raises(ValueError, match=r"indices outside \[0, 40\)"):
        retrieval_under_both_ties(x, y, torch.arange(1, 41))
    zero = y.clone()
    zero[4] = 0.0
    with pytest.raises(ValueError, match="1 rows of y have zero norm"):
        retrieval_under_both_ties(x, zero)
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive integers"):
        retrieval_under_both_ties(x, y, ks=(1, 0))
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'triton'\)"):
        retrieval_under_both_ties(x, y, backend="cuda")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        retrieval_under_both_ties(x, y, nan_policy="drop")


def test_zero_norm_rows_cannot_be_normalised() -> None:
    x, y = good()
    y[4] = 0.0
    with pytest.raises(ValueError, match="1 rows of y have zero norm"):
        ts.retrieval(x, y)


def test_report_caption_to_image_checks() -> None:
    x, y = good()
    with pytest.raises(ValueError, match="alignment_report: 1 of 40 images have no caption"):
        c = torch.arange(40)
        c[0] = 1
        ts.alignment_report(x, y, caption_to_image=c)
