"""RBF MMD, RBF CKA and retrieval against the float64 NumPy references (explicit n×m matrices)."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R
import torch
from conftest import paired

import torchspectral as ts
from torchspectral import pairwise
from torchspectral.functional.retrieval import retrieval_under_both_ties


def t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(a).to(dtype)


def seen(a: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The values the package sees after rounding to `dtype`, in float64 for the reference."""
    return t(a, dtype).double().numpy()


@pytest.fixture
def tiny_tiles(monkeypatch):
    """Force 16×16 tiles so that small inputs cross many tile edges (n not a multiple of the tile)."""
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", 1)


MMD_CASES = [
    ("unbiased", "median"),
    ("biased", "median"),
    ("unbiased", 1.3),
    ("biased", 0.4),
    ("unbiased", [0.5, 2.0, 8.0]),
    ("biased", [1.0, 3.0]),
]


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("estimator,sigma", MMD_CASES)
@pytest.mark.parametrize("n,m,d", [(120, 120, 6), (97, 41, 13)])
def test_mmd(estimator, sigma, n, m, d, dtype, rtol) -> None:
    x, _ = paired(n, d, seed=n + m)
    _, y = paired(m, d, seed=n * m, offset=0.3)
    got = float(ts.mmd(t(x, dtype), t(y, dtype), sigma=sigma, estimator=estimator))
    want = R.mmd(seen(x, dtype), seen(y, dtype), sigma=sigma, estimator=estimator)
    assert got == pytest.approx(want, rel=rtol)


def test_mmd_scale_and_paper_preset() -> None:
    x, y = paired(80, 5, seed=2, offset=0.2)
    got = float(ts.mmd(t(x), t(y), sigma=10, estimator="biased", scale=100))
    assert got == pytest.approx(R.mmd(x, y, sigma=10, estimator="biased", scale=100), rel=1e-10)


def test_mmd_across_many_tiles(tiny_tiles) -> None:
    x, _ = paired(53, 4, seed=5)
    _, y = paired(38, 4, seed=6, offset=0.1)
    for estimator in ("biased", "unbiased"):
        got = float(ts.mmd(t(x), t(y), sigma=[0.7, 2.0], estimator=estimator))
        assert got == pytest.approx(R.mmd(x, y, sigma=[0.7, 2.0], estimator=estimator), rel=1e-10)


def test_unbiased_mmd_may_be_negative() -> None:
    rng = np.random.default_rng(1)  # a seed where the two same-law samples give a negative estimate
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(45, 3))
    got = float(ts.mmd(t(x), t(y), sigma=1.0))
    want = R.mmd(x, y, sigma=1.0)
    assert want < 0 and got == pytest.approx(want, rel=1e-10)


@pytest.mark.slow
def test_median_bandwidth_uses_the_documented_subsample() -> None:
    """Above 4096 pooled rows the median comes from the rows floor(k·N/4096): same as the reference."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(3000, 3)), rng.normal(size=(1500, 3)) + 0.2
    got = float(pairwise.median_pairwise_distance(torch.cat([t(x), t(y)])))
    assert got == pytest.approx(R.mmd_median_sigma(x, y), rel=1e-12)
    assert float(ts.mmd(t(x), t(y))) == pytest.approx(R.mmd(x, y), rel=1e-10)  # the metric takes the same σ
    x = rng.normal(size=(4500, 2))
    got = float(pairwise.median_squared_distance_all_pairs(t(x)))
    assert got == pytest.approx(R.kornblith_sigma(x) ** 2, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 7, 10])
def test_medians_on_tiny_samples(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(n, 3))
    assert float(pairwise.median_pairwise_distance(t(x))) == pytest.approx(R.mmd_median_sigma(x[:1], x[1:]), 1e-12)
    assert float(pairwise.median_squared_distance_all_pairs(t(x))) ** 0.5 == pytest.approx(R.kornblith_sigma(x), 1e-12)


CKA_CASES = [(False, None, 1.0), (True, None, 1.0), (False, 2.5, 1.0), (True, 0.8, 1.0), (False, None, 0.5)]


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("unbiased,sigma,threshold", CKA_CASES)
@pytest.mark.parametrize("n,d,d_y", [(150, 8, 8), (61, 11, 4)])
def test_rbf_cka(unbiased, sigma, threshold, n, d, d_y, dtype, rtol) -> None:
    x, y = paired(n, d, seed=n, d_y=d_y, offset=0.4)
    got = float(ts.cka(t(x, dtype), t(y, dtype), kernel="rbf", unbiased=unbiased, sigma=sigma, threshold=threshold))
    want = R.cka_rbf(seen(x, dtype), seen(y, dtype), unbiased=unbiased, sigma=sigma, threshold=threshold)
    assert got == pytest.approx(want, rel=rtol)


def test_rbf_cka_across_many_tiles(tiny_tiles) -> None:
    x, y = paired(45, 5, seed=9, d_y=3)
    for unbiased in (False, True):
        got = float(ts.cka(t(x), t(y), kernel="rbf", unbiased=unbiased))
        assert got == pytest.approx(R.cka_rbf(x, y, unbiased=unbiased), rel=1e-10)


@pytest.mark.parametrize("name", ["mmd", "cka_rbf", "cka_rbf_unbiased"])
def test_offset_1e3_in_float32(name: str) -> None:
    """Distances are translation invariant; +1e3 on every coordinate of float32 input changes nothing."""
    x, y = paired(400, 16, seed=21)
    x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    far_x, far_y = t(x + 1e3, torch.float32), t(y + 1e3, torch.float32)
    near_x, near_y = (far_x.double() - 1e3).float(), (far_y.double() - 1e3).float()
    fn = {
        "mmd": lambda a, b: ts.mmd(a, b, sigma=0.8),
        "cka_rbf": lambda a, b: ts.cka(a, b, kernel="rbf", sigma=0.8),
        "cka_rbf_unbiased": lambda a, b: ts.cka(a, b, kernel="rbf", unbiased=True, sigma=0.8),
    }[name]
    assert float(fn(far_x, far_y)) == pytest.approx(float(fn(near_x, near_y)), rel=1e-5)


def caption_map(n_img: int, per_image: tuple[int, int], seed: int) -> np.ndarray:
    """Every image gets between per_image[0] and per_image[1] captions, in shuffled order."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(per_image[0], per_image[1] + 1, size=n_img)
    return rng.permutation(np.repeat(np.arange(n_img), counts))


