"""`WeightedRows`: the statistics of weighted rows (the bootstrap's resamples) without re-reading the data."""

from __future__ import annotations

import torch

from torchspectral.stats.accumulator import MomentStatistics
from torchspectral.validation import compute_dtype


class WeightedRows:
    """Per-row quantities computed once, from which the statistics of any weighting of the rows follow by weighted
    sums — a bootstrap resample is the weighting by its multiplicities.

    ``kind`` is the class of the statistics returned (:class:`torchspectral.Moments` gives them their metrics).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, kind: type[MomentStatistics] = MomentStatistics) -> None:
        m = kind.from_data(x, y, metric="bootstrap")
        cdt = compute_dtype(x, y)
        self.d_x, self.d_y, self.n = x.shape[1], y.shape[1], x.shape[0]
        self.shift_x, self.shift_y = m.mean_x, m.mean_y
        self.xc = x.to(cdt) - self.shift_x.to(cdt)
        self.yc = y.to(cdt) - self.shift_y.to(cdt)
        self.a = (torch.linalg.vector_norm(self.xc, dim=1) ** 2).double()
        self.b = (torch.linalg.vector_norm(self.yc, dim=1) ** 2).double()
        norm_x, norm_y = torch.linalg.vector_norm(x.to(cdt), dim=1), torch.linalg.vector_norm(y.to(cdt), dim=1)
        self.zero_x, self.zero_y = (norm_x == 0).double(), (norm_y == 0).double()
        self.x_hat = x.to(cdt) / torch.where(norm_x > 0, norm_x, 1.0)[:, None]
        self.y_hat = y.to(cdt) / torch.where(norm_y > 0, norm_y, 1.0)[:, None]
        if self.d_x == self.d_y:
            self.cos = (self.x_hat * self.y_hat).sum(1).double()
            self.l2i = torch.linalg.vector_norm(self.x_hat - self.y_hat, dim=1).double()
        else:
            self.cos = self.l2i = torch.zeros(self.n, dtype=torch.float64, device=x.device)
        self.point = m

    def moments(self, weights: torch.Tensor) -> MomentStatistics:
        """The statistics (of class ``kind``) of the resample with these multiplicities (float64, n, summing to n)."""
        drawn = torch.nonzero(weights).squeeze(1)
        pick = lambda t: torch.index_select(t, 0, drawn)  # noqa: E731  (faster than t[drawn] on CPU)
        w = pick(weights)
        xc, yc = pick(self.xc), pick(self.yc)
        wc = w.to(xc.dtype)
        a, b = pick(self.a), pick(self.b)
        xw, yw = xc * wc[:, None], yc * wc[:, None]
        sums = {
            "sum_x": (xc.T @ wc).double(),
            "sum_y": (yc.T @ wc).double(),
            "sum_xx": (xc.T @ xw).double(),
            "sum_xy": (xw.T @ yc).double(),
            "sum_yy": (yc.T @ yw).double(),
            "sum_a": w @ a,
            "sum_b": w @ b,
            "sum_ab": w @ (a * b),
            "sum_aa": w @ (a * a),
            "sum_bb": w @ (b * b),
            "sum_a_x": (xw.T @ a.to(xw.dtype)).double(),
            "sum_a_y": (yw.T @ a.to(yw.dtype)).double(),
            "sum_b_x": (xw.T @ b.to(xw.dtype)).double(),
            "sum_b_y": (yw.T @ b.to(yw.dtype)).double(),
            # Full-length products here: a GEMV over all rows is cheaper than gathering the drawn ones.
            "sum_xhat": (self.x_hat.T @ weights.to(self.x_hat.dtype)).double(),
            "sum_yhat": (self.y_hat.T @ weights.to(self.y_hat.dtype)).double(),
            "sum_dot": weights @ self.cos,
            "sum_l2i": weights @ self.l2i,
            "zero_norm_x": weights @ self.zero_x,
            "zero_norm_y": weights @ self.zero_y,
            "pairs_f32": weights.sum() if self.xc.dtype == torch.float32 else weights.new_zeros(()),
        }
        return type(self.point)(
            d_x=self.d_x, d_y=self.d_y, device=self.xc.device, n=self.n,
            shift_x=self.shift_x, shift_y=self.shift_y, sums=sums,
        )  # fmt: skip
