"""`Moments`: the streaming accumulator of paired embeddings with every moment metric as a method.

The state, its merging and ``all_reduce`` are :class:`~torchspectral.stats.MomentStatistics` (see there for the
sums and their numerics); this class adds the metrics, each a thin call of its formula in
:mod:`torchspectral.functional`, so that ``m.sas()``, ``m.cka()``, … read one set of statistics.
"""

from __future__ import annotations

from typing import Any

import torch

from torchspectral.functional.cka import linear_cka_from_moments
from torchspectral.functional.coral import coral_from_moments
from torchspectral.functional.gap import (
    cosine_gap_from_moments,
    l2i_from_moments,
    modality_gap_from_moments,
    rmg_from_moments,
    true_pair_cosine_from_moments,
)
from torchspectral.functional.procrustes import procrustes_from_moments
from torchspectral.functional.report import report_from_moments
from torchspectral.functional.sas import SpectralAlignmentResult, sas_from_moments, spectral_alignment_from_moments
from torchspectral.functional.svcca import svcca_from_moments
from torchspectral.stats.accumulator import (  # noqa: F401  (re-exported: the state's names)
    CHUNK_ELEMENTS,
    NORMALISED_STATE,
    SHIFTED_STATE,
    STATE,
    MomentStatistics,
)
from torchspectral.validation import compute_dtype  # noqa: F401  (re-exported for earlier imports)


class Moments(MomentStatistics):
    """Additive sufficient statistics of paired embeddings ``x`` (n, d_x) and ``y`` (n, d_y), with the metrics.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(1000, 16, generator=g), torch.randn(1000, 16, generator=g)
        >>> m = ts.Moments()
        >>> for i in range(0, 1000, 300):
        ...     _ = m.update(x[i:i + 300], y[i:i + 300])
        >>> bool(torch.isclose(m.cka(), ts.cka(x, y), rtol=1e-6))
        True
    """

    # ------------------------------------------------------------------ metrics
    def sas(self, q: float | Any = 0.1, eps: float | None = None, signed: bool = False) -> torch.Tensor:
        """SAS with x as the anchor; see :func:`torchspectral.sas` (``eps=None``: the scale-free
        ``ε = 1e-8 · (tr Σ_x / d) · (tr Σ_y / d)``; a number: an absolute ε, as the source paper's 1e-8)."""
        return sas_from_moments(self, q=q, eps=eps, signed=signed)

    def spectral_alignment(self, q: float = 0.1, eps: float | None = None) -> SpectralAlignmentResult:
        """Both SAS directions with per-mode detail; see :func:`torchspectral.spectral_alignment` (``eps`` as in
        :meth:`sas`)."""
        return spectral_alignment_from_moments(self, q=q, eps=eps)

    def cka(self, kernel: str = "linear", unbiased: bool = False) -> torch.Tensor:
        """Linear CKA; see :func:`torchspectral.cka`."""
        if kernel != "linear":
            raise ValueError(f"Moments.cka: only kernel='linear' is a function of moments, got {kernel!r}")
        return linear_cka_from_moments(self, unbiased=unbiased)

    def svcca(self, keep: float | int = 0.99, standardize: bool = False) -> torch.Tensor:
        """SVCCA; see :func:`torchspectral.svcca`."""
        return svcca_from_moments(self, keep=keep, standardize=standardize)

    def coral(self, scale: str = "deep") -> torch.Tensor:
        """CORAL; see :func:`torchspectral.coral`."""
        return coral_from_moments(self, scale=scale)

    def procrustes(self, kind: str = "similarity") -> torch.Tensor:
        """Orthogonal Procrustes similarity, distance or angle; see :func:`torchspectral.procrustes`."""
        return procrustes_from_moments(self, kind=kind)

    def modality_gap(self) -> torch.Tensor:
        return modality_gap_from_moments(self)

    def l2i(self) -> torch.Tensor:
        return l2i_from_moments(self)

    def true_pair_cosine(self) -> torch.Tensor:
        return true_pair_cosine_from_moments(self)

    def cosine_gap(self) -> torch.Tensor:
        return cosine_gap_from_moments(self)

    def rmg(self) -> torch.Tensor:
        return rmg_from_moments(self)

    def report(self, preset: str = "default") -> dict[str, float]:
        """Every moment metric by name; see :func:`torchspectral.alignment_report` (``preset="paper"``: the source
        paper's settings, SAS with its absolute ε = 1e-8)."""
        return report_from_moments(self, preset=preset)


def merge_flat(stacked: torch.Tensor, d_x: int, d_y: int) -> torch.Tensor:
    """Merge rows of flat Moments vectors (k, L) exactly into one (L,): a reduction for metric states."""
    merged = Moments(d_x, d_y, device=stacked.device)
    for row in stacked.reshape(-1, stacked.shape[-1]):
        merged.merge(Moments.from_flat(row, d_x, d_y))
    return merged.to_flat()
