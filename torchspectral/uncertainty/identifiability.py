"""Is the per-mode structure SAS relies on identified at this n? (``sas_identifiability``)

SAS weighs each active eigenmode's |ρ_k| by λ_k. Its sampling behaviour is smooth only when the sample eigenvectors
it reads are those of the population: when two eigenvalues are closer than their sampling error, the sample
eigenvectors rotate between the two modes from sample to sample, per-mode |ρ| moves with them, and no interval
built on smoothness (percentile, basic, BCa, jackknife) can be trusted. Two kinds of evidence, per direction:

- **Eigengaps against their sampling error.** For Gaussian data a sample eigenvalue has sd ≈ λ·sqrt(2/n), so the
  gap between neighbours k, k+1 is resolved when ``r_k = (λ_k − λ_{k+1}) / (sqrt(2/n)·sqrt(λ_k² + λ_{k+1}²))`` is
  large (the eigenvector mixing angle is ≈ 1/(√2·r_k)). Sample eigenvalues repel, so even an exactly degenerate
  pair shows r ≈ 1–2.5 in a sample, not 0. The threshold, 6, is the one at which the coverage harness found the
  calibrated SAS intervals covering (docs/uncertainty.md#calibration). ``boundary_ratio`` is r at the active-set
  boundary (k = |A|); ``unresolved_mass`` is the share of the active eigen-mass Σ_A λ in modes with an unresolved
  neighbour (r < ``ratio_threshold``) inside the set.
- **Stability under resampling** (``n_resamples`` > 0): over pair resamples, ``active_overlap`` is the mean
  ``‖V_Aᵀ V_A*‖²_F / |A|`` (1: the active subspace does not move) and ``mode_stability`` the λ-weighted mean over
  the active modes of ``(v_k·v_k*)²`` (1: every active mode keeps its own eigenvector).

``identified`` (per direction): the boundary is resolved, ``unresolved_mass`` ≤ ``mass_threshold`` and, with
resamples, ``mode_stability`` ≥ ``stability_threshold`` — all of them: resampling stability alone is a weak
witness (resample eigenvectors scatter about the sample's, not the population's, so two nearly equal modes can look
stable under resampling). The coverage harness records these quantities per repeat next to the measured coverage.
Sample eigenvalues at n < d are biased (Marchenko–Pastur spreading), so the gap ratios are rough there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from torchspectral.spectral import active_masks, eigh_descending
from torchspectral.uncertainty.resampling import resample_indices
from torchspectral.validation import check_pair, check_q

RATIO_THRESHOLD = 6.0
MASS_THRESHOLD = 0.1
STABILITY_THRESHOLD = 0.9


@dataclass(frozen=True)
class DirectionIdentifiability:
    """One anchor's diagnostic (see the module docstring); ``reason`` says in words why it is or is not identified."""

    anchor: str
    active: int
    boundary_ratio: float
    min_ratio: float
    unresolved_mass: float
    active_overlap: float | None
    mode_stability: float | None
    identified: bool
    reason: str


@dataclass(frozen=True)
class Identifiability:
    """Both directions (x as anchor: SAS x→y; y: SAS y→x); ``identified`` when both are."""

    n: int
    x: DirectionIdentifiability
    y: DirectionIdentifiability

    @property
    def identified(self) -> bool:
        return self.x.identified and self.y.identified


def gap_ratios(eigenvalues: torch.Tensor, n: int) -> torch.Tensor:
    """``r_k`` for k = 1..d−1 (descending eigenvalues): neighbour gaps over their sampling sd (module docstring)."""
    lam = eigenvalues.double().clamp_min(0.0)
    noise = math.sqrt(2.0 / n) * torch.sqrt(lam[:-1] ** 2 + lam[1:] ** 2)
    gaps = lam[:-1] - lam[1:]
    return torch.where(noise > 0, gaps / noise.clamp_min(torch.finfo(torch.float64).tiny), torch.inf)


def _stability(centred: torch.Tensor, vectors: torch.Tensor, weights: torch.Tensor, n_resamples: int, seed: int):
    top = vectors.shape[1]
    overlaps, modes = [], []
    for idx in resample_indices(centred.shape[0], n_resamples, seed):
        rows = centred[idx]
        rows = rows - rows.mean(0)
        _, v = eigh_descending(rows.T @ rows / rows.shape[0])
        inner = vectors.T @ v[:, :top]  # (top, top) cosines between the sample's and the resample's modes
        overlaps.append(float((inner**2).sum()) / top)
        modes.append(float((weights * inner.diagonal() ** 2).sum() / weights.sum()))
    return sum(overlaps) / len(overlaps), sum(modes) / len(modes)