def retrieval_data(n_img: int, per_image: tuple[int, int], d: int, seed: int, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_img, d))
    c = np.arange(n_img) if per_image == (1, 1) else caption_map(n_img, per_image, seed)
    captions = images[c] + noise * rng.normal(size=(c.shape[0], d))
    return images, captions, c


def assert_retrieval_matches(got: ts.RetrievalResult, want: dict, ks=(1, 5, 10)) -> None:
    np.testing.assert_array_equal(got.i2t_ranks.numpy(), want["i2t_ranks"])
    np.testing.assert_array_equal(got.t2i_ranks.numpy(), want["t2i_ranks"])
    for k in ks:
        assert float(getattr(got, f"i2t_r{k}")) == want[f"i2t_r{k}"]
        assert float(getattr(got, f"t2i_r{k}")) == want[f"t2i_r{k}"]
    for key in ("rsum", "i2t_median_rank", "t2i_median_rank", "i2t_mean_rank", "t2i_mean_rank"):
        assert float(getattr(got, key)) == pytest.approx(want[key], rel=1e-12), key


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
@pytest.mark.parametrize("n_img,per_image,d", [(90, (1, 1), 12), (40, (1, 7), 9), (33, (5, 5), 1)])
def test_retrieval(n_img, per_image, d, ties, dtype) -> None:
    images, captions, c = retrieval_data(n_img, per_image, d, seed=n_img)
    ci = None if per_image == (1, 1) else torch.from_numpy(c)
    got = ts.retrieval(t(images, dtype), t(captions, dtype), ci, ties=ties, ks=(1, 3, 5, 10))
    want = R.retrieval(seen(images, dtype), seen(captions, dtype), c, ks=(1, 3, 5, 10), ties=ties)
    assert_retrieval_matches(got, want, ks=(1, 3, 5, 10))


def test_retrieval_across_many_tiles(tiny_tiles) -> None:
    images, captions, c = retrieval_data(37, (1, 4), 6, seed=3)
    for ties in ("optimistic", "pessimistic"):
        got = ts.retrieval(t(images), t(captions), torch.from_numpy(c), ties=ties)
        assert_retrieval_matches(got, R.retrieval(images, captions, c, ties=ties))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ties_from_duplicated_rows(dtype) -> None:
    """Duplicate images and captions make exact ties; optimistic and pessimistic ranks then differ."""
    images, captions, c = retrieval_data(30, (1, 3), 5, seed=4, noise=0.3)
    images[7] = images[3]  # a duplicate image: every caption of images 3 and 7 has a tied other image
    captions[c == 5] = captions[np.flatnonzero(c == 5)[0]]  # image 5's captions all equal (ties among its own)…
    captions[np.flatnonzero(c == 12)[0]] = captions[np.flatnonzero(c == 5)[0]]  # …and shared by image 12
    x, y = seen(images, dtype), seen(captions, dtype)
    results = {}
    for ties in ("optimistic", "pessimistic"):
        results[ties] = ts.retrieval(t(x), t(y), torch.from_numpy(c), ties=ties)
        assert_retrieval_matches(results[ties], R.retrieval(x, y, c, ties=ties))
    gap_t2i = (results["pessimistic"].t2i_ranks - results["optimistic"].t2i_ranks).numpy()
    gap_i2t = (results["pessimistic"].i2t_ranks - results["optimistic"].i2t_ranks).numpy()
    assert (gap_t2i >= 0).all() and (gap_i2t >= 0).all()
    assert (gap_t2i[(c == 3) | (c == 7)] == 1).all()  # the duplicate image is the one tie
    assert gap_i2t[5] == 1  # image 12's copy of image 5's caption ties; image 5's own copies do not count
    assert gap_i2t[3] == 0 and gap_i2t[7] == 0  # a duplicate image is no tie in the image→text direction


