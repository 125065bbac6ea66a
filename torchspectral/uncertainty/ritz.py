"""Approximate SAS bootstrap replicates by Rayleigh–Ritz in a fixed subspace (opt-in: ``bootstrap(..., ritz_rank=k)``).

For anchor X with full-sample eigenvectors V (descending), take the top-k columns V_k and project the
centred rows once: ``Z_a = Xc V_k``, ``Z_o = Yc V_k`` (n×k). A replicate with multiplicities w has the
projected covariances ``V_kᵀ Σ_b V_k = Z_aᵀ diag(w) Z_a / n − m_a m_aᵀ`` (``m_a = Z_aᵀw/n``, its mean in
these coordinates), likewise the symmetric part of ``V_kᵀ Σ_xy,b V_k`` and ``V_kᵀ Σ_y,b V_k``: all B
replicates are one GEMM of the counts with the row-wise products of the projections, O(n·k²) per replicate
instead of O(n·d²). A batched k×k eigh gives Ritz values θ and vectors C; the top |A| Ritz pairs stand
for the replicate's active modes (λ ≈ θ, v ≈ V_k c), and ``a = cᵀ(V_kᵀΣ_xy V_k)c``, ``σ² = cᵀ(V_kᵀΣ_y V_k)c``
give ρ and SAS as in docs/definitions.md#sas. The active set is the top |A| modes, |A| the count for distinct
eigenvalues (77 at d = 768, q = 0.1); with k = d the basis is complete, the Ritz pairs are the exact
eigenpairs and the quantile rule is applied to them as in the exact path.

This is exact only for k = d. For k < d the replicate's eigenvectors are confined to the full sample's
top-k span, which they leave in proportion to the resampling noise over the eigengaps. Small on a spectrum whose
top modes stand well apart; on a noise bulk resampling reshuffles the bulk's top directions, which leave any fixed
k-dimensional span, and the interval endpoints can move by about a whole interval width (measured:
docs/performance.md#ritz, docs/audit.md#sas-intervals). So it is not the default, and its intervals should be
checked against the exact replicates on a few resamples before use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from torchspectral.spectral import (
    SAS_METRICS,
    active_masks,
    eigh_descending,
    sas_epsilon,
    sas_score,
    sas_summaries,
)

if TYPE_CHECKING:
    from torchspectral.stats.weighted import WeightedRows as _Rows

# Rows whose products with the counts are formed together: ROW_CHUNK × 3k(k+1)/2 values (62 MB at k = 100, float32).
ROW_CHUNK = 1024
# Float64 values of the replicates' k×k moments accumulated in one pass over the rows (256 MB): at k = 100 that is
# 738 replicates per pass; a larger k takes more passes.
ACCUMULATOR_ELEMENTS = 1 << 25


def _projected_moments(za: torch.Tensor, zo: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Replicate-centred ``V_kᵀΣ_a V_k``, sym ``V_kᵀΣ_ao V_k``, ``V_kᵀΣ_o V_k``: each (b, k, k) float64."""
    n, k = za.shape
    upper = torch.triu_indices(k, k, device=za.device)
    p = upper.shape[1]
    # Accumulated in the compute precision (float32 sums of ≤ ROW_CHUNK-row partial GEMMs: far below the Ritz error).
    acc = torch.zeros(counts.shape[0], 3 * p, dtype=za.dtype, device=za.device)
    w = counts.to(za.dtype)
    for r0 in range(0, n, ROW_CHUNK):
        a, o = za[r0 : r0 + ROW_CHUNK], zo[r0 : r0 + ROW_CHUNK]
        ai, aj = a.index_select(1, upper[0]), a.index_select(1, upper[1])
        oi, oj = o.index_select(1, upper[0]), o.index_select(1, upper[1])
        products = torch.cat([ai * aj, (ai * oj + oi * aj) / 2, oi * oj], 1)
        acc.addmm_(w[:, r0 : r0 + ROW_CHUNK], products)
    acc = acc.double()
    w64 = counts.double()
    mean_a, mean_o = (w64 @ za.double()) / n, (w64 @ zo.double()) / n

    linear = upper[0] * k + upper[1]
    diagonal = upper[0] == upper[1]

    def symmetric(flat: torch.Tensor) -> torch.Tensor:
        # index_copy of the upper triangle, then add its transpose without the doubled diagonal (cheaper on CPU
        # than two advanced-index writes).
        tri = torch.zeros(flat.shape[0], k * k, dtype=torch.float64, device=flat.device)
        tri.index_copy_(1, linear, flat.masked_fill(diagonal, 0.0))
        tri = tri.view(-1, k, k)
        full = tri + tri.transpose(1, 2)
        full.diagonal(dim1=1, dim2=2).copy_(flat[:, diagonal])
        return full / n

    outer = lambda u, v: u[:, :, None] * v[:, None, :]  # noqa: E731
    aa = symmetric(acc[:, :p]) - outer(mean_a, mean_a)
    ao = symmetric(acc[:, p : 2 * p]) - (outer(mean_a, mean_o) + outer(mean_o, mean_a)) / 2
    oo = symmetric(acc[:, 2 * p :]) - outer(mean_o, mean_o)
    return aa, ao, oo


