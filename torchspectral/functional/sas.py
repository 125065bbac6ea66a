"""Spectral Alignment Score (docs/definitions.md#sas): how much of the anchor's dominant eigenspace the other modality
shares.

For anchor X: eigendecompose Σ_x = V diag(λ) Vᵀ (descending); per mode k,
``ρ_k = v_kᵀ Σ_xy v_k / sqrt(λ_k · v_kᵀ Σ_y v_k + ε)``; over the active set A (top-q quantile of λ),
``SAS_{X→Y} = Σ_A λ_k |ρ_k| / Σ_A λ_k``. SAS is directional: ΔSAS = SAS_{X→Y} − SAS_{Y→X} says
which modality's dominant structure the other one loses.

ε: by default (``eps=None``) scale-free, ``ε = 1e-8 · (tr Σ_x / d) · (tr Σ_y / d)``, so SAS is invariant to
isotropic scaling of either modality; a number is an absolute ε (the source paper's 1e-8, ``preset="paper"`` of
the report). See :func:`torchspectral.spectral.sas_epsilon`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from torchspectral.spectral import active_masks, check_sas_eps, sas_epsilon, sas_score, sas_summaries
from torchspectral.stats import MomentStatistics
from torchspectral.validation import check_q, checking_values, with_validate_args

SAME_DIM_REASON = "SAS evaluates y's covariance on the eigenvectors of x, so both must live in one space"
# The statistics groups SAS reads (torchspectral.stats.GROUPS): the covariance blocks only.
NEEDS = ("covariance",)

Q = float | Sequence[float] | torch.Tensor
# ε of ρ's root as the entry points take it: None (scale-free) or an absolute number; inside, also a formed ε.
Eps = float | torch.Tensor | None


@dataclass(frozen=True)
class SpectralAlignmentResult:
    """Both directions of SAS with the per-eigenmode profile (for plots and explanations).

    ``x_to_y``/``y_to_x``/``symmetric``/``imbalance`` are scalars for a scalar q and (Q,) for a
    sequence of q. Per direction: ``eigenvalues`` (d,) descending, ``rho`` (d,) the per-mode
    correlation ρ_k, ``active`` (d,) or (Q, d) boolean mask of the modes that count.
    """

    x_to_y: torch.Tensor
    y_to_x: torch.Tensor
    symmetric: torch.Tensor
    imbalance: torch.Tensor
    eigenvalues_x: torch.Tensor
    rho_x: torch.Tensor
    active_x: torch.Tensor
    eigenvalues_y: torch.Tensor
    rho_y: torch.Tensor
    active_y: torch.Tensor


def _is_scalar(q: Q) -> bool:
    return isinstance(q, (int, float)) or (isinstance(q, torch.Tensor) and q.dim() == 0)


def _check(m: MomentStatistics, metric: str, q: Q) -> None:
    if not m.same_dim:
        raise ValueError(f"{metric}: needs d_x = d_y ({SAME_DIM_REASON}), got d_x={m.d_x}, d_y={m.d_y}")
    m.require_pairs(metric, 2, "a covariance needs two pairs")
    for value in torch.as_tensor(q, dtype=torch.float64).reshape(-1).tolist():
        check_q(value, metric)


def _require_variance(m: MomentStatistics, which: str, metric: str) -> None:
    if checking_values() and not bool(torch.trace(m.covariance(which)) > 0):
        raise ValueError(f"{metric}: {which} has zero variance (every feature is constant); its spectrum is empty")


@dataclass(frozen=True)
class AnchorModes:
    """Every eigenmode of one anchor's covariance: λ (d,) descending, V (d, d), v_kᵀΣ_xy v_k, σ²_k and ρ_k (d,)."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    cross: torch.Tensor
    other_variance: torch.Tensor
    rho: torch.Tensor


def sas_eps(m: MomentStatistics, eps: Eps, metric: str = "sas") -> float | torch.Tensor:
    """The absolute ε of ρ's root for these statistics (:func:`~torchspectral.spectral.sas_epsilon`).

    ``eps``: None (the scale-free default, formed from m's mean variances), an absolute number (checked), or an
    ε already formed by this function (a tensor, passed through).

    Raises:
        TypeError, ValueError: eps is not None, a tensor, or a positive finite number.
    """
    if isinstance(eps, torch.Tensor):
        return eps
    eps = check_sas_eps(eps, metric)
    if eps is not None:
        return eps
    variance_x = torch.diagonal(m.covariance("x")).mean()
    variance_y = torch.diagonal(m.covariance("y")).mean()
    return sas_epsilon(variance_x, variance_y, None)