def tied_retrieval_data():
    images, captions, c = retrieval_data(30, (1, 3), 5, seed=4, noise=0.3)
    images[7] = images[3]
    captions[c == 5] = captions[np.flatnonzero(c == 5)[0]]
    captions[np.flatnonzero(c == 12)[0]] = captions[np.flatnonzero(c == 5)[0]]
    return images, captions, c


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_both_tie_rules_from_one_pass(dtype) -> None:
    """retrieval_under_both_ties (the audit's one pass over the scores) gives each rule's reference ranks, ties in."""
    images, captions, c = tied_retrieval_data()
    x, y = seen(images, dtype), seen(captions, dtype)
    optimistic, pessimistic = retrieval_under_both_ties(t(x, dtype), t(y, dtype), torch.from_numpy(c), ks=(1, 3))
    assert_retrieval_matches(optimistic, R.retrieval(x, y, c, ks=(1, 3), ties="optimistic"), ks=(1, 3))
    assert_retrieval_matches(pessimistic, R.retrieval(x, y, c, ks=(1, 3), ties="pessimistic"), ks=(1, 3))
    assert bool((pessimistic.t2i_ranks != optimistic.t2i_ranks).any())  # the data do have ties
    with pytest.raises(ValueError, match="ks must be a non-empty sequence"):
        retrieval_under_both_ties(t(x), t(y), torch.from_numpy(c), ks=())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_both_tie_rules_equal_two_calls_across_many_tiles(dtype, tiny_tiles) -> None:
    """Bitwise the ranks of two retrieval calls, one per rule, where 16×16 tiles cut the score matrix."""
    images, captions, c = tied_retrieval_data()
    x, y, ci = t(images, dtype), t(captions, dtype), torch.from_numpy(c)
    both = retrieval_under_both_ties(x, y, ci)
    for rule, got in zip(("optimistic", "pessimistic"), both, strict=True):
        want = ts.retrieval(x, y, ci, ties=rule)
        assert torch.equal(got.i2t_ranks, want.i2t_ranks) and torch.equal(got.t2i_ranks, want.t2i_ranks)


def test_identical_modalities_retrieve_perfectly() -> None:
    x, _ = paired(200, 16, seed=10)
    r = ts.retrieval(t(x), 3.0 * t(x))
    assert float(r.rsum) == 600.0 and float(r.i2t_median_rank) == 1.0 and float(r.t2i_mean_rank) == 1.0


def test_retrieval_result_attributes() -> None:
    images, captions, c = retrieval_data(20, (1, 2), 4, seed=11)
    r = ts.retrieval(t(images), t(captions), torch.from_numpy(c), ks=(2, 4))
    assert r.i2t_recall.shape == (2,) and r.i2t_ranks.shape == (20,) and r.t2i_ranks.shape == (c.shape[0],)
    assert set(r.as_dict()) == {"i2t_r2", "i2t_r4", "t2i_r2", "t2i_r4", "rsum", "i2t_median_rank",
                                "t2i_median_rank", "i2t_mean_rank", "t2i_mean_rank"}  # fmt: skip
    with pytest.raises(AttributeError, match="K=1 is not among ks"):
        _ = r.i2t_r1
    # rSum always uses K ∈ {1, 5, 10}, whatever ks is.
    assert float(r.rsum) == pytest.approx(R.retrieval(images, captions, c)["rsum"], rel=1e-12)


def test_report_with_caption_to_image() -> None:
    images, captions, c = retrieval_data(60, (1, 5), 10, seed=12, noise=0.7)
    report = ts.alignment_report(t(images), t(captions), caption_to_image=torch.from_numpy(c))
    want = R.retrieval(images, captions, c)
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_median_rank"):
        assert report[key] == pytest.approx(want[key], rel=1e-12), key
    assert report["n_pairs"] == c.shape[0]
    assert report["cka_linear"] == pytest.approx(R.cka_linear(images[c], captions), rel=1e-10)
    assert report["cka_rbf"] == pytest.approx(R.cka_rbf(images[c], captions), rel=1e-10)
    assert report["mmd"] == pytest.approx(R.mmd(images, captions), rel=1e-10)


