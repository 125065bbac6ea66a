"""Eigendecompositions and active sets for the spectral metrics.

All spectra are computed in float64 and returned in descending order. The active set of SAS is a
quantile rule on the eigenvalues (docs/definitions.md#sas): with ``t`` the (1 − q) quantile of all d eigenvalues
under linear interpolation (the ``torch.quantile``/``numpy.quantile`` default), mode k is active
when ``λ_k ≥ t``. Several q values share one decomposition: only the mask changes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

# Broadening of the eigenvector gradient, relative to the spectrum's scale (see StableEigh).
DEGENERACY_REL = 1e-8


class StableEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` whose backward stays finite for repeated eigenvalues.

    The eigenvector part of the gradient is ``V (F ∘ skew(VᵀḡV)) Vᵀ`` with ``F_ij = 1/(λ_j − λ_i)``,
    which torch evaluates literally: NaN/Inf as soon as two eigenvalues coincide (isotropic data,
    n < d, duplicated rows). Here ``F_ij = Δ/(Δ² + δ²)`` with ``Δ = λ_j − λ_i`` and
    ``δ = DEGENERACY_REL · max|λ|``: identical to ``1/Δ`` (to relative ``(δ/Δ)²``) for separated
    eigenvalues, and going smoothly to 0 — the limit for a degenerate pair, whose eigenvectors are
    only defined up to a rotation inside their common eigenspace — instead of diverging.
    """

    @staticmethod
    def forward(ctx, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
        ctx.save_for_backward(eigenvalues, eigenvectors)
        return eigenvalues, eigenvectors

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor | None, grad_vectors: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        eigenvalues, eigenvectors = ctx.saved_tensors
        vt = eigenvectors.mT
        inner = torch.zeros_like(eigenvectors)
        if grad_vectors is not None:
            projected = vt @ grad_vectors
            skew = (projected - projected.mT) / 2
            gap = eigenvalues.unsqueeze(-2) - eigenvalues.unsqueeze(-1)  # Δ_ij = λ_j − λ_i
            scale = eigenvalues.abs().amax(dim=-1, keepdim=True).unsqueeze(-1)
            delta = DEGENERACY_REL * torch.where(scale > 0, scale, torch.ones_like(scale))
            inner = skew * gap / (gap**2 + delta**2)
        if grad_values is not None:
            inner = inner + torch.diag_embed(grad_values)
        return eigenvectors @ inner @ vt


def eigh_descending(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns, same order) of a symmetric matrix, in float64.

    Differentiable, with a backward that stays finite for repeated eigenvalues (:class:`StableEigh`).

    Shape: (..., d, d) → (..., d), (..., d, d).
    """
    eigenvalues, eigenvectors = StableEigh.apply(matrix.to(torch.float64))
    return eigenvalues.flip(-1), eigenvectors.flip(-1)


def quantile_threshold(eigenvalues: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The (1 − q) quantile of the eigenvalues, linear interpolation; q of shape (Q,) → (Q,).

    The active set is a discrete choice, so the threshold carries no gradient.
    """
    return torch.quantile(eigenvalues.detach(), 1.0 - q, interpolation="linear")


def active_masks(eigenvalues: torch.Tensor, q: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Boolean masks of the active eigenmodes, one row per q: shape (Q, d) (Q = 1 for a scalar q).

    Example: with distinct eigenvalues, d = 512 and q = 0.1 keep 52 modes; d = 768 keeps 77.

        >>> lam = torch.linspace(1.0, 0.0, 768, dtype=torch.float64)
        >>> int(active_masks(lam, 0.1).sum())
        77
    """
    qs = torch.as_tensor(q, dtype=torch.float64, device=eigenvalues.device).reshape(-1)
    threshold = quantile_threshold(eigenvalues, qs)
    return eigenvalues.detach()[None, :] >= threshold[:, None]


# Standard deviations below this are treated as this (the source paper's code divides by σ + 1e-8).
STD_FLOOR = 1e-8


def inverse_std(cov: torch.Tensor) -> torch.Tensor:
    """1/max(σ, 1e-8) per feature from a covariance diagonal.

    The source paper standardises by σ + 1e-8 so that a near-constant feature (σ of 1e-33 occurs in real
    sentence embeddings: rounding, not signal) is not blown up to unit variance; without a floor its scale would
    be rounding noise and differ between float32 and float64. The floor max(σ, 1e-8) does the same for such
    features and, unlike σ + 1e-8, leaves every feature with σ ≫ 1e-8 exactly standardised (the two differ by a
    relative 1e-8/σ, far below the paper's own randomised-SVD noise). A constant feature is all zeros after
    centring and stays zero. The floor is applied to the variance (max(σ, f) = sqrt(max(σ², f²))): the gradient of
    σ at σ² = 0 is infinite, and a rounding-negative variance is floored too.
    """
    return torch.diagonal(cov).clamp_min(STD_FLOOR**2).rsqrt()


def standardized(cov: torch.Tensor) -> torch.Tensor:
    """Correlation matrix D^{-1/2} C D^{-1/2}, σ floored at 1e-8 (see :func:`inverse_std`)."""
    scale = inverse_std(cov)
    return cov * scale[:, None] * scale[None, :]


# SAS's default regulariser, relative to the spectra it regularises (see :func:`sas_epsilon`).
SAS_EPS_REL = 1e-8
# The source paper's absolute ε inside ρ's root (``preset="paper"``).
PAPER_SAS_EPS = 1e-8
_TINY = torch.finfo(torch.float64).tiny


def check_sas_eps(eps: object, metric: str) -> float | None:
    """``eps`` of SAS: None (the scale-free default) or a positive, finite number (an absolute ε), as a float.

    Raises:
        TypeError: eps is neither None nor a real number (a bool is not a number here).
        ValueError: eps is not positive and finite (0 would give ρ = 0/0 on a mode without variance).
    """
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{metric}: eps must be None (scale-free) or a positive number, got {type(eps).__name__}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"{metric}: eps must be None (scale-free) or a positive, finite number, got {eps}")
    return float(eps)


def sas_epsilon(
    mean_variance_x: torch.Tensor, mean_variance_y: torch.Tensor, eps: float | None
) -> torch.Tensor | float:
    """ε of ρ's denominator ``sqrt(λ_k σ²_k + ε)`` (docs/definitions.md#sas).

    ``eps=None`` (the default of every SAS entry point) gives the scale-free regulariser
    ``ε = SAS_EPS_REL · λ̄_x · λ̄_y + tiny`` with ``λ̄ = tr Σ / d`` the mean variance of each modality (the mean
    eigenvalue of its covariance, 1/n), ``SAS_EPS_REL = 1e-8`` and ``tiny`` the smallest normal float64 (2.2e-308,
    which keeps ε > 0 when one modality is constant, and is negligible for every input the range checks accept).
    It is the same in both directions. Scaling x by a and y by b scales it by a²b², exactly as every λ_k σ²_k, so
    SAS is invariant to isotropic scaling of either modality; for features of unit mean variance it equals the
    source paper's 1e-8. A number is used as the absolute ε
    (the paper's 1e-8 under ``preset="paper"``): SAS then depends on the overall scale, since it damps every mode
    whose λ_k σ²_k is not far above ε.

    Args:
        mean_variance_x, mean_variance_y: ``tr Σ_x / d`` and ``tr Σ_y / d`` (scalar tensors; only read for None).
        eps: None, or an absolute ε already checked by :func:`check_sas_eps`.

    Returns:
        The absolute ε: a scalar tensor for None (differentiable in the variances), else ``eps``.
    """
    if eps is None:
        return SAS_EPS_REL * mean_variance_x * mean_variance_y + _TINY
    return eps


def rho_denominator(eigenvalues: torch.Tensor, other_variance: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """``sqrt(λ_k σ²_k + ε)``, the denominator of ρ_k (docs/definitions.md#sas), with ε absolute (see
    :func:`sas_epsilon`).

    λ_k and σ²_k are variances, so their product is ≥ 0. Rounding can make the eigenvalue of a (near-)null
    mode slightly negative (float32, n < d, offset data), and its square root would be NaN. A NaN would
    then spread through the score even from a mode with zero weight. Such a product counts as 0.
    """
    return torch.sqrt((eigenvalues * other_variance).clamp_min(0.0) + eps)


# The four SAS quantities of a pair of directions, in report order; :func:`sas_summaries` forms them.
SAS_METRICS = ("sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance")


def sas_score(
    eigenvalues: torch.Tensor,
    cross: torch.Tensor,
    other_variance: torch.Tensor,
    eps: float | torch.Tensor,
    active: torch.Tensor | None = None,
    signed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SAS reduction (docs/definitions.md#sas step 3), the one every path uses: score ``Σ_A λ_k |ρ_k| / Σ_A λ_k``
    and ρ.

    ``ρ_k = cross_k / sqrt(λ_k σ²_k + ε)`` with ``cross_k = v_kᵀ Σ_xy v_k`` and ``σ²_k = v_kᵀ Σ_other v_k``; ε is
    absolute here (a number or a scalar tensor: :func:`sas_epsilon` forms the scale-free default). Batched:
    every argument (…, k) broadcasts, the score is (…,). ``active`` (…, k) bool selects the modes (None: all the
    modes given, for callers that already selected them). ``signed`` uses ρ_k instead of |ρ_k|.

    |ρ_k| ≤ 1 by Cauchy–Schwarz, so the score lies in [0, 1] ([−1, 1] signed); the clamp removes only the rounding
    beyond those bounds.
    """
    rho = cross / rho_denominator(eigenvalues, other_variance, eps)
    weights = eigenvalues if active is None else eigenvalues * active
    per_mode = rho if signed else rho.abs()
    score = (weights * per_mode).sum(-1) / weights.sum(-1)
    return score.clamp(-1.0 if signed else 0.0, 1.0), rho


def sas_summaries(x_to_y: torch.Tensor, y_to_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both directions, their mean and ΔSAS = x→y − y→x, by the names of :data:`SAS_METRICS`; the one place
    the symmetric score and the imbalance are formed."""
    return {
        "sas_x_to_y": x_to_y,
        "sas_y_to_x": y_to_x,
        "sas_symmetric": (x_to_y + y_to_x) / 2,
        "sas_imbalance": x_to_y - y_to_x,
    }