def anchor_modes(m: MomentStatistics, anchor: str, eps: Eps = None, count: int | None = None) -> AnchorModes:
    """Per-mode statistics with `anchor` ("x" or "y") as the anchor (docs/definitions.md#sas steps 1–2): every mode, or
    the ``count`` leading ones (the projections cost d²·count instead of d³). ``eps`` as in :func:`sas_eps`."""
    eps = sas_eps(m, eps)
    eigenvalues, eigenvectors = m.spectrum(anchor)
    if count is not None:
        eigenvalues, eigenvectors = eigenvalues[:count], eigenvectors[:, :count]
    other = "y" if anchor == "x" else "x"
    # v_kᵀ Σ_xy v_k equals v_kᵀ Σ_yx v_k (a quadratic form ignores transposition), so one cross block serves both.
    cross = ((m.covariance("xy") @ eigenvectors) * eigenvectors).sum(0)
    other_variance = ((m.covariance(other) @ eigenvectors) * eigenvectors).sum(0)
    _, rho = sas_score(eigenvalues, cross, other_variance, eps)
    return AnchorModes(eigenvalues, eigenvectors, cross, other_variance, rho)


def _direction(
    m: MomentStatistics, anchor: str, q: Q, eps: float | torch.Tensor, signed: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score, eigenvalues, ρ and active masks (Q, d) with `anchor` ("x" or "y") as the anchor."""
    modes = anchor_modes(m, anchor, eps)
    masks = active_masks(modes.eigenvalues, q)
    score, _ = sas_score(modes.eigenvalues, modes.cross, modes.other_variance, eps, masks, signed)
    return score, modes.eigenvalues, modes.rho, masks


def _active_direction(m: MomentStatistics, anchor: str, q: Q, eps: float | torch.Tensor, signed: bool) -> torch.Tensor:
    """The score alone (Q,): only the active modes are projected. They are a prefix of the descending spectrum,
    so the largest set's length (read on the host) bounds them all; at q = 0.1 that is a tenth of the d³ work."""
    eigenvalues, _ = m.spectrum(anchor)
    masks = active_masks(eigenvalues, q)
    count = int(masks.sum(-1).max())
    modes = anchor_modes(m, anchor, eps, count)
    score, _ = sas_score(modes.eigenvalues, modes.cross, modes.other_variance, eps, masks[:, :count], signed)
    return score


def sas_scores_from_moments(m: MomentStatistics, q: float = 0.1, eps: Eps = None) -> dict[str, torch.Tensor]:
    """``sas_x_to_y``, ``sas_y_to_x``, ``sas_symmetric``, ``sas_imbalance`` for one q, without the per-mode ρ of
    :func:`spectral_alignment_from_moments` (the same values; the report, the registry and the bootstrap use it)."""
    _check(m, "spectral_alignment", q)
    _require_variance(m, "x", "spectral_alignment")
    _require_variance(m, "y", "spectral_alignment")
    eps = sas_eps(m, eps, "spectral_alignment")
    x_to_y = _active_direction(m, "x", q, eps, False)[0]
    y_to_x = _active_direction(m, "y", q, eps, False)[0]
    return sas_summaries(x_to_y, y_to_x)


def sas_from_moments(m: MomentStatistics, q: Q = 0.1, eps: Eps = None, signed: bool = False) -> torch.Tensor:
    _check(m, "sas", q)
    _require_variance(m, "x", "sas")
    eps = sas_eps(m, eps, "sas")
    score, *_ = _direction(m, "x", q, eps, signed)
    return score[0] if _is_scalar(q) else score


def spectral_alignment_from_moments(m: MomentStatistics, q: Q = 0.1, eps: Eps = None) -> SpectralAlignmentResult:
    _check(m, "spectral_alignment", q)
    _require_variance(m, "x", "spectral_alignment")
    _require_variance(m, "y", "spectral_alignment")
    eps = sas_eps(m, eps, "spectral_alignment")
    x_to_y, lam_x, rho_x, active_x = _direction(m, "x", q, eps, False)
    y_to_x, lam_y, rho_y, active_y = _direction(m, "y", q, eps, False)
    if _is_scalar(q):
        x_to_y, y_to_x, active_x, active_y = x_to_y[0], y_to_x[0], active_x[0], active_y[0]
    summaries = sas_summaries(x_to_y, y_to_x)
    return SpectralAlignmentResult(
        x_to_y=x_to_y,
        y_to_x=y_to_x,
        symmetric=summaries["sas_symmetric"],
        imbalance=summaries["sas_imbalance"],
        eigenvalues_x=lam_x,
        rho_x=rho_x,
        active_x=active_x,
        eigenvalues_y=lam_y,
        rho_y=rho_y,
        active_y=active_y,
    )


@with_validate_args
def sas(
    x: torch.Tensor,
    y: torch.Tensor,
    q: Q = 0.1,
    eps: float | None = None,
    signed: bool = False,
    *,
    nan_policy: str = "raise",
) -> torch.Tensor:
    """Directional Spectral Alignment Score SAS_{X→Y} (x is the anchor), in [0, 1].

    ``Σ_{k∈A} λ_k |ρ_k| / Σ_{k∈A} λ_k`` with λ, v the eigenpairs of Σ_x, ρ_k the correlation of the
    two modalities along v_k, and A the modes with λ_k at or above the (1 − q) quantile.

    Args:
        x, y: paired embeddings (n, d), row i of x pairs with row i of y; same d.
        q: fraction of top eigenmodes, in (0, 1]; a sequence gives a q-sweep from one decomposition.
        eps: ε, added inside the square root of ρ's denominator. None (default): scale-free,
            ``ε = 1e-8 · (tr Σ_x / d) · (tr Σ_y / d)`` (the mean variances of x and y), so SAS does not change when
            either modality is scaled. A positive number: that absolute ε, as the source paper's 1e-8
            (``alignment_report(preset="paper")``); SAS then shrinks for embeddings whose λ_k σ²_k approach ε.
        signed: use ρ_k instead of |ρ_k| (range [−1, 1]).
        nan_policy: "raise" on NaN/Inf rows, or "omit" to drop those pairs.

    Raises:
        ValueError: d_x ≠ d_y, fewer than two pairs, q outside (0, 1], eps not positive and finite, NaN/Inf with
            nan_policy="raise", a modality without variance, or values out of the range the arithmetic holds.

    Shape: x (n, d), y (n, d) → () for a scalar q, (Q,) for a sequence.

    Example:
        >>> import torch, torchspectral as ts
        >>> x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
        >>> round(float(ts.sas(x, x)), 6)  # 1 up to ε inside ρ's root
        1.0
        >>> bool(torch.isclose(ts.sas(1e-3 * x, x), ts.sas(x, x)))  # scale-free by default
        True
    """
    m = MomentStatistics.from_data(x, y, nan_policy=nan_policy, metric="sas", same_dim=SAME_DIM_REASON, groups=NEEDS)
    return sas_from_moments(m, q=q, eps=eps, signed=signed)


@with_validate_args
def spectral_alignment(
    x: torch.Tensor, y: torch.Tensor, q: Q = 0.1, eps: float | None = None, *, nan_policy: str = "raise"
) -> SpectralAlignmentResult:
    """SAS in both directions, their mean, the imbalance ΔSAS = SAS_{X→Y} − SAS_{Y→X}, and per-mode λ, ρ, active.

    With x = image and y = text, ΔSAS > 0 means the image's dominant eigenspace is recovered from the
    text better than the reverse. Arguments as in :func:`sas`: ``eps=None`` (default) is the scale-free
    ``ε = 1e-8 · (tr Σ_x / d) · (tr Σ_y / d)``, the same in both directions; a number is an absolute ε.

    Example:
        >>> import torch, torchspectral as ts
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 16, generator=g)
        >>> r = ts.spectral_alignment(x, x + 0.1 * torch.randn(2000, 16, generator=g))
        >>> r.rho_x.shape, bool(r.symmetric > 0.9)
        (torch.Size([16]), True)
    """
    m = MomentStatistics.from_data(
        x, y, nan_policy=nan_policy, metric="spectral_alignment", same_dim=SAME_DIM_REASON, groups=NEEDS
    )
    return spectral_alignment_from_moments(m, q=q, eps=eps)
