"""The one builder of the sufficient statistics: per-row quantities of paired rows, and their (weighted) sums.

Every statistic the accumulator holds is a sum over rows of a per-row quantity — the centred rows and their outer
products, squared norms ``a``, ``b`` and their products, normalised rows, true-pair cosines, pair distances. So a
batch's statistics (``MomentStatistics._of_batch``, weights all one) and a bootstrap resample's (weights = its
multiplicities, :class:`~torchspectral.stats.weighted.WeightedRows`) come from the same two steps here: form the
per-row quantities once (:func:`row_quantities`), then sum them with or without weights (:func:`sums_of_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Rows per chunk where a per-pair temporary is needed: about 16 MB of float32 whatever d is.
CHUNK_ELEMENTS = 1 << 22


@dataclass
class RowQuantities:
    """Per-row quantities of n paired rows, in the compute dtype (float32, or float64 for float64 input).

    ``xc``/``yc``: the rows minus ``centre_x``/``centre_y`` (covariance group). ``a``/``b``: their squared norms
    (HSIC group). ``x``/``y``: the rows; ``inv_x``/``inv_y``: 1/‖row‖ (0 for a zero row), ``zero_x``/``zero_y``:
    which rows are zero, ``cos``: ⟨x̂_i, ŷ_i⟩ (cosine group). ``dist``: ‖x̂_i − ŷ_i‖ (l2i group). Quantities of a
    group that was not asked for are None.
    """

    n: int
    d_x: int
    d_y: int
    centre_x: torch.Tensor
    centre_y: torch.Tensor
    # covariance group
    xc: torch.Tensor | None = None
    yc: torch.Tensor | None = None
    # hsic group
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    # cosine group
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    inv_x: torch.Tensor | None = None
    inv_y: torch.Tensor | None = None
    zero_x: torch.Tensor | None = None
    zero_y: torch.Tensor | None = None
    cos: torch.Tensor | None = None
    # l2i group
    dist: torch.Tensor | None = None


def row_norms(t: torch.Tensor) -> torch.Tensor:
    """‖row‖ of each row, 0 only for a row of zeros: a row whose squares underflow (every |value| below about
    1e-154 in float64, 1e-19 in float32) is measured after dividing it by its largest |value|, instead of being
    taken for a zero row. No host synchronisation: both forms are computed and the right one kept per row."""
    norm = torch.linalg.vector_norm(t, dim=1)
    peak = t.abs().amax(dim=1) if t.shape[1] else torch.zeros_like(norm)
    underflowed = (norm == 0) & (peak > 0)
    rescaled = torch.linalg.vector_norm(t / torch.where(peak > 0, peak, 1.0)[:, None], dim=1) * peak
    return torch.where(underflowed, rescaled, norm)


def _pair_distances(x: torch.Tensor, inv_x: torch.Tensor, y: torch.Tensor, inv_y: torch.Tensor) -> torch.Tensor:
    """‖x̂_i − ŷ_i‖ per row, in row chunks (bounded memory).

    The difference is formed explicitly because sqrt(2 − 2cos) loses all precision for near pairs.
    """
    rows = max(1, CHUNK_ELEMENTS // x.shape[1])
    chunks = []
    for start in range(0, x.shape[0], rows):
        end = start + rows
        # In place on a fresh temporary that autograd does not save: one allocation fewer per chunk.
        diff = (x[start:end] * inv_x[start:end, None]).sub_(y[start:end] * inv_y[start:end, None])
        chunks.append(torch.linalg.vector_norm(diff, dim=1))
    return torch.cat(chunks)


def row_quantities(
    x: torch.Tensor, y: torch.Tensor, groups: tuple[str, ...], centre_x: torch.Tensor, centre_y: torch.Tensor
) -> RowQuantities:
    """The per-row quantities the statistics ``groups`` need, of rows already in the compute dtype.

    ``groups`` must be resolved (:func:`~torchspectral.stats.accumulator.resolve_groups`): "hsic" with
    "covariance", "l2i" with "cosine".
    """
    n, dx = x.shape
    dy = y.shape[1]
    q = RowQuantities(n=n, d_x=dx, d_y=dy, centre_x=centre_x, centre_y=centre_y)
    if "cosine" in groups:
        # Normalised rows (shift-free). Zero rows are counted; the metrics that need x̂ refuse them.
        norm_x, norm_y = row_norms(x), row_norms(y)
        ok_x, ok_y = norm_x > 0, norm_y > 0
        q.x, q.y = x, y
        q.inv_x = ok_x / torch.where(ok_x, norm_x, torch.ones_like(norm_x))
        q.inv_y = ok_y / torch.where(ok_y, norm_y, torch.ones_like(norm_y))
        q.zero_x, q.zero_y = ~ok_x, ~ok_y
        if dx == dy:
            q.cos = torch.einsum("ij,ij->i", x, y) * q.inv_x * q.inv_y
            if "l2i" in groups:
                q.dist = _pair_distances(x, q.inv_x, y, q.inv_y)
    if "covariance" in groups:
        q.xc, q.yc = x - centre_x, y - centre_y
    if "hsic" in groups:
        q.a = torch.linalg.vector_norm(q.xc, dim=1) ** 2  # one fused pass; several times faster than a row-wise einsum
        q.b = torch.linalg.vector_norm(q.yc, dim=1) ** 2
    return q


def sums_of_rows(q: RowQuantities, groups: tuple[str, ...], weights: torch.Tensor | None = None) -> dict:
    """The statistics (float64, about ``q``'s centres) of the rows, each counted ``weights[i]`` times (default 1).

    With weights, the shifted sums run over the rows drawn at least once (a bootstrap resample draws ≈63% of them),
    and the sums over normalised rows over all rows: one GEMV over all rows is cheaper than gathering the drawn ones.
    """
    f64 = {"dtype": torch.float64, "device": q.centre_x.device}
    zero = torch.zeros((), **f64)
    cdt = q.x.dtype if q.x is not None else q.xc.dtype
    count = float(q.n) if weights is None else weights.sum()
    sums: dict[str, torch.Tensor] = {
        "pairs_f32": torch.as_tensor(count if cdt == torch.float32 else 0.0, **f64).clone(),
    }

    def total(values: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """Σ_i w_i values_i (float64) for per-row scalars."""
        values = values.to(torch.float64)
        return values.sum() if w is None else w @ values

    if "cosine" in groups:
        wc = None if weights is None else weights.to(cdt)
        scale_x = q.inv_x if wc is None else q.inv_x * wc
        scale_y = q.inv_y if wc is None else q.inv_y * wc
        sums["sum_xhat"] = (q.x.T @ scale_x).double()
        sums["sum_yhat"] = (q.y.T @ scale_y).double()
        sums["zero_norm_x"] = total(q.zero_x, weights)
        sums["zero_norm_y"] = total(q.zero_y, weights)
        sums["sum_dot"] = total(q.cos, weights) if q.cos is not None else zero
        if "l2i" in groups:
            sums["sum_l2i"] = total(q.dist, weights) if q.dist is not None else zero

    if "covariance" in groups:
        xc, yc, a, b, w = q.xc, q.yc, q.a, q.b, weights
        if weights is not None:
            drawn = torch.nonzero(weights).squeeze(1)
            # index_select: faster than t[drawn] on CPU.
            pick = lambda t: None if t is None else torch.index_select(t, 0, drawn)  # noqa: E731
            xc, yc, a, b, w = pick(xc), pick(yc), pick(a), pick(b), pick(weights)
        wc = None if w is None else w.to(xc.dtype)
        # The weighted copies of the rows: Σ w_i u_i v_iᵀ = uᵀ (w ∘ v).
        xw = xc if wc is None else xc * wc[:, None]
        yw = yc if wc is None else yc * wc[:, None]
        sums["sum_x"] = (xc.sum(0) if wc is None else xc.T @ wc).double()
        sums["sum_y"] = (yc.sum(0) if wc is None else yc.T @ wc).double()
        sums["sum_xx"] = (xc.T @ xw).double()
        sums["sum_xy"] = (xw.T @ yc).double()
        sums["sum_yy"] = (yc.T @ yw).double()
        if "hsic" in groups:
            a64, b64 = a.double(), b.double()
            sums["sum_a"], sums["sum_b"] = total(a64, w), total(b64, w)
            sums["sum_ab"] = total(a64 * b64, w)
            sums["sum_aa"], sums["sum_bb"] = total(a64 * a64, w), total(b64 * b64, w)
            sums["sum_a_x"], sums["sum_a_y"] = (xw.T @ a).double(), (yw.T @ a).double()
            sums["sum_b_x"], sums["sum_b_y"] = (xw.T @ b).double(), (yw.T @ b).double()
    return sums
