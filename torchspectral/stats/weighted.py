"""`WeightedRows`: the statistics of weighted rows (the bootstrap's resamples) without re-reading the data."""

from __future__ import annotations

import torch

from torchspectral.stats.accumulator import ALL_GROUPS, MomentStatistics
from torchspectral.stats.rows import row_quantities, sums_of_rows
from torchspectral.validation import compute_dtype


class WeightedRows:
    """Per-row quantities formed once, from which the statistics of any weighting of the rows follow by weighted
    sums (:func:`~torchspectral.stats.rows.sums_of_rows`, the builder ``Moments`` uses too) — a bootstrap resample
    is the weighting by its multiplicities.

    ``kind`` is the class of the statistics returned (:class:`torchspectral.Moments` gives them their metrics).
    The rows are centred once on their mean; ``point`` is the statistics of the rows themselves (weights all one).
    The engines of :mod:`torchspectral.uncertainty` read the per-row quantities directly: ``xc``, ``yc`` (centred
    rows), ``a``, ``b`` (their squared norms, float64), ``x_hat``, ``y_hat``, ``cos``, ``l2i`` (float64).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, kind: type[MomentStatistics] = MomentStatistics) -> None:
        cdt = compute_dtype(x, y)
        x, y = x.to(cdt), y.to(cdt)
        self.rows = row_quantities(x, y, ALL_GROUPS, x.mean(0), y.mean(0))
        self.kind = kind
        self.d_x, self.d_y, self.n = x.shape[1], y.shape[1], x.shape[0]
        self.point = self._statistics(None)
        f64 = {"dtype": torch.float64, "device": x.device}
        r = self.rows
        self.xc, self.yc = r.xc, r.yc
        self.a, self.b = r.a.double(), r.b.double()
        self.x_hat, self.y_hat = x * r.inv_x[:, None], y * r.inv_y[:, None]
        self.cos = r.cos.double() if r.cos is not None else torch.zeros(self.n, **f64)
        self.l2i = r.dist.double() if r.dist is not None else torch.zeros(self.n, **f64)

    def _statistics(self, weights: torch.Tensor | None) -> MomentStatistics:
        r = self.rows
        return self.kind(
            d_x=self.d_x, d_y=self.d_y, device=r.centre_x.device, n=self.n,
            shift_x=r.centre_x.double(), shift_y=r.centre_y.double(), sums=sums_of_rows(r, ALL_GROUPS, weights),
        )  # fmt: skip

    def mean_variances(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tr Σ / d`` of x and of y for each resample (float64, (B,)), from its multiplicities ``weights``
        (B, n), each row summing to n: what SAS's scale-free ε is formed from, without forming Σ."""
        w = weights.double()
        out = []
        for centred, squares, d in ((self.xc, self.a, self.d_x), (self.yc, self.b, self.d_y)):
            mean = (weights.to(centred.dtype) @ centred).double() / self.n  # the resample's mean, minus the centre
            out.append(((w @ squares) / self.n - (mean * mean).sum(1)) / d)
        return out[0], out[1]

    def moments(self, weights: torch.Tensor) -> MomentStatistics:
        """The statistics (of class ``kind``) of the resample with these multiplicities (float64, n, summing to n)."""
        return self._statistics(weights)