def _direction(
    anchor: str,
    data: torch.Tensor,
    q: float,
    n_resamples: int,
    seed: int,
    thresholds: tuple[float, float, float],
    always_resample: bool,
) -> DirectionIdentifiability:
    ratio_threshold, mass_threshold, stability_threshold = thresholds
    n, d = data.shape
    centred = data.double() - data.double().mean(0)
    values, vectors = eigh_descending(centred.T @ centred / n)
    top = int(active_masks(values, q)[0].sum())
    ratios = gap_ratios(values, n)
    boundary = float(ratios[top - 1]) if top < d else math.inf  # q = 1: every mode is active, no boundary
    inside = ratios[: top - 1]
    # A mode is unresolved when the gap to either neighbour inside the active set is.
    weak = torch.zeros(top, dtype=torch.bool)
    if top > 1:
        weak[:-1] |= inside < ratio_threshold
        weak[1:] |= inside < ratio_threshold
    lam = values[:top].clamp_min(0.0)
    mass = float((lam * weak).sum() / lam.sum()) if float(lam.sum()) > 0 else 1.0
    reasons = []
    if boundary < ratio_threshold:
        reasons.append(f"the active-set boundary gap is {boundary:.2g}× its sampling sd (< {ratio_threshold:g})")
    if mass > mass_threshold:
        reasons.append(
            f"{100 * mass:.0f}% of the active eigen-mass is in modes closer to a neighbour than {ratio_threshold:g} "
            "sampling sd"
        )
    overlap = stability = None
    # The resamples can only add a reason: when the gaps already fail, they are skipped unless asked for.
    if n_resamples and (always_resample or not reasons):
        overlap, stability = _stability(centred, vectors[:, :top], lam, n_resamples, seed)
    if stability is not None and stability < stability_threshold:
        reasons.append(
            f"under resampling the active modes keep {100 * stability:.0f}% of their eigenvector (λ-weighted; "
            f"< {100 * stability_threshold:.0f}%)"
        )
    identified = not reasons
    reason = "identified" if identified else "not identified: " + "; ".join(reasons)
    return DirectionIdentifiability(
        anchor=anchor,
        active=top,
        boundary_ratio=boundary,
        min_ratio=float(inside.min()) if top > 1 else math.inf,
        unresolved_mass=mass,
        active_overlap=overlap,
        mode_stability=stability,
        identified=identified,
        reason=reason,
    )


def sas_identifiability(
    x: torch.Tensor,
    y: torch.Tensor,
    q: float = 0.1,
    n_resamples: int = 50,
    seed: int = 0,
    *,
    ratio_threshold: float = RATIO_THRESHOLD,
    mass_threshold: float = MASS_THRESHOLD,
    stability_threshold: float = STABILITY_THRESHOLD,
    always_resample: bool = True,
    nan_policy: str = "raise",
) -> Identifiability:
    """Whether the eigenmodes SAS reads are identified at this n, per direction (see the module docstring).

    Args:
        q: SAS active-set fraction. n_resamples: pair resamples for the stability measures (0: gaps only; each
            costs one d×d covariance and eigendecomposition per direction). seed: the resamples' seed.
        ratio_threshold, mass_threshold, stability_threshold: the provisional decision rule.
        always_resample: False skips the resamples of a direction whose eigengaps already fail (the verdict cannot
            change; ``active_overlap`` and ``mode_stability`` are then None). ``bootstrap(method="calibrated")``
            and the audit do so.

    Example:
        >>> import torch
        >>> from torchspectral.uncertainty import sas_identifiability
        >>> g = torch.Generator().manual_seed(0)
        >>> scales = torch.tensor([4.0, 2.0, 1.0, 0.5] + [0.05] * 36, dtype=torch.float64)
        >>> x = torch.randn(2000, 40, generator=g, dtype=torch.float64) * scales.sqrt()
        >>> sas_identifiability(x, x + 0.1 * torch.randn(2000, 40, generator=g, dtype=torch.float64)).identified
        True
    """
    x, y = check_pair(x, y, "sas_identifiability", same_dim="SAS reads both sides in one space", nan_policy=nan_policy)
    check_q(q, "sas_identifiability")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise ValueError(f"sas_identifiability: n_resamples must be an integer ≥ 0, got {n_resamples!r}")
    for name, value in (("ratio_threshold", ratio_threshold), ("mass_threshold", mass_threshold)):
        if not value >= 0:
            raise ValueError(f"sas_identifiability: {name} must be ≥ 0, got {value}")
    if not isinstance(always_resample, bool):
        raise ValueError(f"sas_identifiability: always_resample must be True or False, got {always_resample!r}")
    if not 0.0 <= stability_threshold <= 1.0:
        raise ValueError(f"sas_identifiability: stability_threshold must lie in [0, 1], got {stability_threshold}")
    if x.shape[0] < 3:
        raise ValueError(
            f"sas_identifiability: needs at least 3 pairs for a covariance and its resamples, got {x.shape[0]}"
        )
    thresholds = (ratio_threshold, mass_threshold, stability_threshold)
    with torch.no_grad():
        return Identifiability(
            n=x.shape[0],
            x=_direction("x", x, q, n_resamples, seed, thresholds, always_resample),
            y=_direction("y", y, q, n_resamples, seed, thresholds, always_resample),
        )
