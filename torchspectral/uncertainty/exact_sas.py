"""Exact SAS bootstrap replicates with only what SAS needs (the fast engine's default for SAS).

SAS of a replicate needs the active eigenpairs of its Σ_x and Σ_y and, for the active modes only, the
quadratic forms ``v_kᵀΣ_xy v_k`` and ``v_kᵀΣ_other v_k``. So per replicate this forms two weighted
Grams over the drawn rows (not the cross block Σ_xy, nor the other sums of a full
:class:`~torchspectral.Moments`), decomposes them (float32 input in float32, since its Grams are float32
GEMMs already; any other input in float64; the decompositions are most of a replicate's cost at d = 768), and gets
the quadratic forms from the projections of the drawn rows onto the active eigenvectors:
``v_kᵀΣ_xy v_k = (Σ_i w_i (xc_i·v_k)(yc_i·v_k) − (s_x·v_k)(s_y·v_k)/n) / n`` with ``s = Σ_i w_i xc_i``.
The replicate values are those of ``engine="moments"`` (which decomposes in float64) up to rounding: to 1e-9 in
float64; in float32 to the eigensolver's rounding, which docs/performance.md#sas-replicate-cost quantifies against the
interval widths.

This is still O(n·d² + d³) per replicate; what it costs against its floor (two Grams and two decompositions)
is measured in ``benchmarks/speed/test_sas_replicate_cost.py`` (docs/performance.md#bootstrap). Every
replicate has its own eigenvectors and we know no exact shortcut; the Rayleigh–Ritz one of
:mod:`torchspectral.uncertainty.ritz` was measured off by about a whole interval width on spectra with a noise bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from torchspectral.spectral import SAS_METRICS, active_masks, sas_epsilon, sas_score, sas_summaries

if TYPE_CHECKING:
    from torchspectral.stats.weighted import WeightedRows as _Rows

# Replicates decomposed together: 2 × EIGH_BATCH × d × d float64 covariances (151 MB at d = 768), plus their
# float32 copies and eigenvectors when the input is float32.
EIGH_BATCH = 16
# float32 input: its replicate Grams are float32 GEMMs, so a float64 eigensolve is exact only for a matrix already
# rounded at float32; a float32 one adds rounding of that order at ≈ 0.6× the cost
# (docs/performance.md#sas-replicate-cost).
FLOAT32_EIGH = True
# Rows projected at once: ≤ 4 × ROW_CHUNK × EIGH_BATCH × |A| values (≈ 160 MB in float32 at |A| = 77).
ROW_CHUNK = 8192


def _covariances(
    centred: torch.Tensor, counts: torch.Tensor, n: int, with_covariance: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Each replicate's weighted sums s (b, d) float64 and, when asked, its covariance about its own mean
    (b, d, d) float64 (the Gram over the drawn rows: the one O(n·d²) step)."""
    sums = (counts.to(centred.dtype) @ centred).double()
    if not with_covariance:
        return None, sums
    covs = []
    for weights, s in zip(counts, sums, strict=True):
        drawn = torch.nonzero(weights).squeeze(1)
        # Σ w_i x_i x_iᵀ as the Gram of the √w-scaled drawn rows: one copy of them, scaled in place.
        rows = torch.index_select(centred, 0, drawn)
        rows.mul_(torch.index_select(weights, 0, drawn).sqrt().to(rows.dtype)[:, None])
        covs.append(((rows.T @ rows).double() - torch.outer(s, s) / n) / n)
    return torch.stack(covs), sums


