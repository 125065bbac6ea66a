"""Cross-modal retrieval (docs/definitions.md#retrieval): recall@K both ways, ranks, median/mean rank and rSum, by
counting.

Scores are cosines ``S_ij = x̂_iᵀŷ_j`` between N images and M captions; ``c(j)`` = caption_to_image[j] is the
image of caption j (default: the identity, M = N). Several captions per image are first-class.

* Image→text rank of image i (0-based): ``min_{j: c(j)=i} #{j' ahead of j}`` = the number of captions of
  *other* images whose score beats the best score among i's own captions.
* Text→image rank of caption j: the number of images i' ≠ c(j) whose score beats ``S_{c(j) j}``.
* Ties: ``"optimistic"`` (default) — only a strictly greater score is ahead; ``"pessimistic"`` — an equal
  score is ahead too, unless it belongs to another correct match of the same query (another caption of the
  same image never pushes that image down). Duplicate rows make ties real; optimistic ties can only
  flatter a model, pessimistic ties only penalise it.
* ``R@K = mean(rank < K)`` in [0, 1]; median and mean rank are 1-based (median as numpy's: the mean of the
  two middle values for an even count); ``rSum = 100·Σ_{K∈{1,5,10}} (R@K_{i→t} + R@K_{t→i})`` (max 600),
  whatever ``ks`` is.

The counts are streamed tile by tile (:func:`torchspectral.pairwise.retrieval_ranks`): no sort, no top-k,
and no N×M matrix. Ranks are integers: not differentiable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from torchspectral import pairwise
from torchspectral.distributed import agreement
from torchspectral.distributed.collectives import group_rank_world, sum_all
from torchspectral.distributed.pairwise_engine import retrieval_ranks_across
from torchspectral.validation import (
    NAN_POLICIES,
    check_matrix,
    compute_dtype,
    finite_rows,
    usable_as_is,
    within_range,
)

TIES = ("optimistic", "pessimistic")
RSUM_KS = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalResult:
    """Retrieval result. ``i2t_r{K}`` / ``t2i_r{K}`` attributes exist for every K in ``ks`` (fractions).

    Shape: i2t_ranks (N,), t2i_ranks (M,) int64, 0-based; every other field is a float64 scalar tensor,
    except ``i2t_recall`` / ``t2i_recall`` (len(ks),).
    """

    ks: tuple[int, ...]
    i2t_recall: torch.Tensor
    t2i_recall: torch.Tensor
    i2t_ranks: torch.Tensor
    t2i_ranks: torch.Tensor
    rsum: torch.Tensor
    i2t_median_rank: torch.Tensor
    t2i_median_rank: torch.Tensor
    i2t_mean_rank: torch.Tensor
    t2i_mean_rank: torch.Tensor

    def __getattr__(self, name: str) -> torch.Tensor:
        # Only reached for names that are not fields: i2t_r1, t2i_r5, …
        for prefix, recall in (("i2t_r", "i2t_recall"), ("t2i_r", "t2i_recall")):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                k = int(name[len(prefix) :])
                if k in self.ks:
                    return getattr(self, recall)[self.ks.index(k)]
                raise AttributeError(f"{name}: K={k} is not among ks={self.ks}")
        raise AttributeError(name)

    def as_dict(self) -> dict[str, float]:
        """Every scalar by name (recalls as fractions), e.g. for a report or a logger."""
        out = {f"i2t_r{k}": float(self.i2t_recall[i]) for i, k in enumerate(self.ks)}
        out.update({f"t2i_r{k}": float(self.t2i_recall[i]) for i, k in enumerate(self.ks)})
        for name in ("rsum", "i2t_median_rank", "t2i_median_rank", "i2t_mean_rank", "t2i_mean_rank"):
            out[name] = float(getattr(self, name))
        return out


# The checks of the inputs below are shared by the one-process path and the group= path (retrieval_of_shards),
# which runs them on this rank's rows (``sharded``) or on the facts the ranks agreed on: one message each.


def check_caption_map(caption_to_image, n_img: int, n_cap: int, metric: str, sharded: bool = False) -> None:
    """The form of the caption → image map for n_img images and n_cap captions (this rank's, ``sharded``)."""
    if caption_to_image is None:
        if n_img != n_cap:
            raise ValueError(
                f"{metric}: x has {n_img} rows and y has {n_cap}{' on this rank' if sharded else ''}; without "
                "caption_to_image row i of x must pair with row i of y (pass caption_to_image to give several "
                "captions per image)"
            )
        return
    c = torch.as_tensor(caption_to_image)
    if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool:
        raise TypeError(f"{metric}: caption_to_image must hold integer image indices, got dtype {c.dtype}")
    if c.dim() != 1 or c.shape[0] != n_cap:
        index = "one global image index per caption of this rank" if sharded else "one image index per caption"
        raise ValueError(f"{metric}: caption_to_image must have {index}, shape ({n_cap},), got {tuple(c.shape)}")


def check_index_range(outside: int, n_img: int, metric: str, sharded: bool = False) -> None:
    """``outside``: the number of caption → image indices outside [0, n_img) (of every rank, ``sharded``)."""
    if outside:
        raise ValueError(
            f"{metric}: caption_to_image holds {outside} indices outside [0, {n_img}) (there are {n_img} images"
            f"{' across the ranks' if sharded else ''})"
        )


def check_orphans(captions_per_image: torch.Tensor, metric: str) -> None:
    n_img = captions_per_image.shape[0]
    orphans = int((captions_per_image == 0).sum())
    if orphans:
        raise ValueError(
            f"{metric}: {orphans} of {n_img} images have no caption; an image→text rank needs at least one"
        )


def check_widths(d_x: int, d_y: int, metric: str) -> None:
    if d_x != d_y:
        raise ValueError(f"{metric}: needs d_x = d_y (cosine between images and captions), got d_x={d_x}, d_y={d_y}")


def check_zero_norms(zero: int, name: str, metric: str) -> None:
    if zero:
        raise ValueError(f"{metric}: {zero} rows of {name} have zero norm and cannot be L2-normalised")


def _caption_map(caption_to_image, n_img: int, n_cap: int, device: torch.device, metric: str) -> torch.Tensor:
    check_caption_map(caption_to_image, n_img, n_cap, metric)
    if caption_to_image is None:
        return torch.arange(n_img, device=device)
    c = torch.as_tensor(caption_to_image).to(device=device, dtype=torch.int64)
    check_index_range(int(((c < 0) | (c >= n_img)).sum()), n_img, metric)
    return c


def _drop_non_finite(x, y, c, paired: bool, metric: str, nan_policy: str):
    """Apply the NaN policy: raise, or drop the images with NaN/Inf with their captions and the captions with
    NaN/Inf, renumbering the images."""
    ok_img, ok_cap = finite_rows(x), finite_rows(y)
    bad_img, bad_cap = int((~ok_img).sum()), int((~ok_cap).sum())
    if not (bad_img or bad_cap):
        return x, y, c
    if nan_policy == "raise":
        if paired:
            n_bad = int((~(ok_img & ok_cap)).sum())
            message = f"{n_bad} of {x.shape[0]} pairs contain NaN or Inf"
        else:
            message = f"{bad_img} of {x.shape[0]} images and {bad_cap} of {y.shape[0]} captions contain NaN or Inf"
        raise ValueError(f"{metric}: {message} (pass nan_policy='omit' to drop them)")
    keep_cap = ok_cap & ok_img[c]
    if paired:  # paired rows: drop the pair
        ok_img = keep_cap
    new_index = torch.cumsum(ok_img.long(), 0) - 1
    x, y, c = x[ok_img], y[keep_cap], new_index[c[keep_cap]]
    if x.shape[0] == 0 or y.shape[0] == 0:
        raise ValueError(f"{metric}: nothing is left after nan_policy='omit' (every image or caption is bad)")
    return x, y, c


def clean_retrieval_inputs(
    x: torch.Tensor, y: torch.Tensor, caption_to_image, metric: str, nan_policy: str = "raise"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate images x (N, d), captions y (M, d) and the caption→image map; apply the NaN policy.

    ``"omit"`` drops the images with NaN/Inf together with their captions, and the captions with NaN/Inf,
    then renumbers the images. Every remaining image must keep at least one caption.
    """
    check_matrix(x, "x", metric)
    check_matrix(y, "y", metric)
    if x.device != y.device:
        raise ValueError(f"{metric}: x is on {x.device} but y is on {y.device}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"{metric}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    c = _caption_map(caption_to_image, x.shape[0], y.shape[0], x.device, metric)
    n, d = max(x.shape[0], y.shape[0]), max(x.shape[1], y.shape[1])
    if not usable_as_is(n, d, x, y):
        x, y, c = _drop_non_finite(x, y, c, caption_to_image is None, metric, nan_policy)
        x, y = within_range({"x": x, "y": y}, metric, n, d)
    check_orphans(torch.bincount(c, minlength=x.shape[0]), metric)  # every image keeps a caption
    return x, y, c


def _normalised(t: torch.Tensor, dtype: torch.dtype, name: str, metric: str) -> torch.Tensor:
    t = t.detach().to(dtype)
    norms = torch.linalg.vector_norm(t, dim=1)
    check_zero_norms(int((norms == 0).sum()), name, metric)
    return t / norms[:, None]


def _median(values: torch.Tensor) -> torch.Tensor:
    return torch.quantile(values, 0.5)  # linear interpolation = numpy's median


def retrieval(
    x: torch.Tensor,
    y: torch.Tensor,
    caption_to_image: torch.Tensor | Sequence[int] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: str = "optimistic",
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
    group: Any = None,
    precision: str | None = None,
) -> RetrievalResult:
    """Image→text and text→image retrieval of images x (N, d) and captions y (M, d) by cosine similarity.

    Args:
        caption_to_image: (M,) integer image index of every caption (several captions per image allowed;
            every image needs one). Default: caption j belongs to image j (M = N).
        ks: the K of the reported ``R@K`` (``rsum`` always uses K ∈ {1, 5, 10}).
        ties: ``"optimistic"`` (only strictly greater scores rank ahead) or ``"pessimistic"`` (equal scores of
            items that are not a correct match rank ahead too).
        nan_policy: ``"raise"`` or ``"omit"`` (drop bad images with their captions, and bad captions).
        backend: ``"auto"`` | ``"torch"`` | ``"triton"`` (see :mod:`torchspectral.pairwise`).
        group: a ``torch.distributed`` process group (``torch.distributed.group.WORLD`` for all ranks): x and y
            are then this rank's shards of the images and captions (the global sets are their concatenations
            in rank order; a shard may be empty), ``caption_to_image`` holds *global* image indices, and every
            rank gets the global result (ranks in global order), bitwise the one-process result on the
            concatenated data (:mod:`torchspectral.distributed.pairwise_engine`; a collective: call it on
            every rank).
            None (default): one process.
        precision: of the score GEMMs on float32 data: None (default: ``"tf32x3"`` for the kernels on CUDA,
            ``"ieee"`` otherwise), ``"ieee"``, ``"tf32x3"``, ``"tf32"`` or ``"bf16"``. tf32/bf16 round the rows
            (unit roundoff 2⁻¹¹ / 2⁻⁸), so scores closer than that may swap and ranks change
            (:mod:`torchspectral.pairwise.precision`).

    Shape: x (N, d), y (M, d) → :class:`RetrievalResult` (ranks (N,), (M,)).

    Example:
        >>> import torch, torchspectral as ts
        >>> images = torch.eye(3)
        >>> captions = torch.tensor([[1.0, 0.1, 0.0], [0.5, 0.0, 0.9], [0.0, 1.0, 0.0], [1.0, 0.0, 0.5]])
        >>> r = ts.retrieval(images, captions, caption_to_image=[0, 0, 1, 2], ks=(1, 2))
        >>> r.i2t_ranks.tolist(), r.t2i_ranks.tolist()  # 0-based
        ([0, 0, 1], [0, 1, 0, 1])
        >>> float(r.i2t_r1), float(r.t2i_r1), float(r.t2i_median_rank)
        (0.6666666666666666, 0.5, 1.5)
    """
    metric = "retrieval"
    if group is not None:
        agreement.refuse_precision(metric, precision)
        return retrieval_of_shards(x, y, caption_to_image, ks, ties, group, nan_policy=nan_policy, backend=backend)
    ks = _check_options(ks, ties, metric)
    x_hat, y_hat, c, chosen, precision = _prepared(x, y, caption_to_image, metric, nan_policy, backend, precision)
    i2t, t2i = pairwise.retrieval_ranks(x_hat, y_hat, c, ties == "pessimistic", backend=chosen, precision=precision)

    return result_from_ranks(i2t, t2i, ks)


def retrieval_under_both_ties(
    x: torch.Tensor,
    y: torch.Tensor,
    caption_to_image: torch.Tensor | Sequence[int] | None = None,
    ks: Sequence[int] = (1, 5, 10),
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
    precision: str | None = None,
) -> tuple[RetrievalResult, RetrievalResult]:
    """(optimistic, pessimistic): :func:`retrieval` under each tie rule, equal to two calls, from one pass over
    the scores on the torch path (:func:`torchspectral.pairwise.retrieval_ranks_both`). For a report that
    says how far duplicates move the ranks. One process; arguments as in :func:`retrieval`.

    Example:
        >>> import torch, torchspectral as ts
        >>> from torchspectral.functional.retrieval import retrieval_under_both_ties
        >>> images = torch.eye(2)
        >>> captions = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])  # caption 1 duplicates image 0's
        >>> optimistic, pessimistic = retrieval_under_both_ties(images, captions, [0, 1, 1])
        >>> optimistic.i2t_ranks.tolist(), pessimistic.i2t_ranks.tolist()
        ([0, 0], [1, 0])
    """
    metric = "retrieval"
    ks = _check_options(ks, "optimistic", metric)
    x_hat, y_hat, c, chosen, precision = _prepared(x, y, caption_to_image, metric, nan_policy, backend, precision)
    both = pairwise.retrieval_ranks_both(x_hat, y_hat, c, backend=chosen, precision=precision)
    optimistic, pessimistic = (result_from_ranks(i2t, t2i, ks) for i2t, t2i in both)
    return optimistic, pessimistic


def _prepared(x, y, caption_to_image, metric, nan_policy, backend, precision):
    """Validated, L2-normalised images and captions, the caption → image map, the backend and the precision."""
    x, y, c = clean_retrieval_inputs(x, y, caption_to_image, metric, nan_policy)
    check_widths(x.shape[1], y.shape[1], metric)
    dtype = compute_dtype(x, y)
    x_hat, y_hat = _normalised(x, dtype, "x", metric), _normalised(y, dtype, "y", metric)
    chosen = pairwise.resolve_backend(backend, metric, x_hat, y_hat)
    precision = pairwise.resolve_precision(precision, chosen, metric, x_hat, y_hat)
    return x_hat, y_hat, c, chosen, precision


def result_from_ranks(i2t: torch.Tensor, t2i: torch.Tensor, ks: tuple[int, ...]) -> RetrievalResult:
    """The recalls, rSum and median/mean ranks of 0-based ranks i2t (N,), t2i (M,)."""

    def recall(ranks: torch.Tensor, k: int) -> torch.Tensor:
        return (ranks < k).double().mean()

    i2t_1based, t2i_1based = (i2t + 1).double(), (t2i + 1).double()
    return RetrievalResult(
        ks=ks,
        i2t_recall=torch.stack([recall(i2t, k) for k in ks]),
        t2i_recall=torch.stack([recall(t2i, k) for k in ks]),
        i2t_ranks=i2t,
        t2i_ranks=t2i,
        rsum=100.0 * sum(recall(i2t, k) + recall(t2i, k) for k in RSUM_KS),
        i2t_median_rank=_median(i2t_1based),
        t2i_median_rank=_median(t2i_1based),
        i2t_mean_rank=i2t_1based.mean(),
        t2i_mean_rank=t2i_1based.mean(),
    )


def _check_options(ks, ties: str, metric: str) -> tuple[int, ...]:
    if ties not in TIES:
        raise ValueError(f"{metric}: ties must be one of {TIES}, got {ties!r}")
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"{metric}: ks must be a non-empty sequence of positive integers, got {ks!r}")
    return ks


def retrieval_of_shards(
    x: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor | Sequence[torch.Tensor],
    caption_to_image: torch.Tensor | Sequence[int] | None,
    ks: Sequence[int],
    ties: str,
    group: Any,
    *,
    nan_policy: str = "raise",
    backend: str = "auto",
) -> RetrievalResult:
    """:func:`retrieval` on this rank's shards x, y of the global images and captions (see ``group``), through
    the sharded engine; x and y may also be lists of row blocks (a metric's list states: never concatenated,
    never copied whole). ``group=None``: one process through the same engine (no collective)."""
    metric = "retrieval"
    rank, _ = group_rank_world(group)

    def local() -> dict:
        agreement.check_group_options(metric, nan_policy, backend)
        _check_options(ks, ties, metric)
        fx, fy = agreement.describe_rows(x, "x", metric), agreement.describe_rows(y, "y", metric)
        check_caption_map(caption_to_image, fx["n"], fy["n"], metric, sharded=True)
        for t, f in ((x, fx), (y, fy)):
            if f["n"] and not f["bad"]:
                norms = (torch.linalg.vector_norm(p.detach(), dim=1) for p in agreement.parts(t))
                f["zero"] = sum(int((n == 0).sum()) for n in norms)
        return {"x": fx, "y": fy}

    facts = agreement.agree(local, group)
    ks = _check_options(ks, ties, metric)
    fx, fy = [f["x"] for f in facts], [f["y"] for f in facts]
    n_img, n_cap = sum(f["n"] for f in fx), sum(f["n"] for f in fy)
    d_x, d_y = agreement.width(fx, "x", metric), agreement.width(fy, "y", metric)
    bad_img, bad_cap = sum(f["bad"] for f in fx), sum(f["bad"] for f in fy)
    if bad_img or bad_cap:
        raise ValueError(
            f"{metric}: {bad_img} of {n_img} images and {bad_cap} of {n_cap} captions contain NaN or Inf"
            + (" (all ranks together)" if group is not None else "")
        )
    check_widths(d_x, d_y, metric)
    for name, parts in (("x", fx), ("y", fy)):
        check_zero_norms(sum(f.get("zero", 0) for f in parts), name, metric)
    dtype = agreement.compute_dtype_across(metric, max(n_img, n_cap), d_x, fx, fy)
    image_counts, caption_counts = [f["n"] for f in fx], [f["n"] for f in fy]
    first_image = sum(image_counts[:rank])
    device = agreement.device_of(x, y)
    if caption_to_image is None:
        c = first_image + torch.arange(image_counts[rank], device=device)
    else:
        c = torch.as_tensor(caption_to_image).to(device=device, dtype=torch.int64)
    # Out-of-range indices and images without a caption, counted across the ranks (the same verdict everywhere).
    inside = (c >= 0) & (c < n_img)
    tally = sum_all(torch.cat([torch.bincount(c[inside], minlength=n_img), (~inside).sum().reshape(1)]), group)
    check_index_range(int(tally[-1]), n_img, metric, sharded=group is not None)
    check_orphans(tally[:-1], metric)
    i2t, t2i = retrieval_ranks_across(
        agreement.detached(x),
        agreement.detached(y),
        c,
        ties == "pessimistic",
        image_counts,
        caption_counts,
        dtype,
        d_x,
        group,
    )
    return result_from_ranks(i2t, t2i, ks)
