"""Streaming pairwise metrics (retrieval, RBF MMD, RBF CKA): list states of rows, computed tile by tile.

``update`` appends the batch's rows to list states; ``compute`` runs the tile-streaming routines on them, never
an N×M or N×N matrix. In one process (or with ``sync_on_compute=False``) it is the functional metric on the
rows this process holds. Under torch.distributed the rows are **never gathered**: ``sync`` only marks the
metric as synced (nothing travels), and ``compute`` runs the sharded engine
(:mod:`torchspectral.distributed.pairwise_engine`) on every rank's own rows — the other ranks' rows pass by one block
at a time — and returns the global value on every rank: the functional value on the concatenated rows (rank order,
then update order), bitwise for retrieval ranks, to float64 rounding for the kernel sums. ``compute`` is then a
collective: call it on every rank, as torchmetrics does.

Calling the metric (``forward``) folds the batch in and returns the batch's own value on this rank's batch
(torchmetrics' default, ``dist_sync_on_step=False``); that costs a pairwise pass per batch, so call ``update``
when only the epoch value is wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities.exceptions import TorchMetricsUserError

from torchspectral.distributed import collectives
from torchspectral.distributed.agreement import agree, parts
from torchspectral.functional.cka import cka
from torchspectral.functional.mmd import mmd
from torchspectral.functional.neighbours import neighbourhood_alignment
from torchspectral.functional.retrieval import RetrievalResult, retrieval_of_shards
from torchspectral.metrics.registry_facts import class_facts, set_dict_facts
from torchspectral.registry import METRICS


def _rows(t: Any, name: str, metric: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{metric}.update: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2 or not t.is_floating_point():
        raise ValueError(
            f"{metric}.update: {name} must be a 2-D floating-point (B, d) tensor, got {t.dtype} {tuple(t.shape)}"
        )
    return t.detach()


class _RowMetric(Metric):
    """List states of rows whose ``sync`` gathers nothing: the pairwise compute is sharded instead."""

    is_differentiable = False
    full_state_update = False
    _sync_group: Any = None

    def _check_width(self, name: str, t: torch.Tensor) -> None:
        held = getattr(self, name)
        if held and held[0].shape[1] != t.shape[1]:
            raise ValueError(
                f"{type(self).__name__}.update: {name} has width {t.shape[1]}, earlier batches had {held[0].shape[1]}"
            )

    def sync(
        self,
        dist_sync_fn: Any = None,
        process_group: Any = None,
        should_sync: bool = True,
        distributed_available: Any = None,
    ) -> None:
        """Mark the metric as synced across the ranks of ``process_group`` without moving any row: ``compute``
        then runs the sharded engine over every rank's rows (``dist_sync_fn`` is not used: nothing is gathered)."""
        if self._is_synced and should_sync:
            raise TorchMetricsUserError("The Metric has already been synced.")
        available = distributed_available or self.distributed_available_fn
        if not should_sync or not (callable(available) and available()):
            return
        import torch.distributed as dist

        # The states are not changed by this sync: the cache that unsync restores holds the same tensors.
        self._cache = {attr: list(getattr(self, attr)) for attr in self._defaults}
        self._sync_group = process_group or self.process_group or dist.group.WORLD
        self._is_synced = True

    def _group(self) -> Any:
        """The process group compute runs across (None: this process's rows only)."""
        return self._sync_group if self._is_synced else None

    def _cat(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        # A rank that saw no batch holds (0, 0) rows; the sharded functions take its width from the others.
        return torch.cat(list(rows)) if rows else torch.empty(0, 0, device=self.device)


class _TwoSamples(_RowMetric):
    """Rows of x and of y (list states), appended by ``update`` and concatenated for ``compute`` with the process
    group it runs across; ``paired`` metrics need as many rows of y as of x in every batch."""

    paired = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("x", default=[], dist_reduce_fx="cat")
        self.add_state("y", default=[], dist_reduce_fx="cat")

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        name = type(self).__name__
        x, y = _rows(x, "x", name), _rows(y, "y", name)
        if self.paired and x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}.update: x and y must hold the same number of paired rows, got {x.shape[0]} and {y.shape[0]}"
            )
        self._check_width("x", x)
        self._check_width("y", y)
        self.x.append(x)
        self.y.append(y)

    def _samples(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Both samples of this rank, and the ``group=`` keyword when synced across ranks."""
        group = self._group()
        return self._cat(self.x), self._cat(self.y), ({"group": group} if group is not None else {})


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The rows' bit patterns (an integer view): "the same embedding" is bitwise equality, NaN included."""
    return x.contiguous().view({8: torch.int64, 4: torch.int32, 2: torch.int16}[x.element_size()])


def _conflict_error(name: str, ids: Sequence[int]) -> ValueError:
    shown = ", ".join(str(i) for i in list(ids)[:5]) + (", …" if len(ids) > 5 else "")
    return ValueError(
        f"{name}: {len(ids)} image ids were seen with different embeddings (ids {shown}); an id must stand for one "
        "image (pass distinct ids for distinct images)"
    )


def _rows_at(blocks: Sequence[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of the concatenation of ``blocks``, without concatenating them."""
    out = blocks[0].new_empty((index.shape[0], blocks[0].shape[1]))
    base = 0
    for block in blocks:
        here = (index >= base) & (index < base + block.shape[0])
        out[here] = block[index[here] - base]
        base += block.shape[0]
    return out


def _unique_images(
    x: torch.Tensor | Sequence[torch.Tensor], ids: torch.Tensor | Sequence[torch.Tensor], name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per id, ordered by ascending id; every other row with that id must be bitwise equal to it.

    ``x``, ``ids``: a batch, or the lists of batches (compared batch by batch: no copy of them all)."""
    blocks, id_blocks = parts(x), parts(ids)
    all_ids = torch.cat(id_blocks)
    unique, inverse = torch.unique(all_ids, sorted=True, return_inverse=True)
    first = torch.full((unique.shape[0],), all_ids.shape[0], dtype=torch.int64, device=all_ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(all_ids.shape[0], device=all_ids.device), reduce="amin")
    kept = _rows_at(blocks, first)
    conflicts: list[int] = []
    base = 0
    for block, block_ids in zip(blocks, id_blocks, strict=True):
        differs = (_bits(block) != _bits(kept)[inverse[base : base + block.shape[0]]]).any(1)
        conflicts += block_ids[differs].tolist()
        base += block.shape[0]
    if conflicts:
        raise _conflict_error(name, sorted(set(conflicts)))
    return kept, unique


def _deduplicate_across(
    x: torch.Tensor, ids: torch.Tensor, d: int, group: Any, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's part of the global deduplicated images, and all the global ids (ascending).

    ``x``, ``ids``: this rank's images, one per id, ascending. The global images are the distinct ids of all
    ranks in ascending order; rank r gets the r-th of W near-equal contiguous ranges of them (as rows of the
    sharded retrieval, whose global image order is then the single-process order). An id held by several
    ranks is sent by the lowest of them; the others compare their row with it bitwise as it passes by.
    """
    rank, world = collectives.group_rank_world(group)
    if world == 1:
        return x, ids  # one process: the images are already its rows, by ascending id
    counts = collectives.gather_objects(ids.shape[0], group)
    all_ids = collectives.gather_rows(ids, counts, group)
    holder = torch.repeat_interleave(torch.arange(world, device=ids.device), torch.tensor(counts, device=ids.device))
    unique, inverse = torch.unique(all_ids, sorted=True, return_inverse=True)
    owner = torch.full((unique.shape[0],), world, dtype=torch.int64, device=ids.device)
    owner.scatter_reduce_(0, inverse, holder, reduce="amin")
    n = unique.shape[0]
    lo, hi = rank * n // world, (rank + 1) * n // world
    mine = owner[torch.searchsorted(unique, ids)] == rank
    sent_x, sent_ids = x[mine], ids[mine]
    copies_x, copies_ids = x[~mine], ids[~mine]
    out = x.new_empty((hi - lo, d))
    sent = collectives.gather_objects(sent_ids.shape[0], group)
    conflicts: list[int] = []
    for _, _, (xb, ib) in collectives.global_blocks((sent_x, sent_ids), sent, MOVE_BLOCK, group):
        position = torch.searchsorted(unique, ib)
        here = (position >= lo) & (position < hi)
        out[position[here] - lo] = xb[here]
        order = torch.argsort(ib)
        at = torch.searchsorted(ib[order], copies_ids).clamp_(max=max(ib.shape[0] - 1, 0))
        match = ib[order][at] == copies_ids if ib.shape[0] else torch.zeros_like(copies_ids, dtype=torch.bool)
        theirs = xb[order[at[match]]]
        differs = (_bits(theirs) != _bits(copies_x[match])).any(1)
        conflicts += copies_ids[match][differs].tolist()
    found = agree(lambda: sorted(conflicts), group)
    everywhere = sorted({i for part in found for i in part})
    if everywhere:
        raise _conflict_error(name, everywhere)
    return out, unique


# Images moved per broadcast while they are regrouped by id.
MOVE_BLOCK = 4096


class Retrieval(_RowMetric):
    """Streaming image↔text retrieval (:func:`torchspectral.retrieval`): R@K both ways, rSum, median/mean rank.

    ``update(x, y)``: row k of x is an image and row k of y its caption (one caption per image).
    ``update(x, y, image_ids)``: several captions per image — row k of y is a caption, row k of x the embedding
    of its image and ``image_ids[k]`` (an integer) that image's id. Images are **deduplicated by id** across
    batches and ranks: an id stands for one image however often (and on however many ranks) it is seen, and
    the same id with an embedding that is not bitwise equal is an error. The images are then ordered by
    ascending id (``i2t_ranks`` follows that order); captions keep their order (rank order, then update
    order). Either every update of every rank gives ids, or none does. Each image is stored once per batch
    it appears in.

    ``compute()`` → dict of float64 scalars (``i2t_r{K}``, ``t2i_r{K}`` as fractions, ``rsum``, median and
    mean ranks), equal to :func:`torchspectral.retrieval` on the deduplicated images and all captions;
    :meth:`result` gives the full :class:`~torchspectral.RetrievalResult` with the ranks.

    Example:
        >>> import torch
        >>> from torchspectral.metrics import Retrieval
        >>> metric = Retrieval(ks=(1,))
        >>> images = torch.eye(3)
        >>> metric.update(images[[0, 0]], torch.tensor([[1.0, 0.1, 0.0], [0.5, 0.0, 0.9]]), torch.tensor([7, 7]))
        >>> metric.update(images[[1, 2]], torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.5]]), torch.tensor([8, 9]))
        >>> r = metric.result()
        >>> r.i2t_ranks.tolist(), r.t2i_ranks.tolist()
        ([0, 0, 1], [0, 1, 0, 1])
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 10), ties: str = "optimistic", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ks, self.ties = tuple(ks), ties
        # Recall at any K has the range and direction of the registry's R@1; the ranks and rSum their own entries.
        recalls = {f"{side}_r{k}": f"{side}_r1" for side in ("i2t", "t2i") for k in self.ks}
        ranks = {f"{side}_{kind}_rank": f"{side}_{kind}_rank" for kind in ("median", "mean") for side in ("i2t", "t2i")}
        set_dict_facts(self, {**recalls, "rsum": "rsum", **ranks})
        self.add_state("images", default=[], dist_reduce_fx="cat")
        self.add_state("captions", default=[], dist_reduce_fx="cat")
        self.add_state("image_ids", default=[], dist_reduce_fx="cat")
        self.add_state("caption_ids", default=[], dist_reduce_fx="cat")

    def update(self, x: torch.Tensor, y: torch.Tensor, image_ids: torch.Tensor | Sequence[int] | None = None) -> None:
        name = type(self).__name__
        x, y = _rows(x, "x", name), _rows(y, "y", name)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}.update: x and y must have one row per caption (row k of x is the image of caption k), got "
                f"{x.shape[0]} and {y.shape[0]} rows"
            )
        if self.captions and (image_ids is None) != (not self.caption_ids):
            raise ValueError(
                f"{name}.update: image_ids were given in some updates and not in others; give them always or never"
            )
        self._check_width("images", x)
        self._check_width("captions", y)
        if image_ids is not None:
            ids = torch.as_tensor(image_ids, device=x.device)
            if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
                raise TypeError(f"{name}.update: image_ids must be integers, got dtype {ids.dtype}")
            if ids.shape != (x.shape[0],):
                raise ValueError(f"{name}.update: image_ids must have shape ({x.shape[0]},), got {tuple(ids.shape)}")
            ids = ids.long()
            self.caption_ids.append(ids)
            x, ids = _unique_images(x, ids, name)  # the batch's images once each
            self.image_ids.append(ids)
        self.images.append(x)
        self.captions.append(y)

    def compute(self) -> dict[str, torch.Tensor]:
        result = self._result()
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in result.as_dict().items()}

    def result(self) -> RetrievalResult:
        """The full :class:`~torchspectral.RetrievalResult` (ranks included) of the rows seen: global across the
        ranks under torch.distributed (a collective, like ``compute``; ``sync_on_compute=False``: this rank's)."""
        if self._is_synced:
            return self._result()
        with self.sync_context(should_sync=self._to_sync, should_unsync=self._should_unsync):
            return self._result()

    def _result(self) -> RetrievalResult:
        # Through the sharded engine in one process too (group=None): the stored batches are read tile by tile,
        # never concatenated or copied whole, and the ranks are bitwise those of ts.retrieval on the concatenation.
        name = type(self).__name__
        group = self._group()
        with_ids = bool(self.caption_ids)

        def local() -> tuple | None:
            if not self.captions:
                return None
            return ("ids" if with_ids else "rows", self.images[0].shape[1], str(self.images[0].dtype))

        facts = [f for f in agree(local, group) if f is not None]
        if not facts:
            raise ValueError(f"{name}.compute: update was never called" + (" on any rank" if group else ""))
        if len({f[0] for f in facts}) > 1:
            raise ValueError(
                f"{name}.compute: some ranks updated with image_ids and others without; give image_ids on every "
                "rank or on none"
            )
        if len({f[1:] for f in facts}) > 1:
            raise ValueError(
                f"{name}.compute: the ranks hold images of different widths or dtypes "
                f"({sorted({f[1:] for f in facts})})"
            )
        if facts[0][0] == "rows":
            return retrieval_of_shards(self.images, self.captions, None, self.ks, self.ties, group)
        d, dtype = facts[0][1], getattr(torch, facts[0][2].removeprefix("torch."))
        if with_ids:
            x, ids = _unique_images(self.images, self.image_ids, name)
            caption_ids = torch.cat(self.caption_ids)
        else:  # a rank that saw no batch
            x = torch.empty(0, d, dtype=dtype, device=self.device)
            ids = caption_ids = torch.empty(0, dtype=torch.int64, device=self.device)
        x_mine, all_ids = _deduplicate_across(x, ids, d, group, name)
        c = torch.searchsorted(all_ids, caption_ids)
        return retrieval_of_shards(x_mine, self.captions, c, self.ks, self.ties, group)