def _direction(rows: _Rows, anchor: str, counts: torch.Tensor, q: float, rank: int, eps: float | None) -> torch.Tensor:
    """SAS with `anchor` as the anchor for each replicate (b,), by Rayleigh–Ritz in the top-`rank` eigenvectors."""
    d = rows.d_x
    _, vectors = rows.point.spectrum(anchor)
    k = min(rank, d)
    basis = vectors[:, :k].to(rows.xc.dtype)
    own, other = (rows.xc, rows.yc) if anchor == "x" else (rows.yc, rows.xc)
    za, zo = own @ basis, other @ basis
    per_pass = max(1, ACCUMULATOR_ELEMENTS // (3 * k * (k + 1) // 2))
    scores = []
    for start in range(0, counts.shape[0], per_pass):
        block = counts[start : start + per_pass]
        aa, ao, oo = _projected_moments(za, zo, block)
        block_eps = eps if eps is not None else sas_epsilon(*rows.mean_variances(block), None)[:, None]
        theta, ritz = eigh_descending(aa)
        if k == d:  # complete basis: exact eigenpairs, so the quantile rule of the exact path applies
            masks = torch.stack([active_masks(t, q)[0] for t in theta])
        else:  # distinct eigenvalues: the active set is the top |A| modes, |A| fixed by d and q
            top = int(active_masks(torch.arange(d, 0, -1, dtype=torch.float64), q).sum())
            masks = torch.zeros_like(theta, dtype=torch.bool)
            masks[:, :top] = True
        cross = torch.einsum("bki,bkl,bli->bi", ritz, ao, ritz)
        other_variance = torch.einsum("bki,bkl,bli->bi", ritz, oo, ritz)
        scores.append(sas_score(theta, cross, other_variance, block_eps, masks)[0])
    return torch.cat(scores)


def ritz_sas_replicates(
    rows: _Rows, counts: torch.Tensor, names: Sequence[str], q: float, rank: int, eps: float | None = None
) -> dict[str, torch.Tensor]:
    """The requested SAS replicates (B,) from the counts matrix (B, n); see the module docstring."""
    wanted = [name for name in names if name in SAS_METRICS]
    if not wanted:
        return {}
    if set(wanted) in ({"sas_x_to_y"}, {"sas_y_to_x"}):  # one direction asked for: skip the other
        anchor = "x" if wanted == ["sas_x_to_y"] else "y"
        return {wanted[0]: _direction(rows, anchor, counts, q, rank, eps)}
    x_to_y = _direction(rows, "x", counts, q, rank, eps)
    y_to_x = _direction(rows, "y", counts, q, rank, eps)
    combined = sas_summaries(x_to_y, y_to_x)
    return {name: combined[name] for name in wanted}
