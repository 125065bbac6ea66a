"""Streaming torchmetrics ``Metric`` classes whose state is the Moments accumulator.

The whole state is one float64 vector (``Moments.to_flat``). Its reduction, used by torchmetrics both
to sync ranks and to fold a batch into the running state, is :func:`~torchspectral.moments.merge_flat`:
an exact merge that moves each part to a common shift before adding, so a metric streamed over any
batches on any number of ranks equals the one-shot functional value. (A plain ``"sum"`` reduction
would need every rank to keep its sums about the same shift.)
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torchmetrics import Metric

from torchspectral.distributed import require_same_across_ranks
from torchspectral.functional.procrustes import KINDS as PROCRUSTES_KINDS
from torchspectral.metrics.registry_facts import class_facts, set_dict_facts
from torchspectral.moments import Moments, merge_flat
from torchspectral.registry import METRICS, MOMENT_METRICS, SAME_DIM_METRICS
from torchspectral.validation import ValidatesArgs


class MomentMetric(ValidatesArgs, Metric):
    """Base class: accumulates ``Moments`` of paired embeddings (B, d_x), (B, d_y) over ``update`` calls.

    ``validate_args``: ``"first"`` (default) checks the values of the first batch (finite, within range; a host
    synchronisation each on CUDA), True every batch, False none. ``compute`` always refuses a state that is not
    finite — a later batch held NaN or Inf — and says so, so nothing unchecked comes out as a silent NaN.

    ``metric_info``: the registry entry (:class:`~torchspectral.registry.MetricInfo`) of the output, or of each
    output keyed like ``compute()``'s dict; ``higher_is_better`` and the plot bounds come from it.
    """

    is_differentiable = True
    higher_is_better: bool | None = None
    full_state_update = False

    def __init__(self, d_x: int, d_y: int | None = None, *, validate_args: bool | str = "first", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._set_validate_args(validate_args, type(self).__name__)
        d_y = d_x if d_y is None else d_y
        if not (isinstance(d_x, int) and isinstance(d_y, int) and d_x > 0 and d_y > 0):
            raise ValueError(f"{type(self).__name__}: d_x and d_y must be positive integers, got {d_x}, {d_y}")
        self.d_x, self.d_y = d_x, d_y
        merge = partial(merge_flat, d_x=d_x, d_y=d_y)
        self.add_state("moments", default=Moments(d_x, d_y).to_flat(), dist_reduce_fx=merge)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with self.step_checks():
            batch = Moments.from_data(x, y, metric=type(self).__name__)
        if (batch.d_x, batch.d_y) != (self.d_x, self.d_y):
            raise ValueError(
                f"{type(self).__name__}: built for (d_x, d_y) = ({self.d_x}, {self.d_y}), "
                f"got ({batch.d_x}, {batch.d_y})"
            )
        # In place: the batch moves to the state's shift and its sums are added to the flat state, which is never
        # rebuilt (the state is (1 + d_x + d_y + sums) float64 values: 4.7 MB at d = 768).
        # Nothing held yet: take the batch's shift, so nothing needs moving. Decided on the device (torch.where), not
        # by reading the count on the host.
        shifts = slice(1, 1 + self.d_x + self.d_y)
        shift = torch.where(self.moments[0] == 0, torch.cat([batch.shift_x, batch.shift_y]), self.moments[shifts])
        self.moments[shifts] = shift
        increment = batch.reshifted(shift[: self.d_x], shift[self.d_x :]).to_flat()
        increment[1 : 1 + self.d_x + self.d_y] = 0.0  # the shift is the state's, not a sum
        self.moments += increment  # increment[0] is the batch's pair count

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        # torchmetrics gathers every rank's state with one all_gather: states of different sizes (a metric built
        # with other widths on another rank) would fail inside it with a message that names no width.
        group = process_group if process_group is not None else self.process_group
        require_same_across_ranks(type(self).__name__, "(d_x, d_y)", (self.d_x, self.d_y), self.moments.device, group)
        if dist_sync_fn is None:
            super()._sync_dist(process_group=process_group)
        else:
            super()._sync_dist(dist_sync_fn, process_group=process_group)

    def accumulated(self) -> Moments:
        """The Moments held so far (on this rank, or synced after ``compute``)."""
        return Moments.from_flat(self.moments, self.d_x, self.d_y)

    def _finite_statistics(self) -> Moments:
        """The Moments to compute from, refused if a batch whose values were not checked held NaN or Inf."""
        if not bool(torch.isfinite(self.moments).all()):
            raise ValueError(
                f"{type(self).__name__}: the accumulated statistics are not finite: a batch passed to update held "
                "NaN or Inf (only the first batch is checked with validate_args='first'; pass validate_args=True "
                "to find which)"
            )
        return self.accumulated()


class SpectralAlignment(MomentMetric):
    """Streaming SAS: ``compute()`` → dict with ``x_to_y``, ``y_to_x``, ``symmetric``, ``imbalance``.

    Example:
        >>> import torch
        >>> from torchspectral.metrics import SpectralAlignment
        >>> metric = SpectralAlignment(d=16, q=0.25)
        >>> x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
        >>> for batch in x.split(64):
        ...     metric.update(batch, batch)
        >>> round(float(metric.compute()["symmetric"]), 6)
        1.0
    """

    def __init__(self, d: int, q: float = 0.1, **kwargs: Any) -> None:
        super().__init__(d, d, **kwargs)
        self.q = q
        set_dict_facts(self, {key: f"sas_{key}" for key in ("x_to_y", "y_to_x", "symmetric", "imbalance")})

    def compute(self) -> dict[str, torch.Tensor]:
        r = self._finite_statistics().spectral_alignment(q=self.q)
        return {"x_to_y": r.x_to_y, "y_to_x": r.y_to_x, "symmetric": r.symmetric, "imbalance": r.imbalance}


class CKA(MomentMetric):
    """Streaming linear CKA (biased or unbiased); works for d_x ≠ d_y."""

    higher_is_better, plot_lower_bound, plot_upper_bound = class_facts("cka_linear", "cka_linear_unbiased")

    def __init__(self, d_x: int, d_y: int | None = None, unbiased: bool = False, **kwargs: Any) -> None:
        super().__init__(d_x, d_y, **kwargs)
        self.unbiased = unbiased
        self.metric_info = METRICS["cka_linear_unbiased" if unbiased else "cka_linear"]

    def compute(self) -> torch.Tensor:
        return self._finite_statistics().cka(unbiased=self.unbiased)


class Procrustes(MomentMetric):
    """Streaming orthogonal Procrustes similarity, distance (2 − 2ρ) or angle (arccos ρ); works for d_x ≠ d_y
    (:func:`torchspectral.procrustes`)."""

    def __init__(self, d_x: int, d_y: int | None = None, kind: str = "similarity", **kwargs: Any) -> None:
        if kind not in PROCRUSTES_KINDS:
            raise ValueError(f"Procrustes: kind must be one of {PROCRUSTES_KINDS}, got {kind!r}")
        super().__init__(d_x, d_y, **kwargs)
        self.kind = kind

    def compute(self) -> torch.Tensor:
        return self._finite_statistics().procrustes(kind=self.kind)


class ModalityGap(MomentMetric):
    """Streaming gap family: ``compute()`` → dict with ``modality_gap``, ``l2i``, ``true_pair_cosine``,
    ``cosine_gap``, ``rmg``."""

    def __init__(self, d: int, **kwargs: Any) -> None:
        super().__init__(d, d, **kwargs)
        set_dict_facts(self, {name: name for name in ("modality_gap", "l2i", "true_pair_cosine", "cosine_gap", "rmg")})

    def compute(self) -> dict[str, torch.Tensor]:
        m = self._finite_statistics()
        return {
            "modality_gap": m.modality_gap(),
            "l2i": m.l2i(),
            "true_pair_cosine": m.true_pair_cosine(),
            "cosine_gap": m.cosine_gap(),
            "rmg": m.rmg(),
        }


class AlignmentMetrics(MomentMetric):
    """Every moment metric of ``alignment_report`` (``preset="default"`` or ``"paper"``), streamed."""

    def __init__(self, d_x: int, d_y: int | None = None, preset: str = "default", **kwargs: Any) -> None:
        super().__init__(d_x, d_y, **kwargs)
        self.preset = preset
        same_dim = self.d_x == self.d_y
        set_dict_facts(self, {name: name for name in MOMENT_METRICS if same_dim or name not in SAME_DIM_METRICS})

    def compute(self) -> dict[str, torch.Tensor]:
        report = self._finite_statistics().report(preset=self.preset)
        return {name: torch.tensor(value, dtype=torch.float64) for name, value in report.items()}