class MMD(_TwoSamples):
    """Streaming squared RBF MMD (:func:`torchspectral.mmd`) between the rows of x and of y seen so far.

    ``update(x, y)`` appends the batch's rows of each sample (x and y batches may differ in size; either may be
    empty). ``compute()`` → float64 scalar, equal to ``ts.mmd`` on the concatenated samples (same median
    bandwidth whatever the sharding).

    Example:
        >>> import torch
        >>> from torchspectral.metrics import MMD
        >>> g = torch.Generator().manual_seed(0)
        >>> metric = MMD(sigma=3.0)
        >>> for _ in range(3):
        ...     metric.update(torch.randn(100, 8, generator=g), torch.randn(80, 8, generator=g) + 1.0)
        >>> bool(metric.compute() > 0.01)
        True
    """

    higher_is_better, plot_lower_bound, plot_upper_bound = class_facts("mmd")

    def __init__(
        self,
        sigma: float | Sequence[float] | str = "median",
        estimator: str = "unbiased",
        scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sigma, self.estimator, self.scale = sigma, estimator, scale
        self.metric_info = METRICS["mmd"]

    def compute(self) -> torch.Tensor:
        x, y, kwargs = self._samples()
        return mmd(x, y, sigma=self.sigma, estimator=self.estimator, scale=self.scale, **kwargs)


class KernelCKA(_TwoSamples):
    """Streaming RBF-kernel CKA, biased or unbiased (:func:`torchspectral.cka` with ``kernel="rbf"``), over the
    paired rows seen so far (the linear one streams as moments: :class:`~torchspectral.metrics.CKA`).

    ``update(x, y)``: paired batches (B, d_x), (B, d_y). ``compute()`` → float64 scalar, equal to
    ``ts.cka(x, y, kernel="rbf", ...)`` on the concatenated pairs (same bandwidths whatever the sharding).

    Example:
        >>> import torch
        >>> from torchspectral.metrics import KernelCKA
        >>> x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
        >>> metric = KernelCKA()
        >>> for batch in x.split(100):
        ...     metric.update(batch, 2 * batch + 1)
        >>> round(float(metric.compute()), 6)
        1.0
    """

    higher_is_better, plot_lower_bound, plot_upper_bound = class_facts("cka_rbf", "cka_rbf_unbiased")
    paired = True

    def __init__(self, unbiased: bool = False, sigma: float | None = None, threshold: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.unbiased, self.sigma, self.threshold = unbiased, sigma, threshold
        self.metric_info = METRICS["cka_rbf_unbiased" if unbiased else "cka_rbf"]

    def compute(self) -> torch.Tensor:
        x, y, kwargs = self._samples()
        return cka(x, y, kernel="rbf", unbiased=self.unbiased, sigma=self.sigma, threshold=self.threshold, **kwargs)


class NeighbourAlignment(_TwoSamples):
    """Streaming mutual kNN, cycle kNN and CKNNA (:func:`torchspectral.neighbourhood_alignment`) over the paired
    rows seen so far: ``compute()`` → ``{"mutual_knn", "cycle_knn", "cknna"}`` (float64 scalars).

    Neighbourhoods need every row, so under torch.distributed ``compute`` gathers every rank's rows (rank order,
    then update order) to every rank — O(n·d) memory per rank, unlike the tiled metrics above — and returns the
    value of the concatenated rows, equal to one process.

    Example:
        >>> import torch
        >>> from torchspectral.metrics import NeighbourAlignment
        >>> x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
        >>> metric = NeighbourAlignment(k=10)
        >>> for batch in x.split(100):
        ...     metric.update(batch, 2 * batch)
        >>> float(metric.compute()["mutual_knn"])
        1.0
    """

    paired = True

    def __init__(self, k: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"NeighbourAlignment: k must be an integer ≥ 2, got {k!r}")
        self.k = k

    def compute(self) -> dict[str, torch.Tensor]:
        x, y, kwargs = self._samples()
        group = kwargs.get("group")
        if group is not None:
            x, y = self._gathered(x, "x", group), self._gathered(y, "y", group)
        return neighbourhood_alignment(x, y, self.k)

    def _gathered(self, rows: torch.Tensor, name: str, group: Any) -> torch.Tensor:
        """Every rank's rows, in rank order, on every rank (a rank without rows contributes none)."""
        held = rows.shape[0] > 0
        facts = collectives.gather_objects(
            (rows.shape[0], rows.shape[1] if held else None, str(rows.dtype) if held else None), group
        )
        widths = {f[1] for f in facts if f[1] is not None}
        dtypes = {f[2] for f in facts if f[2] is not None}
        if len(widths) > 1 or len(dtypes) > 1:
            raise ValueError(
                f"NeighbourAlignment: the ranks hold {name} of different widths or dtypes: "
                f"{[(f[1], f[2]) for f in facts]}"
            )
        if not widths:
            return rows
        if not held:
            dtype = getattr(torch, dtypes.pop().removeprefix("torch."))
            rows = torch.zeros(0, widths.pop(), dtype=dtype, device=self.device)
        return collectives.gather_rows(rows, [f[0] for f in facts], group)