def _active_spectrum(
    covs: torch.Tensor, q: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each replicate covariance's descending eigenpairs, decomposed in ``dtype`` and returned in float64 with the
    active masks, trimmed to the widest active prefix of the block: values (b, top), vectors (b, d, top)."""
    values, vectors = torch.linalg.eigh(covs.to(dtype))
    values = values.flip(-1).double()
    masks = torch.stack([active_masks(v, q)[0] for v in values])
    top = int(masks.sum(1).max())
    # eigh is ascending: the active eigenvectors are its last `top` columns. Only they are copied (flip copies), so
    # the full (b, d, d) eigenvectors are freed.
    return values[:, :top], vectors[:, :, vectors.shape[-1] - top :].flip(-1).double(), masks[:, :top]


def _scores(
    rows: _Rows,
    anchor: str,
    counts: torch.Tensor,
    spectrum: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    sums: dict[str, torch.Tensor],
    eps: float | torch.Tensor,
) -> torch.Tensor:
    """SAS with `anchor` as the anchor for each replicate of the block (b,), from its active eigenpairs."""
    values, bases, masks = spectrum  # the active modes are a prefix of the descending order
    top = masks.shape[1]
    own, other = (rows.xc, rows.yc) if anchor == "x" else (rows.yc, rows.xc)
    own_sum, other_sum = (sums["x"], sums["y"]) if anchor == "x" else (sums["y"], sums["x"])
    n, b, d = rows.n, counts.shape[0], bases.shape[1]
    # Every replicate's active eigenvectors side by side: the projections of all rows are two GEMMs per block,
    # and a zero count drops a row from the weighted sums below, so no drawn rows are gathered.
    side_by_side = bases.transpose(0, 1).reshape(d, b * top).to(own.dtype)
    w = counts.to(own.dtype)
    cross_sum = torch.zeros(b, top, dtype=torch.float64, device=own.device)  # Σ_i w_bi (xc_i·v_bt)(yc_i·v_bt)
    other_square_sum = torch.zeros_like(cross_sum)
    for r0 in range(0, n, ROW_CHUNK):
        p = (own[r0 : r0 + ROW_CHUNK] @ side_by_side).view(-1, b, top)
        o = (other[r0 : r0 + ROW_CHUNK] @ side_by_side).view(-1, b, top)
        cross_sum += torch.einsum("bn,nbt->bt", w[:, r0 : r0 + ROW_CHUNK], p * o).double()
        other_square_sum += torch.einsum("bn,nbt->bt", w[:, r0 : r0 + ROW_CHUNK], o * o).double()
    mean_p = torch.einsum("bd,bdt->bt", own_sum, bases)
    mean_o = torch.einsum("bd,bdt->bt", other_sum, bases)
    cross = (cross_sum - mean_p * mean_o / n) / n
    other_variance = (other_square_sum - mean_o * mean_o / n) / n
    return sas_score(values, cross, other_variance, eps, masks)[0]


def exact_sas_replicates(
    rows: _Rows, counts: torch.Tensor, names: Sequence[str], q: float, eps: float | None = None
) -> dict[str, torch.Tensor]:
    """The requested SAS replicates (B,) from the counts matrix (B, n), exactly (see the module docstring).

    ``eps``: None forms each replicate's scale-free ε from its own mean variances, as ``ts.sas`` does on the
    resampled rows; a number is an absolute ε."""
    wanted = [name for name in names if name in SAS_METRICS]
    if not wanted:
        return {}
    anchors = [a for a, only in (("x", "sas_y_to_x"), ("y", "sas_x_to_y")) if set(wanted) != {only}]
    centred = {"x": rows.xc, "y": rows.yc}
    eigh_dtype = torch.float32 if FLOAT32_EIGH and rows.xc.dtype == torch.float32 else torch.float64
    parts: dict[str, list[torch.Tensor]] = {anchor: [] for anchor in anchors}
    for start in range(0, counts.shape[0], EIGH_BATCH):
        block = counts[start : start + EIGH_BATCH]
        covs, sums = {}, {}
        for which in ("x", "y"):
            covs[which], sums[which] = _covariances(centred[which], block, rows.n, which in anchors)
        block_eps = eps if eps is not None else sas_epsilon(*rows.mean_variances(block), None)[:, None]
        for anchor in anchors:
            spectrum = _active_spectrum(covs[anchor], q, eigh_dtype)
            parts[anchor].append(_scores(rows, anchor, block, spectrum, sums, block_eps))
    per_anchor = {anchor: torch.cat(values) for anchor, values in parts.items()}
    if len(per_anchor) == 1:  # one direction asked for: the other was never computed
        return {wanted[0]: next(iter(per_anchor.values()))}
    combined = sas_summaries(per_anchor["x"], per_anchor["y"])
    return {name: combined[name] for name in wanted}