@pytest.mark.parametrize("width", [0.3, 1.0, 5.0])
def test_float32_kernel_sums_do_not_cancel(width: float) -> None:
    """Wide bandwidths (k ≈ 1 everywhere) and narrow ones (k ≈ 0) in high dimension, float32 input."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(300, 256))
    y = x + 8.0 * rng.normal(size=(300, 256))
    sigma = width * R.mmd_median_sigma(x, y)
    x32, y32 = seen(x, torch.float32), seen(y, torch.float32)
    got = float(ts.mmd(t(x32, torch.float32), t(y32, torch.float32), sigma=sigma))
    assert got == pytest.approx(R.mmd(x32, y32, sigma=sigma), rel=1e-5)
    for unbiased in (False, True):
        got = float(ts.cka(t(x32, torch.float32), t(y32, torch.float32), kernel="rbf", sigma=sigma, unbiased=unbiased))
        assert got == pytest.approx(R.cka_rbf(x32, y32, sigma=sigma, unbiased=unbiased), rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_upcast(dtype) -> None:
    """Half-precision input is computed in float32: the same as float32 input holding the same values."""
    x, y = paired(120, 10, seed=31, offset=0.3)
    hx, hy = t(x, dtype), t(y, dtype)
    fx, fy = hx.float(), hy.float()
    torch.testing.assert_close(ts.mmd(hx, hy), ts.mmd(fx, fy), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(ts.cka(hx, hy, kernel="rbf"), ts.cka(fx, fy, kernel="rbf"), rtol=1e-6, atol=0)
    assert ts.retrieval(hx, hy).i2t_ranks.tolist() == ts.retrieval(fx, fy).i2t_ranks.tolist()
    hx.requires_grad_()
    ts.mmd(hx, hy, sigma=np.float32(2.0)).backward()  # a NumPy scalar is a number too
    assert hx.grad.dtype == dtype and bool(torch.isfinite(hx.grad.float()).all())


def test_strided_inputs() -> None:
    x, y = paired(150, 12, seed=32)
    x, y = t(x), t(y)
    sx, sy = x.T.contiguous().T, torch.repeat_interleave(y, 2, dim=1)[:, ::2]
    assert not sx.is_contiguous() and not sy.is_contiguous()
    torch.testing.assert_close(ts.mmd(sx, sy), ts.mmd(x, y), rtol=1e-12, atol=0)
    torch.testing.assert_close(ts.cka(sx, sy, kernel="rbf", unbiased=True), ts.cka(x, y, kernel="rbf", unbiased=True))
    assert ts.retrieval(sx, sy).t2i_ranks.tolist() == ts.retrieval(x, y).t2i_ranks.tolist()


@pytest.mark.parametrize("bracket,fallbacks", [(0.08, 0), (0.0, 2)])
def test_median_selected_inside_the_pilot_bracket_is_exact(bracket, fallbacks, monkeypatch) -> None:
    """From 2048 rows the medians are selected among the distances a pilot brackets; where the pilot misses
    (a zero-width bracket misses here) among all of them. Both give numpy's median of the explicit distances."""
    from torchspectral.pairwise import bandwidth

    calls = []
    flat = bandwidth._upper_squared_distances
    monkeypatch.setattr(bandwidth, "_upper_squared_distances", lambda z: calls.append(z.shape[0]) or flat(z))
    monkeypatch.setattr(bandwidth, "BRACKET", bracket)
    rng = np.random.default_rng(3)
    n = 2100
    x = rng.standard_normal((n, 3))
    x[::3] = np.round(x[::3])  # many equal distances among the rounded rows
    upper = ((x[:, None] - x[None]) ** 2).sum(-1)[np.triu_indices(n, 1)]
    with_diagonal = np.concatenate([np.zeros(n), upper, upper])  # all n² squared distances
    assert float(pairwise.median_squared_distance_all_pairs(t(x))) == pytest.approx(np.median(with_diagonal), rel=1e-12)
    assert float(pairwise.median_pairwise_distance(t(x))) == pytest.approx(np.median(np.sqrt(upper)), rel=1e-12)
    assert calls.count(1024) == 2  # the pilot, once per median
    assert calls.count(n) == fallbacks  # all 2.2M distances materialised only where the pilot missed


@pytest.mark.parametrize("n", [4, 6, 10, 11])
def test_median_with_tied_distances(n: int) -> None:
    """Duplicated rows on an integer grid: many equal distances around the middle of the sorted list."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 2, size=(n, 2)).astype(np.float64)
    x[-1] = x[0]
    got = float(pairwise.median_squared_distance_all_pairs(t(x)))
    assert got == pytest.approx(R.kornblith_sigma(x) ** 2, abs=1e-12)
